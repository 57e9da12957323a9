"""WeChat followers bound to students: the password is given on a web page, never in chat.

The chat answers 绑定 with `bind_url`: the bind page (static/wechat-bind.html) with a
ticket in its fragment (a fragment reaches no access log; the page posts it to
POST /v1/wechat/bind). A ticket is

    1.<account>.<follower key>.<ticket id>.<expires>.<signature>

signed with HMAC-SHA256 under the server's secret (its own domain, "wechat-bind-ticket|"),
valid `wechat.bind_link_ttl_s`, used once (its random id is recorded in
`wechat_tickets` when a binding is made; a unique key makes a concurrent second use
fail). It names the follower by its key, never by its openid.

`bind` proves the passwords by making the student's session tokens (services/sessions.py:
a card one, and an academic office one when that password is given): a wrong password
raises what SessionService raises and leaves the ticket usable. Only the tokens' ids
are kept with the binding; the tokens hold the passwords sealed.

A follower has one binding at a time (binding again ends the previous one's tokens); a
student may bind several followers. A binding lives until unbound (`unbind`, or DELETE
/v1/sessions ending its tokens). A token that ended otherwise (a password change at the
school, expiry, too many newer tokens) leaves the binding in place, and `grant` raises
TokenRefused saying why: the chat tells the follower "your password changed, bind
again" rather than "you are not bound". The student's listing (`listed`) shows only
bindings with a live token.

Errors: BadInput (400 wechat_ticket_invalid, 409 wechat_ticket_used, 410
wechat_ticket_expired, and the credentials' shape), what SessionService.open raises
(401 invalid_credentials, 429, 5xx), TokenRefused and TokenScope (`grant`),
StorageUnavailable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.config import WeChatAccount, WeChatSettings
from db import tokens as token_queries
from db import wechat_followers as q
from db.models import WeChatFollower
from services import codes
from services.callers import Caller
from services.credentials import Credentials
from services.errors import BadInput, ServiceError, TokenRefused
from services.pipeline import utc_now
from services.sessions import SessionService
from services.storage import transaction
from services.tokens import SessionGrant, TokenStore

log = logging.getLogger("jnufm.wechat")

TICKET_VERSION: Final = "1"
TICKET_DOMAIN: Final = b"wechat-bind-ticket|"
FOLLOWER_DOMAIN: Final = "wechat-follower|"
# A ticket is about 190 characters; anything much longer is not one.
MAX_TICKET: Final = 512
_ACCOUNT = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{43}")
LABEL: Final = "微信"
SYSTEMS: Final = ("card", "academic")


@dataclass(frozen=True, slots=True)
class Binding:
    """A follower bound to a student, with the ids of the tokens the binding made."""

    id: int
    account: str  # the account's name
    student_id: str
    card_token_id: int | None
    academic_token_id: int | None
    created_at: datetime

    def token_id(self, system: str) -> int | None:
        return self.card_token_id if system == "card" else self.academic_token_id

    @property
    def token_ids(self) -> list[int]:
        return [i for i in (self.card_token_id, self.academic_token_id) if i is not None]


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a valid ticket says."""

    account: str
    follower: str
    ticket_id: str
    expires_at: datetime


class _TicketTaken(Exception):
    """The ticket was recorded used (by this request's race, or before)."""


