"""Delivering the watches' outbox (services/watches/outbox.py) through each channel, on a
real database (SQLite, and MySQL when JNUFM_TEST_MYSQL_URL is set): webhooks to a
receiver served here over real HTTP, e-mail to an SMTP server (aiosmtpd) run here,
WeChat through the simulated API (a simulator process). The rows are written here as
the polling side writes them (a Watch, its outbox messages, sealed); the clock is moved
by hand and each step is one `deliver_due`."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.config import WeChatAccount
from channels.wechat.config import WeChatSettings as WeChatChannelSettings
from channels.wechat.customer import CustomerMessages
from channels.wechat.notify import WeChatDeliverer
from db import outbox_delivery
from db import retention as retention_queries
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import OutboxMessage, Watch
from harness.processes import Proc, free_port, schoolsim, sim_json
from observability import metrics
from observability.dashboard import figures, read
from schoolsim.wechat.follower import customer_messages
from services.retention import plan
from services.vault import SessionVault
from services.watches.email import EmailDeliverer, message_id, smtp_password
from services.watches.notices import Notice, event_key, seal_field, seal_notice
from services.watches.outbox import Deliverer, OutboxDelivery, Target
from services.watches.webhook import WebhookDeliverer, public_address, sign, url_problem
from settings import DatabaseSettings, Settings, SmtpSettings, WatchesSettings, load_settings
from tests.conftest import TEST_SECRET

T0 = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
STUDENT = "2012052690"
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def move(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def databases(db_url: str) -> AsyncIterator[list[async_sessionmaker[AsyncSession]]]:
    """Two workers' session makers on one migrated database."""
    engines = [make_engine(DatabaseSettings(url=db_url)) for _ in range(2)]
    await migrate(engines[0])
    yield [make_sessionmaker(engine) for engine in engines]
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def vault() -> SessionVault:
    return SessionVault(TEST_SECRET.encode())


# --- the rows, as the polling side writes them ------------------------------------------


async def add_watch(
    sessions: async_sessionmaker[AsyncSession],
    vault: SessionVault,
    channel: str,
    target: str,
    secret: str | None = None,
    student: str = STUDENT,
) -> int:
    async with sessions.begin() as db:
        watch = Watch(
            student_id=student,
            system="card",
            token_id=1,
            kind="card_transaction",
            param="",
            channel=channel,
            target=seal_field(vault, student, "target", target),
            secret=None if secret is None else seal_field(vault, student, "secret", secret),
            client="test",
            created_at=T0,
            next_poll_at=T0,
            failures=0,
        )
        db.add(watch)
        await db.flush()
        return watch.id


async def add_message(
    sessions: async_sessionmaker[AsyncSession],
    vault: SessionVault,
    watch_id: int,
    channel: str,
    n: int = 0,
    student: str = STUDENT,
) -> Notice:
    notice = Notice(
        event_key=event_key(watch_id, "card_transaction", f"{n}:{secrets.token_hex(4)}"),
        watch_id=watch_id,
        student_id=student,
        kind="card_transaction",
        title="校园卡消费提醒",
        text=f"你的校园卡在第一食堂消费 {n}.50 元（12:01）。",
        text_en=f"Your campus card paid {n}.50 yuan at Canteen 1 (12:01).",
        facts={"amount": f"{n}.50", "place": "第一食堂", "time": "2026-12-07T12:01:00+08:00"},
        seen_at="2026-12-07T12:02:00+08:00",
    )
    async with sessions.begin() as db:
        db.add(
            OutboxMessage(
                watch_id=watch_id,
                event_key=notice.event_key,
                channel=channel,
                payload=seal_notice(vault, notice),
                created_at=T0,
                attempts=0,
                next_attempt_at=T0,
                last_error="",
            )
        )
    return notice


async def row(sessions: async_sessionmaker[AsyncSession], key: str) -> OutboxMessage:
    async with sessions() as db:
        found = await db.scalar(select(OutboxMessage).where(OutboxMessage.event_key == key))
    assert found is not None
    return found


