"""The side-by-side run: every system on every workload, in one process tree, one machine.

Systems (each started, measured, stopped in turn):

- `replica`  (a) the 2013 replica: 5 Flask+gevent instances behind nginx round-robin
- `no-reuse` (b) jnufm with every cache and reuse feature off (bench/configs/no-reuse.yaml)
- `default`  (c) jnufm as configured by default (bench/configs/default.yaml)
- `hello`    (d) a pre-forked Tornado hello-world, as many processes as jnufm
- `nginx`    (e) nginx answering a fixed body
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load, procs
from bench.procs import CONFIGS, SINGLE_STUDENT, School, System

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
    kind: str  # "ab" | "wrk-single" | "wrk-cold" | "wrk-mixed"
    concurrency: int
    requests: int  # ab: -n; wrk-cold: answers to stop after (0 = none)
    seconds: float  # time limit (ab -t, wrk -d)
    school_profile: str
    exact: bool = False  # the exact 2013 command (no time cap expected to bite)


def workloads(quick: bool) -> list[Workload]:
    """The workloads of a quick or a full run."""
    q = quick
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
    ]


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
) -> dict[str, Any]:
    """Run one workload against one system and collect every figure."""
    url = system.url
    seconds = wl.seconds
    notes: list[str] = []
    if not system.uses_school:
        notes.append("fixed body on every path (no school)")
    if school is not None and system.uses_school:
        school.wait_idle()
        if school.profile != wl.school_profile:
            school.use_profile(wl.school_profile)
        if wl.kind == "wrk-single":
            # Warm: the same student was asked just before the measured run.
            load.ab(url + load.balance_path(SINGLE_STUDENT), 1, 1, 30)
        school.wait_idle()
        school.reset()
    before = system.served()
    if wl.kind == "ab":
        r = load.ab(url + load.balance_path(SINGLE_STUDENT), wl.concurrency, wl.requests, seconds)
    elif wl.kind == "wrk-single":
        r = load.wrk(url, wl.concurrency, seconds, tmp, "single", int(SINGLE_STUDENT))
    elif wl.kind == "wrk-cold":
        r = load.wrk(url, wl.concurrency, seconds, tmp, "cold", load.COLD_BASE, wl.requests)
    else:
        r = load.wrk(url, wl.concurrency, seconds, tmp, "mixed", load.MIXED_REPEAT_BASE)
    # School figures first: the servers go on finishing queries the load generator
    # has given up on (wrk stops with -c queries in flight).
    stats = school.stats() if school is not None and system.uses_school else None
    time.sleep(0.2)
    per_worker = system.served() - before
    counts = sorted(per_worker.values(), reverse=True)
    pids = system.worker_pids()
    while len(counts) < len(pids):
        counts.append(0)
    out: dict[str, Any] = {"system": system.key, "workload": wl.key, **r.as_dict()}
    capped = (wl.kind == "ab" and r.completed < wl.requests) or (
        wl.kind == "wrk-cold" and r.completed < wl.requests
    )
    if capped:
        notes.append(f"capped at {int(seconds)} s: {r.completed} of {wl.requests} done")
    out["time_limit_s"] = seconds
    out["capped"] = capped
    out["per_worker"] = {str(pid): per_worker.get(pid, 0) for pid in pids}
    out["busiest_over_least"] = round(counts[0] / counts[-1], 3) if counts and counts[-1] else None
    out["rss_mb"] = {str(pid): mb for pid, mb in system.rss().items()}
    out["school_profile"] = wl.school_profile if system.uses_school else None
    if stats is not None:
        out["school_requests"] = stats["requests"]
        out["school_requests_per_answer"] = round(stats["requests"] / r.ok, 2) if r.ok else None
        out["school_peak_in_flight"] = stats["peak_in_flight"]
        out["school_errors"] = stats["errors"]
    out["notes"] = notes
    log(
        f"  {wl.key:<14} {r.rps:>9.2f} req/s  p50 {r.p50_ms} ms  p99 {r.p99_ms} ms  "
        f"failed {r.bad}/{r.completed}  school/answer {out.get('school_requests_per_answer')}"
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
) -> Path:
    """Run every selected system on every workload; write and return the results JSON."""
    check_tools()
    processes = os.cpu_count() or 1
    wls = [w for w in workloads(quick) if not only or w.key in only]
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "machine": machine_facts(),
        "processes": processes,
        "replica_instances": procs.REPLICA_INSTANCES,
        "database": "mysql" if database_url else "sqlite",
        "school_profiles": {p: school_settings(p) for p in {w.school_profile for w in wls}},
        "systems": {k: SYSTEMS[k] for k in systems},
        "workloads": [w.__dict__ for w in wls],
        "results": [],
    }
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jnufm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        school = procs.start_school(tmp)
        try:
            for key in systems:
                log(f"{SYSTEMS[key]}")
                school.wait_idle()
                school.reset()
                system = start_system(key, tmp, school, processes, database_url)
                try:
                    for wl in wls:
                        doc["results"].append(measure(system, wl, school, tmp, log))
                finally:
                    system.stop()
        finally:
            school.stop()
    doc["duration_s"] = round(time.monotonic() - t0, 1)
    RESULTS.mkdir(exist_ok=True)
    if out_path is None:
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        out_path = RESULTS / f"{stamp}-{doc['mode']}.json"
    out_path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return out_path


def main_run(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench run")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short time caps (< 3 min)")
    mode.add_argument("--full", action="store_true", help="the full run (default, < 20 min)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--workloads", default="", help="comma-separated keys (default all)")
    parser.add_argument("--mysql", metavar="URL", help="jnufm on this MySQL database")
    parser.add_argument("--out", type=Path, help="results JSON path")
    args = parser.parse_args(argv)
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s!r} (known: {', '.join(SYSTEMS)})")
    only = [w for w in args.workloads.split(",") if w] or None
    path = run(args.quick, systems, only, args.mysql, args.out)
    from bench import report

    doc = json.loads(path.read_text())
    print()
    print(report.table(doc))
    print(f"\nresults: {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    sys.stdout.flush()
    return 0
