"""Lockouts: what every worker of a host knows about a student or a client (a student's
current verifier; whether a student or an address is locked out, or a registered client
slowed down; how many passwords are being judged right now; how many distinct students
an address has proven right lately), and the rules that say until when.

`GateTable` and `OutageTable` live in memory the master maps before forking
(services/shared_slots.py), so the warm path of the credential gate
(services/gate.py) never waits for the database; the database stays the truth
that every host shares.
"""

from __future__ import annotations

import mmap
import platform
import struct
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from db import queries
from services import codes
from services.errors import RateLimited
from services.shared_slots import SharedSlots, key_hash

STUDENT: Final = "student"
IP: Final = "ip"  # an anonymous client, by its address
CLIENT: Final = "client"  # a registered client, by its name

# Verifier bytes kept per student in the host table (128 bits: no accidental match).
HOST_VERIFIER_BYTES: Final = 16
NO_VERIFIER: Final = bytes(HOST_VERIFIER_BYTES)
# A reservation being decided takes two short transactions. A count left behind
# by a worker killed in between is ignored after this long.
PENDING_TTL_S: Final = 10.0

# A subject whose limit is reached only because requests are still being judged
# may be free again in moments (their passwords may be accepted): retry after this.
PENDING_RETRY_S: Final = 2.0

# tag, verifier_at, verifier (first bytes; zeros = none), lock_at, locked_until (for a
# registered client: slowed until), failures (distinct wrong passwords in the window as of
# lock_at), pending, pending_at, used_at, then the population of an address: distinct
# students proven right from it, counted in windows (pop_at: when the current one began;
# for an (address, student) pair record: when the pair was last counted), pop_now, pop_prev.
# Times are wall-clock seconds, comparable across processes and hosts.
GATE_SLOT: Final = struct.Struct("=Qd16sddiidddii")
# Each gate slot starts with a sequence number: odd while a writer (holding the chain's
# lock) changes the slot, bumped again when it is done. Readers take no lock: they read
# the number, the record, and the number again, and retry if it was odd or moved.
GATE_SEQ: Final = struct.Struct("=Q")
# A slot's sequence number and tag (the record's first field), read together.
GATE_HEAD: Final = struct.Struct("=QQ")
# A reader that keeps meeting writers takes the lock after this many tries.
SEQ_READ_TRIES: Final = 4
# Records a process remembers where it read them (then it forgets them all; ~0.5 KB
# each: the hot students and addresses of a worker, not every one).
SEEN_RECORDS: Final = 1024
# Lock-free reads rely on the CPU keeping stores (and loads) in program order, as
# x86-64 does; elsewhere every read takes the lock.
LOCK_FREE_READS: Final = platform.machine().lower() in ("x86_64", "amd64")
# Failed passwords a host remembers per subject while its database is away:
# tag, then (attempt hash, when) pairs.
OUTAGE_ATTEMPTS: Final = 8
OUTAGE_SLOT: Final = struct.Struct("=Q" + "Qd" * OUTAGE_ATTEMPTS)


class HostRecord(NamedTuple):
    """What this host knows about one student or address, and since when (a named tuple:
    made on every read of the table, three times a warm request)."""

    verifier_at: float  # when the verifier was read from (or written to) the database; 0 never
    verifier: bytes
    lock_at: float  # when the lockout state was last computed from the database; 0 never
    locked_until: float
    failures: int  # distinct failed passwords in the window, as of lock_at
    pending: int  # reservations being decided on this host right now
    pop_at: float = 0.0
    pop_now: int = 0
    pop_prev: int = 0

    def population(self, now: float, window_s: float) -> float:
        """Distinct students proven right from this address within about one window:
        the current window's count and the share of the previous one still inside."""
        elapsed = now - self.pop_at
        if self.pop_at <= 0 or elapsed >= 2 * window_s:
            return 0.0
        if elapsed >= window_s:
            return self.pop_now * (1.0 - (elapsed - window_s) / window_s)
        return self.pop_now + self.pop_prev * (1.0 - elapsed / window_s)


EMPTY: Final = HostRecord(0.0, NO_VERIFIER, 0.0, 0.0, 0, 0)


def _record(values: tuple[Any, ...], now: float) -> HostRecord:
    _, v_at, verifier, l_at, until, failures, pending, p_at, _, pop_at, pop_now, pop_prev = values
    if pending and now - p_at > PENDING_TTL_S:
        pending = 0
    return HostRecord(v_at, verifier, l_at, until, failures, pending, pop_at, pop_now, pop_prev)


# Where a record was read: its slot, the slot's (sequence number, tag) then, its values.
Seen = tuple[int, tuple[int, int], tuple[Any, ...]]


