"""The credential gate on real SQLite and MySQL: limits, concurrency, two hosts, verdicts.

A "host" here is a gate with its own per-host table and its own engine; two
of them on one database are two hosts. The school's verdicts are given by
hand (`accepted`, `rejected`, or none), so each rule is tested on its own;
tests/system/test_attacks.py drives the same rules through real HTTP and a real
simulated school.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from db import queries
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import LoginFailure, SchoolSession, Token
from services.callers import Caller, RegisteredClient, anonymous
from services.credentials import Credentials
from services.deferred import DeferredWrites
from services.errors import InvalidPassword, RateLimited, StorageUnavailable
from services.gate import CredentialGate, GateStore, GateTicket
from services.lockout import (
    EMPTY,
    GATE_SEQ,
    GATE_SLOT,
    PENDING_TTL_S,
    GateTable,
    HostRecord,
    OutageTable,
)
from services.rates import RequestRateLimiter, SharedRateTable
from settings import DatabaseSettings, LimitsSettings

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WINDOW_S = 900.0
SYSTEM = "card"
STUDENT = "2012052690"
RIGHT = "052690"


class Clock:
    """A settable wall clock shared by the gates: windows pass without sleeping."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Host:
    gate: CredentialGate
    table: GateTable
    engine: AsyncEngine


def limits(**changes: Any) -> LimitsSettings:
    base: dict[str, Any] = {"failed_logins_max": 5, "failed_logins_ip_max": 30}
    base.update(changes)
    return LimitsSettings(**base)


def creds(password: str, student: str = STUDENT) -> Credentials:
    return Credentials(student, password)


def wrong(n: int) -> str:
    return f"{n:06d}" if f"{n:06d}" != RIGHT else "999999"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def engines(db_url: str) -> AsyncIterator[list[AsyncEngine]]:
    made = [make_engine(DatabaseSettings(url=db_url)) for _ in range(2)]
    await migrate(made[0])
    yield made
    for engine in made:
        await engine.dispose()


def make_host(
    engine: AsyncEngine, clock: Clock, table: GateTable | None = None, **changes: Any
) -> Host:
    table = table or GateTable.create(1024)
    slowed = changes.pop("slowed", None)
    gate = CredentialGate(
        GateStore(make_sessionmaker(engine)),
        table,
        limits(**changes),
        b"k" * 32,
        clock,
        slowed=slowed,
    )
    return Host(gate, table, engine)


@pytest.fixture
def hosts(engines: list[AsyncEngine], clock: Clock) -> Iterator[list[Host]]:
    made = [make_host(engine, clock) for engine in engines]
    yield made
    for host in made:
        host.table.close()


def gateway(name: str = "wechat", failures_max: int = 200) -> RegisteredClient:
    return RegisteredClient(name, (), 1000.0, 2000.0, 0.0, 20.0, failures_max)


def caller_of(ip: str, client: RegisteredClient | None = None) -> Caller:
    base = anonymous(ip)
    return base if client is None else Caller(base.ip, base.address, client)


async def judged(
    host: Host,
    password: str,
    ip: str = "10.0.0.1",
    student: str = STUDENT,
    client: RegisteredClient | None = None,
    proven: bool = False,
) -> GateTicket:
    """Admit a request; raise what the gate raises."""
    return await host.gate.admit(
        SYSTEM, Credentials(student, password, proven), caller_of(ip, client)
    )


async def school_says(ticket: GateTicket, right: bool) -> None:
    await ticket.before_login()
    if right:
        await ticket.accepted()
    else:
        await ticket.rejected()
    await ticket.release()


async def attempt(
    host: Host,
    password: str,
    ip: str = "10.0.0.1",
    student: str = STUDENT,
    right: str = RIGHT,
    client: RegisteredClient | None = None,
) -> str:
    """One request judged by a school whose password is `right`: the outcome the client sees."""
    try:
        ticket = await judged(host, password, ip, student=student, client=client)
    except RateLimited:
        return "429"
    except InvalidPassword:
        return "401-known"
    if ticket.matches:
        await ticket.release()
        return "200-cache"
    await school_says(ticket, password == right)
    return "200" if password == right else "401"