async def watch_failures(sessions: async_sessionmaker[AsyncSession], watch_id: int) -> int:
    async with sessions() as db:
        found = await db.get(Watch, watch_id)
    assert found is not None
    return found.failures


# --- a webhook receiver -----------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return data


@dataclass
class Receiver:
    """A tiny HTTP server: records each request, answers the next status of `statuses`
    (200 when none is left), or holds the request while `hold` is set."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    hold: bool = False
    # Answer 200 with a body of this many bytes (0: "ok"), and count what was written.
    huge: int = 0
    written: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.close()

    def keys(self) -> list[str]:
        return [r.headers["x-jnufm-event"] for r in self.received]

    async def _write_huge(self, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {self.huge}\r\n\r\n".encode())
        chunk = b"x" * 65536
        while self.written < self.huge:
            writer.write(chunk)
            await writer.drain()  # raises once the client has closed the connection
            self.written += len(chunk)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(headers, body))
            self.arrived.set()
            if self.hold:
                await self.release.wait()
            status = self.statuses.pop(0) if self.statuses else 200
            if self.huge:
                await self._write_huge(writer)
                return
            extra = "Location: http://127.0.0.1:1/elsewhere\r\n" if 300 <= status < 400 else ""
            writer.write(
                f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\n"
                "Connection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # (the client closed the connection)
        finally:
            writer.close()
            self.finished.set()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.stop()


def settings(**values: Any) -> WatchesSettings:
    base: dict[str, Any] = {
        "webhook_allow_private": True,
        "delivery_attempts": 4,
        "delivery_backoff_s": 10.0,
        "delivery_lease_s": 60.0,
        "webhook_timeout_s": 30.0,
    }
    return WatchesSettings(**{**base, **values})


def delivery(
    sessions: async_sessionmaker[AsyncSession],
    vault: SessionVault,
    clock: Clock,
    config: WatchesSettings,
    *deliverers: Deliverer,
) -> OutboxDelivery:
    return OutboxDelivery(sessions, vault, config, deliverers or [WebhookDeliverer(config)], clock)


# --- webhook ----------------------------------------------------------------------------


async def test_webhook_delivered_and_signed(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    clock = Clock()
    secret = secrets.token_hex(16)
    watch = await add_watch(db, vault, "webhook", receiver.url, secret)
    notice = await add_message(db, vault, watch, "webhook", 3)
    worker = delivery(db, vault, clock, settings())
    assert await worker.deliver_due() == 1
    assert await worker.deliver_due() == 0
    [got] = receiver.received
    assert got.headers["x-jnufm-event"] == notice.event_key
    timestamp = got.headers["x-jnufm-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + got.body, hashlib.sha256)
    assert got.headers["x-jnufm-signature"] == "sha256=" + expected.hexdigest()
    assert got.headers["x-jnufm-signature"] == sign(secret, timestamp, got.body)
    assert got.headers["content-type"].startswith("application/json")
    body = got.json
    assert body["event_key"] == notice.event_key and body["watch_id"] == watch
    assert body["title"] == "校园卡消费提醒" and "3.50" in body["text"]
    assert body["facts"]["place"] == "第一食堂" and body["text_en"] == notice.text_en
    sent_at = datetime.fromtimestamp(int(timestamp), UTC).isoformat()
    assert body["sent_at"] == sent_at  # the signing time (the real one: receivers check it)
    stored = await row(db, notice.event_key)
    assert stored.delivered_at == T0 and stored.attempts == 1 and stored.failed_at is None
    assert stored.holder is None and stored.next_attempt_at is None
    # Nothing secret kept in the clear.
    assert secret not in stored.payload and "第一食堂" not in stored.payload


async def test_retried_with_backoff_then_delivered(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "webhook", receiver.url, "s3cret")
    notice = await add_message(db, vault, watch, "webhook")
    worker = delivery(db, vault, clock, settings())
    receiver.statuses = [500, 429, 408]
    assert await worker.deliver_due() == 1
    first = await row(db, notice.event_key)
    assert first.attempts == 1 and first.next_attempt_at == T0 + timedelta(seconds=10)
    assert "HTTP 500" in first.last_error and first.delivered_at is None
    assert await worker.deliver_due() == 0  # not due yet
    clock.move(10)
    assert await worker.deliver_due() == 1
    assert (await row(db, notice.event_key)).next_attempt_at == clock.now + timedelta(seconds=20)
    clock.move(20)
    assert await worker.deliver_due() == 1
    assert (await row(db, notice.event_key)).next_attempt_at == clock.now + timedelta(seconds=40)
    clock.move(40)
    assert await worker.deliver_due() == 1
    done = await row(db, notice.event_key)
    assert done.delivered_at == clock.now and done.attempts == 4 and done.failed_at is None
    assert receiver.keys() == [notice.event_key] * 4
    assert await watch_failures(db, watch) == 0


@pytest.mark.parametrize("status", [404, 410, 400, 302])
async def test_given_up_on_a_permanent_answer(
    databases: list[Any], vault: SessionVault, receiver: Receiver, status: int
) -> None:
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "webhook", receiver.url, "s3cret")
    notice = await add_message(db, vault, watch, "webhook")
    worker = delivery(db, vault, clock, settings())
    receiver.statuses = [status]
    assert await worker.deliver_due() == 1
    stored = await row(db, notice.event_key)
    assert stored.failed_at == T0 and stored.delivered_at is None and stored.attempts == 1
    assert f"HTTP {status}" in stored.last_error
    assert await watch_failures(db, watch) == 1
    clock.move(86400)
    assert await worker.deliver_due() == 0
    assert len(receiver.received) == 1  # a redirect is not followed either


async def test_a_huge_answer_is_not_read(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    watch = await add_watch(db, vault, "webhook", receiver.url, "s")
    notice = await add_message(db, vault, watch, "webhook")
    receiver.huge = 1 << 30  # 1 GiB: far more than socket buffers hold
    assert await delivery(db, vault, Clock(), settings()).deliver_due() == 1
    assert (await row(db, notice.event_key)).delivered_at == T0
    async with asyncio.timeout(60):  # the receiver sees the connection closed
        await receiver.finished.wait()
    assert receiver.written < receiver.huge


async def test_given_up_after_the_attempts(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "webhook", receiver.url, "s3cret")
    notice = await add_message(db, vault, watch, "webhook")
    worker = delivery(db, vault, clock, settings(delivery_attempts=3))
    receiver.statuses = [503] * 10
    for _ in range(10):
        await worker.deliver_due()
        clock.move(3600)
    stored = await row(db, notice.event_key)
    assert stored.attempts == 3 and stored.failed_at is not None and stored.delivered_at is None
    assert stored.last_error.startswith("3 attempts") and "HTTP 503" in stored.last_error
    assert len(receiver.received) == 3
    assert await watch_failures(db, watch) == 1
    async with db() as session:
        counts = await outbox_delivery.counts(session)
    assert (counts.depth, counts.failed, counts.watches) == (0, 1, 1)


async def test_an_unreachable_receiver_is_retried(
    databases: list[Any], vault: SessionVault
) -> None:
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "webhook", f"http://127.0.0.1:{free_port()}/x", "s")
    notice = await add_message(db, vault, watch, "webhook")
    assert await delivery(db, vault, clock, settings()).deliver_due() == 1
    stored = await row(db, notice.event_key)
    assert stored.attempts == 1 and stored.failed_at is None
    assert "cannot be reached" in stored.last_error


async def test_private_addresses_refused_without_the_setting(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    clock = Clock()
    public = settings(webhook_allow_private=False)
    targets = [
        receiver.url,  # http, and loopback
        f"https://127.0.0.1:{receiver.port}/hook",
        f"https://localhost:{receiver.port}/hook",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://user:pw@hooks.example/x",
    ]
    keys = []
    for target in targets:
        watch = await add_watch(db, vault, "webhook", target, "s3cret")
        keys.append((await add_message(db, vault, watch, "webhook")).event_key)
    worker = delivery(db, vault, clock, public)
    assert await worker.deliver_due() == len(targets)
    for key in keys:
        stored = await row(db, key)
        assert stored.failed_at == T0 and "refused" in stored.last_error, stored.last_error
    assert receiver.received == []

    # A name is resolved at each send: a public name now pointing inward is refused.
    async def inward(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "192.168.1.9"]

    watch = await add_watch(db, vault, "webhook", "https://hooks.example/x", "s3cret")
    notice = await add_message(db, vault, watch, "webhook")
    refusing = OutboxDelivery(db, vault, public, [WebhookDeliverer(public, resolver=inward)], clock)
    assert await refusing.deliver_due() == 1
    assert "private or local" in (await row(db, notice.event_key)).last_error

    assert url_problem("https://hooks.example/x", allow_private=False) is None
    assert url_problem("http://hooks.example/x", allow_private=False) == "not https"
    assert url_problem("ftp://hooks.example/x", allow_private=True) is not None
    for address in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.0.1", "169.254.1.1",
                    "224.0.0.1", "0.0.0.0", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1",
                    "100.64.0.1", "ff02::1"):  # fmt: skip
        assert not public_address(ipaddress.ip_address(address)), address
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"):
        assert public_address(ipaddress.ip_address(address)), address


async def test_two_deliverers_never_send_one_row_twice(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    clock = Clock()
    config = settings(messages_per_student_per_hour=1000)
    keys = set()
    for student in ("2012000001", "2012000002", "2012000003"):
        watch = await add_watch(databases[0], vault, "webhook", receiver.url, "s", student)
        for n in range(10):
            notice = await add_message(databases[0], vault, watch, "webhook", n, student)
            keys.add(notice.event_key)
    a, b = (delivery(db, vault, clock, config) for db in databases)
    taken: list[int] = []
    for _ in range(30):
        step = list(await asyncio.gather(a.deliver_due(4), b.deliver_due(4)))
        taken.extend(step)
        if step == [0, 0]:
            break
    assert sum(taken) == 30
    assert sorted(receiver.keys()) == sorted(keys)  # each once
    for key in keys:
        assert (await row(databases[0], key)).delivered_at is not None


async def test_a_claim_is_one_workers(databases: list[Any], vault: SessionVault) -> None:
    watch = await add_watch(databases[0], vault, "webhook", "https://hooks.example/x", "s")
    for n in range(12):
        await add_message(databases[0], vault, watch, "webhook", n)
    until = T0 + timedelta(seconds=60)

    async def claim(db: async_sessionmaker[AsyncSession], holder: str) -> set[int]:
        async with db.begin() as session:
            found = await outbox_delivery.claim_due(session, holder, T0, until, 12)
        return {m.id for m in found}

    first, second = await asyncio.gather(claim(databases[0], "a"), claim(databases[1], "b"))
    assert not first & second and len(first | second) == 12
    assert await claim(databases[0], "c") == set()  # leases held
    async with databases[0].begin() as session:
        late = await outbox_delivery.claim_due(
            session, "d", until + timedelta(seconds=1), until, 12
        )
    assert len(late) == 12  # expired leases are taken over
    async with databases[0].begin() as session:
        # The old holder marks nothing once its lease was taken over.
        assert not await outbox_delivery.mark_delivered(session, min(first | second), "a", T0)


async def test_per_student_cap_holds_back_without_dropping(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    clock = Clock()
    worker = delivery(db, vault, clock, settings(messages_per_student_per_hour=2))
    capped = [await add_watch(db, vault, "webhook", receiver.url, "s") for _ in range(2)]
    other = await add_watch(db, vault, "webhook", receiver.url, "s", student="2012999999")
    keys = [(await add_message(db, vault, capped[n % 2], "webhook", n)).event_key for n in range(5)]
    other_key = (await add_message(db, vault, other, "webhook", 9, "2012999999")).event_key
    assert await worker.deliver_due() == 6
    assert sorted(receiver.keys()) == sorted([*keys[:2], other_key])
    for key in keys[2:]:
        held = await row(db, key)
        assert held.next_attempt_at == T0 + timedelta(hours=1)
        assert held.attempts == 0 and held.failed_at is None and held.delivered_at is None
    clock.move(1800)
    assert await worker.deliver_due() == 0
    clock.move(1800)
    assert await worker.deliver_due() == 3
    assert len(receiver.received) == 5
    assert (await row(db, keys[4])).next_attempt_at == clock.now + timedelta(hours=1)
    clock.move(3600)
    assert await worker.deliver_due() == 1
    assert sorted(receiver.keys()) == sorted([*keys, other_key])
    for key in keys:
        stored = await row(db, key)
        assert stored.delivered_at is not None and stored.attempts == 1


async def test_an_ended_watch_and_a_foreign_key(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    clock = Clock()
    ended = await add_watch(db, vault, "webhook", receiver.url, "s")
    ended_key = (await add_message(db, vault, ended, "webhook")).event_key
    async with db.begin() as session:
        found = await session.get(Watch, ended)
        assert found is not None
        found.ended_at = T0
    foreign = SessionVault(b"another key")
    watch = await add_watch(db, foreign, "webhook", receiver.url, "s")
    foreign_key = (await add_message(db, foreign, watch, "webhook")).event_key
    unknown = await add_watch(db, vault, "fax", "+86", None)
    unknown_key = (await add_message(db, vault, unknown, "fax")).event_key
    assert await delivery(db, vault, clock, settings()).deliver_due() == 3
    assert (await row(db, ended_key)).last_error == "the watch ended"
    assert (await row(db, foreign_key)).last_error == "sealed under another key"
    assert "no fax channel" in (await row(db, unknown_key)).last_error
    assert receiver.received == []


CHILD = """
import asyncio, sys
from datetime import datetime
from db.engine import make_engine, make_sessionmaker
from services.vault import SessionVault
from services.watches.outbox import OutboxDelivery
from services.watches.webhook import WebhookDeliverer
from settings import DatabaseSettings, WatchesSettings

