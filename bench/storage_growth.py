"""Storage under days of mixed load: does the database level off?

    python -m bench.storage_growth [--seconds 180] [--day 45] [--rate 40] [--addresses 32]
                                   [--without-retention]

Starts the simulated school (`fast` profile) and jnufm (2 workers, SQLite in a
temporary folder), and puts the benchmark's mixed load on it from many loopback
addresses (127.0.0.2, 127.0.0.3, ...; each its own connections): card balances,
today's transactions and timetables of 300 returning students and of new ones
(1 ask in 10), 1 in 30 with a mistyped password; library searches of made-up
text and covers of random ISBNs, so that every search and every cover is new.

A day is compressed into `--day` seconds: every period that decides what is kept
(cache.max_stale_s and cache.fresh_s, the session lifetimes, the failed-login
window, the token lifetimes) is scaled by day / 86,400 s (none below 1 s). Three
settings differ from that, each for a reason the run prints: the pruning runs
every 2 s instead of every 60 s (a scaled minute); students are forgotten after 2
days instead of 180 (on a campus the number of students bounds that table long
before; this load's newcomers never stop); and the cap on shared answers is what
this load asks in about a day (default 50,000). Every `--sample` seconds it
reads the database's row counts and file size (the file and its write-ahead log;
also the pages in use, since SQLite reuses freed pages rather than giving them
back), prints the curve, and says whether it levels off: the last day's peak no
more than 10 % above the peak of the day before.

Results go to bench/results/<time>-storage.json; docs/operations.md quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sqlite3
import string
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procs import School, System, start_jnufm, start_school
from bench.run import RESULTS

SECONDS_PER_DAY = 86400.0
RETURNING = 300  # returning students: 2011000000 + 0..299
NEW_SHARE = 0.1
MISTYPED_SHARE = 1 / 30
# The mix of asks, by weight.
MIX = {"balance": 30, "today": 15, "timetable": 10, "search": 25, "cover": 20}
LEVEL_TOLERANCE = 0.10
STUDENT_DAYS = 2
PRUNE_INTERVAL_S = 2.0
TABLES = (
    "results",
    "students",
    "verifiers",
    "school_sessions",
    "login_failures",
    "tokens",
    "leases",
)


def scaled_overlay(day_s: float, shared_cap: int) -> dict[str, Any]:
    """The server's settings with every period that decides what is kept scaled to a day
    of `day_s` seconds (freshness too, none below 1 s)."""
    from settings import Settings

    defaults = Settings()
    scale = day_s / SECONDS_PER_DAY

    def s(value: float) -> float:
        return round(max(1.0, value * scale), 3)

    fresh = defaults.fresh_s()
    return {
        "cache": {
            "fresh_s": {name: s(value) for name, value in fresh.items()},
            "max_stale_s": s(defaults.cache.max_stale_s),
            "fresh_min_interval_s": s(defaults.cache.fresh_min_interval_s),
        },
        "sessions": {
            "max_idle_s": s(defaults.sessions.max_idle_s),
            "max_age_s": s(defaults.sessions.max_age_s),
        },
        "limits": {"failed_logins_window_s": s(defaults.limits.failed_logins_window_s)},
        "tokens": {
            "idle_s": s(defaults.tokens.idle_s),
            "max_age_s": s(defaults.tokens.max_age_s),
            "keep_ended_s": s(defaults.tokens.keep_ended_s),
            "touch_s": s(defaults.tokens.touch_s),
        },
        "retention": {
            "interval_s": PRUNE_INTERVAL_S,
            "batch": 200,
            "pause_s": 0.02,
            "shared_results_max": shared_cap,
            "students_s": s(STUDENT_DAYS * SECONDS_PER_DAY),
        },
    }


# --- the load --------------------------------------------------------------------------


def isbn13(rng: random.Random) -> str:
    """A random ISBN-13 with a right check digit (the server refuses a wrong one)."""
    body = "978" + "".join(rng.choice(string.digits) for _ in range(9))
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


def made_up_text(rng: random.Random) -> str:
    return " ".join(
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))
        for _ in range(rng.randint(1, 3))
    )


@dataclass
class LoadStats:
    asked: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    new_students: int = 0

    def count(self, kind: str, status: int) -> None:
        self.asked[kind] = self.asked.get(kind, 0) + 1
        key = str(status)
        self.statuses[key] = self.statuses.get(key, 0) + 1


class Students:
    """Returning students, and new ones (each seen once or twice, then never again)."""

    def __init__(self, stats: LoadStats) -> None:
        self._next = 0
        self._stats = stats

    def pick(self, rng: random.Random) -> str:
        if rng.random() < NEW_SHARE:
            self._next += 1
            self._stats.new_students += 1
            return f"2014{self._next:06d}"
        return f"2011{rng.randrange(RETURNING):06d}"


async def ask_once(
    client: httpx.AsyncClient, rng: random.Random, students: Students, stats: LoadStats
) -> None:
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    student = students.pick(rng)
    password = student[-6:]
    if kind in ("balance", "today", "timetable") and rng.random() < MISTYPED_SHARE:
        password = f"{(int(password) + 1) % 1000000:06d}"
    creds = {"stuid": student, "password": password}
    if kind == "balance":
        request = client.get("/card/rest", params=creds)
    elif kind == "today":
        request = client.get("/card/today", params=creds)
    elif kind == "timetable":
        request = client.get(
            "/class/get",
            params={"user": student, "password": password, "year": 2026, "term": 1},
        )
    elif kind == "search":
        request = client.get("/book/search/engine", params={"query": made_up_text(rng)})
    else:
        request = client.get(f"/isbn/image/{isbn13(rng)}")
    try:
        status = (await request).status_code
    except httpx.HTTPError:
        status = 599
    stats.count(kind, status)


async def run_load(url: str, seconds: float, rate: float, addresses: int, stats: LoadStats) -> None:
    """`addresses` clients, each from its own loopback address, together about `rate`
    asks a second, for `seconds`."""
    stop_at = time.monotonic() + seconds
    students = Students(stats)
    gap = addresses / rate

    async def one(index: int) -> None:
        rng = random.Random(2013 + index)
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{2 + index}")
        async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as client:
            await asyncio.sleep(rng.uniform(0, gap))
            while time.monotonic() < stop_at:
                began = time.monotonic()
                await ask_once(client, rng, students, stats)
                await asyncio.sleep(max(0.0, gap - (time.monotonic() - began)))

    await asyncio.gather(*(one(i) for i in range(addresses)))


# --- the samples -------------------------------------------------------------------------


def sample(db_path: Path) -> dict[str, Any]:
    """Row counts and sizes of the SQLite database now (read-only)."""
    found: dict[str, Any] = {}
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        db.execute("PRAGMA busy_timeout=5000")
        for table in TABLES:
            found[table] = int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
        found["shared_results"] = int(
            db.execute("SELECT COUNT(*) FROM results WHERE subject = ''").fetchone()[0]
        )
        page_size = int(db.execute("PRAGMA page_size").fetchone()[0])
        pages = int(db.execute("PRAGMA page_count").fetchone()[0])
        free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    wal = db_path.with_name(db_path.name + "-wal")
    found["rows"] = sum(found[t] for t in TABLES)
    found["file_mb"] = round(db_path.stat().st_size / 2**20, 2)
    found["wal_mb"] = round(wal.stat().st_size / 2**20, 2) if wal.exists() else 0.0
    found["in_use_mb"] = round((pages - free) * page_size / 2**20, 2)
    return found


def levels_off(samples: list[dict[str, Any]], day_s: float, key: str) -> dict[str, Any]:
    """Whether `key` levels off: its peak in the last day at most LEVEL_TOLERANCE above
    its peak in the day before."""
    end = samples[-1]["t"]
    if end < 2 * day_s:
        return {"verdict": "too short to tell (needs two days)"}
    last = [s[key] for s in samples if s["t"] > end - day_s]
    before = [s[key] for s in samples if end - 2 * day_s < s["t"] <= end - day_s]
    peak_last, peak_before = max(last), max(before)
    held = peak_last <= peak_before * (1 + LEVEL_TOLERANCE) + 1e-9
    return {
        "verdict": "levels off" if held else "still growing",
        "peak_last_day": peak_last,
        "peak_day_before": peak_before,
    }


def retention_metrics(url: str) -> dict[str, float]:
    """jnufm_retention_deleted_rows_total by table, from /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("jnufm_retention_deleted_rows_total{"):
            labels, _, value = line.rpartition(" ")
            table = labels.split('table="', 1)[1].split('"', 1)[0]
            found[table] = float(value)
    return found


