"""Named, expiring leases in the shared database: one holder at a time over all processes and hosts.

A lease is taken by taking over an expired row or inserting a new one (the
primary key refuses a second holder), released by deleting the row, and
simply expires when its holder crashed. Each call is its own short
transaction, so no database lock is held while the holder works.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries


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
        """Take the lease if it is free or expired; never waits."""
        now = self._now()
        expires = now + timedelta(seconds=ttl_s)
        async with self._sessions.begin() as db:
            if await queries.take_expired_lease(db, name, holder, expires, now):
                return True
        try:
            async with self._sessions.begin() as db:
                await queries.insert_lease(db, name, holder, expires)
            return True
        except IntegrityError:
            return False

    async def release(self, name: str, holder: str) -> None:
        async with self._sessions.begin() as db:
            await queries.delete_lease(db, name, holder)

    async def is_held(self, name: str) -> bool:
        async with self._sessions() as db:
            return await queries.lease_holder(db, name, self._now()) is not None
