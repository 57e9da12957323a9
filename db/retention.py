"""Deleting what retention says is no longer of use, a small batch per call. They never
commit: the caller owns the transaction (one short one per batch).

Every batch selects up to `limit` keys, then deletes those keys *under the same
conditions again*: a row that changed in between (an answer refreshed, a token
used, a lease taken over, a student logged in) no longer matches and stays. The
select-then-delete is also what both databases accept: MySQL refuses LIMIT in a
subquery of the table being deleted from, and SQLite is usually built without
DELETE ... LIMIT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    Lease,
    LoginFailure,
    OutboxMessage,
    PageCapture,
    Result,
    SchoolSession,
    Student,
    Token,
    Watch,
    WeChatFollower,
    WeChatMessage,
    WeChatTicket,
)

# The stored answers a calendar feed is built from (systems/academic/service.py stored_term).
FEED_SYSTEM = "academic"
FEED_KINDS = ("timetable", "exams")


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch: rows selected for deletion, and rows deleted (fewer if some changed)."""

    found: int
    deleted: int


async def _delete_where(
    session: AsyncSession,
    model: Any,
    key: Any,
    where: Sequence[ColumnElement[bool]],
    limit: int,
    order_by: Any = None,
) -> Batch:
    stmt = select(key).where(*where).limit(limit)
    if order_by is not None:
        stmt = stmt.order_by(order_by)
    keys = list(await session.scalars(stmt))
    if not keys:
        return Batch(0, 0)
    result = await session.execute(delete(model).where(key.in_(keys), *where))
    deleted = int(getattr(result, "rowcount", 0) or 0)
    return Batch(len(keys), deleted)


def live_token(now: datetime, idle_s: float, max_age_s: float) -> ColumnElement[bool]:
    """A token that still opens something: not ended, used lately, not too old."""
    return and_(
        Token.ended_at.is_(None),
        Token.last_used_at >= now - timedelta(seconds=idle_s),
        Token.created_at >= now - timedelta(seconds=max_age_s),
    )


async def prune_results(
    session: AsyncSession,
    kinds: Sequence[str] | None,
    shared: bool,
    before: datetime,
    limit: int,
    feeds_live: ColumnElement[bool] | None = None,
    other_than: Sequence[str] = (),
) -> Batch:
    """Delete up to `limit` stored answers of these kinds (None: every kind but
    `other_than`), shared ones (subject "") or students', fetched before `before`.
    A student's answer a live calendar feed shows stays (`feeds_live`: which tokens
    are live)."""
    where: list[ColumnElement[bool]] = [
        Result.fetched_at < before,
        Result.subject == "" if shared else Result.subject != "",
    ]
    if kinds is not None:
        where.append(Result.kind.in_(kinds))
    elif other_than:
        where.append(Result.kind.not_in(other_than))
    if not shared and feeds_live is not None:
        shown = exists().where(Token.student_id == Result.subject, Token.kind == "feed", feeds_live)
        where.append(not_(and_(Result.system == FEED_SYSTEM, Result.kind.in_(FEED_KINDS), shown)))
    return await _delete_where(session, Result, Result.id, where, limit)


async def count_shared_results(session: AsyncSession) -> int:
    return int(
        await session.scalar(select(func.count()).select_from(Result).where(Result.subject == ""))
        or 0
    )


async def prune_oldest_shared_results(session: AsyncSession, count: int) -> Batch:
    """Delete the `count` oldest shared answers (fewer if some were refreshed meanwhile)."""
    rows = (
        await session.execute(
            select(Result.id, Result.fetched_at)
            .where(Result.subject == "")
            .order_by(Result.fetched_at)
            .limit(count)
        )
    ).all()
    if not rows:
        return Batch(0, 0)
    newest = max(row.fetched_at for row in rows)
    result = await session.execute(
        delete(Result).where(
            Result.id.in_([row.id for row in rows]),
            Result.subject == "",
            Result.fetched_at <= newest,
        )
    )
    return Batch(len(rows), int(getattr(result, "rowcount", 0) or 0))


