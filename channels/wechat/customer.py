"""Customer messages (客服消息): answers sent to a follower after the passive reply, through
the official-account API, and the access_token they need.

WeChat keeps one access_token valid per account (fetching one ends the previous one about
5 minutes later), so the token is shared by every worker and host through the account's
`wechat_api_tokens` row, sealed (AES-GCM under a key derived from the server secret for
this purpose alone, the app id as associated data). A worker reads it there. When it has
under REFRESH_BEFORE left, or the API refused it (40001, 42001), one worker at a time
fetches a new one (a lease, services/leases.py); the others go on with the old token
while it lasts, or wait for the new one.

The row also counts the day's (UTC+8) messages against `customer_messages_per_day`:
counted before a send, given back when WeChat refused the message or it was never sent,
kept when it may have arrived (no answer), set to the limit for the day when WeChat says
its own quota is reached (45009).

A send answers True or False, never raises, and takes at most two API calls' timeout
(`api_timeout_s`: one token fetch, or the wait for another worker's, and one send; the
send again after a 40001 only in what is left). Each failure is one log line with its
errcode, never a token, a secret or what the message said.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.config import WeChatAccount, WeChatSettings
from channels.wechat.errors import ApiUnavailable
from channels.wechat.reply_xml import NewsItem
from db import wechat_api
from observability import metrics
from services.errors import StorageUnavailable
from services.leases import LeaseStore, new_holder_id

log = logging.getLogger("jnufm.wechat")

CHINA = timezone(timedelta(hours=8))
# A token with less than this left is replaced (WeChat's tokens last 7200 s).
REFRESH_BEFORE = timedelta(minutes=5)
# How often a worker waiting for another's refresh looks at the row again.
WAIT_STEP_S = 0.05
# The refresh lease outlives one fetch by this much (a holder that died frees it then).
LEASE_SLACK_S = 5.0
# A send again after 40001/42001 is made only with at least this share of
# api_timeout_s left (less would abandon a send that may yet arrive).
RETRY_SHARE = 0.25
# Errcodes that mean "this access_token is not (or no longer) valid".
TOKEN_REFUSED = frozenset({40001, 42001})
DAILY_QUOTA = 45009
NONCE_BYTES = 12

# What WeChat's errcodes mean, for log lines (its errmsg is not logged: ours is enough).
MEANING: dict[int, str] = {
    -1: "system busy",
    40001: "invalid access_token",
    40003: "invalid openid",
    40013: "invalid app id",
    40125: "invalid app secret",
    40164: "this address is not whitelisted",
    42001: "access_token expired",
    44004: "empty content",
    45008: "too many articles",
    45009: "the API's daily quota reached",
    45015: "over 48 h since the follower last wrote, or unfollowed",
    45047: "too many messages since the follower last wrote",
    47001: "malformed request",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def china_day(at: datetime) -> str:
    """The day (YYYY-MM-DD, UTC+8) the daily limit counts `at` in."""
    return at.astimezone(CHINA).date().isoformat()


def _meaning(errcode: int | None) -> str:
    return MEANING.get(errcode, "error") if errcode is not None else "no errcode"


class _NoAnswer(Exception):
    """The API gave no usable answer to a send; `maybe_sent`: it may have taken it."""

    def __init__(self, detail: str, maybe_sent: bool) -> None:
        super().__init__(detail)
        self.maybe_sent = maybe_sent


class _TokenSeal:
    """Seals an access_token for its account's row."""

    def __init__(self, secret: bytes) -> None:
        key = hmac.new(secret, b"jnufm wechat access-token sealing v1", hashlib.sha256).digest()
        self._aead = AESGCM(key)

    def seal(self, app_id: str, token: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, token.encode(), app_id.encode())
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, app_id: str, sealed: str) -> str | None:
        """The token, None if sealed under another key or for another account."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            token = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], app_id.encode())
        except (InvalidTag, ValueError):
            return None
        return token.decode()


class CustomerMessages:
    """Customer messages of the official accounts, and their shared access_tokens."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        settings: WeChatSettings,
        secret: bytes,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sessions = sessions
        self._http = http
        self._base = settings.api_base_url.rstrip("/")
        self._timeout_s = settings.api_timeout_s
        self._per_day = settings.customer_messages_per_day
        self._seal = _TokenSeal(secret)
        self._now = now
        self._leases = LeaseStore(sessions, now)

    def available(self, account: WeChatAccount) -> bool:
        """Whether the account can send customer messages (it has an app secret)."""
        return account.app_secret is not None

    async def send_text(self, account: WeChatAccount, openid: str, content: str) -> bool:
        """Send a text; True when WeChat accepted it (False: see the module docstring)."""
        return await self._send(
            account, {"touser": openid, "msgtype": "text", "text": {"content": content}}
        )

    async def send_news(
        self, account: WeChatAccount, openid: str, articles: Sequence[NewsItem]
    ) -> bool:
        """Send a news message (WeChat takes one article in a customer message); True when
        WeChat accepted it."""
        items = [
            {"title": a.title, "description": a.description, "url": a.url, "picurl": a.pic_url}
            for a in articles
        ]
        return await self._send(
            account, {"touser": openid, "msgtype": "news", "news": {"articles": items}}
        )

    async def access_token(self, account: WeChatAccount) -> str:
        """The account's access_token, fetched if the shared one is missing or near its end.

        Raises ApiUnavailable when none can be had (no app secret, the API refused or did
        not answer in time, the database cannot be used).
        """
        deadline = asyncio.get_running_loop().time() + self._timeout_s
        token, _ = await self._token(account, deadline, refused=None)
        return token

    # --- sending ------------------------------------------------------------------------

    async def _send(self, account: WeChatAccount, message: dict[str, Any]) -> bool:
        name = account.name
        if account.app_secret is None:
            return self._failed(name, "no_secret", "no app secret configured")
        day = china_day(self._now())
        try:
            counted = await self._count(account.app_id, day)
        except SQLAlchemyError as exc:
            return self._failed(name, "storage", f"the database refused ({type(exc).__name__})")
        if not counted:
            return self._failed(name, "day_limit", f"the day's {self._per_day} messages sent")
        try:
            errcode = await self._deliver(account, message)
        except ApiUnavailable as exc:
            await self._uncount(account.app_id, day)
            return self._failed(name, "no_token", str(exc))
        except _NoAnswer as exc:
            if not exc.maybe_sent:
                await self._uncount(account.app_id, day)
            return self._failed(name, "unreachable", str(exc))
        except Exception as exc:  # the contract: never raises
            return self._failed(name, "unreachable", f"unexpected {type(exc).__name__}")
        if errcode == 0:
            metrics.wechat_customer_message(name, "sent")
            return True
        if errcode == DAILY_QUOTA:
            with contextlib.suppress(SQLAlchemyError):
                async with self._sessions.begin() as db:
                    await wechat_api.end_customer_day(
                        db, account.app_id, day, self._per_day, self._now()
                    )
            return self._failed(name, "day_limit", f"errcode {errcode} ({_meaning(errcode)})")
        await self._uncount(account.app_id, day)
        return self._failed(name, "refused", f"errcode {errcode} ({_meaning(errcode)})")

    async def _deliver(self, account: WeChatAccount, message: dict[str, Any]) -> int:
        """WeChat's errcode for the message; once more with a new token if it refused a
        token read from the row."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self._timeout_s
        token, fetched = await self._token(account, loop.time() + self._timeout_s, None)
        errcode = await self._post(token, message, deadline)
        left = deadline - loop.time()
        if errcode in TOKEN_REFUSED and not fetched and left >= 2 * RETRY_SHARE * self._timeout_s:
            token, _ = await self._token(account, loop.time() + left / 2, refused=token)
            if deadline - loop.time() >= RETRY_SHARE * self._timeout_s:
                errcode = await self._post(token, message, deadline)
        return errcode

    async def _post(self, token: str, message: dict[str, Any], deadline: float) -> int:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise _NoAnswer("no time left to send", maybe_sent=False)
        # WeChat shows \\uXXXX escapes as they are: the JSON carries the characters.
        body = json.dumps(message, ensure_ascii=False).encode("utf-8")
        try:
            async with asyncio.timeout(min(self._timeout_s, left)):
                response = await self._http.post(
                    f"{self._base}/cgi-bin/message/custom/send",
                    params={"access_token": token},
                    content=body,
                    headers={"Content-Type": "application/json; charset=utf-8"},
                    timeout=min(self._timeout_s, left),
                )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise _NoAnswer(f"API unreachable ({type(exc).__name__})", maybe_sent=False) from None
        except (TimeoutError, httpx.HTTPError) as exc:
            raise _NoAnswer(f"no answer ({type(exc).__name__})", maybe_sent=True) from None
        answer = _json_object(response)
        errcode = answer.get("errcode") if answer is not None else None
        if not isinstance(errcode, int) or isinstance(errcode, bool):
            raise _NoAnswer(f"an answer without errcode (HTTP {response.status_code})", True)
        return errcode

    # --- the daily count ----------------------------------------------------------------

    async def _count(self, app_id: str, day: str) -> bool:
        async with self._sessions.begin() as db:
            now = self._now()
            await wechat_api.ensure_api_row(db, app_id, now)
            return await wechat_api.count_customer_message(db, app_id, day, self._per_day, now)

    async def _uncount(self, app_id: str, day: str) -> None:
        with contextlib.suppress(SQLAlchemyError):
            async with self._sessions.begin() as db:
                await wechat_api.uncount_customer_message(db, app_id, day, self._now())

    # --- the access token ---------------------------------------------------------------

    async def _token(
        self, account: WeChatAccount, deadline: float, refused: str | None
    ) -> tuple[str, bool]:
        """A token other than `refused`, and whether this call fetched it.

        Raises ApiUnavailable.
        """
        if account.app_secret is None:
            raise ApiUnavailable("no app secret configured")
        try:
            return await self._shared_token(account, deadline, refused)
        except (SQLAlchemyError, StorageUnavailable) as exc:
            raise ApiUnavailable(
                f"the shared token cannot be read ({type(exc).__name__})"
            ) from None

    async def _shared_token(
        self, account: WeChatAccount, deadline: float, refused: str | None
    ) -> tuple[str, bool]:
        loop = asyncio.get_running_loop()
        lease = f"wechat-token:{account.app_id}"
        lease_s = self._timeout_s + LEASE_SLACK_S
        while True:
            stored = await self._stored(account.app_id)
            usable = self._usable(stored, refused)
            if usable is not None and usable[1] - self._now() > REFRESH_BEFORE:
                return usable[0], False
            holder = new_holder_id()
            if await self._leases.try_acquire(lease, holder, lease_s):
                try:
                    return await self._refresh(account, deadline, refused)
                finally:
                    await self._leases.release(lease, holder, lease_s)
            if usable is not None:
                # Another worker is fetching the next one; this one lasts till then.
                return usable[0], False
            left = deadline - loop.time()
            if left <= 0:
                raise ApiUnavailable("another worker's token fetch did not end in time")
            await asyncio.sleep(min(WAIT_STEP_S, left))

    async def _refresh(
        self, account: WeChatAccount, deadline: float, refused: str | None
    ) -> tuple[str, bool]:
        """Holding the lease: a new token, unless another worker stored one just before."""
        usable = self._usable(await self._stored(account.app_id), refused)
        if usable is not None and usable[1] - self._now() > REFRESH_BEFORE:
            return usable[0], False
        try:
            token, expires_in = await self._fetch(account, deadline)
        except ApiUnavailable as exc:
            if usable is None:
                raise
            log.warning("wechat %s: access_token not renewed: %s", account.name, exc)
            return usable[0], False
        now = self._now()
        async with self._sessions.begin() as db:
            await wechat_api.ensure_api_row(db, account.app_id, now)
            await wechat_api.store_api_token(
                db,
                account.app_id,
                self._seal.seal(account.app_id, token),
                now + timedelta(seconds=expires_in),
                now,
            )
        metrics.wechat_access_token_fetched(account.name)
        return token, True

    async def _stored(self, app_id: str) -> tuple[str, datetime] | None:
        async with self._sessions() as db:
            row = await wechat_api.api_token(db, app_id)
        if row is None:
            return None
        token = self._seal.open(app_id, row[0])
        return None if token is None else (token, row[1])

    def _usable(
        self, stored: tuple[str, datetime] | None, refused: str | None
    ) -> tuple[str, datetime] | None:
        """The stored token if it is not the refused one and has not expired."""
        if stored is None or stored[0] == refused or stored[1] <= self._now():
            return None
        return stored

    async def _fetch(self, account: WeChatAccount, deadline: float) -> tuple[str, int]:
        """A new token from the API and its lifetime (s). Raises ApiUnavailable."""
        assert account.app_secret is not None
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise ApiUnavailable("no time left to fetch an access_token")
        params = {
            "grant_type": "client_credential",
            "appid": account.app_id,
            "secret": account.app_secret.get_secret_value(),
        }
        try:
            async with asyncio.timeout(min(self._timeout_s, left)):
                response = await self._http.get(
                    f"{self._base}/cgi-bin/token", params=params, timeout=min(self._timeout_s, left)
                )
        except (TimeoutError, httpx.HTTPError) as exc:
            raise ApiUnavailable(f"access_token: no answer ({type(exc).__name__})") from None
        answer = _json_object(response) or {}
        token, expires_in = answer.get("access_token"), answer.get("expires_in")
        if isinstance(token, str) and token and isinstance(expires_in, int) and expires_in > 0:
            return token, expires_in
        errcode = answer.get("errcode")
        code = errcode if isinstance(errcode, int) and not isinstance(errcode, bool) else None
        raise ApiUnavailable(f"access_token refused: errcode {code} ({_meaning(code)})", code)

    def _failed(self, account: str, outcome: str, detail: str) -> bool:
        metrics.wechat_customer_message(account, outcome)
        log.warning("wechat %s: customer message not sent: %s", account, detail)
        return False


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    """The answer's JSON object, None if it is not one (an error page, a proxy's)."""
    if response.status_code != 200:
        return None
    try:
        data = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
