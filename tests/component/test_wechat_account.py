"""The WeChat official account end to end: a simulated follower (schoolsim/wechat/
follower.py: WeChat's signatures, encryption, 5 s timeouts and retries) talking to the
server over real HTTP, the simulated school and WeChat API as a real process, SQLite and
MySQL.

Every command, in every mode (plaintext, compatible, safe); a forged signature and a
replayed message refused; the bind / query / unbind flow; a cold query at a school
slower than WeChat's 5 s answered on WeChat's retry, or by customer message.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import httpx
import pytest
from pydantic import SecretStr

from channels.wechat.config import WeChatAccount
from channels.wechat.simulated_platform import SimulatedPlatform
from harness.processes import Proc, schoolsim, sim_json
from schoolsim.wechat.follower import (
    Exchange,
    WeChatDelivery,
    customer_messages,
    wait_for_customer_messages,
)
from tests.conftest import make_settings, serve_app
from version import version

APP_ID = "wx5c0a1b2c3d4e5f60"
TOKEN = "jnufmWeChatToken2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APP_SECRET = "0123456789abcdef0123456789abcdef"
STUDENT = "2012052690"
PASSWORD = STUDENT[-6:]
# Generous: the machines are shared and slow; nothing here is timed.
PATIENT = {"api.deadline_s": 60, "budget.wait_s": 60}


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("school"), "fast") as proc:
        sim_json(proc.url, "/__sim/wechat/apps", {"app_id": APP_ID, "secret": APP_SECRET})
        yield proc


def secret_files(tmp: Path, app_secret: bool) -> dict[str, str]:
    files = {"token_file": TOKEN, "encoding_aes_key_file": AES_KEY}
    if app_secret:
        files["app_secret_file"] = APP_SECRET
    paths = {}
    for key, value in files.items():
        path = tmp / key
        path.write_text(value + "\n")
        path.chmod(0o600)
        paths[key] = str(path)
    return paths


def account_settings(tmp: Path, mode: str, app_secret: bool = True) -> dict[str, Any]:
    return {"name": "main", "app_id": APP_ID, "mode": mode, **secret_files(tmp, app_secret)}


@dataclass
class Chat:
    client: httpx.AsyncClient
    delivery: WeChatDelivery
    school: Proc

    async def say(self, openid: str, text: str) -> Exchange:
        return await self.delivery.say(openid, text)

    async def text(self, openid: str, text: str) -> str:
        """The passive reply's text (for a news reply: its articles' titles)."""
        exchange = await self.say(openid, text)
        assert exchange.refused == "", exchange.refused
        assert exchange.reply is not None, f"no passive reply to {text!r}: {exchange}"
        if exchange.reply.msg_type == "news":
            return "\n".join(a.title + " " + a.description for a in exchange.reply.articles)
        return exchange.reply.content

    async def bind(self, openid: str, academic: bool = True) -> None:
        reply = await self.text(openid, "绑定")
        ticket = ticket_of(reply)
        form = {"ticket": ticket, "student_id": STUDENT, "password": PASSWORD}
        if academic:
            form["academic_password"] = PASSWORD
        bound = await self.client.post("/v1/wechat/bind", data=form)
        assert bound.status_code == 201, bound.text


def ticket_of(reply: str) -> str:
    found = re.search(r"/static/wechat-bind\.html#ticket=([A-Za-z0-9_.~-]+)", reply)
    assert found is not None, reply
    return found.group(1)


@asynccontextmanager
async def chatting(
    db_url: str,
    school: Proc,
    tmp: Path,
    mode: Literal["plain", "compatible", "safe"] = "safe",
    app_secret: bool = True,
    overrides: dict[str, Any] | None = None,
) -> AsyncIterator[Chat]:
    settings = make_settings(
        db_url,
        school.url,
        **{
            "wechat.accounts": [account_settings(tmp, mode, app_secret)],
            "wechat.api_base_url": f"{school.url}/wechat-api",
            **PATIENT,
            **(overrides or {}),
        },
    )
    account = WeChatAccount(
        name="main",
        app_id=APP_ID,
        mode=mode,
        token=SecretStr(TOKEN),
        encoding_aes_key=SecretStr(AES_KEY),
    )
    async with serve_app(settings) as (client, _deps):
        delivery = WeChatDelivery(
            SimulatedPlatform(account),
            f"{client.base_url}/wechat",
            client,
            timeout_s=5.0,
            simulator_url=school.url,
        )
        yield Chat(client, delivery, school)


@pytest.mark.parametrize("mode", ["plain", "compatible", "safe"])
async def test_url_check_and_a_bound_query_in_every_mode(
    db_url: str, school: Proc, tmp_path: Path, mode: str
) -> None:
    Mode = Literal["plain", "compatible", "safe"]
    async with chatting(db_url, school, tmp_path, cast(Mode, mode)) as chat:
        assert await chat.delivery.verify_url("echo-2026")
        openid = f"oFollower{mode}000000000000000"[:28]
        assert "余额" in await chat.text(openid, "帮助")
        await chat.bind(openid)
        assert re.search(r"余额为 \d+\.\d\d 元", await chat.text(openid, "余额"))
        books = await chat.say(openid, "图书 python")
        assert books.reply is not None and books.reply.msg_type == "news"
        assert books.reply.articles and "/web/book?url=" in books.reply.articles[0].url


async def test_every_command(db_url: str, school: Proc, tmp_path: Path) -> None:
    async with chatting(
        db_url, school, tmp_path, overrides={"wechat.per_follower_per_min": 600}
    ) as chat:
        openid = "oCommandsFollower00000000001"
        # Before binding: the bind link, help, and what needs a student says how to bind.
        welcome = await chat.delivery.event(openid, "subscribe")
        assert welcome.reply is not None and "欢迎关注" in welcome.reply.content
        assert "#ticket=" in welcome.reply.content
        assert "还没有绑定" in await chat.text(openid, "余额")
        assert "没看懂" in await chat.text(openid, "今天天气怎么样")
        assert await chat.text(openid, "version") == f"jnu.fm {version()}"
        assert "想找什么书" in await chat.text(openid, "图书")
        # A password sent by mistake is refused, never echoed.
        refused = await chat.text(openid, "绑定 2012052690 052690")
        assert "不在聊天中接收密码" in refused and "052690" not in refused
        await chat.bind(openid)
        for asked, expected in [
            ("余额", r"余额为 \d+\.\d\d 元"),
            ("yue", r"余额为"),
            ("饭卡余额", r"余额为"),
            ("今日消费记录", r"今日消费记录"),
            ("card", r"今日消费记录"),
            ("近7天消费", r"近 7 天消费记录"),
            ("近 30 天消费", r"近 30 天消费记录"),
            ("课表", r"课|周"),
            ("kebiao", r"课|周"),
            ("今天课表", r"月\d+日"),
            ("明天的课", r"月\d+日"),
            ("本周课表", r"周"),
            ("考试", r"考试"),
            ("成绩", r"成绩"),
            ("ｙｕｅ", r"余额为"),  # full-width
            ("kebio", r"课|周"),  # one letter off
            ("餘額", r"余额为"),  # traditional
            ("book python", r"\S"),
            ("help", r"jnu.fm 可以帮你查"),
        ]:
            assert re.search(expected, await chat.text(openid, asked)), asked
        click = await chat.delivery.event(openid, "CLICK", "BALANCE")
        assert click.reply is not None and "余额为" in click.reply.content
        week = await chat.delivery.event(openid, "CLICK", "TIMETABLE_WEEK")
        assert week.reply is not None and week.reply.content
        # Unbinding ends the tokens: the next question asks to bind again.
        assert "已解除绑定" in await chat.text(openid, "解绑")
        assert "还没有绑定" in await chat.text(openid, "余额")
        assert "还没有绑定" in await chat.text(openid, "unbind")


async def test_a_follower_who_sends_too_often_is_told_so(
    db_url: str, school: Proc, tmp_path: Path
) -> None:
    async with chatting(
        db_url, school, tmp_path, overrides={"wechat.per_follower_per_min": 6}
    ) as chat:
        openid = "oTooOftenFollower00000000001"
        replies = [await chat.text(openid, "帮助") for _ in range(6)]
        assert any("太频繁" in reply for reply in replies)
        # Another follower is not held back by this one.
        assert "jnu.fm 可以帮你查" in await chat.text("oPatientFollower000000000001", "帮助")


async def test_forged_and_replayed_requests_are_refused(
    db_url: str, school: Proc, tmp_path: Path
) -> None:
    async with chatting(db_url, school, tmp_path, "safe") as chat:
        platform = chat.delivery.platform
        url = "/wechat"
        signed = platform.text("oForger000000000000000000001", "余额")
        forged = {**signed.query, "signature": "0" * 40}
        refused = await chat.client.post(url, params=forged, content=signed.body)
        assert refused.status_code == 403
        bad_msg = {**signed.query, "msg_signature": "0" * 40}
        assert (await chat.client.post(url, params=bad_msg, content=signed.body)).status_code == 403
        first = await chat.client.post(url, params=signed.query, content=signed.body)
        assert first.status_code == 200
        replayed = await chat.client.post(url, params=signed.query, content=signed.body)
        assert replayed.status_code == 403, "the same signed request again is a replay"
        check = platform.url_check("x")
        forged_check = {**check, "signature": "1" * 40}
        assert (await chat.client.get(url, params=forged_check)).status_code == 403
        assert (await chat.client.get("/wechat/nosuch", params=check)).status_code == 404
        not_xml = platform.text("oForger000000000000000000001", "余额")
        garbage = await chat.client.post(url, params=not_xml.query, content=b"<!DOCTYPE x [")
        assert garbage.status_code == 403


async def test_nothing_of_the_follower_in_clear_at_rest(
    db_url: str, school: Proc, tmp_path: Path
) -> None:
    async with chatting(db_url, school, tmp_path) as chat:
        openid = "oAtRestFollower0000000000001"
        await chat.bind(openid)
        answer = await chat.text(openid, "余额")
        balance = re.search(r"\d+\.\d\d", answer)
        assert balance is not None
        # The student number holds the password (its last 6 digits): not a leak.
        dump = (await database_dump(chat, db_url)).replace(STUDENT, "<student>")
        for secret in (openid, PASSWORD, balance.group(0)):
            assert secret not in dump, secret


async def database_dump(chat: Chat, db_url: str) -> str:
    """Every row of the WeChat tables and the tokens, as text."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db_url)
    rows: list[str] = []
    try:
        async with engine.connect() as db:
            for table in ("wechat_followers", "wechat_messages", "wechat_tickets", "tokens"):
                result = await db.execute(text(f"SELECT * FROM {table}"))
                rows.extend(repr(tuple(row)) for row in result)
    finally:
        await engine.dispose()
    assert rows
    return "\n".join(rows)


