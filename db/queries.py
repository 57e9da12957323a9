"""Queries on students and card results. They never commit: the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import CardResult, Student


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
