"""A follower's messages delivered to an account's callback URL as WeChat's servers deliver
them, and the customer messages the simulated API received for a follower.

WeChat's docs (接收普通消息, 被动回复用户消息): the account's server must answer within
5 s; without an answer WeChat drops the connection and sends the same message again
(the same MsgId), three times at most. A 200 answer of `success` or nothing means no
reply; any other answer is the passive reply, which WeChat refuses to show (the
follower sees "该公众号暂时无法提供服务") when it cannot read it, e.g. a plaintext reply
in safe mode.

For the benchmark and the tests: `WeChatDelivery` (one per account) for the callback
URL, `customer_messages` and `wait_for_customer_messages` for what the simulated API
(schoolsim/wechat/api.py) received.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from channels.wechat.errors import WeChatError
from channels.wechat.reply_xml import Article
from channels.wechat.simulated_platform import OpenedReply, SignedPost, SimulatedPlatform


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a message: the answer's status (None: no answer within the timeout,
    or the connection failed), how long it took, the body."""

    status: int | None
    elapsed_s: float
    body: bytes


@dataclass(frozen=True, slots=True)
class Exchange:
    """A message delivered: every attempt, and the passive reply WeChat would show.

    `refused`: why WeChat would not show the reply the account answered (its body was
    not a reply WeChat can read); "" when it could, or when no answer came.
    """

    msg_id: int | None
    attempts: tuple[Attempt, ...]
    reply: OpenedReply | None
    refused: str = ""

    @property
    def answered(self) -> bool:
        """An attempt was answered 200, so WeChat stopped delivering the message."""
        return bool(self.attempts) and self.attempts[-1].status == 200

    @property
    def answered_passively(self) -> bool:
        """The follower saw a passive reply (not `success`, not nothing, not refused)."""
        return self.reply is not None


class WeChatDelivery:
    """WeChat's servers delivering followers' messages to one account's callback URL.

    Each attempt is a POST of the same message (the same MsgId), signed again with a
    fresh nonce: that a retry carries a new nonce is our reading of the docs, a guess
    (they say only that the message is sent again). A text's retry also has a fresh
    timestamp (its CreateTime goes with it: SimulatedPlatform writes the query's
    timestamp there); an event keeps its first timestamp, because an event has no MsgId
    and the account tells its retries apart by FromUserName and CreateTime, as WeChat's
    docs say. An attempt without an answer within `timeout_s` is abandoned (the
    connection closed) and the next sent at once, `retries` times at most; so is one
    answered with another status than 200.

    `simulator_url`: the simulator's base URL; when given, the simulated API is told
    that the follower wrote (its 48 h window and count of messages start again).
    """

    def __init__(
        self,
        platform: SimulatedPlatform,
        callback_url: str,
        http: httpx.AsyncClient,
        timeout_s: float = 5.0,
        retries: int = 3,
        simulator_url: str | None = None,
    ) -> None:
        self.platform = platform
        self.callback_url = callback_url
        self._http = http
        self._timeout_s = timeout_s
        self._retries = retries
        self._simulator_url = simulator_url.rstrip("/") if simulator_url else None

    async def say(self, openid: str, text: str) -> Exchange:
        """The follower sends a text message."""
        msg_id = int.from_bytes(secrets.token_bytes(8), "big") >> 1
        await self._wrote(openid)

        def post() -> SignedPost:
            return self.platform.text(openid, text, msg_id=msg_id, nonce=_nonce())

        return await self._deliver(msg_id, post)

    async def event(self, openid: str, event: str, key: str = "") -> Exchange:
        """The follower causes an event: subscribe, unsubscribe, CLICK (key: the
        button's), VIEW (key: the URL)."""
        await self._wrote(openid)
        first = self.platform.event(openid, event, key, nonce=_nonce())
        timestamp = int(first.query["timestamp"])
        made = 0

        def post() -> SignedPost:
            nonlocal made
            made += 1
            if made == 1:
                return first
            return self.platform.event(openid, event, key, timestamp=timestamp, nonce=_nonce())

        return await self._deliver(None, post)

    async def verify_url(self, echostr: str) -> bool:
        """WeChat's URL check (a signed GET): whether the account answered the echostr."""
        query = self.platform.url_check(echostr, nonce=_nonce())
        try:
            response = await asyncio.wait_for(
                self._http.get(self.callback_url, params=query), self._timeout_s
            )
        except (TimeoutError, httpx.HTTPError):
            return False
        return response.status_code == 200 and response.content == echostr.encode()

    async def _deliver(self, msg_id: int | None, post: Callable[[], SignedPost]) -> Exchange:
        loop = asyncio.get_running_loop()
        attempts: list[Attempt] = []
        for _ in range(1 + self._retries):
            signed = post()
            started = loop.time()
            try:
                response = await asyncio.wait_for(
                    self._http.post(
                        self.callback_url,
                        params=signed.query,
                        content=signed.body,
                        headers={"Content-Type": "text/xml"},
                    ),
                    self._timeout_s,
                )
            except (TimeoutError, httpx.HTTPError):
                attempts.append(Attempt(None, loop.time() - started, b""))
                continue
            attempts.append(Attempt(response.status_code, loop.time() - started, response.content))
            if response.status_code != 200:
                continue
            try:
                reply = self.platform.open_reply(response.content)
            except WeChatError as exc:
                return Exchange(msg_id, tuple(attempts), None, f"{type(exc).__name__}: {exc}")
            return Exchange(msg_id, tuple(attempts), reply)
        return Exchange(msg_id, tuple(attempts), None)

    async def _wrote(self, openid: str) -> None:
        if self._simulator_url is None:
            return
        response = await self._http.post(
            f"{self._simulator_url}/__sim/wechat/followers/wrote",
            json={"app_id": self.platform.account.app_id, "openid": openid},
        )
        response.raise_for_status()


