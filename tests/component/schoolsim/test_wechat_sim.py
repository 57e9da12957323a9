"""WeChat's side as jnufm meets it on the wire: the simulated official-account API (a real
simulator process), and a follower's deliveries to a callback URL served in the test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from channels.wechat.config import Mode, WeChatAccount
from channels.wechat.endpoint import AccountEndpoint, CallbackQuery
from channels.wechat.messages import TextMessage
from channels.wechat.replay import MemoryNonceStore, ReplayGuard
from channels.wechat.reply_xml import SUCCESS, text_reply
from channels.wechat.simulated_platform import SimulatedPlatform
from harness.processes import Proc, schoolsim, sim_json
from schoolsim.wechat.follower import (
    WeChatDelivery,
    customer_messages,
    wait_for_customer_messages,
)

TOKEN = "callbacktoken123"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30, trust_env=False) as client:
        yield client


def new_app_id() -> str:
    return "wx" + secrets.token_hex(8)


def new_openid() -> str:
    return "o" + secrets.token_urlsafe(20).replace("-", "a").replace("_", "b")


def register(sim: Proc, **options: Any) -> tuple[str, str]:
    app_id, secret = new_app_id(), secrets.token_hex(16)
    answer = sim_json(
        sim.url, "/__sim/wechat/apps", {"app_id": app_id, "secret": secret, **options}
    )
    assert answer["ok"] is True
    return app_id, secret


class Api:
    """The simulated API as a client calls it."""

    def __init__(self, sim: Proc, http: httpx.AsyncClient) -> None:
        self.base = f"{sim.url}/wechat-api"
        self.http = http

    async def token(self, app_id: str, secret: str, grant: str = "client_credential") -> Any:
        params = {"grant_type": grant, "appid": app_id, "secret": secret}
        response = await self.http.get(f"{self.base}/cgi-bin/token", params=params)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()

    async def send(self, token: str, message: Any) -> int:
        body = message if isinstance(message, bytes) else json.dumps(message).encode()
        response = await self.http.post(
            f"{self.base}/cgi-bin/message/custom/send", params={"access_token": token}, content=body
        )
        assert response.status_code == 200
        errcode = response.json()["errcode"]
        assert isinstance(errcode, int)
        return errcode

    async def text(self, token: str, openid: str, content: str = "hello") -> int:
        return await self.send(
            token, {"touser": openid, "msgtype": "text", "text": {"content": content}}
        )


@pytest.fixture
def api(sim: Proc, http: httpx.AsyncClient) -> Api:
    return Api(sim, http)


# --- the API ---------------------------------------------------------------------------


async def test_token_fetch_and_its_refusals(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim)
    got = await api.token(app_id, secret)
    assert got["expires_in"] == 7200
    assert len(got["access_token"]) == 136
    assert (await api.token(app_id, secret + "x"))["errcode"] == 40125
    assert (await api.token(new_app_id(), secret))["errcode"] == 40013
    assert (await api.token(app_id, secret, grant="password"))["errcode"] == 40002
    assert (await api.token(app_id, ""))["errcode"] == 41004
    stats = sim_json(sim.url, f"/__sim/wechat/apps/{app_id}")
    assert stats["tokens_fetched"] == 1
    assert stats["refused"] == {"40002": 1, "40125": 1, "41004": 1}


async def test_text_and_news_received_in_order(
    sim: Proc, api: Api, http: httpx.AsyncClient
) -> None:
    app_id, secret = register(sim)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()
    before = datetime.now(UTC)
    assert await api.text(token, openid, "余额 123.45 元") == 0
    article = {"title": "Python", "description": "3 copies", "url": "http://x/", "picurl": ""}
    news = {"touser": openid, "msgtype": "news", "news": {"articles": [article]}}
    assert await api.send(token, news) == 0
    assert await api.text(token, openid, "third") == 0
    assert await api.text(token, new_openid(), "someone else") == 0

    got = await customer_messages(http, sim.url, openid)
    assert [m.msgtype for m in got] == ["text", "news", "text"]
    assert [m.content for m in got] == ["余额 123.45 元", "", "third"]
    assert got[1].articles[0].title == "Python" and got[1].articles[0].description == "3 copies"
    assert all(m.app_id == app_id and m.touser == openid for m in got)
    assert got[0].seq < got[1].seq < got[2].seq
    assert got[0].at >= before.replace(microsecond=0)
    assert sim_json(sim.url, f"/__sim/wechat/apps/{app_id}")["accepted"] == 4


async def test_bad_messages_are_refused_with_their_errcodes(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()
    article = {"title": "t", "description": "", "url": "", "picurl": ""}
    cases: list[tuple[Any, int]] = [
        (b"not json", 47001),
        ({"touser": "", "msgtype": "text", "text": {"content": "x"}}, 40003),
        ({"touser": openid, "msgtype": "voice", "voice": {}}, 40008),
        ({"touser": openid, "msgtype": "text", "text": {"content": "  "}}, 44004),
        ({"touser": openid, "msgtype": "news", "news": {"articles": [article, article]}}, 45008),
        ({"touser": openid, "msgtype": "news", "news": {"articles": []}}, 47001),
    ]
    for message, errcode in cases:
        assert await api.send(token, message) == errcode
    assert await api.text("", openid) == 41001
    assert await api.text("x" * 136, openid) == 40001
    assert sim_json(sim.url, f"/__sim/wechat/apps/{app_id}")["accepted"] == 0


async def test_previous_token_lasts_its_overlap_only(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim)
    first = (await api.token(app_id, secret))["access_token"]
    second = (await api.token(app_id, secret))["access_token"]
    assert first != second
    openid = new_openid()
    assert await api.text(first, openid) == 0  # within the 300 s overlap
    assert await api.text(second, openid) == 0

    quick_id, quick_secret = register(sim, overlap_s=0)
    old = (await api.token(quick_id, quick_secret))["access_token"]
    new = (await api.token(quick_id, quick_secret))["access_token"]
    assert await api.text(old, openid) == 40001
    assert await api.text(new, openid) == 0


async def test_token_past_its_time_is_expired(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim, expires_in=1)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()
    codes = []
    for _ in range(200):  # the token lasts one second; bounded by count, not time
        codes.append(await api.text(token, openid))
        if codes[-1] != 0:
            break
        await asyncio.sleep(0.05)
    assert codes[-1] == 42001
    assert set(codes[:-1]) <= {0}


async def test_revoked_tokens_are_invalid(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim)
    token = (await api.token(app_id, secret))["access_token"]
    assert sim_json(sim.url, f"/__sim/wechat/apps/{app_id}/revoke", {})["ok"] is True
    assert await api.text(token, new_openid()) == 40001


async def test_daily_quota(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim, daily_quota=2)
    token = (await api.token(app_id, secret))["access_token"]
    results = [await api.text(token, new_openid()) for _ in range(4)]
    assert results == [0, 0, 45009, 45009]
    stats = sim_json(sim.url, f"/__sim/wechat/apps/{app_id}")
    assert stats["sent_today"] == 2 and stats["refused"] == {"45009": 2}


async def test_follower_count_and_window(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim, follower_limit=3)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()
    assert [await api.text(token, openid) for _ in range(4)] == [0, 0, 0, 45047]
    wrote = {"app_id": app_id, "openid": openid}
    assert sim_json(sim.url, "/__sim/wechat/followers/wrote", wrote)["ok"] is True
    assert await api.text(token, openid) == 0

    strict_id, strict_secret = register(sim, require_wrote=True)
    strict = (await api.token(strict_id, strict_secret))["access_token"]
    stranger = new_openid()
    assert await api.text(strict, stranger) == 45015
    sim_json(sim.url, "/__sim/wechat/followers/wrote", {"app_id": strict_id, "openid": stranger})
    assert await api.text(strict, stranger) == 0


async def test_drill_fails_the_next_calls(sim: Proc, api: Api) -> None:
    app_id, secret = register(sim)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()
    sim_json(sim.url, "/__sim/wechat/drill", {"errcode": -1, "count": 2, "calls": "send"})
    assert (await api.token(app_id, secret))["access_token"]  # token calls unaffected
    token = (await api.token(app_id, secret))["access_token"]
    assert [await api.text(token, openid) for _ in range(3)] == [-1, -1, 0]
    sim_json(sim.url, "/__sim/wechat/drill", {"errcode": 40164, "count": 1, "calls": "token"})
    assert (await api.token(app_id, secret))["errcode"] == 40164
    assert "access_token" in await api.token(app_id, secret)


async def test_registration_is_checked_and_reset_forgets(sim: Proc, api: Api) -> None:
    bad = [
        {"app_id": "nope", "secret": "0123456789"},
        {"app_id": new_app_id(), "secret": "short"},
        {"app_id": new_app_id(), "secret": "0123456789", "daily_quota": -1},
        {"app_id": new_app_id(), "secret": "0123456789", "colour": "red"},
    ]
    async with httpx.AsyncClient(trust_env=False) as client:
        for body in bad:
            response = await client.post(f"{sim.url}/__sim/wechat/apps", json=body)
            assert response.status_code == 400 and response.json()["error"]
    app_id, secret = register(sim)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()
    assert await api.text(token, openid) == 0
    stats = sim_json(sim.url, "/__sim/wechat/stats")
    assert stats["accepted"] >= 1 and stats["tokens_fetched"] >= 1 and stats["system"] == "wechat"
    sim_json(sim.url, "/__sim/wechat/reset", {})
    stats = sim_json(sim.url, "/__sim/wechat/stats")
    assert (stats["accepted"], stats["tokens_fetched"], stats["refused"]) == (0, 0, {})
    assert await api.text(token, openid) == 0  # apps and tokens survive a plain reset
    sim_json(sim.url, "/__sim/wechat/reset", {"apps": True})
    assert await api.text(token, openid) == 40001
    assert (await api.token(app_id, secret))["errcode"] == 40013


async def test_wait_for_customer_messages(sim: Proc, api: Api, http: httpx.AsyncClient) -> None:
    app_id, secret = register(sim)
    token = (await api.token(app_id, secret))["access_token"]
    openid = new_openid()

    async def later() -> None:
        await asyncio.sleep(0.2)
        await api.text(token, openid, "late answer")

    task = asyncio.create_task(later())
    got = await wait_for_customer_messages(http, sim.url, openid, count=1, within_s=30)
    await task
    assert [m.content for m in got] == ["late answer"]
    with pytest.raises(TimeoutError):
        await wait_for_customer_messages(http, sim.url, openid, count=2, within_s=0.3)


# --- the follower against a callback URL -------------------------------------------------


def wechat_account(mode: Mode) -> WeChatAccount:
    return WeChatAccount(
        name="jnu",
        app_id="wx2c2769f8efd9abc2",
        mode=mode,
        token=SecretStr(TOKEN),
        encoding_aes_key=SecretStr(AES_KEY),
    )


@dataclass
class Seen:
    """What the callback received: per attempt, the message's id (or CreateTime for an
    event), the nonce and the timestamp."""

    attempts: list[tuple[int, str, str]] = field(default_factory=list)


class CallbackHandler(RequestHandler):
    """An account's callback URL: checks the request as jnufm does, then behaves as told."""

    def initialize(self, endpoint: AccountEndpoint, seen: Seen, behaviour: str) -> None:
        self.endpoint = endpoint
        self.seen = seen
        self.behaviour = behaviour
        self.gone = asyncio.Event()

    def on_connection_close(self) -> None:
        self.gone.set()

    def get(self) -> None:
        query = CallbackQuery.from_arguments(
            {k: self.get_query_argument(k) for k in self.request.query_arguments}
        )
        self.write(query.echostr)

    async def post(self) -> None:
        query = CallbackQuery.from_arguments(
            {k: self.get_query_argument(k) for k in self.request.query_arguments}
        )
        inbound = await self.endpoint.receive(query, self.request.body)
        message = inbound.message
        key = (
            message.msg_id if isinstance(message, TextMessage) else int(message.created.timestamp())
        )
        first = all(seen != key for seen, _, _ in self.seen.attempts)
        self.seen.attempts.append((key, query.nonce, query.timestamp))
        if self.behaviour == "never" or (self.behaviour == "slow_first" and first):
            # Longer than the follower waits; ends early when the follower gives up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.gone.wait(), 3.0)
            if self.gone.is_set():
                return
        if self.behaviour == "success":
            self.write(SUCCESS)
            return
        text = f"got {message.content}" if isinstance(message, TextMessage) else "welcome"
        reply = text_reply(message, text, datetime.now(UTC))
        if self.behaviour == "plaintext":
            self.write(reply)
            return
        self.write(self.endpoint.reply(inbound, reply))


