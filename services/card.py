"""Card queries: answer from the cache when fresh enough, else fetch from the card center once.

The path of one query:

    memory cache -> database cache -> (coalesce: one fetch per student across
    processes) -> budget slot -> breaker -> school (stored session, else log in)
    -> store result + verifier + sealed session -> answer

and when the school fails, is over budget or its breaker is open: the last
good answer within `cache.max_stale_s`, marked stale, else the error.
Cached data is only served to the password that last logged in successfully
(its keyed verifier), and only that password may reuse the stored session.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from observability import metrics
from observability.timing import timed
from school.card import CardCenterClient
from school.errors import (
    InvalidCredentials,
    SchoolConnectionError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SchoolUnavailable,
    SessionExpired,
)
from school.models import AccountInfo, CardSession, Transaction
from services.breaker import BreakerOpen, CircuitBreaker
from services.budget import BudgetExhausted, UpstreamBudget
from services.cache import CacheEntry, CacheKey, MemoryCache
from services.credentials import Credentials, make_verifier
from services.errors import BadInput
from services.leases import LeaseStore, new_holder_id
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

T = TypeVar("T")
Source = Literal["school", "cache"]

# Failures after which a stale answer may stand in for a fresh one.
STALE_IF = (SchoolUnavailable, SchoolPageError, SessionExpired, BudgetExhausted, BreakerOpen)


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


class LoginGuard(Protocol):
    """Failed-login limits (services/limits.py)."""

    async def check(self, student_id: str, ip: str) -> None: ...
    async def record_failure(self, student_id: str, ip: str) -> None: ...
    async def clear_student(self, student_id: str) -> None: ...


# A matching password on a cache hit re-checks the lockout at most this often
# per (student, address) in a worker, to keep the warm path off the database.
# Cost: a lockout set by another process is seen here up to this much later.
GUARD_MEMO_S = 1.0
GUARD_MEMO_MAX = 50_000


def utc_now() -> datetime:
    return datetime.now(UTC)


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Mark a background fetch's failure as seen: it was answered from the cache already."""
    if not task.cancelled():
        task.exception()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, SchoolTimeout):
        return 504
    if isinstance(exc, BudgetExhausted | BreakerOpen):
        return 503
    return 502


