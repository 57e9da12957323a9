"""The credential gate: every request that bears a password passes here, for every school system.

    admit -> Ticket -> (the pipeline answers) -> accepted / rejected -> close

Who judges a password:

- one that matches the student's stored verifier (the password the school
  last accepted) may be answered from the cache: the gate only checks that
  neither the student nor the client address is locked out;
- anything else is judged only by the school, and counts as a failed attempt
  from before it is judged until the school accepts it. If the school cannot
  judge it (down, over budget, breaker open, timeout), it stays counted.

Limits: at most `failed_logins_max` distinct wrong passwords per student and
`failed_logins_ip_max` per client address within `failed_logins_window_s`,
under any concurrency, over every worker and host. An attempt is reserved
before it is judged: its rows are committed, then the distinct passwords of
the subject are counted; it is refused if `max` others are already there.
Of two concurrent attempts the later to count always sees the earlier, so
no more than `max` are ever admitted. A repeated password counts once (it
tells an attacker nothing new), and one the school already refused to this
address is answered 401 without asking the school again. While a student or
an address is locked out, every password, right or wrong, gets 429: a right
one getting 200 would turn the lockout into an oracle.

Per-host state (`GateTable` in services/lockout.py, shared memory across the workers of a host)
keeps the warm path off the database: the current verifier, when it was last
read from the database, lockouts seen, and how many reservations are being
decided right now. A request whose password matches the verifier waits for
those to be decided before it is let through, so a right password sent in a
burst of wrong ones cannot slip past the lockout the others are forming.
Other hosts' failures and password changes are read from the database at
most `verifier_sync_s` after the last read (see docs/protection.md for what
that allows).

When the school accepts a new password, the verifier is replaced in the
database and in this host's table at once, and the sessions opened with the
old one are dropped. When it refuses the password the verifier stood for,
the verifier and the sessions are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db.errors import is_contention
from db.models import LoginFailure
from observability import metrics
from services.addresses import address_key
from services.credentials import Credentials, make_verifier
from services.deferred import DeferredWrites, WriteHealth
from services.errors import InvalidPassword, RateLimited, StorageUnavailable
from services.lockout import (
    HOST_VERIFIER_BYTES,
    IP,
    NO_VERIFIER,
    STUDENT,
    GateTable,
    HostRecord,
    OutageTable,
    attempt_hash,
    lock_end,
    locked_out,
)
from settings import LimitsSettings

log = logging.getLogger("jnufm.gate")

# A password is identified in failure rows by this many hex digits of its verifier.
ATTEMPT_CHARS: Final = 32
# Expired failure rows deleted per reservation. Anything above 1 makes pruning
# outrun inserts, so the table stays near "failures within one window".
PRUNE_BATCH: Final = 64
PENDING_POLL_S: Final = 0.002


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Presented:
    """The credentials of one request, as the gate sees them (never the password)."""

    system: str
    student_id: str
    address: str  # what the address limit counts against (IPv6: its network)
    verifier: str

    @property
    def attempt(self) -> str:
        return self.verifier[:ATTEMPT_CHARS]

    @property
    def student_subject(self) -> str:
        return f"{self.system}:{self.student_id}"

    def host_verifier(self) -> bytes:
        return bytes.fromhex(self.verifier[: 2 * HOST_VERIFIER_BYTES])


# A transaction that lost a race (an InnoDB deadlock, a busy SQLite) is tried this
# many times in all before the database counts as unavailable.
CONTENTION_TRIES: Final = 4

R = TypeVar("R")


class GateStore:
    """The gate's door to the database: verifiers, failed-login rows, dropped sessions.

    Each method is one short transaction, tried again when it only lost a race
    (concurrent inserts and deletes of failure rows deadlock now and then on
    InnoDB); it raises StorageUnavailable when the database cannot be used.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], health: WriteHealth | None = None
    ) -> None:
        self._sessions = sessions
        self._health = health if health is not None else WriteHealth()

    async def _run(
        self, what: str, work: Callable[[AsyncSession], Awaitable[R]], write: bool = True
    ) -> R:
        for attempt in range(CONTENTION_TRIES):
            try:
                if write:
                    async with self._sessions.begin() as db:
                        return await work(db)
                async with self._sessions() as db:
                    return await work(db)
            except SQLAlchemyError as exc:
                if is_contention(exc) and attempt + 1 < CONTENTION_TRIES:
                    await asyncio.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
                    continue
                if write:
                    self._health.refused()
                raise StorageUnavailable(f"{what}: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    async def verifier(self, system: str, student_id: str) -> str | None:
        return await self._run(
            "verifier", lambda db: queries.get_verifier(db, system, student_id), write=False
        )

    async def groups(
        self, scope: str, subject: str, since: datetime, exclude: Sequence[int], limit: int
    ) -> list[queries.FailureGroup]:
        return await self._run(
            "failed logins",
            lambda db: queries.failure_groups(db, scope, subject, since, exclude, limit),
            write=False,
        )

    async def add(
        self, subjects: Sequence[tuple[str, str]], attempt: str, now: datetime
    ) -> list[int]:
        return await self._run(
            "failed logins", lambda db: queries.add_login_failures(db, subjects, attempt, now)
        )

    async def withdraw(self, ids: Sequence[int]) -> None:
        await self._run("failed logins", lambda db: queries.delete_login_failures_by_id(db, ids))

    async def settle(self, ids: Sequence[int], outcome: int) -> None:
        await self._run("failed logins", lambda db: queries.settle_login_failures(db, ids, outcome))

    async def accept(self, p: Presented, name: str | None, now: datetime) -> bool:
        """Withdraw every failure of the password and make it the verifier; True if it
        replaced another one (whose sessions are then dropped)."""

        async def work(db: AsyncSession) -> bool:
            await queries.delete_login_failures_of_attempt(db, p.attempt)
            pk = await queries.upsert_student(db, p.student_id, name, now)
            changed = await queries.set_verifier(db, pk, p.system, p.verifier, now)
            if changed:
                await queries.delete_school_sessions(db, p.system, p.student_id)
            return changed

        return await self._run("verifier", work)

    async def forget(self, p: Presented) -> None:
        """The school refused the password the verifier stood for: drop both and the sessions."""

        async def work(db: AsyncSession) -> None:
            await queries.delete_verifier(db, p.system, p.student_id)
            await queries.delete_school_sessions(db, p.system, p.student_id)

        await self._run("verifier", work)

    async def prune(self, before: datetime) -> None:
        # Opportunistic housekeeping: losing a race for the lock (deadlock, busy
        # SQLite) or a database gone away only delays it to the next reservation.
        with contextlib.suppress(SQLAlchemyError):
            async with self._sessions.begin() as db:
                await queries.prune_login_failures(db, before, PRUNE_BATCH)


class CredentialGate:
    """Admits requests bearing credentials; see the module docstring."""

    def __init__(
        self,
        store: GateStore,
        table: GateTable,
        settings: LimitsSettings,
        secret_key: bytes,
        now: Callable[[], datetime] = utc_now,
        *,
        outage: OutageTable | None = None,
        deferred: DeferredWrites | None = None,
    ) -> None:
        self._store = store
        self._table = table
        self._outage = outage if outage is not None else OutageTable.create(1024)
        self._deferred = deferred if deferred is not None else DeferredWrites(1000, 0.5)
        # False while the database refuses us: the gate then works from this host's memory.
        self.storage_ok = True
        self._reserving: dict[tuple[str, str], asyncio.Future[tuple[int, ...]]] = {}
        # Database reads that refresh this host's table, one at a time per key: the
        # concurrent requests of one student that find it stale share one read.
        self._refreshing: dict[str, asyncio.Future[Any]] = {}
        self._secret_key = secret_key
        self._now = now
        self._window = timedelta(seconds=settings.failed_logins_window_s)
        self._limits = {STUDENT: settings.failed_logins_max, IP: settings.failed_logins_ip_max}
        self._sync_s = settings.verifier_sync_s
        self._pending_wait_s = settings.pending_wait_s
        self._ipv6_prefix = settings.ipv6_prefix
        self.enabled = settings.enabled

    def present(self, system: str, creds: Credentials, ip: str) -> Presented:
        return Presented(
            system,
            creds.student_id,
            address_key(ip, self._ipv6_prefix),
            make_verifier(self._secret_key, system, creds),
        )

    async def admit(self, system: str, creds: Credentials, ip: str) -> Ticket:
        """Let one request with credentials in. Raises RateLimited (locked out) or
        InvalidPassword (this address already had this password refused by the school)."""
        p = self.present(system, creds, ip)
        try:
            ticket = await self._admit(p, creds)
        except RateLimited:
            metrics.record_gate(system, "locked_out")
            raise
        except InvalidPassword:
            metrics.record_gate(system, "known_wrong")
            raise
        metrics.record_gate(system, "verified" if ticket.matches else "reserved")
        return ticket

    async def _admit(self, p: Presented, creds: Credentials) -> Ticket:
        keys = (self._student_key(p), self._address_key(p))
        t = self._now().timestamp()
        # Each record is read once here; the reads below happen again only after an await.
        records = (self._table.read(keys[0], t), self._table.read(keys[1], t))
        if self.enabled:
            self._raise_if_locked(records, t)
        known, waited = await self._known_verifier(p, records[0], t)
        if known is not None and hmac.compare_digest(known, p.host_verifier()):
            if self.enabled and (waited or not self._settled(records, t)):
                # Wrong passwords being counted right now may be forming a lockout.
                await self._await_pending(keys)
                await self._sync_locks(p)
                self._raise_if_known_locked(keys, self._now().timestamp())
            return Ticket(self, p, creds, matches=True)
        ids = await self._reserve(p) if self.enabled else ()
        return Ticket(self, p, creds, matches=False, ids=ids)

    def _settled(self, records: Sequence[HostRecord], t: float) -> bool:
        """No reservation of the student or address is being decided on this host, and
        its lockout state of both is fresh: a matching password needs no more checks."""
        return all(r.pending == 0 and self._fresh(r.lock_at, t) for r in records)

    # Host-table views ---------------------------------------------------------------------

    @staticmethod
    def _student_key(p: Presented) -> str:
        return "s|" + p.student_subject

    @staticmethod
    def _address_key(p: Presented) -> str:
        return "a|" + p.address

    def _subject_key(self, p: Presented, scope: str) -> str:
        return self._student_key(p) if scope == STUDENT else self._address_key(p)

    def _fresh(self, at: float, t: float) -> bool:
        return at > 0 and t - at <= self._sync_s

    def _raise_if_known_locked(self, keys: Sequence[str], t: float) -> None:
        """429 if this host knows that the student or the address is locked out.

        A lockout seen here is trusted until it ends, without the database: one of
        settled failures cannot end sooner (a refused password is never accepted
        later), and one that needs attempts still under way lasts PENDING_RETRY_S.
        So a locked student costs the database nothing however hard it is hammered.
        """
        self._raise_if_locked([self._table.read(key, t) for key in keys], t)

    @staticmethod
    def _raise_if_locked(records: Sequence[HostRecord], t: float) -> None:
        until = max(record.locked_until for record in records)
        if until > t:
            raise locked_out(until - t)

    async def _once(self, key: str, read: Callable[[], Awaitable[R]]) -> R:
        """The result of `read`, shared with every caller that asks for the same key
        while it runs (a failure too)."""
        running: asyncio.Future[R] | None = self._refreshing.get(key)
        if running is None:
            running = asyncio.ensure_future(read())
            self._refreshing[key] = running

            def forget(done: asyncio.Future[R]) -> None:
                if self._refreshing.get(key) is done:
                    del self._refreshing[key]

            running.add_done_callback(forget)
        return await asyncio.shield(running)

    async def _known_verifier(
        self, p: Presented, record: HostRecord, t: float
    ) -> tuple[bytes | None, bool]:
        """The current verifier (its first bytes), from this host's record of the student
        while it is fresh, else from the database; and whether it had to wait for it."""
        if self._fresh(record.verifier_at, t):
            return (None if record.verifier == NO_VERIFIER else record.verifier), False
        try:
            stored = await self._once(
                f"v|{p.system}|{p.student_id}",
                lambda: self._store.verifier(p.system, p.student_id),
            )
        except StorageUnavailable:
            # Degraded: the last verifier this host saw still decides (None if it saw none).
            self._storage(ok=False)
            return (None if record.verifier == NO_VERIFIER else record.verifier), True
        if not len(self._deferred):
            # A read proves little while writes wait (a full disk still reads).
            self._storage(ok=True)
        host = NO_VERIFIER if stored is None else bytes.fromhex(stored[: 2 * HOST_VERIFIER_BYTES])
        self._table.write(self._student_key(p), t, verifier_at=t, verifier=host)
        return (None if stored is None else host), True

    async def _sync_locks(self, p: Presented) -> None:
        """Recompute the lockout state of the student and the address from the database
        where this host's copy is older than `verifier_sync_s`."""
        subjects = ((STUDENT, p.student_subject), (IP, p.address))
        for scope, subject in subjects:
            now = self._now()
            t = now.timestamp()
            key = self._subject_key(p, scope)
            if self._fresh(self._table.read(key, t).lock_at, t):
                continue
            limit = self._limits[scope]
            try:
                groups = await self._once(
                    f"l|{key}",
                    functools.partial(
                        self._store.groups, scope, subject, now - self._window, (), 2 * limit
                    ),
                )
            except StorageUnavailable:
                self._storage(ok=False)
                return  # degraded: what this host knows stands
            end = lock_end(groups, limit, self._window, now)
            self._table.write(
                key,
                t,
                lock_at=t,
                locked_until=end.timestamp() if end is not None else 0.0,
                failures=len(groups),
            )

    async def _await_pending(self, keys: Sequence[str]) -> None:
        """Wait until no reservation for this student or address is being decided on this host."""
        deadline = time.monotonic() + self._pending_wait_s
        while time.monotonic() < deadline:
            t = self._now().timestamp()
            if all(self._table.read(key, t).pending == 0 for key in keys):
                return
            await asyncio.sleep(PENDING_POLL_S)
        log.warning("reservations for a student or address took over %.1fs", self._pending_wait_s)

    # Reservations ----------------------------------------------------------------------------

    async def _reserve(self, p: Presented) -> tuple[int, ...]:
        """Count the attempt as a failure of the student and the address, before it is judged.

        Concurrent requests of this worker with the same password from the same
        address share one reservation (they are one attempt, and a burst of them
        must not queue a burst of writes). Raises RateLimited if the student or the
        address already has its limit of other failed passwords, InvalidPassword if
        the school already refused this password to this address.
        """
        key = (p.attempt, p.address)
        shared = self._reserving.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        self._reserving[key] = future
        try:
            ids = await self._reserve_now(p)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no one else waiting
            raise
        else:
            future.set_result(ids)
            return ids
        finally:
            del self._reserving[key]

    async def _reserve_now(self, p: Presented) -> tuple[int, ...]:
        now = self._now()
        t = now.timestamp()
        keys = (self._student_key(p), self._address_key(p))
        for key in keys:
            self._table.write(key, t, pending=1)
        try:
            try:
                return await self._count_in(p, now)
            except StorageUnavailable:
                self._storage(ok=False)
                self._count_on_host(p, now)
                raise
        finally:
            for key in keys:
                self._table.write(key, self._now().timestamp(), pending=-1)

    async def _count_in(self, p: Presented, now: datetime) -> tuple[int, ...]:
        subjects = ((STUDENT, p.student_subject), (IP, p.address))
        ids = tuple(await self._store.add(subjects, p.attempt, now))
        self._storage(ok=True)
        since = now - self._window
        refused: dict[str, float] = {}
        formed: dict[str, float] = {}
        known_wrong = False
        # Counted after the commit, so that of two concurrent attempts the later one
        # always sees the earlier one.
        for scope, subject in subjects:
            limit = self._limits[scope]
            others = await self._store.groups(scope, subject, since, ids, 2 * limit + 8)
            end = lock_end(others, limit, self._window, now)
            if end is not None:
                refused[scope] = end.timestamp()
                continue
            mine = [g for g in others if g.attempt == p.attempt]
            if scope == IP and mine and mine[0].refused:
                known_wrong = True
            with_mine = sorted(
                [g for g in others if g.attempt != p.attempt]
                + [queries.FailureGroup(p.attempt, now, False, False)],
                key=lambda g: g.latest,
                reverse=True,
            )
            end = lock_end(with_mine, limit, self._window, now)
            if end is not None:
                formed[scope] = end.timestamp()
            self._table.write(self._subject_key(p, scope), now.timestamp(), failures=len(with_mine))
        t = now.timestamp()
        if refused or known_wrong:
            await self._store.withdraw(ids)
            if refused:
                self._mark_locked(p, refused, t)
                raise locked_out(max(refused.values()) - t)
            raise InvalidPassword()
        # Admitted. If this attempt completes a lockout, every later request sees it here at once.
        self._mark_locked(p, formed, t)
        await self._store.prune(since)
        return ids

    def _count_on_host(self, p: Presented, now: datetime) -> None:
        """The database is away: count the attempt in this host's memory instead, and
        write it to the database when it is back. Raises RateLimited if the student or
        the address reached its limit (what the database last said, plus what this host
        counted since)."""
        t = now.timestamp()
        since = t - self._window.total_seconds()
        mine = attempt_hash(p.attempt)
        window_end = t + self._window.total_seconds()
        counts: dict[str, int] = {}
        for scope in (STUDENT, IP):
            key = self._subject_key(p, scope)
            known = self._table.read(key, t).failures
            others = self._outage.attempts(key, since) - {mine}
            if known + len(others) >= self._limits[scope]:
                for locked in (STUDENT, IP):
                    self._table.write(
                        self._subject_key(p, locked), t, lock_at=t, locked_until=window_end
                    )
                raise locked_out(window_end - t)
            counts[scope] = known + len(others) + 1
        for scope in (STUDENT, IP):
            key = self._subject_key(p, scope)
            self._outage.add(key, mine, t)
            if counts[scope] >= self._limits[scope]:
                self._table.write(key, t, lock_at=t, locked_until=window_end)
        subjects = ((STUDENT, p.student_subject), (IP, p.address))
        self._defer("failed_login", lambda: self._store_unjudged(subjects, p.attempt, now))

    async def _store_unjudged(
        self, subjects: Sequence[tuple[str, str]], attempt: str, at: datetime
    ) -> None:
        ids = await self._store.add(subjects, attempt, at)
        await self._store.settle(ids, LoginFailure.UNJUDGED)

    def _storage(self, ok: bool) -> None:
        if ok != self.storage_ok:
            self.storage_ok = ok
            metrics.set_storage_degraded(not ok)
            if ok:
                log.info("the database answers again: the gate works from it")
            else:
                log.warning("the database is away: the gate works from this host's memory")

    def _defer(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        self._deferred.add(what, write)

    def _mark_locked(self, p: Presented, ends: dict[str, float], t: float) -> None:
        for scope, until in ends.items():
            self._table.write(self._subject_key(p, scope), t, lock_at=t, locked_until=until)

    # Outcomes ----------------------------------------------------------------------------------

    async def _accepted(self, p: Presented) -> None:
        metrics.record_gate(p.system, "accepted")
        now = self._now()
        stored = True
        try:
            await self._store.accept(p, None, now)
        except StorageUnavailable:
            stored = False
            self._storage(ok=False)
            self._defer("verifier", lambda: self._store_accept(p, now))
        t = now.timestamp()
        # The new verifier holds at once for every worker of this host. The attempt no
        # longer counts, so the lockout states (and counts) are read again from the
        # database, where a lockout that still holds is found again.
        self._table.write(
            self._student_key(p),
            t,
            verifier_at=t,
            verifier=p.host_verifier(),
            lock_at=0.0,
            locked_until=0.0,
        )
        self._table.write(self._address_key(p), t, lock_at=0.0, locked_until=0.0)
        if stored:
            await self._sync_locks(p)

    async def _store_accept(self, p: Presented, now: datetime) -> None:
        await self._store.accept(p, None, now)

    async def _rejected(self, p: Presented, ids: Sequence[int], matched: bool) -> None:
        metrics.record_gate(p.system, "refused")
        if matched:
            t = self._now().timestamp()
            self._table.write(self._student_key(p), t, verifier_at=t, verifier=NO_VERIFIER)
            await self._write("verifier", lambda: self._store.forget(p))
        if ids:
            await self._write("failed_login", lambda: self._store.settle(ids, LoginFailure.REFUSED))

    async def _write(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        """Write now, or later if the database is away."""
        try:
            await write()
        except StorageUnavailable:
            self._storage(ok=False)
            self._defer(what, write)


class Ticket:
    """One request's passage through the gate. `matches`: the password matches the verifier.

    The pipeline tells it how the school judged the password (`accepted`,
    `rejected`), or nothing; `release` ends it (a fetch that outlives its
    request `hold`s it until it ends too).
    """

    def __init__(
        self,
        gate: CredentialGate,
        presented: Presented,
        creds: Credentials,
        matches: bool,
        ids: Sequence[int] = (),
    ) -> None:
        self._gate = gate
        self.presented = presented
        self._creds = creds
        self.matches = matches
        self._ids = tuple(ids)
        self._settled = False
        self._holders = 1

    @property
    def address(self) -> str:
        """What the client address counts as (for per-address limits)."""
        return self.presented.address

    @property
    def counted(self) -> bool:
        """Whether the attempt is counted as a failure right now."""
        return bool(self._ids) and not self._settled

    def credentials(self) -> tuple[str, str]:
        """Student number and password, for the school's login form only."""
        return self._creds.student_id, self._creds.password

    async def before_login(self) -> None:
        """A login is about to let the school judge this password: count it first.

        A password that matched the verifier is counted only now (its stored
        session failed or expired); others were counted when admitted.
        """
        if self._ids or self._settled or not self._gate.enabled:
            return
        self._ids = await self._gate._reserve(self.presented)

    async def proven_elsewhere(self) -> bool:
        """Whether the school accepted this password for another request meanwhile
        (the stored verifier is now this one); if so the ticket matches from now on."""
        if self.matches:
            return True
        stored = await self._gate._store.verifier(self.presented.system, self.presented.student_id)
        if stored is None or not hmac.compare_digest(stored, self.presented.verifier):
            return False
        self.matches = True
        await self.accepted()
        return True

    async def accepted(self) -> None:
        """The school accepted the password (directly or through a shared fetch)."""
        if self._settled:
            return
        self._settled = True
        await asyncio.shield(self._gate._accepted(self.presented))

    async def rejected(self) -> None:
        """The school refused the password."""
        if self._settled:
            return
        self._settled = True
        await asyncio.shield(self._gate._rejected(self.presented, self._ids, self.matches))

    def hold(self) -> None:
        """One more piece of work (a background fetch) must end before the ticket does."""
        self._holders += 1

    async def release(self) -> None:
        """End of one holder's work; at the last, an unsettled attempt of a password that
        did not match the verifier stays counted, one that matched is withdrawn (the
        school never judged it)."""
        self._holders -= 1
        if self._holders > 0 or self._settled or not self._ids:
            return
        self._settled = True
        gate, ids = self._gate, self._ids
        if self.matches:
            await asyncio.shield(gate._write("failed_login", lambda: gate._store.withdraw(ids)))
        else:
            metrics.record_gate(self.presented.system, "unjudged")
            await asyncio.shield(
                gate._write("failed_login", lambda: gate._store.settle(ids, LoginFailure.UNJUDGED))
            )
