"""Queries on the outbox, the writer's side: a poll's events written beside its watch's
new state. (Delivery's queries are db/outbox_delivery.py.) They never commit: the caller
owns the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import OutboxMessage

# Keys asked for at once (an IN list kept short for both databases).
KEYS_AT_ONCE = 200


async def insert_notices(session: AsyncSession, rows: Sequence[OutboxMessage]) -> int:
    """Add these messages but those whose event_key is already in the outbox (or twice
    among them); the number added. A concurrent writer of the same key makes the
    flush raise IntegrityError: the caller runs its whole transaction again, and then
    finds the key here."""
    wanted = {row.event_key: row for row in rows}
    found: set[str] = set()
    keys = list(wanted)
    for i in range(0, len(keys), KEYS_AT_ONCE):
        chunk = keys[i : i + KEYS_AT_ONCE]
        found.update(
            (
                await session.scalars(
                    select(OutboxMessage.event_key).where(OutboxMessage.event_key.in_(chunk))
                )
            ).all()
        )
    added = [row for key, row in wanted.items() if key not in found]
    session.add_all(added)
    if added:
        await session.flush()
    return len(added)


async def recent_messages(
    session: AsyncSession, watch_id: int, count: int
) -> Sequence[OutboxMessage]:
    """A watch's latest messages, newest first."""
    return (
        await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.watch_id == watch_id)
            .order_by(OutboxMessage.id.desc())
            .limit(count)
        )
    ).all()
