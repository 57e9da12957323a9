"""Queries on students, card results and failed logins. They never commit: the caller owns
the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CardResult, Lease, LoginFailure, SchoolSession, Student


def _insert(session: AsyncSession, table: Any) -> Any:
    """The dialect's INSERT, which knows that dialect's upsert clause."""
    if session.get_bind().dialect.name == "sqlite":
        return sqlite_insert(table)
    return mysql_insert(table)


async def upsert_student(
    session: AsyncSession, student_id: str, verifier: str, name: str | None, now: datetime
) -> int:
    """Record a successful school login; returns the student's row id."""
    values = {
        "student_id": student_id,
        "verifier": verifier,
        "name": name,
        "created_at": now,
        "last_login_at": now,
    }
    changes = {"verifier": verifier, "last_login_at": now}
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


async def save_card_result(
    session: AsyncSession,
    student_pk: int,
    kind: str,
    params: str,
    payload: str,
    fetched_at: datetime,
) -> None:
    """Store the newest good result of one query, replacing the previous one."""
    stmt = _insert(session, CardResult).values(
        student_pk=student_pk, kind=kind, params=params, payload=payload, fetched_at=fetched_at
    )
    changes = {"payload": payload, "fetched_at": fetched_at}
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.on_conflict_do_update(
            index_elements=["student_pk", "kind", "params"], set_=changes
        )
    else:
        stmt = stmt.on_duplicate_key_update(**changes)
    await session.execute(stmt)


@dataclass(frozen=True, slots=True)
class CachedRow:
    """A stored result with the verifier of the password that last logged in successfully."""

    payload: str
    fetched_at: datetime
    verifier: str


async def get_cached_result(
    session: AsyncSession, student_id: str, kind: str, params: str = ""
) -> CachedRow | None:
    row = (
        await session.execute(
            select(CardResult.payload, CardResult.fetched_at, Student.verifier)
            .join(Student, Student.id == CardResult.student_pk)
            .where(
                Student.student_id == student_id,
                CardResult.kind == kind,
                CardResult.params == params,
            )
        )
    ).first()
    return None if row is None else CachedRow(row.payload, row.fetched_at, row.verifier)


async def get_verifier(session: AsyncSession, student_id: str) -> str | None:
    return await session.scalar(select(Student.verifier).where(Student.student_id == student_id))


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


async def lease_holder(session: AsyncSession, name: str, now: datetime) -> str | None:
    """The live holder of a lease, or None if it is free or expired."""
    return await session.scalar(
        select(Lease.holder).where(Lease.name == name, Lease.expires_at >= now)
    )


# School sessions, stored sealed (see services/vault.py).


@dataclass(frozen=True, slots=True)
class StoredSession:
    sealed: str
    used_at: datetime
    verifier: str


async def get_school_session(
    session: AsyncSession, student_id: str, system: str
) -> StoredSession | None:
    row = (
        await session.execute(
            select(SchoolSession.sealed, SchoolSession.used_at, Student.verifier)
            .join(Student, Student.id == SchoolSession.student_pk)
            .where(Student.student_id == student_id, SchoolSession.system == system)
        )
    ).first()
    return None if row is None else StoredSession(row.sealed, row.used_at, row.verifier)


async def save_school_session(
    session: AsyncSession, student_pk: int, system: str, sealed: str, now: datetime
) -> None:
    stmt = _insert(session, SchoolSession).values(
        student_pk=student_pk, system=system, sealed=sealed, created_at=now, used_at=now
    )
    changes = {"sealed": sealed, "used_at": now}
    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.on_conflict_do_update(index_elements=["student_pk", "system"], set_=changes)
    else:
        stmt = stmt.on_duplicate_key_update(**changes)
    await session.execute(stmt)


async def add_login_failures(
    session: AsyncSession, subjects: Sequence[tuple[str, str]], failed_at: datetime
) -> list[int]:
    """Record one failure for each (scope, subject); returns the new rows' ids."""
    rows = [
        LoginFailure(scope=scope, subject=subject, failed_at=failed_at)
        for scope, subject in subjects
    ]
    session.add_all(rows)
    await session.flush()
    return [row.id for row in rows]


async def recent_login_failures(
    session: AsyncSession, scope: str, subject: str, since: datetime, limit: int
) -> list[datetime]:
    """When the newest `limit` failures after `since` happened, newest first."""
    result = await session.scalars(
        select(LoginFailure.failed_at)
        .where(
            LoginFailure.scope == scope,
            LoginFailure.subject == subject,
            LoginFailure.failed_at > since,
        )
        .order_by(LoginFailure.failed_at.desc())
        .limit(limit)
    )
    return list(result)


async def delete_login_failures_by_id(session: AsyncSession, ids: Sequence[int]) -> None:
    if ids:
        await session.execute(delete(LoginFailure).where(LoginFailure.id.in_(ids)))


async def clear_login_failures(session: AsyncSession, scope: str, subject: str) -> None:
    """Forget every recorded failure of one subject."""
    await session.execute(
        delete(LoginFailure).where(LoginFailure.scope == scope, LoginFailure.subject == subject)
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
