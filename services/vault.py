"""Seal school session cookies, and the passwords students' tokens hold, with the server's
key before they reach the database.

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


def _bound(student_id: str, system: str, purpose: str) -> bytes:
    """The authenticated data a value is sealed with."""
    text = f"{student_id}\x00{system}" + (f"\x00{purpose}" if purpose else "")
    return text.encode()


class SessionVault:
    """Seal and open short secrets bound to (student, system)."""

    def __init__(self, secret_key: bytes) -> None:
        key = hmac.new(secret_key, b"jnufm school-session sealing v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, student_id: str, system: str, value: str, purpose: str = "") -> str:
        """`value` sealed for one student and system, and one purpose ("" for a school
        session, "password" for a password a token holds): a sealed value opens only
        where it was sealed for."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), _bound(student_id, system, purpose))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, student_id: str, system: str, sealed: str, purpose: str = "") -> str | None:
        """The value, or None if it was sealed with another key or for another row."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            value = self._aead.decrypt(
                raw[:NONCE_BYTES], raw[NONCE_BYTES:], _bound(student_id, system, purpose)
            )
        except (InvalidTag, ValueError):
            return None
        return value.decode()
