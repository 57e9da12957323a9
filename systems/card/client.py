"""Async client of the card center: login, account, today's and historical transactions.

The client walks the card center as a browser does, because that is all the
evidence shows (docs/card-center-protocol.md): it submits each page's own
form (action, method, fields), follows redirects within the card center,
keeps every cookie the card center sets, and reads pages leniently
(systems/card/pages.py). Only the entry points are fixed URLs (evidence: the
2013 client and later ones request them directly).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import date
from urllib.parse import urlsplit

import httpx

from school.errors import (
    SchoolPageError,
)
from school.html import Form, page_charset
from school.web import Browser, CookieJar, Reply
from systems.card.config import CardCenterConfig
from systems.card.keypad import decode_keypad, map_password
from systems.card.models import AccountInfo, CardSession, Transaction
from systems.card.pages import (
    ResultPage,
    is_result_page,
    parse_account,
    parse_forms,
    parse_login_account,
    parse_login_answer,
    parse_result,
)

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
_DIGITS = re.compile(r"[0-9]+")
# Path labels of metrics stay bounded whatever paths the card center's forms name.
_METRIC_PATH = re.compile(r"/(?:[A-Za-z0-9_]{1,40}\.(?:action|jsp))?")
# The name of this school system in metrics and breaker states.
SYSTEM = "card"


class CardCenterClient:
    """One card center client per worker process, shared by all students."""

    def __init__(self, settings: CardCenterConfig, http: httpx.AsyncClient) -> None:
        """Use the caller's httpx client; its cookie jar is never relied upon."""
        self.settings = settings
        base = urlsplit(settings.base_url)
        self._portal = settings.referer or f"{base.scheme}://{base.hostname or ''}{PORTAL_PATH}"
        self._browser = Browser(
            SYSTEM,
            settings,
            http,
            _METRIC_PATH,
        )

    @property
    def requests_sent(self) -> int:
        return self._browser.requests_sent

    @requests_sent.setter
    def requests_sent(self, value: int) -> None:
        self._browser.requests_sent = value

    @property
    def typical_s(self) -> float:
        return self._browser.typical_s

    def _url(self, target: str, page_url: str | None = None) -> str:
        return self._browser.url(target, page_url)

    async def _send(
        self,
        method: str,
        url: str,
        jar: CookieJar,
        referer: str,
        form: Sequence[tuple[str, str]] | None = None,
        charset: str = "gbk",
    ) -> Reply:
        return await self._browser.send(method, url, jar, referer, form, charset)

    async def _get(self, path: str, jar: CookieJar, referer: str | None = None) -> Reply:
        return await self._browser.get(path, jar, referer or self._portal)

    async def _submit(
        self, form: Form, page: Reply, jar: CookieJar, values: Mapping[str, str] | None = None
    ) -> Reply:
        return await self._browser.submit(form, page, jar, values)

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
            raise SchoolPageError("the card center opened no session (no JSESSIONID)", kind="login")
        # An unreadable keypad stops here: a guessed password would count as a failed login.
        try:
            sent = map_password(password, decode_keypad(keypad.body))
        except SchoolPageError as exc:
            if exc.kind is None:
                exc.kind = "keypad"
            raise
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
        return CardSession(student_id, jar.session_value(COOKIE_NAME), account, time.monotonic())

    async def _confirm(self, student_id: str, answer: Reply, jar: CookieJar) -> AccountInfo:
        """The account page proving the login: the answer itself if it was redirected there."""
        if urlsplit(answer.url).path.endswith(ACCOUNT_PATH):
            page = answer
        else:
            page = await self._get(ACCOUNT_PATH, jar, answer.url)
        return parse_login_account(page.body, student_id, page.content_type)

    async def account(self, session: CardSession) -> AccountInfo:
        """The account page: balance, and name, card number, ... where it shows them."""
        age = time.monotonic() - session.account_read_at
        if session.account is not None and age <= self.settings.login_page_reuse_s:
            return session.account
        jar = CookieJar.from_session(session.cookie, COOKIE_NAME)
        reply = await self._get(ACCOUNT_PATH, jar)
        return parse_account(reply.body, session.student_id, reply.content_type)

    async def today(self, session: CardSession) -> list[Transaction]:
        """Today's transactions, newest first: the query form, its answer, further pages."""
        jar = CookieJar.from_session(session.cookie, COOKIE_NAME)
        page = await self._get(TODAY_PATH, jar)
        answer = await self._submit(self._query_form(page, "today"), page, jar)
        return await self._results(answer, jar)

    async def history(self, session: CardSession, start: date, end: date) -> list[Transaction]:
        """Transactions of the days start..end (before today), newest first."""
        if start > end:
            raise ValueError("history start date is after its end date")
        jar = CookieJar.from_session(session.cookie, COOKIE_NAME)
        page = await self._get(HISTORY_PATH, jar)
        dates_page = await self._submit(self._query_form(page, "history"), page, jar)
        dates = {"inputStartDate": f"{start:%Y%m%d}", "inputEndDate": f"{end:%Y%m%d}"}
        form = self._form_with(dates_page, set(dates), "history")
        if form is None:
            raise SchoolPageError("history: no form asks for the dates", kind="history")
        answer = await self._submit(form, dates_page, jar, dates)
        return await self._results(answer, jar)

    # --- pages ----------------------------------------------------------------------

    def _form_with(self, page: Reply, names: set[str], kind: str) -> Form | None:
        forms = parse_forms(page.body, page.content_type, kind)
        return next((f for f in forms if names <= f.names()), None)

    def _query_form(self, page: Reply, kind: str) -> Form:
        """The account-choice form (evidence: it has a field `account`), else the only form."""
        forms = parse_forms(page.body, page.content_type, kind)
        found = next((f for f in forms if "account" in f.names()), None)
        if found is None and len(forms) == 1:
            found = forms[0]
        if found is None:
            raise SchoolPageError(f"{urlsplit(page.url).path}: no query form", kind=kind)
        return found

    async def _results(self, answer: Reply, jar: CookieJar) -> list[Transaction]:
        """The rows of a query: past its self-submitting pages, through every result page."""
        for _ in range(self.settings.max_steps):
            if is_result_page(answer.body, answer.content_type):
                break
            # Evidence: the history answers "please wait" with a form that submits itself.
            forms = parse_forms(answer.body, answer.content_type, "wait")
            if len(forms) != 1:
                raise SchoolPageError(
                    f"{urlsplit(answer.url).path}: neither results nor a form", kind="result"
                )
            answer = await self._submit(forms[0], answer, jar)
        else:
            raise SchoolPageError(
                f"no result page after {self.settings.max_steps} forms", kind="wait"
            )
        return await self._collect(answer, jar)

    def _parse(self, reply: Reply) -> ResultPage:
        return parse_result(reply.body, self.settings.clock_offset, reply.content_type)

    async def _next_page(
        self, reply: Reply, page: ResultPage, number: int, jar: CookieJar
    ) -> Reply:
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

    async def _collect(self, first: Reply, jar: CookieJar) -> list[Transaction]:
        """Every row of a query from its first result page.

        With a pager: exactly its pages, checked against its counts. Without
        one (the 2013 card center shows none): the next page until one comes
        back empty, shorter than the first, or the same as the one before (a
        card center may answer a page past the end with the last page).
        """
        reply, head = first, self._parse(first)
        if head.page not in (None, 1):
            raise SchoolPageError(f"query answered with page {head.page}, expected 1", "result")
        limit = self.settings.max_pages
        if head.pages is not None and head.pages > limit:
            raise SchoolPageError(f"query has {head.pages} pages, more than we fetch", "result")
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
                raise SchoolPageError(f"query has more than {limit} pages", "result")
            reply = await self._next_page(reply, page, number, jar)
            page = self._parse(reply)
            if head.pages is not None:
                if (page.page not in (None, number)) or page.pages != head.pages:
                    # The list moved under us (e.g. a purchase while paging): no mixed result.
                    raise SchoolPageError(
                        f"page {number} says page {page.page} of {page.pages}, "
                        f"expected {number} of {head.pages}",
                        "result",
                    )
            elif page.rows == last.rows:
                break
            rows.extend(page.rows)
            last = page
        if head.total is not None and len(rows) != head.total:
            raise SchoolPageError(f"got {len(rows)} rows but the pager says {head.total}", "result")
        return rows
