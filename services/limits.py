"""Abuse limits: failed-login lockout (in the database), per-IP request rate (in shared memory).

LoginGuard       failed logins per student number and per client IP within a sliding
                 window, shared by every worker and host through the database, so the
                 API cannot be used to brute-force 6-digit card passwords.
RequestRateLimiter
                 a token bucket per client IP in a SharedRateTable: memory the master
                 maps before forking, so every worker of a host shares the buckets
                 without a database round trip.
client_ip        which address a request counts against, trusting X-Forwarded-For
                 only from configured proxies.

Both limits raise services.errors.RateLimited (HTTP 429 with Retry-After).

A success clears the student's failures but never the IP's. The owner's
success proves the password was known; a morning of typos should not leave
them one typo from a lockout all day. The cost: an attacker guessing at that
number gets a fresh max_failures guesses each time the owner logs in, a few
per day at most. The IP's count stays, or an attacker could reset it by
logging in to an account of their own between guesses.

The rate table's slot updates hold an fcntl lock because without one the
loss is not "a few extra requests": a process preempted between reading and
writing a bucket writes back a stale count and refunds every token the
others spent meanwhile (two unlocked processes on one IP let through hundreds of
times the burst in tests/test_limits.py's fork test). The lock costs about
0.85 us of a 2.4-3 us check (bench/limits_cost.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Final

from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from services.errors import RateLimited

STUDENT: Final = "student"
IP: Final = "ip"

# Expired rows deleted per recorded failure. Anything above 1 makes pruning
# outrun inserts, so the table stays near "failures within one window".
PRUNE_BATCH: Final = 64


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A login admitted by LoginGuard.begin: it counts as a failure until told otherwise."""

    student_id: str
    ip: str
    row_ids: tuple[int, ...]


