"""The operator dashboard's figures, from the same metrics /metrics shows.

Reading       what the metrics of every worker add up to at one moment: the
              exposition of `metrics.render()` (the multiprocess registry), parsed.
figures()     two readings compared: rates over the time between them, latency
              quantiles from the histogram buckets filled meanwhile (as Prometheus'
              histogram_quantile does), school requests in flight as the time spent
              in them per second (their average concurrency); gauges (requests in
              flight, budget queues, workers, watches and the outbox's depth) are
              the newer reading's.
ReadingHistory  each worker's last seconds of readings, so that a poll (answered by
              any worker) is compared with a reading about `window_s` old.

Requests to the operations routes and static files are not counted: the
dashboard's own polling must not make its figures move.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Route labels (handlers.route_labels) of what is not a student's query.
UNCOUNTED_ROUTES = frozenset(
    {
        "/ops/dashboard.json",
        "/metrics",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/",
        "/favicon.ico",
        "/static/{path}",
        "/index.html",
        "/debug/block",
        "unmatched",
    }
)
BREAKER_NAMES = {0: "closed", 1: "half_open", 2: "open"}
# Clients listed by the school requests made for them (registered ones by name; every
# unregistered address together as "anonymous").
TOP_CLIENTS = 10


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    """A live worker as the metrics show it."""

    worker: int
    pid: int | None
    generation: int


@dataclass(slots=True)
class Reading:
    """Totals and gauges over every worker at one moment (`at`: time.monotonic())."""

    at: float
    requests: float = 0.0
    # Upper bound (seconds) -> cumulative count, over the counted routes.
    latency_buckets: dict[float, float] = field(default_factory=dict)
    cache_hits: float = 0.0
    cache_lookups: float = 0.0
    school_requests: dict[str, float] = field(default_factory=dict)
    school_failures: dict[str, float] = field(default_factory=dict)
    school_seconds: dict[str, float] = field(default_factory=dict)
    # School requests by the client they were made for (a registered name, "anonymous").
    client_cost: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)
    in_flight: float = 0.0
    workers: float = 0.0
    live: list[WorkerSeen] = field(default_factory=list)
    # Students' watches: the live count and the outbox's (None until a worker read
    # them), polls of the school, messages by outcome (delivered, retried, given_up...).
    watches: float | None = None
    outbox_depth: float | None = None
    outbox_failed: float | None = None
    watch_polls: float = 0.0
    outbox_messages: dict[str, float] = field(default_factory=dict)


def _add(table: dict[str, float], key: str, value: float) -> None:
    table[key] = table.get(key, 0.0) + value


def read(exposition: str, at: float) -> Reading:
    """A Reading of the Prometheus exposition text (as /metrics serves it)."""
    # Imported here, never at import time: prometheus_client picks its (multiprocess)
    # storage when first imported, which the master sets up first (observability/metrics.py).
    from prometheus_client.parser import text_string_to_metric_families

    reading = Reading(at)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            route_counted = labels.get("route") not in UNCOUNTED_ROUTES
            system = labels.get("system", "")
            if name == "jnufm_http_requests_total" and route_counted:
                reading.requests += value
            elif name == "jnufm_http_request_duration_seconds_bucket" and route_counted:
                bound = float(labels["le"])
                reading.latency_buckets[bound] = reading.latency_buckets.get(bound, 0.0) + value
            elif name == "jnufm_cache_lookups_total":
                level, outcome = labels.get("level"), labels.get("outcome")
                # Every lookup starts in memory (or is a body kept ready, a memory hit's
                # short way); a memory miss may still hit the database.
                if outcome == "hit":
                    reading.cache_hits += value
                if level in ("memory", "ready") and outcome in ("hit", "miss"):
                    reading.cache_lookups += value
            elif name == "jnufm_school_requests_total":
                _add(reading.school_requests, system, value)
                if labels.get("outcome") != "ok":
                    _add(reading.school_failures, system, value)
            elif name == "jnufm_school_cost_total":
                _add(reading.client_cost, labels.get("client", "anonymous"), value)
            elif name == "jnufm_school_request_duration_seconds_sum":
                _add(reading.school_seconds, system, value)
            elif name == "jnufm_budget_queue_length":
                _add(reading.waiting, system, value)
            elif name == "jnufm_breaker_state":
                reading.breakers[system] = BREAKER_NAMES.get(int(value), "open")
            elif name == "jnufm_http_requests_in_flight":
                reading.in_flight += value
            elif name == "jnufm_workers":
                reading.workers += value
            elif name == "jnufm_watches":
                reading.watches = value
            elif name == "jnufm_outbox_depth":
                reading.outbox_depth = value
            elif name == "jnufm_outbox_failed":
                reading.outbox_failed = value
            elif name == "jnufm_watch_polls_total" and labels.get("outcome") != "lost_claim":
                # (A lost claim is a poll another worker made.)
                reading.watch_polls += value
            elif name == "jnufm_outbox_messages_total":
                _add(reading.outbox_messages, labels.get("outcome", ""), value)
            elif name == "jnufm_worker_generation":
                pid = labels.get("pid")
                reading.live.append(
                    WorkerSeen(int(labels["worker"]), int(pid) if pid else None, int(value))
                )
    reading.live.sort(key=lambda w: (w.worker, w.generation))
    return reading


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """The q-quantile of a histogram's cumulative buckets (upper bound -> count), by linear
    interpolation within the bucket it falls in; None when the histogram is empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # above the highest finite bound: that bound is all we know
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _rate(new: float, old: float, seconds: float) -> float:
    # Counters only grow (a dead worker's are folded into an archive); never below 0.
    return round(max(0.0, new - old) / seconds, 3)


