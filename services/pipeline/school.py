"""The pipeline's school stage: one fetch within one budget slot, through the breaker,
with the stored session or a login, retried within the retry budget; its result stored.

    quota (who asks) -> budget slot -> breaker -> session (stored, or a login) -> read
    -> store the result and the session
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from school import capture
from school.capture import PageTrail
from school.errors import (
    AnswerRefused,
    InvalidCredentials,
    SchoolConnectionError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SchoolUnavailable,
    SessionExpired,
)
from services.breaker import BreakerCall, CircuitBreaker
from services.budget import BudgetExhausted, UpstreamBudget
from services.cache import CacheEntry, CacheKey, estimated_size
from services.callers import Caller
from services.captures import PageCaptures, page_kind
from services.pipeline.deadlines import Deadlines
from services.pipeline.model import Connector, Question, SystemSpec
from services.pipeline.tickets import Ticket
from services.rates import RequestRateLimiter
from services.retry import RetryBudget, backoff_s
from services.storage import SessionToKeep, Storage

log = logging.getLogger("jnufm.pipeline")

T = TypeVar("T")
S = TypeVar("S")
S_co = TypeVar("S_co", covariant=True)


class Retrying:
    """Idempotent school requests retried on a broken connection or a 5xx, at most
    `max_retries` times each, within the shared retry budget."""

    def __init__(self, budget: RetryBudget, max_retries: int, backoff_s: float) -> None:
        self._budget = budget
        self._max_retries = max_retries
        self._backoff_s = backoff_s

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T:
        self._budget.on_call()
        attempt = 0
        while True:
            try:
                return await call()
            except (SchoolConnectionError, SchoolServerError):
                attempt += 1
                if attempt > self._max_retries or not self._budget.try_spend():
                    raise
                await asyncio.sleep(backoff_s(attempt, self._backoff_s))


class Sessions(Protocol[S_co]):
    """How a fetch gets the school session it reads with."""

    async def read(
        self, ticket: Ticket, fetch: Callable[[S_co], Awaitable[T]]
    ) -> tuple[T, SessionToKeep | None]: ...


class NoSessions:
    """A system without credentials: every read is a plain request."""

    def __init__(self, retrying: Retrying) -> None:
        self._retrying = retrying

    async def read(
        self, ticket: Ticket, fetch: Callable[[Any], Awaitable[T]]
    ) -> tuple[T, SessionToKeep | None]:
        return await self._retrying(lambda: fetch(None)), None


class StoredSessions(Generic[S]):
    """A system with credentials: the student's stored session (only for a password that
    matches the verifier), else, or on a login page, a login the gate counts first."""

    def __init__(
        self, system: str, connector: Connector[S], storage: Storage, retrying: Retrying
    ) -> None:
        self._system = system
        self._connector = connector
        self._storage = storage
        self._retrying = retrying

    async def read(
        self, ticket: Ticket, fetch: Callable[[S], Awaitable[T]]
    ) -> tuple[T, SessionToKeep | None]:
        """Returns (value, session to keep)."""
        connector = self._connector
        student = ticket.subject
        if ticket.matches:
            value = await self._storage.session_value(self._system, student)
            if value is not None:
                session = connector.session_from(student, value)
                try:
                    result = await self._retrying(lambda: fetch(session))
                    return result, SessionToKeep(connector.session_value(session), False)
                except SessionExpired:
                    log.debug(
                        "stored %s session of %s expired; logging in again", self._system, student
                    )
        session = await self._login(ticket)
        result = await self._retrying(lambda: fetch(session))
        return result, SessionToKeep(connector.session_value(session), True)

    async def _login(self, ticket: Ticket) -> S:
        """Let the school judge the password (the gate counts it first), and tell the gate.

        Retried like a read: a login that failed with a 5xx or a broken connection
        left no session behind, and a repeated one only opens another.
        """
        await ticket.before_login()
        student_id, password = ticket.credentials()
        try:
            session = await self._retrying(lambda: self._connector.login(student_id, password))
        except InvalidCredentials:
            await ticket.rejected()
            raise
        await ticket.accepted()
        return session


class SchoolQuota:
    """A fixed cap on one caller's school requests, where one is set (a registered
    client's `school_requests_per_s`, or `limits.school_requests_per_s` for an address;
    0, the default, leaves it to the fair share of the budget)."""

    def __init__(self, limiter: RequestRateLimiter | None, address_rate: float) -> None:
        self._limiter = limiter
        self._address_rate = address_rate

    def check(self, caller: Caller) -> None:
        """Raises RateLimited."""
        limiter = self._limiter
        if limiter is None:
            return
        client = caller.client
        if client is not None:
            if client.school_requests_per_s > 0:
                limiter.check_subject(
                    client.name, client.school_requests_per_s, client.school_burst
                )
        elif self._address_rate > 0:
            limiter.check(caller.ip)


@dataclass(frozen=True, slots=True)
class SchoolCall(Generic[S]):
    """One system's fetches: its budget, breaker, sessions and quota."""

    spec: SystemSpec
    storage: Storage
    budget: UpstreamBudget
    breaker: CircuitBreaker
    sessions: Sessions[S]
    quota: SchoolQuota
    deadlines: Deadlines
    now: Callable[[], datetime]
    hold_s: float  # the whole operation's limit (within the coalescing lease)
    wait_s: float  # how long to wait for a budget slot at most (`budget.wait_s`)
    # Where a page no client could read is kept for the operator (None: not kept).
    captures: PageCaptures | None = None

    async def fetch(
        self, ticket: Ticket, key: CacheKey, q: Question[T, S], deadline: float
    ) -> CacheEntry[T]:
        """Fetch within one budget slot, through the breaker; store and return the result."""
        caller = ticket.caller
        self.quota.check(caller)
        limit = self.hold_s
        # Wait in line no longer than the query's deadline: a slot taken after it could
        # only do work nobody waits for.
        wait = min(self.wait_s, self.deadlines.until(deadline) - time.monotonic())
        if wait <= 0:
            raise BudgetExhausted(self.spec.system, 0.0)
        # Bad calls must come from several subjects to open the breaker: students, or
        # for shared answers the questions themselves.
        subject = key.subject or f"{key.kind}:{key.params}"
        call: BreakerCall | None = None
        # The answers this fetch receives, the last one kept if it cannot be read.
        trail = PageTrail()
        try:
            # A request waiting in line gives up as soon as the breaker opens.
            still_wanted = self.breaker.raise_if_open
            with capture.following(trail):
                async with (
                    asyncio.timeout(limit),
                    self.budget.slot(wait, caller.key, still_wanted),
                ):
                    call = self.breaker.begin(subject)
                    value, session = await self.sessions.read(ticket, q.fetch)
                    call.ok()
        except AnswerRefused:
            # The school answered; we refuse the answer for what was asked (a cover too
            # large): about this request, so it must not open the breaker for everyone.
            if call is not None:
                call.neutral()
            raise
        except SchoolPageError as exc:
            # A page no client rule could read: the same page kind fails for every
            # student, so it counts once per kind, not once per student; kept for the
            # operator (after the budget slot is freed).
            if call is not None:
                call.failed(f"page:{self.spec.system}:{page_kind(exc)}")
            if self.captures is not None:
                await self.captures.keep(self.spec.system, exc, trail)
            raise
        except SchoolUnavailable:
            if call is not None:
                call.failed()
            raise
        except TimeoutError:
            if call is not None:
                call.failed()
            raise SchoolTimeout(f"{self.spec.name} did not finish within {limit:.0f}s") from None
        except BaseException:
            # A wrong password, a refused query, a deadline passed: the school is not failing.
            if call is not None:
                call.neutral()
            raise
        fetched_at = self.now()
        payload = q.codec.encode(value)
        entry = CacheEntry(value, fetched_at, estimated_size(payload))
        name = q.name_of(value) if q.name_of is not None else None
        await self.storage.save(key, payload, fetched_at, name, session)
        self.storage.remember(key, entry)
        return entry
