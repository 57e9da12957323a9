"""The card center's questions: balance, profile, today's and past transactions.

The card center is one school system on the shared pipeline
(services/pipeline/): this module says what it asks of it (the account
page, today's list, a history range), how fresh each answer must be, and how
a campus date range maps onto the card center's own calendar, whose clock
runs `school.card.clock_offset_minutes` behind ours.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from services import codes
from services.breaker import CircuitBreaker
from services.callers import Caller
from services.campus import CHINA, campus_today
from services.credentials import Credentials
from services.errors import BadInput
from services.pipeline import Answer, Pipeline, Query, Question, combined, utc_now
from services.pipeline.ready import ReadyHit
from services.storage import Codec
from settings import Settings
from systems.card.client import CardCenterClient
from systems.card.config import CardCenterConfig
from systems.card.models import AccountInfo, CardSession, Transaction

SYSTEM = "card"
# Card data before this day cannot exist (the card center went live later).
EARLIEST = date(2000, 1, 1)

ACCOUNT: Codec[AccountInfo] = Codec(AccountInfo)
TRANSACTIONS: Codec[list[Transaction]] = Codec(list[Transaction])


class CardService:
    """Answers card queries for one worker process."""

    def __init__(
        self,
        client: CardCenterClient,
        pipeline: Pipeline[CardSession],
        settings: Settings,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self.pipeline = pipeline
        self._settings = settings
        self._config = settings.school.section("card", CardCenterConfig)
        self._now = now
        # The balance's question without `fresh`: the one a kept answer answers.
        self._balance_question = self._account(self._config.fresh_s.balance, False)

    @property
    def breaker(self) -> CircuitBreaker:
        """The card center's circuit breaker (its `state` is shown by /readyz)."""
        return self.pipeline.breaker

    def today(self) -> date:
        """Today's date on the campus (China time)."""
        return campus_today(self._now())

    def school_today(self) -> date:
        """Today in the card center's calendar (its clock runs `clock_offset` behind)."""
        offset = self._config.clock_offset
        return (self._now().astimezone(CHINA) - offset).date()

    # Queries -----------------------------------------------------------------------------

    async def balance(
        self, creds: Credentials, caller: Caller, fresh: bool = False
    ) -> Answer[AccountInfo]:
        """The account page, fresh enough for a balance."""
        max_age = self._config.fresh_s.balance
        async with self.pipeline.query(creds, caller) as q:
            return await q.answer(self._account(max_age, fresh))

    def ready_balance(
        self, route: str, creds: Credentials, caller: Caller, fresh: bool = False
    ) -> ReadyHit | None:
        """The body kept for this route's last balance answer of the student, if it
        answers this request now (services/pipeline/ready.py), else None: ask `balance`."""
        if fresh:
            return None  # fresh data asked for: the whole way decides
        return self.pipeline.ready(route, creds, caller, self._balance_question)

    def keep_balance(
        self, route: str, creds: Credentials, answer: Answer[AccountInfo], body: bytes
    ) -> None:
        """Keep the body written for a balance answer (for `ready_balance`)."""
        self.pipeline.keep(route, creds.student_id, self._balance_question, answer, body)

    async def profile(
        self, creds: Credentials, caller: Caller, fresh: bool = False
    ) -> Answer[AccountInfo]:
        """The account page, fresh enough for name, card number, department."""
        max_age = self._config.fresh_s.profile
        async with self.pipeline.query(creds, caller) as q:
            return await q.answer(self._account(max_age, fresh))

    async def today_transactions(
        self, creds: Credentials, caller: Caller, fresh: bool = False
    ) -> Answer[list[Transaction]]:
        """Today's transactions (the card center's today), newest first."""
        async with self.pipeline.query(creds, caller) as q:
            return await q.answer(self._today(fresh))

    async def transactions(
        self,
        creds: Credentials,
        start: date,
        end: date,
        caller: Caller,
        fresh: bool = False,
    ) -> Answer[list[Transaction]]:
        """Transactions whose (clock-corrected) campus date is from start to end inclusive.

        The card center's calendar runs `clock_offset` behind ours, so the days
        asked of it are shifted, and its rows filtered by their corrected time.
        Raises BadInput for a range that cannot be a real question, before anything else.
        """
        start, end = self.check_range(start, end)
        offset = self._config.clock_offset
        first = (datetime.combine(start, datetime.min.time()) - offset).date()
        last = (datetime.combine(end, datetime.max.time()) - offset).date()

        async with self.pipeline.query(creds, caller) as q:
            shown = await self._school_days(q, first, last, fresh)
        rows = [r for r in shown.value if start <= r.time.astimezone(CHINA).date() <= end]
        return Answer(rows, shown.as_of, shown.source, shown.stale, shown.cache_status)

    async def recent_days(
        self, creds: Credentials, days: int, caller: Caller, fresh: bool = False
    ) -> Answer[list[Transaction]]:
        """The card center's today and the `days` days before it, in its own calendar (as
        the 2013 `/card/month` asked: today-7 .. today)."""
        school_today = self.school_today()
        first = school_today - timedelta(days=days)
        async with self.pipeline.query(creds, caller) as q:
            return await self._school_days(q, first, school_today, fresh)

    def check_range(self, start: date, end: date) -> tuple[date, date]:
        """The range to ask for. Raises BadInput for a reversed, too early, future or too
        long range. `end` may be tomorrow (a client a few hours ahead of campus time)."""
        today = self.today()
        if start < EARLIEST or end < EARLIEST:
            raise BadInput(codes.INVALID_RANGE, f"dates must not be before {EARLIEST.isoformat()}")
        if start > end:
            raise BadInput(codes.INVALID_RANGE, "start must not be after end")
        if end > today + timedelta(days=1):
            raise BadInput(codes.INVALID_RANGE, "end must not be after tomorrow (campus time)")
        end = min(end, today)
        start = min(start, end)
        days = self._settings.api.history_max_days
        if (end - start).days + 1 > days:
            raise BadInput(codes.INVALID_RANGE, f"a range may cover at most {days} days")
        return start, end

    # Questions -------------------------------------------------------------------------------

    def _account(self, max_age_s: float, fresh: bool) -> Question[AccountInfo, CardSession]:
        return Question(
            "account",
            "",
            max_age_s,
            self._client.account,
            ACCOUNT,
            fresh,
            name_of=lambda info: info.name,
        )

    def _today(self, fresh: bool) -> Question[list[Transaction], CardSession]:
        max_age = self._config.fresh_s.today
        return Question("today", "", max_age, self._client.today, TRANSACTIONS, fresh)

    async def _school_days(
        self, q: Query[CardSession], first: date, last: date, fresh: bool
    ) -> Answer[list[Transaction]]:
        """The rows of the card center's days first..last (its calendar): its today page if
        last is its today, and its history for the days before."""
        school_today = self.school_today()
        last = min(last, school_today)
        parts: list[Answer[list[Transaction]]] = []
        if last >= school_today:
            parts.append(await q.answer(self._today(fresh)))
        if first < school_today:
            until = min(last, school_today - timedelta(days=1))

            async def fetch(session: CardSession) -> list[Transaction]:
                return await self._client.history(session, first, until)

            ttl = self._config.fresh_s.history
            params = f"{first:%Y%m%d}-{until:%Y%m%d}"
            history: Question[list[Transaction], CardSession] = Question(
                "history", params, ttl, fetch, TRANSACTIONS, fresh
            )
            parts.append(await q.answer(history))
        return combined(parts)
