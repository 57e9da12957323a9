"""Writes that must not be lost when the database is away: kept in memory, retried until it returns.

A result the school gave us, a verifier it accepted, a failed login it judged:
if storage refuses them (down, disk full), the answer still goes to the
client, and the write waits here. A worker keeps at most `limit` of them (the
oldest is dropped and counted past that); one task retries the oldest every
`retry_s` while any wait, in order, so a later write never lands before an
earlier one.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from observability import metrics
from services.errors import StorageUnavailable
from services.shared_slots import CHAIN, SharedSlots

# time.monotonic() of the last refused write (CLOCK_MONOTONIC: one clock per host).
_STAMP = struct.Struct("=d")

log = logging.getLogger("jnufm.deferred")


class HostWrites(SharedSlots):
    """When any worker of this host last had a write refused (one record), so that a
    worker with nothing to write still reports a full disk on /readyz."""

    slot_size = _STAMP.size
    table_name = "jnufm-host-writes"

    @classmethod
    def make(cls) -> HostWrites:
        return cls.create(CHAIN)

    def mark(self, at: float) -> None:
        with self.locked(0) as memory:
            _STAMP.pack_into(memory, 0, at)

    def last(self) -> float:
        with self.locked(0) as memory:
            value: float = _STAMP.unpack_from(memory, 0)[0]
        return value


class WriteHealth:
    """Whether the database refuses writes, as every store of the host sees them.

    A nearly full disk takes some writes and refuses others: "failing" lasts a
    few seconds after any refusal, so readiness does not flicker.
    """

    def __init__(self, host: HostWrites | None = None) -> None:
        self._host = host  # None: this process alone (tests, tools)
        self._local = 0.0

    def refused(self) -> None:
        now = time.monotonic()
        self._local = now
        if self._host is not None:
            self._host.mark(now)

    def failing(self, within_s: float) -> bool:
        failed_at = self._host.last() if self._host is not None else self._local
        return failed_at > 0 and time.monotonic() - failed_at < within_s


@dataclass(frozen=True, slots=True)
class Deferred:
    what: str  # for logs and metrics: "result", "verifier", "failed_login", ...
    write: Callable[[], Awaitable[None]]


class DeferredWrites:
    """A bounded, ordered queue of writes retried until storage takes them."""

    def __init__(self, limit: int, retry_s: float, health: WriteHealth | None = None) -> None:
        self.health = health if health is not None else WriteHealth()
        self._queue: deque[Deferred] = deque()
        self._limit = limit
        self._retry_s = retry_s
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0

    def __len__(self) -> int:
        return len(self._queue)

    def failing(self, within_s: float) -> bool:
        """Writes are waiting, or storage refused one within the last `within_s`."""
        return bool(self._queue) or self.health.failing(within_s)

    def add(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        """Keep a write for later (dropping the oldest past the limit) and make sure a
        flusher runs."""
        self.health.refused()
        if len(self._queue) >= self._limit:
            lost = self._queue.popleft()
            self.dropped += 1
            metrics.record_deferred_write(lost.what, "dropped")
            log.error("dropped a deferred %s write: %d waiting already", lost.what, self._limit)
        self._queue.append(Deferred(what, write))
        metrics.record_deferred_write(what, "queued")
        metrics.set_deferred_writes(len(self._queue))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._queue:
            await asyncio.sleep(self._retry_s)
            while self._queue:
                head = self._queue[0]
                try:
                    await head.write()
                except StorageUnavailable:
                    self.health.refused()
                    break
                except Exception:
                    # A write that fails for another reason will never succeed: drop it.
                    log.exception("a deferred %s write failed; dropped", head.what)
                    self._queue.popleft()
                    self.dropped += 1
                    metrics.record_deferred_write(head.what, "dropped")
                    continue
                self._queue.popleft()
                self.written += 1
                metrics.record_deferred_write(head.what, "written")
            metrics.set_deferred_writes(len(self._queue))
        if self.written:
            log.info("storage is back: %d deferred write(s) done", self.written)

    async def drain(self, timeout_s: float) -> None:
        """Give waiting writes up to timeout_s to land (on stop)."""
        if self._flusher is not None and not self._flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), timeout_s)
            except TimeoutError:
                log.warning("stopping with %d deferred write(s) not done", len(self._queue))
