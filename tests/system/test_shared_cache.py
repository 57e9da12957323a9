"""The host's shared cache (services/shared_cache.py): answers every worker reads, bounded,
never a failure of its own; and the drill it exists for, a reload and a killed worker
while the database is away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy.engine import make_url

from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from harness.processes import ROOT, Proc, jnufm_server, schoolsim, sim_json
from services.cache import CacheKey
from services.deferred import DeferredWrites
from services.shared_cache import (
    BOOT_FILE,
    SharedCache,
    boot_id,
    open_file,
    open_shared_cache,
)
from services.storage import Codec, Storage
from settings import CacheSettings, Settings
from tests.conftest import make_settings
from tests.dbproxy import DatabaseProxy

T = TypeVar("T")
DB = "sqlite+aiosqlite:////srv/jnufm/jnufm.sqlite3"
NOW = datetime(2026, 11, 27, 8, 12, 3, 123456, tzinfo=UTC)


def key(n: int, kind: str = "balance") -> CacheKey:
    return CacheKey("card", kind, f"2012{n:06d}")


def cache_settings(folder: Path, **values: Any) -> CacheSettings:
    return CacheSettings(shared_path=str(folder / "cache.lmdb"), **values)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedCache]:
    cache = open_shared_cache(cache_settings(tmp_path), DB)
    assert cache is not None
    yield cache
    cache.close()


def entries(cache: SharedCache) -> int:
    with cache.env.begin() as txn:
        return int(txn.stat(cache.env.open_db(b"entries", create=False))["entries"])


# -- reading and writing ----------------------------------------------------------------------


def test_an_answer_is_read_back_with_its_time_to_the_microsecond(shared: SharedCache) -> None:
    shared.put(key(1), NOW, '{"amount":"123.45","name":"张三"}')
    found = shared.get(key(1), NOW + timedelta(seconds=5))
    assert found is not None
    assert found.payload == '{"amount":"123.45","name":"张三"}'
    assert found.fetched_at == NOW
    assert shared.get(key(2), NOW) is None
    assert shared.get(key(1, "today"), NOW) is None


def test_an_older_answer_never_replaces_a_newer_one(shared: SharedCache) -> None:
    shared.put(key(1), NOW, '"new"')
    shared.put(key(1), NOW - timedelta(seconds=1), '"old"')
    found = shared.get(key(1), NOW)
    assert found is not None and found.payload == '"new"'
    shared.put(key(1), NOW + timedelta(microseconds=1), '"newer"')
    found = shared.get(key(1), NOW)
    assert found is not None and found.payload == '"newer"'
    assert entries(shared) == 1


def test_an_answer_older_than_max_stale_is_never_served(tmp_path: Path) -> None:
    cache = open_shared_cache(cache_settings(tmp_path, max_stale_s=3600), DB)
    assert cache is not None
    try:
        cache.put(key(1), NOW, '"x"')
        assert cache.get(key(1), NOW + timedelta(seconds=3600)) is not None
        assert cache.get(key(1), NOW + timedelta(seconds=3601)) is None
    finally:
        cache.close()


def test_answers_of_another_database_are_not_seen(tmp_path: Path) -> None:
    settings = cache_settings(tmp_path)
    ours = open_shared_cache(settings, "mysql+aiomysql://app:one@db1:3306/jnufm")
    same = open_shared_cache(settings, "mysql+aiomysql://other:two@db1:3306/jnufm")
    other = open_shared_cache(settings, "mysql+aiomysql://app:one@db1:3306/jnufm_test")
    assert ours is not None and same is not None and other is not None
    try:
        ours.put(key(1), NOW, '"ours"')
        assert other.get(key(1), NOW) is None
        # Another user or password: the same database, the same answers.
        found = same.get(key(1), NOW)
        assert found is not None and found.payload == '"ours"'
    finally:
        for cache in (ours, same, other):
            cache.close()


def test_a_worker_process_reads_what_another_process_wrote(
    shared: SharedCache, tmp_path: Path
) -> None:
    write = (
        "import sys; from datetime import datetime, UTC\n"
        "from services.cache import CacheKey\n"
        "from services.shared_cache import open_shared_cache\n"
        "from settings import CacheSettings\n"
        "c = open_shared_cache(CacheSettings(shared_path=sys.argv[1]), sys.argv[2])\n"
        "c.put(CacheKey('card', 'balance', '2012000007'), datetime.now(UTC), '\"theirs\"')\n"
        "c.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", write, str(tmp_path / "cache.lmdb"), DB],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    found = shared.get(key(7), datetime.now(UTC))
    assert found is not None and found.payload == '"theirs"'


def test_two_opens_in_one_process_share_the_file_until_the_last_closes(tmp_path: Path) -> None:
    settings = cache_settings(tmp_path)
    first = open_shared_cache(settings, DB)
    second = open_shared_cache(settings, DB)
    assert first is not None and second is not None
    assert first.env is second.env
    first.put(key(1), NOW, '"x"')
    first.close()
    found = second.get(key(1), NOW)
    assert found is not None and not second.broken
    second.close()
    third = open_shared_cache(settings, DB)
    assert third is not None and third.env is not first.env
    assert third.get(key(1), NOW) is not None
    third.close()


# -- bounds -----------------------------------------------------------------------------------


def test_the_oldest_answers_go_when_the_budget_is_reached(tmp_path: Path) -> None:
    cache = open_shared_cache(cache_settings(tmp_path, shared_mb=0.25), DB)
    assert cache is not None
    try:
        for n in range(3000):
            cache.put(key(n), NOW + timedelta(seconds=n), f'"{"x" * 300}"')
        with cache.env.begin() as txn:
            counted = int.from_bytes(
                txn.get(b"bytes", db=cache.env.open_db(b"meta", create=False)) or b"", "little"
            )
        assert 0 < counted <= cache.budget_bytes
        kept = [n for n in range(3000) if cache.get(key(n), NOW) is not None]
        assert kept, "the newest answers stay"
        assert kept == list(range(kept[0], 3000)), "only the oldest went, in order"
        assert len(kept) < 3000
        assert entries(cache) == len(kept)
        assert not cache.broken
    finally:
        cache.close()


def test_an_answer_too_large_for_the_cache_is_left_to_memory_and_the_database(
    tmp_path: Path,
) -> None:
    cache = open_shared_cache(cache_settings(tmp_path, shared_mb=1), DB)
    assert cache is not None
    try:
        cache.put(key(1), NOW, '"small"')
        cache.put(key(2), NOW, '"' + "x" * (1024 * 1024 // 8) + '"')
        assert cache.get(key(2), NOW) is None
        assert cache.get(key(1), NOW) is not None, "nothing else went to make room"
    finally:
        cache.close()


def test_a_full_map_makes_room_and_never_fails_a_write(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A map smaller than the budget (as if pages were lost to fragmentation): writes go
    on, by dropping older answers."""
    file, release = open_file(tmp_path / "cache.lmdb", 256 * 1024)
    cache = SharedCache(file, b"\0" * 8, 64 * 1024 * 1024, 0.1, 86400, release)
    try:
        with caplog.at_level(logging.WARNING, "jnufm.shared_cache"):
            for n in range(2000):
                cache.put(key(n), NOW + timedelta(seconds=n), f'"{"y" * 500}"')
        assert not cache.broken
        assert cache.get(key(1999), NOW) is not None, "the newest answer is kept"
        assert cache.get(key(0), NOW) is None
        assert "full beyond its budget" in caplog.text
    finally:
        cache.close()


