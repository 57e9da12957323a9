"""Accounts, a clock and both sides of the protocol for the WeChat protocol tests."""

from __future__ import annotations

import base64
import random

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pydantic import SecretStr

from channels.wechat.config import Mode, WeChatAccount
from channels.wechat.endpoint import AccountEndpoint
from channels.wechat.replay import MemoryNonceStore, ReplayGuard
from channels.wechat.simulated_platform import SimulatedPlatform

APP_ID = "wx2c2769f8efd9abc2"
TOKEN = "spamtest"
ENCODING_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
OPENID = "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
T0 = 1_796_000_000.0
MODES: tuple[Mode, ...] = ("plain", "compatible", "safe")


class Clock:
    """A settable wall clock (Unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def account(mode: Mode, app_id: str = APP_ID, key: str = ENCODING_AES_KEY) -> WeChatAccount:
    return WeChatAccount(
        name="jnu",
        app_id=app_id,
        mode=mode,
        token=SecretStr(TOKEN),
        encoding_aes_key=SecretStr(key),
    )


class Pair:
    """An account's endpoint and WeChat's side, on one clock."""

    def __init__(self, mode: Mode, window_s: float = 300.0) -> None:
        self.clock = Clock()
        self.store = MemoryNonceStore()
        self.endpoint = AccountEndpoint(
            account(mode), ReplayGuard(self.store, window_s, self.clock), clock=self.clock
        )
        # Seeded: the same messages, nonces and ciphertexts on every run.
        self.platform = SimulatedPlatform(
            account(mode), clock=self.clock, random_bytes=random.Random(0).randbytes
        )


def seal_raw(plain: bytes, key: str = ENCODING_AES_KEY) -> str:
    """plain (header, XML and app id already laid out) padded to 32 bytes as WeChat pads,
    encrypted, in base64: for ciphertexts the cipher itself would never write."""
    raw = base64.b64decode(key + "=")
    pad = 32 - len(plain) % 32
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(
        encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
    ).decode()


def encrypt_unpadded(plain: bytes, key: str = ENCODING_AES_KEY) -> str:
    """plain (whole AES blocks, its padding already in it) encrypted, in base64."""
    raw = base64.b64decode(key + "=")
    encryptor = Cipher(algorithms.AES(raw), modes.CBC(raw[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()
