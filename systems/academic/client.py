"""Async client of the academic office (教务处, ASP.NET WebForms): login, a term's
timetable, exams and grades.

As a browser does (docs/academic-office-protocol.md): each query GETs its
page, keeps the form's hidden fields (__VIEWSTATE, __EVENTVALIDATION) and
posts them back with the term chosen and the right button; redirects are
followed within the office, every cookie it sets is kept, each request names
the page it came from as Referer. Pages are read by systems/academic/pages.py.
The entry pages are fixed paths (evidence: the 2013 client requested them
directly), relative to `base_url` (the office's root). The student-profile
pages (/Secure/Xjgl/...) hold national ID numbers and home addresses: this
client never requests them.
"""

from __future__ import annotations

import re

import httpx

from school.errors import QueryRejected, SchoolPageError
from school.web import Browser, CookieJar, Reply
from systems.academic.captcha import CaptchaUnreadable, read_captcha
from systems.academic.config import AcademicOfficeConfig
from systems.academic.models import AcademicSession, Exam, Grade, Timetable
from systems.academic.pages import (
    AspForm,
    CaptchaRefused,
    asp_form,
    login_page,
    login_texts,
    parse_exam_page,
    parse_grades,
    parse_login_answer,
    parse_timetable,
    read,
)

COOKIE_NAME = "ASP.NET_SessionId"
# Evidence: the 2013 client's paths (relative to the office's root).
LOGIN_PATH = "login.aspx"
CAPTCHA_PATH = "ValidateCode.aspx"
TIMETABLE_PATH = "Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx"
EXAMS_PATH = "Secure/PaiKeXuanKe/wfrm_xk_StudentKcb.aspx"
# Guess: no client ever read a student's own grade list; the page is named after the
# office's grade module (Cjgl) as its other pages are.
GRADES_PATH = "Secure/Cjgl/Cjgl_Cjcx_XsCjcx.aspx"
# Evidence: the buttons 2013 posted (bthSearch is the office's spelling).
LOGIN_BUTTON = "btnLogin"
TIMETABLE_BUTTON = "bthSearch"
EXAMS_BUTTON = "btnExpKsb"
EXAMS_BUTTON_TEXT = "导出或打印考试安排表"
# Guess: the grade form's button.
GRADES_BUTTON = "btnSearch"
# Evidence: the term fields, each posted twice under two names.
YEAR_FIELDS = ("dlstXndZ", "dlstXndZ0")
TERM_FIELDS = ("dlstNdxq", "dlstNdxq0")
TERM_NAMES = {1: "第一学期", 2: "第二学期"}
# Path labels of metrics stay bounded whatever paths the office's pages name.
_METRIC_PATH = re.compile(
    r"(?:/[A-Za-z0-9_.-]{1,40}){0,4}/"
    r"(?i:login|validatecode|default|wfrm_xk_maincx|wfrm_xk_studentkcb|cjgl_cjcx_xscjcx)\.aspx"
)
# The name of this school system in metrics and breaker states.
SYSTEM = "academic"


def term_texts(year: int, term: int) -> tuple[str, str]:
    """How the office names a term: ("2012-2013", "第一学期") for 2012, 1."""
    if term not in TERM_NAMES:
        raise ValueError("term must be 1 or 2")
    return f"{year}-{year + 1}", TERM_NAMES[term]