class GateTable(SharedSlots):
    """Per-host gate state for students and addresses, shared by every worker of the host."""

    slot_size = GATE_SEQ.size + GATE_SLOT.size
    table_name = "jnufm-gate-table"

    def __init__(self, fd: int, memory: mmap.mmap, slots: int) -> None:
        super().__init__(fd, memory, slots)
        # Records this process read lately, by key: (slot, the slot's (sequence number,
        # tag) then, values). A forked worker starts with the master's: a slot's head
        # says whether they still hold.
        self._seen: dict[str, Seen] = {}

    def read(self, key: str, now: float) -> HostRecord:
        """The record of key (an empty one if this host holds none).

        A record read before is read again only if its slot's sequence number or tag
        moved since (every write to a slot moves its number, and a key's record never
        lives in two slots): one read of the slot's head instead of the chain's walk.
        Without lock-free reads every read takes the lock."""
        if LOCK_FREE_READS:
            seen = self._seen.get(key)
            if seen is not None and GATE_HEAD.unpack_from(self.memory, seen[0]) == seen[1]:
                return _record(seen[2], now)
        tag = key_hash(key)
        first = self.chain_start(tag)
        if LOCK_FREE_READS:
            for _ in range(SEQ_READ_TRIES):
                found = self._read_seq(self.memory, first, tag)
                if isinstance(found, HostRecord):
                    return found  # none: EMPTY
                if found is not None:
                    if len(self._seen) >= SEEN_RECORDS:
                        self._seen.clear()
                    self._seen[key] = found
                    return _record(found[2], now)
        with self.locked(first) as memory:
            return self._read_chain(memory, first, tag, now)

    def _read_seq(self, memory: mmap.mmap, first: int, tag: int) -> Seen | HostRecord | None:
        """The record read without the lock: (its slot, the slot's head, its values), EMPTY
        if there is none, None if a writer got in the way.

        Another key's slot costs one read of its number and tag (a slot being written
        still sends the reader round again); only the key's own is read whole, between
        two reads of its number."""
        for offset in self.chain(first):
            before, found = GATE_HEAD.unpack_from(memory, offset)
            if before & 1:
                return None
            if found != tag:
                continue
            values = GATE_SLOT.unpack_from(memory, offset + GATE_SEQ.size)
            (after,) = GATE_SEQ.unpack_from(memory, offset)
            if after != before or values[0] != tag:
                return None
            return offset, (before, tag), values
        return EMPTY

    def _read_chain(self, memory: mmap.mmap, first: int, tag: int, now: float) -> HostRecord:
        for offset in self.chain(first):
            values = GATE_SLOT.unpack_from(memory, offset + GATE_SEQ.size)
            if values[0] == tag:
                return _record(values, now)
        return EMPTY

    def write(
        self,
        key: str,
        now: float,
        *,
        verifier_at: float | None = None,
        verifier: bytes | None = None,
        lock_at: float | None = None,
        locked_until: float | None = None,
        failures: int | None = None,
        pending: int = 0,
        population: Callable[[float, int, int], tuple[float, int, int]] | None = None,
    ) -> None:
        """Change the given fields of key's record (creating it); `pending` is a delta;
        `population` maps (pop_at, pop_now, pop_prev) to their new values."""
        tag = key_hash(key)
        first = self.chain_start(tag)
        with self.locked(first) as memory:
            slot = self._slot(memory, first, tag, now)
            offset = slot + GATE_SEQ.size
            (found, v_at, old, l_at, until, known, count, p_at, _, pop_at, pop_now, pop_prev) = (
                GATE_SLOT.unpack_from(memory, offset)
            )
            if found != tag:
                v_at, old, l_at, until, known, count, p_at = 0.0, NO_VERIFIER, 0.0, 0.0, 0, 0, 0.0
                pop_at, pop_now, pop_prev = 0.0, 0, 0
            if count and now - p_at > PENDING_TTL_S:
                count = 0
            if pending > 0:
                p_at = now
            if population is not None:
                pop_at, pop_now, pop_prev = population(pop_at, pop_now, pop_prev)
            (seq,) = GATE_SEQ.unpack_from(memory, slot)
            GATE_SEQ.pack_into(memory, slot, seq + 1)  # odd: readers wait or retry
            GATE_SLOT.pack_into(
                memory,
                offset,
                tag,
                v_at if verifier_at is None else verifier_at,
                old if verifier is None else verifier,
                l_at if lock_at is None else lock_at,
                until if locked_until is None else locked_until,
                known if failures is None else failures,
                max(0, count + pending),
                p_at,
                now,
                pop_at,
                pop_now,
                pop_prev,
            )
            GATE_SEQ.pack_into(memory, slot, seq + 2)

    def count_proven(self, pair: str, address: str, now: float, window_s: float) -> float:
        """Count a student proven right from an address in the address's population, once
        per window per (address, student) pair (`pair` names it). Returns when the pair
        was counted: now, or earlier within the window (then it is not counted again)."""
        counted_at = self.read(pair, now).pop_at
        if counted_at > now - window_s:
            return counted_at
        self.write(pair, now, population=lambda at, n, p: (now, n, p))

        def add(at: float, count: int, prev: int) -> tuple[float, int, int]:
            elapsed = now - at
            if at <= 0 or elapsed >= 2 * window_s:
                return now, 1, 0
            if elapsed >= window_s:
                return at + window_s, 1, count
            return at, count + 1, prev

        self.write(address, now, population=add)
        return now

    def _slot(self, memory: mmap.mmap, first: int, tag: int, now: float) -> int:
        """Key's slot in its chain, else the one to take over: empty, else the least
        recently used that is neither locked nor being decided, else the least recently used."""
        best, best_rank = first, (3, 0.0)
        for offset in self.chain(first):
            found, _, _, _, until, _, pending, p_at, used, *_ = GATE_SLOT.unpack_from(
                memory, offset + GATE_SEQ.size
            )
            if found == tag:
                return offset
            busy = until > now or (pending > 0 and now - p_at <= PENDING_TTL_S)
            rank = (0, 0.0) if found == 0 else ((2 if busy else 1), used)
            if rank < best_rank:
                best, best_rank = offset, rank
        return best


