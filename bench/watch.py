"""The watch workload: 10,000 watched students next to the students' mixed workload
(`python -m bench run --workloads watch`).

jnufm on a server of its own (`bench/configs/watch.yaml`: the server's defaults, and
webhooks allowed to a local address; `python -m bench run --watch-ceiling N` sets
`watches.school_requests_per_min` and says so in the result), a fresh database, the
simulator's `jnu-2013` profile. Every watched student has a `card_transaction` watch
delivered by webhook to the benchmark's receiver (an asyncio HTTP server in this
process: it records each delivery's arrival time and event key and checks its HMAC
signature).

Set-up (not in the figures; its time is recorded):

1. The watches are made in the server's database by this process with the server's own
   store code (services/tokens.py TokenStore.create_session, the password sealed by the
   server's vault under its secret key; services/watches/store.py WatchStore.create):
   a session token per student without a login at the school. A set-up shortcut:
   10,000 logins at the 2013 card center would take the set-up hours.
2. Every watch is put off (its `next_poll_at` a day ahead, one UPDATE), but the sample's
   (`Size.sample` students): these are due at once, the server's first poll of each
   setting its baseline (a first poll tells nothing), then put off too. Only the
   sample watches polled within `BASELINE_S` get a purchase.

Then two phases of `Size.phase_s` each, after a short warm-up of the mixed workload:

- without: the mixed workload (wrk -c 10: 90% of 100 returning students, 10% new ones,
  each phase its own new students), no watch due;
- with: the same load; a purchase at the school for each sample student at a known time
  (`POST /__sim/students/<id>/spend`), then the sample's watches due at once (ahead of
  the rest) and every other watch due a second later: the scheduler polls them on the
  school's spare capacity under `watches.school_requests_per_min` for the rest of the
  phase. After the phase, the sample's deliveries are awaited up to `Size.deliver_s`.

Figures: per phase the students' p50/p99 and failures, the school's requests and peak
in flight (budget beside it); with watches, jnufm's polls and the school requests it
charged to watches (`jnufm_watch_polls`, `jnufm_watch_school_requests`) per minute;
each purchase's time to its webhook's arrival (p50/p90/max), deliveries per event key
(exactly once), deliveries of other watches (none expected: a first poll tells
nothing), bad signatures. Placing the sample ahead of the queue measures the pipeline
(ceiling, poll, outbox, webhook) for a watch whose turn has come; a purchase of any
watched student waits for its watch's turn, one poll of every watch per
`watched / polls per minute` minutes (`cycle_min`).
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import hmac
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select, update

from bench import load, procs
from bench.procs import CARD, CONFIGS, School, System
from db.engine import make_engine, make_sessionmaker
from db.models import Watch
from harness.processes import http_json
from services.credentials import Credentials, make_verifier
from services.gate import ATTEMPT_CHARS
from services.pipeline import utc_now
from services.tokens import SessionGrant, TokenStore
from services.vault import SessionVault
from services.watches.store import WatchStore
from services.watches.webhook import sign
from settings import Settings, load_settings

OVERLAY: Final = CONFIGS / "watch.yaml"
KEY: Final = "watch"
# The watched students (`WATCHED_BASE` + i), none of them in the mixed workload.
WATCHED_BASE: Final = 2015000000
CLIENT: Final = "bench-watch"
# Tokens and watches made at once during the set-up.
SETUP_LANES: Final = 8
# How long the sample's first polls (their baselines) may take.
BASELINE_S: Final = 90.0
WARMUP_S: Final = 10.0
# The mixed workload's connections (as the `mixed-90-10` workload).
CONNECTIONS: Final = 10
# Each phase's new students: MIXED_NEW_BASE + PHASE_STRIDE * (phase number).
PHASE_STRIDE: Final = 1_000_000
# Between two purchases of the sample.
PURCHASE_GAP_S: Final = 0.2
# The watches put off: due no sooner than this (none during the run).
OFF: Final = dt.timedelta(days=1)


@dataclass(frozen=True)
class Size:
    """Watched students, the sample with purchases, each phase's seconds, and how long
    after the phase the sample's deliveries are awaited."""

    watched: int
    sample: int
    phase_s: float
    deliver_s: float


