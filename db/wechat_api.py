"""Queries on an official account's API row (`wechat_api_tokens`): its sealed access_token,
and the customer messages counted against the day's limit. They never commit: the caller
owns the transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, case, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import WeChatApiToken


async def ensure_api_row(session: AsyncSession, app_id: str, now: datetime) -> None:
    """The account's row, made empty (no token, nothing counted) if it has none yet; an
    existing one is left as it is."""
    values = {"app_id": app_id, "sealed": None, "expires_at": None, "day": "", "sent": 0}
    if session.get_bind().dialect.name == "sqlite":
        lite = sqlite_insert(WeChatApiToken).values(**values, updated_at=now)
        await session.execute(lite.on_conflict_do_nothing(index_elements=["app_id"]))
    else:
        my = mysql_insert(WeChatApiToken).values(**values, updated_at=now)
        await session.execute(my.on_duplicate_key_update(app_id=my.inserted.app_id))


async def api_token(session: AsyncSession, app_id: str) -> tuple[str, datetime] | None:
    """The sealed token and when it expires, None if the account has none yet."""
    row = (
        await session.execute(
            select(WeChatApiToken.sealed, WeChatApiToken.expires_at).where(
                WeChatApiToken.app_id == app_id
            )
        )
    ).first()
    if row is None or row.sealed is None or row.expires_at is None:
        return None
    return row.sealed, row.expires_at


async def store_api_token(
    session: AsyncSession, app_id: str, sealed: str, expires_at: datetime, now: datetime
) -> None:
    """A newly fetched token (sealed) in place of the old one. The row must exist."""
    await session.execute(
        update(WeChatApiToken)
        .where(WeChatApiToken.app_id == app_id)
        .values(sealed=sealed, expires_at=expires_at, updated_at=now)
    )


async def count_customer_message(
    session: AsyncSession, app_id: str, day: str, limit: int, now: datetime
) -> bool:
    """Count one more customer message on `day` if fewer than `limit` were; whether it
    was counted (in one statement, so concurrent senders never pass the limit together).
    The row must exist."""
    t = WeChatApiToken
    result = await session.execute(
        update(t)
        .where(t.app_id == app_id, or_(t.day != day, t.sent < limit))
        # `sent` before `day`: MySQL evaluates SET assignments in order, each seeing the
        # ones before it (SQLite sees the old row throughout).
        .ordered_values(
            (t.sent, case((t.day == day, t.sent + 1), else_=1)),
            (t.day, day),
            (t.updated_at, now),
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def uncount_customer_message(
    session: AsyncSession, app_id: str, day: str, now: datetime
) -> None:
    """Give back a message counted on `day` that WeChat did not take."""
    t = WeChatApiToken
    await session.execute(
        update(t)
        .where(t.app_id == app_id, t.day == day, t.sent > 0)
        .values(sent=t.sent - 1, updated_at=now)
    )


async def end_customer_day(
    session: AsyncSession, app_id: str, day: str, limit: int, now: datetime
) -> None:
    """No more customer messages on `day` (the API said its daily quota is reached): the
    count set to the limit, if under it."""
    t = WeChatApiToken
    await session.execute(
        update(t)
        .where(t.app_id == app_id)
        .ordered_values(
            (t.sent, case((and_(t.day == day, t.sent > limit), t.sent), else_=limit)),
            (t.day, day),
            (t.updated_at, now),
        )
    )


async def customer_messages_counted(session: AsyncSession, app_id: str, day: str) -> int:
    """Customer messages counted on `day`."""
    row = (
        await session.execute(
            select(WeChatApiToken.day, WeChatApiToken.sent).where(WeChatApiToken.app_id == app_id)
        )
    ).first()
    return int(row.sent) if row is not None and row.day == day else 0
