"""Every Prometheus metric of the server, and one recording function per thing that happens.

Metrics are aggregated over all workers with prometheus_client's multiprocess
mode: the master points PROMETHEUS_MULTIPROC_DIR at a fresh directory before
anything imports prometheus_client (the library picks its storage at import
time), each process writes its own files there, and /metrics merges them.
That is why this module imports prometheus_client only inside functions and
creates the metric objects on first use, never at import time.

Dead workers' files would pile up (one set per worker ever started) and slow
every scrape, so the master folds a dead worker's counters and histograms
into one archive file per type (`retire_process`) and deletes its gauges.

The metrics every request touches (requests, their durations, requests in flight,
cache lookups, gate decisions) are tallied in plain dictionaries of the process and
published into the shared files by `publish()`: every PUBLISH_S by each worker, and
before each scrape by the worker that answers it. A scrape may so miss up to
PUBLISH_S of another worker's increments, never lose them; a request pays a few
dictionary updates instead of a locked write to a memory-mapped file per metric.

Recording functions (all cheap, safe to call anywhere, in any process):

    observe_http_request(route, method, status, seconds)
    http_in_flight(delta)
    record_connection_shed()
    record_connection_refused(reason, scope)
    record_connection_cut(reason)
    observe_school_request(system, path, outcome, seconds)
    record_cache(kind, outcome, level="memory")
    coalesced_wait(kind)
    budget_queue(system, delta)
    budget_wait(system, seconds)
    budget_rejected(system)
    set_breaker_state(system, state)
    record_pruned(table, rows), record_prune_round(table, outcome)
    set_canary_page(system, page, readable), record_canary_run(system, outcome, at)
    record_outbox_message(channel, outcome), observe_outbox_delivery(channel, seconds)
    set_outbox_counts(depth, failed, watches)
    record_watch_poll(kind, outcome), record_watch_school_requests(system, count)
    record_rate_limited(scope)
    record_worker_restart(reason)        (master)
    set_worker_count(count)              (master)
    set_worker_generation(index, generation)  (each worker, as its app is made)

Every process sets `jnufm_build_info{version,python}` (1) and, in multiprocess mode,
its `process_start_time_seconds` as it creates the metrics.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from observability.timing import current_timer

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Seconds. HTTP answers range from a cached hit (~1 ms) to a slow school (10 s timeout).
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
SCHOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# Label values taken from client input are bounded: a method outside this set is
# counted as "other", a status outside 100-599 as "other" (routes are patterns).
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

# The numbers behind jnufm_breaker_state, so that max() over workers is the worst state.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class _Metrics:
    http_requests: Counter
    http_duration: Histogram
    http_in_flight: Gauge
    connections_shed: Counter
    connections_refused: Counter
    connections_cut: Counter
    school_requests: Counter
    school_cost: Counter
    school_duration: Histogram
    cache_lookups: Counter
    coalesced_waits: Counter
    budget_queue: Gauge
    budget_wait: Histogram
    budget_rejected: Counter
    breaker_state: Gauge
    rate_limited: Counter
    gate_decisions: Counter
    deferred_writes: Counter
    deferred_waiting: Gauge
    storage_degraded: Gauge
    retention_deleted: Counter
    retention_rounds: Counter
    pages_unreadable: Counter
    canary_page_readable: Gauge
    canary_runs: Counter
    canary_last_run: Gauge
    wechat_messages: Counter
    wechat_refused: Counter
    wechat_reply: Histogram
    wechat_customer_messages: Counter
    wechat_access_tokens_fetched: Counter
    outbox_messages: Counter
    outbox_delivery: Histogram
    outbox_depth: Gauge
    outbox_failed: Gauge
    watches_live: Gauge
    watch_polls: Counter
    watch_school_requests: Counter
    worker_restarts: Counter
    workers: Gauge
    worker_generation: Gauge
    build_info: Gauge
    process_start: Gauge | None


_metrics: _Metrics | None = None
# The process that last wrote jnufm_build_info and its start time: a forked worker inherits
# the objects, but its files start empty (its start time 0) until it writes its own.
_build_pid = 0


def _m() -> _Metrics:
    """The metric objects, created on first use (after PROMETHEUS_MULTIPROC_DIR is set)."""
    global _metrics, _build_pid
    if _metrics is None:
        from prometheus_client import Counter, Gauge, Histogram

        _metrics = _Metrics(
            http_requests=Counter(
                "jnufm_http_requests",
                "HTTP requests answered, by route pattern, method and status code.",
                ["route", "method", "status"],
            ),
            http_duration=Histogram(
                "jnufm_http_request_duration_seconds",
                "Time from reading a request to finishing its answer, by route pattern.",
                ["route"],
                buckets=HTTP_BUCKETS,
            ),
            http_in_flight=Gauge(
                "jnufm_http_requests_in_flight",
                "Requests being handled now, over all workers.",
                multiprocess_mode="livesum",
            ),
            connections_shed=Counter(
                "jnufm_http_connections_shed",
                "Connections answered 503 and closed at once because the worker had "
                "http.max_connections open.",
            ),
            connections_refused=Counter(
                "jnufm_http_connections_refused",
                "Connections answered 429 and closed because their address (scope ip) or "
                "registered client (scope client) held its cap: of open connections "
                "(too_many_connections) or of requests still being sent "
                "(too_many_unfinished_requests).",
                ["reason", "scope"],
            ),
            connections_cut=Counter(
                "jnufm_http_connections_cut",
                "Connections the server closed to make room or because the client was too "
                "slow: idle_under_pressure (an idle keep-alive connection, the worker near "
                "its cap), slow_headers, slow_body (answered 408).",
                ["reason"],
            ),
            school_requests=Counter(
                "jnufm_school_requests",
                "Requests sent to a school system, by system, URL path and outcome "
                "(ok, timeout, connection, server_error, bad_page).",
                ["system", "path", "outcome"],
            ),
            school_cost=Counter(
                "jnufm_school_cost",
                "Requests sent to a school system on behalf of a client, by system and "
                "client: a registered client's name, or anonymous (every unregistered address).",
                ["system", "client"],
            ),
            school_duration=Histogram(
                "jnufm_school_request_duration_seconds",
                "Time one school request took, whatever its outcome, by system.",
                ["system"],
                buckets=SCHOOL_BUCKETS,
            ),
            cache_lookups=Counter(
                "jnufm_cache_lookups",
                "Cache lookups by kind of data, cache level and outcome (hit, miss, stale).",
                ["kind", "level", "outcome"],
            ),
            coalesced_waits=Counter(
                "jnufm_coalesced_waits",
                "Requests that waited for an identical school query already running.",
                ["kind"],
            ),
            budget_queue=Gauge(
                "jnufm_budget_queue_length",
                "Requests waiting for a slot of the school budget, by system.",
                ["system"],
                multiprocess_mode="livesum",
            ),
            budget_wait=Histogram(
                "jnufm_budget_wait_seconds",
                "Time a request waited for a slot of the school budget, by system.",
                ["system"],
                buckets=WAIT_BUCKETS,
            ),
            budget_rejected=Counter(
                "jnufm_budget_rejected",
                "Requests refused because the school budget was exhausted, by system.",
                ["system"],
            ),
            breaker_state=Gauge(
                "jnufm_breaker_state",
                "Circuit breaker state by school system, worst over workers: "
                "0 closed, 1 half open, 2 open.",
                ["system"],
                multiprocess_mode="livemax",
            ),
            rate_limited=Counter(
                "jnufm_rate_limited",
                "Requests refused by a rate limit, by limit scope.",
                ["scope"],
            ),
            gate_decisions=Counter(
                "jnufm_gate_decisions",
                "What the credential gate decided, by school system: verified (the "
                "password matched the verifier), reserved (counted, for the school to "
                "judge), locked_out, known_wrong; and what the school said: accepted, "
                "refused, unjudged.",
                ["system", "decision"],
            ),
            deferred_writes=Counter(
                "jnufm_deferred_writes",
                "Writes storage refused and kept for later, by kind of write and what "
                "became of them (queued, written, dropped).",
                ["what", "outcome"],
            ),
            deferred_waiting=Gauge(
                "jnufm_deferred_writes_waiting",
                "Writes waiting for storage to come back, over all workers.",
                multiprocess_mode="livesum",
            ),
            storage_degraded=Gauge(
                "jnufm_storage_degraded",
                "1 while a worker serves without its database (memory cache and the "
                "gate's per-host state only), worst over workers.",
                multiprocess_mode="livemax",
            ),
            retention_deleted=Counter(
                "jnufm_retention_deleted_rows",
                "Rows deleted by retention (services/retention.py), by table.",
                ["table"],
            ),
            pages_unreadable=Counter(
                "jnufm_school_pages_unreadable",
                "School pages a client could not read (502 school_page_unreadable; a "
                "redacted copy kept: python server.py pages list), by system and page kind.",
                ["system", "page"],
            ),
            retention_rounds=Counter(
                "jnufm_retention_rounds",
                "Rounds of retention run on a table, by outcome: done, more_left (stopped "
                "after half an interval, goes on at the next), skipped (a storage error).",
                ["table", "outcome"],
            ),
            canary_page_readable=Gauge(
                "jnufm_canary_page_readable",
                "Whether the canary's last reading of a school page parsed (1) or not "
                "(0), by system and page; the last reading over all workers wins.",
                ["system", "page"],
                multiprocess_mode="livemostrecent",
            ),
            canary_runs=Counter(
                "jnufm_canary_runs",
                "Rounds of the canary on a school system, by outcome: ok, unreadable (a "
                "page did not parse), skipped (the school busy, failing or away: nothing "
                "learned), refused_login (the test account's password was refused).",
                ["system", "outcome"],
            ),
            canary_last_run=Gauge(
                "jnufm_canary_last_run_timestamp_seconds",
                "When the canary last ended a round on a school system (Unix time), "
                "newest over workers.",
                ["system"],
                multiprocess_mode="livemax",
            ),
            wechat_messages=Counter(
                "jnufm_wechat_messages",
                "WeChat deliveries answered, by account and outcome: passive (the reply "
                "in time), pending (told to wait: the answer goes by customer message), "
                "held (no reply: WeChat delivers again), duplicate (a delivery of a "
                "message answered already), limited (the follower sends too often), none "
                "(nothing to say); and late answers: delivered, undelivered.",
                ["account", "outcome"],
            ),
            wechat_refused=Counter(
                "jnufm_wechat_refused",
                "Requests to a WeChat callback URL refused, by account and reason "
                "(signature, timestamp, nonce, decrypt, app_id, xml, size).",
                ["account", "reason"],
            ),
            wechat_reply=Histogram(
                "jnufm_wechat_reply_seconds",
                "From a WeChat delivery's arrival to its reply written (WeChat waits 5 s).",
                ["account"],
                buckets=WAIT_BUCKETS,
            ),
            wechat_customer_messages=Counter(
                "jnufm_wechat_customer_messages",
                "Customer messages (the API's answers after the passive reply) by account "
                "and outcome: sent, no_secret, day_limit (ours, or the API's 45009), "
                "refused (another errcode), no_token, unreachable, storage.",
                ["account", "outcome"],
            ),
            wechat_access_tokens_fetched=Counter(
                "jnufm_wechat_access_tokens_fetched",
                "access_tokens fetched from the official-account API, by account (one "
                "every ~2 h over all workers and hosts when all is well).",
                ["account"],
            ),
            outbox_messages=Counter(
                "jnufm_outbox_messages",
                "Students' watch messages taken from the outbox, by channel (webhook, "
                "email, wechat) and outcome: delivered, retried (an attempt failed, tried "
                "again later), given_up, held_back (the student's hourly cap: later).",
                ["channel", "outcome"],
            ),
            outbox_delivery=Histogram(
                "jnufm_outbox_delivery_seconds",
                "Time one delivery attempt of a watch message took, whatever its outcome, "
                "by channel.",
                ["channel"],
                buckets=SCHOOL_BUCKETS,
            ),
            outbox_depth=Gauge(
                "jnufm_outbox_depth",
                "Watch messages in the outbox not yet delivered nor given up on (read from "
                "the database now and then; the latest reading over workers).",
                multiprocess_mode="livemostrecent",
            ),
            outbox_failed=Gauge(
                "jnufm_outbox_failed",
                "Watch messages given up on and still kept (watches.keep_s), latest reading.",
                multiprocess_mode="livemostrecent",
            ),
            watches_live=Gauge(
                "jnufm_watches",
                "Students' watches that have not ended, latest reading.",
                multiprocess_mode="livemostrecent",
            ),
            watch_polls=Counter(
                "jnufm_watch_polls",
                "Polls of students' watches, by kind and outcome (changed, unchanged, "
                "baseline, school_failed, token_ended, lost_claim).",
                ["kind", "outcome"],
            ),
            watch_school_requests=Counter(
                "jnufm_watch_school_requests",
                "School requests charged to students' watches (each poll's fixed cost, "
                "services/watches/kinds.py SCHOOL_REQUESTS), by system.",
                ["system"],
            ),
            worker_restarts=Counter(
                "jnufm_worker_restarts",
                "Workers the master started again after an unplanned death, by reason "
                "(exited, killed, blocked, start_timeout).",
                ["reason"],
            ),
            workers=Gauge(
                "jnufm_workers",
                "Worker processes alive.",
                multiprocess_mode="livesum",
            ),
            worker_generation=Gauge(
                "jnufm_worker_generation",
                "The configuration generation each live worker serves (bumped by each "
                "reload), by worker index and pid.",
                ["worker"],
                multiprocess_mode="liveall",
            ),
            build_info=Gauge(
                "jnufm_build_info",
                "Always 1; its labels say which jnufm (pyproject.toml) and Python serve.",
                ["version", "python"],
                multiprocess_mode="livemax",
            ),
            process_start=_process_start_gauge(),
        )
    if _build_pid != os.getpid():
        _build_pid = os.getpid()
        _record_build(_metrics)
    return _metrics


def _process_start_gauge() -> Gauge | None:
    """process_start_time_seconds over the live processes: the earliest, the master's, so
    that `time() - process_start_time_seconds` is the server's uptime. Only in multiprocess
    mode: in one process prometheus_client's own process collector exposes it."""
    if not os.environ.get(MULTIPROC_ENV):
        return None
    from prometheus_client import Gauge

    return Gauge(
        "process_start_time_seconds",
        "Start time of the oldest live process of the server (the master), in seconds "
        "since the epoch.",
        registry=None,
        multiprocess_mode="livemin",
    )


