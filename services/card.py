"""Card queries: log in at the card center, fetch, record the result, answer typed data."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Generic, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from school.card import CardCenterClient
from school.models import AccountInfo, CardSession, Transaction
from services.credentials import Credentials, make_verifier
from services.errors import BadInput
from services.payloads import encode_account, encode_transactions

log = logging.getLogger("jnufm.card")

CHINA = timezone(timedelta(hours=8), "CST")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """A result with when the school produced it and where it came from."""

    value: T
    as_of: datetime
    source: str = "school"


def utc_now() -> datetime:
    return datetime.now(UTC)


class CardService:
    """Answers card queries for one worker process."""

    def __init__(
        self,
        client: CardCenterClient,
        sessions: async_sessionmaker[AsyncSession],
        secret_key: bytes,
        history_max_days: int,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._secret_key = secret_key
        self._history_max_days = history_max_days
        self._now = now

    def today(self) -> date:
        """Today's date on the campus (China time)."""
        return self._now().astimezone(CHINA).date()

    async def account(self, creds: Credentials) -> Answer[AccountInfo]:
        """The account page: balance, name, card number. Raises school.errors.*."""
        session = await self._client.login(creds.student_id, creds.password)
        info = await self._client.account(session)
        fetched_at = self._now()
        await self._record(creds, info.name, "account", "", encode_account(info), fetched_at)
        return Answer(info, fetched_at)

    async def today_transactions(self, creds: Credentials) -> Answer[list[Transaction]]:
        """Today's transactions, newest first."""
        session = await self._client.login(creds.student_id, creds.password)
        rows = await self._client.today(session)
        fetched_at = self._now()
        await self._record(creds, None, "today", "", encode_transactions(rows), fetched_at)
        return Answer(rows, fetched_at)

    async def transactions(
        self, creds: Credentials, start: date, end: date
    ) -> Answer[list[Transaction]]:
        """Transactions from start to end inclusive (history, plus today's list if included)."""
        today = self.today()
        self.check_range(start, end)
        session = await self._client.login(creds.student_id, creds.password)
        rows: list[Transaction] = []
        if end >= today:
            rows.extend(await self._fetch_today(creds, session))
        if start < today:
            rows.extend(
                await self._fetch_history(
                    creds, session, start, min(end, today - timedelta(days=1))
                )
            )
        return Answer(rows, self._now())

    def check_range(self, start: date, end: date) -> None:
        """Raises BadInput for a reversed, future or too long range."""
        if start > end:
            raise BadInput("invalid_range", "start must not be after end")
        if end > self.today():
            raise BadInput("invalid_range", "end must not be in the future (campus time)")
        if (end - start).days + 1 > self._history_max_days:
            raise BadInput(
                "invalid_range", f"a range may cover at most {self._history_max_days} days"
            )

    async def _fetch_today(self, creds: Credentials, session: CardSession) -> list[Transaction]:
        rows = await self._client.today(session)
        await self._record(creds, None, "today", "", encode_transactions(rows), self._now())
        return rows

    async def _fetch_history(
        self, creds: Credentials, session: CardSession, start: date, end: date
    ) -> list[Transaction]:
        rows = await self._client.history(session, start, end)
        params = f"{start:%Y%m%d}-{end:%Y%m%d}"
        await self._record(creds, None, "history", params, encode_transactions(rows), self._now())
        return rows

    async def _record(
        self,
        creds: Credentials,
        name: str | None,
        kind: str,
        params: str,
        payload: str,
        fetched_at: datetime,
    ) -> None:
        """Store the student's verifier and the result in one transaction (all or nothing).

        A storage failure is logged, not raised: the student still gets the
        answer the school just gave.
        """
        verifier = make_verifier(self._secret_key, creds)
        try:
            async with self._sessions.begin() as db:
                pk = await queries.upsert_student(db, creds.student_id, verifier, name, fetched_at)
                await queries.save_card_result(db, pk, kind, params, payload, fetched_at)
        except SQLAlchemyError as exc:
            log.warning("could not record %s result for a student: %s", kind, type(exc).__name__)