@pytest.fixture
async def callback() -> AsyncIterator[Callable[..., tuple[str, Seen]]]:
    servers: list[HTTPServer] = []

    def start(behaviour: str, mode: Mode = "safe") -> tuple[str, Seen]:
        seen = Seen()
        endpoint = AccountEndpoint(wechat_account(mode), ReplayGuard(MemoryNonceStore()))
        app = Application(
            [
                (
                    r"/wechat",
                    CallbackHandler,
                    {"endpoint": endpoint, "seen": seen, "behaviour": behaviour},
                )
            ]
        )
        server = HTTPServer(app)
        sockets = bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        servers.append(server)
        return f"http://127.0.0.1:{sockets[0].getsockname()[1]}/wechat", seen

    yield start
    for server in servers:
        server.stop()
        await server.close_all_connections()


def delivery(
    url: str, http: httpx.AsyncClient, mode: Mode = "safe", timeout_s: float = 1.0
) -> WeChatDelivery:
    return WeChatDelivery(SimulatedPlatform(wechat_account(mode)), url, http, timeout_s=timeout_s)


async def test_an_answer_at_once_is_one_attempt(callback: Any, http: httpx.AsyncClient) -> None:
    url, seen = callback("at_once")
    exchange = await delivery(url, http).say("ofollower", "余额")
    assert [a.status for a in exchange.attempts] == [200]
    assert exchange.answered and exchange.answered_passively
    assert exchange.reply is not None and exchange.reply.content == "got 余额"
    assert exchange.reply.to_user == "ofollower"
    assert [key for key, _, _ in seen.attempts] == [exchange.msg_id]


