"""Answering inside WeChat's 5 seconds, once per message, whichever worker a delivery
reaches.

WeChat waits 5 s for the passive reply to a message, then drops the connection and
delivers the same message again (same MsgId), three times at most (WeChat's docs,
消息管理 / 接收普通消息). A question that needs the school may take longer (every cold
query at the 2013 school did). Per message:

1. What needs no school (help, bind, a password refused...) is answered at once.
2. A question for the school is claimed in the shared record (records.py): the first
   delivery starts the query, in the background of its worker; any later delivery
   waits on the record instead of asking again.
3. Each delivery waits for the answer until `wechat.reply_within_s` (4.5 s) after it
   arrived; an answer that came by then is the passive reply.
4. Else, where the account can send customer messages (an app secret is configured):
   the reply is `pending_text` (正在查询…) and the answer, when it comes, is sent by
   the customer message API. Where it cannot: no reply is written (the connection is
   held until WeChat drops it), so that WeChat delivers the message again and the
   answer, stored by then, is the next delivery's passive reply; the fourth (WeChat's
   last) delivery gets `pending_text`, and the answer waits in the cache for the
   follower's next question.
5. Nothing is written later than 4.9 s after the delivery's first byte: work that
   overruns (a slow database, a busy loop) leaves the delivery unanswered, and
   WeChat's next one reads the record (answered: the reply; late: nothing more, the
   customer message carries it).

Exactly one of "passive reply" and "customer message" carries an answer: the query's
end and the deadline move the record with conditional updates (working -> answered,
working -> late), and only one of them can win.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, Protocol

from channels.wechat.chat import (
    Chat,
    ChatAnswer,
    NewsAnswer,
    TextAnswer,
    command_of,
    needs_school,
)
from channels.wechat.commands import Command
from channels.wechat.config import WeChatAccount, WeChatSettings
from channels.wechat.endpoint import Inbound
from channels.wechat.messages import InboundMessage
from channels.wechat.records import MessageRecords, Record
from channels.wechat.replies import error_text, pending_text
from channels.wechat.reply_xml import SUCCESS, NewsItem, news_reply, text_reply
from observability import metrics
from services import codes
from services.callers import Caller
from services.errors import RateLimited, ServiceError, StorageUnavailable

log = logging.getLogger("jnufm.wechat")

# WeChat delivers a message at most this many times (the first and three retries).
DELIVERIES: Final = 4
# How often a delivery on another worker reads the record while the query runs.
POLL_S: Final = 0.1
# A working record untouched this long lost its worker: a delivery takes it over.
STALLED_S: Final = 30.0
# WeChat stops waiting for a delivery's reply after 5 s; a held delivery is kept open
# a little longer than that (an answer that comes by LAST_WRITE_S is its reply), then
# closed without one.
HOLD_S: Final = 5.5
# No reply is written later than this after the delivery arrived: what is not done by
# then (a slow database, a busy loop) is left to WeChat's next delivery, which reads
# the record (answered: the reply; late: the customer message carries it).
LAST_WRITE_S: Final = 4.9

# The reply to a follower over `wechat.per_follower_per_min` (no question is asked).
TOO_OFTEN: Final = "你发消息太频繁了，请过一分钟再试。"

Outcome = Literal["passive", "pending", "held", "duplicate", "limited", "none"]


class LateDelivery(Protocol):
    """The customer message API (customer.py CustomerMessages)."""

    def available(self, account: WeChatAccount) -> bool: ...

    async def send_text(self, account: WeChatAccount, openid: str, content: str) -> bool: ...

    async def send_news(
        self, account: WeChatAccount, openid: str, articles: Sequence[NewsItem]
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """What a delivery is answered with: the reply's XML (not sealed yet), SUCCESS, or
    None to write nothing (WeChat delivers the message again)."""

    xml: str | None
    outcome: Outcome


class Responder:
    """Answers deliveries of follower messages for one worker."""

    def __init__(
        self,
        chat: Chat,
        records: MessageRecords,
        settings: WeChatSettings,
        late: LateDelivery | None,
        limit: Callable[[str], None] | None,
        now: Callable[[], datetime],
    ) -> None:
        self._chat = chat
        self._records = records
        self._settings = settings
        self._late = late
        # Takes one message from a follower's allowance (raises RateLimited).
        self._limit = limit
        self._now = now
        # key -> the query answering it on this worker.
        self._running: dict[str, asyncio.Task[str | None]] = {}

    async def respond(
        self, account: WeChatAccount, inbound: Inbound, caller: Caller, arrived: float
    ) -> Reply:
        """The reply to one delivery of a message that arrived at `arrived` (the event
        loop's time)."""
        loop = asyncio.get_running_loop()
        deadline = arrived + self._settings.reply_within_s
        message = inbound.message
        command = command_of(message)
        follower = self._chat.followers.follower_key(account, message.from_user)
        if not needs_school(command):
            if command is not None and not self._allowed(follower):
                return self._limited(message)
            answer = await self._chat.answer(account, message, command, caller)
            return Reply(self._xml(message, answer), "passive" if answer else "none")
        key = self._records.key(account.name, message)
        try:
            record = await self._records.claim(account.name, key)
        except StorageUnavailable:
            return await self._without_records(account, message, command, caller, deadline)
        if record is None:
            if not self._allowed(follower):
                xml = self._limited(message).xml
                assert xml is not None
                await self._records.finish(account.name, key, xml)
                return Reply(xml, "limited")
            self._start(account, message, key, caller)
            attempts = 1
        else:
            if record.state == "answered" and record.reply is not None:
                return Reply(record.reply, "duplicate")
            if record.state in ("late", "delivered", "failed"):
                # The follower was told to wait; the answer goes (or went) by customer
                # message. Nothing more to say on this delivery.
                return Reply(SUCCESS, "duplicate")
            if self._records.stalled(record, STALLED_S) and key not in self._running:
                await self._records.move(account.name, key, "working", ("working",))
                self._start(account, message, key, caller)
            attempts = record.attempts
        last = arrived + LAST_WRITE_S
        try:
            return await asyncio.wait_for(
                self._after_claim(account, message, key, deadline, last, attempts),
                max(0.0, last - loop.time()),
            )
        except TimeoutError:
            # Too late to reply inside WeChat's 5 s: its next delivery reads the record.
            return await self._hold(arrived)

    async def _after_claim(
        self,
        account: WeChatAccount,
        message: InboundMessage,
        key: str,
        deadline: float,
        last: float,
        attempts: int,
    ) -> Reply:
        found = await self._wait(account, key, deadline)
        if found is not None:
            return Reply(found, "passive")
        if self._late is not None and self._late.available(account):
            if await self._records.move(account.name, key, "late", ("working",)):
                return Reply(self._text(message, pending_text()), "pending")
            # The answer came at the very moment: it is the reply.
            again = await self._records.read(account.name, key)
            if again is not None and again.reply is not None:
                return Reply(again.reply, "passive")
            return Reply(SUCCESS, "duplicate")
        if attempts >= DELIVERIES:
            return Reply(self._text(message, pending_text()), "pending")
        # Hold: no reply, so that WeChat delivers the message again; unless the answer
        # comes before the last moment a reply can still reach WeChat.
        found = await self._wait(account, key, last)
        if found is not None:
            return Reply(found, "passive")
        raise TimeoutError

    async def _hold(self, arrived: float) -> Reply:
        """No reply: the connection held until WeChat stopped waiting for it."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, arrived + HOLD_S - loop.time()))
        return Reply(None, "held")

    async def _without_records(
        self,
        account: WeChatAccount,
        message: InboundMessage,
        command: Command | None,
        caller: Caller,
        deadline: float,
    ) -> Reply:
        """Our database is away: this delivery answers on its own (the cache in memory
        and the school may still answer), within the same deadline; a retry of it asks
        again."""
        loop = asyncio.get_running_loop()
        try:
            answer = await asyncio.wait_for(
                self._chat.answer(account, message, command, caller),
                max(0.0, deadline - loop.time()),
            )
        except TimeoutError:
            return Reply(self._text(message, pending_text()), "pending")
        return Reply(self._xml(message, answer), "passive")

    def _allowed(self, follower: str) -> bool:
        if self._limit is None:
            return True
        try:
            self._limit(follower)
        except RateLimited:
            return False
        return True

    def _limited(self, message: InboundMessage) -> Reply:
        return Reply(self._text(message, TOO_OFTEN), "limited")

    def _start(
        self, account: WeChatAccount, message: InboundMessage, key: str, caller: Caller
    ) -> None:
        task = asyncio.ensure_future(self._work(account, message, key, caller))
        self._running[key] = task
        task.add_done_callback(lambda _: self._running.pop(key, None))

    async def _work(
        self, account: WeChatAccount, message: InboundMessage, key: str, caller: Caller
    ) -> str | None:
        """Ask, keep the reply for the deliveries; deliver it by customer message if the
        follower was told to wait meanwhile. The reply's XML."""
        command = command_of(message)
        try:
            answer = await self._chat.answer(account, message, command, caller)
        except Exception:
            log.exception("a WeChat question failed unexpectedly")
            answer = TextAnswer(error_text(codes.INTERNAL_ERROR))
        xml = self._xml(message, answer) or SUCCESS
        try:
            if await self._records.finish(account.name, key, xml):
                return xml
            await self._deliver_late(account, message, key, answer)
        except ServiceError as exc:
            log.warning("a WeChat answer could not be kept: %s", type(exc).__name__)
        return xml

    async def _deliver_late(
        self, account: WeChatAccount, message: InboundMessage, key: str, answer: ChatAnswer
    ) -> None:
        late = self._late
        sent = False
        if late is not None and answer is not None:
            if isinstance(answer, NewsAnswer):
                sent = await late.send_news(account, message.from_user, answer.articles)
                if not sent:
                    sent = await late.send_text(account, message.from_user, answer.text)
            else:
                sent = await late.send_text(account, message.from_user, answer.content)
        metrics.wechat_message(account.name, "delivered" if sent else "undelivered")
        await self._records.move(account.name, key, "delivered" if sent else "failed", ("late",))

    async def _wait(self, account: WeChatAccount, key: str, until: float) -> str | None:
        """The reply if it is ready by `until` (loop time), else None."""
        loop = asyncio.get_running_loop()
        task = self._running.get(key)
        if task is not None:
            left = until - loop.time()
            if left > 0 and not task.done():
                await asyncio.wait({task}, timeout=left)
            if task.done() and not task.cancelled() and task.exception() is None:
                record = await self._records.read(account.name, key)
                return _ready(record)
            return None
        while True:
            record = await self._records.read(account.name, key)
            ready = _ready(record)
            if ready is not None or loop.time() >= until:
                return ready
            await asyncio.sleep(min(POLL_S, max(0.0, until - loop.time())))

    def _xml(self, message: InboundMessage, answer: ChatAnswer) -> str | None:
        if answer is None:
            return SUCCESS
        if isinstance(answer, NewsAnswer):
            return news_reply(message, list(answer.articles), self._now())
        return text_reply(message, answer.content, self._now())

    def _text(self, message: InboundMessage, content: str) -> str:
        return text_reply(message, content, self._now())

    async def aclose(self, grace_s: float) -> None:
        """Let running questions end (their late answers go out) for up to grace_s."""
        running = list(self._running.values())
        if running:
            await asyncio.wait(running, timeout=grace_s)


def _ready(record: Record | None) -> str | None:
    if record is not None and record.state == "answered" and record.reply is not None:
        return record.reply
    return None
