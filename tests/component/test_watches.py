"""Students' watches end to end: /v1/watches over real HTTP, the scheduler's polls of a
real simulated school, the outbox rows they write, on SQLite and MySQL.

The scheduler is driven one step at a time (`run_once`), with a clock of the test's
own for what is due (the school, the tokens and the cache keep real time)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from tornado.netutil import bind_sockets

from db import outbox as outbox_q
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import OutboxMessage, Watch
from handlers import make_app
from handlers.base import AppDeps
from harness.processes import Proc, sim_json
from runtime.prefetch import prefetch_timetables
from runtime.wiring import build_worker_services
from runtime.worker import make_http_server
from services.budget import UpstreamBudget
from services.campus import CHINA
from services.leases import LeaseStore
from services.pipeline import utc_now
from services.rates import RequestRateLimiter, SharedRateTable
from services.retention import Retention
from services.vault import SessionVault
from services.watches.notices import open_notice
from services.watches.scheduler import WatchScheduler, WatchTargets
from services.watches.store import WatchStore
from settings import Settings
from tests.conftest import make_settings

HOOK = "https://example.com/hooks/jnufm"


def new_student() -> str:
    """A student of this test alone (the simulated school is shared by the run)."""
    return f"2012{secrets.randbelow(900000) + 100000}"


class Clock:
    """What is due, by the test's clock: real time moved on at will."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def now(self) -> datetime:
        return utc_now() + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += timedelta(seconds=seconds + 1)


@dataclass
class World:
    client: httpx.AsyncClient
    deps: AppDeps
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    store: WatchStore
    clock: Clock
    table: SharedRateTable
    engines: list[AsyncEngine]

    def students_waiting(self, system: str) -> bool:
        service = self.deps.card if system == "card" else self.deps.academic
        return service is not None and service.pipeline.budget.waiting > 0

    def scheduler(
        self, store: WatchStore | None = None, budgets: dict[str, int] | None = None
    ) -> WatchScheduler:
        """A scheduler as a worker runs it (`store`: another worker's, on its own engine;
        `budgets`: the systems' budgets it leaves a slot of for students)."""
        w = self.settings.watches
        ceiling = RequestRateLimiter(self.table, w.school_requests_per_min / 60.0, 2)
        targets = WatchTargets(
            self.deps.card, self.deps.academic, self.students_waiting, budgets or {}
        )
        return WatchScheduler(
            store or self.store,
            self.deps.tokens,  # type: ignore[arg-type]
            targets,
            ceiling,
            self.settings,
            now=self.clock.now,
            rng=lambda: 0.0,
        )

    def other_store(self) -> WatchStore:
        """The watch store of another worker: its own engine and connections."""
        engine = make_engine(self.settings.database)
        self.engines.append(engine)
        vault = SessionVault(self.settings.secret_key.encode())
        return WatchStore(make_sessionmaker(engine), self.settings, vault, self.clock.now)

    async def watch_row(self, watch_id: int) -> Watch:
        async with self.sessions() as db:
            row = await db.get(Watch, watch_id)
            assert row is not None
            return row

    async def outbox(self, watch_id: int) -> list[OutboxMessage]:
        async with self.sessions() as db:
            rows = await db.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.watch_id == watch_id)
                .order_by(OutboxMessage.id)
            )
            return list(rows.all())

    async def texts(self, watch_id: int) -> list[str]:
        vault = SessionVault(self.settings.secret_key.encode())
        found = []
        for row in await self.outbox(watch_id):
            notice = open_notice(vault, watch_id, row.payload)
            assert notice is not None
            found.append(notice.text)
        return found

    async def due_again(self, watch_id: int) -> None:
        """Move the test's clock past the watch's next poll."""
        row = await self.watch_row(watch_id)
        ahead = (row.next_poll_at - self.clock.now()).total_seconds()
        self.clock.advance(max(0.0, ahead))


def watch_settings(db_url: str, sim_url: str, **overrides: Any) -> Settings:
    # A fresh question is answered from the cache when asked again within
    # cache.fresh_min_interval_s: the polls here follow each other at once.
    values = {"watches.school_requests_per_min": 60000, "cache.fresh_min_interval_s": 0}
    return make_settings(db_url, sim_url, **{**values, **overrides})


