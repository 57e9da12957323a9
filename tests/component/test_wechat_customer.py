"""Customer messages and the shared access_token (channels/wechat/customer.py), against the
simulated WeChat API (a real simulator process) and a real database (SQLite, and MySQL
when JNUFM_TEST_MYSQL_URL is set). Two CustomerMessages on one database, each with its
own engine, stand for two workers."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.config import WeChatAccount, WeChatSettings
from channels.wechat.customer import CustomerMessages, china_day
from channels.wechat.errors import ApiUnavailable
from channels.wechat.reply_xml import Article
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import WeChatApiToken
from harness.processes import Proc, free_port, schoolsim, sim_json
from schoolsim.wechat.follower import customer_messages
from settings import DatabaseSettings
from tests.conftest import TEST_SECRET

# Noon in China: the day does not change under a test's small steps.
T0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def wechat_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A simulator of this module's own: drills and slowness here reach no other test."""
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


@pytest.fixture
async def databases(db_url: str) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Two workers' session makers on one migrated database."""
    engines = [make_engine(DatabaseSettings(url=db_url)) for _ in range(2)]
    await migrate(engines[0])
    yield [make_sessionmaker(engine) for engine in engines]
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(trust_env=False, timeout=30) as client:
        yield client


class World:
    """An app registered at the simulated API, its account, and two workers."""

    def __init__(
        self,
        sim: Proc,
        databases: list[async_sessionmaker[AsyncSession]],
        http: httpx.AsyncClient,
        per_day: int = 500_000,
        api_url: str | None = None,
        timeout_s: float = 5.0,
        **app: Any,
    ) -> None:
        self.sim = sim
        self.http = http
        self.app_id = "wx" + secrets.token_hex(8)
        self.secret = secrets.token_hex(16)
        sim_json(
            sim.url, "/__sim/wechat/apps", {"app_id": self.app_id, "secret": self.secret, **app}
        )
        self.account = WeChatAccount(
            name="jnu",
            app_id=self.app_id,
            mode="plain",
            token=SecretStr("callbacktoken123"),
            app_secret=SecretStr(self.secret),
        )
        self.settings = WeChatSettings(
            api_base_url=api_url or f"{sim.url}/wechat-api",
            api_timeout_s=timeout_s,
            customer_messages_per_day=per_day,
        )
        self.clock = Clock()
        self.databases = databases
        self.workers = [
            CustomerMessages(db, http, self.settings, TEST_SECRET.encode(), self.clock)
            for db in databases
        ]

    def stats(self) -> dict[str, Any]:
        return sim_json(self.sim.url, f"/__sim/wechat/apps/{self.app_id}")

    async def received(self, openid: str) -> list[str]:
        return [m.content for m in await customer_messages(self.http, self.sim.url, openid)]

    async def row(self) -> WeChatApiToken:
        async with self.databases[0]() as db:
            found = await db.scalar(
                select(WeChatApiToken).where(WeChatApiToken.app_id == self.app_id)
            )
        assert found is not None
        return found


def openid() -> str:
    return "o" + secrets.token_hex(12)


@pytest.fixture
def world(wechat_sim: Proc, databases: list[Any], http: httpx.AsyncClient) -> World:
    return World(wechat_sim, databases, http)


async def test_one_token_shared_by_two_workers(world: World) -> None:
    a, b = world.workers
    follower = openid()
    sent = await asyncio.gather(
        *(worker.send_text(world.account, follower, f"m{i}") for i in range(4) for worker in (a, b))
    )
    assert sent == [True] * 8
    assert world.stats()["tokens_fetched"] == 1
    assert sorted(await world.received(follower)) == sorted(
        f"m{i}" for i in range(4) for _ in (a, b)
    )
    assert await a.access_token(world.account) == await b.access_token(world.account)
    row = await world.row()
    assert row.day == china_day(T0) and row.sent == 8


