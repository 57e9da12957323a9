"""Apply the Alembic migrations under db/migrations, once, even with several starters.

Several processes (two server instances on one MySQL, or a restart racing an
old one) may start together, so the upgrade runs under a lock: MySQL's
GET_LOCK, or an exclusive file lock beside the SQLite file.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import AsyncIterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.engine import is_sqlite, sqlite_path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LOCK_NAME = "jnufm_migrate"
LOCK_TIMEOUT_S = 60


class MigrationLockTimeout(Exception):
    """Another process held the migration lock for too long."""


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def alembic_head() -> str | None:
    """The head as Alembic sees it (db/revision.py reads the same without Alembic)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


@contextlib.asynccontextmanager
async def _migration_lock(engine: AsyncEngine, conn: AsyncConnection) -> AsyncIterator[None]:
    if is_sqlite(engine.url):
        path = sqlite_path(engine.url)
        if path is None:
            yield
            return
        # Runs once at start-up, before anything is served: blocking here is fine.
        with open(str(path) + ".migrate-lock", "w") as lock_file:  # noqa: ASYNC230
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return
    # GET_LOCK names are server-wide: the lock is one database's, not every database's
    # on the server (others' upgrades need not wait for this one).
    name = f"{LOCK_NAME}:{engine.url.database}"[:64]
    got = (
        await conn.execute(text("SELECT GET_LOCK(:n, :t)"), {"n": name, "t": LOCK_TIMEOUT_S})
    ).scalar()
    if got != 1:
        raise MigrationLockTimeout(f"another process held the migration lock for {LOCK_TIMEOUT_S}s")
    try:
        yield
    finally:
        await conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": name})


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def migrate(engine: AsyncEngine) -> str | None:
    """Upgrade the schema to the newest revision; returns it."""
    async with engine.connect() as lock_conn, _migration_lock(engine, lock_conn):
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade)
        return await current_revision(engine)
