"""Async client of the card center: login, account, today's and historical transactions."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from urllib.parse import urlencode

import httpx

from observability import metrics
from observability.timing import add_time
from school.card_pages import (
    check_login_page,
    parse_account,
    parse_account_form,
    parse_form,
    parse_login_result,
    parse_result,
)
from school.errors import (
    SchoolConnectionError,
    SchoolError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
)
from school.keypad import decode_keypad, map_password
from school.models import AccountInfo, CardSession, Transaction

COOKIE_NAME = "JSESSIONID"
# The 2013 client always sent this captcha value and the card center accepts it.
CAPTCHA_RAND = "8000"
_FORM_TYPE = "application/x-www-form-urlencoded"
_DIGITS = re.compile(r"[0-9]+")
# The name of this school system in metrics and breaker states.
SYSTEM = "card"


# Outcome label of jnufm_school_requests for each error _fetch raises.
_OUTCOMES: dict[type[SchoolError], str] = {
    SchoolTimeout: "timeout",
    SchoolConnectionError: "connection",
    SchoolServerError: "server_error",
    SchoolPageError: "bad_page",
}


@dataclass(frozen=True, slots=True)
class CardCenterSettings:
    """Where the card center is and how long we wait for it."""

    base_url: str
    connect_timeout: float = 3.0
    total_timeout: float = 10.0
    # The card center's clock is 55 minutes slow.
    clock_offset: timedelta = timedelta(minutes=55)
    max_pages: int = 50
    user_agent: str = "Mozilla/5.0 (compatible; jnufm)"

    def __post_init__(self) -> None:
        """Reject settings that would make every request fail or never end."""
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if self.connect_timeout <= 0 or self.total_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_pages < 1:
            raise ValueError("max_pages must be at least 1")


@dataclass(frozen=True, slots=True)
class _Reply:
    """A 200 answer: its body, Content-Type and the JSESSIONID it set, if any."""

    body: bytes
    content_type: str | None
    new_cookie: str | None


def _set_cookie_value(response: httpx.Response) -> str | None:
    """The last JSESSIONID set by the response's Set-Cookie headers."""
    value: str | None = None
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name.strip() == COOKIE_NAME:
            value = rest.split(";", 1)[0].strip().strip('"') or None
    return value


