"""Polls students' due watches on the school's spare capacity only.

Each worker runs one loop (start/stop as services/canary.py's), one poll at a time. A
step (`run_once`):

1. gives way (outcome `yielded`) while a student's query of this worker waits for the
   school budget of a system, its breaker is open, or its budget (over every process)
   has no slot to spare beside the poll's own (with a budget of 2 or more, a poll
   leaves at least one slot free for a student who comes meanwhile; with 1, it polls
   only while the slot is free): only watches of the other systems may be claimed,
   none if both are busy;
2. takes one poll from the watches' own ceiling (`watches.school_requests_per_min`):
   a token bucket of polls in the host's shared rate table, keyed by the database
   (every worker of the host shares it), filled at the ceiling divided by the dearest
   kind's cost (kinds.SCHOOL_REQUESTS: its page and a login, counted whether or not
   the stored school session spares the login: the count errs high, never low) and
   holding ten seconds' worth. Refused: nothing is claimed, and the loop waits for the
   bucket (`throttled`); a watch's place in line never changes for it;
3. claims a due watch, the longest due first (services/watches/store.py: a
   conditional UPDATE; one poller of all workers and hosts holds it);
4. asks through the students' own services (the answer it fetches is the cache's
   answer to the student's next query), with the watch's session token;
5. keeps the new state and the events in one transaction (`baseline`, `changed`,
   `unchanged`); next poll after the kind's interval plus up to `watches.jitter` of it.

A school that failed (busy, failing, slow, unreadable; a stale answer says the same)
puts the watch off `watches.failure_backoff_s`, doubled at each failure in a row up to
the kind's interval (`school_failed`; the count of failures is this worker's memory). A
token that no longer opens ends the watch, with the token store's reason
(`token_ended`); a claim another poller took over is left to it (`lost_claim`).

`prefetch_timetables` is the operator's `python server.py prefetch timetable`: the
current term's timetable of every student with a live academic office token, fetched
under the same ceiling and giving way to students in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, TypeVar

from observability import metrics
from services.budget import slot_prefix
from services.callers import Caller
from services.errors import (
    InvalidPassword,
    PasswordChanged,
    RateLimited,
    ServiceError,
    StorageUnavailable,
    TokenRefused,
    TokenScope,
)
from services.pipeline import Answer, utc_now
from services.rates import RequestRateLimiter
from services.tokens import SessionGrant, TokenStore
from services.watches import kinds
from services.watches.kinds import Step, WatchRef
from services.watches.notices import KIND_SYSTEM
from services.watches.store import ClaimedWatch, WatchStore
from settings import Settings
from systems.academic.service import AcademicService
from systems.card.service import CardService

log = logging.getLogger("jnufm.watches")

T = TypeVar("T")

Outcome = Literal[
    "idle",
    "yielded",
    "throttled",
    "baseline",
    "changed",
    "unchanged",
    "school_failed",
    "token_ended",
    "lost_claim",
]

# Who the watches are to the limits, the gate and the budget's fair share: an address
# of their own, never a client's.
CALLER: Final = Caller(ip="127.0.0.1", address="watches")
# The loop's pauses: nothing due, students waiting (looked at again soon).
IDLE_S: Final = 5.0
YIELD_S: Final = 1.0
# A prefetch waiting for students or the ceiling gives up after this many looks.
PREFETCH_PATIENCE: Final = 3600
PREFETCH_BATCH: Final = 100


@dataclass(frozen=True, slots=True)
class WatchTargets:
    """The students' services the watches ask, and how busy the school is for them."""

    card: CardService | None
    academic: AcademicService | None
    # Whether students of this worker wait for a system's budget (budget.waiting).
    students_waiting: Callable[[str], bool] = lambda system: False
    # Each system's school budget (concurrent requests over every process): a poll
    # starts only while at least one slot beyond its own stays free for students
    # (with a budget of 1, only while no slot is held).
    budgets: Mapping[str, int] = field(default_factory=dict)

    def served(self) -> tuple[str, ...]:
        return tuple(
            name
            for name, service in (("card", self.card), ("academic", self.academic))
            if service is not None
        )

    def busy(self, system: str) -> bool:
        """Whether a poll of this system must wait: students wait, or its breaker is open."""
        service: CardService | AcademicService | None = (
            self.card if system == "card" else self.academic if system == "academic" else None
        )
        if service is None:
            return True
        return self.students_waiting(system) or service.breaker.state == "open"


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one step did."""

    outcome: Outcome
    watch_id: int | None = None
    kind: str = ""
    written: int = 0
    retry_after_s: float = 0.0


@dataclass(slots=True)
class PrefetchSummary:
    """What a prefetch did."""

    tokens: int = 0
    fetched: int = 0
    failed: int = 0
    ended: int = 0
    waits: int = 0
    failures: dict[str, int] = field(default_factory=dict)


def ceiling_limiter_key(settings: Settings) -> str:
    """The watches' bucket's name: one per database (a digest, never the URL itself)."""
    return "watches|" + hashlib.sha256(settings.database.url.encode()).hexdigest()[:16]


class WatchScheduler:
    """Students' watches polled on spare capacity (see the module docstring)."""

    def __init__(
        self,
        store: WatchStore,
        tokens: TokenStore,
        targets: WatchTargets,
        ceiling: RequestRateLimiter,
        settings: Settings,
        now: Callable[[], datetime] = utc_now,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._targets = targets
        self._ceiling = ceiling
        self._settings = settings
        self._config = settings.watches
        self._now = now
        self._rng = rng
        self._key = ceiling_limiter_key(settings)
        dearest = max(kinds.SCHOOL_REQUESTS.values())
        self._polls_per_s = self._config.school_requests_per_min / 60.0 / dearest
        self._burst = max(1.0, self._polls_per_s * 10)
        # Failures in a row of each watch this worker polled (for the doubling backoff).
        self._failures: dict[int, int] = {}
        self._one_at_a_time = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # The ceiling --------------------------------------------------------------------------

    def _charge(self) -> float:
        """Take one poll from the watches' bucket: 0.0, or seconds until one may start.

        The bucket counts polls, at the ceiling's school requests a minute divided by
        the dearest poll's cost (kinds.SCHOOL_REQUESTS), and holds ten seconds' worth:
        a poll is charged whole, before any watch is claimed (a refused poll changes
        no watch's place in line)."""
        try:
            self._ceiling.check_subject(self._key, self._polls_per_s, self._burst)
        except RateLimited as exc:
            return float(exc.retry_after_s or 1.0)
        return 0.0

    def _free_systems(self) -> list[str]:
        return [s for s in self._targets.served() if not self._targets.busy(s)]

    # One step -----------------------------------------------------------------------------

    async def run_once(self) -> PollReport:
        """One step of the loop: at most one poll. Raises StorageUnavailable."""
        async with self._one_at_a_time:
            return await self._step()

    async def _spare(self, system: str) -> bool:
        """Whether the system's budget leaves a slot for students beside a poll."""
        cap = self._targets.budgets.get(system)
        if not cap:
            return True
        held = await self._store.held_slots(slot_prefix(system))
        return held < max(1, cap - 1)

    async def _step(self) -> PollReport:
        free = [system for system in self._free_systems() if await self._spare(system)]
        if not free:
            return PollReport("yielded")
        wait = self._charge()
        if wait > 0:
            metrics.record_watch_poll("any", "throttled")
            return PollReport("throttled", retry_after_s=wait)
        watch = await self._store.claim_due(free)
        if watch is None:
            return PollReport("idle")
        cost = kinds.SCHOOL_REQUESTS[watch.kind]
        metrics.record_watch_school_requests(watch.system, cost)
        report = await self._poll(watch)
        metrics.record_watch_poll(watch.kind, report.outcome)
        return report

    def _next_poll(self, kind: str) -> datetime:
        interval = self._store.interval_s(kind)
        jitter = interval * self._config.jitter * self._rng()
        return self._now() + timedelta(seconds=interval + jitter)

    def _backoff(self, watch: ClaimedWatch) -> datetime:
        failures = self._failures.get(watch.id, 0)
        if len(self._failures) > 100_000:
            self._failures.clear()
        self._failures[watch.id] = failures + 1
        delay = min(
            self._store.interval_s(watch.kind),
            self._config.failure_backoff_s * 2 ** min(failures, 30),
        )
        return self._now() + timedelta(seconds=delay)

    async def _poll(self, watch: ClaimedWatch) -> PollReport:
        try:
            grant = await self._tokens.session_by_id(watch.token_id, watch.system)
        except TokenRefused as exc:
            return await self._end(watch, exc.error.code)
        except TokenScope:
            return await self._end(watch, "token_scope")
        except StorageUnavailable:
            return await self._failed(watch, "storage")
        if self._targets.busy(watch.system):
            # Students came while the watch was claimed: it goes back, due now.
            await self._store.put_off(watch, self._now())
            return PollReport("yielded", watch.id, watch.kind)
        try:
            step = await self._ask(watch, grant)
        except (InvalidPassword, PasswordChanged):
            # The token's password no longer works at the school: the gate ends the
            # token; its watch ends with it.
            return await self._end(watch, "password_changed")
        except (ServiceError, _Stale) as exc:
            return await self._failed(watch, type(exc).__name__)
        self._failures.pop(watch.id, None)
        written = await self._store.save_poll(
            watch, step.state, step.notices, self._next_poll(watch.kind)
        )
        if written is None:
            return PollReport("lost_claim", watch.id, watch.kind)
        outcome: Outcome = (
            "baseline" if watch.state is None else "changed" if step.notices else "unchanged"
        )
        return PollReport(outcome, watch.id, watch.kind, written)

    async def _end(self, watch: ClaimedWatch, reason: str) -> PollReport:
        await self._store.end(watch.id, reason)
        self._failures.pop(watch.id, None)
        log.info("watch %d ended: its token ended (%s)", watch.id, reason)
        return PollReport("token_ended", watch.id, watch.kind)

    async def _failed(self, watch: ClaimedWatch, why: str) -> PollReport:
        log.info("watch %d: poll failed (%s); put off", watch.id, why)
        await self._store.put_off(watch, self._backoff(watch))
        return PollReport("school_failed", watch.id, watch.kind)

    async def _ask(self, watch: ClaimedWatch, grant: SessionGrant) -> Step:
        """Ask the school the watch's question; the new state and events."""
        creds = grant.credentials()
        ref = WatchRef(watch.id, watch.student_id, watch.kind, watch.param)
        old = watch.state
        now = self._now()
        kind = watch.kind
        if KIND_SYSTEM[kind] == "card":
            card = self._targets.card
            if card is None:
                raise _Stale("the card center is not served here")
            if kind == "card_transaction":
                rows = _fresh(await card.today_transactions(creds, CALLER, fresh=True))
                return kinds.card_transactions(ref, old, rows, card.school_today().isoformat(), now)
            account = _fresh(await card.balance(creds, CALLER, fresh=True))
            return kinds.low_balance(ref, old, account, now)
        academic = self._targets.academic
        if academic is None:
            raise _Stale("the academic office is not served here")
        term = academic.term(None, None)
        if kind == "grade":
            grades = _fresh(await academic.grades(creds, term, CALLER, fresh=True))
            return kinds.grades(ref, old, grades, term.key, now)
        if kind == "exam_soon":
            exams = _fresh(await academic.exams(creds, term, CALLER, fresh=True))
            return kinds.exams_soon(ref, old, exams, term.key, now)
        table = _fresh(await academic.timetable(creds, term, CALLER, fresh=True))
        return kinds.timetable(ref, old, table, term.key, now)

    # Prefetch -----------------------------------------------------------------------------

    async def _wait_for_room(
        self,
        system: str,
        cost: int,
        summary: PrefetchSummary,
        busy_elsewhere: Callable[[str], Awaitable[bool]] | None,
    ) -> bool:
        """Wait until students do not wait for `system` and the ceiling gives `cost`
        requests; False if that did not come within PREFETCH_PATIENCE looks."""
        for _ in range(PREFETCH_PATIENCE):
            if self._targets.busy(system) or (
                busy_elsewhere is not None and await busy_elsewhere(system)
            ):
                summary.waits += 1
                await asyncio.sleep(YIELD_S)
                continue
            wait = self._charge()
            if wait <= 0:
                metrics.record_watch_school_requests(system, cost)
                return True
            summary.waits += 1
            await asyncio.sleep(wait)
        return False

    async def prefetch_timetables(
        self,
        progress: Callable[[PrefetchSummary], None] | None = None,
        busy_elsewhere: Callable[[str], Awaitable[bool]] | None = None,
    ) -> PrefetchSummary:
        """The current term's timetable of every student with a live academic office
        token, fetched (fresh) into the cache, one at a time, on spare capacity.
        `busy_elsewhere`: whether students of other processes may be waiting for a
        system (a process of its own cannot see the workers' lines)."""
        summary = PrefetchSummary()
        academic = self._targets.academic
        if academic is None:
            return summary
        term = academic.term(None, None)
        cost = kinds.SCHOOL_REQUESTS["timetable_change"]
        students: set[str] = set()
        after = 0
        while True:
            ids = await self._store.live_tokens("academic", after, PREFETCH_BATCH)
            if not ids:
                break
            after = ids[-1]
            for token_id in ids:
                try:
                    grant = await self._tokens.session_by_id(token_id, "academic")
                except (TokenRefused, TokenScope):
                    summary.ended += 1
                    continue
                if grant.student_id in students:
                    continue  # one fetch per student, whatever their tokens
                students.add(grant.student_id)
                summary.tokens += 1
                if not await self._wait_for_room("academic", cost, summary, busy_elsewhere):
                    summary.failed += 1
                    summary.failures["no_room"] = summary.failures.get("no_room", 0) + 1
                    continue
                try:
                    _fresh(await academic.timetable(grant.credentials(), term, CALLER, fresh=True))
                except (ServiceError, _Stale) as exc:
                    summary.failed += 1
                    name = exc.code if isinstance(exc, ServiceError) else "stale"
                    summary.failures[name] = summary.failures.get(name, 0) + 1
                else:
                    summary.fetched += 1
                if progress is not None:
                    progress(summary)
        return summary

    # The loop -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (nothing if `watches.enabled` is false)."""
        if self._config.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Let a poll under way end (within `shutdown_grace_s`, then cancel it)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self._settings.shutdown_grace_s)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        # Workers started together would otherwise all look at once.
        pause = random.uniform(0, IDLE_S)
        while not await self._stopped_within(pause):
            try:
                report = await self.run_once()
            except StorageUnavailable as exc:
                log.warning("watches: storage unavailable (%s)", exc.message)
                report = PollReport("idle")
            except Exception:  # never let the loop die: the next step may do better
                log.exception("watches: a step failed")
                report = PollReport("idle")
            if report.outcome == "idle":
                pause = IDLE_S * random.uniform(0.5, 1.5)
            elif report.outcome == "yielded":
                pause = YIELD_S * random.uniform(0.5, 1.5)
            elif report.outcome == "throttled":
                pause = report.retry_after_s
            else:
                pause = 0.0

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds <= 0:
            await asyncio.sleep(0)  # let others run between polls
            return self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()


class _Stale(Exception):
    """An answer that is not the school's of now (a stale one standing in for a failure)."""


def _fresh(answer: Answer[T]) -> T:
    """The answer's value, if the school gave it now. Raises _Stale."""
    if answer.stale:
        raise _Stale("a stale answer stood in for the school's")
    return answer.value
