"""Retention: what the database keeps past its use is deleted in the background.

What each table keeps is decided by `plan` (a pure function of the settings and the
time: config.yaml `retention:` says it in words); the queries are in db/retention.py.

Every worker runs a round every `retention.interval_s` or so (jittered, so workers
and hosts spread out), so pruning goes on while any worker lives. A table is pruned
by whoever takes its lease (`retention:<table>`, services/leases.py): one process of
all hosts at a time; the others skip it. Rows go `retention.batch` at a time, each
batch its own short transaction with `retention.pause_s` between them, so requests'
writes never wait behind more than one batch; a table's round stops after half an
interval (its lease lasts one) and goes on at the next.

Nothing here reaches a request: a storage error (the database away, a lost race)
ends that table's round, and the next round tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import retention as q
from observability import metrics
from services.errors import StorageUnavailable
from services.leases import LeaseStore, new_holder_id
from settings import Settings

log = logging.getLogger("jnufm.retention")

# The kinds of stored answers (systems/card/service.py, academic.py, library.py) and the
# freshness settings (each system's fresh_s) that may serve each: the card center's account
# page answers both the balance and the profile. An answer is never deleted while
# still fresh. A kind not listed here is kept as long as the longest freshness.
KIND_FRESHNESS: dict[str, tuple[str, ...]] = {
    "account": ("balance", "profile"),
    "today": ("today",),
    "history": ("history",),
    "timetable": ("timetable",),
    "exams": ("exams",),
    "grades": ("grades",),
    "search": ("search",),
    "book": ("book",),
    "cover": ("cover",),
}

# The tables in the order a round prunes them.
TABLES = (
    "results",
    "school_sessions",
    "login_failures",
    "tokens",
    "leases",
    "students",
    "page_captures",
    "wechat_followers",
    "wechat_tickets",
    "wechat_messages",
    "watches",
    "outbox",
)


@dataclass(frozen=True, slots=True)
class ResultsRule:
    """Stored answers of some kinds (None: every kind not in `other_than`), shared or
    students', fetched before `before`."""

    kinds: tuple[str, ...] | None
    shared: bool
    before: datetime
    other_than: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    """What may be deleted now: every cutoff of every table."""

    now: datetime
    results: tuple[ResultsRule, ...]
    shared_results_max: int
    sessions_used_before: datetime
    sessions_created_before: datetime
    failures_before: datetime
    tokens_ended_before: datetime
    tokens_used_before: datetime
    tokens_created_before: datetime
    token_idle_s: float
    token_max_age_s: float
    students_before: datetime
    captures_before: datetime
    wechat_followers_before: datetime
    wechat_messages_before: datetime
    watches_before: datetime
    outbox_before: datetime


def _results_rules(settings: Settings, now: datetime) -> tuple[ResultsRule, ...]:
    fresh = settings.fresh_s()
    r = settings.retention
    personal_s = settings.cache.max_stale_s if r.results_s is None else r.results_s
    shared_s = personal_s if r.shared_results_s is None else r.shared_results_s
    longest = max(fresh.values())
    rules: list[ResultsRule] = []
    for shared, keep_s in ((False, personal_s), (True, shared_s)):
        # Kinds that share a cutoff share a statement.
        by_cutoff: dict[float, list[str]] = {}
        for kind, names in KIND_FRESHNESS.items():
            kept = max(keep_s, *(fresh[name] for name in names))
            by_cutoff.setdefault(kept, []).append(kind)
        for kept, kinds in sorted(by_cutoff.items()):
            rules.append(ResultsRule(tuple(kinds), shared, now - timedelta(seconds=kept)))
        rules.append(
            ResultsRule(
                None,
                shared,
                now - timedelta(seconds=max(keep_s, longest)),
                other_than=tuple(KIND_FRESHNESS),
            )
        )
    return tuple(rules)


def plan(settings: Settings, now: datetime) -> Plan:
    """What retention deletes at `now` (see config.yaml `retention:`)."""
    sessions = settings.sessions
    tokens = settings.tokens

    def ago(seconds: float) -> datetime:
        return now - timedelta(seconds=seconds)

    return Plan(
        now=now,
        results=_results_rules(settings, now),
        shared_results_max=settings.retention.shared_results_max,
        sessions_used_before=ago(sessions.max_idle_s),
        sessions_created_before=ago(min(sessions.max_age_s, sessions.reverify_s)),
        failures_before=ago(settings.limits.failed_logins_window_s),
        tokens_ended_before=ago(tokens.keep_ended_s),
        tokens_used_before=ago(tokens.idle_s + tokens.keep_ended_s),
        tokens_created_before=ago(tokens.max_age_s + tokens.keep_ended_s),
        token_idle_s=tokens.idle_s,
        token_max_age_s=tokens.max_age_s,
        students_before=ago(settings.retention.students_s),
        captures_before=ago(settings.captures.keep_s),
        wechat_followers_before=ago(settings.wechat.ended_bindings_keep_s),
        wechat_messages_before=ago(settings.wechat.messages_keep_s),
        watches_before=ago(settings.watches.keep_s),
        outbox_before=ago(settings.watches.keep_s),
    )


# One batch of one rule: given a transaction and the batch size, delete and say how much.
Step = Callable[[AsyncSession, int], Awaitable[q.Batch]]


@dataclass(slots=True)
class TableRound:
    """What one round did to one table."""

    table: str
    outcome: str = "done"  # done, more_left, skipped (a storage error), held (by another)
    deleted: int = 0
    batches: int = 0
    error: str = ""


@dataclass(slots=True)
class _Cap:
    """The shared answers over the cap, counted once per round."""

    over: int | None = None


@dataclass(frozen=True, slots=True)
class RoundReport:
    tables: dict[str, TableRound] = field(default_factory=dict)

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tables.values())