def row_line(t: float, day_s: float, s: dict[str, Any]) -> str:
    return (
        f"{t:6.0f} s  day {t / day_s:4.1f}  results {s['results']:6d} "
        f"(shared {s['shared_results']:5d})  students {s['students']:5d}  "
        f"sessions {s['school_sessions']:4d}  failures {s['login_failures']:4d}  "
        f"leases {s['leases']:3d}  rows {s['rows']:6d}  "
        f"file {s['file_mb']:6.2f} MB (in use {s['in_use_mb']:6.2f}, wal {s['wal_mb']:5.2f})"
    )


async def measure(
    system: System, db_path: Path, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], LoadStats]:
    stats = LoadStats()
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    load = asyncio.create_task(run_load(system.url, args.seconds, args.rate, args.addresses, stats))
    while True:
        await asyncio.sleep(args.sample)
        if load.done():
            break
        t = time.monotonic() - started
        found = await asyncio.to_thread(sample, db_path)
        found["t"] = round(t, 1)
        samples.append(found)
        print(row_line(t, args.day, found), flush=True)
    await load
    return samples, stats


def grow(args: argparse.Namespace) -> dict[str, Any]:
    """One run: the load, the samples and the verdicts (see the module docstring)."""
    shared_share = (MIX["search"] + MIX["cover"]) / sum(MIX.values())
    cap = args.shared_cap or int(args.rate * shared_share * args.day)
    overlay = scaled_overlay(args.day, cap)
    if args.without_retention:
        overlay["retention"]["enabled"] = False
    print(
        f"a day is {args.day:g} s: every retention period and freshness scaled by "
        f"{args.day:g}/86400 (none below 1 s); pruning every {PRUNE_INTERVAL_S:g} s "
        f"(default 60 s); students forgotten after {STUDENT_DAYS} days (default 180); "
        f"shared answers capped at {cap} (default 50,000; about a day of this load's "
        f"searches and covers); load {args.rate:g} asks/s from "
        f"{args.addresses} addresses for {args.seconds:g} s ({args.seconds / args.day:.1f} days)",
        flush=True,
    )
    print("scaled settings: " + json.dumps(overlay), flush=True)
    with tempfile.TemporaryDirectory(prefix="jnufm-storage-") as folder:
        tmp = Path(folder)
        overlay_path = tmp / "storage.yaml"
        overlay_path.write_text(yaml.safe_dump(overlay))
        school: School = start_school(tmp, "fast")
        try:
            system = start_jnufm(tmp, "storage", overlay_path, school.url, 2)
            try:
                db_path = tmp / "storage" / "jnufm.sqlite3"
                samples, stats = asyncio.run(measure(system, db_path, args))
                deleted = retention_metrics(system.url)
            finally:
                system.stop()
        finally:
            school.stop()
    verdicts = {key: levels_off(samples, args.day, key) for key in ("rows", "file_mb")}
    doc = {
        "seconds": args.seconds,
        "day_s": args.day,
        "rate": args.rate,
        "addresses": args.addresses,
        "shared_cap": cap,
        "retention": not args.without_retention,
        "overlay": overlay,
        "asked": stats.asked,
        "statuses": stats.statuses,
        "new_students": stats.new_students,
        "deleted_by_retention": deleted,
        "samples": samples,
        "verdicts": verdicts,
    }
    return doc


