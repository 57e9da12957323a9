"""Queries on kept school pages (services/captures.py). They never commit: the caller
owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PageCapture


async def seen_again(
    session: AsyncSession, system: str, kind: str, day: str, digest: str, at: datetime
) -> int | None:
    """Count one more sighting of a kept page; its id, or None if it is not kept."""
    found = await session.scalar(
        select(PageCapture.id).where(
            PageCapture.system == system,
            PageCapture.kind == kind,
            PageCapture.day == day,
            PageCapture.digest == digest,
        )
    )
    if found is None:
        return None
    await session.execute(
        update(PageCapture)
        .where(PageCapture.id == found)
        .values(seen=PageCapture.seen + 1, last_seen_at=at)
    )
    return int(found)


async def kept_on(session: AsyncSession, system: str, day: str) -> int:
    """How many pages of a system are kept for a day."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(PageCapture)
            .where(PageCapture.system == system, PageCapture.day == day)
        )
        or 0
    )


async def add(session: AsyncSession, row: PageCapture) -> int:
    session.add(row)
    await session.flush()
    return row.id


async def latest(
    session: AsyncSession, limit: int, system: str | None = None
) -> Sequence[PageCapture]:
    """The most recently seen kept pages, newest first."""
    query = select(PageCapture).order_by(PageCapture.last_seen_at.desc(), PageCapture.id.desc())
    if system is not None:
        query = query.where(PageCapture.system == system)
    return (await session.scalars(query.limit(limit))).all()


async def one(session: AsyncSession, capture_id: int) -> PageCapture | None:
    return await session.get(PageCapture, capture_id)
