"""Build one school system's pipeline from the settings: the one place the pipeline's
stages meet `Settings`, each stage getting its collaborators and figures only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from services.breaker import BreakerTable, CircuitBreaker
from services.budget import UpstreamBudget
from services.captures import PageCaptures
from services.gate import CredentialGate
from services.pipeline.cache import CacheStage
from services.pipeline.coalescing import Coalescing, CoalescingPolicy
from services.pipeline.deadlines import Deadlines
from services.pipeline.decisions import CachePolicy
from services.pipeline.engine import Pipeline
from services.pipeline.model import Connector, SystemSpec, utc_now
from services.pipeline.ready import ReadyAnswers
from services.pipeline.school import (
    NoSessions,
    Retrying,
    SchoolCall,
    SchoolQuota,
    Sessions,
    StoredSessions,
)
from services.rates import RequestRateLimiter
from services.retry import RetryBudget
from services.storage import Storage
from settings import Settings

S = TypeVar("S")


def cache_policy(settings: Settings) -> CachePolicy:
    c = settings.cache
    return CachePolicy(c.enabled, c.fresh_min_interval_s, c.stale_wait_s, c.max_stale_s)


def build_pipeline(
    spec: SystemSpec,
    connector: Connector[S] | None,
    storage: Storage,
    settings: Settings,
    gate: CredentialGate | None,
    *,
    now: Callable[[], datetime] = utc_now,
    school_limiter: RequestRateLimiter | None = None,
    stop_by: Callable[[], float | None] = lambda: None,
    breakers: BreakerTable | None = None,
    captures: PageCaptures | None = None,
) -> Pipeline[S]:
    """The protected path to one school system for one worker. A system with passwords
    needs its connector and the gate; one without takes neither."""
    if (connector is not None) != spec.takes_password:
        raise ValueError("a system with passwords needs a connector, one without none")
    b, br, c, r = settings.budget, settings.breaker, settings.coalescing, settings.retries
    # The whole operation ends before our coalescing lease does, so no one else
    # fetches meanwhile; the budget's slot lease outlasts it and its last request.
    hold_s = max(1.0, c.lease_s - 1.0)
    budget = UpstreamBudget(
        storage.leases,
        spec.system,
        spec.budget,
        b.slot_lease_s,
        b.poll_s,
        in_flight_s=settings.school.systems()[spec.system].total_timeout_s + b.abandoned_s,
        hold_s=hold_s,
        abandoned_s=b.abandoned_s,
    )
    breaker = CircuitBreaker(
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
    deadlines = Deadlines(settings.api.deadline_s, stop_by)
    retrying = Retrying(RetryBudget(r.budget_ratio), r.max_retries, r.backoff_s)
    sessions: Sessions[S] = (
        NoSessions(retrying)
        if connector is None
        else StoredSessions(spec.system, connector, storage, retrying)
    )
    school = SchoolCall(
        spec,
        storage,
        budget,
        breaker,
        sessions,
        SchoolQuota(school_limiter, settings.limits.school_requests_per_s),
        deadlines,
        now,
        hold_s,
        b.wait_s,
        captures,
    )
    coalescing = Coalescing(
        spec,
        storage,
        CoalescingPolicy(c.enabled, c.lease_s, c.poll_s, b.per_student_queue, b.wait_s),
        breaker,
        deadlines,
    )
    cache = CacheStage(spec.system, storage, cache_policy(settings), now)
    ready = ReadyAnswers(settings.cache.ready_answers)
    return Pipeline(spec, gate, cache, coalescing, school, deadlines, now, ready)
