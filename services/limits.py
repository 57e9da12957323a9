"""Per-address request rate limits, in memory shared by the workers of a host.

RequestRateLimiter
                 a token bucket per client address in a SharedRateTable: memory the
                 master maps before forking, so every worker of a host shares the
                 buckets without a database round trip. Two run side by side with
                 different costs (see config.yaml `limits`): every request against
                 floods, and requests that go to the school, tightly.
client_ip        which address a request counts against, trusting X-Forwarded-For
                 only from configured proxies.

Both raise services.errors.RateLimited (HTTP 429 with Retry-After). Failed
logins are the credential gate's business (services/gate.py).

The rate table's slot updates hold an fcntl lock because without one the
loss is not "a few extra requests": a process preempted between reading and
writing a bucket writes back a stale count and refunds every token the
others spent meanwhile (two unlocked processes on one IP let through hundreds of
times the burst in tests/test_limits.py's fork test). The lock costs about
0.85 us of a 2.4-3 us check (bench/limits_cost.py).
"""

from __future__ import annotations

import functools
import math
import mmap
import struct
import time
from collections.abc import Callable, Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Final

from services.errors import RateLimited
from services.shared_slots import CHAIN, SharedSlots, key_hash

__all__ = ["CHAIN", "SLOT", "RequestRateLimiter", "SharedRateTable", "address_key", "client_ip"]

# One slot: address hash tag (0 = empty), tokens, time of the last refill (monotonic seconds).
SLOT: Final = struct.Struct("=Qdd")


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

    def check(self, ip: str) -> None:
        """Take one token from the IP's bucket. Raises RateLimited if it is empty."""
        tag = key_hash(self._namespace + address_key(ip, self._ipv6_prefix))
        table = self._table
        first = table.chain_start(tag)
        with table.locked(first) as memory:
            now = self._clock()
            offset = _find_slot(memory, table.chain(first), tag, now, self._rate, self._burst)
            found, tokens, last = SLOT.unpack_from(memory, offset)
            if found == tag:
                tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
            else:
                tokens = self._burst
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            SLOT.pack_into(memory, offset, tag, tokens, now)
        if not allowed:
            raise RateLimited(
                "rate_limited", self._message, max(1, math.ceil((1.0 - tokens) / self._rate))
            )


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


Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# Longer than any address with a port and an IPv6 zone; longer entries are garbage.
MAX_ADDRESS_TEXT: Final = 64


def client_ip(remote_ip: str, forwarded_for: str | None, trusted_proxies: Sequence[Network]) -> str:
    """The address a request counts against.

    X-Forwarded-For is read only when the direct peer is a trusted proxy; it
    is walked from the right (the entries proxies appended), skipping trusted
    proxies, and the first untrusted address is the client. Entries left of it
    are whatever the client sent, so they are never believed. A malformed entry
    stops the walk at the last address known to be real.
    """
    peer = _parse_address(remote_ip)
    if peer is None:
        return remote_ip
    if not forwarded_for or not _is_trusted(peer, trusted_proxies):
        return str(peer)
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        address = _parse_address(entry)
        if address is None:
            break
        client = address
        if not _is_trusted(address, trusted_proxies):
            break
    return str(client)


def address_key(ip: str, ipv6_prefix: int) -> str:
    """What a limit counts against: an IPv4 address whole, an IPv6 address by its network.

    One IPv6 subscriber usually holds a whole /64 (or more), so counting single
    IPv6 addresses would give them 2^64 fresh counters.
    """
    if ":" not in ip:
        return ip
    return _ipv6_network(ip, ipv6_prefix)


@functools.lru_cache(maxsize=4096)
def _ipv6_network(ip: str, prefix: int) -> str:
    try:
        return str(ip_network((ip.partition("%")[0], prefix), strict=False))
    except ValueError:
        return ip


def _is_trusted(address: Address, trusted_proxies: Sequence[Network]) -> bool:
    return any(address in network for network in trusted_proxies)


# Most requests come from addresses seen moments ago; parsing one costs microseconds.
@functools.lru_cache(maxsize=4096)
def _parse_address(text: str) -> Address | None:
    """An IP address from an XFF entry or a peer address; IPv4-mapped IPv6 becomes IPv4."""
    text = text.strip()
    if not text or len(text) > MAX_ADDRESS_TEXT:
        return None
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
