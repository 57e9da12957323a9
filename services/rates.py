"""Per-address request rate limits, in memory shared by the workers of a host.

RequestRateLimiter
                 a token bucket per client address in a SharedRateTable: memory the
                 master maps before forking, so every worker of a host shares the
                 buckets without a database round trip. Two run side by side with
                 different costs (see config.yaml `limits`): every request against
                 floods, and requests that go to the school, tightly.
Which address a request counts against is services/addresses.py's business.

It raises services.errors.RateLimited (HTTP 429 with Retry-After). Failed
logins are the credential gate's business (services/gate.py).

The rate table's slot updates hold an fcntl lock because without one the
loss is not "a few extra requests": a process preempted between reading and
writing a bucket writes back a stale count and refunds every token the
others spent meanwhile (two unlocked processes on one IP let through hundreds of
times the burst in tests/component/test_rate_table_forks.py). The lock costs about
0.85 us of a 2.4-3 us check (bench/limits_cost.py), and the two system calls
were 4-6% of a warm query's time under load: so while a bucket holds more than
half its burst, a worker takes up to `batch` tokens at once and spends them
without the lock for up to STASH_S. Every token spent was still taken from the
shared bucket under the lock, so all workers together never pass the limit; a
stash only makes a flood be refused a little sooner in another worker (by at
most batch - 1 tokens per worker, for at most STASH_S), and below half the
burst every request takes its one token under the lock. A limiter whose burst
is under 2 * MIN_BATCH_BURST (the school limit) never batches.
"""

from __future__ import annotations

import math
import mmap
import struct
import time
from collections.abc import Callable
from typing import Final

from services import codes
from services.addresses import address_key
from services.errors import RateLimited
from services.shared_slots import CHAIN, SharedSlots, key_hash

__all__ = ["CHAIN", "SLOT", "RequestRateLimiter", "SharedRateTable"]

# One slot: address hash tag (0 = empty), tokens, time of the last refill (monotonic seconds).
SLOT: Final = struct.Struct("=Qdd")

# Tokens a worker may take at once from a bucket holding more than half its burst: at
# most MAX_BATCH, and one per MIN_BATCH_BURST of burst (so small bursts never batch).
MAX_BATCH: Final = 16
MIN_BATCH_BURST: Final = 64
# How long a worker keeps tokens it took ahead (unspent ones are lost, never returned).
STASH_S: Final = 1.0
# Addresses with tokens held ahead, per limiter and worker; past this all are dropped.
STASH_SIZE: Final = 4096


class SharedRateTable(SharedSlots):
    """Token buckets per client address in memory shared across fork() (see shared_slots)."""

    slot_size = SLOT.size
    table_name = "jnufm-rate-table"


class RequestRateLimiter:
    """A token bucket per client IP: `burst` requests at once, refilled at `rate_per_s`.

    IPv6 clients share one bucket per /`ipv6_prefix` network (see address_key).
    Limiters with different `namespace`s keep separate buckets in one table.

    Exact across processes: each check holds an fcntl lock on the IP's slot
    chain for a few microseconds. `clock` must be shared by all processes:
    CLOCK_MONOTONIC is system-wide on Linux. When more IPs are active than the
    table holds, the least recently seen IP in a chain loses its bucket and
    starts full again.
    """

    def __init__(
        self,
        table: SharedRateTable,
        rate_per_s: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        ipv6_prefix: int = 64,
        namespace: str = "",
        message: str = "too many requests from this address; slow down",
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._table = table
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._ipv6_prefix = ipv6_prefix
        self._namespace = namespace
        self._message = message
        self._batch = _batch(burst)
        # Tokens this process took ahead: address tag -> (how many are left, until when).
        self._stash: dict[int, tuple[int, float]] = {}

    def check(self, ip: str) -> None:
        """Take one token from the IP's bucket. Raises RateLimited if it is empty."""
        self._take(key_hash(self._namespace + address_key(ip, self._ipv6_prefix)))

    def check_subject(
        self, subject: str, rate_per_s: float | None = None, burst: float | None = None
    ) -> None:
        """Take one token from the bucket of a subject that is not an address (a
        registered client's name), at its own rate and burst if given. Raises RateLimited."""
        self._take(key_hash(f"{self._namespace}#{subject}"), rate_per_s, burst)

    def _take(self, tag: int, rate: float | None = None, burst: float | None = None) -> None:
        rate = self._rate if rate is None else rate
        burst = self._burst if burst is None else burst
        held = self._stash.pop(tag, None)
        if held is not None:
            left, until = held
            if self._clock() < until:
                if left > 1:
                    self._stash[tag] = (left - 1, until)
                return
        table = self._table
        first = table.chain_start(tag)
        take = 1
        batch = self._batch if burst == self._burst else _batch(burst)
        with table.locked(first) as memory:
            now = self._clock()
            offset = _find_slot(memory, table.chain(first), tag, now, rate, burst)
            found, tokens, last = SLOT.unpack_from(memory, offset)
            tokens = min(burst, tokens + max(0.0, now - last) * rate) if found == tag else burst
            allowed = tokens >= 1.0
            if allowed:
                if batch > 1 and tokens - batch >= burst / 2:
                    take = batch
                tokens -= take
            SLOT.pack_into(memory, offset, tag, tokens, now)
        if take > 1:
            if len(self._stash) >= STASH_SIZE:
                self._stash.clear()
            self._stash[tag] = (take - 1, now + STASH_S)
        if not allowed:
            raise RateLimited(
                codes.RATE_LIMITED, self._message, max(1, math.ceil((1.0 - tokens) / rate))
            )


def _batch(burst: float) -> int:
    return max(1, min(MAX_BATCH, int(burst) // MIN_BATCH_BURST))


def _find_slot(
    memory: mmap.mmap, chain: range, tag: int, now: float, rate: float, burst: float
) -> int:
    """The offset of the IP's slot in its chain, or of the slot it should take over."""
    victim = chain.start
    victim_last = math.inf
    for offset in chain:
        found, tokens, last = SLOT.unpack_from(memory, offset)
        if found == tag:
            return offset
        if found == 0 or tokens + (now - last) * rate >= burst:
            # Empty or refilled to full: forgetting it changes nothing. Keep
            # looking, though: the IP's own slot may come later in the chain.
            last = -math.inf
        if last < victim_last:
            victim, victim_last = offset, last
    return victim
