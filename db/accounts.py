"""Queries on 2013 accounts and their pictures. They never commit: the caller owns the
transaction. A picture is stored in base64 (db/models.py Upload.data); these take and
give its bytes."""

from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Account, Upload


async def account_named(session: AsyncSession, username: str) -> Account | None:
    return (
        await session.execute(select(Account).where(Account.username == username))
    ).scalar_one_or_none()


async def account_by_id(
    session: AsyncSession, account_id: int, for_update: bool = False
) -> Account | None:
    """The account; with for_update, its row locked until the transaction ends (MySQL)."""
    stmt = select(Account).where(Account.id == account_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def add_account(
    session: AsyncSession, username: str, password_hash: str, profile: str, now: datetime
) -> int:
    """A new account; raises IntegrityError if the user name is taken."""
    account = Account(
        username=username, password_hash=password_hash, profile=profile, created_at=now
    )
    session.add(account)
    await session.flush()
    return account.id


async def set_password_hash(session: AsyncSession, account_id: int, password_hash: str) -> None:
    await session.execute(
        update(Account).where(Account.id == account_id).values(password_hash=password_hash)
    )


async def change_password_hash(
    session: AsyncSession, account_id: int, old_hash: str, new_hash: str
) -> bool:
    """Replace the hash only if it is still `old_hash` (two resets at once: one wins)."""
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.password_hash == old_hash)
        .values(password_hash=new_hash)
    )
    return bool(getattr(result, "rowcount", 0))


async def set_profile(session: AsyncSession, account_id: int, profile: str) -> None:
    await session.execute(update(Account).where(Account.id == account_id).values(profile=profile))


async def set_student(session: AsyncSession, account_id: int, student_id: str) -> None:
    await session.execute(
        update(Account).where(Account.id == account_id).values(student_id=student_id)
    )


async def picture_names(session: AsyncSession, account_id: int) -> dict[str, str]:
    """The account's pictures: kind ("avatar", "background") -> file name."""
    rows = await session.execute(
        select(Upload.kind, Upload.name).where(Upload.account_id == account_id)
    )
    return {kind: name for kind, name in rows}


async def replace_picture(
    session: AsyncSession, account_id: int, kind: str, name: str, data: bytes, now: datetime
) -> None:
    """The account's picture of this kind is now this one (its old file name stops working).
    Raises IntegrityError when another request added the first one at the same time."""
    text = base64.b64encode(data).decode("ascii")
    result = await session.execute(
        update(Upload)
        .where(Upload.account_id == account_id, Upload.kind == kind)
        .values(name=name, data=text, created_at=now)
    )
    if not getattr(result, "rowcount", 0):
        session.add(Upload(account_id=account_id, kind=kind, name=name, data=text, created_at=now))
        await session.flush()


async def picture_data(session: AsyncSession, name: str) -> bytes | None:
    text = (
        await session.execute(select(Upload.data).where(Upload.name == name))
    ).scalar_one_or_none()
    return None if text is None else base64.b64decode(text)
