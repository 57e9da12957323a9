"""The WeChat protocol's errors: one tree, each error with a short `reason` for logs and metrics.

    WeChatError
    ├── BadSignature            signature or msg_signature missing or wrong
    ├── ReplayRefused
    │   ├── StaleTimestamp      timestamp missing, malformed or outside the window
    │   └── ReplayedNonce       this (timestamp, nonce) was already accepted
    ├── UndecryptableMessage    ciphertext not base64, not whole blocks, bad padding or length
    │   └── WrongAppId          decrypted, but addressed to another app id
    ├── MalformedMessage        not the XML of a message: unparsable, a DTD or entity,
    │   │                       a missing or invalid field
    │   └── BodyTooLarge        refused before parsing
    └── ApiUnavailable          the official-account API gave no access_token (refused
                                the app secret or this address, unreachable, no answer
                                in time) or the shared token could not be read

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


class ApiUnavailable(WeChatError):
    """No access_token can be had for the account now (our side of the API, not a request).

    `errcode`: WeChat's, when it answered one (40125 wrong app secret, 40164 address not
    whitelisted, -1 busy); None when it did not answer.
    """

    reason = "api"

    def __init__(self, message: str, errcode: int | None = None) -> None:
        super().__init__(message)
        self.errcode = errcode