async def drill_storage_growth(tmp: Path, seconds: float) -> dict[str, Any]:
    """The drill suite's run: four compressed days (at least 100 s) of the mixed load;
    the database must level off."""
    del tmp  # the run makes its own folder
    load_s = max(100.0, 3 * seconds)
    args = parser_of().parse_args(["--seconds", f"{load_s:g}", "--day", f"{load_s / 4:g}"])
    doc = await asyncio.to_thread(grow, args)
    failed = {code: n for code, n in doc["statuses"].items() if code.startswith("5")}
    return {
        **{k: v for k, v in doc.items() if k != "overlay"},
        "checks": [
            {
                "claim": f"the database levels off ({key}, a day = {doc['day_s']:g} s, "
                "retention scaled)",
                "held": found["verdict"] != "still growing",
                "figure": json.dumps(found),
            }
            for key, found in doc["verdicts"].items()
        ]
        + [{"claim": "no 5xx", "held": not failed, "figure": json.dumps(failed) or "none"}],
    }


def parser_of() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.storage_growth", description=__doc__)
    parser.add_argument("--seconds", type=float, default=180, help="length of the load")
    parser.add_argument("--day", type=float, default=45, help="seconds of a compressed day")
    parser.add_argument("--rate", type=float, default=40, help="asks a second, all addresses")
    parser.add_argument("--addresses", type=int, default=32, help="loopback client addresses")
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples")
    parser.add_argument(
        "--shared-cap",
        type=int,
        default=0,
        help="retention.shared_results_max (default: the shared answers of about a day)",
    )
    parser.add_argument(
        "--without-retention",
        action="store_true",
        help="retention.enabled: false, to see the curve without it",
    )
    return parser


def main(argv: list[str]) -> int:
    parser = parser_of()
    args = parser.parse_args(argv)
    if not 1 <= args.addresses <= 250:
        parser.error("--addresses: 1 to 250 (127.0.0.2 to 127.0.0.251)")
    doc = grow(args)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-storage.json"
    out.write_text(json.dumps(doc, indent=2))
    print(f"asked: {json.dumps(doc['asked'])}; statuses: {json.dumps(doc['statuses'])}")
    print(f"deleted by retention: {json.dumps(doc['deleted_by_retention'])}")
    for key, found in doc["verdicts"].items():
        print(f"{key}: {json.dumps(found)}")
    print(f"results: {out}")
    return 0 if all(v["verdict"] != "still growing" for v in doc["verdicts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