# -- a file that cannot be trusted --------------------------------------------------------


def test_a_corrupt_file_is_made_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "cache.lmdb"
    cache = open_shared_cache(cache_settings(tmp_path), DB)
    assert cache is not None
    cache.put(key(1), NOW, '"x"')
    cache.close()
    (folder / "data.mdb").write_bytes(os.urandom(3 * 4096))
    with caplog.at_level(logging.WARNING, "jnufm.shared_cache"):
        again = open_shared_cache(cache_settings(tmp_path), DB)
    assert again is not None
    try:
        assert "made again" in caplog.text
        assert again.get(key(1), NOW) is None
        again.put(key(2), NOW, '"y"')
        assert again.get(key(2), NOW) is not None
    finally:
        again.close()


def test_a_cache_from_before_a_reboot_is_made_again(tmp_path: Path) -> None:
    if boot_id() is None:
        pytest.skip("this system names no boot")
    cache = open_shared_cache(cache_settings(tmp_path), DB)
    assert cache is not None
    cache.put(key(1), NOW, '"x"')
    cache.close()
    (tmp_path / "cache.lmdb" / BOOT_FILE).write_text("another boot\n", encoding="ascii")
    again = open_shared_cache(cache_settings(tmp_path), DB)
    assert again is not None
    try:
        assert again.get(key(1), NOW) is None, "writes never flushed may be torn"
        assert (tmp_path / "cache.lmdb" / BOOT_FILE).read_text().strip() == boot_id()
    finally:
        again.close()


