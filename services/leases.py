"""Named, expiring leases in the shared database: one holder at a time over all processes and hosts.

A lease is taken by taking over an expired row or inserting a new one (the
primary key refuses a second holder), released by deleting the row, and
simply expires when its holder crashed. Each call is its own short
transaction, so no database lock is held while the holder works.

A lease may stand for work that goes on without its holder: a budget slot
stands for a request at the school, and the school keeps working on a request
when our side of its connection closes. Such a lease is not deleted when its
holder stops waiting or dies, but kept until the work can no longer be running
(`release_after`): see services/budget.py.

No lease outlives its holder's need by more than a moment, whatever fails:

- a release the database refuses (down, disk full) is retried in the
  background until it succeeds or the lease expires anyway, so the slot is
  free again within `RELEASE_RETRY_S` of the database coming back;
- a worker that died holding leases (killed, out of memory) leaves them to
  its host: every worker, when it starts, releases the leases of this host's
  processes that no longer exist (`release_dead_holders`): at once, or, for a
  lease whose work may outlive its holder, once that work can no longer run.
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


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with this id exists (ours to signal or not)."""
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

    async def release_after(self, name: str, holder: str, after_s: float) -> bool:
        """Let the lease go `after_s` from now instead of at once (or when it expires, if
        that is sooner): what it stands for may go on that long without its holder.

        Best effort, False if the database refused: the lease then ends when it
        expires, which its holder made no sooner than its work could end.
        """
        ends = self._now() + timedelta(seconds=after_s)
        try:
            async with self._sessions.begin() as db:
                await queries.shorten_lease(db, name, holder, ends)
        except SQLAlchemyError:
            self._health.refused()
            return False
        return True

    @property
    def releases_pending(self) -> int:
        """Releases waiting for the database."""
        return len(self._releasing)

    async def release_dead_holders(self, linger: Callable[[str], float] = lambda name: 0.0) -> int:
        """Release the leases of this host's processes that no longer exist; how many.

        `linger(name)`: how long what the lease stands for may go on after its holder
        died (0: nothing does, delete it now); such a lease is kept that long from now
        (`release_after`), never past its own expiry. Best effort: a database that
        cannot be reached leaves them to expire.
        """
        host = host_name()
        freed = kept = 0
        with contextlib.suppress(SQLAlchemyError):
            async with self._sessions() as db:
                held = await queries.lease_holders(db, host + ":")
            for name, holder in held:
                _, _, rest = holder.partition(":")
                pid_text = rest.partition(":")[0]
                if not pid_text.isdigit() or pid_alive(int(pid_text)):
                    continue
                after_s = linger(name)
                if after_s > 0:
                    kept += await self.release_after(name, holder, after_s)
                elif await self._delete(name, holder):
                    freed += 1
        if freed or kept:
            log.info(
                "leases of processes that died on this host: %d freed, %d kept while their "
                "work may still run",
                freed,
                kept,
            )
        return freed + kept
