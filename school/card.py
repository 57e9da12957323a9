"""Async client of the card center: login, account, today's and historical transactions.

The client walks the card center as a browser does, because that is all the
evidence shows (docs/card-center-protocol.md): it submits each page's own
form (action, method, fields), follows redirects within the card center,
keeps every cookie the card center sets, and reads pages leniently
(school/card_pages.py). Only the entry points are fixed URLs (evidence: the
2013 client and later ones request them directly).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from observability import metrics
from observability.timing import add_time
from school import deadline
from school.card_pages import (
    Form,
    ResultPage,
    codec_of,
    is_result_page,
    page_charset,
    parse_account,
    parse_forms,
    parse_login_answer,
    parse_result,
)
from school.errors import (
    SchoolConnectionError,
    SchoolError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SessionExpired,
)
from school.keypad import decode_keypad, map_password
from school.models import AccountInfo, CardSession, Transaction

COOKIE_NAME = "JSESSIONID"
# Evidence: the 2013 client fetched `getCheckpic.action?rand=8000.` and posted
# rand=8000; the captcha is never read.
CAPTCHA_RAND = "8000"
# Evidence: the 2013 client's fixed URLs (everything after them comes from forms).
CAPTCHA_PATH = f"/getCheckpic.action?rand={CAPTCHA_RAND}."
KEYPAD_PATH = "/getpasswdPhoto.action"
LOGIN_PATH = "/loginstudent.action"
ACCOUNT_PATH = "/accountcardUser.action"
TODAY_PATH = "/accounttodayTrjn.action"
HISTORY_PATH = "/accounthisTrjn.action"
# Evidence: every client at other schools asks the next history page here.
PAGING_PATH = "/accountconsubBrows.action"
# Evidence: the 2013 client sent this Referer (the school portal that framed the card center).
PORTAL_PATH = "/platform/cc/index"
_FORM_TYPE = "application/x-www-form-urlencoded"
_DIGITS = re.compile(r"[0-9]+")
_REDIRECTS = (301, 302, 303, 307, 308)
# Path labels of metrics stay bounded whatever paths the card center's forms name.
_METRIC_PATH = re.compile(r"/(?:[A-Za-z0-9_]{1,40}\.(?:action|jsp))?")
# Weight of the newest request in the moving average of request times.
LATENCY_WEIGHT = 0.2
# The name of this school system in metrics and breaker states.
SYSTEM = "card"


# Outcome label of jnufm_school_requests for each error _exchange raises.
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
    # Host header; None: the base URL's (for the real card center, card.jnu.edu.cn:8080,
    # what the 2013 client sent).
    host: str | None = None
    # Referer of the login requests and of each query's first page; None: the
    # portal page the 2013 client named, on the base URL's host and default port.
    referer: str | None = None
    max_redirects: int = 5
    # Self-submitting pages (the history's "please wait") followed at most.
    max_steps: int = 4
    # The account page read to confirm a login answers an account query this
    # soon after it, instead of a second request.
    login_page_reuse_s: float = 5.0

    def __post_init__(self) -> None:
        """Reject settings that would make every request fail or never end."""
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if self.connect_timeout <= 0 or self.total_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if self.max_redirects < 0 or self.max_steps < 1:
            raise ValueError("max_redirects must be >= 0 and max_steps >= 1")


class CookieJar:
    """The cookies of one card center session, in the order they were set.

    Path and domain are ignored: every cookie of the card center's host goes
    back to it (evidence: Tomcat's JSESSIONID has Path=/; the rest: guess).
    """

    def __init__(self, cookies: Mapping[str, str] | None = None) -> None:
        self._cookies: dict[str, str] = dict(cookies or {})

    @classmethod
    def from_session(cls, value: str) -> CookieJar:
        """The jar a CardSession.cookie stands for (a bare JSESSIONID or a Cookie header)."""
        if "=" not in value:
            return cls({COOKIE_NAME: value})
        pairs = (part.strip().partition("=") for part in value.split(";"))
        return cls({name: v for name, _, v in pairs if name})

    def session_value(self) -> str:
        """What CardSession.cookie holds for this jar."""
        if list(self._cookies) == [COOKIE_NAME]:
            return self._cookies[COOKIE_NAME]
        return self.header()

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self._cookies.items())

    def __contains__(self, name: object) -> bool:
        return name in self._cookies

    def update(self, response: httpx.Response) -> None:
        """Take the cookies a response sets (and drop those it expires)."""
        for header in response.headers.get_list("set-cookie"):
            first, *attributes = header.split(";")
            name, sep, value = first.partition("=")
            name, value = name.strip(), value.strip().strip('"')
            if not sep or not name:
                continue
            if _expired(attributes):
                self._cookies.pop(name, None)
            else:
                self._cookies[name] = value


def _expired(attributes: Sequence[str]) -> bool:
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                return int(value.strip()) <= 0
            except ValueError:
                continue
        if key == "expires":
            try:
                return parsedate_to_datetime(value.strip()).timestamp() <= time.time()
            except (TypeError, ValueError):
                continue
    return False


@dataclass(frozen=True, slots=True)
class _Reply:
    """A 200 answer: where it came from (after redirects), its body and Content-Type."""

    url: str
    body: bytes
    content_type: str | None


class CardCenterClient:
    """One card center client per worker process, shared by all students."""

    def __init__(self, settings: CardCenterSettings, http: httpx.AsyncClient) -> None:
        """Use the caller's httpx client; its cookie jar is never relied upon."""
        self.settings = settings
        self._http = http
        self._base = settings.base_url.rstrip("/")
        base = urlsplit(self._base)
        self._origin = (base.scheme, base.netloc.lower())
        portal_host = base.hostname or ""
        self._portal = settings.referer or f"{base.scheme}://{portal_host}{PORTAL_PATH}"
        self._timeout = httpx.Timeout(settings.total_timeout, connect=settings.connect_timeout)
        self.requests_sent = 0
        # How long a school request has been taking lately (moving average): a query
        # whose deadline is nearer than this starts no further request.
        self.typical_s = 0.0

    # --- transport -------------------------------------------------------------

    def _url(self, target: str, page_url: str | None = None) -> str:
        """target resolved against the page it came from (else the base), if on the card center."""
        url = urljoin(page_url or self._base + "/", target)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            # Never send a session cookie or form data to another host.
            raise SchoolPageError(f"card center points away from itself: {parts.netloc[:60]}")
        return urlunsplit(parts._replace(fragment=""))

    async def _exchange(self, request: httpx.Request, where: str) -> httpx.Response:
        """Send one request; map every failure to a SchoolError; count and time it."""
        path = urlsplit(str(request.url)).path
        deadline.check(f"{request.method} {path}", self.typical_s)
        self.requests_sent += 1
        label = path if _METRIC_PATH.fullmatch(path) else "/other"
        where = f"{request.method} {label} ({where})"
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
        except SchoolError as exc:
            outcome = _OUTCOMES.get(type(exc), "error")
            raise
        finally:
            elapsed = time.perf_counter() - started
            add_time("school", elapsed)
            metrics.observe_school_request(SYSTEM, label, outcome, elapsed)
            if outcome == "ok":
                self.typical_s += LATENCY_WEIGHT * (elapsed - self.typical_s)
        return response

    async def _send(
        self,
        method: str,
        url: str,
        jar: CookieJar,
        referer: str,
        form: Sequence[tuple[str, str]] | None = None,
        charset: str = "gbk",
    ) -> _Reply:
        """One request and the redirects it draws (within the card center), cookies kept."""
        content: bytes | None = None
        if method == "POST":
            # Evidence: form values go in the pages' charset (clients send
            # Submit=+%C8%B7+%B6%A8+, " 确 定 " in GBK).
            content = urlencode(list(form or ()), encoding=codec_of(charset)).encode("ascii")
        for hop in range(self.settings.max_redirects + 1):
            headers = {
                "User-Agent": self.settings.user_agent,
                "Accept-Encoding": "identity",
                "Referer": referer,
            }
            if self.settings.host:
                headers["Host"] = self.settings.host
            if jar.header():
                headers["Cookie"] = jar.header()
            if content is not None:
                headers["Content-Type"] = _FORM_TYPE
            # A bare Request (not build_request) so the shared client's cookie jar,
            # filled by other students' answers, is never merged into this request.
            request = httpx.Request(
                method,
                url,
                headers=headers,
                content=content,
                extensions={"timeout": self._timeout.as_dict()},
            )
            response = await self._exchange(request, "redirected" if hop else "asked")
            jar.update(response)
            status = response.status_code
            if status == 200:
                return _Reply(url, response.content, response.headers.get("content-type"))
            location = response.headers.get("location")
            if status not in _REDIRECTS or not location:
                raise SchoolPageError(f"{method} {urlsplit(url).path}: unexpected HTTP {status}")
            # Browsers keep the Referer of the redirected request.
            url = self._url(location, url)
            if status in (301, 302, 303):
                # As browsers do: the redirect is fetched with GET, without the form.
                method, content = "GET", None
        raise SchoolPageError(f"more than {self.settings.max_redirects} redirects")

    async def _get(self, path: str, jar: CookieJar, referer: str | None = None) -> _Reply:
        return await self._send("GET", self._url(path), jar, referer or self._portal)

    async def _submit(
        self, form: Form, page: _Reply, jar: CookieJar, values: Mapping[str, str] | None = None
    ) -> _Reply:
        """Submit a page's form as a browser does (its action resolved against the page)."""
        if values:
            form = form.with_values(dict(values))
        charset = page_charset(page.body, page.content_type)
        target = self._url(form.action, page.url)
        if form.method == "POST":
            return await self._send("POST", target, jar, page.url, form.fields, charset)
        parts = urlsplit(target)
        query = urlencode(list(form.fields), encoding=codec_of(charset))
        return await self._send("GET", urlunsplit(parts._replace(query=query)), jar, page.url)

    # --- operations ------------------------------------------------------------

    async def login(self, student_id: str, password: str) -> CardSession:
        """Log in from scratch (captcha, keypad, login, account page) and return the session.

        The home page is not asked for: the captcha request opens the session
        (evidence: the 2013 client's session began there too).
        """
        if not _DIGITS.fullmatch(student_id):
            raise ValueError("student_id must be ASCII digits")
        if not _DIGITS.fullmatch(password):
            raise ValueError("the card password must be ASCII digits")
        jar = CookieJar()
        await self._get(CAPTCHA_PATH, jar)
        keypad = await self._get(KEYPAD_PATH, jar)
        if COOKIE_NAME not in jar:
            raise SchoolPageError("the card center opened no session (no JSESSIONID)")
        # An unreadable keypad stops here: a guessed password would count as a failed login.
        sent = map_password(password, decode_keypad(keypad.body))
        fields = (
            ("loginType", "2"),
            ("name", student_id),
            ("passwd", sent),
            ("rand", CAPTCHA_RAND),
            ("userType", "1"),
        )
        answer = await self._send("POST", self._url(LOGIN_PATH), jar, self._portal, fields)
        parse_login_answer(answer.body, answer.content_type)
        # Never assume success (the 2013 client did): the account data must follow.
        account = await self._confirm(student_id, answer, jar)
        return CardSession(student_id, jar.session_value(), account, time.monotonic())

    async def _confirm(self, student_id: str, answer: _Reply, jar: CookieJar) -> AccountInfo:
        """The account page proving the login: the answer itself if it was redirected there."""
        if urlsplit(answer.url).path.endswith(ACCOUNT_PATH):
            page = answer
        else:
            page = await self._get(ACCOUNT_PATH, jar, answer.url)
        try:
            return parse_account(page.body, student_id, page.content_type)
        except SessionExpired as exc:
            raise SchoolPageError(
                "login not refused, but the account page is the login page"
            ) from exc

    async def account(self, session: CardSession) -> AccountInfo:
        """The account page: balance, and name, card number, ... where it shows them."""
        age = time.monotonic() - session.account_read_at
        if session.account is not None and age <= self.settings.login_page_reuse_s:
            return session.account
        jar = CookieJar.from_session(session.cookie)
        reply = await self._get(ACCOUNT_PATH, jar)
        return parse_account(reply.body, session.student_id, reply.content_type)

    async def today(self, session: CardSession) -> list[Transaction]:
        """Today's transactions, newest first: the query form, its answer, further pages."""
        jar = CookieJar.from_session(session.cookie)
        page = await self._get(TODAY_PATH, jar)
        answer = await self._submit(self._query_form(page), page, jar)
        return await self._results(answer, jar)

    async def history(self, session: CardSession, start: date, end: date) -> list[Transaction]:
        """Transactions of the days start..end (before today), newest first."""
        if start > end:
            raise ValueError("history start date is after its end date")
        jar = CookieJar.from_session(session.cookie)
        page = await self._get(HISTORY_PATH, jar)
        dates_page = await self._submit(self._query_form(page), page, jar)
        dates = {"inputStartDate": f"{start:%Y%m%d}", "inputEndDate": f"{end:%Y%m%d}"}
        form = self._form_with(dates_page, set(dates))
        if form is None:
            raise SchoolPageError("history: no form asks for the dates")
        answer = await self._submit(form, dates_page, jar, dates)
        return await self._results(answer, jar)

    # --- pages ----------------------------------------------------------------------

    def _form_with(self, page: _Reply, names: set[str]) -> Form | None:
        forms = parse_forms(page.body, page.content_type)
        return next((f for f in forms if names <= f.names()), None)

    def _query_form(self, page: _Reply) -> Form:
        """The account-choice form (evidence: it has a field `account`), else the only form."""
        forms = parse_forms(page.body, page.content_type)
        found = next((f for f in forms if "account" in f.names()), None)
        if found is None and len(forms) == 1:
            found = forms[0]
        if found is None:
            raise SchoolPageError(f"{urlsplit(page.url).path}: no query form")
        return found

    async def _results(self, answer: _Reply, jar: CookieJar) -> list[Transaction]:
        """The rows of a query: past its self-submitting pages, through every result page."""
        for _ in range(self.settings.max_steps):
            if is_result_page(answer.body, answer.content_type):
                break
            # Evidence: the history answers "please wait" with a form that submits itself.
            forms = parse_forms(answer.body, answer.content_type)
            if len(forms) != 1:
                raise SchoolPageError(f"{urlsplit(answer.url).path}: neither results nor a form")
            answer = await self._submit(forms[0], answer, jar)
        else:
            raise SchoolPageError(f"no result page after {self.settings.max_steps} forms")
        return await self._collect(answer, jar)

    def _parse(self, reply: _Reply) -> ResultPage:
        return parse_result(reply.body, self.settings.clock_offset, reply.content_type)

    async def _next_page(
        self, reply: _Reply, page: ResultPage, number: int, jar: CookieJar
    ) -> _Reply:
        """Ask for result page `number` with the paging form of the page before it."""
        for form in page.forms:
            field = next((n for n in form.names() if n.endswith("pageNum")), None)
            if field is not None:
                return await self._submit(form, reply, jar, {field: str(number)})
        # No paging form: where clients at other schools ask (evidence).
        target = self._url(PAGING_PATH)
        fields = (("pageNum", str(number)),)
        charset = page_charset(reply.body, reply.content_type)
        return await self._send("POST", target, jar, reply.url, fields, charset)

    async def _collect(self, first: _Reply, jar: CookieJar) -> list[Transaction]:
        """Every row of a query from its first result page.

        With a pager: exactly its pages, checked against its counts. Without
        one (the 2013 card center shows none): the next page until one comes
        back empty, shorter than the first, or the same as the one before (a
        card center may answer a page past the end with the last page).
        """
        reply, head = first, self._parse(first)
        if head.page not in (None, 1):
            raise SchoolPageError(f"query answered with page {head.page}, expected 1")
        limit = self.settings.max_pages
        if head.pages is not None and head.pages > limit:
            raise SchoolPageError(f"query has {head.pages} pages, more than we fetch")
        rows = list(head.rows)
        last, page = head, head
        number = 1
        while True:
            if head.pages is not None and number >= head.pages:
                break
            if head.pages is None and (not page.rows or len(page.rows) < len(head.rows)):
                break
            number += 1
            if number > limit:
                raise SchoolPageError(f"query has more than {limit} pages")
            reply = await self._next_page(reply, page, number, jar)
            page = self._parse(reply)
            if head.pages is not None:
                if (page.page not in (None, number)) or page.pages != head.pages:
                    # The list moved under us (e.g. a purchase while paging): no mixed result.
                    raise SchoolPageError(
                        f"page {number} says page {page.page} of {page.pages}, "
                        f"expected {number} of {head.pages}"
                    )
            elif page.rows == last.rows:
                break
            rows.extend(page.rows)
            last = page
        if head.total is not None and len(rows) != head.total:
            raise SchoolPageError(f"got {len(rows)} rows but the pager says {head.total}")
        return rows