class OutageTable(SharedSlots):
    """Failed passwords per student and address, counted by this host while its database
    is away (at most OUTAGE_ATTEMPTS each; the oldest is forgotten first)."""

    slot_size = OUTAGE_SLOT.size
    table_name = "jnufm-gate-outage"

    def add(self, key: str, attempt: int, now: float) -> None:
        tag = key_hash(key)
        first = self.chain_start(tag)
        with self.locked(first) as memory:
            offset = self._slot(memory, first, tag)
            values = list(OUTAGE_SLOT.unpack_from(memory, offset))
            pairs = [] if values[0] != tag else list(zip(values[1::2], values[2::2], strict=True))
            pairs = [(a, at) for a, at in pairs if a and a != attempt]
            pairs = [*pairs, (attempt, now)][-OUTAGE_ATTEMPTS:]
            pairs += [(0, 0.0)] * (OUTAGE_ATTEMPTS - len(pairs))
            OUTAGE_SLOT.pack_into(memory, offset, tag, *(x for pair in pairs for x in pair))

    def attempts(self, key: str, since: float) -> set[int]:
        """The distinct attempts recorded for key after `since`."""
        tag = key_hash(key)
        first = self.chain_start(tag)
        with self.locked(first) as memory:
            for offset in self.chain(first):
                values = OUTAGE_SLOT.unpack_from(memory, offset)
                if values[0] == tag:
                    return {
                        a
                        for a, at in zip(values[1::2], values[2::2], strict=True)
                        if a and at > since
                    }
        return set()

    def _slot(self, memory: mmap.mmap, first: int, tag: int) -> int:
        """Key's slot, else an empty one, else the one whose newest entry is oldest."""
        best, best_at = first, float("inf")
        for offset in self.chain(first):
            values = OUTAGE_SLOT.unpack_from(memory, offset)
            if values[0] == tag:
                return offset
            newest = 0.0 if values[0] == 0 else max(values[2::2])
            if newest < best_at:
                best, best_at = offset, newest
        return best


def attempt_hash(attempt: str) -> int:
    return int(attempt[:16], 16) or 1


def lock_end(
    groups: Sequence[queries.FailureGroup], limit: int, window: timedelta, now: datetime
) -> datetime | None:
    """Until when a subject with these distinct failed passwords (newest first) is locked
    out, or None if it is below its limit.

    Passwords whose requests are still under way count (else a burst could overshoot),
    but they may yet be accepted and withdrawn: a lockout that needs them to reach the
    limit is held only PENDING_RETRY_S at a time.
    """
    if len(groups) < limit:
        return None
    settled = [g for g in groups if g.settled]
    if len(settled) >= limit:
        return settled[limit - 1].latest + window
    return min(groups[limit - 1].latest + window, now + timedelta(seconds=PENDING_RETRY_S))


def allowed_wrong(base: int, per_student: float, ceiling: int, population: float) -> int:
    """Wrong passwords an anonymous address may send per window: `base` for an address
    nobody has proven a password from, `per_student` more for each distinct student
    proven right from it (a campus NAT, a gateway), never more than `ceiling` (a ceiling
    below the base leaves the base)."""
    return max(1, base, min(ceiling, base + int(per_student * population)))


def locked_out(
    retry_after_s: float, scope: str = STUDENT, subject: str | None = None
) -> RateLimited:
    whom = "this student number" if scope == STUDENT else "this address"
    return RateLimited(
        codes.TOO_MANY_FAILED_LOGINS,
        f"too many failed logins for {whom}; try again later",
        max(1, int(retry_after_s + 0.999)),
        scope,
        subject,
    )


def slowed_down(retry_after_s: float) -> RateLimited:
    return RateLimited(
        codes.CLIENT_SLOWED,
        "this client sent too many wrong passwords: logins that need the school are slowed "
        "down; students with a token or a password proven right are not",
        max(1, int(retry_after_s + 0.999)),
    )
