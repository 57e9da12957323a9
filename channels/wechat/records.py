"""Each follower message's record, shared by every worker and host (`wechat_messages`):
WeChat sends a message again (same MsgId) when no reply came within 5 s, to whichever
worker; the first delivery claims the message and answers it, the others read its
reply here. A message is answered once, whatever the number of deliveries.

States:

    working     the first delivery is answering it
    answered    its reply is ready (sealed: it holds a student's data)
    late        the follower was told to wait; the answer goes by customer message
    delivered   the late answer was sent by customer message
    failed      no answer could be given (a crash of its worker shows as a working
                record that stopped moving: `stalled`)

The key is a keyed hash of the account, the follower and the MsgId (events, which have
none, are told apart by their time and name, as WeChat's docs advise), so a dump of the
table names nobody.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.messages import InboundMessage, TextMessage, UnsupportedMessage
from db import wechat_messages as q
from services.errors import StorageUnavailable
from services.storage import transaction
from services.vault import SessionVault

State = Literal["working", "answered", "late", "delivered", "failed"]
T = TypeVar("T")
_SEAL_SYSTEM = "wechat"
_SEAL_PURPOSE = "reply"


@dataclass(frozen=True, slots=True)
class Record:
    """What is known of a message: its state, deliveries seen, and its reply if ready."""

    state: State
    attempts: int
    reply: str | None
    updated_at: datetime


def message_identity(message: InboundMessage) -> str:
    """What tells one message from another of the same follower: the MsgId, or for an
    event (no MsgId) its time and name."""
    msg_id = getattr(message, "msg_id", None)
    if isinstance(message, TextMessage) or (
        isinstance(message, UnsupportedMessage) and msg_id is not None
    ):
        return f"id:{msg_id}"
    return f"event:{int(message.created.timestamp())}:{type(message).__name__}"


class MessageRecords:
    """The records of one server's messages, in the database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        secret: bytes,
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._key = hmac.new(secret, b"jnufm wechat message", hashlib.sha256).digest()
        self._vault = SessionVault(secret)
        self._now = now

    async def _run(self, work: Callable[[AsyncSession], Awaitable[T]], write: bool = True) -> T:
        return await transaction(self._sessions, "wechat message", work, write=write)

    def key(self, account: str, message: InboundMessage) -> str:
        identity = f"{account}\x00{message.from_user}\x00{message_identity(message)}"
        return hmac.new(self._key, identity.encode(), hashlib.sha256).hexdigest()

    async def claim(self, account: str, key: str) -> Record | None:
        """None if this is the message's first delivery (now claimed, `working`); else its
        record, its delivery counted. Raises StorageUnavailable."""
        now = self._now()

        async def first(db: AsyncSession) -> None:
            await q.insert_message(db, account, key, "working", now)

        try:
            await self._run(first)
            return None
        except StorageUnavailable as exc:
            # Another worker inserted it first (a duplicate key), or the database is away:
            # reading the record tells which.
            found = await self.read(account, key, count=True)
            if found is None:
                raise exc
            return found

    async def read(self, account: str, key: str, count: bool = False) -> Record | None:
        now = self._now()

        async def work(db: AsyncSession) -> Record | None:
            if count:
                await q.count_attempt(db, account, key, now)
            row = await q.get_message(db, account, key)
            if row is None:
                return None
            reply = None
            if row.reply is not None:
                reply = self._vault.open(account, _SEAL_SYSTEM, row.reply, _SEAL_PURPOSE)
            state: State = row.state  # type: ignore[assignment]
            return Record(state, row.attempts, reply, row.updated_at)

        return await self._run(work, write=count)

    async def finish(self, account: str, key: str, reply: str) -> bool:
        """The reply is ready: kept (sealed) for WeChat's deliveries of the message, if it
        is still `working`. False if the follower was told to wait meanwhile (`late`):
        the reply then goes by customer message."""
        sealed = self._vault.seal(account, _SEAL_SYSTEM, reply, _SEAL_PURPOSE)
        now = self._now()
        return await self._run(
            lambda db: q.set_state(db, account, key, "answered", now, sealed, ("working",))
        )

    async def move(
        self, account: str, key: str, state: State, only_from: tuple[State, ...] | None = None
    ) -> bool:
        """Move the record to state (only from one of only_from); whether it moved."""
        now = self._now()
        return await self._run(
            lambda db: q.set_state(db, account, key, state, now, None, only_from)
        )

    def stalled(self, record: Record, after_s: float) -> bool:
        """A working record untouched for after_s: its worker died with the answer."""
        return record.state == "working" and self._now() - record.updated_at > timedelta(
            seconds=after_s
        )