async def main() -> None:
    engine = make_engine(DatabaseSettings(url=sys.argv[1]))
    config = WatchesSettings(webhook_allow_private=True, delivery_lease_s=60, webhook_timeout_s=60)
    at = datetime.fromisoformat(sys.argv[2])
    worker = OutboxDelivery(
        make_sessionmaker(engine), SessionVault(sys.argv[3].encode()), config,
        [WebhookDeliverer(config)], lambda: at,
    )
    await worker.deliver_due(1)

asyncio.run(main())
"""


async def test_a_crash_mid_delivery_delivers_again_with_the_same_key(
    databases: list[Any], vault: SessionVault, receiver: Receiver, db_url: str
) -> None:
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "webhook", receiver.url, "s3cret")
    notice = await add_message(db, vault, watch, "webhook")
    receiver.hold = True
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        db_url,
        T0.isoformat(),
        TEST_SECRET,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        async with asyncio.timeout(120):
            await receiver.arrived.wait()
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    held = await row(db, notice.event_key)
    assert held.holder is not None and held.delivered_at is None and held.attempts == 0
    receiver.hold = False
    receiver.release.set()

    worker = delivery(db, vault, clock, settings())
    clock.move(30)
    assert await worker.deliver_due() == 0  # the dead worker's lease still holds
    clock.move(31)
    assert await worker.deliver_due() == 1
    assert receiver.keys() == [notice.event_key, notice.event_key]
    first, second = receiver.received
    assert first.json["event_key"] == second.json["event_key"] == notice.event_key
    done = await row(db, notice.event_key)
    assert done.delivered_at == clock.now and done.attempts == 1 and done.failed_at is None


# --- e-mail -----------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it accepts, refuses recipients as told."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.original_content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


def smtp_settings(port: int) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1", port=port, security="none", sender="jnu.fm <noreply@jnu.fm>"
    )


async def test_email_delivered(
    databases: list[Any], vault: SessionVault, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "email", "student@example.edu")
    notice = await add_message(db, vault, watch, "email", 7)
    email = EmailDeliverer(smtp_settings(port), None)
    worker = delivery(db, vault, clock, settings(), email)
    assert await worker.deliver_due() == 1
    [message] = mailbox.messages
    assert mailbox.envelopes == [("noreply@jnu.fm", ["student@example.edu"])]
    assert message["Subject"] == "校园卡消费提醒"
    # (Folded: a 64-character key makes a long line; unfolded, the same id.)
    assert message["Message-ID"].strip() == f"<{notice.event_key}@jnu.fm>"
    assert message["Message-ID"].strip() == message_id(notice.event_key, "jnu.fm <noreply@jnu.fm>")
    assert message["To"] == "student@example.edu"
    body = message.get_content()
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert "7.50 元" in body and "7.50 yuan" in body
    assert body.index(notice.text) < body.index(notice.text_en)  # Chinese first
    assert (await row(db, notice.event_key)).delivered_at == T0


async def test_email_refused_for_good_or_for_now(
    databases: list[Any], vault: SessionVault, smtp_server: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp_server
    db = databases[0]
    clock = Clock()
    watch = await add_watch(db, vault, "email", "nobody@example.edu")
    worker = delivery(db, vault, clock, settings(), EmailDeliverer(smtp_settings(port), None))
    gone = await add_message(db, vault, watch, "email", 1)
    mailbox.refuse = ["550 5.1.1 no such mailbox"]
    assert await worker.deliver_due() == 1
    stored = await row(db, gone.event_key)
    assert stored.failed_at == T0 and "SMTP 550" in stored.last_error
    assert await watch_failures(db, watch) == 1

    later = await add_message(db, vault, watch, "email", 2)
    mailbox.refuse = ["451 4.3.0 try again later"]
    assert await worker.deliver_due() == 1
    stored = await row(db, later.event_key)
    assert stored.failed_at is None and stored.attempts == 1 and "SMTP 451" in stored.last_error
    clock.move(10)
    assert await worker.deliver_due() == 1
    assert (await row(db, later.event_key)).delivered_at == clock.now
    assert [m["Message-ID"].strip() for m in mailbox.messages] == [f"<{later.event_key}@jnu.fm>"]

    nowhere = EmailDeliverer(smtp_settings(free_port()), None)
    away = await add_message(db, vault, watch, "email", 3)
    assert await delivery(db, vault, clock, settings(), nowhere).deliver_due() == 1
    stored = await row(db, away.event_key)
    assert stored.failed_at is None and "cannot be reached" in stored.last_error


# --- WeChat -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wechat_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A simulator of this module's own: its drills reach no other test."""
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


