"""The budget is a hard ceiling, also when a worker holding a slot is killed: the school
never has more of our requests at once than the budget.

First the rule on a real database with a clock we move (services/budget.py): a
slot is kept while a request sent under it may still be at the school. Then the
kill drill.

The simulated catalogue takes 5 s per search and, as a real server does, goes on
with a request whose client has gone (killing a worker closes its connections;
the search runs on at the school). Cold searches keep both slots of the
library's budget busy while the test SIGKILLs a worker holding one, again and
again. The replacement must not hand that slot out while the dead worker's search
may still be running (services/budget.py), and must serve warm answers meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import Lease
from harness.processes import Proc, jnufm_server, schoolsim, sim_json
from services.budget import BudgetExhausted, UpstreamBudget, slot_linger
from services.leases import LeaseStore, host_name
from settings import DatabaseSettings
from tests.conftest import slot_leases

BUDGET = 2
SEARCH_S = 5  # the school's time per search
IN_FLIGHT_S = 8  # school.library.total_timeout_s: we give up on a search after this
KILLS = 2


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(DatabaseSettings(url=db_url))
    await migrate(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def expiry(sessions: async_sessionmaker[AsyncSession], name: str) -> datetime | None:
    async with sessions() as db:
        return await db.scalar(select(Lease.expires_at).where(Lease.name == name))


def budget(leases: LeaseStore, cap: int = 1) -> UpstreamBudget:
    """The card center's budget as the pipeline makes it at the defaults (one per process)."""
    return UpstreamBudget(
        leases, "card", cap, slot_lease_s=30, poll_s=0.01, in_flight_s=30, hold_s=29
    )


async def test_a_slots_lease_outlasts_the_longest_hold_and_its_last_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    async with budget(LeaseStore(sessions, clock)).slot(wait_s=1):
        # Taken at the start of a 29 s operation whose last request, sent just before
        # its end, may be at the school 30 s more: a crash unseen must not free it sooner.
        assert await expiry(sessions, "budget:card:0") == clock.now + timedelta(seconds=59)


async def test_a_holder_stopped_mid_request_keeps_its_slot_while_the_school_may_work(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    leases = LeaseStore(sessions, clock)
    entered = asyncio.Event()

    async def holder() -> None:
        async with budget(leases).slot(wait_s=1):
            entered.set()
            await asyncio.sleep(60)  # a request at the school

    task = asyncio.ensure_future(holder())
    await entered.wait()
    clock.now += timedelta(seconds=20)
    task.cancel()  # the operation's time limit
    with pytest.raises(asyncio.CancelledError):
        await task
    other = budget(leases)  # another process
    with pytest.raises(BudgetExhausted):
        async with other.slot(wait_s=0.1):
            pass
    assert await expiry(sessions, "budget:card:0") == clock.now + timedelta(seconds=30)
    clock.now += timedelta(seconds=31)
    async with other.slot(wait_s=1):
        pass


async def test_a_holder_whose_operation_ended_frees_its_slot_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    leases = LeaseStore(sessions, Clock())
    with pytest.raises(ValueError, match="refuse"):
        async with budget(leases).slot(wait_s=1):
            raise ValueError("the school answered with something we refuse")
    async with budget(leases).slot(wait_s=0.1):
        pass


def dead_pid() -> int:
    """The id of a process of this host that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


async def test_a_dead_workers_slots_are_kept_for_their_request_and_its_other_leases_freed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    leases = LeaseStore(sessions, clock)
    dead = f"{host_name()}:{dead_pid()}:0123456789ab"
    for name in ("budget:card:0", "budget:library:1", "card:2012052690:rest"):
        assert await leases.try_acquire(name, dead, 300)
    linger = slot_linger({"card": 30, "library": 10})
    assert [linger(n) for n in ("budget:card:0", "budget:library:1", "budget:card")] == [30, 10, 0]
    assert await leases.release_dead_holders(linger) == 3
    assert await expiry(sessions, "budget:card:0") == clock.now + timedelta(seconds=30)
    assert await expiry(sessions, "budget:library:1") == clock.now + timedelta(seconds=10)
    assert await expiry(sessions, "card:2012052690:rest") is None, "freed at once"
    # Started again (a replacement of a replacement): never later than it already was.
    clock.now += timedelta(seconds=5)
    await leases.release_dead_holders(linger)
    assert await expiry(sessions, "budget:card:0") == clock.now + timedelta(seconds=25)


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("school"), "fast") as proc:
        yield proc


def opac(school: Proc, what: str, body: object | None = None) -> dict[str, Any]:
    return sim_json(school.url, f"/__sim/opac/{what}", body)


def live_slots(db_url: str) -> list[int]:
    """The process ids holding a live slot of the library's budget now."""
    now = datetime.now(UTC)
    return [
        int(holder.split(":")[1]) for holder, until in slot_leases(db_url, "library") if until > now
    ]


async def until(check: Callable[[], bool | Awaitable[bool]], what: str, within_s: float) -> None:
    """Wait for an outside condition (the school, the database) to hold."""
    try:
        async with asyncio.timeout(within_s):
            while True:
                done = check()
                if not isinstance(done, bool):
                    done = await done
                if done:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within_s}s: {what}") from None


