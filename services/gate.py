"""The credential gate: every request that bears a password passes here, for every school system.

    admit -> GateTicket -> (the pipeline answers) -> accepted / rejected -> release

Who judges a password:

- one that matches the student's stored verifier (the password the school
  last accepted) may be answered from the cache: the gate only checks that
  the student (and an anonymous client's address) is not locked out;
- anything else is judged only by the school, by a fresh login;
- credentials from a student's token (`Credentials.proven`) are no guess: no
  limit applies to them, and a refusal ends the tokens made with them.

What counts as a wrong password (docs/protection.md, "Counting"): only a
password judged wrong, by the school (REFUSED) or by the stored verifier (a
password other than the one the school last accepted: MISMATCHED, since the
answer it gets already differs from the right one's). A request refused
before anything judged it (rate limit, budget, breaker, school or database
down, deadline, shutdown) never counts, against anyone: a student's password
without a verifier is counted while it waits for the school (PENDING, so a
burst cannot overshoot the student's limit) and withdrawn if the school
never says.

Limits, within `failed_logins_window_s`, over every worker and host:

- a student: `failed_logins_max` distinct wrong passwords, then every password
  gets 429 (a right one answered would make the lockout an oracle);
- an anonymous address: `failed_logins_ip_max`, plus `failed_logins_ip_per_student`
  for each distinct student proven right from it (a campus NAT), at most
  `failed_logins_ip_ceiling`; then every password from it gets 429 (tokens not);
- a registered client: its `failures_max`; then it is slowed down (logins the
  school must judge at `clients.slowed_logins_per_min`), never locked: the
  students behind it keep their answers, and lockouts behind it are per student.

A student's attempt is reserved before it is judged: its row is committed,
then the distinct passwords of the student are counted; it is refused if
`max` others are there. Of two concurrent attempts the later to count always
sees the earlier. A client's rows are written once a password is judged wrong,
and its limit is checked again right before each login, so it can be passed
by at most the logins in flight (the school budget). A repeated password
counts once, and one the school already refused to this client is answered
401 without asking the school again.

Per-host state (`GateTable` in services/lockout.py, shared memory across the
workers of a host) keeps the warm path off the database: the current verifier,
lockouts seen, reservations being decided, and each address's population.
Other hosts' failures and password changes are read from the database at most
`verifier_sync_s` after the last read.

When the school accepts a new password, the verifier is replaced in the
database and in this host's table at once, the sessions opened with the old
one are dropped and the tokens made with it end. When it refuses the password
the verifier stood for, the verifier and the sessions are dropped and the
tokens made with that password end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries, tokens
from db.models import LoginFailure
from observability import metrics
from services import attempts
from services.callers import Caller
from services.credentials import Credentials, make_verifier, pseudonym, verifier_bytes
from services.deferred import DeferredWrites, WriteHealth
from services.errors import InvalidPassword, RateLimited, StorageUnavailable
from services.lockout import (
    CLIENT,
    HOST_VERIFIER_BYTES,
    IP,
    NO_VERIFIER,
    STUDENT,
    GateTable,
    HostRecord,
    OutageTable,
    allowed_wrong,
    attempt_hash,
    lock_end,
    locked_out,
    slowed_down,
)
from services.rates import RequestRateLimiter
from services.storage import transaction
from settings import LimitsSettings

log = logging.getLogger("jnufm.gate")
decisions = logging.getLogger("jnufm.decisions")

# A password is identified in failure rows by this many hex digits of its verifier.
ATTEMPT_CHARS: Final = 32
# Expired failure rows deleted per reservation. Anything above 1 makes pruning
# outrun inserts, so the table stays near "failures within one window".
PRUNE_BATCH: Final = 64
PENDING_POLL_S: Final = 0.002
# (address, student) pairs a worker remembers as counted (then it forgets them all;
# ~0.2 KB each).
PAIRS_REMEMBERED: Final = 4096


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Lockout:
    """A student or an address locked out, or a registered client slowed down, right now."""

    scope: str  # "student", "ip", "client" or "account"
    who: str  # a student's pseudonym and system, an address, a client's name
    wrong: int  # distinct wrong passwords in the window
    allowed: int
    until: datetime


# The scope of 2013 accounts' wrong passwords (services/accounts.py), in the same table.
ACCOUNT: Final = "account"
# Failure groups read for the operators' view of lockouts, at most.
LOCKOUT_REPORT_ROWS: Final = 5000


@dataclass(frozen=True, slots=True)
class Presented:
    """The credentials of one request and who sent them, as the gate sees them (never the
    password)."""

    system: str
    student_id: str
    caller: Caller
    verifier: str
    proven: bool = False

    @property
    def attempt(self) -> str:
        return self.verifier[:ATTEMPT_CHARS]

    @property
    def student_subject(self) -> str:
        return student_subject(self.system, self.student_id)

    @property
    def scope(self) -> str:
        """The caller's scope in failure rows: IP (anonymous) or CLIENT (registered)."""
        return CLIENT if self.caller.client is not None else IP

    @property
    def registered(self) -> bool:
        return self.caller.client is not None

    def host_verifier(self) -> bytes:
        return bytes.fromhex(self.verifier[: 2 * HOST_VERIFIER_BYTES])


