"""Watches through the whole server, its own loops running as a worker runs them: a
watch made in a WeChat chat or through /v1/watches, polled on spare capacity, a change
made at the simulated school, the message delivered (by customer message to the
follower; by a signed webhook) exactly once, on SQLite and MySQL.

Nothing is timed: each step waits (bounded) for what the previous one caused."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from harness.processes import Proc, schoolsim, sim_json
from schoolsim.wechat.follower import customer_messages, wait_for_customer_messages
from tests.component.test_outbox import Receiver
from tests.component.test_wechat_account import APP_ID, APP_SECRET, STUDENT, chatting
from tests.conftest import make_settings, serve_app

# Polled every 10 s (the least a card watch allows), without jitter; a poll right
# after the student's own question asks the school again.
QUICK = {
    "watches.poll_s.card_transaction": 10,
    "watches.jitter": 0,
    "cache.fresh_min_interval_s": 0,
    "api.deadline_s": 60,
    "budget.wait_s": 60,
}


@pytest.fixture(scope="module")
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school of this module's own (purchases are made in it), with the WeChat app."""
    with schoolsim(tmp_path_factory.mktemp("school"), "fast") as proc:
        sim_json(proc.url, "/__sim/wechat/apps", {"app_id": APP_ID, "secret": APP_SECRET})
        yield proc


async def until(check: Callable[[], Awaitable[bool]], what: str, within_s: float = 90) -> None:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within_s
    while not await check():
        assert loop.time() < give_up, f"never: {what}"
        await asyncio.sleep(0.2)


async def scalar(db_url: str, sql: str, **params: Any) -> Any:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as db:
            return await db.scalar(text(sql), params)
    finally:
        await engine.dispose()


async def polls_of(db_url: str, watch_id: int) -> str | None:
    found = await scalar(db_url, "SELECT last_polled_at FROM watches WHERE id = :id", id=watch_id)
    return None if found is None else str(found)


async def watch_ids(db_url: str) -> list[int]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as db:
            return [int(r[0]) for r in await db.execute(text("SELECT id FROM watches"))]
    finally:
        await engine.dispose()


async def one_more_poll(db_url: str, watch_id: int) -> None:
    before = await polls_of(db_url, watch_id)

    async def moved() -> bool:
        now = await polls_of(db_url, watch_id)
        return now is not None and now != before

    await until(moved, f"watch {watch_id} polled again")


async def test_a_purchase_reaches_the_follower_who_asked_in_chat(
    db_url: str, school: Proc, tmp_path: Path
) -> None:
    async with chatting(db_url, school, tmp_path, overrides=QUICK) as chat:
        openid = "oWatchingFollower00000000001"
        await chat.bind(openid, academic=False)
        made = await chat.text(openid, "消费提醒")
        assert "已开启消费提醒" in made, made
        assert "消费提醒" in await chat.text(openid, "提醒")
        [watch_id] = await watch_ids(db_url)
        # The first poll sets the baseline and tells nothing.
        await until(lambda: polls_of_set(db_url, watch_id), "the baseline poll")
        sim_json(
            school.url,
            f"/__sim/students/{STUDENT}/spend",
            {"amount": "3.70", "position": "第二饭堂"},
        )
        sent = await wait_for_customer_messages(chat.client, school.url, openid, 1, within_s=90)
        assert "3.70" in sent[0].content and "第二饭堂" in sent[0].content, sent[0].content
        # Once: another poll finds nothing new.
        await one_more_poll(db_url, watch_id)
        assert len(await customer_messages(chat.client, school.url, openid)) == 1
        assert "已取消 1 个提醒" in await chat.text(openid, "取消提醒")
        assert "还没有开启提醒" in await chat.text(openid, "提醒")


async def polls_of_set(db_url: str, watch_id: int) -> bool:
    return await polls_of(db_url, watch_id) is not None


async def test_a_purchase_reaches_a_signed_webhook(db_url: str, school: Proc) -> None:
    receiver = Receiver()
    await receiver.start()
    student = "2012052691"
    password = student[-6:]
    settings = make_settings(db_url, school.url, **{**QUICK, "watches.webhook_allow_private": True})
    try:
        async with serve_app(settings) as (client, _deps):
            made = await client.post(
                "/v1/watches",
                auth=(student, password),
                json={"kind": "card_transaction", "channel": "webhook", "target": receiver.url},
            )
            assert made.status_code == 201, made.text
            secret = made.json()["secret"]
            watch_id = int(made.json()["watch"]["id"])
            await until(lambda: polls_of_set(db_url, watch_id), "the baseline poll")
            sim_json(school.url, f"/__sim/students/{student}/spend", {"amount": "8.80"})

            async def arrived() -> bool:
                return len(receiver.received) >= 1

            await until(arrived, "the webhook")
            got = receiver.received[0]
            stamp = got.headers["x-jnufm-timestamp"]
            expected = hmac.new(secret.encode(), stamp.encode() + b"." + got.body, hashlib.sha256)
            assert got.headers["x-jnufm-signature"] == "sha256=" + expected.hexdigest()
            assert re.search(r"8\.80", got.body.decode())
            await one_more_poll(db_url, watch_id)
            assert len(receiver.received) == 1
            listed = await client.get("/v1/watches", auth=(student, password))
            assert listed.status_code == 200
            [watch] = listed.json()["watches"]
            assert [m["status"] for m in watch["messages"]] == ["delivered"]
    finally:
        await receiver.stop()
