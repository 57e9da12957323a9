"""The protection pipeline every school system plugs into: answer from the cache when fresh
enough, else ask the school once, never more than it can take.

The path of one request:

    credential gate (services/gate.py; systems with passwords only)
    -> memory cache -> database cache (services/storage.py)
    -> coalescing (one fetch per question in a worker; across processes, one lease
       per student, or per question for answers every student shares)
    -> budget slot (a global cap per system) -> breaker (per system, per host)
    -> school: the stored session, else a login (credentials), or a plain request
    -> store result + sealed session -> answer

and when the school fails, is over budget, its breaker is open or the query's
deadline comes: the last good answer within `cache.max_stale_s`, marked stale,
else the error. Errors leave as `services.errors` (translated at the edge,
`ask`).

A school system is a `Connector` (how to log in, and how to keep a session as
text) and the `Question`s its service asks; the pipeline knows nothing else of
it. `services/card.py` is the card center's service; adding a system means a
client, a connector and questions, not a change here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import inf
from typing import Any, Generic, Literal, Protocol, TypeVar

from observability import metrics
from school.deadline import requests_until
from school.errors import (
    AnswerRefused,
    DeadlinePassed,
    InvalidCredentials,
    SchoolConnectionError,
    SchoolError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SchoolUnavailable,
    SessionExpired,
)
from services.breaker import BreakerCall, BreakerOpen, BreakerTable, CircuitBreaker
from services.budget import BudgetExhausted, UpstreamBudget
from services.cache import CacheEntry, CacheKey, estimated_size
from services.callers import Caller
from services.credentials import Credentials
from services.errors import (
    InvalidPassword,
    PasswordChanged,
    RateLimited,
    SchoolBusy,
    SchoolFailing,
    SchoolTimedOut,
    ServiceError,
    ShuttingDown,
    StorageUnavailable,
    from_school,
)
from services.gate import CredentialGate, Ticket
from services.leases import new_holder_id
from services.rates import RequestRateLimiter
from services.retry import RetryBudget, backoff_s
from services.storage import Codec, SessionToKeep, Storage
from settings import Settings

log = logging.getLogger("jnufm.pipeline")

T = TypeVar("T")
S = TypeVar("S")
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


def combined(parts: list[Answer[list[T]]]) -> Answer[list[T]]:
    """Several answers' rows as one answer: as old as the oldest, stale if any is."""
    rows = [row for part in parts for row in part.value]
    oldest = min(parts, key=lambda p: p.as_of)
    return Answer(
        rows,
        oldest.as_of,
        "cache" if all(p.source == "cache" for p in parts) else "school",
        any(p.stale for p in parts),
        oldest.cache_status,
    )


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """What the pipeline must know of a school system."""

    system: str  # its name in keys, metrics and leases: "card"
    name: str  # in messages: "the card center"
    password: str | None  # in messages: "card password"; None: no credentials
    budget: int  # school requests at once, over every worker and host


class Connector(Protocol[S]):
    """How a system with credentials is logged in to, and its sessions kept as text."""

    async def login(self, student_id: str, password: str) -> S: ...

    def session_value(self, session: S) -> str: ...

    def session_from(self, student_id: str, value: str) -> S: ...


class CookieConnector(Generic[S]):
    """A system whose session is the school's session cookie: log in with the client,
    keep the cookie, rebuild the session from it (the card center, the academic office)."""

    def __init__(
        self,
        login: Callable[[str, str], Awaitable[S]],
        make: Callable[[str, str], S],
        cookie: Callable[[S], str],
    ) -> None:
        self._login, self._make, self._cookie = login, make, cookie

    async def login(self, student_id: str, password: str) -> S:
        return await self._login(student_id, password)

    def session_value(self, session: S) -> str:
        return self._cookie(session)

    def session_from(self, student_id: str, value: str) -> S:
        return self._make(student_id, value)


@dataclass(frozen=True, slots=True)
class Question(Generic[T, S]):
    """One question to a school system for one request: what, how fresh, how to fetch it."""

    kind: str  # what kind of answer: "account", "timetable", "search"
    params: str  # its parameters, as they key the cache
    max_age_s: float  # how old a cached answer may be
    fetch: Callable[[S], Awaitable[T]]  # with the session (None for systems without)
    codec: Codec[T]
    fresh: bool  # the client asked for fresh data
    deadline: float  # time.monotonic() by which the client gets an answer
    # The student's name, when the answer carries it (kept with the student).
    name_of: Callable[[T], str | None] | None = None
    # Who asks, for the quotas on school requests and the fair share of the budget of
    # systems without credentials (with credentials, the gate's ticket carries it).
    caller: Caller | None = None