async def prune_school_sessions(
    session: AsyncSession, used_before: datetime, created_before: datetime, limit: int
) -> Batch:
    """Delete sealed school sessions idle since `used_before` or opened before
    `created_before` (neither may be used again). One index range at a time: the rows
    idle first, then those too old."""
    idle = await _delete_where(
        session, SchoolSession, SchoolSession.id, [SchoolSession.used_at < used_before], limit
    )
    if idle.found == limit:
        return idle
    old = await _delete_where(
        session,
        SchoolSession,
        SchoolSession.id,
        [SchoolSession.created_at < created_before],
        limit - idle.found,
    )
    return Batch(idle.found + old.found, idle.deleted + old.deleted)


async def prune_failures(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete failed logins from before `before` (outside every lockout window)."""
    where = [LoginFailure.failed_at < before]
    return await _delete_where(session, LoginFailure, LoginFailure.id, where, limit)


async def prune_tokens(
    session: AsyncSession,
    ended_before: datetime,
    used_before: datetime,
    created_before: datetime,
    limit: int,
) -> Batch:
    """Delete tokens that ended before `ended_before`, or (expired) were last used before
    `used_before` or made before `created_before`. One index range at a time."""
    found = deleted = 0
    for where in (
        Token.ended_at < ended_before,
        Token.last_used_at < used_before,
        Token.created_at < created_before,
    ):
        batch = await _delete_where(session, Token, Token.id, [where], limit - found)
        found, deleted = found + batch.found, deleted + batch.deleted
        if found == limit:
            break
    return Batch(found, deleted)


async def prune_leases(session: AsyncSession, now: datetime, limit: int) -> Batch:
    """Delete expired leases (a crashed holder's; a lease taken over meanwhile stays)."""
    return await _delete_where(session, Lease, Lease.name, [Lease.expires_at < now], limit)


async def prune_students(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete students last seen before `before` who hold no token; their verifiers and
    school sessions go with them (foreign keys, ON DELETE CASCADE)."""
    holds_token = exists().where(Token.student_id == Student.student_id)
    where = [Student.last_login_at < before, not_(holds_token)]
    return await _delete_where(session, Student, Student.id, where, limit)


async def prune_page_captures(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete kept school pages last seen before `before`."""
    return await _delete_where(
        session, PageCapture, PageCapture.id, [PageCapture.last_seen_at < before], limit
    )


async def prune_wechat_followers(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete WeChat bindings that ended before `before` (a binding made again since has
    no `ended_at`, and stays)."""
    where = [WeChatFollower.ended_at < before]
    return await _delete_where(session, WeChatFollower, WeChatFollower.id, where, limit)


async def prune_wechat_tickets(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete used bind tickets that expired before `before` (refused as expired anyway)."""
    where = [WeChatTicket.expires_at < before]
    return await _delete_where(session, WeChatTicket, WeChatTicket.id, where, limit)


async def prune_wechat_messages(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete records of WeChat messages received before `before` (WeChat delivers a
    message again for 20 s at most: their replies are of no further use)."""
    where = [WeChatMessage.created_at < before]
    return await _delete_where(session, WeChatMessage, WeChatMessage.id, where, limit)


async def prune_watches(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete students' watches that ended before `before` (their outbox rows are
    delivery's to prune)."""
    where = [Watch.ended_at < before]
    return await _delete_where(session, Watch, Watch.id, where, limit)


async def prune_outbox(session: AsyncSession, before: datetime, limit: int) -> Batch:
    """Delete watch messages made before `before` and delivered or given up on before
    it too (one still waiting stays, however old)."""
    where = [
        OutboxMessage.created_at < before,
        or_(OutboxMessage.delivered_at < before, OutboxMessage.failed_at < before),
    ]
    return await _delete_where(session, OutboxMessage, OutboxMessage.id, where, limit)
