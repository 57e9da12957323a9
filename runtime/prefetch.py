"""`python server.py prefetch timetable`: in quiet hours, fetch the current term's
timetable of every student with a live academic office session token into the cache
(the database's stored answers and this host's shared cache), so the morning's first
queries are answered without the school.

It runs as a process of its own, beside the server, with the server's config: the
same school budget (slots are leases in the database), the same breakers' rules, and
the watches' ceiling (`watches.school_requests_per_min`, in a bucket of its own: the
server's workers keep theirs in memory it cannot share). It gives way to students as
the watches do, and since it cannot see the workers' lines, also while every budget
slot of the academic office is held by someone. One student at a time; a line of
progress every PROGRESS_EVERY students, and a summary.
"""

from __future__ import annotations

import argparse
import asyncio

from db.engine import make_engine, make_sessionmaker
from runtime.wiring import build_worker_services
from services.budget import slot_prefix
from services.pipeline import utc_now
from services.rates import RequestRateLimiter, SharedRateTable
from services.vault import SessionVault
from services.watches import kinds
from services.watches.scheduler import PrefetchSummary, WatchScheduler, WatchTargets
from services.watches.store import WatchStore
from settings import Settings

PROGRESS_EVERY = 20
# The prefetch's own bucket needs few slots: it has one key.
TABLE_SLOTS = 64


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="server.py prefetch", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("timetable", help="the current term's timetable of every student with a token")
    return p


def run(settings: Settings, argv: list[str]) -> int:
    """Run one `prefetch` command; its exit code."""
    parser().parse_args(argv)
    return asyncio.run(prefetch_timetables(settings))


def _line(summary: PrefetchSummary) -> str:
    failures = ", ".join(f"{code} {n}" for code, n in sorted(summary.failures.items()))
    return (
        f"{summary.tokens} students: {summary.fetched} fetched, {summary.failed} failed"
        f"{f' ({failures})' if failures else ''}, {summary.ended} ended tokens skipped, "
        f"{summary.waits} waits for students or the ceiling"
    )


async def prefetch_timetables(settings: Settings) -> int:
    """The `prefetch timetable` command's work; its exit code."""
    services = await build_worker_services(settings)
    engine = make_engine(settings.database)
    table = SharedRateTable.create(TABLE_SLOTS)
    try:
        deps = services.deps
        academic = deps.academic
        if academic is None or deps.tokens is None:
            print("prefetch: the academic office is not served here")
            return 1
        store = WatchStore(
            make_sessionmaker(engine), settings, SessionVault(settings.secret_key.encode()), utc_now
        )
        burst = float(max(kinds.SCHOOL_REQUESTS.values()))
        ceiling = RequestRateLimiter(table, settings.watches.school_requests_per_min / 60, burst)
        targets = WatchTargets(None, academic, lambda system: academic.pipeline.budget.waiting > 0)
        scheduler = WatchScheduler(store, deps.tokens, targets, ceiling, settings)
        cap = academic.pipeline.budget.cap

        async def busy_elsewhere(system: str) -> bool:
            return await store.held_slots(slot_prefix(system)) >= cap

        def progress(summary: PrefetchSummary) -> None:
            if summary.tokens % PROGRESS_EVERY == 0:
                print(f"prefetch: {_line(summary)}", flush=True)

        summary = await scheduler.prefetch_timetables(progress, busy_elsewhere)
        print(f"prefetch done: {_line(summary)}", flush=True)
        return 0 if summary.failed == 0 else 1
    finally:
        await services.close()
        table.close()
        await engine.dispose()
