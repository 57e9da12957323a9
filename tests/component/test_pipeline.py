"""A pipeline built directly, without an HTTP server: real storage (SQLite, and MySQL when
configured) and a fake school, the only fake. What a question gets: a miss fetched and
stored, a hit, identical questions sharing one fetch, a stale answer when the school
fails, SchoolBusy when its budget has no slot in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import LoginFailure
from school.errors import InvalidCredentials, SchoolServerError
from services.breaker import BreakerTable
from services.callers import anonymous
from services.credentials import Credentials
from services.deferred import DeferredWrites
from services.errors import InvalidPassword, SchoolBusy, SchoolUnreachable
from services.gate import CredentialGate, GateStore
from services.lockout import GateTable
from services.pipeline import (
    Answer,
    CookieConnector,
    Pipeline,
    Question,
    SystemSpec,
    build_pipeline,
)
from services.storage import Codec, Storage
from settings import Settings
from tests.conftest import make_settings

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
TEXT: Codec[str] = Codec(str)
CALLER = anonymous("10.0.0.1")


class Clock:
    """A settable wall clock: answers age without sleeping."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class LookupCounting(Storage):
    """The real storage, telling when a number of cache lookups have been answered."""

    looked_up = 0
    enough = 0
    done: asyncio.Event | None = None

    async def lookup(self, *args: Any, **kwargs: Any) -> Any:
        found = await super().lookup(*args, **kwargs)
        self.looked_up += 1
        if self.done is not None and self.looked_up >= self.enough:
            self.done.set()
        return found

    def when_looked_up(self, count: int) -> asyncio.Event:
        self.enough, self.done = count, asyncio.Event()
        return self.done