def _record_build(metrics: _Metrics) -> None:
    import platform

    from prometheus_client import ProcessCollector

    from version import version

    metrics.build_info.labels(version(), platform.python_version()).set(1)
    if metrics.process_start is None:
        return
    started = [
        sample.value
        for family in ProcessCollector(registry=None).collect()
        for sample in family.samples
        if sample.name == "process_start_time_seconds"
    ]
    # ProcessCollector reads /proc; elsewhere the first metric's creation is close enough.
    metrics.process_start.set(started[0] if started else time.time())


# --- Tallied in the process, published in one go -----------------------------------

# How often each worker publishes its tallies (seconds).
PUBLISH_S = 0.25

_HTTP_BOUNDS = (*HTTP_BUCKETS, float("inf"))


class _Tally:
    """Increments not yet published: counters by (metric, labels), the HTTP duration
    histogram by route (a count per bucket, then the sum), requests in flight."""

    __slots__ = ("counts", "durations", "in_flight")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, tuple[str, ...]], float] = {}
        self.durations: dict[str, list[float]] = {}
        self.in_flight = 0

    def count(self, metric: str, labels: tuple[str, ...]) -> None:
        key = (metric, labels)
        self.counts[key] = self.counts.get(key, 0) + 1

    def duration(self, route: str, seconds: float) -> None:
        row = self.durations.get(route)
        if row is None:
            row = self.durations[route] = [0.0] * (len(_HTTP_BOUNDS) + 1)
        for i, bound in enumerate(_HTTP_BOUNDS):
            if seconds <= bound:
                row[i] += 1
                break
        row[-1] += seconds


