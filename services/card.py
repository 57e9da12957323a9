"""Card queries: answer from the cache when fresh enough, else fetch from the card center once.

The path of one request:

    credential gate (services/gate.py) -> memory cache -> database cache
    -> (coalesce: one fetch per student across processes) -> budget slot -> breaker
    -> school (stored session, else log in) -> store result + sealed session -> answer

and when the school fails, is over budget or its breaker is open: the last
good answer within `cache.max_stale_s`, marked stale, else the error.

Every public query enters through `_through_gate`: the gate admits the
request (or refuses it, 429), says whether its password matches the stored
verifier, and hears how the school judged it. Only a matching password may
be answered from the cache, reuse a stored school session or get a stale
answer; any other password is judged by a fresh school login.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from math import inf
from typing import Any, Generic, Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from observability import metrics
from observability.timing import timed
from school.card.client import CardCenterClient
from school.card.models import AccountInfo, CardSession, Transaction
from school.deadline import requests_until
from school.errors import (
    DeadlinePassed,
    InvalidCredentials,
    SchoolConnectionError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SchoolUnavailable,
    SessionExpired,
)
from services.breaker import BreakerCall, BreakerOpen, BreakerTable, CircuitBreaker
from services.budget import BudgetExhausted, UpstreamBudget
from services.cache import CacheEntry, CacheKey, MemoryCache, estimated_size
from services.credentials import Credentials
from services.deferred import DeferredWrites
from services.errors import (
    BadInput,
    DeadlineExceeded,
    InvalidPassword,
    RateLimited,
    ShuttingDown,
    StorageUnavailable,
)
from services.gate import CredentialGate, Ticket
from services.leases import LeaseStore, new_holder_id
from services.limits import RequestRateLimiter
from services.payloads import (
    decode_account,
    decode_transactions,
    encode_account,
    encode_transactions,
)
from services.retry import RetryBudget, backoff_s
from services.vault import SessionVault
from settings import Settings

log = logging.getLogger("jnufm.card")

CHINA = timezone(timedelta(hours=8), "CST")
SYSTEM = "card"
# Card data before this day cannot exist (the card center went live later).
EARLIEST = date(2000, 1, 1)

T = TypeVar("T")
Source = Literal["school", "cache"]

# How often a query waiting for the school looks whether its worker started stopping.
STOP_POLL_S = 0.2

# Failures after which a stale answer may stand in for a fresh one.
STALE_IF = (
    SchoolUnavailable,
    SchoolPageError,
    SessionExpired,
    DeadlinePassed,
    BudgetExhausted,
    BreakerOpen,
    StorageUnavailable,
)


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """A result, when the school produced it, where it came from, and its RFC 9211 Cache-Status."""

    value: T
    as_of: datetime
    source: Source = "school"
    stale: bool = False
    cache_status: str = "jnufm; fwd=uri-miss"


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    encode: Callable[[T], str]
    decode: Callable[[str], T]


ACCOUNT: Codec[AccountInfo] = Codec(encode_account, decode_account)
TRANSACTIONS: Codec[list[Transaction]] = Codec(encode_transactions, decode_transactions)


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    """One question to the card center for one request: what, how fresh, how to fetch it."""

    key: CacheKey
    max_age_s: float
    fetch: Callable[[CardSession], Awaitable[T]]
    codec: Codec[T]
    fresh: bool  # the client asked for fresh data
    deadline: float  # time.monotonic() by which the client gets an answer


def utc_now() -> datetime:
    return datetime.now(UTC)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, SchoolTimeout):
        return 504
    if isinstance(exc, BudgetExhausted | BreakerOpen):
        return 503
    return 502


def _student_busy() -> RateLimited:
    return RateLimited(
        "student_busy", "too many queries for this student are waiting for the card center", 1
    )


class CardService:
    """Answers card queries for one worker process."""

    def __init__(
        self,
        client: CardCenterClient,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        gate: CredentialGate,
        now: Callable[[], datetime] = utc_now,
        school_limiter: RequestRateLimiter | None = None,
        deferred: DeferredWrites | None = None,
        stop_by: Callable[[], float | None] = lambda: None,
        breakers: BreakerTable | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._settings = settings
        self._gate = gate
        self._now = now
        self._school_limiter = school_limiter
        self._deferred = deferred if deferred is not None else DeferredWrites(1000, 0.5)
        # When this worker must have answered everything (it is stopping), else None.
        self._stop_by = stop_by
        c = settings.cache
        self._memory = MemoryCache(c.memory_entries, c.max_stale_s, int(c.memory_mb * 1024 * 1024))
        self._leases = LeaseStore(sessions, now, self._deferred.health)
        b = settings.budget
        self.budget = UpstreamBudget(self._leases, SYSTEM, b.card, b.slot_lease_s, b.poll_s)
        br = settings.breaker
        self.breaker = CircuitBreaker(
            SYSTEM,
            br.failures,
            br.open_s,
            table=breakers,
            min_students=br.min_students,
            window=br.window,
            failure_rate=br.failure_rate,
            slow_call_s=br.slow_call_s,
        )
        self._retries = RetryBudget(settings.retries.budget_ratio)
        self._vault = SessionVault(settings.secret_key.encode())
        self._flights: dict[tuple[CacheKey, str], asyncio.Future[tuple[CacheEntry[Any], bool]]] = {}
        self._waiting: dict[str, int] = {}
        self._background: set[asyncio.Future[None]] = set()
        # Fetches that outlived their request (they run on for the cache).
        self._fetches: set[asyncio.Future[Any]] = set()

    # Queries -----------------------------------------------------------------------------

    def today(self) -> date:
        """Today's date on the campus (China time)."""
        return self._now().astimezone(CHINA).date()

    async def balance(
        self, creds: Credentials, fresh: bool = False, ip: str = ""
    ) -> Answer[AccountInfo]:
        """The account page, fresh enough for a balance. Raises school and service errors."""
        max_age = self._settings.cache.fresh_s.balance
        return await self._through_gate(
            creds, ip, lambda t, by: self._account(t, max_age, fresh, by)
        )

    async def profile(
        self, creds: Credentials, fresh: bool = False, ip: str = ""
    ) -> Answer[AccountInfo]:
        """The account page, fresh enough for name, card number, department."""
        max_age = self._settings.cache.fresh_s.profile
        return await self._through_gate(
            creds, ip, lambda t, by: self._account(t, max_age, fresh, by)
        )

    async def today_transactions(
        self, creds: Credentials, fresh: bool = False, ip: str = ""
    ) -> Answer[list[Transaction]]:
        """Today's transactions, newest first."""
        return await self._through_gate(creds, ip, lambda t, by: self._today(t, fresh, by))

    async def transactions(
        self, creds: Credentials, start: date, end: date, fresh: bool = False, ip: str = ""
    ) -> Answer[list[Transaction]]:
        """Transactions whose (clock-corrected) campus date is from start to end inclusive.

        The card center's calendar runs `clock_offset` behind ours, so the days
        asked of it are shifted, and its rows filtered by their corrected time.
        Raises BadInput for a range that cannot be a real question, before anything else.
        """
        start, end = self.check_range(start, end)
        offset = self._settings.school.card.clock_offset
        first = (datetime.combine(start, datetime.min.time()) - offset).date()
        last = (datetime.combine(end, datetime.max.time()) - offset).date()

        async def run(ticket: Ticket, deadline: float) -> Answer[list[Transaction]]:
            shown = await self._school_days(ticket, first, last, fresh, deadline)
            rows = [r for r in shown.value if start <= r.time.astimezone(CHINA).date() <= end]
            return Answer(rows, shown.as_of, shown.source, shown.stale, shown.cache_status)

        return await self._through_gate(creds, ip, run)

    async def recent_days(
        self, creds: Credentials, days: int, fresh: bool = False, ip: str = ""
    ) -> Answer[list[Transaction]]:
        """The card center's today and the `days` days before it, in its own calendar (as
        the 2013 `/card/month` asked: today-7 .. today)."""
        school_today = self.school_today()
        first = school_today - timedelta(days=days)
        return await self._through_gate(
            creds, ip, lambda t, by: self._school_days(t, first, school_today, fresh, by)
        )

    def school_today(self) -> date:
        """Today in the card center's calendar (its clock runs `clock_offset` behind)."""
        offset = self._settings.school.card.clock_offset
        return (self._now().astimezone(CHINA) - offset).date()

    def check_range(self, start: date, end: date) -> tuple[date, date]:
        """The range to ask for. Raises BadInput for a reversed, too early, future or too
        long range. `end` may be tomorrow (a client a few hours ahead of campus time)."""
        today = self.today()
        if start < EARLIEST or end < EARLIEST:
            raise BadInput("invalid_range", f"dates must not be before {EARLIEST.isoformat()}")
        if start > end:
            raise BadInput("invalid_range", "start must not be after end")
        if end > today + timedelta(days=1):
            raise BadInput("invalid_range", "end must not be after tomorrow (campus time)")
        end = min(end, today)
        start = min(start, end)
        days = self._settings.api.history_max_days
        if (end - start).days + 1 > days:
            raise BadInput("invalid_range", f"a range may cover at most {days} days")
        return start, end

    async def _account(
        self, ticket: Ticket, max_age_s: float, fresh: bool, deadline: float
    ) -> Answer[AccountInfo]:
        key = CacheKey("account", ticket.presented.student_id)
        q = Query(key, max_age_s, self._client.account, ACCOUNT, fresh, deadline)
        return await self._query(ticket, q)

    async def _today(
        self, ticket: Ticket, fresh: bool, deadline: float
    ) -> Answer[list[Transaction]]:
        key = CacheKey("today", ticket.presented.student_id)
        max_age = self._settings.cache.fresh_s.today
        return await self._query(
            ticket, Query(key, max_age, self._client.today, TRANSACTIONS, fresh, deadline)
        )

    async def _school_days(
        self, ticket: Ticket, first: date, last: date, fresh: bool, deadline: float
    ) -> Answer[list[Transaction]]:
        """The rows of the card center's days first..last (its calendar): its today page if
        last is its today, and its history for the days before."""
        school_today = self.school_today()
        last = min(last, school_today)
        parts: list[Answer[list[Transaction]]] = []
        if last >= school_today:
            parts.append(await self._today(ticket, fresh, deadline))
        if first < school_today:
            until = min(last, school_today - timedelta(days=1))
            key = CacheKey("history", ticket.presented.student_id, f"{first:%Y%m%d}-{until:%Y%m%d}")

            async def fetch(session: CardSession) -> list[Transaction]:
                return await self._client.history(session, first, until)

            ttl = self._settings.cache.fresh_s.history
            q = Query(key, ttl, fetch, TRANSACTIONS, fresh, deadline)
            parts.append(await self._query(ticket, q))
        rows = [row for part in parts for row in part.value]
        oldest = min(parts, key=lambda p: p.as_of)
        return Answer(
            rows,
            oldest.as_of,
            "cache" if all(p.source == "cache" for p in parts) else "school",
            any(p.stale for p in parts),
            oldest.cache_status,
        )

    # The gate: every query passes here -------------------------------------------------------

    async def _through_gate(
        self,
        creds: Credentials,
        ip: str,
        run: Callable[[Ticket, float], Awaitable[Answer[T]]],
    ) -> Answer[T]:
        """Admit the request, answer it by its deadline, tell the gate what the school
        said, close the ticket.

        Raises RateLimited while the student or address is locked out, InvalidPassword
        when the school refuses the password, and school or service errors otherwise.
        """
        deadline = self._deadline()
        ticket = await self._gate.admit(SYSTEM, creds, ip)
        try:
            return await run(ticket, deadline)
        except InvalidCredentials as exc:
            await ticket.rejected()
            raise InvalidPassword() from exc
        finally:
            await ticket.release()

    def _finish_background(self, task: asyncio.Future[Any], ticket: Ticket) -> None:
        """A fetch that outlived its request ended: mark its failure as seen (the request
        was answered from the cache already) and let the ticket go."""
        if not task.cancelled():
            task.exception()
        release = asyncio.ensure_future(ticket.release())
        self._background.add(release)
        release.add_done_callback(self._background.discard)

    def _deadline(self) -> float:
        """When a query starting now must be answered (time.monotonic())."""
        return time.monotonic() + self._settings.api.deadline_s

    def _until(self, deadline: float) -> float:
        """A query's deadline, or sooner if this worker is stopping meanwhile."""
        stop_by = self._stop_by()
        return deadline if stop_by is None else min(deadline, stop_by)

    def _too_late(self) -> Exception:
        """What a client gets when the school did not answer by the deadline (no stale answer)."""
        if self._stop_by() is not None:
            return ShuttingDown("this worker is stopping")
        return DeadlineExceeded(self._settings.api.deadline_s)

    async def aclose(self, timeout_s: float) -> None:
        """Let fetches that outlived their requests end (at most timeout_s, then cancel
        them), before the engine and the HTTP client they use are closed."""
        pending = set(self._fetches) | set(self._background)
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)

    async def recover(self) -> None:
        """At start: free the school budget and student leases this host's dead processes
        held (a killed worker's slots are usable again as soon as it is replaced)."""
        await self._leases.release_dead_holders()

    # The path of one query -----------------------------------------------------------------

    async def _query(self, ticket: Ticket, q: Query[T]) -> Answer[T]:
        started = self._now()
        cache_on = self._settings.cache.enabled and ticket.matches
        cached = await self._lookup(q.key, started, q.max_age_s, q.codec) if cache_on else None
        if cached is not None:
            age = cached.age_s(started)
            # A client may ask for fresh data, but not more often than fresh_min_interval_s.
            fresh_enough = age <= q.max_age_s and (
                not q.fresh or age < self._settings.cache.fresh_min_interval_s
            )
            if fresh_enough:
                ttl = int(q.max_age_s - age)
                return Answer(
                    cached.value, cached.fetched_at, "cache", False, f"jnufm; hit; ttl={ttl}"
                )
        not_before = started if q.fresh else started - timedelta(seconds=q.max_age_s)
        stale_ready = self._may_serve_stale(ticket, cached, started)
        # The fetch runs as its own task, with the query's deadline for school requests:
        # the client is answered by the deadline (or sooner, with a stale answer at hand)
        # while a school request already sent runs on, holding its budget slot, and its
        # result refreshes the cache for the next query.
        with requests_until(lambda: self._until(q.deadline)):
            task = asyncio.ensure_future(self._coalesced(ticket, q, not_before))
        stale_by = time.monotonic() + self._settings.cache.stale_wait_s if stale_ready else inf
        try:
            while not task.done():
                # Asked again and again: a worker that starts stopping brings it closer.
                left = min(self._until(q.deadline), stale_by) - time.monotonic()
                if left <= 0:
                    break
                await asyncio.wait({task}, timeout=min(left, STOP_POLL_S))
            if not task.done():
                ticket.hold()
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)
                task.add_done_callback(lambda t: self._finish_background(t, ticket))
                if stale_ready:
                    assert cached is not None
                    return self._stale(q, cached, started, "stale-while-revalidate")
                raise self._too_late()
            entry, collapsed = task.result()
        except STALE_IF as exc:
            stale = cached
            if stale is None and cache_on:
                stale = await self._lookup(q.key, started, q.max_age_s, q.codec)
            if self._may_serve_stale(ticket, stale, started):
                assert stale is not None
                log.info(
                    "%s for %s: stale answer (%s)", q.key.kind, q.key.student_id, type(exc).__name__
                )
                return self._stale(q, stale, started, "stale-if-error", exc)
            raise
        if collapsed and not ticket.matches:
            # Another request logged in with this same password and the school accepted it.
            await ticket.accepted()
        if q.fresh and cached is not None:
            fwd = "request"
        elif cached is not None:
            fwd = "stale"
        else:
            fwd = "miss"
        status = f"jnufm; fwd={fwd}" + ("; collapsed" if collapsed else "; stored")
        source: Source = "cache" if collapsed else "school"
        return Answer(entry.value, entry.fetched_at, source, False, status)

    def _may_serve_stale(self, ticket: Ticket, entry: CacheEntry[T] | None, now: datetime) -> bool:
        """An old answer may stand in: young enough, and the password matches the verifier."""
        return (
            entry is not None
            and ticket.matches
            and self._settings.cache.enabled
            and entry.age_s(now) <= self._settings.cache.max_stale_s
        )

    def _stale(
        self,
        q: Query[T],
        entry: CacheEntry[T],
        now: datetime,
        why: str,
        exc: BaseException | None = None,
    ) -> Answer[T]:
        metrics.record_cache(q.key.kind, "stale", "db")
        ttl = int(q.max_age_s - entry.age_s(now))
        forwarded = "" if exc is None else f"; fwd-status={_status_of(exc)}"
        status = f'jnufm; fwd=stale{forwarded}; ttl={ttl}; detail="{why}"'
        return Answer(entry.value, entry.fetched_at, "cache", True, status)

    async def _lookup(
        self, key: CacheKey, now: datetime, max_age_s: float, codec: Codec[T]
    ) -> CacheEntry[T] | None:
        """Memory first; then the database, where another process may have stored newer data."""
        with timed("cache"):
            entry: CacheEntry[T] | None = self._memory.get(key, now)
            if entry is not None and entry.age_s(now) <= max_age_s:
                metrics.record_cache(key.kind, "hit", "memory")
                return entry
            metrics.record_cache(key.kind, "miss", "memory")
            stored = await self._db_lookup(key, codec)
            fresh = stored is not None and stored.age_s(now) <= max_age_s
            metrics.record_cache(key.kind, "hit" if fresh else "miss", "db")
            if stored is None:
                return entry
            if entry is None or stored.fetched_at > entry.fetched_at:
                self._memory.put(key, stored)
                return stored
            return entry

    async def _db_lookup(self, key: CacheKey, codec: Codec[T]) -> CacheEntry[T] | None:
        try:
            async with self._sessions() as db:
                row = await queries.get_cached_result(db, key.student_id, key.kind, key.params)
        except SQLAlchemyError as exc:
            log.warning("cache read failed: %s", type(exc).__name__)
            return None
        if row is None:
            return None
        return CacheEntry(codec.decode(row.payload), row.fetched_at, estimated_size(row.payload))

    async def _coalesced(
        self, ticket: Ticket, q: Query[T], not_before: datetime
    ) -> tuple[CacheEntry[T], bool]:
        """One fetch per (query, password) in this worker; others wait. Returns (entry, shared)."""
        if not self._settings.coalescing.enabled:
            return await self._from_school(ticket, q), False
        flight = (q.key, ticket.presented.verifier)
        leader = self._flights.get(flight)
        if leader is not None:
            metrics.coalesced_wait(q.key.kind)
            entry, _ = await asyncio.shield(leader)
            return entry, True
        future: asyncio.Future[tuple[CacheEntry[Any], bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._flights[flight] = future
        try:
            result = await self._across_processes(ticket, q, not_before)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._flights[flight]

    async def _across_processes(
        self, ticket: Ticket, q: Query[T], not_before: datetime
    ) -> tuple[CacheEntry[T], bool]:
        """Hold the student's lease while fetching; without it, wait for the holder's result.

        The lease is per student, so one student never holds more than one budget
        slot: their requests cannot fill the school's line for everyone else.
        """
        self.breaker.raise_if_open()  # fail fast, without waiting in any line
        student = q.key.student_id
        waiting = self._waiting.get(student, 0)
        if waiting >= self._settings.budget.per_student_queue:
            raise _student_busy()
        self._waiting[student] = waiting + 1
        try:
            return await self._lease_then_fetch(ticket, q, not_before)
        finally:
            left = self._waiting[student] - 1
            if left:
                self._waiting[student] = left
            else:
                del self._waiting[student]

    async def _lease_then_fetch(
        self, ticket: Ticket, q: Query[T], not_before: datetime
    ) -> tuple[CacheEntry[T], bool]:
        c = self._settings.coalescing
        name = f"{SYSTEM}:{q.key.student_id}"
        holder = new_holder_id()
        give_up = time.monotonic() + c.lease_s + self._settings.budget.wait_s
        while True:
            if await self._leases.try_acquire(name, holder, c.lease_s):
                try:
                    # The previous holder may have stored what we need just before letting go.
                    done = await self._result_for(ticket, q, not_before)
                    if done is not None:
                        return done, True
                    return await self._from_school(ticket, q), False
                finally:
                    await asyncio.shield(self._leases.release(name, holder, c.lease_s))
            await asyncio.sleep(c.poll_s)
            done = await self._result_for(ticket, q, not_before)
            if done is not None:
                return done, True
            if time.monotonic() > min(give_up, self._until(q.deadline)):
                raise BudgetExhausted(SYSTEM, c.lease_s)

    async def _result_for(
        self, ticket: Ticket, q: Query[T], not_before: datetime
    ) -> CacheEntry[T] | None:
        """A result another process stored since `not_before`, if this password may have it.

        A password that did not match the verifier may have it only once the school
        has accepted that same password for another request (the verifier is now it).
        """
        done = await self._db_lookup(q.key, q.codec)
        if done is None or done.fetched_at < not_before:
            return None
        if not ticket.matches and not await ticket.proven_elsewhere():
            return None
        self._memory.put(q.key, done)
        metrics.coalesced_wait(q.key.kind)
        return done

    async def _from_school(self, ticket: Ticket, q: Query[T]) -> CacheEntry[T]:
        """Fetch within one budget slot, through the breaker; store and return the result."""
        if self._school_limiter is not None:
            self._school_limiter.check(ticket.address)
        # The whole operation ends before our lease does, so no one else fetches meanwhile.
        limit = max(1.0, self._settings.coalescing.lease_s - 1.0)
        student = q.key.student_id
        # Wait in line no longer than the query's deadline: a slot taken after it could
        # only do work nobody waits for.
        wait = min(self._settings.budget.wait_s, self._until(q.deadline) - time.monotonic())
        if wait <= 0:
            raise BudgetExhausted(SYSTEM, 0.0)
        call: BreakerCall | None = None
        try:
            async with asyncio.timeout(limit), self.budget.slot(wait):
                call = self.breaker.begin(student)
                value, session, opened = await self._with_session(ticket, q.fetch)
                call.ok()
        except (SchoolUnavailable, SchoolPageError):
            if call is not None:
                call.failed()
            raise
        except TimeoutError:
            if call is not None:
                call.failed()
            raise SchoolTimeout(f"the card center did not finish within {limit:.0f}s") from None
        except BaseException:
            # A wrong password, a refused query, a deadline passed: the school is not failing.
            if call is not None:
                call.neutral()
            raise
        fetched_at = self._now()
        payload = q.codec.encode(value)
        entry = CacheEntry(value, fetched_at, estimated_size(payload))
        name = value.name if isinstance(value, AccountInfo) else None
        await self._store(q.key, name, payload, session, opened, fetched_at)
        self._memory.put(q.key, entry)
        return entry

    async def _with_session(
        self, ticket: Ticket, fetch: Callable[[CardSession], Awaitable[T]]
    ) -> tuple[T, CardSession, bool]:
        """Read with the stored school session (only for a password that matches the
        verifier); else, or on a login page, log in. Returns (value, session, logged in)."""
        if ticket.matches:
            session = await self._stored_session(ticket.presented.student_id)
            if session is not None:
                try:
                    return await self._read(fetch, session), session, False
                except SessionExpired:
                    log.debug("stored session of %s expired; logging in again", session.student_id)
        session = await self._login(ticket)
        return await self._read(fetch, session), session, True

    async def _read(self, fetch: Callable[[CardSession], Awaitable[T]], session: CardSession) -> T:
        """An idempotent read, retried on a broken connection or 5xx within the retry budget."""
        return await self._retrying(lambda: fetch(session))

    async def _login(self, ticket: Ticket) -> CardSession:
        """Let the school judge the password (the gate counts it first), and tell the gate.

        Retried like a read: a login that failed with a 5xx or a broken connection
        left no session behind, and a repeated one only opens another.
        """
        await ticket.before_login()
        student_id, password = ticket.credentials()
        try:
            session = await self._retrying(lambda: self._client.login(student_id, password))
        except InvalidCredentials:
            await ticket.rejected()
            raise
        await ticket.accepted()
        return session

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        r = self._settings.retries
        self._retries.on_call()
        attempt = 0
        while True:
            try:
                return await call()
            except (SchoolConnectionError, SchoolServerError):
                attempt += 1
                if attempt > r.max_retries or not self._retries.try_spend():
                    raise
                await asyncio.sleep(backoff_s(attempt, r.backoff_s))

    async def _stored_session(self, student_id: str) -> CardSession | None:
        s = self._settings.sessions
        if not s.enabled:
            return None
        try:
            async with self._sessions() as db:
                row = await queries.get_school_session(db, student_id, SYSTEM)
        except SQLAlchemyError:
            return None
        if row is None:
            return None
        now = self._now()
        if (now - row.used_at).total_seconds() > s.max_idle_s:
            return None
        # An absolute lifetime: a session opened with a password that has since
        # changed at the school (or leaked) cannot be ridden forever.
        if (now - row.created_at).total_seconds() > s.max_age_s:
            return None
        cookie = self._vault.open(student_id, SYSTEM, row.sealed)
        return None if cookie is None else CardSession(student_id, cookie)

    async def _store(
        self,
        key: CacheKey,
        name: str | None,
        payload: str,
        session: CardSession,
        opened: bool,
        fetched_at: datetime,
    ) -> None:
        """Result and sealed session in one transaction: all or nothing.

        A storage failure is not raised: the student still gets the answer the
        school just gave, which stays in memory and is written when storage is back.
        """
        sealed = self._vault.seal(key.student_id, SYSTEM, session.cookie)
        keep_session = self._settings.sessions.enabled

        async def write() -> None:
            try:
                async with self._sessions.begin() as db:
                    pk = await queries.upsert_student(db, key.student_id, name, fetched_at)
                    await queries.save_card_result(
                        db, pk, key.kind, key.params, payload, fetched_at
                    )
                    if keep_session:
                        await queries.save_school_session(
                            db, pk, SYSTEM, sealed, fetched_at, opened=opened
                        )
            except SQLAlchemyError as exc:
                raise StorageUnavailable(f"{key.kind} result: {type(exc).__name__}") from exc

        try:
            await write()
        except StorageUnavailable as exc:
            # The answer is good and the client gets it; storage gets it when it is back.
            log.warning("could not store a %s result now (%s); kept for later", key.kind, exc)
            self._deferred.add("result", write)
