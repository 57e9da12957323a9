"""The 2013 jnu.fm account API, rebuilt: accounts, their login tokens, profiles and
pictures, and the academic office bound to an account.

    AccountService  one worker's door to all of it (handlers/legacy/accounts.py)
    AccountStore    its door to the database: each method one short transaction
    LoginLimiter    wrong account passwords, counted in `login_failures` (scope "account")

What 2013 did and this does not (README, "The 2013 account API"):

- a password is kept as an argon2id hash (argon2-cffi), never in clear, never
  answered back, never logged;
- a token is ours (services/tokens.py, kind "account": 256 random bits, only its
  SHA-256 stored, expiring when idle); a password reset ends the account's tokens;
- wrong passwords (at /login and /password/reset) are limited per user name and
  per address: `limits.failed_logins_max` distinct wrong ones per user name,
  `limits.failed_logins_ip_max` per anonymous address (a registered client's own
  `failures_max`), within `limits.failed_logins_window_s`; then every password
  gets 429, the right one too (else the lockout would say which is right);
- binding the academic office proves the password there first (through the
  credential gate, like any query) and keeps it only sealed in a session token
  (services/tokens.py) whose owner is the account: a password change at the
  school ends it, and /class/auth then says so (401 `password_changed`).

Counting is safe under concurrency as the credential gate's (services/gate.py):
each attempt's rows are committed before the attempt counts the others, so of two
concurrent attempts the later to count always sees the earlier, and no more than
the limit of distinct wrong passwords is ever judged within a window.

Errors are services/errors.py's: BadInput (shapes, pictures, `not_bound`),
TokenRefused (a token that opens no account, or an ended office binding),
RateLimited, StorageUnavailable, and what the academic office's queries raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, ParamSpec, TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import accounts as q
from db import queries
from db.models import Account, LoginFailure
from services import codes
from services.callers import Caller
from services.campus import Term
from services.credentials import Credentials
from services.errors import (
    BadInput,
    InvalidPassword,
    NotConfigured,
    RateLimited,
    StorageUnavailable,
    TokenRefused,
)
from services.pictures import clean_picture
from services.pipeline import Answer
from services.storage import transaction
from services.tokens import TokenStore
from settings import Settings
from systems.academic.models import Exam, Timetable
from systems.academic.service import AcademicService

log = logging.getLogger("jnufm.accounts")

USERNAME: Final = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
MIN_PASSWORD: Final = 6
MAX_PASSWORD: Final = 128
# The public profile's text fields and their longest values (characters).
PROFILE_FIELDS: Final = {"nickname": 64, "realname": 64, "sex": 16, "signature": 256}
Picture = Literal["avatar", "background"]
PICTURE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{32}")
OFFICE: Final = "academic"
# How an account's academic office token is labelled in the student's token list.
BINDING_LABEL: Final = "jnu.fm account"

SCOPE: Final = "account"
ATTEMPT_CHARS: Final = 32
PRUNE_BATCH: Final = 64

T = TypeVar("T")
P = ParamSpec("P")


def utc_now() -> datetime:
    return datetime.now(UTC)


# Input -----------------------------------------------------------------------------------------


def parse_username(value: str | None) -> str:
    """A user name as stored: 1-64 of a-z, 0-9 and `_.@-`, starting with a letter or digit,
    compared without case (stored in lower case). Raises BadInput."""
    if value is None or value.strip() == "":
        raise BadInput(codes.MISSING_USERNAME, "a user name is required")
    name = value.strip()
    if not name.isascii() or not USERNAME.fullmatch(name.lower()):
        raise BadInput(
            codes.INVALID_USERNAME,
            "a user name is 1 to 64 of the letters a-z, digits and _ . @ -, starting with a "
            "letter or digit",
        )
    return name.lower()


def parse_password(value: str | None, name: str = "password") -> str:
    """An account password: 6 to 128 characters, kept exactly as sent. Raises BadInput."""
    if value is None or value == "":
        raise BadInput(codes.MISSING_ACCOUNT_PASSWORD, f"{name} is required")
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise BadInput(
            codes.INVALID_ACCOUNT_PASSWORD,
            f"{name} must be {MIN_PASSWORD} to {MAX_PASSWORD} characters",
        )
    return value


def parse_profile(values: dict[str, str]) -> dict[str, str]:
    """Profile fields to set (any of nickname, realname, sex, signature). Raises BadInput."""
    for field, longest in PROFILE_FIELDS.items():
        if len(values.get(field, "")) > longest:
            raise BadInput(codes.INVALID_PROFILE, f"{field} is at most {longest} characters")
    return {k: v for k, v in values.items() if k in PROFILE_FIELDS}


def picture_url(name: str) -> str:
    return f"/uploads/{name}.png"


# Results ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRow:
    """An account as stored (its password hash never leaves this module)."""

    id: int
    username: str
    password_hash: str
    profile: dict[str, str]
    student_id: str | None

    def __repr__(self) -> str:
        return f"AccountRow(id={self.id}, username={self.username!r})"


@dataclass(frozen=True, slots=True)
class Login:
    """2013's login answer: status 0 (token), 1 (no such user), 2 (wrong password)."""

    status: Literal[0, 1, 2]
    token: str | None = None