DIE_USING = """
import os, signal, sys
from datetime import UTC, datetime
from services.cache import CacheKey
from services.shared_cache import open_shared_cache
from settings import CacheSettings
cache = open_shared_cache(CacheSettings(shared_path=sys.argv[1]), sys.argv[2])
cache.get(CacheKey("card", "balance", "2012000001"), datetime.now(UTC))
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_after_a_process_died_using_the_file_the_next_one_has_it_read_through_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A process that dies with the file open (a SIGBUS on a damaged page, a kill) leaves
    its mark: the next to open the file, even with no other process using it, has a child
    process read all of it first."""
    folder = tmp_path / "cache.lmdb"
    cache = open_shared_cache(cache_settings(tmp_path), DB)
    assert cache is not None
    cache.put(key(1), NOW, '"kept"')
    cache.close()
    assert not list(folder.glob("open.*")), "a process that closed it leaves no mark"
    died = subprocess.run(
        [sys.executable, "-c", DIE_USING, str(folder), DB], cwd=ROOT, check=False, timeout=60
    )
    assert died.returncode == -signal.SIGKILL
    assert len(list(folder.glob("open.*"))) == 1
    with caplog.at_level(logging.INFO, "jnufm.shared_cache"):
        again = open_shared_cache(cache_settings(tmp_path), DB)
    assert again is not None
    try:
        assert "1 process(es) died using it; read through, sound" in caplog.text
        found = again.get(key(1), NOW)
        assert found is not None and found.payload == '"kept"'
        assert [m.name for m in folder.glob("open.*")] == [f"open.{os.getpid()}"]
    finally:
        again.close()


def test_a_file_a_dead_process_leaves_damaged_is_made_again_before_any_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "cache.lmdb"
    cache = open_shared_cache(cache_settings(tmp_path), DB)
    assert cache is not None
    cache.put(key(1), NOW, '"x"')
    cache.close()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    (folder / f"open.{int(gone.stdout)}").touch()  # its mark: it died using the file
    data = folder / "data.mdb"
    data.write_bytes(data.read_bytes()[: 2 * 4096] + os.urandom(data.stat().st_size - 2 * 4096))
    with caplog.at_level(logging.WARNING, "jnufm.shared_cache"):
        again = open_shared_cache(cache_settings(tmp_path), DB)
    assert again is not None
    try:
        assert "failed a walk after a process died using it: made again" in caplog.text
        assert again.get(key(1), NOW) is None
        again.put(key(2), NOW, '"y"')
        assert again.get(key(2), NOW) is not None
    finally:
        again.close()


def test_the_folder_and_files_are_the_servers_alone(shared: SharedCache, tmp_path: Path) -> None:
    folder = tmp_path / "cache.lmdb"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("data.mdb", "lock.mdb"):
        assert stat.S_IMODE((folder / name).stat().st_mode) & 0o077 == 0


def test_a_path_that_cannot_hold_a_cache_leaves_it_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "cache.lmdb").write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, "jnufm.shared_cache"):
        assert open_shared_cache(cache_settings(tmp_path), DB) is None
    assert "cannot be used" in caplog.text
    assert open_shared_cache(cache_settings(tmp_path / "x", shared_mb=0), DB) is None


def test_an_error_at_run_time_is_logged_once_and_the_cache_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file, release = open_file(tmp_path / "cache.lmdb", 1024 * 1024)
    cache = SharedCache(file, b"\0" * 8, 512 * 1024, 0.1, 86400, release)
    cache.put(key(1), NOW, '"x"')
    file.env.close()  # every call now raises lmdb.Error (not damage: no remaking)
    with caplog.at_level(logging.WARNING, "jnufm.shared_cache"):
        assert cache.get(key(1), NOW) is None
        cache.put(key(2), NOW, '"y"')
        assert cache.get(key(2), NOW) is None
    assert cache.broken
    assert caplog.text.count("shared cache") == 1
    release()


# -- in front of the database -----------------------------------------------------------------

VALUE: Codec[dict[str, str]] = Codec(dict[str, str])


@contextlib.asynccontextmanager
async def worker_storage(settings: Settings) -> AsyncIterator[Storage]:
    """A worker's storage (empty memory), as runtime/wiring.py builds it."""
    engine = make_engine(settings.database)
    shared = open_shared_cache(settings.cache, settings.database.url)
    assert shared is not None
    try:
        yield Storage(
            make_sessionmaker(engine),
            settings,
            DeferredWrites(100, 0.5),
            lambda: datetime.now(UTC),
            shared,
        )
    finally:
        shared.close()
        await engine.dispose()