_tally = _Tally()


def publish() -> None:
    """Write this process's tallies into the shared metric files (and start over)."""
    global _tally
    tally = _tally
    if not tally.counts and not tally.durations and not tally.in_flight:
        return
    _tally = _Tally()
    m = _m()
    for (metric, labels), amount in tally.counts.items():
        getattr(m, metric).labels(*labels).inc(amount)
    for route, row in tally.durations.items():
        # Histogram.observe's effect, n observations at once: one bucket each (the
        # library keeps them per bucket, not cumulative) and the sum.
        child = m.http_duration.labels(route)
        for i, amount in enumerate(row[:-1]):
            if amount:
                child._buckets[i].inc(amount)
        child._sum.inc(row[-1])
    if tally.in_flight:
        m.http_in_flight.inc(tally.in_flight)


# --- HTTP (handlers/base.py) ------------------------------------------------------


def observe_http_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration; route is the pattern, never the raw path."""
    method_label = method if method in HTTP_METHODS else "other"
    status_label = str(status) if 100 <= status <= 599 else "other"
    _tally.count("http_requests", (route, method_label, status_label))
    _tally.duration(route, seconds)


def http_in_flight(delta: int) -> None:
    """+1 when a request starts being handled, -1 when it is finished."""
    _tally.in_flight += delta


def record_connection_shed() -> None:
    """A connection over the worker's cap was answered 503 and closed."""
    _m().connections_shed.inc()