async def test_wechat_delivered_by_customer_message(
    databases: list[Any], vault: SessionVault, wechat_sim: Proc
) -> None:
    db = databases[0]
    clock = Clock()
    app_id, app_secret = "wx" + secrets.token_hex(8), secrets.token_hex(16)
    sim_json(wechat_sim.url, "/__sim/wechat/apps", {"app_id": app_id, "secret": app_secret})
    account = WeChatAccount(
        name="jnu",
        app_id=app_id,
        mode="plain",
        token=SecretStr("callbacktoken123"),
        app_secret=SecretStr(app_secret),
    )
    channel_settings = WeChatChannelSettings(
        api_base_url=f"{wechat_sim.url}/wechat-api", api_timeout_s=10.0
    )
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        customer = CustomerMessages(db, http, channel_settings, TEST_SECRET.encode(), clock)
        wechat = WeChatDeliverer(customer, [account])
        worker = delivery(db, vault, clock, settings(), wechat)
        follower = "o" + secrets.token_hex(12)
        watch = await add_watch(db, vault, "wechat", f"jnu\n{follower}")
        notice = await add_message(db, vault, watch, "wechat", 4)
        assert await worker.deliver_due() == 1
        [got] = await customer_messages(http, wechat_sim.url, follower)
        assert got.content.startswith("校园卡消费提醒\n") and notice.text in got.content
        assert notice.event_key[:8] in got.content
        assert (await row(db, notice.event_key)).delivered_at == T0

        # WeChat busy: tried again later, then delivered.
        busy = await add_message(db, vault, watch, "wechat", 5)
        sim_json(
            wechat_sim.url, "/__sim/wechat/drill", {"errcode": -1, "count": 1, "calls": "send"}
        )
        assert await worker.deliver_due() == 1
        stored = await row(db, busy.event_key)
        assert stored.attempts == 1 and stored.delivered_at is None and stored.failed_at is None
        clock.move(10)
        assert await worker.deliver_due() == 1
        assert (await row(db, busy.event_key)).delivered_at == clock.now
        assert len(await customer_messages(http, wechat_sim.url, follower)) == 2

        # An account this server does not have: given up.
        lost = await add_watch(db, vault, "wechat", f"gone\n{follower}")
        lost_key = (await add_message(db, vault, lost, "wechat")).event_key
        assert await worker.deliver_due() == 1
        stored = await row(db, lost_key)
        assert stored.failed_at is not None and "no such WeChat account" in stored.last_error
        assert len(await customer_messages(http, wechat_sim.url, follower)) == 2


