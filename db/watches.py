"""Queries on students' watches (services/watches/store.py). They never commit: the
caller owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Lease, Token, Watch


async def add_watch(session: AsyncSession, watch: Watch) -> int:
    session.add(watch)
    await session.flush()
    return watch.id


async def live_count(session: AsyncSession, student_id: str) -> int:
    """The student's watches that have not ended (every system)."""
    found = await session.scalar(
        select(func.count())
        .select_from(Watch)
        .where(Watch.student_id == student_id, Watch.ended_at.is_(None))
    )
    return int(found or 0)


async def live_watches(session: AsyncSession, student_id: str, system: str) -> Sequence[Watch]:
    """The student's watches of one system that have not ended, oldest first."""
    return (
        await session.scalars(
            select(Watch)
            .where(
                Watch.student_id == student_id,
                Watch.system == system,
                Watch.ended_at.is_(None),
            )
            .order_by(Watch.id)
        )
    ).all()


async def get_watch(session: AsyncSession, watch_id: int) -> Watch | None:
    return await session.get(Watch, watch_id)


async def end_watch(
    session: AsyncSession, watch_id: int, now: datetime, reason: str, student_id: str | None = None
) -> bool:
    """End a live watch (only the student's own, if student_id is given); whether it ended."""
    where = [Watch.id == watch_id, Watch.ended_at.is_(None)]
    if student_id is not None:
        where.append(Watch.student_id == student_id)
    result = await session.execute(
        update(Watch).where(*where).values(ended_at=now, ended_reason=reason)
    )
    return _count(result) == 1


async def end_token_watches(
    session: AsyncSession, token_ids: Sequence[int], now: datetime, reason: str
) -> list[int]:
    """End the live watches of these tokens; the ids ended."""
    if not token_ids:
        return []
    ids = list(
        (
            await session.scalars(
                select(Watch.id).where(Watch.token_id.in_(token_ids), Watch.ended_at.is_(None))
            )
        ).all()
    )
    if ids:
        await session.execute(
            update(Watch)
            .where(Watch.id.in_(ids), Watch.ended_at.is_(None))
            .values(ended_at=now, ended_reason=reason)
        )
    return ids


async def due_watches(
    session: AsyncSession, now: datetime, systems: Sequence[str], count: int
) -> Sequence[Watch]:
    """Live watches of these systems whose next poll is due, the longest due first."""
    return (
        await session.scalars(
            select(Watch)
            .where(
                Watch.next_poll_at <= now,
                Watch.ended_at.is_(None),
                Watch.system.in_(list(systems)),
            )
            .order_by(Watch.next_poll_at, Watch.id)
            .limit(count)
        )
    ).all()


async def move_next_poll(
    session: AsyncSession, watch_id: int, seen: datetime, to: datetime
) -> bool:
    """Move a live watch's next poll from `seen` to `to`, only if no one moved it since:
    the conditional UPDATE by which one worker alone claims a poll."""
    result = await session.execute(
        update(Watch)
        .where(Watch.id == watch_id, Watch.next_poll_at == seen, Watch.ended_at.is_(None))
        .values(next_poll_at=to)
    )
    return _count(result) == 1


async def save_state(
    session: AsyncSession,
    watch_id: int,
    claimed: datetime,
    state: str,
    polled_at: datetime,
    next_poll_at: datetime,
) -> bool:
    """Keep a poll's state, if the poll's claim (next_poll_at == `claimed`) still holds."""
    result = await session.execute(
        update(Watch)
        .where(Watch.id == watch_id, Watch.next_poll_at == claimed, Watch.ended_at.is_(None))
        .values(state=state, last_polled_at=polled_at, next_poll_at=next_poll_at)
    )
    return _count(result) == 1


async def prune_ended(session: AsyncSession, before: datetime, batch: int) -> int:
    """Delete up to `batch` watches that ended before `before`; how many."""
    ids = (
        await session.scalars(
            select(Watch.id)
            .where(Watch.ended_at.is_not(None), Watch.ended_at < before)
            .limit(batch)
        )
    ).all()
    if not ids:
        return 0
    await session.execute(delete(Watch).where(Watch.id.in_(ids)))
    return len(ids)


async def live_session_tokens(
    session: AsyncSession, system: str, after_id: int, count: int
) -> Sequence[int]:
    """Ids of session tokens of `system` not ended, after `after_id`, in id order (a
    prefetch walks them in batches; expiry is the token store's to judge)."""
    return (
        await session.scalars(
            select(Token.id)
            .where(
                Token.kind == "session",
                Token.system == system,
                Token.ended_at.is_(None),
                Token.id > after_id,
            )
            .order_by(Token.id)
            .limit(count)
        )
    ).all()


async def held_slots(session: AsyncSession, prefix: str, now: datetime) -> int:
    """Budget slots (leases named `prefix` + n) held now, by any process."""
    found = await session.scalar(
        select(func.count())
        .select_from(Lease)
        .where(Lease.name.startswith(prefix, autoescape=True), Lease.expires_at > now)
    )
    return int(found or 0)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
