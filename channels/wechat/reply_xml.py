"""Passive replies on the wire: text, news (图文) and the empty `success`, as WeChat reads them.

A reply goes back to whoever sent the message: its ToUserName is the message's
FromUserName and the other way round. What the replies say is written elsewhere
(replies.py); this module only puts it into WeChat's XML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from channels.wechat.messages import Message
from channels.wechat.wire import document, element

# "No reply": WeChat shows the follower nothing and does not retry. Sent as it is in
# every mode (WeChat asks for the bare string, never encrypted).
SUCCESS = "success"
# WeChat's limit for a news reply. (It shows only the first article of a passive reply
# to a follower's message; up to 8 elsewhere, e.g. on a menu click.)
MAX_ARTICLES = 8


class NewsItem(Protocol):
    """What a news reply needs of an article (replies.NewsArticle, Article)."""

    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def pic_url(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Article:
    """One article of a news reply, as read back from the wire."""

    title: str
    description: str = ""
    url: str = ""
    pic_url: str = ""


def text_reply(to: Message, content: str, created: datetime) -> str:
    """A text reply to message `to`."""
    return _reply(to, created, "text", [element("Content", content)])


def news_reply(to: Message, articles: Sequence[NewsItem], created: datetime) -> str:
    """A news reply of 1 to MAX_ARTICLES articles to message `to`.

    Raises ValueError for none or too many.
    """
    if not 1 <= len(articles) <= MAX_ARTICLES:
        raise ValueError(f"a news reply holds 1 to {MAX_ARTICLES} articles, not {len(articles)}")
    items = "".join(
        "<item>"
        + element("Title", article.title)
        + element("Description", article.description)
        + element("PicUrl", article.pic_url)
        + element("Url", article.url)
        + "</item>"
        for article in articles
    )
    return _reply(
        to,
        created,
        "news",
        [element("ArticleCount", len(articles)), f"<Articles>{items}</Articles>"],
    )


def _reply(to: Message, created: datetime, msg_type: str, body: list[str]) -> str:
    head = [
        element("ToUserName", to.from_user),
        element("FromUserName", to.to_user),
        element("CreateTime", int(created.timestamp())),
        element("MsgType", msg_type),
    ]
    return document(head + body).decode("utf-8")