# A card center slower than WeChat waits: every page takes 3.5 s, so today's transactions
# (the query form, then its answer: two pages at least, on a school session still open)
# take 7 s or more, longer than WeChat's 5 s whatever the machine; and, with up to three
# pages, less than WeChat's four deliveries (about 20 s).
SLOW_CARD = {"latency_ms_median": 3500, "latency_ms_min": 3500, "latency_sigma": 0}


@pytest.fixture
def slow_school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("slow"), "jnu-2013") as proc:
        sim_json(proc.url, "/__sim/wechat/apps", {"app_id": APP_ID, "secret": APP_SECRET})
        yield proc


async def bind_then_go_cold(chat: Chat, openid: str) -> None:
    """Bind (which warms the balance, not today's transactions), then slow the school:
    today's transactions are asked of it, and no copy of them can stand in."""
    await chat.bind(openid, academic=False)
    sim_json(chat.school.url, "/__sim/card/control", SLOW_CARD)


async def test_a_cold_query_answered_by_customer_message(
    db_url: str, slow_school: Proc, tmp_path: Path
) -> None:
    async with chatting(db_url, slow_school, tmp_path, "safe") as chat:
        openid = "oColdCustomerFollower0000001"
        await bind_then_go_cold(chat, openid)
        exchange = await chat.say(openid, "今日消费记录")
        assert exchange.reply is not None, exchange
        assert "正在" in exchange.reply.content, "told to wait, inside WeChat's 5 s"
        assert all(a.status == 200 for a in exchange.attempts)
        sent = await wait_for_customer_messages(
            chat.client, slow_school.url, openid, 1, within_s=90
        )
        assert "今日消费记录" in sent[0].content
        # Exactly one answer: nothing more comes.
        assert len(await customer_messages(chat.client, slow_school.url, openid)) == 1