def _binding(row: WeChatFollower) -> Binding:
    return Binding(
        row.id,
        row.account,
        row.student_id,
        row.card_token_id,
        row.academic_token_id,
        row.created_at,
    )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Followers:
    """Bindings of WeChat followers to students, for one worker."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tokens: TokenStore,
        student_sessions: SessionService,
        accounts: Mapping[str, WeChatAccount],
        settings: WeChatSettings,
        secret: bytes,
        public_url: str,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sessions = sessions
        self._tokens = tokens
        self._student_sessions = student_sessions
        self._accounts = dict(accounts)
        self._settings = settings
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._now = now

    # Followers and tickets -----------------------------------------------------------------

    def follower_key(self, account: WeChatAccount, openid: str) -> str:
        """What is stored of a follower: HMAC-SHA256 of the app id and the openid, hex."""
        message = f"{FOLLOWER_DOMAIN}{account.app_id}|{openid}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def _sign(self, payload: str) -> str:
        return _b64(
            hmac.new(self._secret, TICKET_DOMAIN + payload.encode(), hashlib.sha256).digest()
        )

    def bind_url(self, account: WeChatAccount, openid: str) -> str:
        """The bind page's URL with a new ticket for this follower in its fragment."""
        expires = math.ceil(self._now().timestamp() + self._settings.bind_link_ttl_s)
        payload = ".".join(
            (
                TICKET_VERSION,
                account.name,
                self.follower_key(account, openid),
                secrets.token_hex(16),
                str(expires),
            )
        )
        ticket = f"{payload}.{self._sign(payload)}"
        return f"{self._public_url}/static/wechat-bind.html#ticket={ticket}"

    def read_ticket(self, ticket: str) -> Ticket:
        """What a ticket says. Raises BadInput 400 wechat_ticket_invalid (not one of ours,
        or of an account no longer configured), 410 wechat_ticket_expired."""
        invalid = BadInput(codes.WECHAT_TICKET_INVALID, "this bind link is not valid")
        ticket = ticket.strip()
        if not ticket or len(ticket) > MAX_TICKET:
            raise invalid
        parts = ticket.split(".")
        if len(parts) != 6:
            raise invalid
        version, account, follower, ticket_id, expires, signature = parts
        if not (
            version == TICKET_VERSION
            and _ACCOUNT.fullmatch(account)
            and _HEX64.fullmatch(follower)
            and _HEX32.fullmatch(ticket_id)
            and _EXPIRES.fullmatch(expires)
            and _SIGNATURE.fullmatch(signature)
        ):
            raise invalid
        payload = ticket.rpartition(".")[0]
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise invalid
        if account not in self._accounts:
            raise invalid
        expires_at = datetime.fromtimestamp(int(expires), UTC)
        if self._now() > expires_at:
            raise BadInput(
                codes.WECHAT_TICKET_EXPIRED,
                "this bind link has expired; send 绑定 in the chat for a new one",
            )
        return Ticket(account, follower, ticket_id, expires_at)

    # Binding -------------------------------------------------------------------------------

    async def bind(
        self,
        ticket: str,
        student_id: str,
        password: str,
        academic_password: str | None,
        caller: Caller,
    ) -> Binding:
        """Bind the ticket's follower to the student (see the module docstring). Raises
        BadInput (the ticket, the credentials' shape), what SessionService.open raises."""
        found = self.read_ticket(ticket)
        card_creds = Credentials.parse(student_id, password, "card")
        academic_creds = (
            Credentials.parse(student_id, academic_password, "academic")
            if academic_password
            else None
        )
        if await transaction(
            self._sessions, "wechat", lambda db: q.ticket_used(db, found.ticket_id), write=False
        ):
            raise self._used()
        client = f"wechat:{found.account}"
        made: list[tuple[str, int]] = []
        try:
            _, card = await self._student_sessions.open(
                "card", card_creds, caller, LABEL, client=client
            )
            made.append(("card", card.id))
            academic_id = None
            if academic_creds is not None:
                _, academic = await self._student_sessions.open(
                    "academic", academic_creds, caller, LABEL, client=client
                )
                made.append(("academic", academic.id))
                academic_id = academic.id
            row, replaced = await self._record(found, card_creds.student_id, card.id, academic_id)
        except Exception:
            await self._revoke_quietly(card_creds.student_id, made)
            raise
        if replaced is not None:
            self._forget(replaced)
        return row

    def _used(self) -> BadInput:
        return BadInput(
            codes.WECHAT_TICKET_USED,
            "this bind link was already used; send 绑定 in the chat for a new one",
        )

    async def _record(
        self, found: Ticket, student_id: str, card_id: int, academic_id: int | None
    ) -> tuple[Binding, Binding | None]:
        """In one transaction: the ticket used, the binding written, the replaced one's
        tokens ended. Raises BadInput 409 wechat_ticket_used."""
        now = self._now()

        async def work(db: AsyncSession) -> tuple[Binding, Binding | None]:
            if await q.ticket_used(db, found.ticket_id):
                raise _TicketTaken
            await q.use_ticket(db, found.ticket_id, now, found.expires_at)
            row, old = await q.bind_follower(
                db, found.account, found.follower, student_id, card_id, academic_id, now
            )
            replaced = None if old is None else _binding(old)
            if replaced is not None:
                await self._end_tokens(db, replaced, now)
            return _binding(row), replaced

        try:
            return await transaction(self._sessions, "wechat", work)
        except _TicketTaken:
            raise self._used() from None

    async def _end_tokens(self, db: AsyncSession, binding: Binding, now: datetime) -> None:
        for system in SYSTEMS:
            token_id = binding.token_id(system)
            if token_id is not None:
                await token_queries.end_token_ids(
                    db, binding.student_id, system, [token_id], now, "revoked"
                )

    def _forget(self, binding: Binding) -> None:
        for system in SYSTEMS:
            if binding.token_id(system) is not None:
                self._tokens.forget(binding.student_id, system)

    async def _revoke_quietly(self, student_id: str, made: list[tuple[str, int]]) -> None:
        """End the tokens a failed bind made (the failure is what the caller hears)."""
        for system, token_id in made:
            try:
                await self._tokens.revoke(student_id, system, [token_id])
            except ServiceError as exc:
                log.warning("wechat: could not end a failed binding's token: %s", exc.code)

    # Reading -------------------------------------------------------------------------------

    async def _row(self, account: WeChatAccount, openid: str) -> WeChatFollower | None:
        key = self.follower_key(account, openid)
        return await transaction(
            self._sessions,
            "wechat",
            lambda db: q.follower_row(db, account.name, key),
            write=False,
        )

    async def binding(self, account: WeChatAccount, openid: str) -> Binding | None:
        """The follower's binding unless it ended (unbound or revoked), else None. Its
        tokens may have ended since (`grant` says why)."""
        row = await self._row(account, openid)
        return None if row is None or row.ended_at is not None else _binding(row)

    async def ended(self, account: WeChatAccount, openid: str) -> str | None:
        """Why the follower's last binding ended ("unbound", "revoked"), while its row is
        kept (`wechat.ended_bindings_keep_s`); None if bound or never bound."""
        row = await self._row(account, openid)
        return None if row is None or row.ended_at is None else row.ended_reason

    async def grant(self, account: WeChatAccount, openid: str, system: str) -> SessionGrant | None:
        """The grant of the binding's token for `system`; None if not bound, or bound
        without a token of that system. Raises TokenRefused (password_changed,
        token_revoked, token_expired) when that token ended."""
        if system not in SYSTEMS:
            raise BadInput(codes.INVALID_SYSTEM, "system is card or academic")
        found = await self.binding(account, openid)
        token_id = None if found is None else found.token_id(system)
        if token_id is None:
            return None
        try:
            return await self._tokens.session_by_id(token_id, system)
        except TokenRefused as exc:
            if exc.error is codes.INVALID_TOKEN:
                # Its row is gone: it ended (or expired) long ago and was pruned.
                raise TokenRefused(
                    codes.TOKEN_EXPIRED, "this binding's token ended long ago; bind again"
                ) from None
            raise

    async def listed(self, student_id: str, system: str | None = None) -> list[Binding]:
        """The student's live bindings (not ended, a token still live), oldest first;
        with `system`, those whose token of that system is live."""
        bindings = await self._all(student_id)
        live = await self._tokens.live_ids([i for b in bindings for i in b.token_ids])
        if system is None:
            return [b for b in bindings if live.intersection(b.token_ids)]
        return [b for b in bindings if b.token_id(system) in live]

    # Ending --------------------------------------------------------------------------------

    async def unbind(self, account: WeChatAccount, openid: str) -> bool:
        """End the follower's binding ("unbound") and its tokens; False if it had none."""
        key = self.follower_key(account, openid)
        now = self._now()

        async def work(db: AsyncSession) -> Binding | None:
            row = await q.follower_row(db, account.name, key, for_update=True)
            if row is None or row.ended_at is not None:
                return None
            found = _binding(row)
            await q.end_follower(db, row.id, now, "unbound")
            await self._end_tokens(db, found, now)
            return found

        ended = await transaction(self._sessions, "wechat", work)
        if ended is None:
            return False
        self._forget(ended)
        return True

    async def tokens_revoked(self, student_id: str, token_ids: list[int]) -> list[int]:
        """End ("revoked") the student's bindings that held one of these just-revoked
        tokens and have no live token left; the ids of the bindings ended."""
        if not token_ids:
            return []
        revoked = set(token_ids)
        holding = [b for b in await self._all(student_id) if revoked.intersection(b.token_ids)]
        if not holding:
            return []
        live = await self._tokens.live_ids([i for b in holding for i in b.token_ids])
        dead = [b.id for b in holding if not live.intersection(b.token_ids)]
        now = self._now()

        async def work(db: AsyncSession) -> None:
            for binding_id in dead:
                await q.end_follower(db, binding_id, now, "revoked")

        if dead:
            await transaction(self._sessions, "wechat", work)
        return dead

    async def _all(self, student_id: str) -> list[Binding]:
        rows = await transaction(
            self._sessions,
            "wechat",
            lambda db: q.student_followers(db, student_id),
            write=False,
        )
        return [_binding(row) for row in rows]
