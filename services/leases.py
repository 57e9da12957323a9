"""Named, expiring leases in the shared database: one holder at a time over all processes and hosts.

A lease is taken by taking over an expired row or inserting a new one (the
primary key refuses a second holder), released by deleting the row, and
simply expires when its holder crashed. Each call is its own short
transaction, so no database lock is held while the holder works.

No lease outlives its holder's need by more than a moment, whatever fails:

- a release the database refuses (down, disk full) is retried in the
  background until it succeeds or the lease expires anyway, so the slot is
  free again within `RELEASE_RETRY_S` of the database coming back;
- a worker that died holding leases (killed, out of memory) leaves them to
  its host: every worker, when it starts, deletes the leases of this host's
  processes that no longer exist (`release_dead_holders`), so a replaced
  worker's slots are free within its replacement's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db.errors import is_contention
from services.deferred import WriteHealth
from services.errors import StorageUnavailable

log = logging.getLogger("jnufm.leases")

# How often a release the database refused is tried again.
RELEASE_RETRY_S = 0.25


def host_name() -> str:
    return socket.gethostname()[:32]


def new_holder_id() -> str:
    """Unique per acquisition: host, process and a random tag."""
    return f"{host_name()}:{os.getpid()}:{secrets.token_hex(6)}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LeaseStore:
    """Acquire and release leases in the `leases` table."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        now: Callable[[], datetime],
        health: WriteHealth | None = None,
    ) -> None:
        self._sessions = sessions
        self._now = now
        self._health = health if health is not None else WriteHealth()
        self._releasing: set[asyncio.Task[None]] = set()

    async def try_acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the lease if it is free or expired; never waits.

        False if someone else holds it (or won the race for it). Raises
        StorageUnavailable if the database cannot be used: waiting for a lease
        nobody can take would only turn an outage into a hang.
        """
        now = self._now()
        expires = now + timedelta(seconds=ttl_s)
        try:
            async with self._sessions.begin() as db:
                if await queries.take_expired_lease(db, name, holder, expires, now):
                    return True
            async with self._sessions.begin() as db:
                await queries.insert_lease(db, name, holder, expires)
            return True
        except SQLAlchemyError as exc:
            if is_contention(exc):
                return False
            self._health.refused()
            raise StorageUnavailable(f"lease {name}: {type(exc).__name__}") from exc

    async def release(self, name: str, holder: str, expires_in_s: float) -> None:
        """Give the lease back. If the database refuses, keep trying in the background
        until it works or the lease has expired on its own."""
        if await self._delete(name, holder):
            return
        log.warning("could not release lease %s now; retrying in the background", name)
        task = asyncio.get_running_loop().create_task(
            self._release_later(name, holder, expires_in_s)
        )
        self._releasing.add(task)
        task.add_done_callback(self._releasing.discard)

    async def _delete(self, name: str, holder: str) -> bool:
        try:
            async with self._sessions.begin() as db:
                await queries.delete_lease(db, name, holder)
        except SQLAlchemyError:
            self._health.refused()
            return False
        return True

    async def _release_later(self, name: str, holder: str, expires_in_s: float) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + expires_in_s
        while loop.time() < give_up:
            await asyncio.sleep(RELEASE_RETRY_S)
            if await self._delete(name, holder):
                log.info("released lease %s after the database came back", name)
                return
        log.warning("lease %s expired before it could be released", name)

    @property
    def releases_pending(self) -> int:
        """Releases waiting for the database."""
        return len(self._releasing)

    async def release_dead_holders(self) -> int:
        """Delete the leases of this host's processes that no longer exist; how many.

        Best effort: a database that cannot be reached leaves them to expire.
        """
        host = host_name()
        freed = 0
        with contextlib.suppress(SQLAlchemyError):
            async with self._sessions() as db:
                held = await queries.lease_holders(db, host + ":")
            for name, holder in held:
                _, _, rest = holder.partition(":")
                pid_text = rest.partition(":")[0]
                dead = pid_text.isdigit() and not _pid_alive(int(pid_text))
                if dead and await self._delete(name, holder):
                    freed += 1
        if freed:
            log.info("freed %d lease(s) of processes that died on this host", freed)
        return freed