async def failure_rows(engine: AsyncEngine, scope: str = "student") -> int:
    async with make_sessionmaker(engine)() as db:
        count = await db.scalar(
            select(func.count()).select_from(LoginFailure).where(LoginFailure.scope == scope)
        )
    return int(count or 0)


# -- who judges a password -----------------------------------------------------------------


async def test_only_the_verified_password_matches(hosts: list[Host]) -> None:
    host = hosts[0]
    first = await judged(host, RIGHT)
    assert not first.matches, "no verifier yet: the school must judge it"
    assert first.counted, "counted as a failure until the school accepts it"
    await school_says(first, right=True)
    assert await failure_rows(host.engine) == 0, "accepted: withdrawn"
    again = await judged(host, RIGHT)
    assert again.matches and not again.counted
    await again.release()
    other = await judged(host, wrong(1))
    assert not other.matches, "anything else goes to the school"
    await other.release()


async def test_five_distinct_wrong_passwords_lock_out_every_password(hosts: list[Host]) -> None:
    host = hosts[0]
    assert await attempt(host, RIGHT) == "200"
    outcomes = [await attempt(host, wrong(n)) for n in range(1, 6)]
    assert outcomes == ["401"] * 5
    assert await attempt(host, wrong(6)) == "429"
    # The right password too (from anywhere): else the lockout would be an oracle.
    assert await attempt(host, RIGHT) == "429"
    assert await attempt(host, RIGHT, ip="10.9.9.9") == "429"
    # Another student is not locked.
    assert await attempt(host, "000001", student="2012052691") == "401"


async def test_a_repeated_wrong_password_counts_once(hosts: list[Host]) -> None:
    host = hosts[0]
    # From several addresses, so the address's own memory of the refusal is not involved.
    for n in range(8):
        assert await attempt(host, wrong(1), ip=f"10.0.1.{n}") == "401"
    for n in range(2, 6):
        assert await attempt(host, wrong(n)) == "401"
    assert await attempt(host, wrong(6)) == "429"


async def test_a_password_refused_to_this_address_is_not_asked_again(hosts: list[Host]) -> None:
    host = hosts[0]
    assert await attempt(host, wrong(1), ip="10.0.0.1") == "401"
    assert await attempt(host, wrong(1), ip="10.0.0.1") == "401-known"
    # Another address learns nothing from the first one's refusal: the school judges it.
    assert await attempt(host, wrong(1), ip="10.0.0.2") == "401"


async def test_a_password_nobody_judged_never_counts(hosts: list[Host]) -> None:
    """No verifier, and the school never said (down, busy, breaker, deadline): withdrawn,
    for the student and for the address."""
    host = hosts[0]
    for n in range(1, 9):
        ticket = await judged(host, wrong(n))
        assert ticket.counted, "counted while it waits for the school"
        await ticket.before_login()
        await ticket.release()  # school down, busy, timed out: no verdict
    assert await failure_rows(host.engine) == 0
    assert await failure_rows(host.engine, "ip") == 0
    assert await attempt(host, RIGHT) == "200"


async def test_a_password_the_verifier_judged_wrong_stays_counted(hosts: list[Host]) -> None:
    """With a verifier, another password already gets a different answer than the right
    one (no cached or stale answer): judged wrong by the verifier, counted even when the
    school never says (else it would be an uncounted oracle while the school is down)."""
    host = hosts[0]
    assert await attempt(host, RIGHT) == "200"
    for n in range(1, 6):
        ticket = await judged(host, wrong(n))
        assert ticket.mismatched
        await ticket.before_login()
        await ticket.release()
    assert await failure_rows(host.engine) == 5
    assert await failure_rows(host.engine, "ip") == 5
    assert await attempt(host, wrong(6)) == "429"
    assert await attempt(host, RIGHT) == "429"


async def test_a_verified_password_whose_login_was_not_judged_is_withdrawn(
    hosts: list[Host],
) -> None:
    host = hosts[0]
    await attempt(host, RIGHT)
    ticket = await judged(host, RIGHT)
    assert ticket.matches
    await ticket.before_login()  # its session expired: the school will judge it
    assert ticket.counted
    await ticket.release()  # the school never answered
    assert await failure_rows(host.engine) == 0