class CardCenterClient:
    """One card center client per worker process, shared by all students."""

    def __init__(self, settings: CardCenterSettings, http: httpx.AsyncClient) -> None:
        """Use the caller's httpx client; its cookie jar is never relied upon."""
        self.settings = settings
        self._http = http
        self._base = settings.base_url.rstrip("/")
        self._timeout = httpx.Timeout(settings.total_timeout, connect=settings.connect_timeout)
        self.requests_sent = 0

    # --- transport -------------------------------------------------------------

    async def _fetch(
        self,
        method: str,
        path: str,
        cookie: str | None,
        form: Mapping[str, str] | None = None,
    ) -> _Reply:
        """Send one request with our own Cookie header; map every failure to a SchoolError."""
        headers = {"User-Agent": self.settings.user_agent, "Accept-Encoding": "identity"}
        if cookie is not None:
            headers["Cookie"] = f"{COOKIE_NAME}={cookie}"
        content: bytes | None = None
        if method == "POST":
            headers["Content-Type"] = _FORM_TYPE
            content = urlencode(dict(form or {})).encode("ascii")
        # A bare Request (not build_request) so the shared client's cookie jar,
        # filled by other students' answers, is never merged into this request.
        request = httpx.Request(
            method,
            self._base + path,
            headers=headers,
            content=content,
            extensions={"timeout": self._timeout.as_dict()},
        )
        self.requests_sent += 1
        bare_path = path.split("?", 1)[0]
        where = f"{method} {bare_path}"
        started = time.perf_counter()
        outcome = "ok"
        try:
            try:
                async with asyncio.timeout(self.settings.total_timeout):
                    response = await self._http.send(request, follow_redirects=False)
            except TimeoutError as exc:
                raise SchoolTimeout(f"{where}: no answer within the total timeout") from exc
            except httpx.TimeoutException as exc:
                raise SchoolTimeout(f"{where}: {type(exc).__name__}") from exc
            except httpx.DecodingError as exc:
                raise SchoolPageError(f"{where}: undecodable body") from exc
            except httpx.RequestError as exc:
                raise SchoolConnectionError(f"{where}: {type(exc).__name__}") from exc
            if response.status_code >= 500:
                raise SchoolServerError(
                    f"{where}: HTTP {response.status_code}", response.status_code
                )
            if response.status_code != 200:
                raise SchoolPageError(f"{where}: unexpected HTTP {response.status_code}")
        except SchoolError as exc:
            outcome = _OUTCOMES.get(type(exc), "error")
            raise
        finally:
            elapsed = time.perf_counter() - started
            add_time("school", elapsed)
            metrics.observe_school_request(SYSTEM, bare_path, outcome, elapsed)
        return _Reply(
            body=response.content,
            content_type=response.headers.get("content-type"),
            new_cookie=_set_cookie_value(response),
        )

    async def _data(
        self, session: CardSession, method: str, path: str, form: Mapping[str, str] | None = None
    ) -> _Reply:
        """A request inside a logged-in session (a login page answer means it expired)."""
        return await self._fetch(method, path, session.cookie, form)

    # --- operations ------------------------------------------------------------

    async def login(self, student_id: str, password: str) -> CardSession:
        """Log in from scratch (4 requests) and return the logged-in session."""
        if not _DIGITS.fullmatch(student_id):
            raise ValueError("student_id must be ASCII digits")
        if not _DIGITS.fullmatch(password):
            raise ValueError("the card password must be ASCII digits")
        home = await self._fetch("GET", "/", None)
        check_login_page(home.body, home.content_type)
        cookie = home.new_cookie
        if cookie is None:
            raise SchoolPageError("home page set no session cookie")
        captcha = await self._fetch("GET", f"/getCheckpic.action?rand={CAPTCHA_RAND}", cookie)
        # The server replaces an unknown session's cookie; follow it so that a
        # lost session shows up as a refused login, not a silent mix-up.
        cookie = captcha.new_cookie or cookie
        keypad = await self._fetch("GET", "/getpasswdPhoto.action", cookie)
        cookie = keypad.new_cookie or cookie
        cells = decode_keypad(keypad.body)
        answer = await self._fetch(
            "POST",
            "/loginstudent.action",
            cookie,
            {
                "name": student_id,
                "passwd": map_password(password, cells),
                "rand": CAPTCHA_RAND,
                "loginType": "2",
                "userType": "1",
            },
        )
        cookie = answer.new_cookie or cookie
        # Never assume success (the 2013 client did): only the welcome block proves it.
        parse_login_result(answer.body, answer.content_type)
        return CardSession(student_id=student_id, cookie=cookie)

    async def account(self, session: CardSession) -> AccountInfo:
        """The account page: name, card number, status, balance (1 request)."""
        reply = await self._data(session, "GET", "/accountcardUser.action")
        return parse_account(reply.body, session.student_id, reply.content_type)

    async def today(self, session: CardSession) -> list[Transaction]:
        """Today's transactions, newest first (form, query, then further pages)."""
        form = await self._data(session, "GET", "/accounttodayTrjn.action")
        account = parse_account_form(form.body, "accounttodayTrjn.action", form.content_type)
        first = await self._data(
            session,
            "POST",
            "/accounttodayTrjn.action",
            {"account": account, "inputObject": "all"},
        )
        return await self._collect(session, first)

    async def history(self, session: CardSession, start: date, end: date) -> list[Transaction]:
        """Transactions of the days start..end (before today), newest first."""
        if start > end:
            raise ValueError("history start date is after its end date")
        form = await self._data(session, "GET", "/accounthisTrjn.action")
        account = parse_account_form(form.body, "accounthisTrjn1.action", form.content_type)
        dates = await self._data(
            session,
            "POST",
            "/accounthisTrjn1.action",
            {"account": account, "inputObject": "all"},
        )
        parse_form(dates.body, "accounthisTrjn2.action", dates.content_type)
        waiting = await self._data(
            session,
            "POST",
            "/accounthisTrjn2.action",
            {"inputStartDate": start.strftime("%Y%m%d"), "inputEndDate": end.strftime("%Y%m%d")},
        )
        parse_form(waiting.body, "accounthisTrjn3.action", waiting.content_type)
        first = await self._data(session, "POST", "/accounthisTrjn3.action", {})
        return await self._collect(session, first)

    async def _collect(self, session: CardSession, first: _Reply) -> list[Transaction]:
        """All rows of a query from its first result page, checked against the pager's total."""
        offset = self.settings.clock_offset
        head = parse_result(first.body, offset, first.content_type)
        if head.page != 1:
            raise SchoolPageError(f"query answered with page {head.page}, expected 1")
        if head.pages > self.settings.max_pages:
            raise SchoolPageError(f"query has {head.pages} pages, more than we fetch")
        rows = list(head.rows)
        for number in range(2, head.pages + 1):
            reply = await self._data(
                session, "POST", "/accountconsubBrows.action", {"pageNum": str(number)}
            )
            page = parse_result(reply.body, offset, reply.content_type)
            if (page.page, page.pages, page.total) != (number, head.pages, head.total):
                # The list moved under us (e.g. a purchase while paging): no mixed result.
                raise SchoolPageError(
                    f"page {number} says page {page.page}/{page.pages} of {page.total} rows, "
                    f"expected {number}/{head.pages} of {head.total}"
                )
            rows.extend(page.rows)
        if len(rows) != head.total:
            raise SchoolPageError(f"got {len(rows)} rows but the pager says {head.total}")
        return rows
