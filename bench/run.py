"""The side-by-side run: every system on every workload, in one process tree, one machine.

Systems (each started, measured, stopped in turn):

- `replica`  (a) the 2013 replica: 5 Flask+gevent instances behind nginx round-robin
- `no-reuse` (b) jnufm with every cache and reuse feature off (bench/configs/no-reuse.yaml)
- `default`  (c) jnufm as configured by default (bench/configs/default.yaml)
- `hello`    (d) a pre-forked Tornado hello-world, as many processes as jnufm
- `nginx`    (e) nginx answering a fixed body

Workloads: the card center's (every system), and two on other school systems,
jnufm (c) against the replica (a) only: `term-start` (the academic office: many
students' timetables at once) and `search` (the main library catalogue:
Zipf-distributed title words). And `gateway` (bench/gateway.py), jnufm against the
replica: one address asking for 2,000 students' balances; jnufm on its own defaults
(limits on), once as a registered client and once unregistered, each on a server of
its own. And `wechat` (bench/wechat.py), jnufm (c) alone on a server of its own:
500 followers of its WeChat official account bound, then asking at lunchtime.
And `feeds` (bench/feeds.py): calendar feeds by token, plain and conditional GETs, jnufm
(c) next to the hello-world (d) (the 2013 replica had none: no equivalent). And
`term-start-prefetched` (bench/prefetch.py): term start on jnufm (c) of its own, plain
and after `python server.py prefetch timetable` filled the cache.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from bench import feeds, gateway, load, prefetch, procs, watch, wechat
from bench.procs import CARD, CONFIGS, SINGLE_STUDENT, School, System
from harness.processes import http_json

if TYPE_CHECKING:
    import argparse

RESULTS = Path(__file__).resolve().parent / "results"

SYSTEMS: dict[str, str] = {
    "replica": "(a) 2013 replica: Flask+gevent x5 behind nginx",
    "no-reuse": "(b) jnufm, every cache and reuse off",
    "default": "(c) jnufm, default config",
    "hello": "(d) Tornado hello-world, pre-forked",
    "nginx": "(e) nginx, fixed body",
}


@dataclass(frozen=True)
class Workload:
    """One load shape; `kind` says which generator and which URLs."""

    key: str
    label: str
    # "ab" | "wrk-single" | "wrk-cold" | "wrk-mixed" | "gateway" (card center);
    # "wechat" (the official account: card center, academic office, catalogue);
    # "watch" (students' watches next to the mixed workload);
    # "wrk-term-start" (academic office) | "wrk-search" (main library catalogue);
    # "feeds" (calendar feeds by token) | "term-start-prefetched" (term start, prefetched)
    kind: str
    concurrency: int
    requests: int  # ab: -n; wrk-cold, -term-start, -search: answers to stop after (0 = none)
    seconds: float  # time limit (ab -t, wrk -d)
    school_profile: str
    exact: bool = False  # the exact 2013 command (no time cap expected to bite)
    school: str = CARD  # the simulated system asked (its profile, counters, figures)
    only: tuple[str, ...] = ()  # the systems measured on it (empty: every system)
    students: int = 0  # gateway: distinct students (repeats: more asks drawn Zipf)
    repeats: int = 0  # (wechat: followers, and questions drawn Zipf over them)


# The workloads on the academic office and the library: jnufm against 2013 only.
SIDE_BY_SIDE = ("replica", "default")
# jnufm's global budget (concurrent requests) per simulated system, config key.
BUDGET_KEYS = {CARD: "card", "academic": "academic", "opac": "library"}


# What each workload measures (`python -m bench --help`).
MEASURES: dict[str, str] = {
    "ab-c3-n10": "the 2013 README's own ab command on the balance URL, one student",
    "ab-c5-n50": "the 2013 README's second ab command (5 at once)",
    "ab-c3-n1000": "the balance URL for one student, longer: steady throughput at low concurrency",
    "ab-c5-n5000": "as above with 5 connections",
    "wrk-warm-c100": "one warm student's balance at 100 connections: the cached path's ceiling",
    "cold-1000": "1,000 distinct students, each once: every answer needs the school",
    "mixed-90-10": "90% repeat students, 10% new: the cache's effect on a realistic mix",
    "term-start": "the academic office at term start: many students' timetables at once",
    "search": "the main library catalogue: Zipf-distributed title words",
    "gateway": "one address asking for many students (a WeChat server): fairness and limits",
    "wechat": "the WeChat official account: followers bound, then asking at lunchtime",
    "watch": "students' watches polling the school next to the mixed workload",
    "feeds": "calendar feeds by token, plain and If-None-Match (304) GETs, next to hello-world",
    "term-start-prefetched": "term start again after `server.py prefetch timetable`, vs plain",
}
# The workloads run on a server of their own (not on the system as started).
OWN_SERVER = ("gateway", "wechat", "watch", prefetch.KEY)


def workloads(quick: bool) -> list[Workload]:
    """The workloads of a quick or a full run."""
    q = quick
    # The gateway: distinct students, and more asks drawn Zipf over them.
    students, repeats = (60, 90) if q else (2000, 4000)
    chat = wechat.QUICK if q else wechat.FULL
    watched = watch.QUICK if q else watch.FULL
    polled = feeds.QUICK if q else feeds.FULL
    fetched = prefetch.QUICK if q else prefetch.FULL
    return [
        Workload("ab-c3-n10", "ab -c 3 -n 10 (2013)", "ab", 3, 10, 30, "jnu-2013", exact=True),
        Workload(
            "ab-c5-n50",
            "ab -c 5 -n 50 (2013)",
            "ab",
            5,
            50,
            6 if q else 150,
            "jnu-2013",
            exact=True,
        ),
        Workload("ab-c3-n1000", "ab -c 3 -n 1000", "ab", 3, 1000, 3 if q else 40, "jnu-2013"),
        Workload("ab-c5-n5000", "ab -c 5 -n 5000", "ab", 5, 5000, 3 if q else 40, "jnu-2013"),
        Workload(
            "wrk-warm-c100",
            "wrk -c 100, warm balance",
            "wrk-single",
            100,
            0,
            2 if q else 10,
            "fast",
        ),
        Workload(
            "cold-1000",
            "cold: 1,000 students, -c 10",
            "wrk-cold",
            10,
            1000,
            3 if q else 60,
            "jnu-2013",
        ),
        Workload(
            "mixed-90-10",
            "mixed: 90% repeat, 10% new, -c 10",
            "wrk-mixed",
            10,
            0,
            3 if q else 30,
            "jnu-2013",
        ),
        Workload(
            "term-start",
            "term start: 300 students' timetables, -c 20",
            "wrk-term-start",
            20,
            300,
            5 if q else 120,
            "jnu-2013",
            school="academic",
            only=SIDE_BY_SIDE,
        ),
        Workload(
            "search",
            f"library search: Zipf title words, -c 20, {1000 if q else 3000:,} answers",
            "wrk-search",
            20,
            1000 if q else 3000,
            5 if q else 60,
            "jnu-2013",
            school="opac",
            only=SIDE_BY_SIDE,
        ),
        Workload(
            "gateway",
            f"gateway: one address, {students:,} students, -c 50",
            "gateway",
            50,
            # the plan's asks: each student once, the mistypes, the repeats
            students + round(students * gateway.MISTYPE_SHARE) + repeats,
            10 if q else 90,
            "jnu-2013",
            only=SIDE_BY_SIDE,
            students=students,
            repeats=repeats,
        ),
        Workload(
            "wechat",
            f"wechat: {chat.followers:,} followers at lunchtime",
            "wechat",
            chat.lanes,
            chat.questions,
            chat.seconds,
            "jnu-2013",
            only=("default",),
            students=chat.followers,
            repeats=chat.questions,
        ),
        Workload(
            "watch",
            f"watch: {watched.watched:,} watched students next to the mixed workload",
            "watch",
            watch.CONNECTIONS,
            watched.sample,
            watched.phase_s,
            "jnu-2013",
            only=("default",),
            students=watched.watched,
            repeats=watched.sample,
        ),
        Workload(
            feeds.KEY,
            f"feeds: {polled.students} calendar feeds by token, -c {polled.connections}",
            feeds.KEY,
            polled.connections,
            0,
            polled.seconds,
            "jnu-2013",
            school="academic",
            only=("replica", "default", "hello"),
            students=polled.students,
        ),
        Workload(
            prefetch.KEY,
            f"term start, prefetched: {fetched.requests} students' timetables, "
            f"-c {fetched.connections}, each phase",
            prefetch.KEY,
            fetched.connections,
            fetched.requests,
            fetched.seconds,
            "jnu-2013",
            school="academic",
            only=("default",),
            students=fetched.requests + fetched.connections,
        ),
    ]


def runs_on(wl: Workload, system: str) -> bool:
    return not wl.only or system in wl.only


def term_start_paths(wl: Workload) -> list[str]:
    """One distinct student per request: the count wanted plus one per connection (the
    requests still in flight when the count is reached), so none is asked twice."""
    return [
        load.timetable_path(str(load.TERM_START_BASE + i))
        for i in range(wl.requests + wl.concurrency)
    ]


@dataclass(frozen=True)
class SearchPlan:
    """The search run's queries: the vocabulary (rank order) and the drawn ranks."""

    words: list[str]
    order: list[int]

    def facts(self, school: School | None) -> dict[str, Any]:
        """What the sequence asks, and (with the simulator) what the catalogue finds."""
        counts: dict[int, int] = {}
        for k in self.order:
            counts[k] = counts.get(k, 0) + 1
        top = max(counts.items(), key=lambda kv: kv[1])
        out: dict[str, Any] = {
            "vocabulary": len(self.words),
            "zipf_s": load.SEARCH_ZIPF_S,
            "seed": load.SEARCH_SEED,
            "sequence": len(self.order),
            "distinct_queries": len(counts),
            "top_query": self.words[top[0]],
            "top_query_share": round(top[1] / len(self.order), 3),
        }
        if school is not None:
            hits = [
                int(http_json(school.url + "/__sim/opac/search?" + urlencode({"q": w}))["total"])
                for w in self.words
            ]
            out["words_without_hits"] = sum(1 for h in hits if h == 0)
            # One hit: the catalogue answers with the record page itself.
            out["single_hit_share_of_sequence"] = round(
                sum(1 for k in self.order if hits[k] == 1) / len(self.order), 3
            )
            out["median_hits"] = sorted(hits)[len(hits) // 2]
        return out


def search_plan(wl: Workload, catalogue_seed: int = 2013) -> SearchPlan:
    """The Zipf query sequence of a search workload (the same every run), over the
    vocabulary of the simulated catalogue of `catalogue_seed` (the harness's school)."""
    words = load.search_vocabulary(catalogue_seed)
    return SearchPlan(words, load.zipf_sequence(len(words), wl.requests + wl.concurrency))


def budget_of(system: System, school: str) -> int | None:
    """jnufm's budget (concurrent requests, all workers) for a simulated system."""
    if system.key in ("replica", "hello", "nginx"):
        return None
    from settings import Settings

    key = BUDGET_KEYS.get(school)
    if key is None:
        return None
    config = system.extra.get("config", {})
    # `school.<key>.budget`, or `budget.<key>` as older configs say it.
    value = config.get("school", {}).get(key, {}).get("budget")
    if value is None:
        value = config.get("budget", {}).get(key, Settings().school.systems()[key].budget)
    return int(value)


def machine_facts() -> dict[str, Any]:
    """Cores, CPU, kernel and the versions of everything measured."""

    def first_line(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except OSError:
            return "not installed"
        out = (p.stdout + p.stderr).strip().splitlines()
        return out[0] if out else ""

    cpu = ""
    try:
        m = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = m.group(1) if m else platform.processor()
    except OSError:
        cpu = platform.processor()
    import tornado

    versions = {"python": platform.python_version(), "tornado": tornado.version}
    for mod in ("gevent", "flask", "requests", "httpx", "uvloop"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod)
        except Exception:
            versions[mod] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "platform": platform.platform(),
        "versions": versions,
        "nginx": first_line([procs.nginx_binary(), "-v"]),
        "ab": first_line(["ab", "-V"]),
        "wrk": first_line(["wrk", "-v"]),
    }


def school_settings(name: str) -> dict[str, Any]:
    from schoolsim.profiles import profile

    return profile(name).as_dict()


def measure(
    system: System,
    wl: Workload,
    school: School | None,
    tmp: Path,
    log: Callable[[str], None],
    plan: SearchPlan | None = None,
) -> dict[str, Any]:
    """Run one workload against one system and collect every figure."""
    url = system.url
    seconds = wl.seconds
    notes: list[str] = []
    asked = (CARD, wl.school) if wl.school != CARD else (CARD,)
    if not system.uses_school:
        notes.append("fixed body on every path (no school)")
    if school is not None and system.uses_school:
        school.wait_idle(systems=asked)
        if school.profile_of(wl.school) != wl.school_profile:
            school.use_profile(wl.school_profile, wl.school)
        if wl.kind == "wrk-single":
            # Warm: the same student was asked just before the measured run.
            load.ab(url + load.balance_path(SINGLE_STUDENT), 1, 1, 30)
        school.wait_idle(systems=asked)
        for name in asked:
            school.reset(name)
    before = system.served()
    before_status = system.statuses()
    if wl.kind == "ab":
        r = load.ab(url + load.balance_path(SINGLE_STUDENT), wl.concurrency, wl.requests, seconds)
    elif wl.kind == "wrk-single":
        r = load.wrk(url, wl.concurrency, seconds, tmp, "single", int(SINGLE_STUDENT))
    elif wl.kind == "wrk-cold":
        r = load.wrk(url, wl.concurrency, seconds, tmp, "cold", load.COLD_BASE, wl.requests)
    elif wl.kind == "wrk-term-start":
        r = load.wrk_paths(
            url, wl.concurrency, seconds, tmp, wl.key, term_start_paths(wl), limit=wl.requests
        )
    elif wl.kind == "wrk-search":
        plan = plan or search_plan(wl)
        paths = [load.search_path(w) for w in plan.words]
        r = load.wrk_paths(
            url, wl.concurrency, seconds, tmp, wl.key, paths, plan.order, wl.requests
        )
    else:
        r = load.wrk(url, wl.concurrency, seconds, tmp, "mixed", load.MIXED_REPEAT_BASE)
    # School figures first: the servers go on finishing queries the load generator
    # has given up on (wrk stops with -c queries in flight).
    stats = school.stats(wl.school) if school is not None and system.uses_school else None
    time.sleep(0.2)
    per_worker = system.served() - before
    by_status = system.statuses() - before_status
    counts = sorted(per_worker.values(), reverse=True)
    pids = system.worker_pids()
    while len(counts) < len(pids):
        counts.append(0)
    out: dict[str, Any] = {"system": system.key, "workload": wl.key, **r.as_dict()}
    counted = ("ab", "wrk-cold", "wrk-term-start", "wrk-search")
    capped = wl.kind in counted and r.completed < wl.requests
    if capped:
        notes.append(f"capped at {int(seconds)} s: {r.completed} of {wl.requests} done")
    out["time_limit_s"] = seconds
    out["capped"] = capped
    out["per_worker"] = {str(pid): per_worker.get(pid, 0) for pid in pids}
    # The server's answers by status, from its access log (includes queries wrk had
    # given up on that ended before the count was taken).
    out["statuses"] = dict(sorted(by_status.items()))
    out["busiest_over_least"] = round(counts[0] / counts[-1], 3) if counts and counts[-1] else None
    out["rss_mb"] = {str(pid): mb for pid, mb in system.rss().items()}
    out["memory_mb"] = {str(pid): mb for pid, mb in system.memory().items()}
    # The master's and the simulator's, read at the same moment as the workers'.
    out["master_memory_mb"] = system.master_memory()
    out["school_memory_mb"] = school.memory() if school is not None else None
    out["school_profile"] = wl.school_profile if system.uses_school else None
    # Answers: 2xx answers with data, per second (a fast failure is no answer, nor is
    # an empty list where the school has data: every student has courses in the
    # term asked, every search word finds books).
    out["answers_per_s"] = round(r.answers / r.seconds, 2) if r.seconds else None
    if stats is not None:
        out["school"] = wl.school
        out["school_requests"] = stats["requests"]
        out["school_requests_per_answer"] = (
            round(stats["requests"] / r.answers, 2) if r.answers else None
        )
        out["school_peak_in_flight"] = stats["peak_in_flight"]
        out["school_errors"] = stats["errors"]
        out["school_by_status"] = stats.get("by_status")
        out["school_budget"] = budget_of(system, wl.school)
        # The system's own counters (academic office: logins and captchas; catalogue:
        # searches and record pages).
        own = (
            "logins_ok",
            "logins_failed",
            "captcha_fetches",
            "captcha_wrong",
            "viewstate_failures",
            "searches",
            "records",
        )
        extra = {k: stats[k] for k in own if k in stats}
        if extra and wl.school != CARD:
            out["school_counts"] = extra
    if plan is not None and wl.kind == "wrk-search":
        out["queries"] = plan.facts(None)
    out["notes"] = notes
    budget = out.get("school_budget")
    log(
        f"  {wl.key:<14} {r.rps:>9.2f} req/s  {out['answers_per_s']} answers/s  "
        f"p50 {r.p50_ms} ms  p99 {r.p99_ms} ms  failed {r.bad}/{r.completed}  "
        + (f"empty {r.empty}  " if r.empty else "")
        + f"school/answer {out.get('school_requests_per_answer')}  "
        f"peak {out.get('school_peak_in_flight')}"
        + (f" (budget {budget})" if budget is not None else "")
        + (f"  [{'; '.join(notes)}]" if notes else "")
    )
    return out


def start_system(
    key: str, tmp: Path, school: School, processes: int, database_url: str | None
) -> System:
    if key == "replica":
        return procs.start_replica(tmp, school.url)
    if key == "no-reuse":
        return procs.start_jnufm(
            tmp, key, CONFIGS / "no-reuse.yaml", school.url, processes, database_url
        )
    if key == "default":
        return procs.start_jnufm(
            tmp, key, CONFIGS / "default.yaml", school.url, processes, database_url
        )
    if key == "hello":
        return procs.start_hello(tmp, processes)
    if key == "nginx":
        return procs.start_nginx_fixed(tmp, processes)
    raise ValueError(f"unknown system {key!r}")


def check_tools() -> None:
    missing = [t for t in ("ab", "wrk") if shutil.which(t) is None]
    procs.nginx_binary()
    if missing:
        raise SystemExit(
            f"bench: missing {', '.join(missing)}: apt-get install apache2-utils wrk nginx-light"
        )


def run(
    quick: bool,
    systems: list[str],
    only: list[str] | None = None,
    database_url: str | None = None,
    out_path: Path | None = None,
    log: Callable[[str], None] = print,
    seconds: float | None = None,
    watch_ceiling: float | None = None,
) -> Path:
    """Run every selected system on every workload; write and return the results JSON.
    `seconds`: each workload's time cap instead of its own (recorded in the results).
    `watch_ceiling`: the watch workload's `watches.school_requests_per_min` instead of
    the server's default (recorded in its result)."""
    check_tools()
    processes = os.cpu_count() or 1
    wls = [w for w in workloads(quick) if not only or w.key in only]
    if seconds is not None:
        wls = [dataclasses.replace(w, seconds=seconds) for w in wls]
    plans = {w.key: search_plan(w) for w in wls if w.kind == "wrk-search"}
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": machine_facts(),
        "processes": processes,
        "replica_instances": procs.REPLICA_INSTANCES,
        "database": "mysql" if database_url else "sqlite",
        "school_profiles": {p: school_settings(p) for p in {w.school_profile for w in wls}},
        # Each simulated system's settings at the start of the run (the mounted ones
        # carry their own calibration of the profile).
        "school_systems": {},
        "systems": {k: SYSTEMS[k] for k in systems},
        "workloads": [w.__dict__ for w in wls],
        "results": [],
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jnufm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        log("starting the simulated school")
        school = procs.start_school(tmp)
        try:
            for name in sorted({CARD, *(w.school for w in wls)}):
                stats = school.stats(name)
                doc["school_systems"][name] = {
                    "profile": stats.get("profile"),
                    "settings": stats.get("settings"),
                }
            for w in wls:
                if w.key in plans:
                    doc.setdefault("search_queries", {})[w.key] = plans[w.key].facts(school)
                if w.kind == "gateway":
                    doc.setdefault("gateway_plans", {})[w.key] = gateway_plan(w).facts()
            for key in systems:
                mine = [w for w in wls if runs_on(w, key)]
                if not mine:
                    continue
                log(f"{SYSTEMS[key]}")
                # The gateway's cases run on the system as started, or (jnufm) each on a
                # server of its own: its defaults, a fresh database, a client registered.
                shared: list[tuple[Workload, gateway.Case | None]] = [
                    (w, None)
                    for w in mine
                    if w.kind not in OWN_SERVER and not (w.kind == feeds.KEY and key == "replica")
                ]
                if key == "replica" and any(w.kind == feeds.KEY for w in mine):
                    # 2013 had no calendar feeds: nothing to measure.
                    log(f"  {feeds.KEY}: {feeds.NO_EQUIVALENT}")
                    doc["results"].append(feeds.no_equivalent(key))
                own: list[tuple[Workload, gateway.Case]] = []
                for w in mine:
                    if w.kind == "gateway":
                        for case in gateway.cases(key):
                            (own if case.own else shared).append((w, case))
                if shared:
                    run_shared(key, shared, doc, school, tmp, processes, database_url, plans, log)
                for wl, case in own:
                    log(f"  {wl.key}: {wl.label}, on a server of its own")
                    school.wait_idle()
                    school.reset()
                    system = gateway.start_jnufm(tmp, case, school, processes, database_url)
                    try:
                        result = measure_gateway(key, system, wl, case, school, log)
                        if database_url:
                            result["notes"].append(
                                "MySQL: the database (answers, verifiers, failed logins) is "
                                "shared with the systems and cases before"
                            )
                        doc["results"].append(result)
                        if case.registered:
                            gateway.unregister(system)
                    finally:
                        system.stop()
                for wl in mine:
                    if wl.kind == "wechat":
                        doc["results"].append(
                            measure_wechat(wl, school, tmp, processes, database_url, log)
                        )
                    if wl.kind == "watch":
                        doc["results"].append(
                            measure_watch(
                                wl, school, tmp, processes, database_url, log, watch_ceiling
                            )
                        )
                    if wl.kind == prefetch.KEY:
                        doc["results"].append(
                            measure_prefetched(wl, school, tmp, processes, database_url, log)
                        )
        finally:
            school.stop()
    doc["duration_s"] = round(time.monotonic() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    if out_path is None:
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        out_path = RESULTS / f"{stamp}-{doc['mode']}.json"
    out_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return out_path


def note_shared_database(result: dict[str, Any], database_url: str | None) -> None:
    """Say so in a result of jnufm on its own server when its database is the run's MySQL."""
    if database_url:
        result["notes"].append("MySQL: the database is shared with the systems before")


def measure_wechat(
    wl: Workload,
    school: School,
    tmp: Path,
    processes: int,
    database_url: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The wechat workload on jnufm of its own (the account, a fresh database)."""
    school.wait_idle()
    system = wechat.start_jnufm(tmp, school, processes, database_url)
    try:
        size = wechat.Size(wl.students, wl.repeats, wl.seconds, wl.concurrency)
        result = wechat.measure(system, school, size, log, wl.school_profile)
        note_shared_database(result, database_url)
        return result
    finally:
        system.stop()


def measure_watch(
    wl: Workload,
    school: School,
    tmp: Path,
    processes: int,
    database_url: str | None,
    log: Callable[[str], None],
    ceiling: float | None = None,
) -> dict[str, Any]:
    """The watch workload on jnufm of its own (a fresh database, the watches made in it);
    `ceiling`: its `watches.school_requests_per_min` instead of the default."""
    school.wait_idle()
    extra = None if ceiling is None else {"watches": {"school_requests_per_min": ceiling}}
    system = watch.start_jnufm(tmp, school, processes, database_url, extra)
    try:
        size = watch.Size(wl.students, wl.repeats, wl.seconds, watch.FULL.deliver_s)
        result = watch.measure(system, school, size, tmp, log, wl.school_profile)
        note_shared_database(result, database_url)
        if ceiling is not None:
            result["notes"].append(
                f"watches.school_requests_per_min {ceiling:g} (changed; default 60)"
            )
        return result
    finally:
        system.stop()


def measure_prefetched(
    wl: Workload,
    school: School,
    tmp: Path,
    processes: int,
    database_url: str | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The term-start-prefetched workload on jnufm of its own (a fresh database)."""
    school.wait_idle(systems=(CARD, wl.school))
    log(f"  {wl.key}: {wl.label}, on a server of its own (each phase up to {wl.seconds:g} s)")
    system = prefetch.start_jnufm(tmp, school, processes, database_url)
    try:
        size = prefetch.Size(wl.requests, wl.concurrency, wl.seconds)
        result = prefetch.measure(system, school, size, tmp, log, wl.school_profile)
        result["school_budget"] = budget_of(system, wl.school)
        note_shared_database(result, database_url)
        return result
    finally:
        system.stop()


def measure_feeds(
    system: System, wl: Workload, school: School, tmp: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """The feeds workload on a system as started (jnufm: its feeds made first)."""
    if system.uses_school and school.profile_of(wl.school) != wl.school_profile:
        school.use_profile(wl.school_profile, wl.school)
    size = feeds.Size(wl.students, wl.seconds, wl.concurrency)
    return feeds.measure(system, school, size, tmp, log)


def gateway_plan(wl: Workload) -> gateway.Plan:
    return gateway.make_plan(wl.students, wl.repeats)


def measure_gateway(
    key: str,
    system: System,
    wl: Workload,
    case: gateway.Case,
    school: School,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The gateway workload on one system in one case."""
    setup = gateway.Setup(
        gateway_plan(wl),
        wl.concurrency,
        wl.seconds,
        wl.school_profile,
        budget_of(system, CARD),
    )
    return gateway.measure(key, system, case, setup, school, log)


def run_shared(
    key: str,
    mine: list[tuple[Workload, gateway.Case | None]],
    doc: dict[str, Any],
    school: School,
    tmp: Path,
    processes: int,
    database_url: str | None,
    plans: dict[str, SearchPlan],
    log: Callable[[str], None],
) -> None:
    """Start one system, measure these workloads on it in turn, stop it."""
    school.wait_idle()
    school.reset()
    system = start_system(key, tmp, school, processes, database_url)
    try:
        for wl, case in mine:
            if case is not None:
                doc["results"].append(measure_gateway(key, system, wl, case, school, log))
                continue
            log(f"  {wl.key}: {wl.label} (up to {wl.seconds:g} s)")
            if wl.kind == feeds.KEY:
                doc["results"].append(measure_feeds(system, wl, school, tmp, log))
                continue
            result = measure(system, wl, school, tmp, log, plans.get(wl.key))
            if key == "hello" and one_worker_served(result):
                # The ceiling's plain shared socket gave every connection to one worker
                # (docs/process-model.md): not a ceiling. Once more.
                log("  (every connection on one hello-world worker: once more)")
                first = result
                result = measure(system, wl, school, tmp, log, plans.get(wl.key))
                result["notes"].append(
                    "measured twice: the first time one worker served all "
                    f"({first['rps']:.0f} req/s)"
                )
            doc["results"].append(result)
        if key == "replica":
            doc["replica_jwc_login_judge"] = system.extra.get("jwc_login_judge")
    finally:
        system.stop()


def one_worker_served(result: dict[str, Any]) -> bool:
    """Every request of a run of >= 50 went to one of several workers."""
    per_worker = result.get("per_worker") or {}
    return (
        len(per_worker) > 1
        and result.get("completed", 0) >= 50
        and sum(1 for n in per_worker.values() if n > 0) == 1
    )


def workloads_help() -> str:
    """Every workload: its key, what it measures, where it runs and its time caps."""
    quick = {w.key: w for w in workloads(True)}
    lines = ["workloads (--workloads KEY,...; time cap per system, full run / --quick):"]
    wide = max(14, *(len(w.key) for w in quick.values()))
    for w in workloads(False):
        systems = ", ".join(w.only) if w.only else "every system"
        cap = f"{w.seconds:g} s / {quick[w.key].seconds:g} s" if w.key in quick else ""
        lines.append(f"  {w.key:<{wide}} {MEASURES.get(w.key, w.label)}")
        lines.append(f"  {'':<{wide}} {w.label}; on {systems}; up to {cap}")
    lines.append("")
    lines.append("systems (--systems KEY,...):")
    lines += [f"  {key:<{wide}} {what}" for key, what in SYSTEMS.items()]
    lines.append("")
    lines += textwrap.wrap(
        "A full run takes < 20 min, --quick < 4 min (each system is started, warmed and "
        "stopped in turn). Progress goes to stderr, a line per system and per workload; "
        "the table to stdout; the results to bench/results/.",
        width=88,
    )
    return "\n".join(lines)


def run_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench run",
        description="Every system on every workload, side by side on this machine.",
        epilog=workloads_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short time caps (< 4 min)")
    mode.add_argument("--full", action="store_true", help="the full run (default, < 20 min)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--workloads", default="", help="comma-separated keys (default all)")
    parser.add_argument("--mysql", metavar="URL", help="jnufm on this MySQL database")
    parser.add_argument("--out", type=Path, help="results JSON path")
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="every selected workload's time cap instead of its own, e.g. "
        "`--workloads gateway --seconds 600` to let the gateway's whole plan run",
    )
    return parser


def main_run(argv: list[str]) -> int:
    parser = run_parser()
    parser.add_argument(
        "--watch-ceiling",
        type=float,
        default=None,
        metavar="PER_MIN",
        help="the watch workload's watches.school_requests_per_min instead of the "
        "server's default (60), recorded in its result",
    )
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s!r} (known: {', '.join(SYSTEMS)})")
    only = [w for w in args.workloads.split(",") if w] or None
    known = [w.key for w in workloads(args.quick)]
    for w in only or []:
        if w not in known:
            parser.error(f"unknown workload {w!r} (known: {', '.join(known)})")
    t0 = time.monotonic()

    def progress(line: str) -> None:
        print(f"bench [{time.monotonic() - t0:5.0f} s] {line}", file=sys.stderr, flush=True)

    path = run(
        args.quick,
        systems,
        only,
        args.mysql,
        args.out,
        log=progress,
        seconds=args.seconds,
        watch_ceiling=args.watch_ceiling,
    )
    from bench import report

    doc = json.loads(path.read_text())
    print()
    print(report.table(doc))
    print(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    sys.stdout.flush()
    return 0