class CardService:
    """Answers card queries for one worker process."""

    def __init__(
        self,
        client: CardCenterClient,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        now: Callable[[], datetime] = utc_now,
        guard: LoginGuard | None = None,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._secret_key = settings.secret_key.encode()
        self._settings = settings
        self._now = now
        self._guard = guard
        self._memory = MemoryCache(settings.cache.memory_entries, settings.cache.max_stale_s)
        self._leases = LeaseStore(sessions, now)
        b = settings.budget
        self.budget = UpstreamBudget(self._leases, SYSTEM, b.card, b.slot_lease_s, b.poll_s)
        self.breaker = CircuitBreaker(SYSTEM, settings.breaker.failures, settings.breaker.open_s)
        self._retries = RetryBudget(settings.retries.budget_ratio)
        self._vault = SessionVault(self._secret_key)
        self._guard_ok: dict[tuple[str, str], float] = {}
        self._flights: dict[tuple[CacheKey, str], asyncio.Future[tuple[CacheEntry[Any], bool]]] = {}

    # Queries -----------------------------------------------------------------------------

    def today(self) -> date:
        """Today's date on the campus (China time)."""
        return self._now().astimezone(CHINA).date()

    async def balance(
        self, creds: Credentials, fresh: bool = False, ip: str = ""
    ) -> Answer[AccountInfo]:
        """The account page, fresh enough for a balance. Raises school and service errors."""
        return await self._account(creds, self._settings.cache.fresh_s.balance, fresh, ip)

    async def profile(
        self, creds: Credentials, fresh: bool = False, ip: str = ""
    ) -> Answer[AccountInfo]:
        """The account page, fresh enough for name, card number, department."""
        return await self._account(creds, self._settings.cache.fresh_s.profile, fresh, ip)

    async def _account(
        self, creds: Credentials, max_age_s: float, fresh: bool, ip: str
    ) -> Answer[AccountInfo]:
        key = CacheKey("account", creds.student_id)
        return await self._query(key, max_age_s, creds, fresh, ip, self._client.account, ACCOUNT)

    async def today_transactions(
        self, creds: Credentials, fresh: bool = False, ip: str = ""
    ) -> Answer[list[Transaction]]:
        """Today's transactions, newest first."""
        key = CacheKey("today", creds.student_id)
        return await self._query(
            key,
            self._settings.cache.fresh_s.today,
            creds,
            fresh,
            ip,
            self._client.today,
            TRANSACTIONS,
        )

    async def transactions(
        self, creds: Credentials, start: date, end: date, fresh: bool = False, ip: str = ""
    ) -> Answer[list[Transaction]]:
        """Transactions from start to end inclusive (history, plus today's list if included)."""
        today = self.today()
        self.check_range(start, end)
        parts: list[Answer[list[Transaction]]] = []
        if end >= today:
            parts.append(await self.today_transactions(creds, fresh, ip))
        if start < today:
            last = min(end, today - timedelta(days=1))
            key = CacheKey("history", creds.student_id, f"{start:%Y%m%d}-{last:%Y%m%d}")

            async def fetch(session: CardSession) -> list[Transaction]:
                return await self._client.history(session, start, last)

            ttl = self._settings.cache.fresh_s.history
            parts.append(await self._query(key, ttl, creds, fresh, ip, fetch, TRANSACTIONS))
        rows = [row for part in parts for row in part.value]
        oldest = min(parts, key=lambda p: p.as_of)
        return Answer(
            rows,
            oldest.as_of,
            "cache" if all(p.source == "cache" for p in parts) else "school",
            any(p.stale for p in parts),
            oldest.cache_status,
        )

    def check_range(self, start: date, end: date) -> None:
        """Raises BadInput for a reversed, future or too long range."""
        if start > end:
            raise BadInput("invalid_range", "start must not be after end")
        if end > self.today():
            raise BadInput("invalid_range", "end must not be in the future (campus time)")
        days = self._settings.api.history_max_days
        if (end - start).days + 1 > days:
            raise BadInput("invalid_range", f"a range may cover at most {days} days")

    # The path of one query -----------------------------------------------------------------

    async def _query(
        self,
        key: CacheKey,
        max_age_s: float,
        creds: Credentials,
        fresh: bool,
        ip: str,
        fetch: Callable[[CardSession], Awaitable[T]],
        codec: Codec[T],
    ) -> Answer[T]:
        verifier = make_verifier(self._secret_key, creds)
        started = self._now()
        cache_on = self._settings.cache.enabled
        cached = await self._lookup(key, started, max_age_s, codec) if cache_on else None
        if cached is not None:
            age = cached.age_s(started)
            # A client may ask for fresh data, but not more often than fresh_min_interval_s.
            fresh_enough = age <= max_age_s and (
                not fresh or age < self._settings.cache.fresh_min_interval_s
            )
            if fresh_enough:
                await self._require_verifier(cached, key, verifier, ip)
                ttl = int(max_age_s - age)
                return Answer(
                    cached.value, cached.fetched_at, "cache", False, f"jnufm; hit; ttl={ttl}"
                )
        not_before = started if fresh else started - timedelta(seconds=max_age_s)
        fetching = self._coalesced(key, creds, verifier, ip, not_before, fetch, codec)
        try:
            if self._may_serve_stale(cached, started, verifier):
                # A stale answer is ready: wait for the school only so long; the fetch
                # goes on and refreshes the cache for the next query.
                task = asyncio.ensure_future(fetching)
                done, _ = await asyncio.wait({task}, timeout=self._settings.cache.stale_wait_s)
                if not done:
                    task.add_done_callback(_retrieve)
                    assert cached is not None
                    await self._guard_check(key.student_id, ip, memo=True)
                    return self._stale(key, cached, started, max_age_s, "stale-while-revalidate")
                entry, collapsed = task.result()
            else:
                entry, collapsed = await fetching
        except STALE_IF as exc:
            stale = (
                cached
                if cached is not None
                else (await self._lookup(key, started, max_age_s, codec) if cache_on else None)
            )
            if self._may_serve_stale(stale, started, verifier):
                assert stale is not None
                await self._guard_check(key.student_id, ip, memo=True)
                log.info(
                    "%s for %s: stale answer (%s)", key.kind, key.student_id, type(exc).__name__
                )
                return self._stale(key, stale, started, max_age_s, "stale-if-error", exc)
            raise
        if fresh and cached is not None:
            fwd = "request"
        elif cached is not None:
            fwd = "stale"
        else:
            fwd = "miss"
        status = f"jnufm; fwd={fwd}" + ("; collapsed" if collapsed else "; stored")
        source: Source = "cache" if collapsed else "school"
        return Answer(entry.value, entry.fetched_at, source, False, status)

    def _may_serve_stale(self, entry: CacheEntry[T] | None, now: datetime, verifier: str) -> bool:
        """An old answer may stand in: young enough, and for the password that fetched it."""
        return (
            entry is not None
            and self._settings.cache.enabled
            and entry.age_s(now) <= self._settings.cache.max_stale_s
            and _same(entry.verifier, verifier)
        )

    def _stale(
        self,
        key: CacheKey,
        entry: CacheEntry[T],
        now: datetime,
        max_age_s: float,
        why: str,
        exc: BaseException | None = None,
    ) -> Answer[T]:
        metrics.record_cache(key.kind, "stale", "db")
        ttl = int(max_age_s - entry.age_s(now))
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
        return CacheEntry(codec.decode(row.payload), row.fetched_at, row.verifier)

    async def _require_verifier(
        self, entry: CacheEntry[T], key: CacheKey, verifier: str, ip: str
    ) -> None:
        """Serve cached data only to the password that last logged in successfully.

        Raises InvalidCredentials (a 401, and a failed login for the limits),
        or RateLimited while the student or the address is locked out.
        """
        if _same(entry.verifier, verifier):
            await self._guard_check(key.student_id, ip, memo=True)
            return
        await self._guard_check(key.student_id, ip, memo=False)
        # This worker may hold an entry from before a password change that
        # another process has since seen succeed: the database decides.
        async with self._sessions() as db:
            current = await queries.get_verifier(db, key.student_id)
        if current is not None and _same(current, verifier):
            self._memory.put(key, CacheEntry(entry.value, entry.fetched_at, current))
            return
        await self._guard_failure(key.student_id, ip)
        raise InvalidCredentials("wrong_password")

    async def _guard_check(self, student_id: str, ip: str, memo: bool) -> None:
        """Raise RateLimited if the student or the address is locked out (see GUARD_MEMO_S)."""
        if self._guard is None:
            return
        pair = (student_id, ip)
        if memo and self._guard_ok.get(pair, 0.0) > time.monotonic():
            return
        if len(self._guard_ok) >= GUARD_MEMO_MAX:
            self._guard_ok.clear()
        # Noted before the check, so the requests that arrive while it runs do
        # not all ask the database too; a lockout found now takes the note back.
        self._guard_ok[pair] = time.monotonic() + GUARD_MEMO_S
        try:
            await self._guard.check(student_id, ip)
        except BaseException:
            self._guard_ok.pop(pair, None)
            raise

    async def _guard_failure(self, student_id: str, ip: str) -> None:
        if self._guard is None:
            return
        self._guard_ok.pop((student_id, ip), None)
        await self._guard.record_failure(student_id, ip)

    async def _coalesced(
        self,
        key: CacheKey,
        creds: Credentials,
        verifier: str,
        ip: str,
        not_before: datetime,
        fetch: Callable[[CardSession], Awaitable[T]],
        codec: Codec[T],
    ) -> tuple[CacheEntry[T], bool]:
        """One fetch per (query, password) in this worker; others wait. Returns (entry, shared)."""
        if not self._settings.coalescing.enabled:
            return await self._from_school(key, creds, verifier, ip, fetch, codec), False
        flight = (key, verifier)
        leader = self._flights.get(flight)
        if leader is not None:
            metrics.coalesced_wait(key.kind)
            entry, _ = await asyncio.shield(leader)
            return entry, True
        future: asyncio.Future[tuple[CacheEntry[Any], bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._flights[flight] = future
        try:
            result = await self._across_processes(
                key, creds, verifier, ip, not_before, fetch, codec
            )
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
        self,
        key: CacheKey,
        creds: Credentials,
        verifier: str,
        ip: str,
        not_before: datetime,
        fetch: Callable[[CardSession], Awaitable[T]],
        codec: Codec[T],
    ) -> tuple[CacheEntry[T], bool]:
        """Hold the student's lease while fetching; without it, wait for the holder's result."""
        if self.breaker.state == "open":
            self.breaker.before_call()  # raises BreakerOpen without waiting in any line
        c = self._settings.coalescing
        name = f"{SYSTEM}:{key.student_id}"
        holder = new_holder_id()
        deadline = time.monotonic() + c.lease_s + self._settings.budget.wait_s
        while True:
            if await self._leases.try_acquire(name, holder, c.lease_s):
                try:
                    # The previous holder may have stored what we need just before letting go.
                    done = await self._db_lookup(key, codec)
                    if done is not None and done.fetched_at >= not_before:
                        if not _same(done.verifier, verifier):
                            await self._guard_failure(key.student_id, ip)
                            raise InvalidCredentials("wrong_password")
                        self._memory.put(key, done)
                        metrics.coalesced_wait(key.kind)
                        return done, True
                    return await self._from_school(key, creds, verifier, ip, fetch, codec), False
                finally:
                    await asyncio.shield(self._leases.release(name, holder))
            await asyncio.sleep(c.poll_s)
            done = await self._db_lookup(key, codec)
            if done is not None and done.fetched_at >= not_before:
                if not _same(done.verifier, verifier):
                    # The holder just logged in with another password, successfully.
                    await self._guard_failure(key.student_id, ip)
                    raise InvalidCredentials("wrong_password")
                self._memory.put(key, done)
                metrics.coalesced_wait(key.kind)
                return done, True
            if time.monotonic() > deadline:
                raise BudgetExhausted(SYSTEM, c.lease_s)

    async def _from_school(
        self,
        key: CacheKey,
        creds: Credentials,
        verifier: str,
        ip: str,
        fetch: Callable[[CardSession], Awaitable[T]],
        codec: Codec[T],
    ) -> CacheEntry[T]:
        """Fetch within one budget slot, through the breaker; store and return the result.

        The lockout is checked here, under the student's lease, so guesses sent
        together are judged one after another and cannot overshoot the limit.
        """
        await self._guard_check(key.student_id, ip, memo=False)
        # The whole operation ends before our lease does, so no one else fetches meanwhile.
        limit = max(1.0, self._settings.coalescing.lease_s - 1.0)
        try:
            async with asyncio.timeout(limit), self.budget.slot(self._settings.budget.wait_s):
                self.breaker.before_call()
                try:
                    value, session, logged_in = await self._with_session(creds, verifier, fetch)
                except (SchoolUnavailable, SchoolPageError):
                    self.breaker.failure()
                    raise
                except InvalidCredentials:
                    self.breaker.success()  # the school answered, and correctly
                    await self._guard_failure(key.student_id, ip)
                    raise
                except BaseException:
                    self.breaker.release_probe()
                    raise
                self.breaker.success()
        except TimeoutError:
            self.breaker.failure()
            raise SchoolTimeout(f"the card center did not finish within {limit:.0f}s") from None
        if logged_in and self._guard is not None:
            await self._guard.clear_student(key.student_id)
        fetched_at = self._now()
        entry = CacheEntry(value, fetched_at, verifier)
        name = value.name if isinstance(value, AccountInfo) else None
        await self._store(key, creds, verifier, name, codec.encode(value), session, fetched_at)
        self._memory.put(key, entry)
        return entry

    async def _with_session(
        self, creds: Credentials, verifier: str, fetch: Callable[[CardSession], Awaitable[T]]
    ) -> tuple[T, CardSession, bool]:
        """Read with the stored school session, if any; on a login page, log in again once.

        Returns (value, session, whether we logged in).
        """
        session = await self._stored_session(creds, verifier)
        if session is not None:
            try:
                return await self._read(fetch, session), session, False
            except SessionExpired:
                log.debug("stored session of %s expired; logging in again", creds.student_id)
        session = await self._login(creds)
        return await self._read(fetch, session), session, True

    async def _read(self, fetch: Callable[[CardSession], Awaitable[T]], session: CardSession) -> T:
        """An idempotent read, retried on a broken connection or 5xx within the retry budget."""
        return await self._retrying(lambda: fetch(session))

    async def _login(self, creds: Credentials) -> CardSession:
        """Log in, retried like a read: a login that failed with a 5xx or a broken
        connection left no session behind, and a repeated one only opens another."""
        return await self._retrying(lambda: self._client.login(creds.student_id, creds.password))

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

    async def _stored_session(self, creds: Credentials, verifier: str) -> CardSession | None:
        s = self._settings.sessions
        if not s.enabled:
            return None
        try:
            async with self._sessions() as db:
                row = await queries.get_school_session(db, creds.student_id, SYSTEM)
        except SQLAlchemyError:
            return None
        if row is None or not _same(row.verifier, verifier):
            return None
        if (self._now() - row.used_at).total_seconds() > s.max_idle_s:
            return None
        cookie = self._vault.open(creds.student_id, SYSTEM, row.sealed)
        return None if cookie is None else CardSession(creds.student_id, cookie)

    async def _store(
        self,
        key: CacheKey,
        creds: Credentials,
        verifier: str,
        name: str | None,
        payload: str,
        session: CardSession,
        fetched_at: datetime,
    ) -> None:
        """Verifier, result and sealed session in one transaction: all or nothing.

        A storage failure is logged, not raised: the student still gets the
        answer the school just gave.
        """
        sealed = self._vault.seal(creds.student_id, SYSTEM, session.cookie)
        try:
            async with self._sessions.begin() as db:
                pk = await queries.upsert_student(db, creds.student_id, verifier, name, fetched_at)
                await queries.save_card_result(db, pk, key.kind, key.params, payload, fetched_at)
                if self._settings.sessions.enabled:
                    await queries.save_school_session(db, pk, SYSTEM, sealed, fetched_at)
        except SQLAlchemyError as exc:
            log.warning("could not store a %s result: %s", key.kind, type(exc).__name__)