async def test_a_cold_query_answered_on_wechats_retry(
    db_url: str, slow_school: Proc, tmp_path: Path
) -> None:
    # No app secret: no customer messages; the answer waits for WeChat's next delivery.
    async with chatting(
        db_url,
        slow_school,
        tmp_path,
        "safe",
        app_secret=False,
    ) as chat:
        openid = "oColdRetryFollower0000000001"
        await bind_then_go_cold(chat, openid)
        exchange = await chat.say(openid, "今日消费记录")
        assert exchange.attempts[0].status is None, "the first delivery was held past 5 s"
        assert len(exchange.attempts) >= 2
        assert exchange.reply is not None, exchange
        assert "今日消费记录" in exchange.reply.content, exchange.reply
        assert await customer_messages(chat.client, slow_school.url, openid) == []


async def test_message_records_are_pruned_after_their_keeping(
    db_url: str, school: Proc, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from services.leases import LeaseStore
    from services.retention import Retention

    async with chatting(db_url, school, tmp_path) as chat:
        openid = "oPrunedFollower0000000000001"
        await chat.bind(openid)
        for asked in ("余额", "今日消费记录"):
            await chat.text(openid, asked)
        settings = make_settings(db_url, school.url)
        engine = create_async_engine(db_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)

        async def count() -> int:
            async with sessions() as db:
                found = await db.scalar(text("SELECT COUNT(*) FROM wechat_messages"))
                return int(found or 0)

        def pruner(at: datetime) -> Retention:
            return Retention(sessions, LeaseStore(sessions, lambda: at), settings, lambda: at)

        try:
            now = datetime.now(UTC)
            assert await count() == 2
            soon = pruner(now + timedelta(seconds=60))
            assert (await soon.prune_table("wechat_messages")).deleted == 0
            keep = settings.wechat.messages_keep_s
            later = pruner(now + timedelta(seconds=keep + 60))
            assert (await later.prune_table("wechat_messages")).deleted == 2
            assert await count() == 0
        finally:
            await engine.dispose()


async def test_followers_are_answered_while_the_database_is_away(
    mysql_url: str, school: Proc, tmp_path: Path
) -> None:
    """The records, the nonces and the bindings live in the database: while it is away,
    a delivery answers on its own (memory's replay guard, the help, the school's failure
    in the chat's words), never an HTTP error WeChat would show as a broken account."""
    from sqlalchemy.engine import make_url

    from tests.dbproxy import DatabaseProxy

    url = make_url(mysql_url)
    proxy = DatabaseProxy(url.host or "127.0.0.1", url.port or 3306)
    await proxy.start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        async with chatting(through, school, tmp_path) as chat:
            openid = "oOutageFollower0000000000001"
            await chat.bind(openid)
            await chat.text(openid, "余额")
            await proxy.cut()
            for asked in ("帮助", "余额", "今日消费记录"):
                exchange = await chat.say(openid, asked)
                assert exchange.attempts[-1].status == 200, (asked, exchange.attempts)
                assert exchange.reply is not None, asked
                said = exchange.reply.content
                assert re.search(r"可以帮你查|余额为|今日消费记录|暂时出了点问题", said), said
            await proxy.start()
    finally:
        await proxy.close()