def record_connection_refused(reason: str, scope: str) -> None:
    """A connection or request over its address's (client's) cap was answered 429 and
    closed. Tallied: a tool that reconnects in a loop is refused thousands of times a second."""
    _tally.count("connections_refused", (reason, scope))


def record_connection_cut(reason: str) -> None:
    """The server closed a connection: idle under pressure, or its client too slow."""
    _tally.count("connections_cut", (reason,))


# --- School systems (systems/card/client.py) --------------------------------------------


def observe_school_request(system: str, path: str, outcome: str, seconds: float) -> None:
    """One request to a school system: path without query, outcome "ok" or an error kind;
    charged to the client whose request caused it (coalesced fetches: the first asker)."""
    m = _m()
    m.school_requests.labels(system, path, outcome).inc()
    timer = current_timer()
    m.school_cost.labels(system, timer.client if timer is not None else "anonymous").inc()
    m.school_duration.labels(system).observe(seconds)


# --- Cache, coalescing, budget, breaker, rate limits (services/) ----------------


def record_cache(kind: str, outcome: str, level: str = "memory") -> None:
    """One cache lookup: kind of data ("account", "today", "history"), outcome
    "hit", "miss" or "stale" (an expired value served anyway), level "memory", "ready" (a
    memory hit answered with the body kept ready, services/pipeline/ready.py), "shared"
    (the host's shared cache) or "db"."""
    _tally.count("cache_lookups", (kind, level, outcome))


