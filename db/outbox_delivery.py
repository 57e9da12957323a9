"""The outbox's delivery side: messages claimed under a lease, then marked delivered,
retried later, held back, or given up on. They never commit: the caller owns the
transaction.

A claim is a conditional UPDATE per row: it sets `holder` and `lease_until` only where
the row is still undelivered, not given up on, due, and its lease free or expired. The
database applies it to the row as it stands when the update runs (InnoDB locks it,
SQLite writes one transaction at a time), so of two workers claiming one row, one
updates it and the other finds no match: two workers never hold one row. Every mark
after a claim is conditional on the holder too: a worker whose lease expired and was
taken over marks nothing (the new holder decides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OutboxMessage, Watch

# Kept within the column (String(200)).
ERROR_CHARS = 200


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """An outbox row this worker holds, with what its watch says of where it goes
    (`student_id` None: the watch is gone)."""

    id: int
    watch_id: int
    event_key: str
    channel: str
    payload: str
    attempts: int
    student_id: str | None
    target: str | None
    secret: str | None
    watch_ended: bool


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    """What the metrics show of the outbox: messages waiting (due or not), messages given
    up on and still kept, and live watches."""

    depth: int
    failed: int
    watches: int


def _pending() -> ColumnElement[bool]:
    return and_(OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None))


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(
        _pending(),
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
    )


async def claim_due(
    session: AsyncSession, holder: str, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedMessage]:
    """Claim up to `limit` due messages (the longest waiting first) for `holder` until
    `lease_until`; those another worker claimed meanwhile are left out."""
    candidates = list(
        await session.scalars(
            select(OutboxMessage.id)
            .where(_claimable(now))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
    )
    taken: list[int] = []
    for row_id in candidates:
        result = await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id, _claimable(now))
            .values(holder=holder, lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) == 1:
            taken.append(row_id)
    if not taken:
        return []
    rows = (
        await session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.watch_id,
                OutboxMessage.event_key,
                OutboxMessage.channel,
                OutboxMessage.payload,
                OutboxMessage.attempts,
                Watch.student_id,
                Watch.target,
                Watch.secret,
                Watch.ended_at,
            )
            .outerjoin(Watch, Watch.id == OutboxMessage.watch_id)
            .where(OutboxMessage.id.in_(taken))
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        )
    ).all()
    return [
        ClaimedMessage(
            id=r.id,
            watch_id=r.watch_id,
            event_key=r.event_key,
            channel=r.channel,
            payload=r.payload,
            attempts=r.attempts,
            student_id=r.student_id,
            target=r.target,
            secret=r.secret,
            watch_ended=r.ended_at is not None,
        )
        for r in rows
    ]


async def sent_since(
    session: AsyncSession, student_ids: Sequence[str], since: datetime
) -> dict[str, list[datetime]]:
    """Each student's messages delivered after `since` (when, oldest first)."""
    if not student_ids:
        return {}
    rows = (
        await session.execute(
            select(Watch.student_id, OutboxMessage.delivered_at)
            .join(Watch, Watch.id == OutboxMessage.watch_id)
            .where(Watch.student_id.in_(set(student_ids)), OutboxMessage.delivered_at > since)
            .order_by(OutboxMessage.delivered_at)
        )
    ).all()
    found: dict[str, list[datetime]] = {}
    for student_id, at in rows:
        if at is not None:
            found.setdefault(student_id, []).append(at)
    return found


async def channel_sent_since(
    session: AsyncSession, channels: Sequence[str], since: datetime
) -> dict[str, list[datetime]]:
    """Each channel's messages delivered after `since` (when, oldest first)."""
    if not channels:
        return {}
    rows = (
        await session.execute(
            select(OutboxMessage.channel, OutboxMessage.delivered_at)
            .where(OutboxMessage.channel.in_(set(channels)), OutboxMessage.delivered_at > since)
            .order_by(OutboxMessage.delivered_at)
        )
    ).all()
    found: dict[str, list[datetime]] = {}
    for channel, at in rows:
        if at is not None:
            found.setdefault(channel, []).append(at)
    return found


async def _mark(session: AsyncSession, row_id: int, holder: str, **values: object) -> bool:
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == row_id, OutboxMessage.holder == holder, _pending())
        .values(holder=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


async def mark_delivered(session: AsyncSession, row_id: int, holder: str, now: datetime) -> bool:
    """The message arrived; False if `holder` no longer held it."""
    return await _mark(
        session,
        row_id,
        holder,
        delivered_at=now,
        next_attempt_at=None,
        attempts=OutboxMessage.attempts + 1,
        last_error="",
    )


async def mark_retry(
    session: AsyncSession, row_id: int, holder: str, at: datetime, error: str
) -> bool:
    """An attempt failed: the next one at `at`; False if `holder` no longer held it."""
    return await _mark(
        session,
        row_id,
        holder,
        next_attempt_at=at,
        attempts=OutboxMessage.attempts + 1,
        last_error=error[:ERROR_CHARS],
    )


async def hold_back(session: AsyncSession, row_id: int, holder: str, until: datetime) -> bool:
    """Not attempted (a cap): due again at `until`, no attempt counted."""
    return await _mark(session, row_id, holder, next_attempt_at=until)


async def give_up(
    session: AsyncSession,
    row_id: int,
    watch_id: int,
    holder: str,
    now: datetime,
    error: str,
    attempted: bool = True,
) -> bool:
    """The message will not be delivered: kept as failed, counted on its watch (shown to
    the student); False if `holder` no longer held it."""
    marked = await _mark(
        session,
        row_id,
        holder,
        failed_at=now,
        next_attempt_at=None,
        attempts=OutboxMessage.attempts + (1 if attempted else 0),
        last_error=error[:ERROR_CHARS],
    )
    if marked:
        await session.execute(
            update(Watch)
            .where(Watch.id == watch_id)
            .values(failures=Watch.failures + 1)
            .execution_options(synchronize_session=False)
        )
    return marked


async def counts(session: AsyncSession) -> OutboxCounts:
    """Messages waiting, messages given up on (kept), live watches."""
    depth = await session.scalar(select(func.count()).select_from(OutboxMessage).where(_pending()))
    failed = await session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.failed_at.is_not(None))
    )
    watches = await session.scalar(
        select(func.count()).select_from(Watch).where(Watch.ended_at.is_(None))
    )
    return OutboxCounts(int(depth or 0), int(failed or 0), int(watches or 0))