@dataclass(frozen=True, slots=True)
class PublicProfile:
    """What any logged-in user may read of an account (2013's /get_info)."""

    nickname: str
    realname: str
    sex: str
    signature: str
    avatar: str  # a picture's URL, "" for none
    background: str


@dataclass(frozen=True, slots=True)
class AccountView:
    """What an account's owner reads of it (/sync): never a password."""

    username: str
    student_id: str | None
    profile: PublicProfile


def _profile(text: str) -> dict[str, str]:
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if k in PROFILE_FIELDS and isinstance(v, str)}


def _row(account: Account) -> AccountRow:
    return AccountRow(
        account.id,
        account.username,
        account.password_hash,
        _profile(account.profile),
        account.student_id,
    )


# Storage ---------------------------------------------------------------------------------------


class AccountStore:
    """The accounts' door to the database. Each method is one short transaction, tried
    again when it only lost a race; StorageUnavailable when the database cannot be used."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _run(
        self, what: str, work: Callable[[AsyncSession], Awaitable[T]], write: bool = True
    ) -> T:
        return await transaction(self._sessions, what, work, write=write)

    async def named(self, username: str) -> AccountRow | None:
        async def work(db: AsyncSession) -> AccountRow | None:
            found = await q.account_named(db, username)
            return None if found is None else _row(found)

        return await self._run("account", work, write=False)

    async def by_id(self, account_id: int) -> AccountRow | None:
        async def work(db: AsyncSession) -> AccountRow | None:
            found = await q.account_by_id(db, account_id)
            return None if found is None else _row(found)

        return await self._run("account", work, write=False)

    async def add(self, username: str, password_hash: str, now: datetime) -> int | None:
        """The new account's id, or None if the name is taken (also by a request that got
        there at the same moment)."""
        try:
            async with self._sessions.begin() as db:
                return await q.add_account(db, username, password_hash, "{}", now)
        except IntegrityError:
            return None
        except SQLAlchemyError as exc:
            raise StorageUnavailable(f"account: {type(exc).__name__}") from exc

    async def set_hash(self, account_id: int, password_hash: str) -> None:
        await self._run("account", lambda db: q.set_password_hash(db, account_id, password_hash))

    async def change_hash(self, account_id: int, old_hash: str, new_hash: str) -> bool:
        return await self._run(
            "account", lambda db: q.change_password_hash(db, account_id, old_hash, new_hash)
        )

    async def update_profile(self, account_id: int, fields: dict[str, str]) -> None:
        async def work(db: AsyncSession) -> None:
            # Locked while it is read and written: two updates at once keep both fields.
            found = await q.account_by_id(db, account_id, for_update=True)
            if found is None:
                return
            profile = {**_profile(found.profile), **fields}
            await q.set_profile(db, account_id, json.dumps(profile, ensure_ascii=False))

        await self._run("account", work)

    async def bind(self, account_id: int, student_id: str) -> None:
        await self._run("account", lambda db: q.set_student(db, account_id, student_id))

    async def pictures(self, account_id: int) -> dict[str, str]:
        return await self._run("pictures", lambda db: q.picture_names(db, account_id), write=False)

    async def replace_picture(
        self, account_id: int, kind: str, name: str, data: bytes, now: datetime
    ) -> None:
        await self._run(
            "picture", lambda db: q.replace_picture(db, account_id, kind, name, data, now)
        )

    async def picture(self, name: str) -> bytes | None:
        return await self._run("picture", lambda db: q.picture_data(db, name), write=False)

    # Failed logins (LoginLimiter).

    async def add_failures(
        self, rows: Sequence[queries.FailureRow], attempt: str, now: datetime
    ) -> list[int]:
        return await self._run(
            "failed logins", lambda db: queries.add_login_failures(db, rows, attempt, now)
        )

    async def failure_groups(
        self, subject: str, since: datetime, exclude: Sequence[int], limit: int
    ) -> list[queries.FailureGroup]:
        return await self._run(
            "failed logins",
            lambda db: queries.failure_groups(db, SCOPE, subject, since, exclude, limit),
            write=False,
        )

    async def withdraw(self, ids: Sequence[int]) -> None:
        await self._run("failed logins", lambda db: queries.delete_login_failures_by_id(db, ids))

    async def refuse(self, ids: Sequence[int]) -> None:
        await self._run(
            "failed logins",
            lambda db: queries.settle_login_failures(db, ids, LoginFailure.REFUSED),
        )

    async def prune(self, before: datetime) -> None:
        # Housekeeping: a lost race or a database gone away only delays it.
        with contextlib.suppress(SQLAlchemyError):
            async with self._sessions.begin() as db:
                await queries.prune_login_failures(db, before, PRUNE_BATCH)


# Wrong passwords ------------------------------------------------------------------------------


class LoginLimiter:
    """Counts account passwords tried against a user name and from an address.

    `reserve` commits the attempt's rows, then counts the distinct other passwords
    tried against each subject within the window (pending ones too), and refuses
    (429) if either has its limit: the later of two concurrent attempts always
    sees the earlier. `settle` then withdraws the rows of a right password and
    marks those of a wrong one.
    """

    def __init__(
        self,
        store: AccountStore,
        settings: Settings,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._limits = settings.limits
        self._key = settings.secret_key.encode()
        self._now = now

    def attempt_of(self, username: str, password: str) -> str:
        """How failure rows name a password tried for a user name (keyed: a dump of the
        table gives nothing to guess against)."""
        message = f"account\x00{username}\x00{password}".encode()
        return hmac.new(self._key, message, "sha256").hexdigest()[:ATTEMPT_CHARS]

    @staticmethod
    def _subjects(username: str, caller: Caller) -> tuple[str, str]:
        user = "u:" + hashlib.sha256(username.encode()).hexdigest()[:ATTEMPT_CHARS]
        who = caller.subject
        if len(who) > 62:
            who = hashlib.sha256(who.encode()).hexdigest()[:ATTEMPT_CHARS]
        return user, "a:" + who

    async def reserve(self, username: str, password: str, caller: Caller) -> tuple[int, ...]:
        """Count this attempt before it is judged; its rows' ids. Raises RateLimited."""
        limits = self._limits
        if not limits.enabled:
            return ()
        now = self._now()
        window = timedelta(seconds=limits.failed_logins_window_s)
        attempt = self.attempt_of(username, password)
        user, address = self._subjects(username, caller)
        address_max = (
            caller.client.failures_max if caller.client is not None else limits.failed_logins_ip_max
        )
        rows = [queries.FailureRow(SCOPE, user), queries.FailureRow(SCOPE, address)]
        ids = tuple(await self._store.add_failures(rows, attempt, now))
        since = now - window
        try:
            for subject, limit, whom in (
                (user, limits.failed_logins_max, "this user name"),
                (address, address_max, "this address"),
            ):
                groups = await self._store.failure_groups(subject, since, ids, limit + 8)
                others = [g for g in groups if g.attempt != attempt]
                if len(others) >= limit:
                    # Free again when the limit-th newest of them leaves the window.
                    wait = (others[limit - 1].latest + window - now).total_seconds()
                    raise RateLimited(
                        codes.TOO_MANY_FAILED_LOGINS,
                        f"too many wrong passwords for {whom}; try again later",
                        max(1, int(wait + 0.999)),
                    )
        except BaseException:
            await self._withdraw(ids)
            raise
        await self._store.prune(since)
        return ids

    async def settle(self, ids: Sequence[int], right: bool | None) -> None:
        """How the attempt ended: right (its rows go), wrong (they stay, marked), or not
        judged (None: they go; nothing was learnt)."""
        if not ids:
            return
        if right is False:
            try:
                await self._store.refuse(ids)
            except StorageUnavailable as exc:
                # The rows stay pending, which counts the same.
                log.warning("could not mark a wrong account password: %s", exc)
            return
        await self._withdraw(ids)

    async def _withdraw(self, ids: Sequence[int]) -> None:
        try:
            await asyncio.shield(self._store.withdraw(ids))
        except StorageUnavailable as exc:
            # Left behind, they count against the subjects until the window passes.
            log.warning("could not withdraw account login rows: %s", exc)


