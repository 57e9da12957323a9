"""The account's side of the protocol: check a request comes from WeChat, open it, seal replies.

Per request, in this order (who sent it first, the body only then, the nonce claimed
last so that only a request that passed everything uses one up):

1. `signature` over (token, timestamp, nonce), in every mode (BadSignature);
2. the timestamp within the replay window (StaleTimestamp);
3. the body: size cap, then safe XML (BodyTooLarge, MalformedMessage);
4. compatible and safe modes: `encrypt_type=aes`, `msg_signature` over (token,
   timestamp, nonce, Encrypt) (BadSignature), then decryption and the app id
   (UndecryptableMessage, WrongAppId); the message is read from the ciphertext only,
   the plaintext copy of compatible mode is ignored;
5. the (timestamp, nonce) pair not seen before (ReplayedNonce).

Replies: plain in plain and compatible modes (WeChat's docs: in compatible mode "公众号
回复明文或密文均可"; plaintext keeps that mode what it is for, a step while switching),
encrypted in safe mode; the bare `success` in every mode.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from channels.wechat.cipher import MessageCipher
from channels.wechat.config import WeChatAccount
from channels.wechat.errors import BadSignature, MalformedMessage
from channels.wechat.messages import InboundMessage, parse_message
from channels.wechat.replay import ReplayGuard
from channels.wechat.reply_xml import SUCCESS
from channels.wechat.signature import sign, signature_matches
from channels.wechat.wire import DEFAULT_MAX_BODY_BYTES, document, element, parse_fields


@dataclass(frozen=True, slots=True)
class CallbackQuery:
    """The query string WeChat adds to the callback URL (absent arguments as "")."""

    signature: str
    timestamp: str
    nonce: str
    echostr: str = ""
    encrypt_type: str = ""
    msg_signature: str = ""

    @classmethod
    def from_arguments(cls, arguments: Mapping[str, str]) -> CallbackQuery:
        """The query from a request's arguments (the last value of each, as decoded)."""
        return cls(
            signature=arguments.get("signature", ""),
            timestamp=arguments.get("timestamp", ""),
            nonce=arguments.get("nonce", ""),
            echostr=arguments.get("echostr", ""),
            encrypt_type=arguments.get("encrypt_type", ""),
            msg_signature=arguments.get("msg_signature", ""),
        )


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message that passed every check, and what its reply needs."""

    message: InboundMessage
    timestamp: int
    nonce: str
    seal_reply: bool


class AccountEndpoint:
    """The protocol for one official account: URL verification, messages in, replies out."""

    def __init__(
        self,
        account: WeChatAccount,
        guard: ReplayGuard,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.account = account
        self._token = account.token.get_secret_value()
        self._guard = guard
        self._max_body_bytes = max_body_bytes
        self._clock = clock
        aes = account.encoding_aes_key
        self._cipher = (
            None
            if aes is None or account.mode == "plain"
            else MessageCipher(aes.get_secret_value(), account.app_id, random_bytes)
        )

    async def verify_url(self, query: CallbackQuery) -> str:
        """The echostr to answer WeChat's URL check (GET) with, as it came: an official
        account's check is never encrypted, whatever the mode (WeChat Work's is).

        Raises a WeChatError if the check is not WeChat's.
        """
        timestamp = self._authenticate(query)
        await self._guard.claim(self.account.app_id, timestamp, query.nonce)
        return query.echostr

    async def receive(self, query: CallbackQuery, body: bytes) -> Inbound:
        """The message a POST carries, checked as the module docstring lists.

        Raises a WeChatError (see errors.py) for anything else.
        """
        timestamp = self._authenticate(query)
        fields = parse_fields(body, self._max_body_bytes)
        if self._cipher is not None:
            fields = self._open(query, fields)
        message = parse_message(fields)
        await self._guard.claim(self.account.app_id, timestamp, query.nonce)
        return Inbound(message, timestamp, query.nonce, self.account.mode == "safe")

    def reply(self, inbound: Inbound, reply_xml: str) -> str:
        """The body answering inbound: reply_xml as is, or sealed in safe mode."""
        if reply_xml == SUCCESS or not inbound.seal_reply or self._cipher is None:
            return reply_xml
        encrypted = self._cipher.encrypt(reply_xml.encode("utf-8"))
        timestamp = str(int(self._clock()))
        signature = sign(self._token, timestamp, inbound.nonce, encrypted)
        return document(
            [
                element("Encrypt", encrypted),
                element("MsgSignature", signature),
                element("TimeStamp", int(timestamp)),
                element("Nonce", inbound.nonce),
            ]
        ).decode("utf-8")

    def _authenticate(self, query: CallbackQuery) -> int:
        if not query.signature or not signature_matches(
            query.signature, self._token, query.timestamp, query.nonce
        ):
            raise BadSignature("the URL signature does not match")
        return self._guard.fresh_timestamp(query.timestamp)

    def _open(self, query: CallbackQuery, outer: dict[str, str]) -> dict[str, str]:
        assert self._cipher is not None
        if query.encrypt_type != "aes":
            raise BadSignature(f"{self.account.mode} mode expects encrypt_type=aes")
        encrypted = outer.get("Encrypt", "")
        if not encrypted:
            raise MalformedMessage("no <Encrypt> element")
        if not query.msg_signature or not signature_matches(
            query.msg_signature, self._token, query.timestamp, query.nonce, encrypted
        ):
            raise BadSignature("the message signature does not match")
        inner = parse_fields(self._cipher.decrypt(encrypted), self._max_body_bytes)
        addressed = outer.get("ToUserName")
        if addressed is not None and addressed != inner.get("ToUserName"):
            raise MalformedMessage("the ciphertext is addressed to another account")
        return inner
