"""The WeChat protocol's errors: one tree, each error with a short `reason` for logs and metrics.

    WeChatError
    ├── BadSignature            signature or msg_signature missing or wrong
    ├── ReplayRefused
    │   ├── StaleTimestamp      timestamp missing, malformed or outside the window
    │   └── ReplayedNonce       this (timestamp, nonce) was already accepted
    ├── UndecryptableMessage    ciphertext not base64, not whole blocks, bad padding or length
    │   └── WrongAppId          decrypted, but addressed to another app id
    └── MalformedMessage        not the XML of a message: unparsable, a DTD or entity,
        │                       a missing or invalid field
        └── BodyTooLarge        refused before parsing

Messages never hold a token, a key or a message's content. The HTTP layer maps the
whole tree to one refusal (WeChat does not read the body of an error).
"""

from __future__ import annotations


class WeChatError(Exception):
    """A request that does not come, intact and fresh, from WeChat's servers."""

    reason = "wechat"


class BadSignature(WeChatError):
    reason = "signature"


class ReplayRefused(WeChatError):
    reason = "replay"


class StaleTimestamp(ReplayRefused):
    reason = "timestamp"


class ReplayedNonce(ReplayRefused):
    reason = "nonce"


class UndecryptableMessage(WeChatError):
    reason = "decrypt"


class WrongAppId(UndecryptableMessage):
    reason = "app_id"


class MalformedMessage(WeChatError):
    reason = "xml"


class BodyTooLarge(MalformedMessage):
    reason = "size"