FULL: Final = Size(10_000, 20, 75, 60)
QUICK: Final = Size(300, 4, 15, 60)


# --- the receiver ---------------------------------------------------------------------


@dataclass
class Delivery:
    """One webhook request as it arrived."""

    at: float  # wall clock
    event_key: str
    watch_id: int
    student_id: str
    amount: str
    signed: bool


@dataclass
class Receiver:
    """An asyncio HTTP server on its own thread: answers 200 to every POST, records it,
    checks its signature under the watch's secret."""

    secrets: dict[int, str] = field(default_factory=dict)
    got: list[Delivery] = field(default_factory=list)
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop

            async def main() -> asyncio.Server:
                server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
                self.port = server.sockets[0].getsockname()[1]
                return server

            server = loop.run_until_complete(main())
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(server.wait_closed())
                loop.close()

        self._thread = threading.Thread(target=run, name="webhook-receiver", daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self.got)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {}
                for line in head[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self._record(headers, body)
                close = headers.get("connection", "").lower() == "close"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\nok"
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _record(self, headers: dict[str, str], body: bytes) -> None:
        at = time.time()
        try:
            data = json.loads(body)
        except ValueError:
            data = {}
        watch_id = int(data.get("watch_id") or 0)
        secret = self.secrets.get(watch_id)
        signed = secret is not None and hmac.compare_digest(
            headers.get("x-jnufm-signature", ""),
            sign(secret, headers.get("x-jnufm-timestamp", ""), body),
        )
        facts = data.get("facts") or {}
        with self._lock:
            self.got.append(
                Delivery(
                    at,
                    headers.get("x-jnufm-event", ""),
                    watch_id,
                    str(data.get("student_id", "")),
                    str(facts.get("amount", "")),
                    signed,
                )
            )


# --- the server and the set-up ----------------------------------------------------------


def start_jnufm(
    tmp: Path,
    school: School,
    processes: int,
    database_url: str | None,
    extra_config: dict[str, Any] | None = None,
) -> System:
    """jnufm on its defaults plus bench/configs/watch.yaml (and `extra_config`), a
    database of its own."""
    return procs.start_jnufm(tmp, KEY, OVERLAY, school.url, processes, database_url, extra_config)


def server_settings(system: System) -> Settings:
    """The server's settings, read from its generated config as the server read them."""
    return load_settings(Path(system.extra["config_path"]), env={})


def student(i: int) -> str:
    return str(WATCHED_BASE + i)


@dataclass
class Made:
    """The set-up's watches: student -> watch id; watch id -> webhook secret."""

    watch_of: dict[str, int]
    secrets: dict[int, str]
    seconds: float


async def _make_watches(settings: Settings, students: Sequence[str], hook_url: str) -> Made:
    key = settings.secret_key.encode()
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    vault = SessionVault(key)
    tokens = TokenStore(sessions, settings.tokens, vault, utc_now)
    store = WatchStore(sessions, settings, vault, utc_now)
    watch_of: dict[str, int] = {}
    hook_secrets: dict[int, str] = {}
    t0 = time.monotonic()
    todo = iter(students)

    async def lane() -> None:
        for who in todo:
            # The simulated school's password: the student number's last six digits.
            creds = Credentials(who, who[-6:], proven=True)
            attempt = make_verifier(key, CARD, creds)[:ATTEMPT_CHARS]
            _, view = await tokens.create_session(creds, CARD, attempt, client=CLIENT)
            grant = SessionGrant(view.id, who, CARD, creds.password, CLIENT)
            watch, secret = await store.create(grant, "card_transaction", "webhook", hook_url)
            watch_of[who] = watch.id
            assert secret is not None
            hook_secrets[watch.id] = secret

    try:
        await asyncio.gather(*(lane() for _ in range(SETUP_LANES)))
        # Put every watch off (the server may have polled a few meanwhile).
        async with sessions() as db, db.begin():
            await db.execute(update(Watch).values(next_poll_at=utc_now() + OFF))
    finally:
        await tokens.aclose()
        await engine.dispose()
    return Made(watch_of, hook_secrets, time.monotonic() - t0)


async def _set_due(settings: Settings, first: Sequence[int], rest_after_s: float | None) -> None:
    """Watches `first` due now; every other watch due `rest_after_s` later, or put off
    (None)."""
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    now = utc_now()
    rest = OFF if rest_after_s is None else dt.timedelta(seconds=rest_after_s)
    try:
        async with sessions() as db, db.begin():
            await db.execute(update(Watch).values(next_poll_at=now + rest))
            if first:
                await db.execute(
                    update(Watch).where(Watch.id.in_(list(first))).values(next_poll_at=now)
                )
    finally:
        await engine.dispose()


async def _polled(settings: Settings, ids: Sequence[int]) -> set[int]:
    """Those of these watches polled at least once."""
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    try:
        async with sessions() as db:
            rows = await db.scalars(
                select(Watch.id).where(Watch.id.in_(list(ids)), Watch.last_polled_at.is_not(None))
            )
            return set(rows.all())
    finally:
        await engine.dispose()


# --- the load and the counters ----------------------------------------------------------


def mixed(url: str, seconds: float, tmp: Path, phase: int) -> load.LoadResult:
    """The `mixed-90-10` workload's wrk run, with this phase's own new students."""
    script = tmp / f"wrk-watch-mixed-{phase}.lua"
    script.write_text(
        load.LUA
        % {
            "mode": "mixed",
            "limit": 0,
            "base": load.MIXED_REPEAT_BASE,
            "pool": load.MIXED_POOL,
            "newbase": load.MIXED_NEW_BASE + PHASE_STRIDE * phase,
            "threads": 1,
        }
    )
    return load._run_wrk(url, CONNECTIONS, seconds, script, 1, 30)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
COUNTERS: Final = (
    "jnufm_watch_polls_total",
    "jnufm_watch_school_requests_total",
    "jnufm_outbox_messages_total",
)


def counters(url: str) -> dict[str, dict[str, float]]:
    """The watches' counters from /metrics: name -> "label=value,..." -> value (summed
    over workers)."""
    with urllib.request.urlopen(url + "/metrics", timeout=15) as resp:
        text = resp.read().decode()
    out: dict[str, dict[str, float]] = {name: {} for name in COUNTERS}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found is None or found.group(1) not in out:
            continue
        labels = ",".join(f"{k}={v}" for k, v in _LABEL.findall(found.group(2) or ""))
        out[found.group(1)][labels] = out[found.group(1)].get(labels, 0.0) + float(found.group(3))
    return out


def delta(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in after.items():
        got = {k: int(v - before.get(name, {}).get(k, 0.0)) for k, v in values.items()}
        out[name.removesuffix("_total")] = {k: v for k, v in sorted(got.items()) if v}
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    k = min(len(ordered) - 1, max(0, -(-int(q * len(ordered) * 1000) // 1000) - 1))
    return round(ordered[k], 2)


def phase_figures(
    r: load.LoadResult, stats: dict[str, Any], watch: dict[str, Any], seconds: float
) -> dict[str, Any]:
    minutes = seconds / 60
    polls = sum(watch.get("jnufm_watch_polls", {}).values())
    charged = sum(watch.get("jnufm_watch_school_requests", {}).values())
    return {
        "seconds": round(seconds, 1),
        "completed": r.completed,
        "rps": r.rps,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "failed": r.bad,
        "non_2xx": r.non_2xx,
        "socket_errors": r.socket_errors,
        "school_requests": stats["requests"],
        "school_requests_per_min": round(stats["requests"] / minutes, 1),
        "school_peak_in_flight": stats["peak_in_flight"],
        "school_errors": stats.get("errors"),
        "watch_polls": polls,
        "watch_polls_per_min": round(polls / minutes, 1),
        "watch_school_requests": charged,
        "watch_school_requests_per_min": round(charged / minutes, 1),
        "server": watch,
    }


# --- the run ----------------------------------------------------------------------------


def measure(
    system: System,
    school: School,
    size: Size,
    tmp: Path,
    log: Callable[[str], None],
    school_profile: str = "jnu-2013",
    baseline_wait_s: float = BASELINE_S,
) -> dict[str, Any]:
    """The set-up, the two phases, the deliveries awaited; every figure."""
    if school.profile_of(CARD) != school_profile:
        school.use_profile(school_profile, CARD)
    settings = server_settings(system)
    students = [student(i) for i in range(size.watched)]
    # The sample: spread over the watched students.
    step = max(1, size.watched // max(1, size.sample))
    sample = students[::step][: size.sample]
    receiver = Receiver()
    receiver.start()
    try:
        log(f"  watch: making {size.watched} tokens and watches in the server's database")
        made = asyncio.run(_make_watches(settings, students, receiver.url))
        receiver.secrets.update(made.secrets)
        # The sample's first polls (baselines), the school otherwise idle.
        wanted_ids = [made.watch_of[s] for s in sample]
        before = counters(system.url)
        t0 = time.monotonic()
        asyncio.run(_set_due(settings, wanted_ids, None))
        deadline = time.monotonic() + baseline_wait_s
        while time.monotonic() < deadline:
            if len(asyncio.run(_polled(settings, wanted_ids))) == len(wanted_ids):
                break
            time.sleep(1.0)
        asyncio.run(_set_due(settings, [], None))
        baseline_s = time.monotonic() - t0
        baselined = asyncio.run(_polled(settings, wanted_ids))
        idle = delta(before, counters(system.url))
        idle_polls = sum(idle.get("jnufm_watch_polls", {}).values())
        # Purchases only for watches with a baseline: a first poll tells nothing.
        sample = [s for s in sample if made.watch_of[s] in baselined]
        sample_ids = [made.watch_of[s] for s in sample]
        early = len(receiver.deliveries())
        log(
            f"  watch: {len(made.watch_of)} watches in {made.seconds:.1f} s; "
            f"{len(baselined)} of {len(wanted_ids)} sample baselines in {baseline_s:.1f} s "
            f"({idle_polls} polls, the school otherwise idle); warm-up {WARMUP_S:.0f} s"
        )
        mixed(system.url, WARMUP_S, tmp, 0)
        school.wait_idle()
        phases: dict[str, Any] = {}

        # Phase 1: no watch due.
        http_json(school.side(CARD) + "/reset", {})
        before = counters(system.url)
        t1 = time.monotonic()
        r = mixed(system.url, size.phase_s, tmp, 1)
        took = time.monotonic() - t1
        stats = school.stats(CARD)
        phases["without"] = phase_figures(r, stats, delta(before, counters(system.url)), took)
        log(_phase_line("without", phases["without"]))
        school.wait_idle()

        # Phase 2: purchases, then the watches due.
        http_json(school.side(CARD) + "/reset", {})
        before = counters(system.url)
        box: dict[str, load.LoadResult] = {}
        t2 = time.monotonic()
        runner = threading.Thread(
            target=lambda: box.setdefault("r", mixed(system.url, size.phase_s, tmp, 2))
        )
        runner.start()
        purchases: list[dict[str, Any]] = []
        time.sleep(1.0)
        for i, who in enumerate(sample):
            amount = f"{3 + i % 9}.{(17 * i) % 100:02d}"
            at = time.time()
            answer = http_json(
                f"{school.url}/__sim/students/{who}/spend",
                {"amount": amount, "position": "第一饭堂"},
            )
            purchases.append(
                {
                    "student": who,
                    "watch_id": made.watch_of[who],
                    "amount": amount,
                    "at": at,
                    "ok": bool(answer.get("ok")),
                }
            )
            time.sleep(PURCHASE_GAP_S)
        if sample_ids:
            asyncio.run(_set_due(settings, sample_ids, 1.0))
        runner.join()
        took = time.monotonic() - t2
        stats = school.stats(CARD)
        phases["with"] = phase_figures(box["r"], stats, delta(before, counters(system.url)), took)
        log(_phase_line("with", phases["with"]))

        # The sample's deliveries, awaited; then no watch due.
        wanted = {p["watch_id"] for p in purchases}
        deadline = time.monotonic() + size.deliver_s
        while time.monotonic() < deadline:
            if wanted <= {d.watch_id for d in receiver.deliveries()}:
                break
            time.sleep(0.5)
        time.sleep(2.0)  # a second delivery of one event would come now
        asyncio.run(_set_due(settings, [], None))
        got = receiver.deliveries()
    finally:
        receiver.stop()
    out = figures(size, made, purchases, got, early)
    out.update(
        {
            "system": "default",
            "workload": KEY,
            "tool": "bench.watch",
            "school_profile": school_profile,
            "school_budget": settings.school.systems()[CARD].budget,
            "config": {
                "school_requests_per_min": settings.watches.school_requests_per_min,
                "poll_s_card_transaction": settings.watches.poll_s.card_transaction,
                "jitter": settings.watches.jitter,
                "webhook_allow_private": settings.watches.webhook_allow_private,
            },
            "setup": {
                "watches": len(made.watch_of),
                "seconds": round(made.seconds, 1),
                "sample_wanted": len(wanted_ids),
                "sample_baselines": len(baselined),
                "baseline_seconds": round(baseline_s, 1),
                # The server's polls while the sample waited for its first polls, the
                # school otherwise idle (the ceiling allows `school_requests_per_min`
                # / 2 polls a minute).
                "idle_polls": idle_polls,
                "idle_polls_per_min": round(idle_polls / (baseline_s / 60), 1),
                "idle_server": idle,
            },
            "phases": phases,
            "rss_mb": {str(pid): mb for pid, mb in system.rss().items()},
        }
    )
    polls = phases["with"]["watch_polls_per_min"]
    out["cycle_min"] = round(size.watched / polls, 1) if polls else None
    out["p50_ms"] = phases["with"]["p50_ms"]
    out["p99_ms"] = phases["with"]["p99_ms"]
    out["completed"] = phases["with"]["completed"]
    log(
        f"  watch: purchases {len(purchases)}, delivered {out['delivered']}, "
        f"p50 {out['delivery_p50_s']} s p90 {out['delivery_p90_s']} s "
        f"max {out['delivery_max_s']} s; "
        f"duplicates {out['duplicates']}, other watches' deliveries {out['other_deliveries']}, "
        f"bad signatures {out['bad_signatures']}; one poll of every watch per "
        f"{out['cycle_min']} min"
    )
    return out


def _phase_line(name: str, p: dict[str, Any]) -> str:
    return (
        f"  watch [{name}]: {p['completed']} answers, p50 {p['p50_ms']} ms p99 {p['p99_ms']} ms, "
        f"failed {p['failed']}; school {p['school_requests_per_min']}/min peak "
        f"{p['school_peak_in_flight']}; watch polls {p['watch_polls_per_min']}/min, "
        f"charged {p['watch_school_requests_per_min']}/min"
    )


def figures(
    size: Size,
    made: Made,
    purchases: Sequence[dict[str, Any]],
    got: Sequence[Delivery],
    early: int,
) -> dict[str, Any]:
    """Each purchase's delivery: time, count, signature; other watches' deliveries."""
    by_watch: dict[int, list[Delivery]] = collections.defaultdict(list)
    for d in got:
        by_watch[d.watch_id].append(d)
    per_key = collections.Counter(d.event_key for d in got)
    times: list[float] = []
    rows = []
    for p in purchases:
        mine = by_watch.get(p["watch_id"], [])
        first = min((d.at for d in mine), default=None)
        took = None if first is None else round(first - p["at"], 2)
        if took is not None:
            times.append(took)
        rows.append(
            {
                "student": p["student"],
                "amount": p["amount"],
                "deliveries": len(mine),
                "event_keys": len({d.event_key for d in mine}),
                "amount_matches": any(d.amount == f"-{p['amount']}" for d in mine),
                "seconds": took,
            }
        )
    sampled = {p["watch_id"] for p in purchases}
    return {
        "watched": size.watched,
        "sample": len(purchases),
        "phase_s": size.phase_s,
        "purchases_ok": sum(1 for p in purchases if p["ok"]),
        "delivered": sum(1 for r in rows if r["deliveries"]),
        "delivered_once": sum(1 for r in rows if r["deliveries"] == 1 and r["event_keys"] == 1),
        "amounts_match": sum(1 for r in rows if r["amount_matches"]),
        "lost": sum(1 for r in rows if not r["deliveries"]),
        "duplicates": sum(n - 1 for n in per_key.values() if n > 1),
        "other_deliveries": sum(1 for d in got if d.watch_id not in sampled),
        "deliveries_before_phases": early,
        "bad_signatures": sum(1 for d in got if not d.signed),
        "delivery_p50_s": percentile(times, 0.5),
        "delivery_p90_s": percentile(times, 0.9),
        "delivery_max_s": round(max(times), 2) if times else None,
        "purchases": rows,
        "notes": [],
    }


# --- the table --------------------------------------------------------------------------


def _n(v: Any) -> str:
    return "-" if v is None else str(v)


def table(doc: dict[str, Any]) -> str:
    """The workload's tables (empty without a watch result)."""
    parts: list[str] = []
    for r in (r for r in doc.get("results", []) if r.get("workload") == KEY):
        rows = [
            "| phase | students' answers | p50 / p99 ms | failed | school requests/min | "
            "school peak in flight (budget) | watch polls/min | school requests/min charged "
            "to watches |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in ("without", "with"):
            p = r["phases"][name]
            rows.append(
                f"| {name} watches | {p['completed']} in {p['seconds']} s | {_n(p['p50_ms'])} / "
                f"{_n(p['p99_ms'])} | {p['failed']} | {p['school_requests_per_min']} | "
                f"{p['school_peak_in_flight']} ({_n(r['school_budget'])}) | "
                f"{p['watch_polls_per_min']} | {p['watch_school_requests_per_min']} |"
            )
        c, s = r["config"], r["setup"]
        parts.append(
            f"Watches: {r['watched']:,} watched students (card_transaction, webhook) next to "
            f"the mixed workload; `watches.school_requests_per_min` "
            f"{c['school_requests_per_min']}, "
            f"`poll_s.card_transaction` {c['poll_s_card_transaction']} s"
            + (f" ({'; '.join(r['notes'])})" if r.get("notes") else "")
            + ":"
        )
        parts.append("\n".join(rows))
        parts.append(
            "| purchases | delivered | exactly once | amount right | lost | purchase to "
            "webhook p50 / p90 / max s | duplicates | other watches' deliveries | bad "
            "signatures | one poll of every watch per |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
            f"| {r['sample']} | {r['delivered']} | {r['delivered_once']} | "
            f"{r['amounts_match']} | {r['lost']} | {_n(r['delivery_p50_s'])} / "
            f"{_n(r['delivery_p90_s'])} / {_n(r['delivery_max_s'])} | {r['duplicates']} | "
            f"{r['other_deliveries']} | {r['bad_signatures']} | {_n(r['cycle_min'])} min |"
        )
        parts.append(
            f"Set-up (not timed above): {s['watches']:,} tokens and watches made in the "
            f"server's database in {s['seconds']} s; the sample's first polls: "
            f"{s['sample_baselines']} of {s['sample_wanted']} in {s['baseline_seconds']} s "
            f"({s['idle_polls_per_min']} polls/min, the school otherwise idle; purchases "
            f"only for those polled)."
        )
    return "\n\n".join(parts)
