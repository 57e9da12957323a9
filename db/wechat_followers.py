"""Queries on WeChat followers bound to students and on used bind tickets. They never
commit: the caller owns the transaction.

A follower is kept as its key (a keyed hash of the account's app id and the openid,
services/wechat_followers.py), never as the openid. Its row is one per (account,
follower): binding again updates it in place, and an ended binding keeps it (with
`ended_at`, `ended_reason`) until retention deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import WeChatFollower, WeChatTicket


async def ticket_used(session: AsyncSession, ticket_id: str) -> bool:
    found = await session.scalar(select(WeChatTicket.id).where(WeChatTicket.ticket_id == ticket_id))
    return found is not None


async def use_ticket(
    session: AsyncSession, ticket_id: str, used_at: datetime, expires_at: datetime
) -> None:
    """Record a ticket used. Raises IntegrityError if it already is (another request
    used it at the same time)."""
    session.add(WeChatTicket(ticket_id=ticket_id, used_at=used_at, expires_at=expires_at))
    await session.flush()


async def follower_row(
    session: AsyncSession, account: str, follower: str, *, for_update: bool = False
) -> WeChatFollower | None:
    """The follower's row, live or ended (locked for the transaction with for_update)."""
    stmt = select(WeChatFollower).where(
        WeChatFollower.account == account, WeChatFollower.follower == follower
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).first()


async def bind_follower(
    session: AsyncSession,
    account: str,
    follower: str,
    student_id: str,
    card_token_id: int | None,
    academic_token_id: int | None,
    now: datetime,
) -> tuple[WeChatFollower, WeChatFollower | None]:
    """Bind the follower to the student with these tokens, replacing its binding if it
    has one. Returns the row and a detached copy of the live binding it replaced (None
    if there was none). Raises IntegrityError if another request added the follower's
    first row at the same time."""
    row = await follower_row(session, account, follower, for_update=True)
    if row is None:
        row = WeChatFollower(
            account=account,
            follower=follower,
            student_id=student_id,
            card_token_id=card_token_id,
            academic_token_id=academic_token_id,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        return row, None
    replaced = None
    if row.ended_at is None:
        replaced = WeChatFollower(
            id=row.id,
            account=row.account,
            follower=row.follower,
            student_id=row.student_id,
            card_token_id=row.card_token_id,
            academic_token_id=row.academic_token_id,
            created_at=row.created_at,
        )
    row.student_id = student_id
    row.card_token_id = card_token_id
    row.academic_token_id = academic_token_id
    row.created_at = now
    row.ended_at = None
    row.ended_reason = None
    await session.flush()
    return row, replaced


async def end_follower(session: AsyncSession, row_id: int, now: datetime, reason: str) -> None:
    await session.execute(
        update(WeChatFollower)
        .where(WeChatFollower.id == row_id, WeChatFollower.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
    )


async def student_followers(session: AsyncSession, student_id: str) -> Sequence[WeChatFollower]:
    """A student's bindings not ended, oldest first."""
    return (
        await session.scalars(
            select(WeChatFollower)
            .where(WeChatFollower.student_id == student_id, WeChatFollower.ended_at.is_(None))
            .order_by(WeChatFollower.id)
        )
    ).all()
