"""Bearer tokens: one door to the `tokens` table for students' session tokens, calendar feed
URLs and 2013 account logins.

A token is 256 random bits (URL-safe base64, 43 characters), shown once; only its
SHA-256 is stored, so a database dump opens nothing. A session token keeps the
student's password sealed (services/vault.py, bound to the student, the system and
this purpose): a query with the token needs no password, and counts as no guess
(`Credentials.proven`).

A token ends:
- when its student revokes it (`token_revoked`), or makes too many (`replaced`);
- when unused for `tokens.idle_s`, or older than `tokens.max_age_s` (`token_expired`);
- when the password changes at the school (`password_changed`): the school refused the
  password it was made with, or accepted another one (services/gate.py ends them in the
  same transaction that changes the verifier).
An ended token's row stays `tokens.keep_ended_s`, so its holder learns why.

Workers keep what they read of a token for `tokens.cache_s`: a token revoked or
ended on another worker may still answer that long (the worker that ended it
forgets at once). `last_used_at` is written at most every `tokens.touch_s`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import tokens as q
from db.models import Token
from services import codes
from services.codes import ErrorCode
from services.credentials import Credentials
from services.errors import BadInput, TokenRefused, TokenScope
from services.storage import transaction
from services.vault import SessionVault
from settings import TokensSettings

log = logging.getLogger("jnufm.tokens")

TOKEN_BYTES: Final = 32
TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{43}")
# Tokens a worker remembers at once (each a few hundred bytes).
CACHE_ENTRIES: Final = 20000
PRUNE_BATCH: Final = 64
SEALED_PURPOSE: Final = "password"

Kind = Literal["session", "feed", "account"]
Feed = Literal["all", "timetable", "exams"]
FEEDS: tuple[Feed, ...] = ("all", "timetable", "exams")

T = TypeVar("T")

# Why a token ended -> its error as a session token (401), as a feed's (410), and what
# the client is told.
WHY: dict[str, tuple[ErrorCode, ErrorCode, str]] = {
    "password_changed": (
        codes.PASSWORD_CHANGED,
        codes.FEED_PASSWORD_CHANGED,
        "this token ended because the password changed at the school; make a new one",
    ),
    "revoked": (codes.TOKEN_REVOKED, codes.FEED_REVOKED, "this token was revoked"),
    "replaced": (
        codes.TOKEN_REVOKED,
        codes.FEED_REVOKED,
        "this token was replaced by newer ones (too many at once)",
    ),
    "expired": (codes.TOKEN_EXPIRED, codes.FEED_EXPIRED, "this token expired; make a new one"),
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class TokenView:
    """What a token is, without its secret (for listings)."""

    id: int
    kind: str
    student_id: str | None
    system: str | None
    feed: str | None
    year: int | None
    term: int | None
    client: str
    label: str
    created_at: datetime
    last_used_at: datetime
    ended_at: datetime | None
    ended_reason: str | None
    account_id: int | None
    verifier: str | None
    sealed: str | None


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """What a live session token lets its holder do: ask as this student, at this system."""

    token_id: int
    student_id: str
    system: str
    password: str
    client: str

    def __repr__(self) -> str:
        return f"SessionGrant(token_id={self.token_id}, system={self.system!r})"

    def credentials(self) -> Credentials:
        return Credentials(self.student_id, self.password, proven=True)


@dataclass(frozen=True, slots=True)
class FeedGrant:
    """What a live feed token opens: one student's feed of one term."""

    token_id: int
    student_id: str
    feed: Feed
    year: int
    term: int


def _view(row: Token) -> TokenView:
    return TokenView(
        row.id,
        row.kind,
        row.student_id,
        row.system,
        row.feed,
        row.year,
        row.term,
        row.client,
        row.label,
        row.created_at,
        row.last_used_at,
        row.ended_at,
        row.ended_reason,
        row.account_id,
        row.verifier,
        row.sealed,
    )


