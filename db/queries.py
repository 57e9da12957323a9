"""Queries on students, verifiers, results, leases, school sessions and failed logins
(tokens and registered clients: db/tokens.py).
They never commit: the caller owns the transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Lease,
    LoginFailure,
    Result,
    SchoolSession,
    Student,
    Verifier,
)


def _insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which knows that dialect's upsert clause."""
    if session.get_bind().dialect.name == "sqlite":
        return sqlite_insert(table)
    return mysql_insert(table)


async def upsert_student(
    session: AsyncSession, student_id: str, name: str | None, now: datetime
) -> int:
    """Record a student the school answered for; returns the student's row id."""
    values = {"student_id": student_id, "name": name, "created_at": now, "last_login_at": now}
    changes: dict[str, Any] = {"last_login_at": now}
    if name is not None:
        changes["name"] = name
    stmt = _insert(session, Student).values(**values)
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.on_conflict_do_update(index_elements=["student_id"], set_=changes)
    else:
        stmt = stmt.on_duplicate_key_update(**changes)
    await session.execute(stmt)
    pk = await session.scalar(select(Student.id).where(Student.student_id == student_id))
    assert pk is not None
    return pk


async def get_verifier(session: AsyncSession, system: str, student_id: str) -> str | None:
    """The verifier of the password the school last accepted for this student and system."""
    return await session.scalar(
        select(Verifier.verifier)
        .join(Student, Student.id == Verifier.student_pk)
        .where(Student.student_id == student_id, Verifier.system == system)
    )


async def set_verifier(
    session: AsyncSession, student_pk: int, system: str, verifier: str, now: datetime
) -> bool:
    """Make verifier the student's current one; True if it replaced a different one."""
    old = await session.scalar(
        select(Verifier.verifier).where(
            Verifier.student_pk == student_pk, Verifier.system == system
        )
    )
    if old == verifier:
        return False
    stmt = _insert(session, Verifier).values(
        student_pk=student_pk, system=system, verifier=verifier, changed_at=now
    )
    changes = {"verifier": verifier, "changed_at": now}
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.on_conflict_do_update(index_elements=["student_pk", "system"], set_=changes)
    else:
        stmt = stmt.on_duplicate_key_update(**changes)
    await session.execute(stmt)
    return old is not None


async def delete_verifier(session: AsyncSession, system: str, student_id: str) -> None:
    await session.execute(
        delete(Verifier).where(
            Verifier.system == system,
            Verifier.student_pk.in_(select(Student.id).where(Student.student_id == student_id)),
        )
    )


def result_key(system: str, subject: str, kind: str, params: str) -> str:
    """The unique key of a stored result (see db.models.Result)."""
    return hashlib.sha256(f"{system}\0{subject}\0{kind}\0{params}".encode()).hexdigest()


async def save_result(
    session: AsyncSession,
    system: str,
    subject: str,
    kind: str,
    params: str,
    payload: str,
    fetched_at: datetime,
) -> None:
    """Store the newest good result of one question, replacing the previous one."""
    key = result_key(system, subject, kind, params)
    stmt = _insert(session, Result).values(
        key=key,
        system=system,
        subject=subject,
        kind=kind,
        params=params[:255],
        payload=payload,
        fetched_at=fetched_at,
    )
    changes = {"payload": payload, "fetched_at": fetched_at}
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_=changes)
    else:
        stmt = stmt.on_duplicate_key_update(**changes)
    await session.execute(stmt)


@dataclass(frozen=True, slots=True)
class CachedRow:
    """A stored result and when the school produced it."""

    payload: str
    fetched_at: datetime


async def get_result(
    session: AsyncSession, system: str, subject: str, kind: str, params: str
) -> CachedRow | None:
    row = (
        await session.execute(
            select(Result.payload, Result.fetched_at).where(
                Result.key == result_key(system, subject, kind, params)
            )
        )
    ).first()
    return None if row is None else CachedRow(row.payload, row.fetched_at)


# Leases: one statement each, so every call can run in its own short transaction.


