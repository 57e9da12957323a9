"""Replay protection (ours, not WeChat's): a fresh timestamp, and each signed request once.

WeChat signs (token, timestamp, nonce); a captured request (the callback URL may be
plain HTTP) could be sent again. The guard refuses a timestamp outside the window and
a (timestamp, nonce) pair it has already accepted within it. The pair, not the nonce
alone, is the key: the signature binds the two, so a replay repeats both, while two
genuine requests sharing a random nonce by chance are both served.

The store of seen pairs is a Protocol: one process may use `MemoryNonceStore`; the
server's forked workers share `SharedNonceStore` (shared_nonces.py: memory, then a
database lease).
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Callable
from typing import Protocol

from channels.wechat.errors import ReplayedNonce, StaleTimestamp

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class NonceStore(Protocol):
    """Where accepted requests are remembered until their timestamp goes stale."""

    async def claim(self, key: str, expires_at: float, now: float) -> bool:
        """Hold key until expires_at; False if it is already held (a replay)."""
        ...


class MemoryNonceStore:
    """A NonceStore in this process's memory, holding at most max_entries keys.

    When full, the key closest to expiry is forgotten first (counted in `evicted`):
    a burst of signed traffic larger than the store (a hundred thousand requests in a
    five-minute window by default) weakens replay protection for its oldest requests
    rather than refusing every student.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._expiry: dict[str, float] = {}
        self._queue: list[tuple[float, str]] = []
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._expiry)

    async def claim(self, key: str, expires_at: float, now: float) -> bool:
        self._forget_until(now)
        if key in self._expiry:
            return False
        while len(self._expiry) >= self._max_entries:
            self._pop()
            self.evicted += 1
        self._expiry[key] = expires_at
        heapq.heappush(self._queue, (expires_at, key))
        return True

    def _forget_until(self, now: float) -> None:
        while self._queue and self._queue[0][0] < now:
            self._pop()

    def _pop(self) -> None:
        _, key = heapq.heappop(self._queue)
        del self._expiry[key]


class ReplayGuard:
    """Refuses stale timestamps and (timestamp, nonce) pairs seen within the window."""

    def __init__(
        self,
        store: NonceStore,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._window_s = window_s
        self._clock = clock

    def fresh_timestamp(self, timestamp: str) -> int:
        """timestamp (Unix seconds, as sent) if it is within the window of now.

        Raises StaleTimestamp.
        """
        if not _TIMESTAMP.fullmatch(timestamp):
            raise StaleTimestamp("the timestamp is not a number of seconds")
        seconds = int(timestamp)
        if abs(self._clock() - seconds) > self._window_s:
            raise StaleTimestamp("the timestamp is outside the accepted window")
        return seconds

    async def claim(self, scope: str, timestamp: int, nonce: str) -> None:
        """Record this request as seen (scope: the account).

        Raises ReplayedNonce if it was seen within the window.
        """
        if not _NONCE.fullmatch(nonce):
            raise ReplayedNonce("the nonce is missing or malformed")
        key = f"{scope}\x00{timestamp}\x00{nonce}"
        # Held as long as its timestamp would pass fresh_timestamp.
        expires_at = timestamp + self._window_s
        if not await self._store.claim(key, expires_at, self._clock()):
            raise ReplayedNonce("this request was already received")