async def test_a_late_answer_is_retried_with_the_same_msg_id(
    callback: Any, http: httpx.AsyncClient
) -> None:
    url, seen = callback("slow_first")
    exchange = await delivery(url, http, timeout_s=1.0).say("ofollower", "课表")
    assert [a.status for a in exchange.attempts] == [None, 200]
    assert exchange.reply is not None and exchange.reply.content == "got 课表"
    assert len(seen.attempts) == 2
    (first_id, first_nonce, _), (second_id, second_nonce, _) = seen.attempts
    assert first_id == second_id == exchange.msg_id
    assert first_nonce != second_nonce


async def test_no_answer_at_all_ends_after_the_retries(
    callback: Any, http: httpx.AsyncClient
) -> None:
    url, seen = callback("never")
    exchange = await delivery(url, http, timeout_s=0.5).say("ofollower", "hello")
    assert [a.status for a in exchange.attempts] == [None, None, None, None]
    assert not exchange.answered and exchange.reply is None
    assert len({key for key, _, _ in seen.attempts}) == 1 and len(seen.attempts) == 4
    assert len({nonce for _, nonce, _ in seen.attempts}) == 4


async def test_success_is_no_reply(callback: Any, http: httpx.AsyncClient) -> None:
    url, _ = callback("success")
    exchange = await delivery(url, http).say("ofollower", "hello")
    assert exchange.answered and not exchange.answered_passively and exchange.refused == ""