# --- retention, settings ----------------------------------------------------------------


async def test_retention_deletes_finished_messages_past_keep_s(
    databases: list[Any], vault: SessionVault
) -> None:
    db = databases[0]
    watch = await add_watch(db, vault, "webhook", "https://hooks.example/x", "s")
    keys = [(await add_message(db, vault, watch, "webhook", n)).event_key for n in range(5)]
    old, recent = T0 - timedelta(days=20), T0 - timedelta(days=1)
    # delivered long ago, given up long ago, waiting for ever, delivered lately,
    # made long ago but given up lately.
    states: list[dict[str, Any]] = [
        {"created_at": old, "delivered_at": old, "next_attempt_at": None},
        {"created_at": old, "failed_at": old, "next_attempt_at": None},
        {"created_at": old, "next_attempt_at": T0},
        {"created_at": recent, "delivered_at": recent, "next_attempt_at": None},
        {"created_at": old, "failed_at": recent, "next_attempt_at": None},
    ]
    async with db.begin() as session:
        for key, values in zip(keys, states, strict=True):
            found = await session.scalar(
                select(OutboxMessage).where(OutboxMessage.event_key == key)
            )
            assert found is not None
            for name, value in values.items():
                setattr(found, name, value)
    config = Settings(watches=WatchesSettings(keep_s=14 * 86400))
    cutoff = plan(config, T0).outbox_before
    assert cutoff == T0 - timedelta(days=14)
    async with db.begin() as session:
        batch = await retention_queries.prune_outbox(session, cutoff, 100)
    assert (batch.found, batch.deleted) == (2, 2)
    async with db() as session:
        left = set(await session.scalars(select(OutboxMessage.event_key)))
    assert left == set(keys[2:])


