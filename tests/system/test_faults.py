"""Faults: the database dying (through a proxy we cut) or full, a slow or hanging school,
a stop in the middle of school work, a worker killed holding a budget slot.

What must hold: warm answers and the attempt limits survive a dead database; a
result the school gave is never lost; no budget slot leaks; every query is
answered by its deadline; the school never sees more than the budget (a dead
worker's slot is kept while its request may still be at the school); a stop
answers every request before its grace ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from harness.processes import Proc, jnufm_server, schoolsim, sim_json
from tests.conftest import make_settings, mysql_connection, serve_app, slot_leases
from tests.dbproxy import DatabaseProxy

STUDENT = "2012052690"


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school of this test's own, ~10 ms per request."""
    with schoolsim(
        tmp_path_factory.mktemp("school"), "fast", "latency_ms_median=10", "latency_ms_min=10"
    ) as proc:
        yield proc


@pytest.fixture
async def proxied(mysql_url: str) -> AsyncIterator[tuple[str, DatabaseProxy]]:
    """The test's MySQL database behind a proxy the test can cut: (url through it, proxy)."""
    url = make_url(mysql_url)
    proxy = DatabaseProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    await proxy.close()


def mysql_count(mysql_url: str, sql: str) -> int:
    conn = mysql_connection(mysql_url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 15) -> None:
    """Poll an outside condition (a database, a process) until it holds."""
    try:
        async with asyncio.timeout(within_s):
            while not await check():  # noqa: ASYNC110 - the condition is outside this loop
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within_s}s: {what}") from None


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/stats")


def creds(student: str, password: str | None = None) -> dict[str, str]:
    return {"stuid": student, "password": password or student[-6:]}


# -- the database dies ------------------------------------------------------------------------


async def test_with_the_database_down_warm_answers_and_the_limits_hold(
    proxied: tuple[str, DatabaseProxy], mysql_url: str, school: Proc
) -> None:
    url, proxy = proxied
    settings = make_settings(
        url,
        school.url,
        **{
            "database.connect_timeout_s": 1,
            "cache.fresh_min_interval_s": 0,
            "limits.failed_logins_ip_max": 30,
        },
    )
    async with serve_app(settings) as (client, _):
        assert (await client.get("/card/rest", params=creds(STUDENT))).status_code == 200
        await proxy.cut()

        warm = await client.get("/card/rest", params=creds(STUDENT))
        assert warm.status_code == 200, "answered from memory"
        asked = stats(school)["requests"]
        fresh = await client.get(
            "/v1/card/balance", auth=(STUDENT, STUDENT[-6:]), params={"fresh": "1"}
        )
        assert fresh.status_code == 200 and fresh.json()["stale"] is True, fresh.text
        assert stats(school)["requests"] == asked, "answered from memory, the school not asked"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["degraded"] is True

        cold = await client.get("/card/rest", params=creds("2012052691"))
        assert cold.status_code == 503, "a student never seen cannot be judged without storage"

        # Wrong guesses count in this host's memory; then every password is refused.
        for n in range(5):
            guess = await client.get("/card/rest", params=creds(STUDENT, f"11111{n}"))
            assert guess.status_code == 503, guess.text
        assert (await client.get("/card/rest", params=creds(STUDENT, "222222"))).status_code == 429
        assert (await client.get("/card/rest", params=creds(STUDENT))).status_code == 429

        await proxy.start()

        async def ready_again() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(ready_again, "/readyz 200 again")
        # The guesses counted during the outage reached the database: the lockout stays.
        sql = f"SELECT COUNT(*) FROM login_failures WHERE subject = 'card:{STUDENT}'"
        assert mysql_count(mysql_url, sql) == 5
        assert (await client.get("/card/rest", params=creds(STUDENT))).status_code == 429


