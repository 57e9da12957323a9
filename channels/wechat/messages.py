"""What a follower sent, typed: text, the events jnufm answers, and the rest as unsupported.

Fields as WeChat names them: ToUserName (the account's original id, gh_...),
FromUserName (the follower's openid), CreateTime (Unix seconds), MsgType, and per type
Content and MsgId (text), Event and EventKey (events).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from channels.wechat.errors import MalformedMessage

# Openids are 28 characters of this alphabet; original ids gh_ and 12 hex digits.
_USER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SECONDS = re.compile(r"[0-9]{1,12}")
_MSG_ID = re.compile(r"[0-9]{1,20}")
_NAME = re.compile(r"[A-Za-z_]{1,32}")
_MAX_MSG_ID = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Message:
    """What every message carries."""

    to_user: str
    from_user: str
    created: datetime


@dataclass(frozen=True, slots=True)
class TextMessage(Message):
    msg_id: int
    content: str


@dataclass(frozen=True, slots=True)
class SubscribeEvent(Message):
    """A follow; event_key is `qrscene_...` when it came through a QR code, else ""."""

    event_key: str


@dataclass(frozen=True, slots=True)
class UnsubscribeEvent(Message):
    pass


@dataclass(frozen=True, slots=True)
class MenuClick(Message):
    """A click on a custom menu's button of type click: its key."""

    key: str


@dataclass(frozen=True, slots=True)
class MenuView(Message):
    """A click on a custom menu's link: the URL opened."""

    url: str


@dataclass(frozen=True, slots=True)
class UnsupportedMessage(Message):
    """Any other message (image, voice, location...) or event; msg_id when it has one."""

    msg_type: str
    event: str
    msg_id: int | None


InboundMessage = (
    TextMessage | SubscribeEvent | UnsubscribeEvent | MenuClick | MenuView | UnsupportedMessage
)


def parse_message(fields: Mapping[str, str]) -> InboundMessage:
    """The typed message of a decrypted message's fields.

    Raises MalformedMessage if a field the type needs is missing or invalid.
    """
    to_user = _user_name(fields, "ToUserName")
    from_user = _user_name(fields, "FromUserName")
    try:
        created = datetime.fromtimestamp(int(_matching(fields, "CreateTime", _SECONDS)), UTC)
    except (ValueError, OverflowError, OSError):
        raise MalformedMessage("<CreateTime> is out of range") from None
    msg_type = _matching(fields, "MsgType", _NAME).lower()
    if msg_type == "text":
        content = fields.get("Content")
        if content is None:
            raise MalformedMessage("a text message without <Content>")
        return TextMessage(to_user, from_user, created, _msg_id(fields), content)
    if msg_type != "event":
        msg_id = _msg_id(fields) if "MsgId" in fields else None
        return UnsupportedMessage(to_user, from_user, created, msg_type, "", msg_id)
    event = _matching(fields, "Event", _NAME)
    key = fields.get("EventKey", "")
    match event.lower():
        case "subscribe":
            return SubscribeEvent(to_user, from_user, created, key)
        case "unsubscribe":
            return UnsubscribeEvent(to_user, from_user, created)
        case "click":
            return MenuClick(to_user, from_user, created, key)
        case "view":
            return MenuView(to_user, from_user, created, key)
        case _:
            return UnsupportedMessage(to_user, from_user, created, "event", event, None)


def _matching(fields: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    value = fields.get(name, "").strip()
    if not pattern.fullmatch(value):
        raise MalformedMessage(f"<{name}> is missing or invalid")
    return value


def _user_name(fields: Mapping[str, str], name: str) -> str:
    return _matching(fields, name, _USER_NAME)


def _msg_id(fields: Mapping[str, str]) -> int:
    msg_id = int(_matching(fields, "MsgId", _MSG_ID))
    if msg_id > _MAX_MSG_ID:
        raise MalformedMessage("<MsgId> is out of range")
    return msg_id