def test_the_smtp_password_file_is_read_beside_the_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("watches:\n  smtp:\n    host: mail.example\n    password_file: smtp.pw\n")
    (tmp_path / "smtp.pw").write_text("p4ss\n")
    loaded = load_settings(config, env={})
    assert loaded.watches.smtp.password_file == str(tmp_path / "smtp.pw")
    assert smtp_password(loaded.watches.smtp, {}) == "p4ss"
    from_env = SmtpSettings(host="mail.example")
    assert smtp_password(from_env, {"JNUFM_SMTP_PASSWORD": "e"}) == "e"
    assert smtp_password(from_env, {}) is None


async def test_the_loop_delivers_and_reads_the_counts(
    databases: list[Any], vault: SessionVault, receiver: Receiver
) -> None:
    db = databases[0]
    watch = await add_watch(db, vault, "webhook", receiver.url, "s")
    notice = await add_message(db, vault, watch, "webhook")
    config = settings()
    worker = OutboxDelivery(db, vault, config, [WebhookDeliverer(config)])
    worker.start()
    try:
        for _ in range(600):  # up to a minute, for a slow machine
            if (await row(db, notice.event_key)).delivered_at is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        await worker.stop()
    assert receiver.keys() == [notice.event_key]
    counts = await worker.read_counts()
    assert (counts.depth, counts.failed, counts.watches) == (0, 0, 1)
    exposition, _ = metrics.render()
    assert "jnufm_outbox_depth 0.0" in exposition.decode()


