"""Fault drills, run as an operator would: what each fault costs, in figures.

    python -m bench drills [--only NAME ...] [--seconds N]

Each drill starts its own processes on loopback (jnufm with 2 workers, the
simulated school, and for the database drill its own MariaDB instance in a
temporary folder, never the machine's shared one), puts a steady load on
jnufm, injects one fault, ends it, and prints:

- requests, and how many were refused or failed (by status);
- lost results: answers the school gave that never reached the database;
- budget recovery: from the end of the fault to the first cold query answered;
- deadline kept: the slowest answer against `api.deadline_s`;
- what else the drill is about (readiness, restarts, memory).

Drills: db-kill (MariaDB SIGKILLed for 10 s under load), school-slow (every
school request just under the timeout), school-kill (the school process killed
and restarted), worker-kill (a worker SIGKILLed every 3 s), sigterm (a stop
during school requests that hang), disk-full (SQLite on a small tmpfs filled
up, then room made), memory (RSS of workers and school before and after a
long cold run); and the second round (bench/fault_drills.py): db-reload (a
reload and a worker kill while MariaDB is down), school-hang (every system's
requests hang), budget-kill (the worker holding a school slot SIGKILLed),
db-flap (MariaDB killed and restarted again and again mid-request),
covers-oversize, log-leak (secrets in every shape of request line), slow-body
(bench/slow_body.py) and storage-growth (bench/storage_growth.py). The
disk-full drill needs root to mount a tmpfs; without it, it says so and is
skipped.

Each drill returns its figures and its claims (`checks`), each held or not;
every drill checks that nothing answered 500 and that the school never saw more
requests in flight than its budget. The run ends with one verdict line per
claim and exits 1 if any is not held.

jnufm runs with its defaults except the per-address limits, lifted as in the
benchmarks (bench/configs/default.yaml): the load comes from one address, and
the drills measure faults, not limits.

Results go to bench/results/<time>-drills.json; docs/operations.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pymysql

from bench.procs import (
    CARD,
    School,
    System,
    rss_mb,
    start_jnufm,
    start_school,
)
from bench.run import RESULTS
from harness.processes import Proc, free_port, http_json, spawn, start_schoolsim

DEFAULT_OVERLAY = Path(__file__).resolve().parent / "configs" / "default.yaml"
DEADLINE_S = 10.0  # api.deadline_s, the default


@dataclass
class Load:
    """What a load run saw: (seconds since start, latency, status, source) per request."""

    started: float = field(default_factory=time.monotonic)
    replies: list[tuple[float, float, int, str]] = field(default_factory=list)

    codes: Counter[str] = field(default_factory=Counter)

    def add(self, began: float, status: int, source: str) -> None:
        self.replies.append((began - self.started, time.monotonic() - began, status, source))

    def summary(self) -> dict[str, Any]:
        statuses = Counter(str(status) for _, _, status, _ in self.replies)
        latencies = sorted(latency for _, latency, _, _ in self.replies)
        return {
            "requests": len(self.replies),
            "statuses": dict(sorted(statuses.items())),
            "failed": sum(n for code, n in statuses.items() if not code.startswith("2")),
            "max_latency_s": round(latencies[-1], 3) if latencies else 0.0,
            "p99_latency_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3)
            if latencies
            else 0.0,
            "error_codes": dict(self.codes.most_common()),
        }


# --- verdicts ---------------------------------------------------------------------


def check(claim: str, held: bool, figure: str) -> dict[str, Any]:
    """One claim a drill checks: held or not, and the figure that says so."""
    return {"claim": claim, "held": bool(held), "figure": figure}


def no_500(load: Load) -> dict[str, Any]:
    """No answer of the drill was a 500 (or any other 5xx we do not send on purpose).
    Connections a killed worker cut (599 here) are counted beside it, not as a 500."""
    bad = Counter(
        str(s) for _, _, s, _ in load.replies if s >= 500 and s not in (502, 503, 504, 599)
    )
    cut = sum(1 for _, _, s, _ in load.replies if s == 599)
    figure = "none" if not bad else json.dumps(dict(bad))
    return check("no 500", not bad, f"{figure}; {cut} connections cut by a killed worker")


# The default budget of each system (config.yaml budget:), by the simulator's name for it.
BUDGETS = {CARD: 2, "academic": 2, "opac": 2, "ilas": 1, "covers": 4}


def school_within_budget(school: School, systems: tuple[str, ...] = (CARD,)) -> dict[str, Any]:
    """The school never saw more requests in flight than its budget (config.yaml budget:)."""
    peaks = {name: int(school.stats(name)["peak_in_flight"]) for name in systems}
    over = {name: peak for name, peak in peaks.items() if peak > BUDGETS[name]}
    shown = ", ".join(f"{name} {peaks[name]}/{BUDGETS[name]}" for name in systems)
    return check("the school never above budget", not over, f"peak in flight {shown}")


async def ask(
    client: httpx.AsyncClient, url: str, student: str, load: Load, path: str = "/card/rest"
) -> int:
    began = time.monotonic()
    try:
        reply = await client.get(
            url + path, params={"stuid": student, "password": student[-6:]}, timeout=60
        )
        status = reply.status_code
        source = reply.headers.get("Cache-Status", "")
        if status >= 400:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                load.codes[f"{status} {reply.json()['error']['code']}"] += 1
    except httpx.HTTPError:
        status, source = 599, "cut"
    load.add(began, status, source)
    return status


async def steady(
    url: str,
    warm: list[str],
    cold: Iterator[str],
    seconds: float,
    load: Load,
    clients: int = 8,
    cold_share: float = 0.2,
) -> None:
    """`clients` loops, each asking a warm student or (cold_share of the time) a new one,
    for `seconds`."""
    stop_at = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:

        async def loop() -> None:
            rng = random.Random()
            while time.monotonic() < stop_at:
                student = rng.choice(warm) if warm and rng.random() >= cold_share else next(cold)
                await ask(client, url, student, load)
                await asyncio.sleep(0.02)

        await asyncio.gather(*(loop() for _ in range(clients)))


async def warm_up(url: str, students: list[str]) -> None:
    async with httpx.AsyncClient() as client:
        load = Load()
        await asyncio.gather(*(ask(client, url, s, load) for s in students))


async def first_cold_ok(url: str, cold: Iterator[str], since: float, limit_s: float = 120) -> float:
    """Seconds from `since` until a never-seen student is answered 200."""
    async with httpx.AsyncClient() as client:
        while time.monotonic() - since < limit_s:
            if await ask(client, url, next(cold), Load()) == 200:
                return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.1)
    return float("inf")


def students(prefix: str) -> Iterator[str]:
    """Student numbers the simulated school knows (20[01] and 7 more digits)."""
    n = 0
    while True:
        yield f"{prefix}{n:04d}"
        n += 1


def jnufm(tmp: Path, school: School, key: str, **config: Any) -> System:
    return start_jnufm(tmp, key, DEFAULT_OVERLAY, school.url, 2, extra_config=config)


def jnufm_on(db: OwnMariaDB, tmp: Path, school: School, key: str) -> System:
    """jnufm on the drill's own MariaDB, giving up on a dead one's connections in 1 s."""
    return start_jnufm(
        tmp, key, DEFAULT_OVERLAY, school.url, 2, database_url=db.url,
        extra_config={"database": {"connect_timeout_s": 1}},
    )  # fmt: skip


def stored_results(database_url: str) -> int:
    """Stored results now (SQLite file or MySQL)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with contextlib.closing(sqlite3.connect(path)) as db:
            return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    host_port, _, name = database_url.split("@", 1)[1].partition("/")
    host, _, port = host_port.partition(":")
    conn = pymysql.connect(host=host, port=int(port), user="root", database=name)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM results")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def lost_results(load: Load, stored: int, warmed: int) -> int:
    """Answers the school gave (a cold student answered 200, stored or deferred) that the
    database does not hold at the end: every school answer stores one account row."""
    fetched = sum(1 for _, _, status, source in load.replies if status == 200 and "fwd=" in source)
    return max(0, warmed + fetched - stored)