class School:
    """The fake school: counts what it is asked, answers at once, or when let go, or fails."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.failing = False
        self.gate: asyncio.Event | None = None
        self.reached = asyncio.Event()  # a fetch is waiting at the school for the gate

    def fetch(self, what: str) -> Any:
        async def fetch(_: None) -> str:
            self.asked.append(what)
            if self.gate is not None:
                self.reached.set()
                await self.gate.wait()
            if self.failing:
                raise SchoolServerError("the catalogue answered 500", 500)
            return f"{what} #{len(self.asked)}"

        return fetch


def question(school: School, what: str = "search", max_age_s: float = 60) -> Question[str, None]:
    return Question("search", what, max_age_s, school.fetch(what), TEXT, False)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(
        db_url,
        "http://127.0.0.1:9",
        **{"retries.max_retries": 0, "budget.wait_s": 0.2},
    )


@pytest.fixture
def breakers() -> Iterator[BreakerTable]:
    table = BreakerTable.create(8)
    yield table
    table.close()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    made = make_engine(settings.database)
    await migrate(made)
    yield made
    await made.dispose()


@pytest.fixture
async def storage(
    settings: Settings, clock: Clock, engine: AsyncEngine
) -> AsyncIterator[LookupCounting]:
    deferred = DeferredWrites(100, 0.05)
    yield LookupCounting(make_sessionmaker(engine), settings, deferred, clock, None)
    await deferred.drain(1.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def school() -> School:
    return School()


def make_pipeline(
    storage: Storage, settings: Settings, clock: Clock, breakers: BreakerTable, budget: int = 4
) -> Pipeline[None]:
    spec = SystemSpec("library", "the library catalogue", budget, False)
    return build_pipeline(spec, None, storage, settings, None, now=clock, breakers=breakers)


@pytest.fixture
async def pipeline(
    storage: Storage, settings: Settings, clock: Clock, breakers: BreakerTable
) -> AsyncIterator[Pipeline[None]]:
    made = make_pipeline(storage, settings, clock, breakers)
    yield made
    await made.aclose(1.0)


async def ask(pipeline: Pipeline[None], q: Question[str, None]) -> Answer[str]:
    async with pipeline.query(None, CALLER) as query:
        return await query.answer(q)


async def test_a_miss_is_fetched_and_stored_then_answered_from_the_cache(
    pipeline: Pipeline[None], school: School, clock: Clock
) -> None:
    first = await ask(pipeline, question(school))
    assert (first.value, first.source, first.stale) == ("search #1", "school", False)
    assert first.cache_status == "jnufm; fwd=miss; stored"
    clock.advance(10)
    second = await ask(pipeline, question(school))
    assert (second.value, second.source, second.as_of) == ("search #1", "cache", T0)
    assert second.cache_status == "jnufm; hit; ttl=50"
    assert school.asked == ["search"], "the hit cost the school nothing"


async def test_an_answer_older_than_the_question_allows_is_fetched_again(
    pipeline: Pipeline[None], school: School, clock: Clock
) -> None:
    await ask(pipeline, question(school))
    clock.advance(61)
    again = await ask(pipeline, question(school))
    assert (again.value, again.source) == ("search #2", "school")
    assert again.cache_status == "jnufm; fwd=stale; stored"


async def test_identical_questions_at_once_share_one_fetch(
    pipeline: Pipeline[None], school: School, storage: LookupCounting
) -> None:
    school.gate = asyncio.Event()
    missed = storage.when_looked_up(5)
    asking = [asyncio.ensure_future(ask(pipeline, question(school))) for _ in range(5)]
    # All five found nothing cached while one of them is at the school: the other four
    # wait for its fetch (in this worker, or for its stored result under its lease).
    await missed.wait()
    await school.reached.wait()
    school.gate.set()
    answers = await asyncio.gather(*asking)
    assert school.asked == ["search"], "one fetch for five identical questions"
    assert {a.value for a in answers} == {"search #1"}
    statuses = sorted(a.cache_status for a in answers)
    assert statuses == ["jnufm; fwd=miss; collapsed"] * 4 + ["jnufm; fwd=miss; stored"]


async def test_a_stale_answer_stands_in_when_the_school_fails(
    pipeline: Pipeline[None], school: School, clock: Clock
) -> None:
    await ask(pipeline, question(school))
    clock.advance(3600)
    school.failing = True
    stale = await ask(pipeline, question(school))
    assert (stale.value, stale.source, stale.stale, stale.as_of) == (
        "search #1",
        "cache",
        True,
        T0,
    )
    assert stale.cache_status == (
        'jnufm; fwd=stale; fwd-status=502; ttl=-3540; detail="stale-if-error"'
    )
    assert school.asked == ["search", "search"], "the school was asked, and failed"


async def test_without_a_stored_answer_the_school_failure_is_the_answer(
    pipeline: Pipeline[None], school: School
) -> None:
    school.failing = True
    with pytest.raises(SchoolUnreachable) as failed:
        await ask(pipeline, question(school))
    assert failed.value.message == "the library catalogue is unavailable"


async def test_no_budget_slot_in_time_is_school_busy(
    storage: Storage, settings: Settings, clock: Clock, breakers: BreakerTable, school: School
) -> None:
    pipeline = make_pipeline(storage, settings, clock, breakers, budget=1)
    school.gate = asyncio.Event()
    holder = asyncio.ensure_future(ask(pipeline, question(school, "first")))
    await school.reached.wait()
    # Another question (its own lease) finds the one slot taken for longer than wait_s.
    with pytest.raises(SchoolBusy) as busy:
        await ask(pipeline, question(school, "second"))
    assert busy.value.message == "the library catalogue is busy; try again shortly"
    assert school.asked == ["first"], "the second question never reached the school"
    school.gate.set()
    assert (await holder).value == "first #1"
    await pipeline.aclose(1.0)


# -- a system with passwords: the gate's ticket instead of the null one ---------------------

STUDENT, RIGHT = "2012052690", "052690"


class CardCenter:
    """The fake card center: a login that knows one password, and a balance page."""

    def __init__(self) -> None:
        self.logins: list[str] = []
        self.pages = 0

    async def login(self, student_id: str, password: str) -> str:
        self.logins.append(password)
        if password != RIGHT:
            raise InvalidCredentials("wrong_password")
        return f"cookie-{len(self.logins)}"

    async def balance(self, session: str) -> str:
        self.pages += 1
        return f"123.45 (read with {session})"


@pytest.fixture
async def card(
    storage: Storage, settings: Settings, clock: Clock, breakers: BreakerTable, engine: AsyncEngine
) -> AsyncIterator[tuple[Pipeline[str], CardCenter]]:
    table = GateTable.create(64)
    gate = CredentialGate(
        GateStore(make_sessionmaker(engine)), table, settings.limits, b"k" * 32, clock
    )
    school = CardCenter()
    spec = SystemSpec("card", "the card center", 4, True, "card password")
    connector = CookieConnector(school.login, lambda _, cookie: cookie, lambda cookie: cookie)
    made = build_pipeline(spec, connector, storage, settings, gate, now=clock, breakers=breakers)
    yield made, school
    await made.aclose(1.0)
    table.close()


async def balance(pipeline: Pipeline[str], school: CardCenter, password: str) -> Answer[str]:
    q: Question[str, str] = Question("account", "", 60, school.balance, TEXT, False)
    async with pipeline.query(Credentials(STUDENT, password), CALLER) as query:
        return await query.answer(q)


async def failures(engine: AsyncEngine) -> int:
    async with make_sessionmaker(engine)() as db:
        return int(await db.scalar(select(func.count()).select_from(LoginFailure)) or 0)


async def test_a_password_the_school_accepted_is_answered_from_the_cache(
    card: tuple[Pipeline[str], CardCenter], engine: AsyncEngine
) -> None:
    pipeline, school = card
    first = await balance(pipeline, school, RIGHT)
    assert (first.value, first.source) == ("123.45 (read with cookie-1)", "school")
    assert school.logins == [RIGHT], "no verifier yet: the school judged the password"
    assert await failures(engine) == 0, "accepted: its count withdrawn"
    again = await balance(pipeline, school, RIGHT)
    assert (again.source, again.cache_status) == ("cache", "jnufm; hit; ttl=60")
    assert (school.logins, school.pages) == ([RIGHT], 1)


async def test_a_wrong_password_is_judged_by_the_school_and_refused(
    card: tuple[Pipeline[str], CardCenter], engine: AsyncEngine
) -> None:
    pipeline, school = card
    await balance(pipeline, school, RIGHT)
    with pytest.raises(InvalidPassword) as refused:
        await balance(pipeline, school, "000000")
    assert refused.value.message == "the student number or card password is wrong"
    assert school.logins == [RIGHT, "000000"], "never answered from the right one's cache"
    assert school.pages == 1
    assert await failures(engine) == 2, "counted against the student and the address"
