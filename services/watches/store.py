"""Students' watches in the database: made with a student's session token, listed with
what became of their messages, deleted, ended with their token; claimed by one poller
at a time, and a poll's new state kept with its events in one transaction.

A watch polls with the session token it was made with (`token_id`, never the token):
its password is the token's, sealed there. When the token ends the watch ends: at once
when the student revokes it (`tokens_revoked`, called by DELETE /v1/sessions), else
when the scheduler next meets it (`end`, with the reason the token store gives).

A poll is claimed (`claim_due`) by moving the watch's `next_poll_at` forward by
CLAIM_S with a conditional UPDATE (only if nobody moved it since it was read): one
worker of all hosts polls a watch at a time. The poll's save (`save_poll`) writes the
state only while that claim holds, in the transaction that writes its events to the
outbox; an event already there (the same key) is not written again.

Errors: BadInput (400 invalid_watch_kind, invalid_watch_param, invalid_channel,
invalid_target; 409 too_many_watches; 404 unknown_watch), StorageUnavailable.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import outbox as outbox_q
from db import watches as q
from db.models import OutboxMessage, Watch
from services import codes
from services.errors import BadInput, StorageUnavailable
from services.storage import transaction
from services.tokens import SessionGrant
from services.vault import SessionVault
from services.watches.kinds import BadParam, State, check_param
from services.watches.notices import (
    CHANNELS,
    KIND_SYSTEM,
    KINDS,
    Kind,
    Notice,
    open_field,
    seal_field,
    seal_notice,
)
from settings import Settings

# How long a claimed poll keeps its watch from other pollers: longer than any poll (a
# query's deadline); a poller that died mid-poll leaves the watch to another after it.
CLAIM_S: Final = 600.0
# Due watches read at once when looking for one to claim (others may take some first).
DUE_AT_ONCE: Final = 8
# Messages of each watch its listing shows.
RECENT_MESSAGES: Final = 5
# A save that lost a race on an event's key is run again this many times in all.
SAVE_TRIES: Final = 3
MAX_TARGET: Final = 500
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+"
)
_LOCAL_NAMES: Final = ("localhost", "localhost.localdomain")
_LOCAL_SUFFIXES: Final = (".localhost", ".local", ".internal", ".lan", ".home.arpa")

Delivery = Literal["delivered", "pending", "given_up"]


@dataclass(frozen=True, slots=True)
class MessageView:
    """What became of one of a watch's messages."""

    status: Delivery
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class WatchView:
    """A student's watch as its student sees it (the webhook's secret never again)."""

    id: int
    kind: str
    system: str
    param: str
    channel: str
    target: str
    created_at: datetime
    last_polled_at: datetime | None
    failures: int
    messages: tuple[MessageView, ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimedWatch:
    """A watch one poller holds until `claimed_until` (its next_poll_at meanwhile)."""

    id: int
    student_id: str
    system: str
    token_id: int
    kind: Kind
    param: str
    channel: str
    state: State | None
    claimed_until: datetime
    last_polled_at: datetime | None


def check_target(channel: str, target: str, allow_private: bool) -> str:
    """The target in its kept form. Raises BadInput (invalid_channel, invalid_target)."""
    if channel == "wechat":
        raise BadInput(
            codes.INVALID_CHANNEL,
            "a WeChat watch is made in the chat with the official account (send 提醒), not here",
        )
    if channel not in CHANNELS:
        raise BadInput(codes.INVALID_CHANNEL, "channel is webhook or email")
    target = target.strip()
    if not target or len(target) > MAX_TARGET:
        raise BadInput(codes.INVALID_TARGET, f"target must be 1 to {MAX_TARGET} characters")
    if channel == "email":
        if not _EMAIL.fullmatch(target):
            raise BadInput(codes.INVALID_TARGET, "target must be an e-mail address")
        return target
    try:
        url = urlsplit(target)
        host = (url.hostname or "").lower()
        url.port  # noqa: B018 (raises ValueError for a port that is not one)
    except ValueError:
        raise BadInput(codes.INVALID_TARGET, "target must be an https URL") from None
    if url.scheme not in ("https", "http") or not host or url.username or url.password:
        raise BadInput(codes.INVALID_TARGET, "target must be an https URL, without credentials")
    if not allow_private:
        if url.scheme != "https":
            raise BadInput(codes.INVALID_TARGET, "target must be an https URL")
        if _private_host(host):
            raise BadInput(
                codes.INVALID_TARGET, "target must not point at this host or a private network"
            )
    return target


def _private_host(host: str) -> bool:
    """Whether a URL's host names this host or a private network, by its text (a name is
    resolved at each delivery, and its address checked there)."""
    bare = host.strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return bare in _LOCAL_NAMES or bare.endswith(_LOCAL_SUFFIXES) or "." not in bare
    return not address.is_global


def _delivery(row: OutboxMessage) -> MessageView:
    status: Delivery = (
        "delivered"
        if row.delivered_at is not None
        else "given_up"
        if row.failed_at is not None
        else "pending"
    )
    return MessageView(status, row.created_at, row.attempts)


class WatchStore:
    """Students' watches, for one worker."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        vault: SessionVault,
        now: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._config = settings.watches
        self._vault = vault
        self._now = now

    def interval_s(self, kind: str) -> float:
        """How often a kind is polled, at most (`watches.poll_s`)."""
        return float(getattr(self._config.poll_s, kind))

    # Made, listed, deleted ----------------------------------------------------------------

    async def create(
        self, grant: SessionGrant, kind: str, channel: str, target: str, param: str = ""
    ) -> tuple[WatchView, str | None]:
        """A new watch of the grant's student, polling with the grant's token: the watch
        and, for a webhook, its signing secret (returned this once). Raises BadInput."""
        if kind not in KINDS:
            raise BadInput(codes.INVALID_WATCH_KIND, "kind is one of " + ", ".join(KINDS))
        checked: Kind = KINDS[KINDS.index(kind)]
        if KIND_SYSTEM[checked] != grant.system:
            raise BadInput(
                codes.INVALID_WATCH_KIND,
                f"a {kind} watch needs the {KIND_SYSTEM[checked]} system's password or token",
            )
        try:
            kept_param = check_param(checked, param)
        except BadParam as exc:
            raise BadInput(codes.INVALID_WATCH_PARAM, str(exc)) from None
        kept_target = check_target(channel, target, self._config.webhook_allow_private)
        return await self._create(grant, checked, channel, kept_target, kept_param)

    async def create_for_follower(
        self, grant: SessionGrant, kind: str, param: str, account: str, openid: str
    ) -> WatchView:
        """A watch made in a WeChat chat: its messages go to that follower of that
        account (channels/wechat/notify.py). Raises BadInput as create does."""
        if kind not in KINDS:
            raise BadInput(codes.INVALID_WATCH_KIND, "kind is one of " + ", ".join(KINDS))
        checked: Kind = KINDS[KINDS.index(kind)]
        if KIND_SYSTEM[checked] != grant.system:
            raise BadInput(codes.INVALID_WATCH_KIND, f"a {kind} watch asks another system")
        try:
            kept_param = check_param(checked, param)
        except BadParam as exc:
            raise BadInput(codes.INVALID_WATCH_PARAM, str(exc)) from None
        view, _ = await self._create(grant, checked, "wechat", f"{account}\n{openid}", kept_param)
        return view

    async def _create(
        self, grant: SessionGrant, checked: Kind, channel: str, kept_target: str, kept_param: str
    ) -> tuple[WatchView, str | None]:
        secret = secrets.token_urlsafe(32) if channel == "webhook" else None
        now = self._now()
        student = grant.student_id
        row = Watch(
            student_id=student,
            system=grant.system,
            token_id=grant.token_id,
            kind=checked,
            param=kept_param,
            channel=channel,
            target=seal_field(self._vault, student, "target", kept_target),
            secret=None if secret is None else seal_field(self._vault, student, "secret", secret),
            client=grant.client[:64],
            created_at=now,
            next_poll_at=now,
            failures=0,
        )
        cap = self._config.per_student

        async def work(db: AsyncSession) -> int:
            if await q.live_count(db, student) >= cap:
                raise BadInput(codes.TOO_MANY_WATCHES, f"a student may have {cap} watches at once")
            return await q.add_watch(db, row)

        watch_id = await transaction(self._sessions, "watch", work)
        view = WatchView(
            watch_id,
            checked,
            grant.system,
            kept_param,
            channel,
            kept_target,
            now,
            None,
            0,
        )
        return view, secret

    async def listed(self, student_id: str, system: str) -> list[WatchView]:
        """The student's live watches of one system, with their latest messages."""

        async def read(db: AsyncSession) -> list[WatchView]:
            views = []
            for row in await q.live_watches(db, student_id, system):
                recent = await outbox_q.recent_messages(db, row.id, RECENT_MESSAGES)
                target = open_field(self._vault, student_id, "target", row.target) or ""
                views.append(
                    WatchView(
                        row.id,
                        row.kind,
                        row.system,
                        row.param,
                        row.channel,
                        target,
                        row.created_at,
                        row.last_polled_at,
                        row.failures,
                        tuple(_delivery(m) for m in recent),
                    )
                )
            return views

        return await transaction(self._sessions, "watches", read, write=False)

    async def delete(self, student_id: str, system: str, watch_id: int) -> None:
        """End one of the student's live watches of a system. Raises BadInput 404."""
        now = self._now()

        async def work(db: AsyncSession) -> bool:
            row = await q.get_watch(db, watch_id)
            if row is None or row.student_id != student_id or row.system != system:
                return False
            return await q.end_watch(db, watch_id, now, "deleted", student_id)

        if not await transaction(self._sessions, "watch", work):
            raise BadInput(codes.UNKNOWN_WATCH, "no such live watch of this student")

    async def tokens_revoked(self, token_ids: list[int]) -> list[int]:
        """End the watches of these (just revoked) tokens; the watches' ids."""
        if not token_ids:
            return []
        now = self._now()
        return await transaction(
            self._sessions,
            "watches",
            lambda db: q.end_token_watches(db, token_ids, now, "token_revoked"),
        )

    async def end(self, watch_id: int, reason: str) -> bool:
        """End a watch (its token ended: `reason` says how)."""
        now = self._now()
        return await transaction(
            self._sessions, "watch", lambda db: q.end_watch(db, watch_id, now, reason[:32])
        )

    # Polls --------------------------------------------------------------------------------

    async def claim_due(self, systems: list[str]) -> ClaimedWatch | None:
        """A due watch of these systems, claimed for this poller alone (None: none is due)."""
        now = self._now()
        until = now + timedelta(seconds=CLAIM_S)

        async def work(db: AsyncSession) -> Watch | None:
            for row in await q.due_watches(db, now, systems, DUE_AT_ONCE):
                if await q.move_next_poll(db, row.id, row.next_poll_at, until):
                    return row
            return None

        row = await transaction(self._sessions, "watch", work)
        if row is None:
            return None
        state: State | None = None
        if row.state is not None:
            opened = open_field(self._vault, row.student_id, "state", row.state)
            # A state sealed under another key is lost: the poll sets a new baseline.
            state = json.loads(opened) if opened is not None else None
        kind: Kind = KINDS[KINDS.index(row.kind)] if row.kind in KINDS else "grade"
        return ClaimedWatch(
            row.id,
            row.student_id,
            row.system,
            row.token_id,
            kind,
            row.param,
            row.channel,
            state,
            until,
            row.last_polled_at,
        )

    async def save_poll(
        self,
        watch: ClaimedWatch,
        state: State,
        notices: tuple[Notice, ...] | list[Notice],
        next_poll_at: datetime,
    ) -> int | None:
        """Keep a poll's state and write its events to the outbox, in one transaction:
        the number of messages written (an event already there is not written again), or
        None when the claim was lost (another poller took the watch, or it ended) and
        nothing was written."""
        now = self._now()
        sealed = seal_field(
            self._vault,
            watch.student_id,
            "state",
            json.dumps(state, ensure_ascii=False, separators=(",", ":"), sort_keys=True),
        )

        def rows() -> list[OutboxMessage]:
            return [
                OutboxMessage(
                    watch_id=watch.id,
                    event_key=n.event_key,
                    channel=watch.channel,
                    payload=seal_notice(self._vault, n),
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                    last_error="",
                )
                for n in notices
            ]

        class _LostClaim(Exception):
            pass

        async def work(db: AsyncSession) -> int:
            if not await q.save_state(db, watch.id, watch.claimed_until, sealed, now, next_poll_at):
                raise _LostClaim
            return await outbox_q.insert_notices(db, rows())

        for attempt in range(SAVE_TRIES):
            try:
                return await transaction(self._sessions, "watch poll", work)
            except _LostClaim:
                return None
            except StorageUnavailable as exc:
                # Another writer put one of these keys in since this one looked: the
                # whole transaction again finds it there.
                if isinstance(exc.__cause__, IntegrityError) and attempt + 1 < SAVE_TRIES:
                    continue
                raise
        raise AssertionError("unreachable")

    async def put_off(self, watch: ClaimedWatch, next_poll_at: datetime) -> bool:
        """Give a claimed watch back to be polled at `next_poll_at` (a poll that failed)."""
        return await transaction(
            self._sessions,
            "watch",
            lambda db: q.move_next_poll(db, watch.id, watch.claimed_until, next_poll_at),
        )

    async def held_slots(self, prefix: str) -> int:
        """School budget slots held now by any process (their leases' prefix)."""
        now = self._now()
        return await transaction(
            self._sessions, "leases", lambda db: q.held_slots(db, prefix, now), write=False
        )

    async def live_tokens(self, system: str, after_id: int, count: int) -> list[int]:
        """Ids of session tokens of a system not ended, after `after_id` (for a prefetch)."""
        found = await transaction(
            self._sessions,
            "tokens",
            lambda db: q.live_session_tokens(db, system, after_id, count),
            write=False,
        )
        return list(found)