R = TypeVar("R")


def student_subject(system: str, student_id: str) -> str:
    """How failure rows name a student of a system."""
    return f"{system}:{student_id}"


def student_key(subject: str) -> str:
    """A student's record in the host table."""
    return "s|" + subject


class GateStore:
    """The gate's door to the database: verifiers, failed-login rows, dropped sessions and
    ended tokens.

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
        return await transaction(
            self._sessions, what, work, write=write, refused=self._health.refused
        )

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
        self, rows: Sequence[queries.FailureRow], attempt: str, now: datetime
    ) -> list[int]:
        return await self._run(
            "failed logins", lambda db: queries.add_login_failures(db, rows, attempt, now)
        )

    async def withdraw(self, ids: Sequence[int]) -> None:
        await self._run("failed logins", lambda db: queries.delete_login_failures_by_id(db, ids))

    async def settle(self, ids: Sequence[int], outcome: int) -> None:
        await self._run("failed logins", lambda db: queries.settle_login_failures(db, ids, outcome))

    async def refuse(
        self, ids: Sequence[int], caller_row: queries.FailureRow | None, attempt: str, now: datetime
    ) -> None:
        """The school refused a password: its student rows become REFUSED, and the caller
        gets a REFUSED row of its own (its MISMATCHED one, if any, turns REFUSED)."""

        async def work(db: AsyncSession) -> None:
            await queries.settle_login_failures(db, ids, LoginFailure.REFUSED)
            if caller_row is not None:
                await queries.add_login_failures(db, [caller_row], attempt, now)

        await self._run("failed logins", work)

    async def accept(self, p: Presented, name: str | None, now: datetime) -> int:
        """Withdraw every failure of the password and make it the verifier; if it replaced
        another one, its sessions are dropped. Tokens made with any other password end;
        returns how many."""

        async def work(db: AsyncSession) -> int:
            await queries.delete_login_failures_of_attempt(db, p.attempt)
            pk = await queries.upsert_student(db, p.student_id, name, now)
            if await queries.set_verifier(db, pk, p.system, p.verifier, now):
                await queries.delete_school_sessions(db, p.system, p.student_id)
            # Also tokens from before tokens remembered their password.
            return await tokens.end_tokens(
                db, p.student_id, p.system, now, "password_changed", keep=p.attempt
            )

        return await self._run("verifier", work)

    async def forget(self, p: Presented, now: datetime) -> None:
        """The school refused the password the verifier stood for: drop both and the
        sessions, and end the tokens made with that password."""

        async def work(db: AsyncSession) -> None:
            await queries.delete_verifier(db, p.system, p.student_id)
            await queries.delete_school_sessions(db, p.system, p.student_id)
            await tokens.end_tokens(
                db, p.student_id, p.system, now, "password_changed", only=p.attempt
            )

        await self._run("verifier", work)

    async def recent(self, since: datetime, limit: int) -> list[queries.SubjectGroup]:
        return await self._run(
            "failed logins",
            lambda db: queries.recent_failure_groups(db, since, limit),
            write=False,
        )

    async def end_tokens_of(self, p: Presented, now: datetime) -> None:
        """The school refused a password a token holds: every token made with it ends."""
        await self._run(
            "tokens",
            lambda db: tokens.end_tokens(
                db, p.student_id, p.system, now, "password_changed", only=p.attempt
            ),
        )

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
        slowed: RequestRateLimiter | None = None,
        on_password_change: Callable[[str, str], None] | None = None,
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
        # (address, student) pairs counted in their address's population, until when the
        # count holds: the warm path reads the table's pair record once per window.
        self._pairs_counted: dict[str, float] = {}
        self._secret_key = secret_key
        self._now = now
        self._limits = settings
        self._window = timedelta(seconds=settings.failed_logins_window_s)
        self._sync_s = settings.verifier_sync_s
        self._pending_wait_s = settings.pending_wait_s
        # Logins that need the school, of a client that is slowed down (per client).
        self._slowed = slowed
        self._on_password_change = on_password_change
        self.enabled = settings.enabled

    def present(self, system: str, creds: Credentials, caller: Caller) -> Presented:
        return Presented(
            system,
            creds.student_id,
            caller,
            make_verifier(self._secret_key, system, creds),
            creds.proven,
        )

    def attempt_of(self, system: str, creds: Credentials) -> str:
        """How failure rows and tokens name this password (a prefix of its verifier)."""
        return make_verifier(self._secret_key, system, creds)[:ATTEMPT_CHARS]

    def pseudonym(self, student_id: str) -> str:
        """How logs name a student (services.credentials.pseudonym)."""
        return pseudonym(self._secret_key, student_id)

    async def admit(self, system: str, creds: Credentials, caller: Caller) -> GateTicket:
        """Let one request with credentials in. Raises RateLimited (locked out) or
        InvalidPassword (this client already had this password refused by the school)."""
        p = self.present(system, creds, caller)
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

    async def _admit(self, p: Presented, creds: Credentials) -> GateTicket:
        keys = (self._student_key(p), self._caller_key(p))
        t = self._now().timestamp()
        # Each record is read once here; the reads below happen again only after an await.
        records = (self._table.read(keys[0], t), self._table.read(keys[1], t))
        if p.proven:
            # A token's password: no guess, no limit. It still needs the verifier to be
            # answered from the cache; else the school judges it.
            known, _ = await self._known_verifier(p, records[0], t)
            matches = known is not None and hmac.compare_digest(known, p.host_verifier())
            return GateTicket(self, p, creds, matches=matches)
        if self.enabled:
            self._raise_if_locked(p, records, t)
        known, waited = await self._known_verifier(p, records[0], t)
        if known is not None and hmac.compare_digest(known, p.host_verifier()):
            if self.enabled and (waited or not self._settled(records, t)):
                # Wrong passwords being counted right now may be forming a lockout.
                await self._await_pending(keys[0])
                await self._sync_locks(p)
                self._raise_if_locked(
                    p,
                    [self._table.read(k, self._now().timestamp()) for k in keys],
                    self._now().timestamp(),
                )
            self._proven_right(p, t)
            return GateTicket(self, p, creds, matches=True)
        # A password other than the verifier: judged wrong by the verifier already (if
        # there is one), by the school in a moment.
        mismatched = known is not None
        ids = await self._reserve(p, mismatched) if self.enabled else ()
        return GateTicket(self, p, creds, matches=False, ids=ids, mismatched=mismatched)

    def proves(self, system: str, creds: Credentials, caller: Caller) -> bool:
        """Whether this host's table alone proves the password right with nothing to
        decide (a warm hit's short way, services/pipeline/ready.py): what `admit` finds
        for such a password without an await, counted as admit counts it. False for
        anything else (no fresh verifier, another password, a lockout, a reservation
        being decided, a lockout state to read again): then `admit` decides, the whole
        way, so no decision of the gate differs."""
        t = self._now().timestamp()
        subject = student_subject(system, creds.student_id)
        student = self._table.read(student_key(subject), t)
        if not self._fresh(student.verifier_at, t) or student.verifier == NO_VERIFIER:
            return False
        mine = verifier_bytes(self._secret_key, system, creds)[:HOST_VERIFIER_BYTES]
        if not hmac.compare_digest(student.verifier, mine):
            return False
        if not creds.proven:
            registered = caller.client is not None
            if self.enabled:
                records = (student, self._table.read(caller.key, t))
                if attempts.locked_scope(student, records[1], registered, t) is not None:
                    return False
                if not self._settled(records, t):
                    return False
            if not registered:
                self._count_proven(caller.key, subject, t)
        metrics.record_gate(system, "verified")
        return True

    def _settled(self, records: Sequence[HostRecord], t: float) -> bool:
        """No reservation of the student is being decided on this host, and the lockout
        state of the student and the caller is fresh: a matching password needs no more."""
        student, caller = records
        return (
            student.pending == 0
            and self._fresh(student.lock_at, t)
            and self._fresh(caller.lock_at, t)
        )

    # Host-table views ---------------------------------------------------------------------

    @staticmethod
    def _student_key(p: Presented) -> str:
        return student_key(p.student_subject)

    @staticmethod
    def _caller_key(p: Presented) -> str:
        return p.caller.key

    def _subject_key(self, p: Presented, scope: str) -> str:
        return self._student_key(p) if scope == STUDENT else self._caller_key(p)

    def _subject(self, p: Presented, scope: str) -> str:
        return p.student_subject if scope == STUDENT else p.caller.subject

    def _fresh(self, at: float, t: float) -> bool:
        return at > 0 and t - at <= self._sync_s

    def _raise_if_locked(self, p: Presented, records: Sequence[HostRecord], t: float) -> None:
        """429 if this host knows that the student, or an anonymous caller, is locked out.

        A lockout seen here is trusted until it ends, without the database: one of
        settled failures cannot end sooner (a refused password is never accepted
        later), and one that needs attempts still under way lasts PENDING_RETRY_S.
        So a locked student costs the database nothing however hard it is hammered.
        A registered client is never locked (it is slowed down at its logins instead).
        """
        locked = attempts.locked_scope(records[0], records[1], p.registered, t)
        if locked is not None:
            scope, left = locked
            raise self._locked_out(p, left, scope)

    def _locked_out(self, p: Presented, retry_after_s: float, scope: str) -> RateLimited:
        if scope == STUDENT:
            return locked_out(retry_after_s, STUDENT, self.pseudonym(p.student_id))
        return locked_out(retry_after_s, IP, p.caller.subject)

    def _allowed(self, p: Presented, t: float) -> int:
        """Distinct wrong passwords the caller may send per window."""
        if p.caller.client is not None:
            return p.caller.client.failures_max
        lim = self._limits
        population = self._table.read(self._caller_key(p), t).population(
            t, self._window.total_seconds()
        )
        return allowed_wrong(
            lim.failed_logins_ip_max,
            lim.failed_logins_ip_per_student,
            lim.failed_logins_ip_ceiling,
            population,
        )

    def _limit(self, p: Presented, scope: str, t: float) -> int:
        return self._limits.failed_logins_max if scope == STUDENT else self._allowed(p, t)

    def _proven_right(self, p: Presented, t: float) -> None:
        """A student proved a right password from an anonymous address: its population."""
        if not p.registered:
            self._count_proven(self._caller_key(p), p.student_subject, t)

    def _count_proven(self, address: str, student_subject: str, t: float) -> None:
        """Count the (address, student) pair in the address's population, once a window."""
        pair = f"p|{address}|{student_subject}"
        if self._pairs_counted.get(pair, 0.0) > t:
            return  # this worker saw the pair counted within the window: no table read
        window_s = self._window.total_seconds()
        counted_at = self._table.count_proven(pair, address, t, window_s)
        if len(self._pairs_counted) >= PAIRS_REMEMBERED:
            self._pairs_counted.clear()
        self._pairs_counted[pair] = counted_at + window_s

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

    async def _sync_locks(self, p: Presented, scopes: Sequence[str] = (STUDENT, IP)) -> None:
        """Recompute the lockout state of the student and the caller from the database
        where this host's copy is older than `verifier_sync_s` (IP stands for the caller)."""
        for scope in scopes:
            now = self._now()
            t = now.timestamp()
            key = self._subject_key(p, scope)
            if self._fresh(self._table.read(key, t).lock_at, t):
                continue
            limit = self._limit(p, scope, t)
            subject = self._subject(p, scope)
            row_scope = STUDENT if scope == STUDENT else p.scope
            try:
                groups = await self._once(
                    f"l|{key}",
                    functools.partial(
                        self._store.groups, row_scope, subject, now - self._window, (), 2 * limit
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

    async def _await_pending(self, key: str) -> None:
        """Wait until no reservation for this student is being decided on this host."""
        deadline = time.monotonic() + self._pending_wait_s
        while time.monotonic() < deadline:
            if self._table.read(key, self._now().timestamp()).pending == 0:
                return
            await asyncio.sleep(PENDING_POLL_S)
        log.warning("reservations for a student took over %.1fs", self._pending_wait_s)

    # Reservations ----------------------------------------------------------------------------

    async def _reserve(self, p: Presented, mismatched: bool) -> tuple[int, ...]:
        """Count the attempt against the student before it is judged (and against the
        caller too when the verifier judged it wrong already).

        Concurrent requests of this worker with the same password from the same caller
        share one reservation (they are one attempt, and a burst of them must not queue
        a burst of writes). Raises RateLimited if the student or an anonymous caller
        already has its limit of other wrong passwords, InvalidPassword if the school
        already refused this password to this caller.
        """
        key = (p.attempt, p.caller.key)
        shared = self._reserving.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        future: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        self._reserving[key] = future
        try:
            ids = await self._reserve_now(p, mismatched)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: there may be no one else waiting
            raise
        else:
            future.set_result(ids)
            return ids
        finally:
            del self._reserving[key]

    async def _reserve_now(self, p: Presented, mismatched: bool) -> tuple[int, ...]:
        now = self._now()
        t = now.timestamp()
        key = self._student_key(p)
        self._table.write(key, t, pending=1)
        try:
            try:
                return await self._count_in(p, now, mismatched)
            except StorageUnavailable:
                self._storage(ok=False)
                if mismatched:
                    self._count_on_host(p, now)
                raise
        finally:
            self._table.write(key, self._now().timestamp(), pending=-1)

    def _rows(self, p: Presented, mismatched: bool, outcome: int) -> list[queries.FailureRow]:
        rows = [queries.FailureRow(STUDENT, p.student_subject, outcome)]
        if mismatched:
            rows.append(queries.FailureRow(p.scope, p.caller.subject, outcome))
        return rows

    async def _count_in(self, p: Presented, now: datetime, mismatched: bool) -> tuple[int, ...]:
        # Pending while it is being counted: a concurrent attempt refused by this count
        # (and withdrawn) may hold the others back for moments only, never a window.
        rows = self._rows(p, mismatched, LoginFailure.PENDING)
        ids = tuple(await self._store.add(rows, p.attempt, now))
        self._storage(ok=True)
        since = now - self._window
        t = now.timestamp()
        # Counted after the commit, so that of two concurrent attempts the later one
        # always sees the earlier one. The student's rows: pending ones count too.
        limit = self._limits.failed_logins_max
        others = await self._store.groups(STUDENT, p.student_subject, since, ids, 2 * limit + 8)
        # The caller's rows: wrong passwords only (this one too, if the verifier judged it).
        allowed = self._allowed(p, t)
        cgroups = await self._store.groups(p.scope, p.caller.subject, since, ids, allowed + 8)
        verdict = attempts.judge_attempt(
            p.attempt, now, self._window, others, limit, cgroups, allowed, mismatched, p.registered
        )
        if verdict.student_failures is not None:
            self._table.write(self._student_key(p), t, failures=verdict.student_failures)
        if not verdict.admitted:
            await self._store.withdraw(ids)
            if verdict.refused:
                self._mark_locked(
                    p, {s: (u, 0) for s, u in verdict.refused.items()}, t, formed=False
                )
                scope = verdict.refused_scope
                raise self._locked_out(p, verdict.refused[scope] - t, scope)
            raise InvalidPassword()
        if mismatched:
            # Admitted: judged wrong by the verifier, it counts whatever comes next.
            await self._store.settle(ids, LoginFailure.MISMATCHED)
        # If this attempt completes a lockout, every later request sees it here at once.
        self._mark_locked(p, verdict.formed, t)
        await self._store.prune(since)
        return ids

    def _count_on_host(self, p: Presented, now: datetime) -> None:
        """The database is away: count a password the verifier judged wrong in this host's
        memory instead, and write it to the database when it is back. Raises RateLimited
        if the student or an anonymous caller reached its limit (what the database last
        said, plus what this host counted since)."""
        t = now.timestamp()
        since = t - self._window.total_seconds()
        mine = attempt_hash(p.attempt)
        window_end = t + self._window.total_seconds()
        keys = {scope: self._subject_key(p, scope) for scope in (STUDENT, IP)}
        wrong = {
            scope: self._table.read(key, t).failures
            + len(self._outage.attempts(key, since) - {mine})
            for scope, key in keys.items()
        }
        limits = {scope: self._limit(p, scope, t) for scope in keys}
        counted = attempts.count_on_host(wrong, limits, p.registered)
        if counted.refused is not None:
            self._table.write(keys[counted.refused], t, lock_at=t, locked_until=window_end)
            raise self._locked_out(p, window_end - t, counted.refused)
        for key in keys.values():
            self._outage.add(key, mine, t)
        for scope in counted.locks:
            self._table.write(keys[scope], t, lock_at=t, locked_until=window_end)
        rows = self._rows(p, True, LoginFailure.MISMATCHED)
        self._defer("failed_login", lambda: self._store_mismatched(rows, p.attempt, now))

    async def _store_mismatched(
        self, rows: Sequence[queries.FailureRow], attempt: str, at: datetime
    ) -> None:
        await self._store.add(rows, attempt, at)

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

    def _mark_locked(
        self,
        p: Presented,
        ends: Mapping[str, tuple[float, int]],
        t: float,
        formed: bool = True,
    ) -> None:
        for scope, (until, count) in ends.items():
            self._table.write(self._subject_key(p, scope), t, lock_at=t, locked_until=until)
            if formed:
                self._log_decision(p, scope, until, count, t)

    def _log_decision(self, p: Presented, scope: str, until: float, count: int, t: float) -> None:
        """One line per lockout (or slow-down) formed: scope, who, why, until when."""
        window_min = self._window.total_seconds() / 60
        ends = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        if scope == STUDENT:
            decisions.warning(
                "lockout scope=student student=%s system=%s reason=%d distinct wrong passwords "
                "in %.0f min until=%s",
                self.pseudonym(p.student_id),
                p.system,
                count,
                window_min,
                ends,
            )
        elif p.registered:
            decisions.warning(
                "slowdown scope=client client=%s reason=%d wrong passwords in %.0f min "
                "(failures_max %d) until=%s",
                p.caller.subject,
                count,
                window_min,
                self._allowed(p, t),
                ends,
            )
        else:
            decisions.warning(
                "lockout scope=address address=%s reason=%d wrong passwords in %.0f min "
                "(allowed %d) until=%s",
                p.caller.subject,
                count,
                window_min,
                self._allowed(p, t),
                ends,
            )

    async def lockouts(self, failures_max_of: Callable[[str], int]) -> list[Lockout]:
        """Who is locked out (or slowed down) now, from the database: for the operators'
        dashboard. Students by pseudonym; an address's allowance by this host's
        knowledge of its population. Raises StorageUnavailable."""
        now = self._now()
        t = now.timestamp()
        groups = await self._store.recent(now - self._window, LOCKOUT_REPORT_ROWS)
        by_subject: dict[tuple[str, str], list[datetime]] = {}
        for g in groups:
            by_subject.setdefault((g.scope, g.subject), []).append(g.latest)
        found = []
        for (scope, subject), latest in by_subject.items():
            latest.sort(reverse=True)
            if scope == STUDENT:
                allowed = self._limits.failed_logins_max
                system, _, student_id = subject.partition(":")
                who = f"{system}:{self.pseudonym(student_id)}"
            elif scope == CLIENT:
                allowed, who = failures_max_of(subject), subject
            elif scope == ACCOUNT:
                # 2013 accounts (services/accounts.py): a user name's hash ("u:...") or
                # the address ("a:...") it was tried from.
                who = subject
                allowed = (
                    self._limits.failed_logins_max
                    if subject.startswith("u:")
                    else self._limits.failed_logins_ip_max
                )
            elif scope != IP:
                continue
            else:
                population = self._table.read("a|" + subject, t).population(
                    t, self._window.total_seconds()
                )
                lim = self._limits
                allowed = allowed_wrong(
                    lim.failed_logins_ip_max,
                    lim.failed_logins_ip_per_student,
                    lim.failed_logins_ip_ceiling,
                    population,
                )
                who = subject
            if len(latest) >= allowed:
                until = latest[allowed - 1] + self._window
                if until > now:
                    found.append(Lockout(scope, who, len(latest), allowed, until))
        found.sort(key=lambda lock: lock.until, reverse=True)
        return found

    # What a ticket tells the gate (GateTicket) -------------------------------------------------

    async def count_login(self, p: Presented, ids: Sequence[int]) -> tuple[int, ...]:
        """A login is about to let the school judge this password: count it first, and
        return the ids it is counted under. A password that matched the verifier is
        counted only now (its stored session failed or expired); others were counted
        when admitted (`ids`)."""
        if not self.enabled or p.proven or ids:
            return tuple(ids)
        return await self._reserve(p, mismatched=False)

    async def check_login(self, p: Presented) -> None:
        """A password the verifier did not prove is about to be judged by the school: the
        caller's limit once more (RateLimited)."""
        if self.enabled and not p.proven:
            await self._caller_before_login(p)

    async def proven(self, p: Presented) -> bool:
        """Whether the stored verifier is now this password's (the school accepted it for
        another request meanwhile)."""
        stored = await self._store.verifier(p.system, p.student_id)
        return stored is not None and hmac.compare_digest(stored, p.verifier)

    async def unjudged(self, p: Presented, ids: Sequence[int]) -> None:
        """Nothing judged the password counted under `ids`: its rows are withdrawn."""
        metrics.record_gate(p.system, "unjudged")
        await self._write("failed_login", lambda: self._store.withdraw(ids))

    async def _caller_before_login(self, p: Presented) -> None:
        """The school is about to judge a password that the verifier did not prove: the
        caller's limit is checked again (wrong passwords judged since admission count).
        Raises RateLimited: an anonymous caller locked out, a registered one slowed down
        and out of logins for now."""
        await self._sync_locks(p, (IP,))
        t = self._now().timestamp()
        record = self._table.read(self._caller_key(p), t)
        decision = attempts.before_login(record.locked_until, p.registered, t)
        if decision == "go":
            return
        if decision == "locked":
            raise self._locked_out(p, record.locked_until - t, IP)
        if self._slowed is None:
            return
        client = p.caller.client
        assert client is not None
        try:
            self._slowed.check_subject(client.name)
        except RateLimited as exc:
            raise slowed_down(exc.retry_after_s or 1.0) from None

    # Outcomes ----------------------------------------------------------------------------------

    async def accepted(self, p: Presented) -> None:
        """The school accepted the password: it becomes the verifier."""
        metrics.record_gate(p.system, "accepted")
        now = self._now()
        stored = True
        try:
            ended = await self._store.accept(p, None, now)
        except StorageUnavailable:
            stored = ended = False
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
        self._table.write(self._caller_key(p), t, lock_at=0.0, locked_until=0.0)
        if ended:
            self._password_changed(p)
        self._proven_right(p, t)
        if stored:
            await self._sync_locks(p)

    async def _store_accept(self, p: Presented, now: datetime) -> None:
        await self._store.accept(p, None, now)

    def _password_changed(self, p: Presented) -> None:
        if self._on_password_change is not None:
            self._on_password_change(p.student_id, p.system)

    async def rejected(
        self, p: Presented, ids: Sequence[int], matched: bool, counted: bool
    ) -> None:
        """The school refused the password counted under `ids` (`matched`: the one the
        verifier stood for; `counted`: the verifier judged it wrong already)."""
        metrics.record_gate(p.system, "refused")
        now = self._now()
        if matched:
            t = now.timestamp()
            self._table.write(self._student_key(p), t, verifier_at=t, verifier=NO_VERIFIER)
            await self._write("verifier", lambda: self._store.forget(p, now))
            self._password_changed(p)
        if p.proven:
            if not matched:  # else ended with the verifier above
                await self._write("tokens", lambda: self._store.end_tokens_of(p, now))
                self._password_changed(p)
            return  # a token's password: no guess
        if not self.enabled:
            return
        # The caller's row: there already (the verifier judged it first), or none for the
        # password the school accepted until now (changed there since: no guess).
        caller_row = (
            None
            if counted or matched
            else queries.FailureRow(p.scope, p.caller.subject, LoginFailure.REFUSED)
        )
        await self._write(
            "failed_login", lambda: self._store.refuse(ids, caller_row, p.attempt, now)
        )
        # What this refusal settled is read again at once: a lockout that waited for it
        # lasts its whole window from now on, and one of the caller is logged as it forms.
        t = now.timestamp()
        key = self._caller_key(p)
        before = self._table.read(key, t).locked_until
        for k in (self._student_key(p), key):
            self._table.write(k, t, lock_at=0.0)
        await self._sync_locks(p)
        after = self._table.read(key, t)
        if after.locked_until > t and before <= t:
            self._log_decision(p, IP, after.locked_until, after.failures, t)

    async def _write(self, what: str, write: Callable[[], Awaitable[None]]) -> None:
        """Write now, or later if the database is away."""
        try:
            await write()
        except StorageUnavailable:
            self._storage(ok=False)
            self._defer(what, write)


class GateTicket:
    """One request's passage through the gate (services/pipeline/tickets.py's `Ticket`).
    `matches`: the password matches the verifier.

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
        mismatched: bool = False,
    ) -> None:
        self._gate = gate
        self.presented = presented
        self._creds = creds
        self.matches = matches
        # The verifier judged the password wrong (its rows count whatever happens next).
        self.mismatched = mismatched
        self._ids = tuple(ids)
        self._settled = False
        self._holders = 1

    @property
    def subject(self) -> str:
        return self.presented.student_id

    @property
    def flight(self) -> str:
        return self.presented.verifier

    @property
    def caller(self) -> Caller:
        return self.presented.caller

    @property
    def counted(self) -> bool:
        """Whether the attempt is counted as a failure right now."""
        return bool(self._ids) and not self._settled

    def credentials(self) -> tuple[str, str]:
        """Student number and password, for the school's login form only."""
        return self._creds.student_id, self._creds.password

    async def before_login(self) -> None:
        """A login is about to let the school judge this password: the gate counts it
        first, and checks the caller's limit again for a password the verifier did not
        prove."""
        if self._settled:
            return
        self._ids = await self._gate.count_login(self.presented, self._ids)
        if not self.matches:
            await self._gate.check_login(self.presented)

    async def proven_elsewhere(self) -> bool:
        """Whether the school accepted this password for another request meanwhile
        (the stored verifier is now this one); if so the ticket matches from now on."""
        if self.matches:
            return True
        if not await self._gate.proven(self.presented):
            return False
        self.matches = True
        await self.accepted()
        return True

    async def accepted(self) -> None:
        """The school accepted the password (directly or through a shared fetch)."""
        if self._settled:
            return
        self._settled = True
        await asyncio.shield(self._gate.accepted(self.presented))

    async def rejected(self) -> None:
        """The school refused the password."""
        if self._settled:
            return
        self._settled = True
        await asyncio.shield(
            self._gate.rejected(self.presented, self._ids, self.matches, self.mismatched)
        )

    def hold(self) -> None:
        """One more piece of work (a background fetch) must end before the ticket does."""
        self._holders += 1

    async def release(self) -> None:
        """End of one holder's work; at the last, an attempt nobody judged is withdrawn
        (one the verifier judged wrong stays counted)."""
        self._holders -= 1
        if self._holders > 0 or self._settled or not self._ids:
            return
        self._settled = True
        if self.mismatched:
            return
        await asyncio.shield(self._gate.unjudged(self.presented, self._ids))
