"""The pipeline: one school system's stages composed, and its edge.

    query (the credential gate's ticket; errors translated on the way out)
    -> cache stage (a hit, or what may stand in)
    -> coalescing (one fetch per question in a worker, one lease across processes)
    -> school stage (quota, budget slot, breaker, session or login, retries; stored)

A service asks in a block, which holds the request's ticket until its answers
are given:

    async with pipeline.query(creds, caller) as q:
        return await q.answer(question)

Errors leave the block as `services.errors`: InvalidPassword when the school
refuses the password (PasswordChanged when it refuses the one a student's
token holds), SchoolBusy, SchoolFailing and the other school errors
translated by `from_school`; the ticket is released whatever happens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar

from observability import metrics
from school.deadline import requests_until
from school.errors import InvalidCredentials, SchoolError
from services.breaker import BreakerOpen, CircuitBreaker
from services.budget import BudgetExhausted, UpstreamBudget
from services.cache import CacheKey
from services.callers import Caller
from services.credentials import Credentials
from services.errors import (
    InvalidPassword,
    PasswordChanged,
    SchoolBusy,
    SchoolFailing,
    ServiceError,
    from_school,
)
from services.gate import CredentialGate
from services.pipeline import decisions
from services.pipeline.cache import CacheStage
from services.pipeline.coalescing import Coalescing
from services.pipeline.deadlines import Deadlines
from services.pipeline.model import Answer, Question, Source, SystemSpec, utc_now
from services.pipeline.ready import ReadyAnswers, ReadyHit
from services.pipeline.school import SchoolCall
from services.pipeline.tickets import NullTicket, Ticket
from services.storage import Codec

log = logging.getLogger("jnufm.pipeline")

T = TypeVar("T")
S = TypeVar("S")

# How often a query waiting for the school looks whether its worker started stopping.
STOP_POLL_S = 0.2


class Query(Generic[S]):
    """One request's questions to one system, under one ticket and one deadline."""

    __slots__ = ("_pipeline", "deadline", "ticket")

    def __init__(self, pipeline: Pipeline[S], ticket: Ticket, deadline: float) -> None:
        self._pipeline = pipeline
        self.ticket = ticket
        self.deadline = deadline  # time.monotonic() by which the client gets an answer

    async def answer(self, question: Question[T, S]) -> Answer[T]:
        """The answer to one question: cached, shared with an identical one in flight,
        or fetched; a stale one when the school cannot answer in time."""
        return await self._pipeline.answer(self.ticket, self.deadline, question)