class Retention:
    """The background pruning of one worker (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        leases: LeaseStore,
        settings: Settings,
        now: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._leases = leases
        self._settings = settings
        self._now = now
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    # The steps of each table ---------------------------------------------------------------

    def _steps(self, table: str, p: Plan) -> list[Step]:
        if table == "results":
            return [*(self._results_step(rule, p) for rule in p.results), self._cap_step(p)]
        if table == "school_sessions":
            return [
                lambda db, n: q.prune_school_sessions(
                    db, p.sessions_used_before, p.sessions_created_before, n
                )
            ]
        if table == "login_failures":
            return [lambda db, n: q.prune_failures(db, p.failures_before, n)]
        if table == "tokens":
            return [
                lambda db, n: q.prune_tokens(
                    db, p.tokens_ended_before, p.tokens_used_before, p.tokens_created_before, n
                )
            ]
        if table == "leases":
            return [lambda db, n: q.prune_leases(db, p.now, n)]
        if table == "students":
            return [lambda db, n: q.prune_students(db, p.students_before, n)]
        if table == "page_captures":
            return [lambda db, n: q.prune_page_captures(db, p.captures_before, n)]
        if table == "wechat_followers":
            return [lambda db, n: q.prune_wechat_followers(db, p.wechat_followers_before, n)]
        if table == "wechat_tickets":
            return [lambda db, n: q.prune_wechat_tickets(db, p.now, n)]
        if table == "wechat_messages":
            return [lambda db, n: q.prune_wechat_messages(db, p.wechat_messages_before, n)]
        if table == "watches":
            return [lambda db, n: q.prune_watches(db, p.watches_before, n)]
        if table == "outbox":
            return [lambda db, n: q.prune_outbox(db, p.outbox_before, n)]
        raise ValueError(f"no retention for table {table!r}")

    def _results_step(self, rule: ResultsRule, p: Plan) -> Step:
        feeds_live = q.live_token(p.now, p.token_idle_s, p.token_max_age_s)
        return lambda db, n: q.prune_results(
            db, rule.kinds, rule.shared, rule.before, n, feeds_live, rule.other_than
        )

    def _cap_step(self, p: Plan) -> Step:
        cap = _Cap()

        async def step(db: AsyncSession, n: int) -> q.Batch:
            if p.shared_results_max <= 0:
                return q.Batch(0, 0)
            if cap.over is None:
                cap.over = await q.count_shared_results(db) - p.shared_results_max
            if cap.over <= 0:
                return q.Batch(0, 0)
            batch = await q.prune_oldest_shared_results(db, min(n, cap.over))
            cap.over -= batch.deleted
            # Another batch (a full one) only while rows are still over the cap.
            return q.Batch(batch.found if cap.over > 0 else 0, batch.deleted)

        return step

    # Rounds --------------------------------------------------------------------------------

    async def prune_table(self, table: str) -> TableRound:
        """One round of one table, if this process takes its lease. Never raises for
        storage: an error ends the round (outcome "skipped")."""
        r = self._settings.retention
        done = TableRound(table)
        lease, holder = f"retention:{table}", new_holder_id()
        try:
            taken = await self._leases.try_acquire(lease, holder, r.interval_s)
        except StorageUnavailable as exc:
            done.outcome, done.error = "skipped", str(exc)
            metrics.record_prune_round(table, done.outcome)
            return done
        if not taken:
            done.outcome = "held"
            return done
        stop_at = self._clock() + r.interval_s / 2
        p = plan(self._settings, self._now())
        try:
            for step in self._steps(table, p):
                while True:
                    async with self._sessions.begin() as db:
                        batch = await step(db, r.batch)
                    done.batches += 1
                    if batch.deleted:
                        done.deleted += batch.deleted
                        metrics.record_pruned(table, batch.deleted)
                    if batch.found < r.batch:
                        break
                    if self._clock() >= stop_at:
                        done.outcome = "more_left"
                        break
                    await asyncio.sleep(r.pause_s)
                if done.outcome == "more_left":
                    break
        except (SQLAlchemyError, OSError) as exc:
            done.outcome, done.error = "skipped", type(exc).__name__
        except Exception as exc:  # a driver's own error class while the database dies
            log.exception("retention: pruning %s failed", table)
            done.outcome, done.error = "skipped", type(exc).__name__
        # Given back at once (retried in the background if the database refuses).
        await self._leases.release(lease, holder, r.interval_s)
        metrics.record_prune_round(table, done.outcome)
        return done

    async def run_round(self) -> RoundReport:
        """Prune every table whose lease this process takes (one after the other)."""
        report = RoundReport()
        for table in TABLES:
            report.tables[table] = await self.prune_table(table)
        deleted = {t: d.deleted for t, d in report.tables.items() if d.deleted}
        skipped = sorted(t for t, d in report.tables.items() if d.outcome == "skipped")
        more = sorted(t for t, d in report.tables.items() if d.outcome == "more_left")
        if deleted:
            log.info(
                "retention: deleted %s%s",
                ", ".join(f"{n} {t}" for t, n in deleted.items()),
                f" (more left: {', '.join(more)})" if more else "",
            )
        if skipped:
            errors = {report.tables[t].error for t in skipped}
            log.warning(
                "retention: skipped %s this round (%s)", ", ".join(skipped), ", ".join(errors)
            )
        return report

    # The loop ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (nothing if `retention.enabled` is false)."""
        if self._settings.retention.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        interval = self._settings.retention.interval_s
        # Workers (and hosts) started together would otherwise all try at once.
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            try:
                await self.run_round()
            except Exception:  # never let the loop die: the next round may do better
                log.exception("retention: a round failed")
            await asyncio.sleep(interval * random.uniform(0.5, 1.0))
