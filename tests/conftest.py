"""Shared fixtures: a real simulated school, a real database (SQLite, and MySQL when
JNUFM_TEST_MYSQL_URL is set), and jnufm's app served over real HTTP.

In place of pytest-tornado (unmaintained, see README) these give the same
names: `app` (the Tornado application), `base_url` (where it listens) and
`http_client` (an httpx client bound to it).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from sqlalchemy.engine import make_url
from tornado.netutil import bind_sockets
from tornado.web import Application

from db.engine import make_engine
from db.migrate import migrate
from handlers import make_app
from handlers.base import AppDeps
from harness.processes import Proc, schoolsim, use_port_range
from runtime.wiring import build_worker_services
from runtime.worker import make_http_server
from settings import Settings, load_settings

MYSQL_ENV = "JNUFM_TEST_MYSQL_URL"
TEST_SECRET = "test-secret-key-0123456789abcdef"

# Parallel workers (pytest-xdist) take the ports of the servers they start from
# blocks of their own, below the kernel's ephemeral range (32768 and up): a port
# one worker found free is never given to another before the first one binds it.
PORTS_FROM, PORTS_PER_WORKER = 20000, 500


def pytest_configure(config: pytest.Config) -> None:
    """A parallel worker's own port range (workers past the 25th: the kernel's ports)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw"):
        first = PORTS_FROM + int(worker[2:]) * PORTS_PER_WORKER
        if first + PORTS_PER_WORKER <= 32768:
            use_port_range(first, first + PORTS_PER_WORKER - 1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` first (the rest keep their order): a parallel run hands them
    out before the short ones, so no worker is left with one at the end while the others
    sit idle."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """One simulated card center (fast profile) for the whole run."""
    with schoolsim(tmp_path_factory.mktemp("sim")) as proc:
        yield proc


def mysql_connection(db_url: str, **options: Any) -> pymysql.connections.Connection[Any]:
    """A plain PyMySQL connection to the database of a SQLAlchemy URL (for looking at
    what the server wrote, from outside it)."""
    url = make_url(db_url)
    return pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        **options,
    )


def _mysql_database(base_url: str) -> Iterator[str]:
    url = make_url(base_url)
    name = f"jnufm_t_{secrets.token_hex(6)}"
    conn = mysql_connection(base_url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(params=["sqlite", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for one test: a SQLite file, or a new MySQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}"
        return
    base = os.environ.get(MYSQL_ENV)
    if not base:
        if os.environ.get("JNUFM_REQUIRE_MYSQL"):
            pytest.fail(f"{MYSQL_ENV} is not set but MySQL tests are required")
        pytest.skip(f"{MYSQL_ENV} not set")
    yield from _mysql_database(base)


# Tests send bursts from one address; tests of the limits keep or set their own.
LIFTED_LIMITS: dict[str, Any] = {
    "limits.requests_per_s": 100000,
    "limits.burst": 100000,
    "limits.school_requests_per_s": 100000,
    "limits.school_burst": 100000,
    "limits.failed_logins_ip_max": 100000,
}


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh MySQL database, for tests of what only a server database can do (die)."""
    base = os.environ.get(MYSQL_ENV)
    if not base:
        if os.environ.get("JNUFM_REQUIRE_MYSQL"):
            pytest.fail(f"{MYSQL_ENV} is not set but MySQL tests are required")
        pytest.skip(f"{MYSQL_ENV} not set")
    yield from _mysql_database(base)


def make_settings(db_url: str, sim_url: str, **overrides: Any) -> Settings:
    """Settings for a test: the given database and school, no bundled simulator, and the
    per-address limits lifted."""
    return settings_with_default_limits(db_url, sim_url, **{**LIFTED_LIMITS, **overrides})


# Each test's settings get their own shared cache file: a database reused by the next
# test (emptied, same URL) must not meet the answers the previous one cached.
_CACHES = Path(tempfile.gettempdir()) / f"jnufm-test-caches-{os.getpid()}"
_CACHE_NUMBERS = itertools.count()


def settings_with_default_limits(db_url: str, sim_url: str, **overrides: Any) -> Settings:
    """Settings for a test: the given database and school, no bundled simulator."""
    values: dict[str, Any] = {
        "cache.shared_path": str(_CACHES / f"{next(_CACHE_NUMBERS)}.lmdb"),
        "database.url": db_url,
        "school.card.base_url": sim_url,
        "school.academic.base_url": f"{sim_url}/jwc/",
        "school.library.base_url": f"{sim_url}/opac",
        "school.library_zhuhai.base_url": f"{sim_url}/ilas",
        "school.covers.base_url": f"{sim_url}/covers",
        "simulator.enabled": False,
        "secret_key": TEST_SECRET,
        "processes": 1,
    }
    values.update(overrides)
    return load_settings(None, env={}, overrides=values)


@pytest.fixture
def settings(db_url: str, sim: Proc) -> Settings:
    return make_settings(db_url, sim.url)


@pytest.fixture
async def deps(settings: Settings) -> AsyncIterator[AppDeps]:
    """A worker's dependencies, built on the test's event loop, with the schema migrated."""
    engine = make_engine(settings.database)
    await migrate(engine)
    await engine.dispose()
    services = await build_worker_services(settings)
    await services.recover()
    yield services.deps
    await services.close()


@contextlib.asynccontextmanager
async def serve_app(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, AppDeps]]:
    """An app built from these settings, served on a loopback port: (client, deps)."""
    engine = make_engine(settings.database)
    await migrate(engine)
    await engine.dispose()
    services = await build_worker_services(settings)
    await services.recover()  # as a worker does before serving: reads registered clients
    server = make_http_server(make_app(services.deps, settings.http), settings.http)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    try:
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
            yield client, services.deps
    finally:
        server.stop()
        await server.close_all_connections()
        await services.close()


@pytest.fixture
def app(deps: AppDeps, settings: Settings) -> Application:
    return make_app(deps, settings.http)


@pytest.fixture
async def base_url(app: Application, settings: Settings) -> AsyncIterator[str]:
    """The app served over real HTTP on a free loopback port, as a worker serves it."""
    sockets: list[socket.socket] = bind_sockets(0, "127.0.0.1")
    server = make_http_server(app, settings.http)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.stop()
    await server.close_all_connections()


@pytest.fixture
async def http_client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False) as client:
        yield client


def slot_leases(db_url: str, system: str = "") -> list[tuple[str, datetime]]:
    """(holder, expiry) of the budget slots' leases now (of one system, or of all)."""
    url = make_url(db_url)
    pattern = f"budget:{system}:%" if system else "budget:%"
    sql = "SELECT holder, expires_at FROM leases WHERE name LIKE "
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as db:
            rows = list(db.execute(sql + "?", (pattern,)))
    else:
        conn = mysql_connection(db_url)
        try:
            with conn.cursor() as cur:
                cur.execute(sql + "%s", (pattern,))
                rows = list(cur.fetchall())
        finally:
            conn.close()
    # Stored as naive UTC (db/models.py UTCDateTime); SQLite gives it as text.
    return [
        (holder, datetime.fromisoformat(str(until)).replace(tzinfo=UTC)) for holder, until in rows
    ]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The tests' shared cache files go with the run."""
    shutil.rmtree(_CACHES, ignore_errors=True)
