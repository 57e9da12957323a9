"""The pipeline's coalescing stage: one fetch per question at a time.

In a worker, identical questions (same key, same password) share one flight;
across processes and hosts, one lease per student (their questions are
fetched one at a time), or per question for answers every student shares,
and whoever does not hold it waits for the holder's stored result.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from observability import metrics
from services import codes
from services.breaker import CircuitBreaker
from services.budget import BudgetExhausted
from services.cache import CacheEntry, CacheKey
from services.errors import RateLimited
from services.leases import new_holder_id
from services.pipeline.deadlines import Deadlines
from services.pipeline.model import Question, SystemSpec
from services.pipeline.tickets import Ticket
from services.storage import Storage

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CoalescingPolicy:
    """`coalescing.*` and the waits of `budget.*` that bound it."""

    enabled: bool
    lease_s: float  # a question's lease across processes
    poll_s: float  # how often a waiter looks for the holder's result
    per_student_queue: int  # a student's queries waiting in this worker, at most
    wait_s: float  # how long a waiter waits beyond the lease (`budget.wait_s`)


def lease_name(key: CacheKey) -> str:
    """One lease per student (their questions are fetched one at a time), or per
    question for an answer every student shares."""
    if key.subject:
        return f"{key.system}:{key.subject}"
    digest = hashlib.sha256(f"{key.kind}\0{key.params}".encode()).hexdigest()[:32]
    return f"{key.system}:{key.kind}:{digest}"


Fetch = Callable[[], Awaitable[CacheEntry[T]]]


@dataclass(frozen=True, slots=True)
class Flight(Generic[T]):
    """One request's question on its way to the school: who asks, under which key, what
    result from another process may stand for it (stored since `not_before`), by when
    (`deadline`, time.monotonic()), and how to fetch it."""

    ticket: Ticket
    key: CacheKey
    q: Question[T, Any]
    not_before: datetime
    deadline: float
    fetch: Fetch[T]


class Coalescing:
    """One system's flights in this worker and leases across processes."""

    def __init__(
        self,
        spec: SystemSpec,
        storage: Storage,
        policy: CoalescingPolicy,
        breaker: CircuitBreaker,
        deadlines: Deadlines,
    ) -> None:
        self._spec = spec
        self._storage = storage
        self._policy = policy
        self._breaker = breaker
        self._deadlines = deadlines
        self._flights: dict[tuple[CacheKey, str], asyncio.Future[tuple[CacheEntry[Any], bool]]] = {}
        self._waiting: dict[str, int] = {}

    async def run(
        self,
        ticket: Ticket,
        key: CacheKey,
        q: Question[T, Any],
        not_before: datetime,
        deadline: float,
        fetch: Fetch[T],
    ) -> tuple[CacheEntry[T], bool]:
        """One fetch per (question, password) in this worker; others wait. Returns
        (entry, shared)."""
        if not self._policy.enabled:
            return await fetch(), False
        f = Flight(ticket, key, q, not_before, deadline, fetch)
        flight = (key, ticket.flight)
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
            result = await self._across_processes(f)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: followers may be none
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._flights[flight]

    async def _across_processes(self, f: Flight[T]) -> tuple[CacheEntry[T], bool]:
        """Hold the question's lease while fetching; without it, wait for the holder's result.

        The lease of a student's questions is per student, so one student never holds
        more than one budget slot: their requests cannot fill the school's line for
        everyone else.
        """
        self._breaker.raise_if_open()  # fail fast, without waiting in any line
        subject = f.key.subject
        if subject:
            waiting = self._waiting.get(subject, 0)
            if waiting >= self._policy.per_student_queue:
                raise RateLimited(
                    codes.STUDENT_BUSY,
                    f"too many queries for this student are waiting for {self._spec.name}",
                    1,
                )
            self._waiting[subject] = waiting + 1
        try:
            return await self._lease_then_fetch(f)
        finally:
            if subject:
                left = self._waiting[subject] - 1
                if left:
                    self._waiting[subject] = left
                else:
                    del self._waiting[subject]

    async def _lease_then_fetch(self, f: Flight[T]) -> tuple[CacheEntry[T], bool]:
        p = self._policy
        leases = self._storage.leases
        name = lease_name(f.key)
        holder = new_holder_id()
        give_up = time.monotonic() + p.lease_s + p.wait_s
        while True:
            if await leases.try_acquire(name, holder, p.lease_s):
                try:
                    # The previous holder may have stored what we need just before letting go.
                    done = await self._result_for(f)
                    if done is not None:
                        return done, True
                    return await f.fetch(), False
                finally:
                    await asyncio.shield(leases.release(name, holder, p.lease_s))
            await asyncio.sleep(p.poll_s)
            done = await self._result_for(f)
            if done is not None:
                return done, True
            if time.monotonic() > min(give_up, self._deadlines.until(f.deadline)):
                raise BudgetExhausted(self._spec.system, p.lease_s)

    async def _result_for(self, f: Flight[T]) -> CacheEntry[T] | None:
        """A result another process stored since `not_before`, if this request may have it.

        A password that did not match the verifier may have it only once the school
        has accepted that same password for another request (the verifier is now it).
        """
        done = await self._storage.stored(f.key, f.q.codec, since=f.not_before)
        if done is None or done.fetched_at < f.not_before:
            return None
        if not f.ticket.matches and not await f.ticket.proven_elsewhere():
            return None
        self._storage.remember(f.key, done)
        metrics.coalesced_wait(f.key.kind)
        return done
