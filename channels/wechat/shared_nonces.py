"""The replay guard's memory that every worker and host of the server shares."""

from __future__ import annotations

import hashlib
import secrets

from channels.wechat.replay import MemoryNonceStore
from services.errors import StorageUnavailable
from services.leases import LeaseStore


class SharedNonceStore:
    """A NonceStore every worker and host shares: this process's memory first (a replay
    to the same worker costs no query), then a lease in the database named after the key
    (services/leases.py), held until the request would be stale anyway. WeChat's
    deliveries of one account reach every worker, so a replay may reach another."""

    def __init__(self, memory: MemoryNonceStore, leases: LeaseStore) -> None:
        self._memory = memory
        self._leases = leases

    async def claim(self, key: str, expires_at: float, now: float) -> bool:
        if not await self._memory.claim(key, expires_at, now):
            return False
        name = "wechat-nonce:" + hashlib.sha256(key.encode()).hexdigest()[:40]
        try:
            return await self._leases.try_acquire(
                name, secrets.token_hex(8), max(1.0, expires_at - now)
            )
        except StorageUnavailable:
            # The database is away: this worker's memory alone guards (a replay to
            # another worker within the window gets the reply the message had), rather
            # than every follower going unanswered.
            return True
