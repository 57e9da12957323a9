"""The pipeline's one door to storage: the memory cache, the host's shared cache,
stored results, sealed school sessions and leases, behind one object per worker.

Reads that fail are answered from memory or the shared cache, which a new
worker reads at once (a dead database must not turn warm answers into errors);
writes that fail wait in memory (services/deferred.py) and land when the
database is back. No SQLAlchemy error leaves this module:
what cannot wait becomes `StorageUnavailable`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import TypeAdapter
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db.errors import is_contention
from observability import metrics
from observability.timing import timed
from services.cache import CacheEntry, CacheKey, MemoryCache, estimated_size
from services.deferred import DeferredWrites
from services.errors import StorageUnavailable
from services.leases import LeaseStore
from services.shared_cache import SharedCache
from services.vault import SessionVault
from settings import Settings

log = logging.getLogger("jnufm.storage")

T = TypeVar("T")

# A transaction that lost a race (an InnoDB deadlock, a busy SQLite) is tried this
# many times in all before the database counts as unavailable.
CONTENTION_TRIES = 4


async def transaction(
    sessions: async_sessionmaker[AsyncSession],
    what: str,
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    write: bool = True,
    refused: Callable[[], None] | None = None,
) -> T:
    """`work` in one short transaction (a plain session for a read), tried again when it
    only lost a race. Raises StorageUnavailable (naming `what`) when the database cannot
    be used; `refused` is told of a write the database refused."""
    for attempt in range(CONTENTION_TRIES):
        try:
            if write:
                async with sessions.begin() as db:
                    return await work(db)
            async with sessions() as db:
                return await work(db)
        except SQLAlchemyError as exc:
            if is_contention(exc) and attempt + 1 < CONTENTION_TRIES:
                await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
                continue
            if write and refused is not None:
                refused()
            raise StorageUnavailable(f"{what}: {type(exc).__name__}") from exc
    raise AssertionError("unreachable")


class Codec(Generic[T]):
    """How a result of type T (dataclasses of str, Decimal, datetime, date, tuples
    and lists) is kept as JSON text in the database, and read back, by pydantic."""

    def __init__(self, type_: Any) -> None:
        self._adapter: TypeAdapter[T] = TypeAdapter(type_)

    def encode(self, value: T) -> str:
        return self._adapter.dump_json(value).decode()

    def decode(self, text: str) -> T:
        return self._adapter.validate_json(text)


@dataclass(frozen=True, slots=True)
class SessionToKeep:
    """A school session to store sealed with a result: its value, and whether a login
    just opened it (its absolute lifetime starts then)."""

    value: str
    opened: bool


class Storage:
    """Results, sessions and leases for every pipeline of a worker."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        deferred: DeferredWrites,
        now: Callable[[], datetime],
        shared: SharedCache | None = None,
    ) -> None:
        self._sessions = sessions
        # Answers every worker of the host reads (None: off, or could not be opened).
        self.shared = shared
        self._settings = settings
        self._deferred = deferred
        self._now = now
        c = settings.cache
        self.memory = MemoryCache(c.memory_entries, c.max_stale_s, int(c.memory_mb * 1024 * 1024))
        self.leases = LeaseStore(sessions, now, deferred.health)
        self._vault = SessionVault(settings.secret_key.encode())

    # Results ------------------------------------------------------------------------------

    async def lookup(
        self, key: CacheKey, now: datetime, max_age_s: float, codec: Codec[T]
    ) -> CacheEntry[T] | None:
        """Memory first (a hit touches nothing else); then the host's shared cache; then
        the database, where another host may have stored newer data."""
        with timed("cache"):
            entry: CacheEntry[T] | None = self.memory.get(key, now)
            if entry is not None and entry.age_s(now) <= max_age_s:
                metrics.record_cache(key.kind, "hit", "memory")
                return entry
            metrics.record_cache(key.kind, "miss", "memory")
            shared = self._shared_entry(key, now, codec)
            if shared is not None and shared.age_s(now) <= max_age_s:
                metrics.record_cache(key.kind, "hit", "shared")
                self.memory.put(key, shared)
                return shared
            stored = await self._newest(key, codec, shared)
            fresh = stored is not None and stored.age_s(now) <= max_age_s
            metrics.record_cache(key.kind, "hit" if fresh else "miss", "db")
            if stored is None:
                return entry
            if entry is None or stored.fetched_at > entry.fetched_at:
                self.memory.put(key, stored)
                return stored
            return entry

    async def stored(
        self, key: CacheKey, codec: Codec[T], since: datetime | None = None
    ) -> CacheEntry[T] | None:
        """The newest stored result, in the host's shared cache or the database (None also
        when neither can be read). One in the shared cache fetched at `since` or later is
        enough: the database is not asked."""
        shared = self._shared_entry(key, self._now(), codec)
        if shared is not None and since is not None and shared.fetched_at >= since:
            return shared
        return await self._newest(key, codec, shared)

    async def _newest(
        self, key: CacheKey, codec: Codec[T], shared: CacheEntry[T] | None
    ) -> CacheEntry[T] | None:
        """The database's result, if newer than the shared cache's (which it then
        replaces there); else the shared one, also when the database cannot be read."""
        try:
            async with self._sessions() as db:
                row = await queries.get_result(db, key.system, key.subject, key.kind, key.params)
        except SQLAlchemyError as exc:
            log.warning("cache read failed: %s", type(exc).__name__)
            return shared
        if row is None or (shared is not None and shared.fetched_at >= row.fetched_at):
            return shared
        if self.shared is not None:
            self.shared.put(key, row.fetched_at, row.payload)
        return CacheEntry(codec.decode(row.payload), row.fetched_at, estimated_size(row.payload))

    def _shared_entry(self, key: CacheKey, now: datetime, codec: Codec[T]) -> CacheEntry[T] | None:
        if self.shared is None:
            return None
        found = self.shared.get(key, now)
        if found is None:
            return None
        try:
            value = codec.decode(found.payload)
        except ValueError:
            return None  # kept by a version whose answers had another shape
        return CacheEntry(value, found.fetched_at, estimated_size(found.payload))

    def remember(self, key: CacheKey, entry: CacheEntry[Any]) -> None:
        self.memory.put(key, entry)

    async def save(
        self,
        key: CacheKey,
        payload: str,
        fetched_at: datetime,
        name: str | None = None,
        session: SessionToKeep | None = None,
    ) -> None:
        """A result (and the student's name and sealed school session, if any) in one
        transaction: all or nothing. Never raises: a result the school gave is kept
        in memory and written when storage is back."""
        if self.shared is not None:
            # First, and whatever the database does: a new worker reads it from here.
            self.shared.put(key, fetched_at, payload)
        student = key.subject
        sealed = None
        if session is not None and self._settings.sessions.enabled:
            sealed = self._vault.seal(student, key.system, session.value)

        async def write() -> None:
            try:
                async with self._sessions.begin() as db:
                    if student and (name is not None or sealed is not None):
                        pk = await queries.upsert_student(db, student, name, fetched_at)
                        if sealed is not None:
                            assert session is not None
                            await queries.save_school_session(
                                db, pk, key.system, sealed, fetched_at, opened=session.opened
                            )
                    await queries.save_result(
                        db, key.system, student, key.kind, key.params, payload, fetched_at
                    )
            except SQLAlchemyError as exc:
                raise StorageUnavailable(f"{key.kind} result: {type(exc).__name__}") from exc

        try:
            await write()
        except StorageUnavailable as exc:
            # The answer is good and the client gets it; storage gets it when it is back.
            log.warning("could not store a %s result now (%s); kept for later", key.kind, exc)
            self._deferred.add("result", write)

    # Sessions -------------------------------------------------------------------------------

    async def session_value(self, system: str, student_id: str) -> str | None:
        """The student's stored session at a system, opened, if it may still be used."""
        s = self._settings.sessions
        if not s.enabled:
            return None
        try:
            async with self._sessions() as db:
                row = await queries.get_school_session(db, student_id, system)
        except SQLAlchemyError:
            return None
        if row is None:
            return None
        now = self._now()
        if (now - row.used_at).total_seconds() > s.max_idle_s:
            return None
        # The school judged the password when it opened this session (a login); a
        # password changed there since keeps working through the session, so past
        # reverify_s the session is left and a new login judges the password again.
        # max_age_s bounds the session itself, however often it is re-verified.
        if (now - row.created_at).total_seconds() > min(s.reverify_s, s.max_age_s):
            return None
        return self._vault.open(student_id, system, row.sealed)