async def test_a_plaintext_reply_in_safe_mode_is_refused(
    callback: Any, http: httpx.AsyncClient
) -> None:
    url, _ = callback("plaintext")
    exchange = await delivery(url, http).say("ofollower", "hello")
    assert exchange.answered and exchange.reply is None
    assert "plaintext" in exchange.refused
    plain_url, _ = callback("plaintext", "plain")
    shown = await delivery(plain_url, http, mode="plain").say("ofollower", "hello")
    assert shown.reply is not None and shown.reply.content == "got hello"


async def test_an_event_retry_keeps_its_create_time(callback: Any, http: httpx.AsyncClient) -> None:
    url, seen = callback("slow_first")
    exchange = await delivery(url, http, timeout_s=1.0).event("ofollower", "subscribe")
    assert exchange.msg_id is None
    assert [a.status for a in exchange.attempts] == [None, 200]
    assert exchange.reply is not None and exchange.reply.content == "welcome"
    (first, n1, _), (second, n2, _) = seen.attempts
    assert first == second and n1 != n2


async def test_verify_url(callback: Any, http: httpx.AsyncClient) -> None:
    url, _ = callback("at_once")
    assert await delivery(url, http).verify_url("echo123") is True
    assert await delivery(url.replace("/wechat", "/nowhere"), http).verify_url("echo123") is False


async def test_delivery_tells_the_api_the_follower_wrote(
    sim: Proc, api: Api, callback: Any, http: httpx.AsyncClient
) -> None:
    app_id, secret = register(sim, require_wrote=True)
    account = wechat_account("plain").model_copy(update={"app_id": app_id})
    url, _ = callback("at_once", "plain")
    openid = new_openid()
    token = (await api.token(app_id, secret))["access_token"]
    assert await api.text(token, openid) == 45015
    follower = WeChatDelivery(SimulatedPlatform(account), url, http, simulator_url=sim.url)
    await follower.say(openid, "hello")
    assert await api.text(token, openid) == 0