def coalesced_wait(kind: str) -> None:
    """A request joined an identical query already in flight instead of asking the school."""
    _m().coalesced_waits.labels(kind).inc()


def budget_queue(system: str, delta: int) -> None:
    """+1 when a request starts waiting for a budget slot, -1 when it stops waiting."""
    _m().budget_queue.labels(system).inc(delta)


def budget_wait(system: str, seconds: float) -> None:
    """How long a request waited for its budget slot (0 if it got one at once)."""
    _m().budget_wait.labels(system).observe(seconds)


def budget_rejected(system: str) -> None:
    """A request was refused because the budget had no slot in time."""
    _m().budget_rejected.labels(system).inc()


def set_breaker_state(system: str, state: str) -> None:
    """The breaker of a school system changed state: "closed", "half_open" or "open"."""
    _m().breaker_state.labels(system).set(BREAKER_STATES[state])


def record_rate_limited(scope: str) -> None:
    """A request was refused by a rate limit ("student", "client", ...)."""
    _m().rate_limited.labels(scope).inc()


def record_gate(system: str, decision: str) -> None:
    """One decision of the credential gate (services/gate.py), or a school verdict it heard."""
    _tally.count("gate_decisions", (system, decision))


def record_deferred_write(what: str, outcome: str) -> None:
    """A write storage refused was queued, written later, or dropped."""
    _m().deferred_writes.labels(what, outcome).inc()


def set_deferred_writes(waiting: int) -> None:
    _m().deferred_waiting.set(waiting)


def set_storage_degraded(degraded: bool) -> None:
    _m().storage_degraded.set(1 if degraded else 0)


def record_pruned(table: str, rows: int) -> None:
    """Retention deleted rows of a table."""
    _m().retention_deleted.labels(table).inc(rows)


def count_unreadable_page(system: str, page: str) -> None:
    """A client could not read a page of a school system (page: its kind)."""
    _m().pages_unreadable.labels(system, page).inc()


def record_prune_round(table: str, outcome: str) -> None:
    """Retention ran a round on a table (done, more_left, skipped)."""
    _m().retention_rounds.labels(table, outcome).inc()


def set_canary_page(system: str, page: str, readable: bool) -> None:
    """The canary read a page of a school system: it parsed, or not."""
    _m().canary_page_readable.labels(system, page).set(1 if readable else 0)