def _nonce() -> str:
    return str(secrets.randbelow(10**10))


# --- what the simulated API received ------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerMessage:
    """A customer message the simulated API accepted (text: `content`; news: `articles`)."""

    seq: int
    app_id: str
    touser: str
    msgtype: str
    at: datetime
    content: str = ""
    articles: tuple[Article, ...] = ()


def _customer_message(data: dict[str, Any]) -> CustomerMessage:
    msgtype = str(data["msgtype"])
    content = ""
    articles: tuple[Article, ...] = ()
    if msgtype == "text":
        content = str(data["text"]["content"])
    elif msgtype == "news":
        articles = tuple(
            Article(
                title=str(a.get("title", "")),
                description=str(a.get("description", "")),
                url=str(a.get("url", "")),
                pic_url=str(a.get("picurl", "")),
            )
            for a in data["news"]["articles"]
        )
    return CustomerMessage(
        seq=int(data["seq"]),
        app_id=str(data["app_id"]),
        touser=str(data["touser"]),
        msgtype=msgtype,
        at=datetime.fromisoformat(str(data["at"])),
        content=content,
        articles=articles,
    )


async def customer_messages(
    http: httpx.AsyncClient, simulator_url: str, openid: str, app_id: str = ""
) -> list[CustomerMessage]:
    """The customer messages the simulated API accepted for a follower, oldest first."""
    params = {"touser": openid, **({"app_id": app_id} if app_id else {})}
    response = await http.get(f"{simulator_url.rstrip('/')}/__sim/wechat/messages", params=params)
    response.raise_for_status()
    return [_customer_message(m) for m in response.json()["messages"]]


async def wait_for_customer_messages(
    http: httpx.AsyncClient,
    simulator_url: str,
    openid: str,
    count: int = 1,
    within_s: float = 10.0,
    app_id: str = "",
) -> list[CustomerMessage]:
    """The follower's customer messages once there are at least `count`.

    Raises TimeoutError if fewer came within `within_s`.
    """
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within_s
    step = 0.02
    while True:
        found = await customer_messages(http, simulator_url, openid, app_id)
        if len(found) >= count:
            return found
        if loop.time() >= give_up:
            raise TimeoutError(f"{len(found)} customer messages within {within_s}s, not {count}")
        await asyncio.sleep(min(step, max(0.0, give_up - loop.time())))
        step = min(step * 2, 0.25)