def test_the_dashboard_shows_watches_and_the_outbox() -> None:
    def exposition(polls: int, lost: int, delivered: int, given_up: int, depth: int) -> str:
        return "\n".join(
            [
                "jnufm_watches 7",
                f"jnufm_outbox_depth {depth}",
                "jnufm_outbox_failed 2",
                f'jnufm_watch_polls_total{{kind="grade",outcome="unchanged"}} {polls}',
                f'jnufm_watch_polls_total{{kind="grade",outcome="lost_claim"}} {lost}',
                f'jnufm_outbox_messages_total{{channel="email",outcome="delivered"}} {delivered}',
                f'jnufm_outbox_messages_total{{channel="email",outcome="given_up"}} {given_up}',
                "",
            ]
        )

    old = read(exposition(10, 5, 0, 1, 9), 100.0)
    new = read(exposition(40, 50, 20, 1, 3), 110.0)
    shown = figures(old, new, {}, {}, (0, 1))["watches"]
    assert shown == {
        "live": 7.0,
        "polls_per_min": 180.0,
        "outbox_depth": 3.0,
        "given_up": 2.0,
        "delivered_per_min": 120.0,
        "retries_per_min": 0.0,
        "failures_per_min": 0.0,
    }
    # Before any worker read them, and without the polls' metric: nothing made up.
    bare = figures(None, read("", 1.0), {}, {}, (0, 1))["watches"]
    assert bare["live"] is None and bare["outbox_depth"] is None
    assert bare["polls_per_min"] is None


