"""Queries on bearer tokens and registered clients. They never commit: the caller owns
the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Client, Token


async def add_token(session: AsyncSession, token: Token, keep: int) -> int:
    """Store a new token; beyond `keep` live tokens of its student (sessions and feeds of
    every system), the oldest end ("replaced"). Returns the new token's id."""
    session.add(token)
    await session.flush()
    if token.student_id is not None:
        old = (
            await session.scalars(
                select(Token.id)
                .where(Token.student_id == token.student_id, Token.ended_at.is_(None))
                .order_by(Token.id.desc())
                .offset(keep)
            )
        ).all()
        if old:
            await session.execute(
                update(Token)
                .where(Token.id.in_(old))
                .values(ended_at=token.created_at, ended_reason="replaced")
            )
    return token.id


async def get_token(session: AsyncSession, token_hash: str) -> Token | None:
    return (
        await session.execute(select(Token).where(Token.token_hash == token_hash))
    ).scalar_one_or_none()


async def token_by_id(session: AsyncSession, token_id: int) -> Token | None:
    return await session.get(Token, token_id)


async def tokens_by_ids(session: AsyncSession, ids: Sequence[int]) -> Sequence[Token]:
    """The tokens of these ids that still have a row (live or ended)."""
    if not ids:
        return []
    return (await session.scalars(select(Token).where(Token.id.in_(ids)))).all()


async def student_tokens(session: AsyncSession, student_id: str, system: str) -> Sequence[Token]:
    """A student's live tokens of one system (sessions and feeds), newest first."""
    return (
        await session.scalars(
            select(Token)
            .where(
                Token.student_id == student_id,
                Token.system == system,
                Token.ended_at.is_(None),
            )
            .order_by(Token.id.desc())
        )
    ).all()


async def end_token_ids(
    session: AsyncSession,
    student_id: str,
    system: str,
    ids: Sequence[int] | None,
    now: datetime,
    reason: str,
) -> list[int]:
    """End some (or, with ids None, all) of a student's live tokens of a system; the ids
    ended."""
    where = [Token.student_id == student_id, Token.system == system, Token.ended_at.is_(None)]
    if ids is not None:
        where.append(Token.id.in_(ids))
    found = list((await session.scalars(select(Token.id).where(*where))).all())
    if found:
        await session.execute(
            update(Token).where(Token.id.in_(found)).values(ended_at=now, ended_reason=reason)
        )
    return found


async def end_tokens(
    session: AsyncSession,
    student_id: str,
    system: str,
    now: datetime,
    reason: str,
    *,
    keep: str | None = None,
    only: str | None = None,
) -> int:
    """End a student's live tokens of one system: every one not made with the password
    `keep` (a verifier prefix; also those that never recorded theirs), or only those made
    with `only`. Returns how many ended."""
    stmt = update(Token).where(
        Token.student_id == student_id, Token.system == system, Token.ended_at.is_(None)
    )
    if keep is not None:
        stmt = stmt.where(or_(Token.verifier.is_(None), Token.verifier != keep))
    if only is not None:
        stmt = stmt.where(Token.verifier == only)
    result = await session.execute(stmt.values(ended_at=now, ended_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


async def end_account_tokens(
    session: AsyncSession, account_id: int, now: datetime, reason: str
) -> None:
    await session.execute(
        update(Token)
        .where(Token.account_id == account_id, Token.kind == "account", Token.ended_at.is_(None))
        .values(ended_at=now, ended_reason=reason)
    )


async def account_session_token(
    session: AsyncSession, account_id: int, system: str
) -> Token | None:
    """A 2013 account's newest session token of one system, live or ended."""
    return (
        await session.scalars(
            select(Token)
            .where(Token.account_id == account_id, Token.kind == "session", Token.system == system)
            .order_by(Token.id.desc())
            .limit(1)
        )
    ).first()


async def end_account_sessions(
    session: AsyncSession, account_id: int, system: str, now: datetime, reason: str
) -> None:
    await session.execute(
        update(Token)
        .where(
            Token.account_id == account_id,
            Token.kind == "session",
            Token.system == system,
            Token.ended_at.is_(None),
        )
        .values(ended_at=now, ended_reason=reason)
    )


async def touch_token(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(update(Token).where(Token.id == token_id).values(last_used_at=now))


async def prune_tokens(
    session: AsyncSession, ended_before: datetime, idle_before: datetime, limit: int
) -> int:
    """Delete up to `limit` tokens that ended before `ended_before` or were last used before
    `idle_before` (long expired); returns how many."""
    ids = list(
        (
            await session.scalars(
                select(Token.id)
                .where(
                    or_(
                        Token.ended_at < ended_before,
                        Token.last_used_at < idle_before,
                    )
                )
                .limit(limit)
            )
        ).all()
    )
    if ids:
        await session.execute(delete(Token).where(Token.id.in_(ids)))
    return len(ids)


# Registered clients ---------------------------------------------------------------------------


async def live_clients(session: AsyncSession) -> Sequence[Client]:
    return (await session.scalars(select(Client).where(Client.revoked_at.is_(None)))).all()


async def all_clients(session: AsyncSession) -> Sequence[Client]:
    return (await session.scalars(select(Client).order_by(Client.name))).all()


async def client_named(session: AsyncSession, name: str) -> Client | None:
    return (await session.execute(select(Client).where(Client.name == name))).scalar_one_or_none()