class Pipeline(Generic[S]):
    """The protected path to one school system, for one worker (built by
    services/pipeline/build.py)."""

    def __init__(
        self,
        spec: SystemSpec,
        gate: CredentialGate | None,
        cache: CacheStage,
        coalescing: Coalescing,
        school: SchoolCall[S],
        deadlines: Deadlines,
        now: Callable[[], datetime] = utc_now,
        ready: ReadyAnswers | None = None,
    ) -> None:
        if (gate is not None) != spec.takes_password:
            raise ValueError("a system with passwords needs the gate, one without none")
        self.spec = spec
        self._gate = gate
        self._cache = cache
        self._coalescing = coalescing
        self._school = school
        self._deadlines = deadlines
        self._now = now
        # Bodies kept ready for a warm hit's short way (ready.py; none kept without).
        self._ready = ready if ready is not None else ReadyAnswers(0)
        self._background: set[asyncio.Future[None]] = set()
        # Fetches that outlived their request (they run on for the cache).
        self._fetches: set[asyncio.Future[Any]] = set()

    @property
    def budget(self) -> UpstreamBudget:
        return self._school.budget

    @property
    def breaker(self) -> CircuitBreaker:
        return self._school.breaker

    # The edge: every request enters here ------------------------------------------------------

    @asynccontextmanager
    async def query(self, creds: Credentials | None, caller: Caller) -> AsyncIterator[Query[S]]:
        """One request's passage, by its deadline: through the credential gate for a
        system with passwords (told how the school judged it), and with every school or
        storage failure turned into a `services.errors` error on the way out.

        Raises RateLimited while the student or address is locked out, InvalidPassword
        when the school refuses the password (PasswordChanged when it refuses the one a
        student's token holds), and the other service errors.
        """
        deadline = self._deadlines.start()
        ticket = await self._admit(creds, caller)
        try:
            yield Query(self, ticket, deadline)
        except InvalidCredentials as exc:
            await ticket.rejected()
            if creds is not None and creds.proven:
                raise PasswordChanged() from exc
            raise self._client_error(exc) from exc
        except (SchoolError, BudgetExhausted, BreakerOpen) as exc:
            raise self._client_error(exc) from exc
        finally:
            await ticket.release()

    async def _admit(self, creds: Credentials | None, caller: Caller) -> Ticket:
        """The request's ticket: the gate's, or a null one for a system without passwords."""
        if self._gate is None:
            return NullTicket(caller)
        if creds is None:
            raise ValueError(f"{self.spec.system} takes credentials")
        try:
            return await self._gate.admit(self.spec.system, creds, caller)
        except InvalidPassword:
            raise self._client_error(InvalidCredentials("wrong_password")) from None

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
            return from_school(exc, name, self.spec.password_label)
        raise TypeError(f"not a pipeline failure: {exc!r}")

    def _finish_background(self, task: asyncio.Future[Any], ticket: Ticket) -> None:
        """A fetch that outlived its request ended: mark its failure as seen (the request
        was answered already) and let the ticket go."""
        if not task.cancelled():
            task.exception()
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

    # A warm hit's short way (ready.py) ---------------------------------------------------------

    def ready(
        self, route: str, creds: Credentials, caller: Caller, q: Question[Any, S]
    ) -> ReadyHit | None:
        """A kept body that answers this request now (ready.py says when), else None: the
        whole way (`query`) answers it. Raises nothing: whatever would be refused or
        decided is left to the whole way."""
        gate = self._gate
        if q.fresh or gate is None or not self._cache.policy.enabled:
            return None
        key = (route, creds.student_id, q.kind, q.params)
        kept = self._ready.get(key)
        if kept is None:
            return None
        now = self._now()
        entry = self._cache.current(kept.key, now)
        if entry is None or entry.value is not kept.value:
            self._ready.forget(key)
            return None
        age = entry.age_s(now)
        status = decisions.hit_status(self._cache.policy, age, q.max_age_s, False)
        if status is None or not gate.proves(self.spec.system, creds, caller):
            return None
        metrics.record_cache(q.kind, "hit", "ready")
        return ReadyHit(kept.body, age, status)

    def keep(
        self, route: str, student_id: str, q: Question[T, S], answer: Answer[T], body: bytes
    ) -> None:
        """Keep the body written for an answer from the cache, for the next request of this
        route, student and question (`ready`). Any other answer (from the school, stale)
        is not kept: its body may say so."""
        if answer.source == "cache" and not answer.stale:
            key = CacheKey(self.spec.system, q.kind, student_id, q.params)
            self._ready.keep((route, student_id, q.kind, q.params), body, key, answer.value)

    # The path of one question -------------------------------------------------------------------

    async def last_answer(
        self, kind: str, subject: str, params: str, codec: Codec[T]
    ) -> Answer[T] | None:
        """The last good answer stored for a question, whatever its age, without asking
        the school (None if there is none, or storage cannot be read)."""
        return await self._cache.last_answer(kind, subject, params, codec)

    async def answer(self, ticket: Ticket, deadline: float, q: Question[T, S]) -> Answer[T]:
        """The answer to one question (`Query.answer`)."""
        cache = self._cache
        policy = cache.policy
        key = cache.key(ticket, q)
        started = self._now()
        # Only a password that matches the verifier may be answered from the cache.
        cached = await cache.lookup(key, started, q, ticket.matches)
        age = cached.age_s(started) if cached is not None else None
        hit = decisions.hit_status(policy, age, q.max_age_s, q.fresh)
        if hit is not None:
            assert cached is not None
            return cache.hit(cached, hit)
        not_before = decisions.not_before(started, q.max_age_s, q.fresh)
        stale_ready = decisions.may_stand_in(policy, ticket.matches, age)
        # The fetch runs as its own task, with the query's deadline for school requests:
        # the client is answered by the deadline (or sooner, with a stale answer at hand)
        # while a school request already sent runs on, holding its budget slot, and its
        # result refreshes the cache for the next query.
        with requests_until(lambda: self._deadlines.until(deadline)):
            task = asyncio.ensure_future(
                self._coalescing.run(
                    ticket,
                    key,
                    q,
                    not_before,
                    deadline,
                    lambda: self._school.fetch(ticket, key, q, deadline),
                )
            )
        stale_by = decisions.stale_deadline(policy, time.monotonic(), stale_ready)
        try:
            while not task.done():
                # Asked again and again: a worker that starts stopping brings it closer.
                left = min(self._deadlines.until(deadline), stale_by) - time.monotonic()
                if left <= 0:
                    break
                await asyncio.wait({task}, timeout=min(left, STOP_POLL_S))
            if not task.done():
                ticket.hold()
                self._fetches.add(task)
                task.add_done_callback(self._fetches.discard)
                task.add_done_callback(lambda t: self._finish_background(t, ticket))
                status = decisions.stale_status(policy, ticket.matches, age, q.max_age_s, None)
                if status is not None:
                    assert cached is not None
                    return cache.stale(key, cached, status)
                raise self._deadlines.too_late(self.spec.name)
            entry, collapsed = task.result()
        except Exception as exc:
            if not decisions.stands_in_for(exc):
                raise
            stale = cached
            if stale is None:
                stale = await cache.lookup(key, started, q, ticket.matches)
            stale_age = stale.age_s(started) if stale is not None else None
            status = decisions.stale_status(policy, ticket.matches, stale_age, q.max_age_s, exc)
            if status is None:
                raise
            assert stale is not None
            log.info(
                "%s %s for %s: stale answer (%s)",
                key.system,
                key.kind,
                key.subject or "everyone",
                type(exc).__name__,
            )
            return cache.stale(key, stale, status)
        if collapsed and not ticket.matches:
            # Another request logged in with this same password and the school accepted it.
            await ticket.accepted()
        status = decisions.fetched_status(q.fresh, cached is not None, collapsed)
        source: Source = "cache" if collapsed else "school"
        return Answer(entry.value, entry.fetched_at, source, False, status)