# The service -----------------------------------------------------------------------------------


def _client(caller: Caller) -> str:
    return caller.client.name if caller.client is not None else ""


class AccountService:
    """The 2013 account API for one worker."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        tokens: TokenStore,
        academic: AcademicService | None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        config = settings.accounts
        self._store = AccountStore(sessions)
        self._limiter = LoginLimiter(self._store, settings, now)
        self._tokens = tokens
        self._academic = academic
        self._now = now
        self._hasher = PasswordHasher(
            time_cost=config.hash_time_cost,
            memory_cost=config.hash_memory_kib,
            parallelism=1,
            type=Type.ID,
        )
        # Hashing and decoding pictures take a core (and memory) each: a few at a time.
        self._work = asyncio.Semaphore(config.work_at_once)
        self.max_upload_bytes = config.max_upload_bytes
        self._max_side = config.max_image_side

    async def _in_thread(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._work:
            return await asyncio.to_thread(fn, *args, **kwargs)

    async def _hash(self, password: str) -> str:
        return await self._in_thread(self._hasher.hash, password)

    async def _verify(self, account: AccountRow, password: str) -> bool:
        try:
            return await self._in_thread(self._hasher.verify, account.password_hash, password)
        except InvalidHashError:
            log.error("account %d has an unreadable password hash", account.id)
            return False
        except VerificationError:
            return False

    # Accounts and their tokens -----------------------------------------------------------------

    async def signup(self, username: str, password: str, caller: Caller) -> str | None:
        """A new account and its first token; None if the user name is taken."""
        if await self._store.named(username) is not None:
            return None
        account_id = await self._store.add(username, await self._hash(password), self._now())
        if account_id is None:
            return None
        return await self._tokens.create_account(account_id, _client(caller))

    async def login(self, username: str, password: str, caller: Caller) -> Login:
        """A token for the right password. Raises RateLimited (too many wrong ones)."""
        ids = await self._limiter.reserve(username, password, caller)
        right: bool | None = None
        try:
            account = await self._store.named(username)
            if account is None:
                right = False
                return Login(1)
            right = await self._verify(account, password)
            if not right:
                return Login(2)
            if self._hasher.check_needs_rehash(account.password_hash):
                # accounts.hash_* changed since this hash was made.
                await self._store.set_hash(account.id, await self._hash(password))
            return Login(0, await self._tokens.create_account(account.id, _client(caller)))
        finally:
            await self._limiter.settle(ids, right)

    async def reset_password(self, username: str, old: str, new: str, caller: Caller) -> bool:
        """Set a new password if the old one is right; every token of the account ends.
        Raises RateLimited (the old password is a guess like a login's)."""
        ids = await self._limiter.reserve(username, old, caller)
        right: bool | None = None
        try:
            account = await self._store.named(username)
            right = account is not None and await self._verify(account, old)
            if account is None or not right:
                return False
            new_hash = await self._hash(new)
            if not await self._store.change_hash(account.id, account.password_hash, new_hash):
                return False  # another reset changed it meanwhile
            await self._tokens.end_account(account.id, "revoked")
            return True
        finally:
            await self._limiter.settle(ids, right)

    async def _account_id(self, token: str) -> int:
        account_id = await self._tokens.account(token) if token else None
        if account_id is None:
            raise TokenRefused(
                codes.INVALID_TOKEN,
                "no such token, or it expired or ended (a password reset ends them): log in",
            )
        return account_id

    async def _account(self, token: str) -> AccountRow:
        account = await self._store.by_id(await self._account_id(token))
        if account is None:
            raise TokenRefused(codes.INVALID_TOKEN, "this token's account no longer exists")
        return account

    async def username(self, token: str) -> str:
        return (await self._account(token)).username

    # Profiles and pictures -------------------------------------------------------------------

    async def _public(self, account: AccountRow) -> PublicProfile:
        names = await self._store.pictures(account.id)
        p = account.profile
        return PublicProfile(
            nickname=p.get("nickname", ""),
            realname=p.get("realname", ""),
            sex=p.get("sex", ""),
            signature=p.get("signature", ""),
            avatar=picture_url(names["avatar"]) if "avatar" in names else "",
            background=picture_url(names["background"]) if "background" in names else "",
        )

    async def public_profile(self, token: str, username: str) -> PublicProfile | None:
        """Any account's public profile, for a logged-in user; None if there is no such one."""
        await self._account_id(token)
        account = await self._store.named(username)
        return None if account is None else await self._public(account)

    async def update_profile(self, token: str, fields: dict[str, str]) -> None:
        account_id = await self._account_id(token)
        if fields:
            await self._store.update_profile(account_id, fields)

    async def set_picture(self, token: str, kind: Picture, data: bytes) -> str:
        """Check and re-encode a picture, make it the account's `kind`; its URL. Raises
        BadInput (not a picture we take)."""
        account_id = await self._account_id(token)
        if len(data) > self.max_upload_bytes:
            raise BadInput(
                codes.PAYLOAD_TOO_LARGE, f"a picture is at most {self.max_upload_bytes} bytes"
            )
        png = await self._in_thread(clean_picture, data, self._max_side)
        name = secrets.token_urlsafe(24)
        await self._store.replace_picture(account_id, kind, name, png, self._now())
        return picture_url(name)

    async def picture(self, name: str) -> bytes:
        """A stored picture (PNG) by its file name. Raises BadInput 404 unknown_upload."""
        data = await self._store.picture(name) if PICTURE_NAME.fullmatch(name) else None
        if data is None:
            raise BadInput(codes.UNKNOWN_UPLOAD, "no such picture (replaced, or never made)")
        return data

    async def sync(self, token: str) -> AccountView:
        account = await self._account(token)
        return AccountView(account.username, account.student_id, await self._public(account))

    # The academic office ---------------------------------------------------------------------

    def _office(self) -> AcademicService:
        if self._academic is None:
            raise NotConfigured("the academic office is not configured here")
        return self._academic

    def term(self, year: str | None, term: str | None) -> Term:
        """The term a request names (or the current one). Raises BadInput."""
        return self._office().term(year, term)

    async def bind_academic(self, token: str, creds: Credentials, caller: Caller) -> bool:
        """Bind the academic office to the account once the office accepts the password;
        False if it refuses it. The password is kept only sealed in a session token."""
        account_id = await self._account_id(token)
        office = self._office()
        try:
            await office.timetable(creds, office.term(None, None), caller)
        except InvalidPassword:
            return False
        await self._bind(account_id, creds, caller)
        await self._store.bind(account_id, creds.student_id)
        return True

    async def _bind(self, account_id: int, creds: Credentials, caller: Caller) -> None:
        """The account's office session token holds this password from now on."""
        await self._tokens.end_account_sessions(account_id, OFFICE, "replaced")
        attempt = self._office().pipeline.attempt_of(creds)
        await self._tokens.create_session(
            creds, OFFICE, attempt, _client(caller), BINDING_LABEL, account_id=account_id
        )

    async def _office_query(
        self,
        token: str,
        password: str | None,
        caller: Caller,
        ask: Callable[[Credentials], Awaitable[Answer[T]]],
    ) -> Answer[T]:
        """A query of the bound student: with `password` (judged by the gate like any
        password; a new binding if the old one ended), else with the binding's."""
        account = await self._account(token)
        if account.student_id is None:
            raise BadInput(
                codes.NOT_BOUND,
                "this account has no academic office bound to it: bind one with /auth_jwc",
            )
        if password is not None:
            creds = Credentials.parse(account.student_id, password, OFFICE)
            answer = await ask(creds)
            await self._keep_bound(account.id, creds, caller)
            return answer
        grant = await self._tokens.account_session(account.id, OFFICE)
        if grant is None:
            raise TokenRefused(
                codes.TOKEN_EXPIRED,
                "this account's academic office binding expired: send jwcpw, or bind again "
                "with /auth_jwc",
            )
        return await ask(grant.credentials())

    async def _keep_bound(self, account_id: int, creds: Credentials, caller: Caller) -> None:
        """After a query with a password the office accepted: bind it again if the account's
        binding has ended (e.g. by a password change at the school)."""
        try:
            live = await self._tokens.account_session(account_id, OFFICE)
        except TokenRefused:
            live = None
        if live is None:
            await self._bind(account_id, creds, caller)

    async def timetable(
        self, token: str, password: str | None, term: Term, caller: Caller, fresh: bool = False
    ) -> Answer[Timetable]:
        office = self._office()
        return await self._office_query(
            token, password, caller, lambda creds: office.timetable(creds, term, caller, fresh)
        )

    async def exams(
        self, token: str, password: str | None, term: Term, caller: Caller, fresh: bool = False
    ) -> Answer[list[Exam]]:
        office = self._office()
        return await self._office_query(
            token, password, caller, lambda creds: office.exams(creds, term, caller, fresh)
        )
