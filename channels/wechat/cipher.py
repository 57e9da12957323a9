"""The message encryption of the compatible and safe modes (WeChat's "消息加解密" scheme).

AES-256-CBC with key = base64decode(EncodingAESKey + "=") and IV = the key's first 16
bytes; the plaintext is 16 random bytes, the XML's length (4 bytes, big-endian), the
XML, the app id, padded PKCS#7-style to a multiple of 32 bytes (not 16: WeChat's own
choice). The ciphertext travels as base64.

AES comes from `cryptography`, already a dependency; wechatpy would add a whole SDK
(HTTP clients, its own XML handling) for the sixty lines below.

The scheme has no MAC: the message signature (which covers the ciphertext) is what
authenticates it, so the endpoint verifies that signature before it decrypts. A
padding error is therefore only ever reported for ciphertexts WeChat signed, and a
padding oracle cannot be queried by someone without the token.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from channels.wechat.errors import UndecryptableMessage, WrongAppId

PAD_BLOCK = 32
_RANDOM_PREFIX = 16
_LENGTH_BYTES = 4
_ENCODING_AES_KEY = re.compile(r"[A-Za-z0-9+/]{43}")


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key an EncodingAESKey (43 base64 characters) stands for.

    Raises ValueError if it is not one.
    """
    if not _ENCODING_AES_KEY.fullmatch(encoding_aes_key):
        raise ValueError("an EncodingAESKey is 43 characters of A-Z, a-z, 0-9, + and /")
    return base64.b64decode(encoding_aes_key + "=", validate=True)


class MessageCipher:
    """Encrypts and decrypts the XML of one official account (its key and app id)."""

    def __init__(
        self,
        encoding_aes_key: str,
        app_id: str,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._key = aes_key(encoding_aes_key)
        self._app_id = app_id.encode("utf-8")
        self._random_bytes = random_bytes

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, xml: bytes) -> str:
        """The base64 ciphertext of xml, as an <Encrypt> element carries it."""
        body = b"".join(
            (
                self._random_bytes(_RANDOM_PREFIX),
                len(xml).to_bytes(_LENGTH_BYTES, "big"),
                xml,
                self._app_id,
            )
        )
        pad = PAD_BLOCK - len(body) % PAD_BLOCK
        encryptor = self._cipher().encryptor()
        sealed = encryptor.update(body + bytes([pad]) * pad) + encryptor.finalize()
        return base64.b64encode(sealed).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """The XML inside an <Encrypt> element's base64 ciphertext.

        Raises UndecryptableMessage, or WrongAppId if it was sealed for another app id.
        """
        try:
            sealed = base64.b64decode(encrypted.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise UndecryptableMessage("the ciphertext is not base64") from None
        if not sealed or len(sealed) % 16:
            raise UndecryptableMessage("the ciphertext is not whole AES blocks")
        decryptor = self._cipher().decryptor()
        padded = decryptor.update(sealed) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= PAD_BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise UndecryptableMessage("bad padding")
        body = padded[:-pad]
        header = _RANDOM_PREFIX + _LENGTH_BYTES
        if len(body) < header:
            raise UndecryptableMessage("too short for its header")
        length = int.from_bytes(body[_RANDOM_PREFIX:header], "big")
        if length > len(body) - header:
            raise UndecryptableMessage("the length field exceeds the plaintext")
        if not hmac.compare_digest(body[header + length :], self._app_id):
            raise WrongAppId("sealed for another app id")
        return body[header : header + length]