async def test_news_message(world: World) -> None:
    follower = openid()
    article = Article(title="Python 编程", description="3 copies", url="http://x/b1", pic_url="")
    assert await world.workers[0].send_news(world.account, follower, [article]) is True
    got = await customer_messages(world.http, world.sim.url, follower)
    assert [m.msgtype for m in got] == ["news"]
    assert got[0].articles == (article,)


async def test_refreshed_when_under_five_minutes_left(world: World) -> None:
    a, b = world.workers
    follower = openid()
    first = await a.access_token(world.account)
    world.clock.now = T0 + timedelta(seconds=7200 - 301)
    assert await b.send_text(world.account, follower, "still the first token")
    assert world.stats()["tokens_fetched"] == 1
    world.clock.now = T0 + timedelta(seconds=7200 - 299)
    assert await b.send_text(world.account, follower, "a new token")
    assert world.stats()["tokens_fetched"] == 2
    assert await a.send_text(world.account, follower, "shared")
    assert world.stats()["tokens_fetched"] == 2
    assert await a.access_token(world.account) != first
    assert await world.received(follower) == ["still the first token", "a new token", "shared"]


async def test_refreshed_once_when_the_api_refuses_the_token(world: World, caplog: Any) -> None:
    a, b = world.workers
    follower = openid()
    old = await a.access_token(world.account)
    sim_json(world.sim.url, f"/__sim/wechat/apps/{world.app_id}/revoke", {})
    assert await b.send_text(world.account, follower, "after revoke")
    assert world.stats()["tokens_fetched"] == 2
    assert await a.access_token(world.account) != old
    assert await world.received(follower) == ["after revoke"]

    # Refused again with the new token: one refresh, no more, and a False.
    sim_json(world.sim.url, "/__sim/wechat/drill", {"errcode": 40001, "count": 2, "calls": "send"})
    caplog.set_level(logging.WARNING, logger="jnufm.wechat")
    assert await a.send_text(world.account, follower, "refused twice") is False
    assert world.stats()["tokens_fetched"] == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "jnufm.wechat"]
    assert len(lines) == 1 and "errcode 40001" in lines[0]
    assert (await world.row()).sent == 1  # the refused one was given back


async def test_wrong_secret_and_no_secret(world: World, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, logger="jnufm.wechat")
    wrong = world.account.model_copy(update={"app_secret": SecretStr("0" * 32)})
    worker = world.workers[0]
    assert await worker.send_text(wrong, openid(), "hello") is False
    with pytest.raises(ApiUnavailable) as refused:
        await worker.access_token(wrong)
    assert refused.value.errcode == 40125
    lines = [r.getMessage() for r in caplog.records if r.name == "jnufm.wechat"]
    assert len(lines) == 1 and "errcode 40125" in lines[0]
    assert (await world.row()).sent == 0

    none = world.account.model_copy(update={"app_secret": None})
    assert worker.available(none) is False and worker.available(world.account) is True
    assert await worker.send_text(none, openid(), "hello") is False
    with pytest.raises(ApiUnavailable):
        await worker.access_token(none)
    assert world.stats()["tokens_fetched"] == 0 and world.stats()["accepted"] == 0


async def test_daily_limit_over_both_workers(
    wechat_sim: Proc, databases: list[Any], http: httpx.AsyncClient
) -> None:
    world = World(wechat_sim, databases, http, per_day=3)
    a, b = world.workers
    follower = openid()
    sent = await asyncio.gather(
        *(w.send_text(world.account, follower, f"m{i}") for i in range(3) for w in (a, b))
    )
    assert sorted(sent) == [False, False, False, True, True, True]
    assert world.stats()["accepted"] == 3
    assert await b.send_text(world.account, follower, "over") is False
    world.clock.now = T0 + timedelta(days=1)  # the next day in China
    assert await b.send_text(world.account, follower, "next day") is True
    row = await world.row()
    assert (row.day, row.sent) == (china_day(world.clock.now), 1)