# --- MariaDB of the drill's own -------------------------------------------------


class OwnMariaDB:
    """A MariaDB server in a temporary folder, on a free port, that the drill may kill."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp / "mariadb"
        self.port = free_port()
        self.child: Proc | None = None
        self.dir.mkdir()
        subprocess.run(
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={self.dir / 'data'}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--user=root",
            ],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"mysql+aiomysql://root@127.0.0.1:{self.port}/jnufm"

    def start(self) -> None:
        self.child = spawn(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={self.dir / 'data'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.dir / 'mysqld.sock'}",
                f"--pid-file={self.dir / 'mysqld.pid'}",
                "--user=root",
                "--skip-grant-tables",
                "--innodb-buffer-pool-size=64M",
            ],
            self.dir / "mariadbd.log",
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
            except pymysql.err.OperationalError:
                time.sleep(0.2)
                continue
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS jnufm CHARACTER SET utf8mb4")
            conn.close()
            return
        raise RuntimeError(f"MariaDB did not start: {(self.dir / 'mariadbd.log').read_text()}")

    def kill(self) -> None:
        if self.child is not None:
            self.child.popen.send_signal(signal.SIGKILL)
            self.child.popen.wait(10)

    def stop(self) -> None:
        if self.child is not None and self.child.popen.poll() is None:
            self.child.stop()


# --- drills -------------------------------------------------------------------------


async def drill_db_kill(tmp: Path, seconds: float) -> dict[str, Any]:
    db = OwnMariaDB(tmp)
    db.start()
    school = start_school(tmp, "fast")
    system = jnufm_on(db, tmp, school, "db-kill")
    try:
        warm = [f"201000{i:04d}" for i in range(50)]
        await warm_up(system.url, warm)
        cold = students("201001")
        load = Load()
        running = asyncio.ensure_future(steady(system.url, warm, cold, seconds, load))
        await asyncio.sleep(seconds / 3)
        db.kill()
        killed = time.monotonic()
        ready_503_s = await until_status(system.url + "/readyz", 503, killed)
        await asyncio.sleep(10 - (time.monotonic() - killed))
        db.start()
        restored = time.monotonic()
        recovery = await first_cold_ok(system.url, students("201002"), restored)
        await running
        await asyncio.sleep(2)  # deferred writes land within their retry interval
        outage = [
            r for r in load.replies if killed - load.started <= r[0] < restored - load.started
        ]
        warm_ok = sum(1 for r in outage if r[2] == 200)
        warm_asked = sum(1 for r in outage if r[2] == 200 or "hit" in r[3] or r[2] == 503)
        lost = lost_results(load, stored_results(db.url), len(warm))
        return {
            **load.summary(),
            "during_outage": {"requests": len(outage), "answered_200": warm_ok},
            "readyz_503_after_s": ready_503_s,
            "lost_results": lost,
            "budget_recovery_s": recovery,
            "deadline_s": DEADLINE_S,
            "checks": [
                check("nothing the school answered is lost", lost == 0, f"{lost} lost"),
                check("readiness says so", ready_503_s < 30, f"/readyz 503 after {ready_503_s} s"),
                check(
                    "answers keep coming in the outage",
                    warm_ok > 0 and warm_asked > 0,
                    f"{warm_ok} answered 200 of {len(outage)}",
                ),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()
        db.stop()


async def until_status(url: str, status: int, since: float, limit_s: float = 30) -> float:
    async with httpx.AsyncClient() as client:
        while time.monotonic() - since < limit_s:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=2)).status_code == status:
                    return round(time.monotonic() - since, 3)
            await asyncio.sleep(0.02)
    return float("inf")


async def drill_school_slow(tmp: Path, seconds: float) -> dict[str, Any]:
    school = start_school(tmp, "fast", overrides=["latency_ms_median=9000", "latency_ms_min=9000"])
    system = jnufm(tmp, school, "school-slow")
    try:
        load = Load()
        began = time.monotonic()
        running = asyncio.ensure_future(
            steady(system.url, [], students("201003"), seconds, load, clients=12)
        )
        opened_after = await breaker_opens(system.url, began, seconds)
        await running
        school.wait_idle(60)
        return {
            **load.summary(),
            "breaker_open_after_s": opened_after,
            "school_peak_in_flight": school.stats()["peak_in_flight"],
            "budget": 2,
            "deadline_s": DEADLINE_S,
            "checks": [
                check(
                    "the breaker opens within 2 x deadline of a slow school",
                    opened_after <= 2 * DEADLINE_S,
                    f"open after {opened_after} s",
                ),
                check(
                    "every answer by the deadline",
                    load.summary()["max_latency_s"] <= DEADLINE_S + 1,
                    f"slowest {load.summary()['max_latency_s']} s",
                ),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()


async def breaker_opens(url: str, since: float, limit_s: float) -> float:
    """Seconds from `since` until a worker's breaker says open (readyz, any worker)."""
    async with httpx.AsyncClient() as client:
        while time.monotonic() - since < limit_s:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                states = (await client.get(url + "/readyz", timeout=2)).json()["school"]
                if "open" in states.values():
                    return round(time.monotonic() - since, 2)
            await asyncio.sleep(0.1)
    return float("inf")