async def test_logins_under_way_never_lock_an_address(hosts: list[Host], clock: Clock) -> None:
    # A campus NAT at term start: first-time students (no verifier yet) from one address,
    # many more at once than the address's limit of wrong passwords.
    host = make_host(hosts[0].engine, clock, failed_logins_ip_max=3)
    students = [f"20120526{n:02}" for n in range(20)]
    under_way = [await judged(host, s[-6:], student=s) for s in students]
    for ticket in under_way:
        await ticket.before_login()
    for ticket in under_way:
        await school_says(ticket, right=True)
    assert await failure_rows(host.engine, "ip") == 0


async def test_an_address_proven_by_many_students_may_mistype_more(
    hosts: list[Host], clock: Clock
) -> None:
    """A NAT: its allowance grows with the distinct students proven right from it."""
    host = make_host(
        hosts[0].engine,
        clock,
        failed_logins_ip_max=3,
        failed_logins_ip_per_student=0.1,
        failed_logins_ip_ceiling=6,
    )
    nat = "10.7.7.7"
    for n in range(3):
        assert await attempt(host, wrong(1), ip="10.8.8.8", student=f"201205270{n}") == "401"
    # A fresh address: the base limit.
    assert await attempt(host, wrong(1), ip="10.8.8.8", student="2012052709") == "429"
    # The NAT proves 30 students right (each counted once however often it asks).
    for n in range(30):
        student = f"20120528{n:02}"
        for _ in range(2):
            assert await attempt(
                host, student[-6:], ip=nat, student=student, right=student[-6:]
            ) in (
                "200",
                "200-cache",
            )
    outcomes = [await attempt(host, wrong(1), ip=nat, student=f"20120529{n:02}") for n in range(8)]
    # 3 + 0.1 x 30 = 6 (the ceiling): the seventh is refused.
    assert outcomes == ["401"] * 6 + ["429"] * 2


async def test_a_registered_client_is_slowed_not_locked(hosts: list[Host], clock: Clock) -> None:
    """Behind a registered client lockouts are per student; past its failure budget its
    logins that need the school are slowed, its proven students are not."""
    slowed = RequestRateLimiter(SharedRateTable.create(64), 1 / 60, 1, namespace="slowed|")
    host = make_host(hosts[0].engine, clock, slowed=slowed)
    bot = gateway(failures_max=3)
    assert await attempt(host, RIGHT, client=bot) == "200"
    for n in range(3):
        student = f"201205300{n}"
        assert await attempt(host, wrong(1), student=student, client=bot) == "401"
    # Over budget: one login that needs the school passes per minute, then client_slowed.
    assert await attempt(host, wrong(2), student="2012053010", client=bot) == "401"
    ticket = await judged(host, wrong(2), student="2012053011", client=bot)
    with pytest.raises(RateLimited) as caught:
        await ticket.before_login()
    assert caught.value.code == "client_slowed"
    await ticket.release()
    # Never locked: a proven student is answered, and so is anyone from its address.
    assert await attempt(host, RIGHT, client=bot) == "200-cache"
    assert await failure_rows(host.engine, "client") == 4
    assert await failure_rows(host.engine, "ip") == 0


async def test_a_tokens_password_refused_ends_its_tokens_whatever_the_verifier(
    hosts: list[Host], engines: list[AsyncEngine], clock: Clock
) -> None:
    """A token holding a password that is no longer the verifier (another was accepted
    since, but this token was missed) is ended by the school's refusal, not retried."""
    host = hosts[0]
    assert await attempt(host, RIGHT) == "200"
    now = clock()
    async with make_sessionmaker(engines[0]).begin() as db:
        db.add(
            Token(
                token_hash="h" * 64,
                kind="session",
                student_id=STUDENT,
                system=SYSTEM,
                verifier=host.gate.attempt_of(SYSTEM, creds("123123")),
                sealed="x",
                client="",
                label="",
                created_at=now,
                last_used_at=now,
            )
        )
    ticket = await judged(host, "123123", proven=True)
    assert not ticket.matches
    await school_says(ticket, right=False)
    async with make_sessionmaker(engines[0])() as db:
        reason = await db.scalar(select(Token.ended_reason))
    assert reason == "password_changed"


