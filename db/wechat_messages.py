"""Queries on the WeChat messages being answered (`wechat_messages`). They never commit:
the caller owns the transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import WeChatMessage


async def insert_message(
    session: AsyncSession, account: str, message_key: str, state: str, now: datetime
) -> None:
    """The first delivery of a message. Raises IntegrityError if another worker has it."""
    session.add(
        WeChatMessage(
            account=account,
            message_key=message_key,
            state=state,
            attempts=1,
            reply=None,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()


async def get_message(
    session: AsyncSession, account: str, message_key: str
) -> WeChatMessage | None:
    return (
        await session.execute(
            select(WeChatMessage).where(
                WeChatMessage.account == account, WeChatMessage.message_key == message_key
            )
        )
    ).scalar_one_or_none()


async def count_attempt(
    session: AsyncSession, account: str, message_key: str, now: datetime
) -> None:
    """WeChat sent the message again."""
    await session.execute(
        update(WeChatMessage)
        .where(WeChatMessage.account == account, WeChatMessage.message_key == message_key)
        .values(attempts=WeChatMessage.attempts + 1, updated_at=now)
    )


async def set_state(
    session: AsyncSession,
    account: str,
    message_key: str,
    state: str,
    now: datetime,
    reply: str | None = None,
    only_from: tuple[str, ...] | None = None,
) -> bool:
    """Move the message to state (with its sealed reply, if given); with only_from, only
    from one of those states. Whether it moved."""
    stmt = (
        update(WeChatMessage)
        .where(WeChatMessage.account == account, WeChatMessage.message_key == message_key)
        .values(state=state, updated_at=now)
    )
    if reply is not None:
        stmt = stmt.values(reply=reply)
    if only_from is not None:
        stmt = stmt.where(WeChatMessage.state.in_(only_from))
    result = await session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