async def drill_school_kill(tmp: Path, seconds: float) -> dict[str, Any]:
    school = start_school(tmp, "fast")
    port = int(school.url.rsplit(":", 1)[1])
    system = jnufm(tmp, school, "school-kill", cache={"fresh_min_interval_s": 0})
    try:
        warm = [f"201004{i:04d}" for i in range(50)]
        await warm_up(system.url, warm)
        load = Load()
        running = asyncio.ensure_future(steady(system.url, warm, students("201005"), seconds, load))
        await asyncio.sleep(seconds / 3)
        school.child.popen.send_signal(signal.SIGKILL)
        school.child.popen.wait(10)
        killed = time.monotonic()
        await asyncio.sleep(10)
        school = restart_school(tmp, port)
        restored = time.monotonic()
        recovery = await first_cold_ok(system.url, students("201006"), restored)
        await running
        outage = [
            r for r in load.replies if killed - load.started <= r[0] < restored - load.started
        ]
        slowest = round(max((r[1] for r in outage), default=0.0), 3)
        return {
            **load.summary(),
            "during_outage": {
                "requests": len(outage),
                "statuses": dict(Counter(str(r[2]) for r in outage)),
                "max_latency_s": slowest,
            },
            "budget_recovery_s": recovery,
            "deadline_s": DEADLINE_S,
            "checks": [
                check("every answer by the deadline", slowest <= DEADLINE_S + 1, f"{slowest} s"),
                check("cold queries answered again", recovery < 60, f"after {recovery} s"),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()


def restart_school(tmp: Path, port: int) -> School:
    proc = start_schoolsim(tmp, "fast", port=port, log_name="schoolsim-2.log")
    return School(proc, proc.url, "fast")


async def drill_worker_kill(tmp: Path, seconds: float) -> dict[str, Any]:
    school = start_school(tmp, "fast")
    system = jnufm(tmp, school, "worker-kill")
    master = system.children[0]
    try:
        warm = [f"201007{i:04d}" for i in range(50)]
        await warm_up(system.url, warm)
        load = Load()
        running = asyncio.ensure_future(steady(system.url, warm, students("201008"), seconds, load))
        kills = 0
        stop_at = time.monotonic() + seconds - 3
        while time.monotonic() < stop_at and master.popen.poll() is None:
            await asyncio.sleep(3)
            pids = system.worker_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                kills += 1
        await running
        alive = master.popen.poll() is None
        return {
            **load.summary(),
            "workers_killed": kills,
            "server_still_running": alive,
            "workers_now": len(system.worker_pids()),
            "checks": [
                check("the server outlives its workers", alive, f"{kills} workers killed"),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()


async def drill_sigterm(tmp: Path, seconds: float) -> dict[str, Any]:
    school = start_school(tmp, "fast")
    system = jnufm(tmp, school, "sigterm", shutdown_grace_s=5)
    master = system.children[0]
    try:
        http_json(school.url + "/__sim/control", {"down": True, "down_mode": "hang"})
        load = Load()
        cold = students("201009")
        async with httpx.AsyncClient() as client:
            asking = [
                asyncio.ensure_future(ask(client, system.url, next(cold), load)) for _ in range(60)
            ]
            while school.stats()["in_flight"] == 0:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.05)
            master.popen.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            await asyncio.gather(*asking)
            answered_in = time.monotonic() - stopped
        code = master.popen.wait(20)
        cut = sum(1 for r in load.replies if r[2] == 599)
        return {
            **load.summary(),
            "all_answered_within_s": round(answered_in, 2),
            "grace_s": 5,
            "cut_connections": cut,
            "exit_code": code,
            "checks": [
                check("every request answered before the grace ends", cut == 0, f"{cut} cut"),
                check("a clean exit", code == 0, f"exit code {code}"),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()


async def drill_disk_full(tmp: Path, seconds: float) -> dict[str, Any]:
    mount = tmp / "small-disk"
    mount.mkdir()
    try:
        subprocess.run(  # noqa: ASYNC221 - set-up, before any load
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"skipped": f"cannot mount a tmpfs here: {exc}"}
    school = start_school(tmp, "fast")
    database_url = f"sqlite+aiosqlite:///{mount / 'jnufm.sqlite3'}"
    system = start_jnufm(
        tmp, "disk-full", DEFAULT_OVERLAY, school.url, 2, database_url=database_url
    )
    try:
        warm = [f"201010{i:04d}" for i in range(50)]
        await warm_up(system.url, warm)
        filler = mount / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as out:
            while True:
                out.write(b"\0" * 4096)
        full_at = time.monotonic()
        load = Load()
        running = asyncio.ensure_future(
            steady(system.url, warm, students("201011"), seconds / 2, load)
        )
        ready_503_s = await until_status(system.url + "/readyz", 503, full_at, seconds / 2)
        async with httpx.AsyncClient() as client:
            readyz = (await client.get(system.url + "/readyz")).json()
        await running
        filler.unlink()
        freed = time.monotonic()
        writes_back_s = await until_status(system.url + "/readyz", 200, freed, 60)
        recovery = await first_cold_ok(system.url, students("201012"), freed)
        await asyncio.sleep(3)  # deferred writes land within their retry interval
        return {
            **load.summary(),
            "readyz_while_full": {k: readyz[k] for k in ("ready", "writes", "deferred_writes")},
            "readyz_503_after_full_s": ready_503_s,
            "writes_ok_after_room_s": writes_back_s,
            "budget_recovery_s": recovery,
            "lost_results": lost_results(load, stored_results(database_url), len(warm)),
            "deadline_s": DEADLINE_S,
            "checks": [
                check(
                    "nothing the school answered is lost",
                    lost_results(load, stored_results(database_url), len(warm)) == 0,
                    "after room was made",
                ),
                check("writes resume", writes_back_s < 60, f"after {writes_back_s} s"),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()
        subprocess.run(["umount", str(mount)], check=False)  # noqa: ASYNC221 - clean-up


async def drill_memory(tmp: Path, seconds: float) -> dict[str, Any]:
    school = start_school(tmp, "fast")
    system = jnufm(tmp, school, "memory")
    try:
        before = {"workers_mb": system.rss(), "school_mb": rss_mb(school.child.pid)}
        load = Load()
        warm = [f"201013{i:04d}" for i in range(200)]
        await warm_up(system.url, warm)
        await steady(system.url, warm, students("201014"), seconds * 3, load, clients=16)
        after = {"workers_mb": system.rss(), "school_mb": rss_mb(school.child.pid)}
        return {
            **load.summary(),
            "before": before,
            "after": after,
            "checks": [no_500(load), school_within_budget(school)],
        }
    finally:
        system.stop()
        school.stop()


DRILLS: dict[str, Callable[[Path, float], Any]] = {
    "db-kill": drill_db_kill,
    "school-slow": drill_school_slow,
    "school-kill": drill_school_kill,
    "worker-kill": drill_worker_kill,
    "sigterm": drill_sigterm,
    "disk-full": drill_disk_full,
    "memory": drill_memory,
}


def all_drills() -> dict[str, Callable[[Path, float], Any]]:
    """The first round's drills and the second's (bench/fault_drills.py), in run order."""
    from bench.fault_drills import DRILLS as SECOND_ROUND

    return {**DRILLS, **SECOND_ROUND}


def verdicts(results: dict[str, Any]) -> list[str]:
    """One line per claim checked: held or NOT HELD, the drill, the claim, the figure."""
    lines = []
    for name, figures in results.items():
        if "skipped" in figures:
            lines.append(f"{'skipped':9} {name:16} {figures['skipped']}")
        for c in figures.get("checks", []):
            verdict = "held" if c["held"] else "NOT HELD"
            lines.append(f"{verdict:9} {name:16} {c['claim']}: {c['figure']}")
    return lines


def main_drills(argv: list[str]) -> int:
    drills = all_drills()
    parser = argparse.ArgumentParser(prog="python -m bench drills", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(drills), default=list(drills))
    parser.add_argument("--seconds", type=float, default=30, help="load per drill")
    args = parser.parse_args(argv)
    needs_mariadb = {"db-kill", "db-reload", "db-flap"} & set(args.only)
    if shutil.which("mariadbd") is None and needs_mariadb:
        print(f"{', '.join(sorted(needs_mariadb))} need mariadbd (Debian: mariadb-server)",
              file=sys.stderr)  # fmt: skip
        return 2
    results: dict[str, Any] = {}
    for name in args.only:
        print(f"== {name}", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"jnufm-drill-{name}-") as folder:
            started = time.monotonic()
            try:
                figures = asyncio.run(drills[name](Path(folder), args.seconds))
            except Exception as exc:  # one broken drill must not hide the others' verdicts
                figures = {"checks": [check("the drill ran", False, repr(exc))]}
        figures["drill_s"] = round(time.monotonic() - started, 1)
        results[name] = figures
        print(json.dumps(figures, indent=2, ensure_ascii=False), flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-drills.json"
    out.write_text(json.dumps({"drills": results, "seconds": args.seconds}, indent=2))
    lines = verdicts(results)
    print("\n== verdicts")
    print("\n".join(lines))
    print(f"results: {out}")
    return 0 if all(not line.startswith("NOT HELD") for line in lines) else 1