async def test_a_result_fetched_as_the_database_dies_is_answered_and_written_later(
    proxied: tuple[str, DatabaseProxy], mysql_url: str, tmp_path: Path
) -> None:
    url, proxy = proxied
    with schoolsim(tmp_path, "fast", "latency_ms_median=300", "latency_ms_min=300") as slow:
        settings = make_settings(url, slow.url, **{"database.connect_timeout_s": 1})
        async with serve_app(settings) as (client, _):
            asking = asyncio.ensure_future(client.get("/card/rest", params=creds(STUDENT)))

            async def at_school() -> bool:
                return int(stats(slow)["logins_ok"]) + int(stats(slow)["in_flight"]) > 0

            await eventually(at_school, "the query reached the school")
            await proxy.cut()
            answer = await asking
            assert answer.status_code == 200, "the school's answer is not thrown away"
            results = "SELECT COUNT(*) FROM results"
            assert mysql_count(mysql_url, results) == 0
            await proxy.start()

            async def written() -> bool:
                return mysql_count(mysql_url, results) == 1

            await eventually(written, "the result written once the database is back", 60)

            async def no_leases() -> bool:
                return mysql_count(mysql_url, "SELECT COUNT(*) FROM leases") == 0

            await eventually(no_leases, "every lease released", 60)


# -- a slow school ----------------------------------------------------------------------------


async def test_every_query_is_answered_by_its_deadline_and_the_school_stays_within_budget(
    db_url: str, tmp_path: Path
) -> None:
    # The school takes a minute over a request: every answer comes before it could.
    with schoolsim(tmp_path, "fast", "latency_ms_median=60000", "latency_ms_min=60000") as slow:
        settings = make_settings(
            db_url,
            slow.url,
            # No grace at the end: the school's minute is not waited out.
            **{
                "api.deadline_s": 1,
                "budget.card": 1,
                "breaker.slow_call_s": 60,
                "shutdown_grace_s": 0,
            },
        )
        async with serve_app(settings) as (client, _):
            sim_json(slow.url, "/__sim/reset", {})
            replies = await asyncio.gather(
                *(client.get("/card/rest", params=creds(f"20120526{n:02d}")) for n in range(6))
            )
            assert {r.status_code for r in replies} <= {503, 504}, [r.text for r in replies]
            assert all("Retry-After" in r.headers for r in replies)
            after = stats(slow)
            assert after["in_flight"] == 1, "answered while the school still held the request"
            assert after["answered"] == 0, "nothing came back from the school before the answers"
            assert after["peak_in_flight"] <= 1, "never more than the budget at once"


async def test_a_slow_school_opens_the_breaker(db_url: str, tmp_path: Path) -> None:
    # The school takes a minute over a request: the first two are still there throughout.
    with schoolsim(tmp_path, "fast", "latency_ms_median=60000", "latency_ms_min=60000") as slow:
        settings = make_settings(
            db_url,
            slow.url,
            **{
                "breaker.slow_call_s": 0.3,
                "breaker.failures": 2,
                "breaker.min_students": 2,
                "budget.card": 2,
                "api.deadline_s": 2,
                "shutdown_grace_s": 0,
            },
        )
        async with serve_app(settings) as (client, deps):
            first = [
                asyncio.ensure_future(client.get("/card/rest", params=creds(s)))
                for s in ("2012052601", "2012052602")
            ]

            async def opened() -> bool:
                return str(deps.card.breaker.state) == "open"

            await eventually(opened, "the breaker opened on two slow calls", within_s=60)
            asked = stats(slow)["requests"]
            fast = await client.get("/card/rest", params=creds("2012052603"))
            assert fast.status_code == 503
            assert fast.json()["error"]["code"] == "school_unavailable"
            # Refused without asking the school, and before the slow calls could end.
            after = stats(slow)
            assert after["requests"] == asked == 2, after
            assert after["in_flight"] == 2 and after["answered"] == 0, after
            await asyncio.gather(*first)


# -- stopping -------------------------------------------------------------------------------


@pytest.mark.long
def test_a_stop_answers_every_request_before_the_grace_ends(
    tmp_path: Path, db_url: str, school: Proc
) -> None:
    sim_json(school.url, "/__sim/control", {"down": True, "down_mode": "hang"})
    with jnufm_server(tmp_path, db_url, school.url, shutdown_grace_s=2) as server:

        async def scenario() -> list[httpx.Response | BaseException]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                asking = [
                    asyncio.ensure_future(
                        client.get("/card/rest", params=creds(f"20120527{n:02d}"))
                    )
                    for n in range(8)
                ]

                async def at_school() -> bool:
                    return int(stats(school)["in_flight"]) > 0

                await eventually(at_school, "queries waiting on the school")
                server.popen.send_signal(signal.SIGTERM)
                return await asyncio.gather(*asking, return_exceptions=True)

        replies = asyncio.run(scenario())
        for reply in replies:
            assert isinstance(reply, httpx.Response), f"cut instead of answered: {reply!r}"
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"]["code"] == "shutting_down"
            assert reply.headers["Retry-After"] == "1"
        assert server.popen.wait(60) == 0
        # Every one answered before the grace ended: none left to cut when it did.
        assert "requests cut" not in server.log(), server.log()