async def take_expired_lease(
    session: AsyncSession, name: str, holder: str, expires_at: datetime, now: datetime
) -> bool:
    """Take over a lease whose holder let it expire; True if taken."""
    result = await session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.expires_at < now)
        .values(holder=holder, expires_at=expires_at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_lease(session: AsyncSession, name: str, holder: str, expires_at: datetime) -> None:
    """Create a lease; raises IntegrityError if someone holds it."""
    session.add(Lease(name=name, holder=holder, expires_at=expires_at))
    await session.flush()


async def delete_lease(session: AsyncSession, name: str, holder: str) -> None:
    await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))


async def shorten_lease(
    session: AsyncSession, name: str, holder: str, expires_at: datetime
) -> None:
    """Make the holder's lease end by expires_at (one that ends sooner is left alone)."""
    await session.execute(
        update(Lease)
        .where(Lease.name == name, Lease.holder == holder, Lease.expires_at > expires_at)
        .values(expires_at=expires_at)
    )


async def lease_holders(session: AsyncSession, prefix: str) -> list[tuple[str, str]]:
    """(name, holder) of every lease whose holder starts with prefix (one host's)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = await session.execute(
        select(Lease.name, Lease.holder).where(Lease.holder.like(escaped + "%", escape="\\"))
    )
    return [(row.name, row.holder) for row in rows]


async def lease_holder(session: AsyncSession, name: str, now: datetime) -> str | None:
    """The live holder of a lease, or None if it is free or expired."""
    return await session.scalar(
        select(Lease.holder).where(Lease.name == name, Lease.expires_at >= now)
    )


# School sessions, stored sealed (see services/vault.py).


@dataclass(frozen=True, slots=True)
class StoredSession:
    sealed: str
    created_at: datetime
    used_at: datetime


async def get_school_session(
    session: AsyncSession, student_id: str, system: str
) -> StoredSession | None:
    row = (
        await session.execute(
            select(SchoolSession.sealed, SchoolSession.created_at, SchoolSession.used_at)
            .join(Student, Student.id == SchoolSession.student_pk)
            .where(Student.student_id == student_id, SchoolSession.system == system)
        )
    ).first()
    return None if row is None else StoredSession(row.sealed, row.created_at, row.used_at)


async def save_school_session(
    session: AsyncSession, student_pk: int, system: str, sealed: str, now: datetime, opened: bool
) -> None:
    """Store the student's session; `opened`: a new login (its lifetime starts now)."""
    stmt = _insert(session, SchoolSession).values(
        student_pk=student_pk, system=system, sealed=sealed, created_at=now, used_at=now
    )
    changes = {"sealed": sealed, "used_at": now}
    if opened:
        changes["created_at"] = now
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.on_conflict_do_update(index_elements=["student_pk", "system"], set_=changes)
    else:
        stmt = stmt.on_duplicate_key_update(**changes)
    await session.execute(stmt)


async def delete_school_sessions(session: AsyncSession, system: str, student_id: str) -> None:
    """Forget the student's stored sessions at one system (a password change ends them)."""
    await session.execute(
        delete(SchoolSession).where(
            SchoolSession.system == system,
            SchoolSession.student_pk.in_(
                select(Student.id).where(Student.student_id == student_id)
            ),
        )
    )


# Failed logins (services/gate.py).


@dataclass(frozen=True, slots=True)
class FailureRow:
    """One subject a wrong (or undecided) password counts against, and how it stands."""

    scope: str
    subject: str
    outcome: int = LoginFailure.PENDING


async def add_login_failures(
    session: AsyncSession, rows: Sequence[FailureRow], attempt: str, failed_at: datetime
) -> list[int]:
    """Record one failure of `attempt` for each row; returns the new rows' ids."""
    added = [
        LoginFailure(
            scope=row.scope,
            subject=row.subject,
            failed_at=failed_at,
            attempt=attempt,
            outcome=row.outcome,
        )
        for row in rows
    ]
    session.add_all(added)
    await session.flush()
    return [row.id for row in added]


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """The failures of one password tried against one subject."""

    attempt: str
    latest: datetime
    refused: bool  # the school said this password is wrong
    settled: bool  # judged wrong (by the school or the stored verifier), not only pending


