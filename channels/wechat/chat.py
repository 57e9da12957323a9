"""What jnufm answers a follower: a message read as a command (commands.py), asked of the
school systems as the bound student (services/wechat_followers.py holds the binding and
the ids of the student's tokens, never a password), written for the chat (replies.py).

Every school system is asked through its service, so every question passes the same
pipeline as the REST API's (cache, coalescing, budget, breaker, gate): the chat is one
more client of it, with the follower's token instead of a password.

    command                 asks                      as
    balance                 the card center           the card token
    transactions_*          the card center           the card token
    timetable, exams,       the academic office       the academic token (given only
    grades                                            if the student bound it)
    book_search             the library catalogue     nobody (no password)
    bind, unbind, help,     nothing at the school
    version, welcome, a
    password sent by mistake

A failure is an answer too: the catalogue's code in the chat's words (replies.failure_text),
never a traceback and never the message's text repeated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from channels.wechat import replies
from channels.wechat.commands import Command, parse_click, parse_event, parse_text
from channels.wechat.config import WeChatAccount
from channels.wechat.messages import (
    InboundMessage,
    MenuClick,
    MenuView,
    SubscribeEvent,
    TextMessage,
    UnsubscribeEvent,
)
from channels.wechat.replies import NewsArticle, Stale
from services import codes
from services.callers import Caller
from services.errors import NotConfigured, ServiceError, TokenRefused
from services.pipeline import Answer
from services.tokens import SessionGrant
from services.watches.notices import KIND_SYSTEM
from services.watches.store import WatchStore
from services.wechat_followers import Followers
from systems.academic.service import AcademicService
from systems.card.service import CardService
from systems.library.service import LibraryService, search_query
from version import version

log = logging.getLogger("jnufm.wechat")

# Commands whose answer may need a school system (the rest answer at once).
SCHOOL_COMMANDS: Final = frozenset(
    {
        "balance",
        "transactions_today",
        "transactions_recent",
        "timetable",
        "exams",
        "grades",
        "book_search",
    }
)
ACADEMIC_COMMANDS: Final = frozenset({"timetable", "exams", "grades"})


@dataclass(frozen=True, slots=True)
class TextAnswer:
    content: str


@dataclass(frozen=True, slots=True)
class NewsAnswer:
    """A news (图文) reply; `text` says the same for where a text is wanted."""

    articles: tuple[NewsArticle, ...]
    text: str


# None: nothing to say (WeChat is answered `success`).
ChatAnswer = TextAnswer | NewsAnswer | None


def command_of(message: InboundMessage) -> Command | None:
    """What a message asks; None for what needs no answer (unsubscribe, a menu link)."""
    if isinstance(message, TextMessage):
        return parse_text(message.content)
    if isinstance(message, MenuClick):
        return parse_click(message.key)
    if isinstance(message, SubscribeEvent):
        return parse_event("subscribe", message.event_key)
    if isinstance(message, UnsubscribeEvent | MenuView):
        return None
    # An image, a voice message, a location...: the help, as for a text not understood.
    if message.msg_type != "event":
        return Command("help", recognised=False)
    return None


def needs_school(command: Command | None) -> bool:
    return command is not None and command.kind in SCHOOL_COMMANDS


class Chat:
    """Answers followers' commands for one worker."""

    def __init__(
        self,
        followers: Followers,
        card: CardService | None,
        academic: AcademicService | None,
        library: LibraryService | None,
        public_url: str,
        now: Callable[[], datetime],
        watches: WatchStore | None = None,
    ) -> None:
        self.followers = followers
        self._watches = watches
        self._card = card
        self._academic = academic
        self._library = library
        self._public_url = public_url.rstrip("/")
        self._now = now

    async def answer(
        self,
        account: WeChatAccount,
        message: InboundMessage,
        command: Command | None,
        caller: Caller,
    ) -> ChatAnswer:
        """The answer to message (read as command). Never raises but for a bug."""
        if isinstance(message, UnsubscribeEvent):
            # The follower left: nothing of theirs is kept to ask with.
            await self.followers.unbind(account, message.from_user)
            return None
        if command is None:
            return None
        try:
            return await self._answer(account, message.from_user, command, caller)
        except TokenRefused as exc:
            return TextAnswer(self._token_ended_text(account, message.from_user, exc))
        except ServiceError as exc:
            return TextAnswer(replies.failure_text(exc))

    async def _answer(
        self, account: WeChatAccount, openid: str, command: Command, caller: Caller
    ) -> ChatAnswer:
        kind = command.kind
        if kind == "help":
            return TextAnswer(replies.help_text(command.recognised))
        if kind == "version":
            return TextAnswer(replies.version_text(version()))
        if kind == "welcome":
            return TextAnswer(replies.welcome_text(self.followers.bind_url(account, openid)))
        if kind == "bind":
            return TextAnswer(replies.bind_text(self.followers.bind_url(account, openid)))
        if kind == "looks_like_password":
            bind_url = self.followers.bind_url(account, openid)
            return TextAnswer(replies.password_refused_text(bind_url))
        if kind == "unbind":
            binding = await self.followers.binding(account, openid)
            ended = await self.followers.unbind(account, openid)
            if binding is not None and self._watches is not None:
                await self._watches.tokens_revoked(binding.token_ids)
            return TextAnswer(replies.unbound_text() if ended else "你还没有绑定学号。")
        if kind in ("watch", "watches", "unwatch"):
            return TextAnswer(await self._watch(account, openid, command))
        if kind == "book_prompt":
            return TextAnswer(replies.book_prompt_text())
        if kind == "book_search":
            return await self._books(command, caller)
        system = "academic" if kind in ACADEMIC_COMMANDS else "card"
        grant = await self.followers.grant(account, openid, system)
        if grant is None:
            return TextAnswer(self._unbound_text(account, openid, system))
        if system == "card":
            return TextAnswer(await self._card_text(command, grant, caller))
        return TextAnswer(await self._academic_text(command, grant, caller))

    async def _card_text(self, command: Command, grant: SessionGrant, caller: Caller) -> str:
        card = self._card
        if card is None:
            raise _not_here()
        creds = grant.credentials()
        if command.kind == "balance":
            account = await card.balance(creds, caller)
            return replies.balance_text(account.value.balance, stale=self._stale(account))
        if command.kind == "transactions_today":
            today = await card.today_transactions(creds, caller)
            return replies.transactions_text(
                today.value, replies.TODAY_TITLE, stale=self._stale(today)
            )
        days = command.days or 7
        last = card.today()
        rows = await card.transactions(creds, last - timedelta(days=days - 1), last, caller)
        return replies.transactions_text(
            rows.value, replies.recent_title(days), stale=self._stale(rows)
        )

    async def _academic_text(self, command: Command, grant: SessionGrant, caller: Caller) -> str:
        academic = self._academic
        if academic is None:
            raise _not_here()
        creds = grant.credentials()
        term = academic.term(None, None)
        if command.kind == "timetable":
            timetable = await academic.timetable(creds, term, caller)
            return replies.timetable_text(
                timetable.value,
                command.day or "week",
                academic.today(),
                academic.calendar,
                stale=self._stale(timetable),
            )
        if command.kind == "exams":
            exams = await academic.exams(creds, term, caller)
            return replies.exams_text(exams.value, self._now(), stale=self._stale(exams))
        grades = await academic.grades(creds, term, caller)
        return replies.grades_text(
            grades.value, gpa=academic.gpa(grades.value), stale=self._stale(grades)
        )

    async def _books(self, command: Command, caller: Caller) -> ChatAnswer:
        library = self._library
        if library is None:
            raise _not_here()
        query = search_query(command.query)
        found = await library.search("main", query, 1, False, caller)
        books = found.value.books
        if not books:
            return TextAnswer(replies.no_books_text(query))
        # One article: WeChat shows one in a reply to a follower's message, passive or
        # customer (its rule since 2018; the simulated API refuses more, 45008). The
        # best hit links to its page; the text form lists the first five.
        articles = replies.books_news(books, self._public_url, limit=1)
        total = found.value.total
        if total is not None and total > 1:
            first = articles[0]
            more = f"（共 {total} 条结果，这是第一条）"
            articles = [replace(first, description=(more + first.description)[:120])]
        text = replies.books_text(books[:5], query, total, self._public_url)
        return NewsAnswer(tuple(articles), text)

    async def _watch(self, account: WeChatAccount, openid: str, command: Command) -> str:
        """Watches made, listed and cancelled in the chat: their messages come to this
        follower by customer message (services/watches/, channels/wechat/notify.py)."""
        store = self._watches
        if store is None:
            return "提醒功能暂未开通。"
        target = f"{account.name}\n{openid}"
        if command.kind == "watch":
            kind = command.watch or ""
            system = next((s for k, s in KIND_SYSTEM.items() if k == kind), "card")
            grant = await self.followers.grant(account, openid, system)
            if grant is None:
                return self._unbound_text(account, openid, system)
            param = command.param or WATCH_DEFAULTS.get(kind, "")
            view = await store.create_for_follower(grant, kind, param, account.name, openid)
            return replies.fit(
                f"已开启{watch_label(view.kind, view.param)}。\n"
                "发送“提醒”查看，“取消提醒”全部关闭。"
            )
        mine = []
        for system in ("card", "academic"):
            grant = await self.followers.grant(account, openid, system)
            if grant is None:
                continue
            for view in await store.listed(grant.student_id, system):
                if view.channel == "wechat" and view.target == target:
                    mine.append((grant.student_id, system, view))
        if command.kind == "watches":
            if not mine:
                return "你还没有开启提醒。" + WATCH_HINT
            lines = ["你开启的提醒："]
            lines += [f"{n}. {watch_label(v.kind, v.param)}" for n, (_, _, v) in enumerate(mine, 1)]
            lines.append("发送“取消提醒”全部关闭。")
            return replies.fit("\n".join(lines))
        for student_id, system, view in mine:
            await store.delete(student_id, system, view.id)
        return f"已取消 {len(mine)} 个提醒。" if mine else "你还没有开启提醒。"

    def _stale(self, answer: Answer[Any]) -> Stale | None:
        return Stale(answer.as_of, self._now()) if answer.stale else None

    def _unbound_text(self, account: WeChatAccount, openid: str, system: str) -> str:
        bind_url = self.followers.bind_url(account, openid)
        return (
            replies.not_bound_text(bind_url)
            if system == "card"
            else replies.fit(
                "绑定时没有填写教务处密码，查不了课表、考试和成绩。\n"
                f"请在这个网页上重新绑定，并填写教务处密码：{bind_url}"
            )
        )

    def _token_ended_text(self, account: WeChatAccount, openid: str, exc: TokenRefused) -> str:
        bind_url = self.followers.bind_url(account, openid)
        if exc.error.code == codes.PASSWORD_CHANGED.code:
            lead = "你在学校修改过密码，原来的绑定已失效"
        elif exc.error.code == codes.TOKEN_EXPIRED.code:
            lead = "绑定太久没有使用，已经失效"
        else:
            lead = "绑定已被解除"
        return replies.fit(f"{lead}。请在这个网页上重新绑定：{bind_url}")


WATCH_HINT: Final = "可以发送：消费提醒、余额提醒 20、成绩提醒、考试提醒、调课提醒。"
# A watch asked for in chat without its parameter: a balance under 20 yuan, an exam
# within 24 hours.
WATCH_DEFAULTS: Final[dict[str, str]] = {"low_balance": "20", "exam_soon": "24"}


def watch_label(kind: str, param: str) -> str:
    """A watch in the chat's words: "余额提醒（余额低于 20.00 元时告诉你）"."""
    if kind == "card_transaction":
        return "消费提醒（校园卡每有一笔新消费就告诉你）"
    if kind == "low_balance":
        return f"余额提醒（余额低于 {param} 元时告诉你）"
    if kind == "grade":
        return "成绩提醒（有新成绩或成绩变动时告诉你）"
    if kind == "exam_soon":
        return f"考试提醒（考试前 {param} 小时告诉你）"
    return "调课提醒（课表有变动时告诉你）"


def _not_here() -> ServiceError:
    return NotConfigured("this school system is not configured here")