async def sqlite_settings(tmp_path: Path, shared_path: Path) -> Settings:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        "http://127.0.0.1:9",
        **{"cache.shared_path": str(shared_path)},
    )
    engine = make_engine(settings.database)
    await migrate(engine)
    await engine.dispose()
    return settings


async def test_a_new_worker_reads_the_answers_while_the_database_is_away(tmp_path: Path) -> None:
    """One worker stored an answer; a new one, with an empty memory and a database that
    cannot be opened, still has it; and a hit in memory does not touch the shared file."""
    settings = await sqlite_settings(tmp_path, tmp_path / "cache.lmdb")
    fetched = datetime.now(UTC)
    async with worker_storage(settings) as first:
        await first.save(key(1), '{"amount":"1.00"}', fetched)
    # The database goes away: its file cannot be opened any more.
    (tmp_path / "db.sqlite3").rename(tmp_path / "elsewhere.sqlite3")
    (tmp_path / "db.sqlite3").mkdir()
    async with worker_storage(settings) as new:
        assert len(new.memory) == 0
        found = await new.lookup(key(1), datetime.now(UTC), 60, VALUE)
        assert found is not None and found.value == {"amount": "1.00"}
        assert found.fetched_at == fetched
        assert len(new.memory) == 1, "kept in the worker's memory from then on"
        assert await new.lookup(key(2), datetime.now(UTC), 60, VALUE) is None
        # A memory hit reads nothing else: with the file closed under it, nothing notices.
        assert new.shared is not None
        new.shared.env.close()
        again = await new.lookup(key(1), datetime.now(UTC), 60, VALUE)
        assert again is not None and not new.shared.broken
        # A miss reaches the shared level, finds it unusable, and carries on without it.
        assert await new.lookup(key(3), datetime.now(UTC), 60, VALUE) is None
        assert new.shared.broken


async def test_an_answer_read_from_the_database_is_shared(tmp_path: Path) -> None:
    settings = await sqlite_settings(tmp_path, tmp_path / "here.lmdb")
    # Stored by a worker of another host (another shared file), on the same database.
    elsewhere = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"shared_path": str(tmp_path / "b")})}
    )
    fetched = datetime.now(UTC)
    async with worker_storage(elsewhere) as theirs:
        await theirs.save(key(1), '{"amount":"3.00"}', fetched)
    async with worker_storage(settings) as here:
        assert here.shared is not None
        assert here.shared.get(key(1), datetime.now(UTC)) is None
        found = await here.stored(key(1), VALUE)
        assert found is not None and found.value == {"amount": "3.00"}
        shared = here.shared.get(key(1), datetime.now(UTC))
        assert shared is not None and shared.fetched_at == fetched
        # Coalescing across processes: a shared answer new enough spares the database.
        (tmp_path / "db.sqlite3").unlink()
        (tmp_path / "db.sqlite3").mkdir()
        assert await here.stored(key(1), VALUE, since=fetched) is not None


# -- the drill: a reload and a killed worker while the database is away --------------------------