class TokenStore:
    """Tokens in the database, with a short-lived copy in this worker's memory."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: TokensSettings,
        vault: SessionVault,
        now: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._vault = vault
        self._now = now
        self._clock = clock
        # token hash -> (what was read, when); None: no such token.
        self._cache: dict[str, tuple[TokenView | None, float]] = {}
        # token id -> when this worker last wrote its last_used_at.
        self._touched: dict[int, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def _run(self, what: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        return await transaction(self._sessions, what, work)

    # Making ---------------------------------------------------------------------------------

    async def _add(self, row: Token) -> int:
        now = self._now()
        s = self._settings

        async def work(db: AsyncSession) -> int:
            token_id = await q.add_token(db, row, s.per_student)
            await q.prune_tokens(
                db,
                now - timedelta(seconds=s.keep_ended_s),
                now - timedelta(seconds=s.idle_s + s.keep_ended_s),
                PRUNE_BATCH,
            )
            return token_id

        token_id = await self._run("token", work)
        if row.student_id is not None and row.system is not None:
            self.forget(row.student_id, row.system)  # the oldest may have ended
        return token_id

    def _row(self, token: str, kind: Kind, **fields: object) -> Token:
        now = self._now()
        return Token(
            token_hash=token_hash(token),
            kind=kind,
            created_at=now,
            last_used_at=now,
            client=fields.pop("client", "") or "",
            label=fields.pop("label", "") or "",
            **fields,
        )

    async def create_session(
        self,
        creds: Credentials,
        system: str,
        attempt: str,
        client: str = "",
        label: str = "",
        account_id: int | None = None,
    ) -> tuple[str, TokenView]:
        """A session token holding this password (which the school accepted; `attempt` is
        its verifier prefix), for a 2013 account if `account_id` is given. Returns the
        token (shown once) and what it is."""
        token = new_token()
        sealed = self._vault.seal(creds.student_id, system, creds.password, SEALED_PURPOSE)
        row = self._row(
            token,
            "session",
            student_id=creds.student_id,
            system=system,
            verifier=attempt,
            sealed=sealed,
            client=client,
            label=label,
            account_id=account_id,
        )
        await self._add(row)
        return token, _view(row)

    async def create_feed(
        self, student_id: str, feed: Feed, year: int, term: int, attempt: str, client: str = ""
    ) -> str:
        """A calendar feed token of the academic office password `attempt` stands for."""
        token = new_token()
        row = self._row(
            token,
            "feed",
            student_id=student_id,
            system="academic",
            verifier=attempt,
            feed=feed,
            year=year,
            term=term,
            client=client,
        )
        await self._add(row)
        return token

    async def create_account(self, account_id: int, client: str = "") -> str:
        """A 2013 account's login token."""
        token = new_token()
        await self._add(self._row(token, "account", account_id=account_id, client=client))
        return token

    # Reading --------------------------------------------------------------------------------

    async def _find(self, token: str) -> TokenView | None:
        """The token's row (from this worker's memory while young), None if unknown."""
        if not TOKEN_SHAPE.fullmatch(token):
            return None
        digest = token_hash(token)
        t = self._clock()
        cached = self._cache.get(digest)
        if cached is not None and t - cached[1] <= self._settings.cache_s:
            return cached[0]

        async def read(db: AsyncSession) -> TokenView | None:
            row = await q.get_token(db, digest)
            return None if row is None else _view(row)

        found = await self._run("token", read)
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[digest] = (found, t)
        return found

    def _why_dead(self, view: TokenView) -> str | None:
        """Why a token no longer works, or None while it does."""
        if view.ended_at is not None:
            return view.ended_reason or "revoked"
        now = self._now()
        s = self._settings
        if (now - view.last_used_at).total_seconds() > s.idle_s:
            return "expired"
        if (now - view.created_at).total_seconds() > s.max_age_s:
            return "expired"
        return None

    def _refused(self, reason: str, feed: bool = False) -> TokenRefused:
        """Why a token ended, as a session token's error (401) or a feed's (410)."""
        session, gone, message = WHY.get(reason, WHY["revoked"])
        return TokenRefused(gone if feed else session, message)

    async def session(self, token: str, system: str) -> SessionGrant:
        """The grant of a live session token for `system`. Raises TokenRefused (unknown,
        expired, revoked, ended by a password change) or TokenScope (another system's)."""
        view = await self._find(token)
        if view is None or view.kind != "session" or view.sealed is None:
            raise TokenRefused(codes.INVALID_TOKEN, "no such token")
        why = self._why_dead(view)
        if why is not None:
            raise self._refused(why)
        assert view.student_id is not None and view.system is not None
        if view.system != system:
            raise TokenScope(f"this token is for the {view.system} system, not {system}")
        password = self._vault.open(view.student_id, view.system, view.sealed, SEALED_PURPOSE)
        if password is None:
            # Sealed with another secret key: it can never open again.
            raise TokenRefused(codes.INVALID_TOKEN, "this token can no longer be opened")
        self._touch(view.id)
        return SessionGrant(view.id, view.student_id, view.system, password, view.client)

    async def session_by_id(self, token_id: int, system: str) -> SessionGrant:
        """The grant of a live session token found by its id (for a holder that keeps the
        id, never the token: a WeChat binding). Raises what `session` raises."""

        async def read(db: AsyncSession) -> TokenView | None:
            row = await q.token_by_id(db, token_id)
            return None if row is None else _view(row)

        view = await self._run("token", read)
        if view is None or view.kind != "session" or view.sealed is None:
            raise TokenRefused(codes.INVALID_TOKEN, "no such token")
        why = self._why_dead(view)
        if why is not None:
            raise self._refused(why)
        assert view.student_id is not None and view.system is not None
        if view.system != system:
            raise TokenScope(f"this token is for the {view.system} system, not {system}")
        password = self._vault.open(view.student_id, view.system, view.sealed, SEALED_PURPOSE)
        if password is None:
            raise TokenRefused(codes.INVALID_TOKEN, "this token can no longer be opened")
        self._touch(view.id)
        return SessionGrant(view.id, view.student_id, view.system, password, view.client)

    async def live_ids(self, token_ids: list[int]) -> set[int]:
        """Which of these tokens still work (not ended, not expired)."""
        rows = await self._run("tokens", lambda db: q.tokens_by_ids(db, token_ids))
        return {v.id for v in (_view(r) for r in rows) if self._why_dead(v) is None}

    async def feed(self, token: str) -> FeedGrant:
        """What a feed URL's token opens. Raises BadInput 404 unknown_token, or TokenRefused
        with 410 for one that ended (its code says why)."""
        view = await self._find(token)
        if view is None or view.kind != "feed" or view.feed not in FEEDS:
            raise BadInput(codes.UNKNOWN_TOKEN, "no such calendar feed (revoked or never made)")
        why = self._why_dead(view)
        if why is not None:
            raise self._refused(why, feed=True)
        assert view.student_id is not None and view.year is not None and view.term is not None
        self._touch(view.id)
        feed: Feed = (
            "all" if view.feed == "all" else "timetable" if view.feed == "timetable" else "exams"
        )
        return FeedGrant(view.id, view.student_id, feed, view.year, view.term)

    async def account(self, token: str) -> int | None:
        """The account a live account token opens, or None."""
        view = await self._find(token)
        if view is None or view.kind != "account" or view.account_id is None:
            return None
        if self._why_dead(view) is not None:
            return None
        self._touch(view.id)
        return view.account_id

    async def account_session(self, account_id: int, system: str) -> SessionGrant | None:
        """The grant of a 2013 account's session token for `system` (its newest), or None if
        it never had one. Raises TokenRefused when that token ended (the code says why)."""
        row = await self._run("token", lambda db: q.account_session_token(db, account_id, system))
        sealed = None if row is None else row.sealed
        if row is None or sealed is None or row.student_id is None:
            return None
        view = _view(row)
        why = self._why_dead(view)
        if why is not None:
            raise self._refused(why)
        password = self._vault.open(row.student_id, system, sealed, SEALED_PURPOSE)
        if password is None:
            raise TokenRefused(codes.INVALID_TOKEN, "this token can no longer be opened")
        self._touch(view.id)
        return SessionGrant(view.id, row.student_id, system, password, view.client)

    async def end_account_sessions(self, account_id: int, system: str, reason: str) -> None:
        """End a 2013 account's live session tokens of `system` (it binds another)."""
        now = self._now()
        await self._run(
            "tokens", lambda db: q.end_account_sessions(db, account_id, system, now, reason)
        )

    def _touch(self, token_id: int) -> None:
        """Write last_used_at now and then (in the background; a failure only delays it)."""
        t = self._clock()
        last = self._touched.get(token_id)
        if last is not None and t - last < self._settings.touch_s:
            return
        if len(self._touched) >= CACHE_ENTRIES:
            self._touched.clear()
        self._touched[token_id] = t
        now = self._now()

        async def write() -> None:
            try:
                async with self._sessions.begin() as db:
                    await q.touch_token(db, token_id, now)
            except SQLAlchemyError as exc:
                log.debug("could not note a token's use: %s", type(exc).__name__)

        task = asyncio.ensure_future(write())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # Listing and revoking -----------------------------------------------------------------------

    async def listed(self, student_id: str, system: str) -> list[TokenView]:
        """The student's live tokens of one system, newest first."""
        rows = await self._run("tokens", lambda db: q.student_tokens(db, student_id, system))
        return [v for v in (_view(r) for r in rows) if self._why_dead(v) is None]

    async def revoke(self, student_id: str, system: str, ids: list[int] | None) -> list[int]:
        """End some (None: all) of the student's tokens of a system; the ids ended."""
        now = self._now()
        ended = await self._run(
            "tokens", lambda db: q.end_token_ids(db, student_id, system, ids, now, "revoked")
        )
        self.forget(student_id, system)
        return ended

    async def revoke_token(self, token: str, kind: Kind) -> bool:
        """End a token by its secret (holding a feed's URL is enough to end it); False if
        there is no such live token."""
        view = await self._find(token)
        if view is None or view.kind != kind or view.ended_at is not None:
            return False
        assert view.student_id is not None and view.system is not None
        ended = await self.revoke(view.student_id, view.system, [view.id])
        self._cache.pop(token_hash(token), None)
        return bool(ended)

    async def end_account(self, account_id: int, reason: str) -> None:
        now = self._now()
        await self._run("tokens", lambda db: q.end_account_tokens(db, account_id, now, reason))
        self._cache.clear()

    def forget(self, student_id: str, system: str) -> None:
        """Drop what this worker remembers of a student's tokens (they changed)."""
        stale = [
            digest
            for digest, (view, _) in self._cache.items()
            if view is not None and view.student_id == student_id and view.system == system
        ]
        for digest in stale:
            del self._cache[digest]

    async def aclose(self) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=2.0)