async def failure_groups(
    session: AsyncSession,
    scope: str,
    subject: str,
    since: datetime,
    exclude_ids: Sequence[int],
    limit: int,
) -> list[FailureGroup]:
    """Distinct passwords that failed for one subject after `since`, newest first.

    Grouped in the database, so any number of repeats of one password cannot
    push other passwords out of the answer.
    """
    latest = func.max(LoginFailure.failed_at).label("latest")
    refused = case((LoginFailure.outcome == LoginFailure.REFUSED, 1), else_=0)
    settled = case((LoginFailure.outcome != LoginFailure.PENDING, 1), else_=0)
    stmt = (
        select(
            LoginFailure.attempt,
            latest,
            func.max(refused).label("refused"),
            func.max(settled).label("settled"),
        )
        .where(
            LoginFailure.scope == scope,
            LoginFailure.subject == subject,
            LoginFailure.failed_at > since,
        )
        .group_by(LoginFailure.attempt)
        .order_by(latest.desc())
        .limit(limit)
    )
    if exclude_ids:
        stmt = stmt.where(LoginFailure.id.not_in(exclude_ids))
    result = await session.execute(stmt)
    return [
        FailureGroup(row.attempt, _utc(row.latest), bool(row.refused), bool(row.settled))
        for row in result
    ]


@dataclass(frozen=True, slots=True)
class SubjectGroup:
    """The failures of one password against one subject (any subject)."""

    scope: str
    subject: str
    attempt: str
    latest: datetime
    settled: bool


async def recent_failure_groups(
    session: AsyncSession, since: datetime, limit: int
) -> list[SubjectGroup]:
    """Distinct (subject, password) failures after `since`, judged ones (not pending) only,
    newest first: what lockouts are made of, for the operators' view."""
    latest = func.max(LoginFailure.failed_at).label("latest")
    stmt = (
        select(LoginFailure.scope, LoginFailure.subject, LoginFailure.attempt, latest)
        .where(LoginFailure.failed_at > since, LoginFailure.outcome != LoginFailure.PENDING)
        .group_by(LoginFailure.scope, LoginFailure.subject, LoginFailure.attempt)
        .order_by(latest.desc())
        .limit(limit)
    )
    result = await session.execute(stmt)
    return [
        SubjectGroup(row.scope, row.subject, row.attempt, _utc(row.latest), True) for row in result
    ]


def _utc(value: datetime | str) -> datetime:
    """MAX() over a UTC column comes back untyped on SQLite (text) and naive on MySQL."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def delete_login_failures_by_id(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(ids)))


async def delete_login_failures_of_attempt(session: AsyncSession, attempt: str) -> None:
    """Withdraw every failure of one password (the school accepted it)."""
    await session.execute(delete(LoginFailure).where(LoginFailure.attempt == attempt))


async def settle_login_failures(session: AsyncSession, ids: Sequence[int], outcome: int) -> None:
    """Record how these rows were judged (LoginFailure.REFUSED or MISMATCHED)."""
    if ids:
        await session.execute(
            update(LoginFailure).where(LoginFailure.id.in_(ids)).values(outcome=outcome)
        )


async def prune_login_failures(session: AsyncSession, before: datetime, limit: int) -> int:
    """Delete up to `limit` of the oldest failures from before `before`; returns how many."""
    # Select then delete by id: MySQL refuses LIMIT in a subquery of the table
    # being deleted from, and SQLite builds usually lack DELETE ... LIMIT.
    ids = list(
        await session.scalars(
            select(LoginFailure.id)
            .where(LoginFailure.failed_at < before)
            .order_by(LoginFailure.failed_at)
            .limit(limit)
        )
    )
    await delete_login_failures_by_id(session, ids)
    return len(ids)
