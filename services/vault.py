"""Seal school session cookies with the server's key before they reach the database.

AES-256-GCM with a key derived from the server secret; the student number and
school system are authenticated data, so a sealed session cannot be moved to
another student's row. A leaked table without the key gives nothing usable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class SessionVault:
    """Seal and open short secrets bound to (student, system)."""

    def __init__(self, secret_key: bytes) -> None:
        key = hmac.new(secret_key, b"jnufm school-session sealing v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, student_id: str, system: str, value: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), f"{student_id}\x00{system}".encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, student_id: str, system: str, sealed: str) -> str | None:
        """The value, or None if it was sealed with another key or for another row."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            value = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"{student_id}\x00{system}".encode()
            )
        except (InvalidTag, ValueError):
            return None
        return value.decode()
