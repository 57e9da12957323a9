"""Queries on students, card results and failed logins. They never commit: the caller owns
the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CardResult, LoginFailure, Student


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A card result as stored: its JSON payload and when it was fetched from the school."""

    payload: str
    fetched_at: datetime


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


async def get_student(session: AsyncSession, student_id: str) -> Student | None:
    return await session.scalar(select(Student).where(Student.student_id == student_id))


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


async def get_card_result(
    session: AsyncSession, student_id: str, kind: str, params: str = ""
) -> StoredResult | None:
    row = (
        await session.execute(
            select(CardResult.payload, CardResult.fetched_at)
            .join(Student, Student.id == CardResult.student_pk)
            .where(
                Student.student_id == student_id,
                CardResult.kind == kind,
                CardResult.params == params,
            )
        )
    ).first()
    return None if row is None else StoredResult(row.payload, row.fetched_at)


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