async def test_a_tokens_password_is_no_guess(hosts: list[Host]) -> None:
    """Credentials from a student's token: no limit, no row, even while locked out."""
    host = hosts[0]
    assert await attempt(host, RIGHT) == "200"
    for n in range(1, 6):
        assert await attempt(host, wrong(n)) == "401"
    assert await attempt(host, RIGHT) == "429"
    ticket = await judged(host, RIGHT, proven=True)
    assert ticket.matches and not ticket.counted
    await ticket.release()
    rows = await failure_rows(host.engine)
    other = await judged(host, wrong(9), proven=True)
    await school_says(other, right=False)
    assert await failure_rows(host.engine) == rows


async def test_the_address_limit_spans_students(hosts: list[Host], clock: Clock) -> None:
    host = make_host(hosts[0].engine, clock, failed_logins_ip_max=3)
    for n in range(3):
        assert await attempt(host, wrong(1), ip="10.0.0.1", student=f"201205260{n}") == "401"
    assert await attempt(host, wrong(1), ip="10.0.0.1", student="2012052609") == "429"
    assert await attempt(host, wrong(1), ip="10.0.0.2", student="2012052609") == "401"


async def test_ipv6_addresses_count_per_network(hosts: list[Host], clock: Clock) -> None:
    host = make_host(hosts[0].engine, clock, failed_logins_ip_max=3)
    for n in range(3):
        ip = f"2001:db8:5:6::{n + 1:x}"
        assert await attempt(host, wrong(1), ip=ip, student=f"201205260{n}") == "401"
    assert await attempt(host, wrong(1), ip="2001:db8:5:6:ffff::1", student="2012052609") == "429"
    assert await attempt(host, wrong(1), ip="2001:db8:5:7::1", student="2012052609") == "401"


async def test_retry_after_is_when_enough_passwords_leave_the_window(
    hosts: list[Host], clock: Clock
) -> None:
    host = hosts[0]
    for n in range(1, 6):
        assert await attempt(host, wrong(n)) == "401"
        clock.advance(100)
    # Failures at 0..400 s, now 500 s: free again when the one at 0 s leaves, at 900 s.
    with pytest.raises(RateLimited) as caught:
        await judged(host, wrong(9))
    assert caught.value.code == "too_many_failed_logins"
    assert caught.value.retry_after_s == 400
    clock.advance(400)
    assert await attempt(host, wrong(9)) == "401"


async def test_old_failures_are_pruned(hosts: list[Host], clock: Clock) -> None:
    host = hosts[0]
    for n in range(10):
        await attempt(host, wrong(1), student=f"20120526{n:02}", ip=f"10.0.2.{n}")
    clock.advance(WINDOW_S + 1)
    await attempt(host, wrong(1), ip="10.0.3.1")
    assert await failure_rows(host.engine) == 1


# -- concurrency, processes and hosts ---------------------------------------------------------


async def test_concurrent_wrong_guesses_on_two_hosts_never_exceed_the_limit(
    hosts: list[Host],
) -> None:
    await attempt(hosts[0], RIGHT)  # the student has used the service: a verifier exists
    guesses = [wrong(n) for n in range(1, 41)]
    outcomes = await asyncio.gather(
        *(attempt(hosts[n % 2], g, ip=f"10.1.{n % 7}.{n}") for n, g in enumerate(guesses))
    )
    judged_wrong = outcomes.count("401")
    assert judged_wrong <= 5, outcomes
    assert outcomes.count("429") == 40 - judged_wrong
    assert await attempt(hosts[1], RIGHT) == "429"