class ProxyThread:
    """tests/dbproxy.py's proxy on a loop of its own: a test may block (start a server,
    send signals) while the proxy keeps forwarding."""

    def __init__(self, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = DatabaseProxy(host, port)
        self.call(self.proxy.start())

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(30)

    def close(self) -> None:
        self.call(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def cuttable(mysql_url: str) -> Iterator[tuple[str, ProxyThread]]:
    """The test's MySQL database behind a proxy it can cut: (url through it, proxy)."""
    url = make_url(mysql_url)
    proxy = ProxyThread(url.host or "127.0.0.1", url.port or 3306)
    try:
        yield url.set(port=proxy.proxy.port).render_as_string(hide_password=False), proxy
    finally:
        proxy.close()


def workers_of(master: int) -> set[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


async def until(check: Any, what: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s}s: {what}")
        await asyncio.sleep(0.05)


def serves(server: Proc, pid: int) -> bool:
    """Whether `pid` answers one of a few requests on new connections."""
    for _ in range(20):
        health = httpx.get(server.url + "/healthz", headers={"Connection": "close"}, timeout=5)
        if health.json()["pid"] == pid:
            return True
    return False


STUDENTS = [f"20120526{n:02d}" for n in range(40)]
ASKERS = 4


@dataclass
class Drill:
    """What the clients saw, by phase: statuses (or the transport error), and latencies."""

    phase: str = "outage"
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def answers(self) -> int:
        return sum(n for (_, what), n in self.seen.items() if what.isdigit())

    def of(self, status: str) -> int:
        return sum(n for (_, what), n in self.seen.items() if what == status)

    def cut(self) -> dict[tuple[str, str], int]:
        return {k: n for k, n in self.seen.items() if not k[1].isdigit()}


@pytest.mark.long
@pytest.mark.timeout(240)
def test_a_reload_and_a_killed_worker_keep_the_warm_answers_while_the_database_is_away(
    cuttable: tuple[str, ProxyThread], tmp_path: Path
) -> None:
    """Warm up 40 students on two workers, cut the database, then SIGHUP the master (a
    new generation of workers, empty memories) and SIGKILL one of the new workers: every
    warm student keeps getting answers from the host's shared cache, never from the
    school. A request the killed worker was holding loses its connection (no answer at
    all): there are at most as many as there are clients asking at once."""
    url, proxy = cuttable
    with (
        schoolsim(tmp_path, "fast", "latency_ms_median=10", "latency_ms_min=10") as school,
        jnufm_server(
            tmp_path,
            url,
            school.url,
            processes=2,
            database={"url": url, "connect_timeout_s": 1},
            log={"level": "INFO"},
        ) as server,
    ):
        drill = asyncio.run(run_drill(server, school, proxy))
    ms = sorted(1000 * t for t in drill.latencies)
    print(
        f"\nwhile the database was away: {dict(drill.seen)}; latency p50 "
        f"{ms[len(ms) // 2]:.0f} ms, p99 {ms[int(len(ms) * 0.99)]:.0f} ms"
    )
    assert {"outage", "after reload", "after kill"} <= {phase for phase, _ in drill.seen}
    assert drill.of("200") >= 0.99 * drill.answers(), drill.seen
    assert drill.of("500") == 0, drill.seen
    assert sum(drill.cut().values()) <= ASKERS, drill.cut()
    assert all(phase in ("kill", "after reload") for phase, _ in drill.cut()), drill.cut()


async def run_drill(server: Proc, school: Proc, proxy: ProxyThread) -> Drill:
    master = server.popen.pid
    drill = Drill()
    async with httpx.AsyncClient(
        base_url=server.url,
        timeout=30,
        limits=httpx.Limits(max_keepalive_connections=0),  # each request a new connection
    ) as client:
        for student in STUDENTS:
            warm = await client.get(
                "/card/rest", params={"stuid": student, "password": student[-6:]}
            )
            assert warm.status_code == 200, warm.text
        logins = sim_json(school.url, "/__sim/stats")["logins_ok"]
        proxy.call(proxy.proxy.cut())
        stop = asyncio.Event()

        async def ask() -> None:
            rng = random.Random()
            while not stop.is_set():
                student = rng.choice(STUDENTS)
                phase = drill.phase  # when it was asked
                started = time.monotonic()
                try:
                    if rng.random() < 0.5:
                        got = await client.get(
                            "/card/rest", params={"stuid": student, "password": student[-6:]}
                        )
                    else:
                        got = await client.get("/v1/card/balance", auth=(student, student[-6:]))
                except httpx.TransportError as exc:  # a connection the killed worker held
                    drill.seen[(phase, type(exc).__name__)] += 1
                    continue
                drill.seen[(phase, str(got.status_code))] += 1
                drill.latencies.append(time.monotonic() - started)

        askers = [asyncio.ensure_future(ask()) for _ in range(ASKERS)]
        try:
            await asyncio.sleep(2)
            old = workers_of(master)
            drill.phase = "reload"
            os.kill(master, signal.SIGHUP)
            await until(lambda: "reload done: generation" in server.log(), "the reload")
            await until(lambda: not (workers_of(master) & old), "the old workers gone")
            drill.phase = "after reload"
            await asyncio.sleep(3)
            # The password decides, as ever: a wrong one is not answered from the cache.
            wrong = await client.get(
                "/card/rest", params={"stuid": STUDENTS[0], "password": "000000"}
            )
            assert wrong.status_code == 503, wrong.text
            reloaded = workers_of(master)
            drill.phase = "kill"
            os.kill(min(reloaded), signal.SIGKILL)
            await until(lambda: workers_of(master) - reloaded, "the killed worker replaced")
            (replacement,) = workers_of(master) - reloaded
            await until(lambda: serves(server, replacement), "the replacement serving")
            drill.phase = "after kill"
            await asyncio.sleep(3)
        finally:
            stop.set()
            await asyncio.gather(*askers)
        assert sim_json(school.url, "/__sim/stats")["logins_ok"] == logins, (
            "every answer came from the cache"
        )
        proxy.call(proxy.proxy.start())
    return drill