class LoginGuard:
    """Locks out a student number or a client IP after too many failed logins in a window.

    Two ways to use it:

    - `check` before asking the school, `record_failure` when the school says
      the password is wrong, `clear_student` when it accepts it. Simple, but
      guesses already in flight when the limit is reached still go through
      (at most one per concurrent request).
    - `begin` (instead of `check`) records the attempt as a failure *before*
      the school is asked, then counts; `succeeded`, `failed` or `abandoned`
      settles it. Concurrent guesses cannot overshoot the limit: each
      attempt's row is committed before it counts, so the (max+1)-th sees
      the others. A worker that dies mid-login leaves a failure behind,
      which errs on the safe side.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        max_failures: int,
        window_s: float,
        now: Callable[[], datetime] = utc_now,
        *,
        ip_max_failures: int | None = None,
        ipv6_prefix: int = 64,
    ) -> None:
        if max_failures < 1 or (ip_max_failures is not None and ip_max_failures < 1):
            raise ValueError("max_failures must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self._sessions = sessions
        self._window = timedelta(seconds=window_s)
        self._now = now
        self._limits = {STUDENT: max_failures, IP: ip_max_failures or max_failures}
        self._ipv6_prefix = ipv6_prefix

    def _subjects(self, student_id: str, ip: str) -> tuple[tuple[str, str], tuple[str, str]]:
        return (STUDENT, student_id), (IP, address_key(ip, self._ipv6_prefix))

    async def check(self, student_id: str, ip: str) -> None:
        """Raises RateLimited if the student or the IP is locked out now."""
        now = self._now()
        async with self._sessions() as session:
            retry_after = await self._retry_after(session, student_id, ip, now)
        if retry_after is not None:
            raise _locked_out(retry_after)

    async def record_failure(self, student_id: str, ip: str) -> None:
        """Count one wrong password against the student and the IP."""
        now = self._now()
        async with self._sessions() as session, session.begin():
            await queries.add_login_failures(session, self._subjects(student_id, ip), now)
        await self._prune(now)

    async def clear_student(self, student_id: str) -> None:
        """Forget the student's failures after a successful login; the IP's stay."""
        async with self._sessions() as session, session.begin():
            await queries.clear_login_failures(session, STUDENT, student_id)

    async def begin(self, student_id: str, ip: str) -> LoginAttempt:
        """Admit one login attempt, counted as a failure until settled.

        Raises RateLimited (and counts nothing) if the student or the IP is locked out.
        """
        now = self._now()
        async with self._sessions() as session, session.begin():
            ids = await queries.add_login_failures(session, self._subjects(student_id, ip), now)
        # Counted in a new transaction, after the commit, so that of two
        # concurrent attempts the later one always sees the earlier one.
        since = now - self._window
        async with self._sessions() as session:
            over = False
            for scope, subject in self._subjects(student_id, ip):
                limit = self._limits[scope]
                recent = await queries.recent_login_failures(
                    session, scope, subject, since, limit + 1
                )
                over = over or len(recent) > limit
        if not over:
            return LoginAttempt(student_id, ip, tuple(ids))
        async with self._sessions() as session, session.begin():
            await queries.delete_login_failures_by_id(session, ids)
            retry_after = await self._retry_after(session, student_id, ip, now)
        # Another refused attempt may have withdrawn its rows meanwhile: still refuse this one.
        raise _locked_out(retry_after or 1)

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """The school accepted the password: withdraw the attempt and clear the student."""
        async with self._sessions() as session, session.begin():
            await queries.delete_login_failures_by_id(session, attempt.row_ids)
            await queries.clear_login_failures(session, STUDENT, attempt.student_id)

    async def failed(self, attempt: LoginAttempt) -> None:
        """The school refused the password: the attempt stays counted."""
        await self._prune(self._now())

    async def abandoned(self, attempt: LoginAttempt) -> None:
        """The school never judged the password (timeout, outage): the attempt does not count."""
        async with self._sessions() as session, session.begin():
            await queries.delete_login_failures_by_id(session, attempt.row_ids)

    async def _retry_after(
        self, session: AsyncSession, student_id: str, ip: str, now: datetime
    ) -> int | None:
        """Seconds until both the student and the IP are below their limits; None if they are."""
        since = now - self._window
        wait = 0.0
        for scope, subject in self._subjects(student_id, ip):
            limit = self._limits[scope]
            recent = await queries.recent_login_failures(session, scope, subject, since, limit)
            if len(recent) >= limit:
                # Below the limit again once the limit-th newest failure leaves the window.
                wait = max(wait, (recent[limit - 1] + self._window - now).total_seconds())
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def _prune(self, now: datetime) -> None:
        # Opportunistic housekeeping: losing a race for the lock (deadlock,
        # busy SQLite) only delays it to the next failure.
        with contextlib.suppress(OperationalError):
            async with self._sessions() as session, session.begin():
                await queries.prune_login_failures(session, now - self._window, PRUNE_BATCH)


def _locked_out(retry_after_s: int) -> RateLimited:
    return RateLimited(
        "too_many_failed_logins",
        "too many failed logins for this student number or from this address; try again later",
        retry_after_s,
    )


# One slot: IP hash tag (0 = empty), tokens, time of the last refill (monotonic seconds).
SLOT: Final = struct.Struct("=Qdd")
# Slots an IP may occupy, starting at its hash. The chain never wraps, so one
# byte-range lock covers it.
CHAIN: Final = 8
HASH_MASK: Final = (1 << 64) - 1


class SharedRateTable:
    """Fixed-size, open-addressed token-bucket slots in memory shared across fork().

    Create it in the master before forking: children inherit the mapping and
    the file descriptor whose byte-range locks (fcntl, per process) serialize
    updates to one IP's slots. The kernel drops a dead process's locks, so a
    worker killed mid-update cannot wedge the others.
    """

    def __init__(self, fd: int, memory: mmap.mmap, slots: int) -> None:
        self.fd = fd
        self.memory = memory
        self.slots = slots

    @classmethod
    def create(cls, slots: int) -> SharedRateTable:
        """A zeroed table of `slots` buckets (all empty)."""
        if slots < CHAIN:
            raise ValueError(f"a rate table needs at least {CHAIN} slots")
        size = slots * SLOT.size
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("jnufm-rate-table", os.MFD_CLOEXEC)
        else:  # not Linux: an unlinked temporary file serves the same purpose
            fd, path = tempfile.mkstemp(prefix="jnufm-rate-")
            os.unlink(path)
        os.ftruncate(fd, size)
        memory = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        return cls(fd, memory, slots)

    def close(self) -> None:
        self.memory.close()
        os.close(self.fd)


class RequestRateLimiter:
    """A token bucket per client IP: `burst` requests at once, refilled at `rate_per_s`.

    IPv6 clients share one bucket per /`ipv6_prefix` network (see address_key).

    Exact across processes: each check holds an fcntl lock on the IP's slot
    chain for a few microseconds. fcntl locks belong to a process, so one
    limiter must not be used from several threads at once (a Tornado worker
    has one). `clock` must be shared by all processes: CLOCK_MONOTONIC is
    system-wide on Linux. When more IPs are active than the table holds, the
    least recently seen IP in a chain loses its bucket and starts full again.
    """

    def __init__(
        self,
        table: SharedRateTable,
        rate_per_s: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        ipv6_prefix: int = 64,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be positive and burst at least 1")
        self._table = table
        self._rate = rate_per_s
        self._burst = burst
        self._clock = clock
        self._starts = table.slots - CHAIN + 1
        self._ipv6_prefix = ipv6_prefix

    def check(self, ip: str) -> None:
        """Take one token from the IP's bucket. Raises RateLimited if it is empty."""
        # hash() of a str is the same in every process forked from one master,
        # and keyed per run, so no one can aim many IPs at one chain.
        hashed = hash(address_key(ip, self._ipv6_prefix)) & HASH_MASK
        tag = hashed or 1
        first = (hashed % self._starts) * SLOT.size
        memory = self._table.memory
        fd = self._table.fd
        fcntl.lockf(fd, fcntl.LOCK_EX, CHAIN * SLOT.size, first)
        try:
            now = self._clock()
            offset = _find_slot(memory, first, tag, now, self._rate, self._burst)
            found, tokens, last = SLOT.unpack_from(memory, offset)
            if found == tag:
                tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
            else:
                tokens = self._burst
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            SLOT.pack_into(memory, offset, tag, tokens, now)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, CHAIN * SLOT.size, first)
        if not allowed:
            raise RateLimited(
                "rate_limited",
                "too many requests from this address; slow down",
                max(1, math.ceil((1.0 - tokens) / self._rate)),
            )


def _find_slot(
    memory: mmap.mmap, first: int, tag: int, now: float, rate: float, burst: float
) -> int:
    """The offset of the IP's slot in its chain, or of the slot it should take over."""
    victim = first
    victim_last = math.inf
    for offset in range(first, first + CHAIN * SLOT.size, SLOT.size):
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