async def test_the_right_password_in_a_burst_of_wrong_ones_is_refused_once_locked(
    hosts: list[Host], clock: Clock
) -> None:
    host = hosts[0]
    await attempt(host, RIGHT)
    for n in range(1, 5):
        assert await attempt(host, wrong(n)) == "401"
    # One guess left. Send the fifth wrong one and the right one together, many times
    # over (a second worker of the same host shares the table): whichever is counted
    # first, the right one never gets through once the lockout has formed.
    second_worker = make_host(host.engine, clock, table=host.table)
    burst = [attempt(host, wrong(5 + n)) for n in range(10)] + [
        attempt(second_worker, RIGHT) for _ in range(10)
    ]
    outcomes = await asyncio.gather(*burst)
    wrong_judged = outcomes[:10].count("401")
    assert wrong_judged <= 1
    if wrong_judged == 1:
        # The lockout formed; a right password may only have passed before it did.
        assert await attempt(second_worker, RIGHT) == "429"


async def test_a_password_change_holds_at_once_on_this_host_and_soon_on_others(
    hosts: list[Host], clock: Clock
) -> None:
    a, b = hosts
    await attempt(a, RIGHT)
    seen = await judged(b, RIGHT)
    assert seen.matches
    await seen.release()
    # The student changed the password at the school; the new one is accepted on host a.
    assert await attempt(a, "123456", right="123456") == "200"
    old = await judged(a, RIGHT)
    assert not old.matches, "the old password no longer matches on this host, at once"
    await old.release()
    clock.advance(1.5)  # limits.verifier_sync_s
    old_b = await judged(b, RIGHT)
    assert not old_b.matches, "and on another host after the sync interval"
    await old_b.release()
    new_b = await judged(b, "123456")
    assert new_b.matches
    await new_b.release()


async def test_a_password_change_drops_the_old_sessions(hosts: list[Host], clock: Clock) -> None:
    host = hosts[0]
    await attempt(host, RIGHT)
    sessions = make_sessionmaker(host.engine)
    async with sessions.begin() as db:
        pk = await queries.upsert_student(db, STUDENT, None, clock())
        await queries.save_school_session(db, pk, SYSTEM, "sealed", clock(), opened=True)
    assert await attempt(host, "123456", right="123456") == "200"
    async with sessions() as db:
        assert await db.scalar(select(func.count()).select_from(SchoolSession)) == 0


async def test_the_school_refusing_the_verified_password_drops_the_verifier(
    hosts: list[Host],
) -> None:
    host = hosts[0]
    await attempt(host, RIGHT)
    ticket = await judged(host, RIGHT)
    assert ticket.matches
    await school_says(ticket, right=False)  # changed at the school meanwhile
    again = await judged(host, RIGHT, ip="10.0.0.2")
    assert not again.matches, "no longer answered from the cache: the school judges it"
    await school_says(again, right=False)
    with pytest.raises(InvalidPassword):
        await judged(host, RIGHT, ip="10.0.0.2")  # this address was just told


async def test_limits_off_counts_nothing(engines: list[AsyncEngine], clock: Clock) -> None:
    host = make_host(engines[0], clock, enabled=False)
    for n in range(1, 10):
        assert await attempt(host, wrong(n)) == "401"
    assert await failure_rows(engines[0]) == 0
    assert await attempt(host, RIGHT) == "200"
    assert await attempt(host, RIGHT) == "200-cache"


# -- the per-host table -------------------------------------------------------------------


def test_host_table_fields_and_pending_expiry() -> None:
    table = GateTable.create(64)
    try:
        table.write("s|card:1", 100.0, verifier_at=100.0, verifier=b"v" * 16)
        table.write("s|card:1", 100.5, lock_at=100.5, locked_until=50.0)
        table.write("s|card:1", 101.0, pending=1)
        record = table.read("s|card:1", 101.0)
        assert record == HostRecord(100.0, b"v" * 16, 100.5, 50.0, 0, 1, 0.0, 0, 0)
        # A count left by a worker killed mid-reservation does not block forever.
        assert table.read("s|card:1", 101.0 + PENDING_TTL_S + 1).pending == 0
        table.write("s|card:1", 102.0, pending=-1)
        assert table.read("s|card:1", 102.0).pending == 0
        assert table.read("s|card:unknown", 102.0) == EMPTY
        assert GATE_SEQ.size + GATE_SLOT.size == table.slot_size
    finally:
        table.close()