def utc_now() -> datetime:
    return datetime.now(UTC)


def _status_of(exc: BaseException) -> int:
    if isinstance(exc, SchoolTimeout | DeadlinePassed):
        return 504
    if isinstance(exc, BudgetExhausted | BreakerOpen | StorageUnavailable):
        return 503
    return 502


class Pipeline(Generic[S]):
    """The protected path to one school system, for one worker."""

    def __init__(
        self,
        spec: SystemSpec,
        connector: Connector[S] | None,
        storage: Storage,
        settings: Settings,
        gate: CredentialGate | None = None,
        *,
        now: Callable[[], datetime] = utc_now,
        school_limiter: RequestRateLimiter | None = None,
        stop_by: Callable[[], float | None] = lambda: None,
        breakers: BreakerTable | None = None,
    ) -> None:
        if (connector is None) != (spec.password is None) or (gate is None) != (
            spec.password is None
        ):
            raise ValueError("a system with credentials needs a connector and the gate")
        self.spec = spec
        self._connector = connector
        self._storage = storage
        self._settings = settings
        self._gate = gate
        self._now = now
        self._school_limiter = school_limiter
        # When this worker must have answered everything (it is stopping), else None.
        self._stop_by = stop_by
        b = settings.budget
        # The whole operation ends before our coalescing lease does, so no one else
        # fetches meanwhile; the budget's slot lease outlasts it and its last request.
        self._hold_s = max(1.0, settings.coalescing.lease_s - 1.0)
        self.budget = UpstreamBudget(
            storage.leases,
            spec.system,
            spec.budget,
            b.slot_lease_s,
            b.poll_s,
            in_flight_s=settings.school.systems()[spec.system].total_timeout_s + b.abandoned_s,
            hold_s=self._hold_s,
            abandoned_s=b.abandoned_s,
        )
        br = settings.breaker
        self.breaker = CircuitBreaker(
            spec.system,
            br.failures,
            br.open_s,
            table=breakers,
            min_students=br.min_students,
            window=br.window,
            window_s=br.window_s,
            failure_rate=br.failure_rate,
            # A call still running at the query deadline answers nobody in time: bad then.
            slow_call_s=min(br.slow_call_s, settings.api.deadline_s),
            budget=spec.budget,
        )
        self._retries = RetryBudget(settings.retries.budget_ratio)
        self._flights: dict[tuple[CacheKey, str], asyncio.Future[tuple[CacheEntry[Any], bool]]] = {}
        self._waiting: dict[str, int] = {}
        self._background: set[asyncio.Future[None]] = set()
        # Fetches that outlived their request (they run on for the cache).
        self._fetches: set[asyncio.Future[Any]] = set()

    # The edge: every request enters here ------------------------------------------------------

    async def ask(
        self,
        creds: Credentials | None,
        caller: Caller,
        run: Callable[[Ticket | None, float], Awaitable[Answer[T]]],
    ) -> Answer[T]:
        """Answer one request by its deadline: through the credential gate for a system
        with passwords (told how the school judged it), and with every school or
        storage failure turned into a `services.errors` error here.

        Raises RateLimited while the student or address is locked out, InvalidPassword
        when the school refuses the password (PasswordChanged when it refuses the one a
        student's token holds), and the other service errors.
        """
        deadline = self._deadline()
        ticket: Ticket | None = None
        try:
            if self._gate is not None:
                assert creds is not None
                try:
                    ticket = await self._gate.admit(self.spec.system, creds, caller)
                except InvalidPassword:
                    raise self._client_error(InvalidCredentials("wrong_password")) from None
            try:
                return await run(ticket, deadline)
            except InvalidCredentials as exc:
                if ticket is not None:
                    await ticket.rejected()
                if creds is not None and creds.proven:
                    raise PasswordChanged() from exc
                raise self._client_error(exc) from exc
            except (SchoolError, BudgetExhausted, BreakerOpen) as exc:
                raise self._client_error(exc) from exc
        finally:
            if ticket is not None:
                await ticket.release()

    def attempt_of(self, creds: Credentials) -> str:
        """How tokens remember which password they were made with (its verifier's prefix)."""
        if self._gate is None:
            raise ValueError(f"{self.spec.system} takes no credentials")
        return self._gate.attempt_of(self.spec.system, creds)

    def _client_error(self, exc: Exception) -> ServiceError:
        """What a failure means to the client (the pipeline's one translation point)."""
        name = self.spec.name
        if isinstance(exc, BudgetExhausted):
            return SchoolBusy(f"{name} is busy; try again shortly")
        if isinstance(exc, BreakerOpen):
            return SchoolFailing(
                f"{name} is failing; not asking it for now", max(1.0, exc.retry_after_s or 0.0)
            )
        if isinstance(exc, SchoolError):
            return from_school(exc, name, self.spec.password or "password")
        raise TypeError(f"not a pipeline failure: {exc!r}")

    def _deadline(self) -> float:
        """When a query starting now must be answered (time.monotonic())."""
        return time.monotonic() + self._settings.api.deadline_s

    def _until(self, deadline: float) -> float:
        """A query's deadline, or sooner if this worker is stopping meanwhile."""
        stop_by = self._stop_by()
        return deadline if stop_by is None else min(deadline, stop_by)

    def _too_late(self) -> ServiceError:
        """What a client gets when the school did not answer by the deadline (no stale answer)."""
        if self._stop_by() is not None:
            return ShuttingDown()
        return SchoolTimedOut(f"{self.spec.name} did not answer in time")

    def _finish_background(self, task: asyncio.Future[Any], ticket: Ticket | None) -> None:
        """A fetch that outlived its request ended: mark its failure as seen (the request
        was answered already) and let the ticket go."""
        if not task.cancelled():
            task.exception()
        if ticket is None:
            return
        release = asyncio.ensure_future(ticket.release())
        self._background.add(release)
        release.add_done_callback(self._background.discard)

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

    # The path of one question -------------------------------------------------------------------

    async def last_answer(
        self, kind: str, subject: str, params: str, codec: Codec[T]
    ) -> Answer[T] | None:
        """The last good answer stored for a question, whatever its age, without asking
        the school (None if there is none, or storage cannot be read)."""
        key = CacheKey(self.spec.system, kind, subject, params)
        now = self._now()
        entry = await self._storage.lookup(key, now, inf, codec)
        if entry is None:
            return None
        return Answer(entry.value, entry.fetched_at, "cache", False, "jnufm; hit")

    def key_of(self, ticket: Ticket | None, q: Question[T, S]) -> CacheKey:
        subject = ticket.presented.student_id if ticket is not None else ""
        return CacheKey(self.spec.system, q.kind, subject, q.params)

    async def answer(self, ticket: Ticket | None, q: Question[T, S]) -> Answer[T]:
        """The answer to one question: cached, shared with an identical one in flight,
        or fetched; a stale one when the school cannot answer in time."""
        key = self.key_of(ticket, q)
        started = self._now()
        # Only a password that matches the verifier may be answered from the cache.
        cache_on = self._settings.cache.enabled and (ticket is None or ticket.matches)
        cached = (
            await self._storage.lookup(key, started, q.max_age_s, q.codec) if cache_on else None
        )
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
            task = asyncio.ensure_future(self._coalesced(ticket, key, q, not_before))
        stale_by = time.monotonic() + self._settings.cache.stale_wait_s if stale_ready else inf
        try:
            while not task.done():
                # Asked again and again: a worker that starts stopping brings it closer.
                left = min(self._until(q.deadline), stale_by) - time.monotonic()
                if left <= 0:
                    break
                await asyncio.wait({task}, timeout=min(left, STOP_POLL_S))
            if not task.done():
                if ticket is not None:
                    ticket.hold()
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)
                task.add_done_callback(lambda t: self._finish_background(t, ticket))
                if stale_ready:
                    assert cached is not None
                    return self._stale(key, q, cached, started, "stale-while-revalidate")
                raise self._too_late()
            entry, collapsed = task.result()
        except STALE_IF as exc:
            stale = cached
            if stale is None and cache_on:
                stale = await self._storage.lookup(key, started, q.max_age_s, q.codec)
            if self._may_serve_stale(ticket, stale, started):
                assert stale is not None
                log.info(
                    "%s %s for %s: stale answer (%s)",
                    key.system,
                    key.kind,
                    key.subject or "everyone",
                    type(exc).__name__,
                )
                return self._stale(key, q, stale, started, "stale-if-error", exc)
            raise
        if collapsed and ticket is not None and not ticket.matches:
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

    def _may_serve_stale(
        self, ticket: Ticket | None, entry: CacheEntry[T] | None, now: datetime
    ) -> bool:
        """An old answer may stand in: young enough, and the password (if any) matches
        the verifier."""
        return (
            entry is not None
            and (ticket is None or ticket.matches)
            and self._settings.cache.enabled
            and entry.age_s(now) <= self._settings.cache.max_stale_s
        )

    def _stale(
        self,
        key: CacheKey,
        q: Question[T, S],
        entry: CacheEntry[T],
        now: datetime,
        why: str,
        exc: BaseException | None = None,
    ) -> Answer[T]:
        metrics.record_cache(key.kind, "stale", "db")
        ttl = int(q.max_age_s - entry.age_s(now))
        forwarded = "" if exc is None else f"; fwd-status={_status_of(exc)}"
        status = f'jnufm; fwd=stale{forwarded}; ttl={ttl}; detail="{why}"'
        return Answer(entry.value, entry.fetched_at, "cache", True, status)

    async def _coalesced(
        self, ticket: Ticket | None, key: CacheKey, q: Question[T, S], not_before: datetime
    ) -> tuple[CacheEntry[T], bool]:
        """One fetch per (question, password) in this worker; others wait. Returns
        (entry, shared)."""
        if not self._settings.coalescing.enabled:
            return await self._from_school(ticket, key, q), False
        flight = (key, ticket.presented.verifier if ticket is not None else "")
        while (leader := self._flights.get(flight)) is not None:
            metrics.coalesced_wait(key.kind)
            try:
                entry, _ = await asyncio.shield(leader)
            except RateLimited:
                # The leader's own limit (its address's school requests, its student's
                # line), not this request's: this one asks for itself (leads, or joins
                # the next leader).
                continue
            return entry, True
        future: asyncio.Future[tuple[CacheEntry[Any], bool]] = (
            asyncio.get_running_loop().create_future()
        )
        self._flights[flight] = future
        try:
            result = await self._across_processes(ticket, key, q, not_before)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._flights[flight]

    def _lease_name(self, key: CacheKey) -> str:
        """One lease per student (their questions are fetched one at a time), or per
        question for an answer every student shares."""
        if key.subject:
            return f"{key.system}:{key.subject}"
        digest = hashlib.sha256(f"{key.kind}\0{key.params}".encode()).hexdigest()[:32]
        return f"{key.system}:{key.kind}:{digest}"

    async def _across_processes(
        self, ticket: Ticket | None, key: CacheKey, q: Question[T, S], not_before: datetime
    ) -> tuple[CacheEntry[T], bool]:
        """Hold the question's lease while fetching; without it, wait for the holder's result.

        The lease of a student's questions is per student, so one student never holds
        more than one budget slot: their requests cannot fill the school's line for
        everyone else.
        """
        self.breaker.raise_if_open()  # fail fast, without waiting in any line
        subject = key.subject
        if subject:
            waiting = self._waiting.get(subject, 0)
            if waiting >= self._settings.budget.per_student_queue:
                raise RateLimited(
                    "student_busy",
                    f"too many queries for this student are waiting for {self.spec.name}",
                    1,
                )
            self._waiting[subject] = waiting + 1
        try:
            return await self._lease_then_fetch(ticket, key, q, not_before)
        finally:
            if subject:
                left = self._waiting[subject] - 1
                if left:
                    self._waiting[subject] = left
                else:
                    del self._waiting[subject]

    async def _lease_then_fetch(
        self, ticket: Ticket | None, key: CacheKey, q: Question[T, S], not_before: datetime
    ) -> tuple[CacheEntry[T], bool]:
        c = self._settings.coalescing
        leases = self._storage.leases
        name = self._lease_name(key)
        holder = new_holder_id()
        give_up = time.monotonic() + c.lease_s + self._settings.budget.wait_s
        while True:
            if await leases.try_acquire(name, holder, c.lease_s):
                try:
                    # The previous holder may have stored what we need just before letting go.
                    done = await self._result_for(ticket, key, q, not_before)
                    if done is not None:
                        return done, True
                    return await self._from_school(ticket, key, q), False
                finally:
                    await asyncio.shield(leases.release(name, holder, c.lease_s))
            await asyncio.sleep(c.poll_s)
            done = await self._result_for(ticket, key, q, not_before)
            if done is not None:
                return done, True
            if time.monotonic() > min(give_up, self._until(q.deadline)):
                raise BudgetExhausted(self.spec.system, c.lease_s)

    async def _result_for(
        self, ticket: Ticket | None, key: CacheKey, q: Question[T, S], not_before: datetime
    ) -> CacheEntry[T] | None:
        """A result another process stored since `not_before`, if this request may have it.

        A password that did not match the verifier may have it only once the school
        has accepted that same password for another request (the verifier is now it).
        """
        done = await self._storage.stored(key, q.codec, since=not_before)
        if done is None or done.fetched_at < not_before:
            return None
        if ticket is not None and not ticket.matches and not await ticket.proven_elsewhere():
            return None
        self._storage.remember(key, done)
        metrics.coalesced_wait(key.kind)
        return done

    async def _from_school(
        self, ticket: Ticket | None, key: CacheKey, q: Question[T, S]
    ) -> CacheEntry[T]:
        """Fetch within one budget slot, through the breaker; store and return the result."""
        caller = ticket.caller if ticket is not None else q.caller
        if caller is not None:
            self._within_quota(caller)
        limit = self._hold_s
        # Wait in line no longer than the query's deadline: a slot taken after it could
        # only do work nobody waits for.
        wait = min(self._settings.budget.wait_s, self._until(q.deadline) - time.monotonic())
        if wait <= 0:
            raise BudgetExhausted(self.spec.system, 0.0)
        # Bad calls must come from several subjects to open the breaker: students, or
        # for shared answers the questions themselves.
        subject = key.subject or f"{key.kind}:{key.params}"
        call: BreakerCall | None = None
        try:
            tenant = caller.key if caller is not None else ""
            # A request waiting in line gives up as soon as the breaker opens.
            still_wanted = self.breaker.raise_if_open
            async with asyncio.timeout(limit), self.budget.slot(wait, tenant, still_wanted):
                call = self.breaker.begin(subject)
                value, session = await self._with_session(ticket, q.fetch)
                call.ok()
        except AnswerRefused:
            # The school answered; we refuse the answer for what was asked (a cover too
            # large): about this request, so it must not open the breaker for everyone.
            if call is not None:
                call.neutral()
            raise
        except (SchoolUnavailable, SchoolPageError):
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
        fetched_at = self._now()
        payload = q.codec.encode(value)
        entry = CacheEntry(value, fetched_at, estimated_size(payload))
        name = q.name_of(value) if q.name_of is not None else None
        await self._storage.save(key, payload, fetched_at, name, session)
        self._storage.remember(key, entry)
        return entry

    def _within_quota(self, caller: Caller) -> None:
        """A fixed cap on one caller's school requests, where one is set (a registered
        client's `school_requests_per_s`, or `limits.school_requests_per_s` for an address;
        0, the default, leaves it to the fair share of the budget). Raises RateLimited."""
        limiter = self._school_limiter
        if limiter is None:
            return
        client = caller.client
        if client is not None:
            if client.school_requests_per_s > 0:
                limiter.check_subject(
                    client.name, client.school_requests_per_s, client.school_burst
                )
        elif self._settings.limits.school_requests_per_s > 0:
            limiter.check(caller.ip)

    async def _with_session(
        self, ticket: Ticket | None, fetch: Callable[[S], Awaitable[T]]
    ) -> tuple[T, SessionToKeep | None]:
        """Read with the stored school session (only for a password that matches the
        verifier); else, or on a login page, log in. Returns (value, session to keep)."""
        connector = self._connector
        if ticket is None or connector is None:
            return await self._retrying(lambda: fetch(None)), None  # type: ignore[arg-type]
        student = ticket.presented.student_id
        if ticket.matches:
            value = await self._storage.session_value(self.spec.system, student)
            if value is not None:
                session = connector.session_from(student, value)
                try:
                    result = await self._read(fetch, session)
                    return result, SessionToKeep(connector.session_value(session), False)
                except SessionExpired:
                    log.debug(
                        "stored %s session of %s expired; logging in again",
                        self.spec.system,
                        student,
                    )
        session = await self._login(ticket, connector)
        result = await self._read(fetch, session)
        return result, SessionToKeep(connector.session_value(session), True)

    async def _read(self, fetch: Callable[[S], Awaitable[T]], session: S) -> T:
        """An idempotent read, retried on a broken connection or 5xx within the retry budget."""
        return await self._retrying(lambda: fetch(session))

    async def _login(self, ticket: Ticket, connector: Connector[S]) -> S:
        """Let the school judge the password (the gate counts it first), and tell the gate.

        Retried like a read: a login that failed with a 5xx or a broken connection
        left no session behind, and a repeated one only opens another.
        """
        await ticket.before_login()
        student_id, password = ticket.credentials()
        try:
            session = await self._retrying(lambda: connector.login(student_id, password))
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
