"""Retention on real SQLite and MySQL: rows past their retention are deleted in batches,
rows inside it stay (a live token, lease or lockout never goes), one pruner per table at
a time, and pruning survives the database being away. Then the running server: its
background rounds keep the shared answers under their cap."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db import tokens as token_queries
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import Lease, LoginFailure, Result, SchoolSession, Student, Token, Verifier
from harness.processes import Proc
from services.leases import LeaseStore
from services.retention import Retention, plan
from settings import Settings, load_settings
from tests.conftest import make_settings, serve_app
from tests.dbproxy import DatabaseProxy

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
DAY = 86400.0


class Clock:
    """The time the pruner and the leases see, and a monotonic clock for round budgets."""

    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0
        self.mono_step = 0.0  # added on every monotonic read: a round that takes time

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        self.mono += self.mono_step
        return self.mono


def ago(seconds: float) -> datetime:
    return T0 - timedelta(seconds=seconds)


def retention_settings(
    db_url: str = "sqlite+aiosqlite:///unused.sqlite3", /, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database.url": db_url,
        "simulator.enabled": False,
        "retention.batch": 3,
        "retention.pause_s": 0,
        "retention.interval_s": 60,
    }
    values.update(overrides)
    return load_settings(None, env={}, overrides=values)


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    leases: LeaseStore

    def pruner(self, settings: Settings) -> Retention:
        return Retention(self.sessions, self.leases, settings, self.clock, self.clock.monotonic)

    async def count(self, model: Any, *where: Any) -> int:
        async with self.sessions() as db:
            return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    async def write(self, work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
        async with self.sessions.begin() as db:
            return await work(db)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[World]:
    engine = make_engine(retention_settings(db_url).database)
    await migrate(engine)
    sessions = make_sessionmaker(engine)
    clock = Clock()
    yield World(sessions, clock, LeaseStore(sessions, clock))
    await engine.dispose()


async def save(
    w: World, system: str, subject: str, kind: str, params: str, fetched_at: datetime
) -> None:
    await w.write(
        lambda db: queries.save_result(db, system, subject, kind, params, "{}", fetched_at)
    )


async def add_token(w: World, made: Token) -> None:
    await w.write(lambda db: token_queries.add_token(db, made, 20))


async def stored(w: World) -> set[tuple[str, str, str]]:
    async with w.sessions() as db:
        rows = await db.execute(select(Result.subject, Result.kind, Result.params))
        return {(r.subject, r.kind, r.params) for r in rows}


def token(student: str, kind: str, created: datetime, **fields: Any) -> Token:
    return Token(
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        kind=kind,
        student_id=student,
        system="academic",
        created_at=created,
        last_used_at=fields.pop("last_used_at", created),
        client="",
        label="",
        **fields,
    )


# -- the plan: a pure function of the settings and the time -------------------------------


def test_an_answer_is_never_deleted_while_it_may_be_served() -> None:
    settings = load_settings(None, env={}, overrides={"retention.results_s": 600})
    rules = plan(settings, T0).results
    personal = {k: r.before for r in rules if not r.shared and r.kinds for k in r.kinds}
    # The account page answers the profile too: fresh for a day whatever results_s says.
    assert personal["account"] == ago(DAY)
    assert personal["history"] == ago(600)
    assert personal["timetable"] == ago(21600)
    assert personal["cover"] == ago(7 * DAY)
    # A kind the table does not know is kept as long as the longest freshness.
    (unknown,) = [r for r in rules if not r.shared and r.kinds is None]
    assert unknown.before == ago(7 * DAY) and "account" in unknown.other_than


def test_by_default_answers_are_kept_as_long_as_a_stale_one_may_be_served() -> None:
    settings = load_settings(None, env={}, overrides={"cache.max_stale_s": 3 * DAY})
    rules = plan(settings, T0).results
    cutoffs = {(k, r.shared): r.before for r in rules if r.kinds for k in r.kinds}
    assert cutoffs[("today", False)] == ago(3 * DAY)
    assert cutoffs[("search", True)] == ago(3 * DAY)
    shorter = load_settings(None, env={}, overrides={"retention.shared_results_s": 3600})
    cutoffs = {
        (k, r.shared): r.before for r in plan(shorter, T0).results if r.kinds for k in r.kinds
    }
    assert cutoffs[("search", True)] == ago(3600)
    assert cutoffs[("today", False)] == ago(DAY)


# -- stored answers -------------------------------------------------------------------------


async def test_answers_past_retention_go_in_batches_and_the_others_stay(world: World) -> None:
    w = world
    for i in range(7):
        await save(w, "card", f"20120526{i:02d}", "account", "", ago(2 * DAY))
    await save(w, "card", "2012052690", "today", "", ago(3600))
    await save(w, "library", "", "search", "1|1|old", ago(2 * DAY))
    await save(w, "library", "", "search", "1|1|new", ago(60))
    # A cover is fresh for a week: kept, though older than a day.
    await save(w, "covers", "", "cover", "9787111111113", ago(3 * DAY))
    # A feed cannot log in: what it shows stays while its token lives.
    await save(w, "academic", "2012052691", "timetable", "2026-1", ago(30 * DAY))
    await save(w, "academic", "2012052691", "exams", "2026-1", ago(30 * DAY))
    await save(w, "academic", "2012052692", "timetable", "2026-1", ago(30 * DAY))
    await save(w, "academic", "2012052693", "timetable", "2026-1", ago(30 * DAY))
    await w.write(
        lambda db: token_queries.add_token(
            db, token("2012052691", "feed", ago(40 * DAY), last_used_at=ago(DAY)), 20
        )
    )
    # 2012052693's feed ended: its answers go like any other.
    await w.write(
        lambda db: token_queries.add_token(
            db, token("2012052693", "feed", ago(40 * DAY), ended_at=ago(DAY)), 20
        )
    )

    report = await w.pruner(retention_settings()).prune_table("results")

    assert report.outcome == "done"
    assert report.deleted == 7 + 1 + 2
    # 7 old account pages, 3 at a time: 3 batches for them alone.
    assert report.batches >= 3 + 1
    assert await stored(w) == {
        ("2012052690", "today", ""),
        ("", "search", "1|1|new"),
        ("", "cover", "9787111111113"),
        ("2012052691", "timetable", "2026-1"),
        ("2012052691", "exams", "2026-1"),
    }


async def test_past_the_cap_the_oldest_shared_answers_go_first(world: World) -> None:
    w = world
    for i in range(9):
        await save(w, "library", "", "search", f"1|1|q{i}", ago(900 - i))
    await save(w, "card", "2012052690", "account", "", ago(1000))
    settings = retention_settings(**{"retention.shared_results_max": 4})

    report = await w.pruner(settings).prune_table("results")

    assert report.deleted == 5
    assert await stored(w) == {
        ("", "search", "1|1|q5"),
        ("", "search", "1|1|q6"),
        ("", "search", "1|1|q7"),
        ("", "search", "1|1|q8"),
        ("2012052690", "account", ""),  # a student's answer does not count against it
    }


# -- sessions, failed logins, tokens, leases, students -------------------------------------


async def test_what_can_no_longer_be_used_goes_and_nothing_live_does(world: World) -> None:
    w = world
    s = retention_settings()
    idle, max_age = s.sessions.max_idle_s, s.sessions.max_age_s
    window = s.limits.failed_logins_window_s

    async def student(number: str, seen: datetime) -> int:
        pk: int = await w.write(lambda db: queries.upsert_student(db, number, None, seen))
        await w.write(lambda db: queries.set_verifier(db, pk, "card", "v" * 64, seen))
        return pk

    recent = await student("2012000001", ago(60))
    await w.write(
        lambda db: queries.save_school_session(db, recent, "card", "x", ago(idle + 5), True)
    )
    other = await student("2012000002", ago(60))
    # Opened too long ago, though used a moment ago: its absolute lifetime is over.
    await w.write(
        lambda db: queries.save_school_session(db, other, "card", "x", ago(max_age + 5), True)
    )
    await w.write(lambda db: queries.save_school_session(db, other, "card", "y", ago(5), False))
    live = await student("2012000003", ago(60))
    await w.write(lambda db: queries.save_school_session(db, live, "card", "x", ago(5), True))

    # A student locked out now: five wrong passwords inside the window. All stay.
    lockout = [queries.FailureRow("student", "card:2012000004", LoginFailure.REFUSED)]
    for attempt, failed_at in [
        *((f"a{i}", ago(window - 60)) for i in range(5)),
        ("old", ago(window + 1)),
    ]:
        await w.write(
            partial(queries.add_login_failures, rows=lockout, attempt=attempt, failed_at=failed_at)
        )

    k = s.tokens
    made = [
        token("2012000001", "session", ago(60)),  # live
        token("2012000001", "session", ago(DAY), ended_at=ago(k.keep_ended_s - 60)),  # says why
        token("2012000001", "session", ago(k.keep_ended_s + DAY), ended_at=ago(k.keep_ended_s + 1)),
        token("2012000001", "session", ago(k.idle_s + k.keep_ended_s + 1)),  # expired long ago
    ]
    for made_token in made:
        await add_token(w, made_token)

    w.clock.now = ago(60)
    assert await w.leases.try_acquire("card:slot:1", "crashed-holder", 30)  # expired by T0
    w.clock.now = T0
    assert await w.leases.try_acquire("card:slot:0", "live-holder", 30)

    # Not seen for longer than students_s: gone with its verifier, unless it holds a token.
    gone = await student("2012000005", ago(s.retention.students_s + 60))
    await student("2012000006", ago(s.retention.students_s + 60))
    await w.write(lambda db: token_queries.add_token(db, token("2012000006", "feed", ago(60)), 20))

    report = await w.pruner(s).run_round()

    assert {t: r.outcome for t, r in report.tables.items()} == dict.fromkeys(report.tables, "done")
    async with w.sessions() as db:
        sessions = set(
            await db.scalars(
                select(Student.student_id).join(
                    SchoolSession, SchoolSession.student_pk == Student.id
                )
            )
        )
        students = set(await db.scalars(select(Student.student_id)))
        failures = list(await db.scalars(select(LoginFailure.attempt)))
        tokens = list(await db.scalars(select(Token.created_at).order_by(Token.id)))
        leases = set(await db.scalars(select(Lease.name)))
        verifiers = await db.scalar(
            select(func.count()).select_from(Verifier).where(Verifier.student_pk == gone)
        )
    assert sessions == {"2012000003"}
    assert sorted(failures) == ["a0", "a1", "a2", "a3", "a4"]
    assert tokens == [made[0].created_at, made[1].created_at, ago(60)]
    assert leases == {"card:slot:0"}  # and the pruner gave its own leases back
    assert students == {"2012000001", "2012000002", "2012000003", "2012000006"}
    assert verifiers == 0


async def test_a_live_lease_taken_over_is_never_pruned(world: World) -> None:
    """The lease of a crashed holder, taken over by a live one, is no longer expired."""
    w = world
    assert await w.leases.try_acquire("card:slot:0", "crashed", 30)
    w.clock.now = T0 + timedelta(seconds=60)
    assert await w.leases.try_acquire("card:slot:0", "next", 30)
    await w.pruner(retention_settings()).prune_table("leases")
    async with w.sessions() as db:
        assert await queries.lease_holder(db, "card:slot:0", w.clock.now) == "next"


# -- one pruner at a time, and a round that runs long -------------------------------------


async def test_a_table_another_process_prunes_is_left_to_it(world: World) -> None:
    w = world
    for i in range(4):
        await save(w, "library", "", "search", f"1|1|q{i}", ago(2 * DAY))
    assert await w.leases.try_acquire("retention:results", "another-worker", 60)
    pruner = w.pruner(retention_settings())

    held = await pruner.prune_table("results")
    assert held.outcome == "held" and held.deleted == 0
    assert await w.count(Result) == 4

    await w.leases.release("retention:results", "another-worker", 60)
    done = await pruner.prune_table("results")
    assert done.outcome == "done" and done.deleted == 4
    # Its own lease is given back: the next round (any worker's) may prune again.
    assert await w.count(Lease) == 0


async def test_a_long_round_stops_at_half_an_interval_and_goes_on_at_the_next(
    world: World,
) -> None:
    w = world
    for i in range(10):
        await save(w, "library", "", "search", f"1|1|q{i}", ago(2 * DAY))
    w.clock.mono_step = 1.0  # every batch "takes" a second
    pruner = w.pruner(retention_settings(**{"retention.interval_s": 4, "retention.batch": 2}))

    first = await pruner.prune_table("results")
    assert first.outcome == "more_left"
    assert 0 < first.deleted < 10
    left = await w.count(Result)
    assert left == 10 - first.deleted

    rounds = 1
    while await w.count(Result) and rounds < 10:
        await pruner.prune_table("results")
        rounds += 1
    assert await w.count(Result) == 0
    assert rounds > 1


# -- the database away ----------------------------------------------------------------------


@pytest.fixture
async def away(db_url: str) -> AsyncIterator[tuple[str, Callable[[], Awaitable[None]], Any]]:
    """(a URL of the test's database, cut it off, bring it back): MySQL behind a proxy that
    drops every connection; SQLite held locked by another process's writer."""
    if db_url.startswith("sqlite"):
        path = make_url(db_url).database
        assert path is not None
        holder: dict[str, sqlite3.Connection] = {}

        async def cut() -> None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN EXCLUSIVE")
            holder["conn"] = conn

        async def back() -> None:
            conn = holder.pop("conn")
            conn.execute("ROLLBACK")
            conn.close()

        yield db_url, cut, back
        if "conn" in holder:
            await back()
        return
    url = make_url(db_url)
    proxy = DatabaseProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    yield (
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False),
        proxy.cut,
        proxy.start,
    )
    await proxy.close()


