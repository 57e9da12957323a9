"""Named, expiring leases in the shared database: one holder at a time over all processes and hosts.

A lease is taken by taking over an expired row or inserting a new one (the
primary key refuses a second holder), released by deleting the row, and
simply expires when its holder crashed. Each call is its own short
transaction, so no database lock is held while the holder works.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries

log = logging.getLogger("jnufm.leases")

RELEASE_ATTEMPTS = 3


def new_holder_id() -> str:
    """Unique per acquisition: host, process and a random tag."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(6)}"


class LeaseStore:
    """Acquire and release leases in the `leases` table."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], now: Callable[[], datetime]
    ) -> None:
        self._sessions = sessions
        self._now = now

    async def try_acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take the lease if it is free or expired; never waits.

        Losing a race shows up as a duplicate key, or on InnoDB as a deadlock
        between two inserts of the same key, or on SQLite as a busy database:
        all mean "someone else got there first", so all answer False.
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
        except (IntegrityError, OperationalError):
            return False

    async def release(self, name: str, holder: str) -> None:
        """Give the lease back; if the database refuses, it expires on its own."""
        for attempt in range(RELEASE_ATTEMPTS):
            try:
                async with self._sessions.begin() as db:
                    await queries.delete_lease(db, name, holder)
                return
            except OperationalError:
                await asyncio.sleep(0.01 * (attempt + 1))
        log.warning("could not release lease %s; it will expire", name)

    async def is_held(self, name: str) -> bool:
        async with self._sessions() as db:
            return await queries.lease_holder(db, name, self._now()) is not None