class AcademicOfficeClient:
    """One academic office client per worker process, shared by all students."""

    def __init__(self, settings: AcademicOfficeConfig, http: httpx.AsyncClient) -> None:
        """Use the caller's httpx client; its cookie jar is never relied upon."""
        self.settings = settings
        self._browser = Browser(
            SYSTEM,
            settings,
            http,
            _METRIC_PATH,
        )
        # Evidence: 2013 sent the login page as Referer on every request.
        self._login_url = self._browser.url(LOGIN_PATH)

    @property
    def requests_sent(self) -> int:
        return self._browser.requests_sent

    @property
    def typical_s(self) -> float:
        return self._browser.typical_s

    # --- login ------------------------------------------------------------------------

    async def login(self, student_id: str, password: str) -> AcademicSession:
        """Log in (login page, captcha, form) and return the session.

        Raises InvalidCredentials on a refused password or unknown student;
        SchoolPageError when no captcha could be read or accepted within
        `max_captcha_tries` (each try is one captcha request, plus the login
        POST when the captcha was read).
        """
        if not student_id or not password:
            raise ValueError("student_id and password must not be empty")
        browser = self._browser
        jar = CookieJar()
        page = await browser.send("GET", self._login_url, jar, self._login_url)
        form = login_page(page.body, page.content_type)
        # What the form shows before any attempt is not a message about one.
        shown_before = login_texts(page.body, page.content_type)
        for _ in range(self.settings.max_captcha_tries):
            captcha_url = browser.url(CAPTCHA_PATH, page.url)
            image = await browser.send("GET", captcha_url, jar, page.url)
            if COOKIE_NAME not in jar:
                raise SchoolPageError(
                    "the academic office opened no session (no ASP.NET_SessionId)", kind="login"
                )
            try:
                code = read_captcha(image.body)
            except CaptchaUnreadable:
                continue
            fields = form.post(
                {"txtYHBS": student_id, "txtYHMM": password, "txtFJM": code}, LOGIN_BUTTON
            )
            target = browser.url(form.action or LOGIN_PATH, page.url)
            answer = await browser.send("POST", target, jar, page.url, fields, "gbk")
            try:
                parse_login_answer(answer.body, answer.content_type, answer.url, shown_before)
            except CaptchaRefused:
                # The refusal is the login page again, with fresh hidden fields.
                page, form = answer, login_page(answer.body, answer.content_type)
                continue
            return AcademicSession(student_id, jar.session_value(COOKIE_NAME))
        raise SchoolPageError(
            f"no captcha read and accepted in {self.settings.max_captcha_tries} tries",
            kind="captcha",
        )

    # --- queries ----------------------------------------------------------------------

    async def timetable(self, session: AcademicSession, year: int, term: int) -> Timetable:
        """The student's courses of a term (year 2012 = 2012-2013; term 1 or 2)."""
        year_text, term_text = term_texts(year, term)
        jar = CookieJar.from_session(session.cookie, COOKIE_NAME)
        answer = await self._term_query(
            jar, TIMETABLE_PATH, year_text, term_text, TIMETABLE_BUTTON, {}, "timetable"
        )
        courses = parse_timetable(
            answer.body, answer.content_type, year_text, term_text, self.settings.term_weeks
        )
        return Timetable(year, term, courses)

    async def exams(self, session: AcademicSession, year: int, term: int) -> list[Exam]:
        """The student's exams of a term, as the office's exam schedule lists them."""
        year_text, term_text = term_texts(year, term)
        jar = CookieJar.from_session(session.cookie, COOKIE_NAME)
        reply = await self._term_query(
            jar,
            EXAMS_PATH,
            year_text,
            term_text,
            EXAMS_BUTTON,
            {EXAMS_BUTTON: EXAMS_BUTTON_TEXT},
            "exams",
        )
        for _ in range(self.settings.max_frames + 1):
            page = parse_exam_page(reply.body, reply.content_type)
            if page.exams is not None:
                return page.exams
            assert page.next_url is not None
            # Evidence: each frame's URL is relative to the page that names it (2013
            # resolved them against another host, and lost the session).
            reply = await self._browser.send(
                "GET", self._browser.url(page.next_url, reply.url), jar, reply.url
            )
        raise SchoolPageError(
            f"exams: no data within {self.settings.max_frames} frames", kind="exams"
        )

    async def grades(self, session: AcademicSession, year: int, term: int) -> list[Grade]:
        """The student's grade list of a term."""
        year_text, term_text = term_texts(year, term)
        jar = CookieJar.from_session(session.cookie, COOKIE_NAME)
        answer = await self._term_query(
            jar, GRADES_PATH, year_text, term_text, GRADES_BUTTON, {}, "grades"
        )
        return parse_grades(answer.body, answer.content_type, year_text, term_text)

    async def _term_query(
        self,
        jar: CookieJar,
        path: str,
        year_text: str,
        term_text: str,
        button: str,
        extra: dict[str, str],
        what: str,
    ) -> Reply:
        """GET a query page, POST its form back with the term chosen and the button."""
        browser = self._browser
        page = await browser.send("GET", browser.url(path), jar, self._login_url)
        form = asp_form(read(page.body, page.content_type, what), what)
        values = {**self._term_values(form, year_text, term_text, what), **extra}
        chosen = button if form.button(button) or button in extra else None
        fields = form.post(values, chosen)
        target = browser.url(form.action or path, page.url)
        answer = await browser.send("POST", target, jar, page.url, fields, "gbk")
        # The login page here means the session ended between the two requests.
        read(answer.body, answer.content_type, what)
        return answer

    def _term_values(
        self, form: AspForm, year_text: str, term_text: str, what: str
    ) -> dict[str, str]:
        """The year and term fields: the known names (evidence), and any other select that
        offers the year or the term (guess: tolerance for renamed fields)."""
        values: dict[str, str] = {}
        for name in YEAR_FIELDS:
            values[name] = year_text
        for name in TERM_FIELDS:
            values[name] = term_text
        for name, offered in form.options.items():
            if year_text in offered:
                values[name] = year_text
            elif term_text in offered:
                values[name] = term_text
        for name in (*YEAR_FIELDS, *TERM_FIELDS):
            offered_here = form.options.get(name)
            if offered_here and values[name] not in offered_here:
                raise QueryRejected(f"{what}: the academic office offers no {values[name]!r}")
        if not any(year_text in o for o in form.options.values()) and not (
            set(YEAR_FIELDS) & {n for n, _ in form.fields}
        ):
            raise SchoolPageError(f"{what}: the query form has no term fields", kind=what)
        return values