async def test_a_public_webhook_goes_to_the_address_checked() -> None:
    """The request to a public name is sent to the address resolved and checked, the
    name kept for TLS and Host (what the wire would carry, seen by the client's
    transport; no TLS server for a public name runs here)."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async def public(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.example", 8443)
        return ["93.184.215.14"]

    config = settings(webhook_allow_private=False)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        webhook = WebhookDeliverer(config, http, resolver=public)
        notice = Notice(
            event_key="k" * 64,
            watch_id=1,
            student_id=STUDENT,
            kind="grade",
            title="成绩提醒",
            text="高等数学 92",
            text_en="Calculus 92",
        )
        outcome = await webhook.deliver(Target("https://hooks.example:8443/in?x=1", "s"), notice)
    assert outcome.status == "delivered"
    [request] = seen
    assert str(request.url) == "https://93.184.215.14:8443/in?x=1"
    assert request.headers["host"] == "hooks.example:8443"
    assert request.headers["connection"] == "close"
    assert request.extensions["sni_hostname"] == "hooks.example"
    assert request.headers["x-jnufm-event"] == "k" * 64


def test_a_channel_cap_holds_messages_of_that_channel_for_the_next_minute() -> None:
    from services.watches.outbox import MINUTE, held_until

    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    sent = [now - timedelta(seconds=50), now - timedelta(seconds=20)]
    assert held_until(sent, 0, 3, now, MINUTE) is None
    assert held_until(sent, 1, 3, now, MINUTE) == sent[0] + MINUTE
    assert held_until([], 3, 3, now, MINUTE) == now + MINUTE