def test_host_table_keeps_locked_records_when_full() -> None:
    table = GateTable.create(8)  # one chain: every key competes for 8 slots
    try:
        table.write("locked", 1.0, locked_until=10_000.0)
        for n in range(50):
            table.write(f"student-{n}", 2.0 + n, verifier_at=2.0 + n)
        assert table.read("locked", 100.0).locked_until == 10_000.0
    finally:
        table.close()


# -- without the database -------------------------------------------------------------------


async def test_without_its_database_a_host_still_holds_the_limits(
    hosts: list[Host], clock: Clock
) -> None:
    good = hosts[0]
    assert await attempt(good, RIGHT) == "200"
    # The same host (same shared memory) with its database gone: a port nothing listens on.
    dead_engine = make_engine(
        DatabaseSettings(url="mysql+aiomysql://root@127.0.0.1:1/gone", connect_timeout_s=1)
    )
    outage = OutageTable.create(64)
    deferred = DeferredWrites(100, 60)
    dead = Host(
        CredentialGate(
            GateStore(make_sessionmaker(dead_engine)),
            good.table,
            limits(),
            b"k" * 32,
            clock,
            outage=outage,
            deferred=deferred,
        ),
        good.table,
        dead_engine,
    )
    try:
        clock.advance(2)  # past verifier_sync_s: the database would be asked, and fails
        ticket = await judged(dead, RIGHT)
        assert ticket.matches, "the verifier this host knows still decides"
        await ticket.release()
        assert not dead.gate.storage_ok
        for n in range(1, 6):
            with pytest.raises(StorageUnavailable):
                await judged(dead, wrong(n))  # counted here, not judged
        with pytest.raises(RateLimited):
            await judged(dead, wrong(6))
        with pytest.raises(RateLimited):
            await judged(dead, RIGHT)  # locked out: the right one too
        assert len(deferred) == 5, "each counted attempt waits to be written"
    finally:
        outage.close()
        await dead_engine.dispose()


def test_lock_free_reads_never_see_a_half_written_record() -> None:
    """A reader in one process while another process rewrites the record: every read
    is one whole version (the verifier and its time always written together)."""
    table = GateTable.create(64)
    try:
        table.write("s|card:9", 1.0, verifier_at=1.0, verifier=(1).to_bytes(16, "big"))
        pid = os.fork()
        if pid == 0:  # the writer
            try:
                for n in range(2, 20002):
                    table.write(
                        "s|card:9", 1.0, verifier_at=float(n), verifier=n.to_bytes(16, "big")
                    )
            finally:
                os._exit(0)
        seen = set()
        try:
            for _ in range(20000):
                record = table.read("s|card:9", 1.0)
                assert int.from_bytes(record.verifier, "big") == int(record.verifier_at)
                seen.add(record.verifier_at)
        finally:
            os.waitpid(pid, 0)
        assert len(seen) > 1, "the reader saw the writer's progress"
    finally:
        table.close()


def test_a_record_read_before_is_read_again_whenever_its_slot_moved() -> None:
    """The reader's memory of where it read a record holds only while the slot's number
    and tag are unchanged: a write by another process, or another key taking the slot."""
    table = GateTable.create(8)  # one chain: every key competes for 8 slots
    try:
        table.write("s|card:1", 1.0, verifier_at=1.0, verifier=b"a" * 16)
        assert table.read("s|card:1", 2.0).verifier == b"a" * 16
        pid = os.fork()
        if pid == 0:  # another worker of the host
            try:
                table.write("s|card:1", 3.0, verifier_at=3.0, verifier=b"b" * 16)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        assert table.read("s|card:1", 4.0).verifier == b"b" * 16
        # Others take every slot of the chain (the least recently used goes first).
        for n in range(8):
            table.write(f"other-{n}", 10.0 + n, verifier_at=10.0 + n)
        assert table.read("s|card:1", 20.0) == EMPTY
        assert table.read("other-7", 20.0).verifier_at == 17.0
    finally:
        table.close()