@contextlib.asynccontextmanager
async def watching(settings: Settings) -> AsyncIterator[World]:
    """The app served with a watch store, and what a test needs to drive the scheduler."""
    engine = make_engine(settings.database)
    await migrate(engine)
    # The server's own scheduler and deliverer stay off (its watch loop, on the real clock,
    # would claim the test's due watches behind its back): the test drives its own, on
    # the store below, with `settings` as they are.
    quiet = settings.watches.model_copy(update={"enabled": False})
    services = await build_worker_services(settings.model_copy(update={"watches": quiet}))
    await services.recover()
    clock = Clock()
    sessions = make_sessionmaker(engine)
    store = WatchStore(sessions, settings, SessionVault(settings.secret_key.encode()), clock.now)
    deps = dataclasses.replace(services.deps, watches=store)
    server = make_http_server(make_app(deps, settings.http), settings.http)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    table = SharedRateTable.create(settings.limits.rate_table_slots)
    engines = [engine]
    try:
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
            yield World(client, deps, settings, sessions, store, clock, table, engines)
    finally:
        server.stop()
        await server.close_all_connections()
        await services.close()
        table.close()
        for e in engines:
            await e.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code(reply: httpx.Response) -> str:
    return str(reply.json()["error"]["code"])


async def token_of(world: World, student: str, system: str = "card") -> str:
    reply = await world.client.post(
        "/v1/sessions", data={"system": system}, auth=(student, student[-6:])
    )
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


async def new_watch(
    world: World, token: str, kind: str, param: str = "", channel: str = "webhook"
) -> dict[str, Any]:
    body = {"kind": kind, "channel": channel, "target": HOOK, "param": param}
    reply = await world.client.post("/v1/watches", json=body, headers=bearer(token))
    assert reply.status_code == 201, reply.text
    made: dict[str, Any] = reply.json()
    return made


async def poll(world: World, scheduler: WatchScheduler, watch_id: int) -> str:
    """Make the watch due and run one step; its outcome."""
    await world.due_again(watch_id)
    report = await scheduler.run_once()
    assert report.watch_id in (watch_id, None), report
    return report.outcome


# /v1/watches --------------------------------------------------------------------------------


async def test_a_watch_made_listed_and_deleted_over_http(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        token = await token_of(world, student)
        made = await new_watch(world, token, "low_balance", "20")
        watch = made["watch"]
        assert made["student_id"] == student
        assert watch["kind"] == "low_balance" and watch["param"] == "20.00"
        assert watch["system"] == "card" and watch["target"] == HOOK
        assert len(made["secret"]) >= 40, "a webhook's signing secret, shown once"
        row = await world.watch_row(watch["id"])
        assert made["secret"] not in (row.secret or "") and HOOK not in row.target, "sealed"

        listed = await world.client.get("/v1/watches", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert [w["id"] for w in listed.json()["watches"]] == [watch["id"]]
        assert "secret" not in listed.text and made["secret"] not in listed.text
        # The password lists them too.
        by_password = await world.client.get("/v1/watches", auth=(student, student[-6:]))
        assert [w["id"] for w in by_password.json()["watches"]] == [watch["id"]]

        gone = await world.client.delete(f"/v1/watches/{watch['id']}", headers=bearer(token))
        assert gone.status_code == 204, gone.text
        again = await world.client.delete(f"/v1/watches/{watch['id']}", headers=bearer(token))
        assert again.status_code == 404 and code(again) == "unknown_watch"
        listed = await world.client.get("/v1/watches", headers=bearer(token))
        assert listed.json()["watches"] == []


async def test_another_students_watch_cannot_be_deleted(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        mine = await new_watch(world, await token_of(world, new_student()), "card_transaction")
        theirs = await token_of(world, new_student())
        reply = await world.client.delete(
            f"/v1/watches/{mine['watch']['id']}", headers=bearer(theirs)
        )
        assert reply.status_code == 404 and code(reply) == "unknown_watch"
        assert (await world.watch_row(mine["watch"]["id"])).ended_at is None


async def test_a_password_makes_the_watch_its_own_token(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        body = {"kind": "card_transaction", "channel": "email", "target": "s@example.edu.cn"}
        reply = await world.client.post("/v1/watches", json=body, auth=(student, student[-6:]))
        assert reply.status_code == 201, reply.text
        assert "secret" not in reply.json(), "an e-mail watch has no signing secret"
        row = await world.watch_row(reply.json()["watch"]["id"])
        tokens = await world.client.get(
            "/v1/sessions", params={"system": "card"}, auth=(student, student[-6:])
        )
        assert row.token_id in [t["id"] for t in tokens.json()["tokens"]]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"kind": "weather", "channel": "webhook", "target": HOOK}, 400, "invalid_watch_kind"),
        ({"kind": "low_balance", "channel": "webhook", "target": HOOK}, 400, "invalid_watch_param"),
        (
            {"kind": "card_transaction", "channel": "webhook", "target": "http://example.com/"},
            400,
            "invalid_target",
        ),
        (
            {"kind": "card_transaction", "channel": "webhook", "target": "https://127.0.0.1/"},
            400,
            "invalid_target",
        ),
        (
            {"kind": "card_transaction", "channel": "email", "target": "nobody"},
            400,
            "invalid_target",
        ),
        ({"kind": "card_transaction", "channel": "wechat", "target": "o1"}, 400, "invalid_channel"),
        ({"kind": "grade", "channel": "webhook", "target": HOOK}, 403, "insufficient_scope"),
    ],
)
async def test_watches_that_cannot_be_made(
    db_url: str, sim: Proc, body: dict[str, str], status: int, error: str
) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        token = await token_of(world, new_student())
        reply = await world.client.post("/v1/watches", json=body, headers=bearer(token))
        assert reply.status_code == status, reply.text
        assert code(reply) == error
        if error == "invalid_channel":
            assert "chat" in reply.json()["error"]["message"]