async def test_pruning_survives_the_database_being_away(
    away: tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]],
) -> None:
    url, cut, back = away
    settings = retention_settings(
        url,
        **{"database.sqlite_busy_timeout_s": 0.1, "database.connect_timeout_s": 1},
    )
    engine = make_engine(settings.database)
    await migrate(engine)
    sessions = make_sessionmaker(engine)
    clock = Clock()
    w = World(sessions, clock, LeaseStore(sessions, clock))
    try:
        for i in range(5):
            await save(w, "library", "", "search", f"1|1|q{i}", ago(2 * DAY))
        pruner = w.pruner(settings)

        await cut()
        report = await pruner.run_round()  # never raises
        assert report.deleted == 0
        assert {r.outcome for r in report.tables.values()} <= {"skipped", "held"}

        await back()
        for _ in range(50):  # the first rounds may still meet connections the cut broke
            report = await pruner.run_round()
            if report.tables["results"].outcome == "done":
                break
            await asyncio.sleep(0.1)
        assert report.tables["results"].outcome == "done"
        assert await w.count(Result) == 0
    finally:
        await engine.dispose()


# -- the server: background rounds ----------------------------------------------------------


async def test_the_server_keeps_shared_answers_under_their_cap(db_url: str, sim: Proc) -> None:
    settings = make_settings(
        db_url,
        sim.url,
        **{
            "retention.interval_s": 0.2,
            "retention.shared_results_max": 3,
            "retention.pause_s": 0,
        },
    )
    async with serve_app(settings) as (client, _):
        for word in ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"):
            answer = await client.get("/v1/library/search", params={"q": word})
            assert answer.status_code == 200
        engine = make_engine(settings.database)
        sessions = make_sessionmaker(engine)
        try:

            async def shared() -> int:
                async with sessions() as db:
                    return int(
                        await db.scalar(
                            select(func.count()).select_from(Result).where(Result.subject == "")
                        )
                        or 0
                    )

            async with asyncio.timeout(30):
                while await shared() > 3:  # noqa: ASYNC110 - the server prunes, not this loop
                    await asyncio.sleep(0.1)
            async with sessions() as db:
                kept = set(await db.scalars(select(Result.params).where(Result.subject == "")))
            # The newest three: the oldest went first.
            assert {params.rpartition("|")[2] for params in kept} == {"echo", "foxtrot", "golf"}
        finally:
            await engine.dispose()