# -- a full disk ------------------------------------------------------------------------------


@pytest.mark.long
async def test_a_full_disk_fails_fast_keeps_answers_and_recovers(
    tmp_path: Path, school: Proc
) -> None:
    path = tmp_path / "small.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    settings = make_settings(url, school.url, **{"database.sqlite_max_mb": 0.3})
    async with serve_app(settings) as (client, _):
        # Fill it with answers until it is full.
        n = 0
        while (await client.get("/readyz")).json()["writes"] == "ok":
            reply = await client.get("/card/today", params=creds(f"2011{n:06d}"))
            assert reply.status_code in (200, 503), reply.text
            n += 1
            assert n < 2000, "never filled"
        full = await client.get("/readyz")
        assert full.status_code == 503 and full.json()["writes"] == "failing"
        # Answers keep coming from the school (kept in memory, written later) or, where
        # nothing can be decided without a write, a 503: nothing hangs (the client would
        # give up after a minute).
        known = await client.get("/card/rest", params=creds("2011000000"))
        assert known.status_code == 200, known.text
        unknown = await client.get("/card/rest", params=creds("2012999999"))
        assert unknown.status_code in (200, 503), unknown.text
        if unknown.status_code == 503:
            assert unknown.json()["error"]["code"] == "storage_unavailable"
        # Room again (an operator cleans up): writes resume without a restart.
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM results WHERE kind = 'today'")

        async def writes_ok() -> bool:
            return (await client.get("/readyz")).status_code == 200

        await eventually(writes_ok, "writes recovered")


# -- a worker dies holding a budget slot --------------------------------------------------------


@pytest.mark.long
def test_a_killed_workers_budget_slot_is_kept_only_while_its_request_may_be_at_the_school(
    tmp_path: Path, db_url: str, school: Proc
) -> None:
    """The replacement does not hand its dead predecessor's slot out at once (the school
    may still be working on that request), nor keep it longer than the school may: the
    system's total_timeout_s from its start, not the lease's 300 s."""
    in_flight_s = 6
    sim_json(school.url, "/__sim/control", {"down": True, "down_mode": "hang"})
    with jnufm_server(
        tmp_path,
        db_url,
        school.url,
        budget={"card": 1, "slot_lease_s": 300},
        api={"deadline_s": 1},
        school={"card": {"base_url": school.url, "total_timeout_s": in_flight_s}},
    ) as server:

        async def scenario() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                hung = await client.get("/card/rest", params=creds("2012052611"))
                assert hung.status_code == 504  # answered; the school request hangs on
                slots = slot_leases(db_url)
                assert len(slots) == 1, slots
                holder, taken_until = slots[0]
                assert taken_until > utc_now() + timedelta(seconds=100), "a 300 s lease"
                pid = int(holder.split(":")[1])
                os.kill(pid, signal.SIGKILL)

                async def kept_by_the_replacement() -> bool:
                    now = utc_now()
                    left = [until for h, until in slot_leases(db_url) if h == holder]
                    # Deleted (handed out at once) fails here, as does a 300 s wait.
                    return bool(left) and left[0] <= now + timedelta(seconds=in_flight_s + 1)

                await eventually(kept_by_the_replacement, "the slot kept, for in_flight_s")
                sim_json(school.url, "/__sim/control", {"down": False})

                async def slot_free() -> bool:
                    return all(until < utc_now() for _, until in slot_leases(db_url))

                await eventually(slot_free, "the slot free once the request cannot be there")
                # A cold login within the 1 s deadline: on a loaded machine it may take
                # longer (504) and be asked again; what matters is that the slot is there.
                for _ in range(5):
                    ok = await client.get("/card/rest", params=creds("2012052612"))
                    if ok.status_code != 504:
                        break
                assert ok.status_code == 200, ok.text

        asyncio.run(scenario())


def utc_now() -> datetime:
    return datetime.now(UTC)