@pytest.mark.long
@pytest.mark.timeout(180)
def test_a_worker_killed_holding_a_slot_never_puts_the_school_over_budget(
    tmp_path: Path, db_url: str, school: Proc
) -> None:
    with jnufm_server(
        tmp_path,
        db_url,
        school.url,
        processes=2,
        budget={"library": BUDGET},
        # A 5 s search is the school's pace here, not a failure to stop asking for.
        breaker={"slow_call_s": 60},
        school={"library": {"base_url": f"{school.url}/opac", "total_timeout_s": IN_FLIGHT_S}},
    ) as server:

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                warm = await client.get("/v1/library/search", params={"q": "Python"})
                assert warm.status_code == 200, warm.text
                opac(school, "control", {"latency_ms_min": SEARCH_S * 1000})
                opac(school, "control", {"latency_ms_median": SEARCH_S * 1000})
                opac(school, "reset", {})

                stop = asyncio.Event()
                queries = itertools.count()
                # Statuses of the answers; 0 for a request cut by the kill (it was on
                # the killed worker: nothing can answer it).
                cold: list[int] = []
                warm_statuses: list[int] = []

                async def ask(into: list[int], q: str) -> None:
                    try:
                        reply = await client.get("/v1/library/search", params={"q": q})
                    except httpx.TransportError:
                        into.append(0)
                    else:
                        into.append(reply.status_code)

                async def cold_load() -> None:
                    while not stop.is_set():
                        await ask(cold, f"cold{next(queries)}")

                async def warm_load() -> None:
                    while not stop.is_set():
                        await ask(warm_statuses, "Python")
                        await asyncio.sleep(0.1)

                def slots_busy() -> bool:
                    busy = int(opac(school, "stats")["in_flight"]) == BUDGET
                    return busy and len(live_slots(db_url)) == BUDGET

                def released(pid: int) -> Callable[[], bool]:
                    return lambda: pid not in live_slots(db_url)

                def answered_since(n: int) -> Callable[[], bool]:
                    return lambda: 200 in cold[n:]

                load = [asyncio.ensure_future(cold_load()) for _ in range(2 * BUDGET + 2)]
                load.append(asyncio.ensure_future(warm_load()))
                try:
                    for _ in range(KILLS):
                        await until(slots_busy, "both slots busy at the school", within_s=30)
                        victim = live_slots(db_url)[0]
                        os.kill(victim, signal.SIGKILL)
                        # The replacement starts while the victim's search runs on at the
                        # school; its slot is handed out again only once that search
                        # cannot be there (IN_FLIGHT_S), and then cold searches go on.
                        await until(released(victim), "the dead worker's slot released", 60)
                        await until(answered_since(len(cold)), "cold answers again", 30)
                finally:
                    stop.set()
                    await asyncio.gather(*load)
                await until(
                    lambda: int(opac(school, "stats")["in_flight"]) == 0, "the school idle", 30
                )
                seen = opac(school, "stats")
                assert seen["peak_in_flight"] <= BUDGET, seen
                assert seen["requests"] > KILLS * BUDGET, "the load reached the school"
                # Warm answers came from the replacement and its sibling all along (but
                # for a request the killed worker had, cut with it).
                answered = [status for status in warm_statuses if status]
                assert len(answered) > 10 and set(answered) == {200}, warm_statuses
                assert warm_statuses.count(0) <= KILLS, warm_statuses
                # A cold search waits for a slot, or is refused in time (503 with
                # Retry-After, or 504 at its deadline): never an error of ours.
                assert set(cold) <= {0, 200, 503, 504}, sorted(set(cold))

        asyncio.run(scenario())
        log = server.log()
        assert "unexpected error" not in log, log[-3000:]
        assert log.count("started (pid") >= 2 + KILLS, "each killed worker was replaced"