async def test_the_apis_daily_quota_stops_the_day(
    wechat_sim: Proc, databases: list[Any], http: httpx.AsyncClient, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, logger="jnufm.wechat")
    world = World(wechat_sim, databases, http, per_day=100, daily_quota=1)
    a, b = world.workers
    assert await a.send_text(world.account, openid(), "one") is True
    assert await b.send_text(world.account, openid(), "quota") is False
    assert await a.send_text(world.account, openid(), "not asked") is False
    assert world.stats()["refused"] == {"45009": 1}  # the third never reached the API
    assert (await world.row()).sent == 100
    assert "errcode 45009" in caplog.records[0].getMessage()


async def test_api_errors_and_no_api(
    wechat_sim: Proc, databases: list[Any], http: httpx.AsyncClient
) -> None:
    world = World(wechat_sim, databases, http)
    worker = world.workers[0]
    follower = openid()
    sim_json(wechat_sim.url, "/__sim/wechat/drill", {"errcode": -1, "count": 1, "calls": "send"})
    assert await worker.send_text(world.account, follower, "busy") is False
    assert await worker.send_text(world.account, follower, "then fine") is True
    sim_json(wechat_sim.url, "/__sim/wechat/drill", {"errcode": 40164, "count": 1, "calls": "any"})
    fresh = World(wechat_sim, databases, http)
    assert await fresh.workers[0].send_text(fresh.account, follower, "not whitelisted") is False
    assert (await fresh.row()).sent == 0
    assert await world.received(follower) == ["then fine"]

    nowhere = World(wechat_sim, databases, http, api_url=f"http://127.0.0.1:{free_port()}/x")
    assert await nowhere.workers[0].send_text(nowhere.account, follower, "no API") is False
    assert (await nowhere.row()).sent == 0


async def test_a_slow_api_is_given_up(
    wechat_sim: Proc, databases: list[Any], http: httpx.AsyncClient
) -> None:
    world = World(wechat_sim, databases, http, timeout_s=0.5)
    follower = openid()
    sim_json(
        wechat_sim.url, "/__sim/wechat/control", {"latency_ms_median": 3000, "latency_sigma": 0}
    )
    try:
        assert await world.workers[0].send_text(world.account, follower, "slow") is False
        with pytest.raises(ApiUnavailable):
            await world.workers[1].access_token(world.account)
    finally:
        sim_json(
            wechat_sim.url, "/__sim/wechat/control", {"latency_ms_median": 1, "latency_sigma": 0.2}
        )


async def test_nothing_secret_in_the_database_or_the_logs(
    wechat_sim: Proc, databases: list[Any], http: httpx.AsyncClient, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG, logger="jnufm")
    world = World(wechat_sim, databases, http)
    a, b = world.workers
    follower = openid()
    tokens = [await a.access_token(world.account)]
    sim_json(wechat_sim.url, f"/__sim/wechat/apps/{world.app_id}/revoke", {})
    assert await b.send_text(world.account, follower, "after revoke")
    tokens.append(await a.access_token(world.account))
    sim_json(wechat_sim.url, "/__sim/wechat/drill", {"errcode": 42001, "count": 2, "calls": "send"})
    assert await a.send_text(world.account, follower, "refused") is False
    tokens.append(await a.access_token(world.account))
    # (A wrong secret is asked only when the row has no good token: another app here.)
    other = World(wechat_sim, databases, http)
    wrong = other.account.model_copy(update={"app_secret": SecretStr("f" * 32)})
    assert await other.workers[0].send_text(wrong, follower, "wrong secret") is False
    assert len(set(tokens)) == 3

    secrets_ = [world.secret, other.secret, "f" * 32, *tokens]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "errcode 42001" in logged and "errcode 40125" in logged
    assert not [s for s in secrets_ if s in logged]
    async with world.databases[0]() as db:
        rows = [
            *(await db.execute(text("SELECT * FROM wechat_api_tokens"))).all(),
            *(await db.execute(text("SELECT * FROM leases"))).all(),
        ]
    stored = repr(rows)
    assert world.app_id in stored
    assert not [s for s in secrets_ if s in stored]
