"""WeChat's side of the protocol, for tests and the simulator: a follower's messages as
WeChat's servers would POST them (signed, and encrypted per the account's mode), and the
account's replies checked and opened as WeChat would."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from channels.wechat.cipher import MessageCipher
from channels.wechat.config import WeChatAccount
from channels.wechat.errors import BadSignature, MalformedMessage
from channels.wechat.reply_xml import SUCCESS, Article
from channels.wechat.signature import sign, signature_matches
from channels.wechat.wire import (
    DEFAULT_MAX_BODY_BYTES,
    document,
    element,
    fields_of,
    parse_document,
)


@dataclass(frozen=True, slots=True)
class SignedPost:
    """A request as WeChat sends it: the callback URL's query and the POST body."""

    query: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class OpenedReply:
    """A passive reply as the follower would see it (content for text, articles for news)."""

    to_user: str
    from_user: str
    created: datetime
    msg_type: str
    content: str = ""
    articles: tuple[Article, ...] = ()


class SimulatedPlatform:
    """WeChat's servers for one official account (its app id, original id, secrets)."""

    def __init__(
        self,
        account: WeChatAccount,
        original_id: str = "gh_0123456789ab",
        clock: Callable[[], float] = time.time,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.account = account
        self.original_id = original_id
        self._token = account.token.get_secret_value()
        self._clock = clock
        self._random_bytes = random_bytes
        aes = account.encoding_aes_key
        self._cipher = (
            None
            if aes is None or account.mode == "plain"
            else MessageCipher(aes.get_secret_value(), account.app_id, random_bytes)
        )

    def url_check(
        self, echostr: str, timestamp: int | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The query of WeChat's URL verification (a GET)."""
        query = self._signed_query(timestamp, nonce)
        query["echostr"] = echostr
        return query

    def text(
        self,
        openid: str,
        content: str,
        msg_id: int | None = None,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> SignedPost:
        """A follower's text message (timestamp, nonce: fixed instead of now and random)."""
        if msg_id is None:
            msg_id = int.from_bytes(self._random_bytes(8), "big") >> 1
        fields: dict[str, str | int] = {"MsgType": "text", "Content": content, "MsgId": msg_id}
        return self.post(openid, fields, timestamp, nonce)

    def event(
        self,
        openid: str,
        event: str,
        key: str = "",
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> SignedPost:
        """An event: subscribe, unsubscribe, CLICK (key: the button's), VIEW (key: the URL)."""
        fields: dict[str, str | int] = {"MsgType": "event", "Event": event}
        if key or event.upper() in ("CLICK", "VIEW"):
            fields["EventKey"] = key
        return self.post(openid, fields, timestamp, nonce)

    def post(
        self,
        openid: str,
        fields: Mapping[str, str | int],
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> SignedPost:
        """Any message from openid: its fields after ToUserName, FromUserName, CreateTime."""
        query = self._signed_query(timestamp, nonce)
        query["openid"] = openid
        parts = [
            element("ToUserName", self.original_id),
            element("FromUserName", openid),
            element("CreateTime", int(query["timestamp"])),
            *(element(name, value) for name, value in fields.items()),
        ]
        plain = document(parts)
        if self._cipher is None:
            return SignedPost(query, plain)
        encrypted = self._cipher.encrypt(plain)
        query["encrypt_type"] = "aes"
        query["msg_signature"] = sign(self._token, query["timestamp"], query["nonce"], encrypted)
        envelope = parts if self.account.mode == "compatible" else parts[:1]
        return SignedPost(query, document([*envelope, element("Encrypt", encrypted)]))

    def open_reply(self, body: bytes) -> OpenedReply | None:
        """The reply in body, None for `success` or an empty body.

        Raises BadSignature or MalformedMessage where WeChat would not show it (in safe
        mode, a reply that is not encrypted), UndecryptableMessage if it cannot be opened.
        """
        if body.strip() in (b"", SUCCESS.encode("ascii")):
            return None
        root = parse_document(body, DEFAULT_MAX_BODY_BYTES)
        outer = fields_of(root)
        if "Encrypt" in outer:
            if self._cipher is None:
                raise MalformedMessage("an encrypted reply to a plain-mode account")
            if not signature_matches(
                outer.get("MsgSignature", ""),
                self._token,
                outer.get("TimeStamp", ""),
                outer.get("Nonce", ""),
                outer["Encrypt"],
            ):
                raise BadSignature("the reply's signature does not match")
            root = parse_document(self._cipher.decrypt(outer["Encrypt"]), DEFAULT_MAX_BODY_BYTES)
        elif self.account.mode == "safe":
            raise MalformedMessage("a plaintext reply in safe mode")
        fields = fields_of(root)
        try:
            created = datetime.fromtimestamp(int(fields["CreateTime"]), UTC)
            articles = tuple(
                Article(
                    title=item["Title"],
                    description=item["Description"],
                    url=item["Url"],
                    pic_url=item["PicUrl"],
                )
                for item in (fields_of(found) for found in root.iterfind("Articles/item"))
            )
            return OpenedReply(
                to_user=fields["ToUserName"],
                from_user=fields["FromUserName"],
                created=created,
                msg_type=fields["MsgType"],
                content=fields.get("Content", ""),
                articles=articles,
            )
        except (KeyError, ValueError, OverflowError):
            raise MalformedMessage("the reply lacks a field WeChat needs") from None

    def _signed_query(self, timestamp: int | None, nonce: str | None) -> dict[str, str]:
        stamp = str(int(self._clock()) if timestamp is None else timestamp)
        if nonce is None:
            nonce = str(int.from_bytes(self._random_bytes(4), "big"))
        return {"signature": sign(self._token, stamp, nonce), "timestamp": stamp, "nonce": nonce}