def record_canary_run(system: str, outcome: str, at: float) -> None:
    """The canary ended a round on a school system at `at` (Unix time)."""
    m = _m()
    m.canary_runs.labels(system, outcome).inc()
    m.canary_last_run.labels(system).set(at)


def wechat_message(account: str, outcome: str) -> None:
    """A WeChat delivery answered, or a late answer sent (see jnufm_wechat_messages)."""
    _m().wechat_messages.labels(account, outcome).inc()


def wechat_refused(account: str, reason: str) -> None:
    """A request to a WeChat callback URL was refused (its WeChatError's reason)."""
    _m().wechat_refused.labels(account, reason).inc()


def observe_wechat_reply(account: str, seconds: float) -> None:
    _m().wechat_reply.labels(account).observe(seconds)


def wechat_customer_message(account: str, outcome: str) -> None:
    """A customer message to a follower of an account: sent, or why not."""
    _m().wechat_customer_messages.labels(account, outcome).inc()


def wechat_access_token_fetched(account: str) -> None:
    """A new access_token was fetched for an account."""
    _m().wechat_access_tokens_fetched.labels(account).inc()


# --- Students' watches: the outbox (services/watches/outbox.py) ---------------------


def record_outbox_message(channel: str, outcome: str) -> None:
    """A watch message taken from the outbox: delivered, retried, given_up, held_back."""
    _m().outbox_messages.labels(channel, outcome).inc()


def observe_outbox_delivery(channel: str, seconds: float) -> None:
    """How long one delivery attempt took."""
    _m().outbox_delivery.labels(channel).observe(seconds)


def set_outbox_counts(depth: int, failed: int, watches: int) -> None:
    """The outbox's waiting and given-up messages and the live watches, as just read."""
    m = _m()
    m.outbox_depth.set(depth)
    m.outbox_failed.set(failed)
    m.watches_live.set(watches)


# --- Students' watches: the polls (services/watches/scheduler.py) -----------------------


def record_watch_poll(kind: str, outcome: str) -> None:
    """One poll of a watch and what it found."""
    _m().watch_polls.labels(kind, outcome).inc()


def record_watch_school_requests(system: str, count: int) -> None:
    """School requests a watch's poll was charged."""
    _m().watch_school_requests.labels(system).inc(count)


# --- Master (runtime/master.py) --------------------------------------------------


def record_worker_restart(reason: str) -> None:
    """The master replaces a worker that died without being asked to."""
    _m().worker_restarts.labels(reason).inc()


def set_worker_count(count: int) -> None:
    _m().workers.set(count)


def set_worker_generation(index: int, generation: int) -> None:
    """Which configuration generation this worker serves (shown per worker, with its pid)."""
    _m().worker_generation.labels(str(index)).set(generation)


# --- Storage and exposition ---------------------------------------------------------


def prepare_multiproc_dir(path: str | None) -> str:
    """Empty (or create) the directory for per-process metric files and export it.

    Must run before anything imports prometheus_client. Returns the directory.
    """
    if path:
        target = Path(path)
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
    else:
        import tempfile

        base = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or None
        target = Path(tempfile.mkdtemp(prefix="jnufm-metrics-", dir=base))
    os.environ[MULTIPROC_ENV] = str(target)
    return str(target)


def retire_process(pid: int) -> None:
    """Fold a dead process's counters and histograms into the archive files; drop its gauges."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return
    from prometheus_client import multiprocess
    from prometheus_client.mmap_dict import MmapedDict

    multiprocess.mark_process_dead(pid, path)
    for typ in ("counter", "histogram", "summary"):
        dead = os.path.join(path, f"{typ}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = os.path.join(path, f"{typ}_archive.db")
        totals: dict[str, float] = {}
        for source in (archive, dead):
            if os.path.exists(source):
                for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(source):
                    totals[key] = totals.get(key, 0.0) + value
        # Written aside (not *.db, so scrapes ignore it) and renamed over the archive
        # in one step: a scrape sees the old archive or the new one, never half of it.
        fresh = archive + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.remove(fresh)
        merged = MmapedDict(fresh)
        try:
            for key, value in totals.items():
                merged.write_value(key, value, 0.0)
        finally:
            merged.close()
        os.replace(fresh, archive)
        os.remove(dead)
    for leftover in glob.glob(os.path.join(path, f"gauge_*_{pid}.db")):
        os.remove(leftover)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric (merged over processes) and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    _m()  # make sure this process's own metrics exist before the first scrape
    publish()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
