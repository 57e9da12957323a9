"""Build the async engine for the configured URL; one per process, after the fork."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from settings import DatabaseSettings


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def sqlite_path(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    if not is_sqlite(url) or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def safe_url(url: str | URL) -> str:
    """The URL with its password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(settings: DatabaseSettings) -> AsyncEngine:
    """An engine with per-backend settings: WAL + busy timeout for SQLite; for MySQL a
    pool, and the driver whose every failure is a database error (db/driver.py)."""
    url = make_url(settings.url)
    kwargs: dict[str, Any] = {"echo": settings.echo}
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_s}
    else:
        # Here, not at the top: aiomysql and PyMySQL weigh ~9 MB, which a
        # SQLite deployment need not carry.
        from db.driver import TranslatingAiomysql

        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        kwargs.update(
            pool_size=settings.pool_size,
            max_overflow=settings.pool_size,
            pool_recycle=3600,
            pool_pre_ping=True,
            connect_args={"connect_timeout": settings.connect_timeout_s},
            module=TranslatingAiomysql(),
        )
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        busy_ms = int(settings.sqlite_busy_timeout_s * 1000)
        wal_bytes = int(settings.sqlite_wal_max_mb * 1024 * 1024)
        max_mb = settings.sqlite_max_mb

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets every worker process read while one writes; the busy
            # timeout makes a writer wait for the lock instead of failing.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # After each checkpoint (every 1000 pages by default) the WAL file is cut
            # back to this size: it cannot grow without bound on a busy server.
            cursor.execute(f"PRAGMA journal_size_limit={wal_bytes}")
            if max_mb:
                # A cap on the file: past it writes fail at once, as on a full disk.
                cursor.execute("PRAGMA page_size")
                page_size = cursor.fetchone()[0]
                pages = max(1, int(max_mb * 1024 * 1024 / page_size))
                cursor.execute(f"PRAGMA max_page_count={pages}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