def figures(
    old: Reading | None,
    new: Reading,
    budgets: Mapping[str, int],
    breakers: Mapping[str, str],
    answered_by: tuple[int, int],
) -> dict[str, Any]:
    """The dashboard's JSON (schema `Dashboard` of /openapi.json): rates between two
    readings (null without an older one), the newer reading's gauges.

    budgets: each school system's concurrent request budget; breakers: each system's
    breaker state as this host sees it (wins over the metrics' last report).
    """
    before = old if old is not None else Reading(new.at)  # no older reading: no window
    seconds = new.at - before.at
    window = seconds > 0

    def rate(new_value: float, old_value: float) -> float | None:
        return _rate(new_value, old_value, seconds) if window else None

    latency: dict[str, float | None] = {"p50": None, "p99": None}
    hit_ratio: float | None = None
    if window:
        filled = {
            bound: count - before.latency_buckets.get(bound, 0.0)
            for bound, count in new.latency_buckets.items()
        }
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            value = quantile(q, filled)
            latency[name] = None if value is None else round(1000.0 * value, 2)
        lookups = new.cache_lookups - before.cache_lookups
        if lookups > 0:
            hit_ratio = round(min(1.0, (new.cache_hits - before.cache_hits) / lookups), 4)
    systems = sorted({*budgets, *breakers, *new.school_requests, *new.waiting})
    school = []
    for system in systems:
        school.append(
            {
                "system": system,
                "requests_per_s": rate(
                    new.school_requests.get(system, 0.0), before.school_requests.get(system, 0.0)
                ),
                "failures_per_s": rate(
                    new.school_failures.get(system, 0.0), before.school_failures.get(system, 0.0)
                ),
                "in_flight": rate(
                    new.school_seconds.get(system, 0.0), before.school_seconds.get(system, 0.0)
                ),
                "budget": budgets.get(system),
                "waiting": max(0.0, new.waiting.get(system, 0.0)),
                "breaker": breakers.get(system) or new.breakers.get(system) or "closed",
            }
        )
    by_cost = sorted(
        new.client_cost.items(),
        key=lambda item: (
            -(rate(item[1], before.client_cost.get(item[0], 0.0)) or 0.0),
            -item[1],
            item[0],
        ),
    )
    clients = [
        {
            "client": name,
            "school_requests": total,
            "school_requests_per_s": rate(total, before.client_cost.get(name, 0.0)),
        }
        for name, total in by_cost[:TOP_CLIENTS]
    ]
    live = [{"worker": w.worker, "pid": w.pid, "generation": w.generation} for w in new.live]

    def per_min(new_value: float, old_value: float) -> float | None:
        per_s = rate(new_value, old_value)
        return None if per_s is None else round(60 * per_s, 2)

    def messages(outcome: str) -> float | None:
        return per_min(
            new.outbox_messages.get(outcome, 0.0), before.outbox_messages.get(outcome, 0.0)
        )

    watches = {
        "live": new.watches,
        "polls_per_min": per_min(new.watch_polls, before.watch_polls),
        "outbox_depth": new.outbox_depth,
        "given_up": new.outbox_failed,
        "delivered_per_min": messages("delivered"),
        "retries_per_min": messages("retried"),
        "failures_per_min": messages("given_up"),
    }
    return {
        "window_s": round(seconds, 3) if window else None,
        "requests_per_s": rate(new.requests, before.requests),
        "requests_total": new.requests,
        "in_flight": max(0.0, new.in_flight),
        "cache_hit_ratio": hit_ratio,
        "latency_ms": latency,
        "school": school,
        "clients": clients,
        "watches": watches,
        "workers": {"count": max(new.workers, float(len(live))), "live": live},
        "answered_by": {"worker": answered_by[0], "generation": answered_by[1]},
    }


class ReadingHistory:
    """One worker's recent readings: which one a new reading is compared with."""

    def __init__(self, window_s: float = 10.0, min_gap_s: float = 1.0) -> None:
        self.window_s = window_s
        self.min_gap_s = min_gap_s
        self._readings: deque[Reading] = deque()

    def baseline(self, new: Reading) -> Reading | None:
        """The oldest kept reading at most window_s and at least min_gap_s before `new`
        (then `new` is kept too)."""
        while self._readings and new.at - self._readings[0].at > self.window_s:
            self._readings.popleft()
        candidates = [r for r in self._readings if new.at - r.at >= self.min_gap_s]
        # Readings closer together than min_gap_s add nothing: keep one of each gap.
        if not self._readings or new.at - self._readings[-1].at >= self.min_gap_s:
            self._readings.append(new)
        return candidates[0] if candidates else None