async def test_a_student_holds_at_most_per_student_watches(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url, **{"watches.per_student": 2})) as world:
        token = await token_of(world, new_student())
        await new_watch(world, token, "card_transaction")
        await new_watch(world, token, "low_balance", "10")
        body = {"kind": "card_transaction", "channel": "webhook", "target": HOOK}
        reply = await world.client.post("/v1/watches", json=body, headers=bearer(token))
        assert reply.status_code == 409 and code(reply) == "too_many_watches"


async def test_watches_without_credentials_are_refused(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        reply = await world.client.get("/v1/watches")
        assert reply.status_code == 401 and code(reply) == "missing_credentials"
        wrong = await world.client.get("/v1/watches", headers=bearer("x" * 43))
        assert wrong.status_code == 401 and code(wrong) == "invalid_token"


# Polls, kind by kind --------------------------------------------------------------------------


async def test_card_transactions_one_row_per_purchase(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        watch = (await new_watch(world, await token_of(world, student), "card_transaction"))[
            "watch"
        ]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        assert await world.outbox(watch["id"]) == []
        sim_json(
            sim.url, f"/__sim/students/{student}/spend", {"amount": "7.25", "position": "第三饭堂"}
        )
        assert await poll(world, scheduler, watch["id"]) == "changed"
        texts = await world.texts(watch["id"])
        assert len(texts) == 1 and "第三饭堂" in texts[0] and "7.25" in texts[0]
        assert await poll(world, scheduler, watch["id"]) == "unchanged"
        assert len(await world.outbox(watch["id"])) == 1
        listed = await world.client.get("/v1/watches", auth=(student, student[-6:]))
        messages = listed.json()["watches"][0]["messages"]
        assert [m["status"] for m in messages] == ["pending"]


async def test_low_balance_once_below_the_threshold(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        balance = float(sim_json(sim.url, f"/__sim/students/{student}")["balance"])
        if balance < 5:
            pytest.skip("this student's card is nearly empty")  # pragma: no cover
        threshold = f"{balance - 1:.2f}"
        token = await token_of(world, student)
        watch = (await new_watch(world, token, "low_balance", threshold))["watch"]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        sim_json(sim.url, f"/__sim/students/{student}/spend", {"amount": "2.00"})
        assert await poll(world, scheduler, watch["id"]) == "changed"
        texts = await world.texts(watch["id"])
        assert len(texts) == 1 and threshold in texts[0]
        sim_json(sim.url, f"/__sim/students/{student}/spend", {"amount": "1.00"})
        assert await poll(world, scheduler, watch["id"]) == "unchanged"
        assert len(await world.outbox(watch["id"])) == 1


async def academic_term(world: World) -> tuple[int, int]:
    assert world.deps.academic is not None
    term = world.deps.academic.term(None, None)
    return term.year, term.term


async def test_a_grade_posted(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        watch = (await new_watch(world, await token_of(world, student, "academic"), "grade"))[
            "watch"
        ]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        year, term = await academic_term(world)
        sim_json(
            sim.url,
            f"/__sim/academic/students/{student}/grade",
            {"year": year, "term": term, "code": "9990001", "name": "形势与政策", "score": "93"},
        )
        assert await poll(world, scheduler, watch["id"]) == "changed"
        texts = await world.texts(watch["id"])
        assert len(texts) == 1 and "形势与政策" in texts[0] and "93" in texts[0]
        assert await poll(world, scheduler, watch["id"]) == "unchanged"
        assert len(await world.outbox(watch["id"])) == 1


async def test_an_exam_added_inside_the_window(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        token = await token_of(world, student, "academic")
        watch = (await new_watch(world, token, "exam_soon", "72"))["watch"]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        year, term = await academic_term(world)
        # 30 hours after the poll the test's clock is about to make (6 hours on).
        at = (world.clock.now() + timedelta(hours=36)).astimezone(CHINA)
        sim_json(
            sim.url,
            f"/__sim/academic/students/{student}/exam",
            {
                "year": year,
                "term": term,
                "date": at.date().isoformat(),
                "start": f"{at.hour:02d}:00",
                "end": f"{at.hour:02d}:59",
                "place": "第二教学楼305",
                "course_name": "线性代数",
                "course_id": "9990002",
            },
        )
        assert await poll(world, scheduler, watch["id"]) == "changed"
        texts = await world.texts(watch["id"])
        assert len(texts) == 1 and "第二教学楼305" in texts[0] and "线性代数" in texts[0]
        assert await poll(world, scheduler, watch["id"]) == "unchanged"
        assert len(await world.outbox(watch["id"])) == 1


async def test_a_timetable_change(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        token = await token_of(world, student, "academic")
        watch = (await new_watch(world, token, "timetable_change"))["watch"]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        year, term = await academic_term(world)
        sim_json(
            sim.url,
            f"/__sim/academic/students/{student}/timetable",
            {"year": year, "term": term, "place": "新教学楼999"},
        )
        assert await poll(world, scheduler, watch["id"]) == "changed"
        assert len(await world.texts(watch["id"])) == 1
        assert await poll(world, scheduler, watch["id"]) == "unchanged"
        assert len(await world.outbox(watch["id"])) == 1


# Workers, students first, tokens ------------------------------------------------------------


async def test_two_workers_never_poll_one_watch_at_once(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        watch = (await new_watch(world, await token_of(world, student), "card_transaction"))[
            "watch"
        ]
        first, second = world.scheduler(), world.scheduler(world.other_store())
        polled = []
        for round_ in range(4):
            if round_ == 2:
                sim_json(sim.url, f"/__sim/students/{student}/spend", {"amount": "3.00"})
            await world.due_again(watch["id"])
            reports = await asyncio.gather(first.run_once(), second.run_once())
            outcomes = sorted(r.outcome for r in reports)
            assert outcomes.count("idle") == 1, outcomes  # the other found it claimed
            polled += [o for o in outcomes if o != "idle"]
        assert polled == ["baseline", "unchanged", "changed", "unchanged"]
        assert len(await world.outbox(watch["id"])) == 1


async def test_an_event_is_written_once_whoever_saw_it(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        watch = (await new_watch(world, await token_of(world, student), "card_transaction"))[
            "watch"
        ]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        sim_json(sim.url, f"/__sim/students/{student}/spend", {"amount": "4.00"})
        assert await poll(world, scheduler, watch["id"]) == "changed"
        [row] = await world.outbox(watch["id"])
        # The same event again (a poll repeated after a crash) adds no row.
        copy = OutboxMessage(
            watch_id=row.watch_id,
            event_key=row.event_key,
            channel=row.channel,
            payload=row.payload,
            created_at=row.created_at,
            attempts=0,
            last_error="",
        )
        async with world.sessions.begin() as db:
            assert await outbox_q.insert_notices(db, [copy]) == 0
        assert len(await world.outbox(watch["id"])) == 1


async def wait_in_line(
    world: World, budget: UpstreamBudget, path: str, params: dict[str, str] | None = None
) -> asyncio.Future[httpx.Response]:
    """A student's query (of a new student: no cached answer) that waits for `budget`."""
    other = new_student()
    query = asyncio.ensure_future(world.client.get(path, params=params, auth=(other, other[-6:])))
    for _ in range(3000):
        if budget.waiting > 0:
            break
        await asyncio.sleep(0.01)
    assert budget.waiting > 0, (
        query.result().text if query.done() else "the student's query waits for the budget"
    )
    return query


async def test_no_poll_while_a_student_waits_for_the_school(db_url: str, sim: Proc) -> None:
    budgets = {"school.card.budget": 1, "school.academic.budget": 1, "budget.wait_s": 600}
    async with watching(watch_settings(db_url, sim.url, **budgets)) as world:
        student = new_student()
        watch = (await new_watch(world, await token_of(world, student), "low_balance", "1"))[
            "watch"
        ]
        scheduler = world.scheduler()
        assert world.deps.card is not None and world.deps.academic is not None
        card = world.deps.card.pipeline.budget
        office = world.deps.academic.pipeline.budget
        await world.due_again(watch["id"])
        async with card.slot(600):
            waiting = await wait_in_line(world, card, "/v1/card/balance")
            # Only the academic office's watches may be polled now: there are none.
            assert (await scheduler.run_once()).outcome == "idle"
            async with office.slot(600):
                asking = await wait_in_line(world, office, "/v1/timetable")
                assert (await scheduler.run_once()).outcome == "yielded"
            assert (await world.watch_row(watch["id"])).last_polled_at is None
        for query in (waiting, asking):
            reply = await query
            assert reply.status_code == 200, reply.text
        assert (await scheduler.run_once()).outcome == "baseline"
        assert (await world.watch_row(watch["id"])).last_polled_at is not None


async def test_a_poll_leaves_a_budget_slot_free_for_students(db_url: str, sim: Proc) -> None:
    """With a budget of 2, a poll starts only while no slot is held (the other stays
    free for a student who comes meanwhile): held by another process, it waits."""
    budgets = {"school.card.budget": 2}
    async with watching(watch_settings(db_url, sim.url, **budgets)) as world:
        student = new_student()
        token = await token_of(world, student)
        watch = (await new_watch(world, token, "card_transaction"))["watch"]
        scheduler = world.scheduler(budgets={"card": 2})
        await world.due_again(watch["id"])
        leases = LeaseStore(world.sessions, utc_now)
        assert await leases.try_acquire("budget:card:1", "another-process", 600)
        # Only the academic office's watches may be polled now: there are none.
        assert (await scheduler.run_once()).outcome == "idle"
        assert (await world.watch_row(watch["id"])).last_polled_at is None
        await leases.release("budget:card:1", "another-process", 600)
        assert (await scheduler.run_once()).outcome == "baseline"


async def test_the_ceiling_holds_polls_back(db_url: str, sim: Proc) -> None:
    settings = watch_settings(db_url, sim.url, **{"watches.school_requests_per_min": 1})
    async with watching(settings) as world:
        student = new_student()
        watch = (await new_watch(world, await token_of(world, student), "card_transaction"))[
            "watch"
        ]
        scheduler = world.scheduler()
        assert await poll(world, scheduler, watch["id"]) == "baseline"
        await world.due_again(watch["id"])
        due = (await world.watch_row(watch["id"])).next_poll_at
        report = await scheduler.run_once()
        assert report.outcome == "throttled" and report.retry_after_s > 0
        row = await world.watch_row(watch["id"])
        assert row.next_poll_at == due, "a refused poll claims nothing: its place is kept"


async def test_the_ceiling_lets_its_rate_of_polls_through(db_url: str, sim: Proc) -> None:
    """60 school requests a minute, 2 a poll: a bucket of 5 polls (ten seconds' worth),
    taken whole: the first five due watches are polled at once, the sixth waits."""
    settings = watch_settings(db_url, sim.url, **{"watches.school_requests_per_min": 60})
    async with watching(settings) as world:
        for _ in range(6):
            student = new_student()
            await new_watch(world, await token_of(world, student), "card_transaction")
        scheduler = world.scheduler()
        outcomes = [(await scheduler.run_once()).outcome for _ in range(6)]
        assert outcomes == ["baseline"] * 5 + ["throttled"], outcomes


async def test_revoked_tokens_end_their_watches(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        token = await token_of(world, student)
        watch = (await new_watch(world, token, "card_transaction"))["watch"]
        reply = await world.client.delete(
            "/v1/sessions", params={"system": "card"}, headers=bearer(token)
        )
        assert reply.status_code == 200, reply.text
        row = await world.watch_row(watch["id"])
        assert row.ended_at is not None and row.ended_reason == "token_revoked"
        listed = await world.client.get("/v1/watches", auth=(student, student[-6:]))
        assert listed.json()["watches"] == []


async def test_a_watch_whose_token_ended_elsewhere_ends_at_its_poll(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        student = new_student()
        token = await token_of(world, student)
        watch = (await new_watch(world, token, "card_transaction"))["watch"]
        assert world.deps.tokens is not None
        row = await world.watch_row(watch["id"])
        await world.deps.tokens.revoke(student, "card", [row.token_id])
        assert await poll(world, world.scheduler(), watch["id"]) == "token_ended"
        row = await world.watch_row(watch["id"])
        assert row.ended_at is not None and row.ended_reason == "token_revoked"
        assert (await world.scheduler().run_once()).outcome == "idle"


# Prefetch -------------------------------------------------------------------------------------


async def test_prefetch_reads_each_students_timetable_once(
    db_url: str, sim: Proc, capsys: pytest.CaptureFixture[str]
) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        first, second = new_student(), new_student()
        for student in (first, first, second):  # two tokens of the first: one fetch
            await token_of(world, student, "academic")
        await token_of(world, new_student(), "card")  # not the academic office's
        capsys.readouterr()
        before = sim_json(sim.url, "/__sim/academic/stats")["requests"]
        assert await prefetch_timetables(world.settings) == 0
        out = capsys.readouterr().out
        assert "prefetch done: 2 students: 2 fetched, 0 failed" in out, out
        assert sim_json(sim.url, "/__sim/academic/stats")["requests"] > before


# Retention ------------------------------------------------------------------------------------


async def test_ended_watches_are_pruned_after_keep_s(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        token = await token_of(world, new_student())
        ended = (await new_watch(world, token, "card_transaction"))["watch"]["id"]
        live = (await new_watch(world, token, "low_balance", "5"))["watch"]["id"]
        gone = await world.client.delete(f"/v1/watches/{ended}", headers=bearer(token))
        assert gone.status_code == 204
        leases = LeaseStore(world.sessions, world.clock.now)
        retention = Retention(world.sessions, leases, world.settings, world.clock.now)
        assert (await retention.prune_table("watches")).deleted == 0, "ended just now: kept"
        world.clock.advance(world.settings.watches.keep_s)
        retention = Retention(world.sessions, leases, world.settings, world.clock.now)
        assert (await retention.prune_table("watches")).deleted == 1
        async with world.sessions() as db:
            assert await db.get(Watch, ended) is None
            assert await db.get(Watch, live) is not None


async def test_the_loop_polls_due_watches_until_stopped(db_url: str, sim: Proc) -> None:
    async with watching(watch_settings(db_url, sim.url)) as world:
        token = await token_of(world, new_student())
        watch = (await new_watch(world, token, "card_transaction"))["watch"]
        scheduler = world.scheduler()
        scheduler.start()
        try:
            for _ in range(6000):
                if (await world.watch_row(watch["id"])).last_polled_at is not None:
                    break
                await asyncio.sleep(0.01)
        finally:
            await scheduler.stop()
        row = await world.watch_row(watch["id"])
        assert row.last_polled_at is not None and row.state is not None
        assert row.next_poll_at > world.clock.now(), "the next poll is an interval away"
