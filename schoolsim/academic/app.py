"""The simulated academic office's pages (under its prefix) and side endpoints
(under /__sim/academic/), mounted beside the card center by `mount`."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, datetime
from typing import Any, NamedTuple
from urllib.parse import quote

from schoolsim.academic import pages
from schoolsim.academic.captcha import render_captcha
from schoolsim.academic.dataset import SimExam, SimGrade, TermData, exists
from schoolsim.academic.state import MAX_REPORTS, AcademicState, Session
from schoolsim.card.dataset import CHINA
from schoolsim.overload import Mount, OverloadHandler, Rule, SimHandler, SystemState
from schoolsim.profiles import SimSettings
from schoolsim.variants import Variant, variant_for

NAME = "academic"
PREFIX = "/jwc/"
COOKIE = "ASP.NET_SessionId"
FIRST_YEAR = 2005
_YEAR = re.compile(r"^(\d{4})-(\d{4})$")


def _no_log(handler: object) -> None:
    """Quiet: benchmarks send tens of thousands of requests."""


class PostedQuery(NamedTuple):
    session: Session
    stuid: str
    year_text: str  # as posted: "2012-2013", "第一学期"
    term_text: str
    year: int
    term: int
    variant: Variant


class OfficeHandler(OverloadHandler):
    """Base of every academic office page: overload layer, session cookie, GBK pages."""

    state: AcademicState
    page_name = ""
    secure = False
    latency_kind = ""

    def initialize(self, state: SystemState, prefix: str = PREFIX) -> None:
        super().initialize(state)
        self.prefix = prefix

    def set_default_headers(self) -> None:
        self.set_header("Server", "Microsoft-IIS/6.0")
        self.set_header("X-Powered-By", "ASP.NET")
        self.set_header("X-AspNet-Version", "2.0.50727")

    def error_page(self, status: int) -> str:
        return pages.server_busy(status, self.variant())

    def variant(self, stuid: str | None = None) -> Variant:
        """The markup variant of this answer: by the student (the one named, else the
        session's), as `variant_for` picks it for the `variant` setting."""
        if stuid is None:
            found = self.state.sessions.get(
                self.get_cookie(COOKIE), self.state.settings.session_idle_s
            )
            stuid = found.stuid if found is not None else None
        return variant_for(self.state.settings.variant, stuid or "")

    def latency_factor(self) -> float:
        if self.latency_kind == "login" and self.request.method == "POST":
            return self.state.settings.login_latency_factor
        return 1.0

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Form values arrive in GBK (the pages' charset)."""
        return value.decode("gb18030", errors="replace")

    def html(self, body: str, status: int = 200, variant: Variant = "plain") -> None:
        self.set_status(status)
        if pages.charset_declared_in_header(variant):
            self.set_header("Content-Type", "text/html; charset=gbk")
        else:
            self.set_header("Content-Type", "text/html")
        self.set_header("Cache-Control", "private")
        self.finish(body.encode("gbk", errors="replace"))

    def arg(self, name: str) -> str:
        return self.get_body_argument(name, "") if self.request.method == "POST" else ""

    def session(self) -> Session:
        """This request's session; a new one (and its cookie) if none is valid."""
        state = self.state
        found = state.sessions.get(self.get_cookie(COOKIE), state.settings.session_idle_s)
        if found is None:
            found = state.sessions.create(state.new_sid(), state.settings.max_sessions)
            self.set_cookie(COOKIE, found.sid, path="/", httponly=True)
        return found

    def student(self) -> tuple[Session, str] | None:
        """The logged-in session, or None after redirecting to the login page (as forms
        authentication does)."""
        sess = self.session()
        if sess.stuid is None:
            self.state.redirects_to_login += 1
            self.redirect(f"{self.prefix}login.aspx?ReturnUrl={quote(self.request.path, safe='')}")
            return None
        return sess, sess.stuid

    def postback_ok(self, variant: Variant) -> bool:
        """Check the posted view state; False after answering ASP.NET's error."""
        if self.state.valid(self.page_name, self.arg("__VIEWSTATE"), self.arg("__EVENTVALIDATION")):
            return True
        self.state.viewstate_failures += 1
        self.html(
            pages.aspnet_error(
                "Validation of viewstate MAC failed.",
                "Validation of viewstate MAC failed. If this application is hosted by a Web "
                "Farm or cluster, ensure that <machineKey> configuration specifies the same "
                "validationKey and validation algorithm.",
                variant,
            ),
            500,
            variant,
        )
        return False

    def invalid_postback(self, variant: Variant) -> None:
        self.state.viewstate_failures += 1
        self.html(
            pages.aspnet_error(
                "Invalid postback or callback argument.",
                "Invalid postback or callback argument. Event validation is enabled.",
                variant,
            ),
            500,
            variant,
        )

    def forms(self) -> tuple[str, str]:
        return self.state.viewstate(self.page_name), self.state.event_validation(self.page_name)

    def years(self) -> list[str]:
        now = datetime.now(CHINA)
        last = now.year if now.month >= 8 else now.year - 1
        return [f"{y}-{y + 1}" for y in range(FIRST_YEAR, last + 1)]

    def current(self) -> tuple[str, str]:
        now = datetime.now(CHINA)
        year = now.year if now.month >= 8 else now.year - 1
        term = pages.TERM_NAMES[0] if now.month >= 8 or now.month == 1 else pages.TERM_NAMES[1]
        return f"{year}-{year + 1}", term

    def posted_term(self, variant: Variant) -> tuple[str, str, int, int] | None:
        """The posted year and term (both field pairs); None after answering the error
        ASP.NET gives for a value its select did not offer."""
        year, term = self.arg("dlstXndZ"), self.arg("dlstNdxq")
        found = _YEAR.match(year)
        ok = (
            found is not None
            and year in self.years()
            and term in pages.TERM_NAMES
            and self.arg("dlstXndZ0") in ("", year)
            and self.arg("dlstNdxq0") in ("", term)
        )
        if not ok or found is None:
            self.invalid_postback(variant)
            return None
        return year, term, int(found[1]), pages.TERM_NAMES.index(term) + 1

    def posted_query(self) -> PostedQuery | None:
        """A query form's postback: the student's session and the term asked for; None
        after answering (the login redirect, or ASP.NET's error)."""
        found = self.student()
        if found is None or not self.postback_ok(self.variant(found[1])):
            return None
        posted = self.posted_term(self.variant(found[1]))
        if posted is None:
            return None
        year_text, term_text, year, term = posted
        return PostedQuery(
            found[0], found[1], year_text, term_text, year, term, self.variant(found[1])
        )

    def term_data(self, stuid: str, year: int, term: int) -> TermData:
        return self.state.dataset.term(stuid, year, term)


class LoginHandler(OfficeHandler):
    """login.aspx."""

    page_name = "login"
    latency_kind = "login"

    def get(self) -> None:
        sess = self.session()
        variant = self.variant(sess.stuid)
        self.html(pages.login_page(*self.forms(), variant=variant), variant=variant)

    def post(self) -> None:
        state = self.state
        sess = self.session()
        stuid = self.arg("txtYHBS").strip()
        # The refusal is written in the variant of the student named.
        variant = self.variant(stuid)
        if not self.postback_ok(variant):
            return
        captcha, sess.captcha = sess.captcha, None
        typed = self.arg("txtFJM")
        if state.faults["wrong_captcha"] > 0:
            state.faults["wrong_captcha"] -= 1
            captcha = None
        # Guess: the captcha is compared case-sensitively, and is used up by one try.
        if captcha is None or typed != captcha:
            state.captcha_wrong += 1
            state.stats.logins_failed += 1
            self.html(
                pages.login_page(*self.forms(), pages.WRONG_CAPTCHA, variant), variant=variant
            )
            return
        if not exists(stuid):
            state.stats.logins_failed += 1
            self.html(pages.login_page(*self.forms(), pages.NO_USER, variant), variant=variant)
            return
        if self.arg("txtYHMM") != state.dataset.password(stuid):
            state.stats.logins_failed += 1
            self.html(
                pages.login_page(*self.forms(), pages.WRONG_PASSWORD, variant), variant=variant
            )
            return
        sess.stuid = stuid
        sess.reports.clear()
        state.stats.logins_ok += 1
        self.redirect(f"{self.prefix}Secure/default.aspx")


class CaptchaHandler(OfficeHandler):
    """ValidateCode.aspx: a new captcha, remembered by the session."""

    def get(self) -> None:
        sess = self.session()
        png, text = render_captcha(self.state.rng)
        sess.captcha = text
        self.state.captcha_fetches += 1
        self.set_header("Content-Type", "image/png")
        self.set_header("Cache-Control", "no-cache")
        self.finish(png)


class HomeHandler(OfficeHandler):
    """Secure/default.aspx: the frame set a login leads to."""

    def get(self) -> None:
        if self.student() is None:
            return
        variant = self.variant()
        self.html(pages.home_page(variant), variant=variant)


class MenuHandler(OfficeHandler):
    """Secure/top.aspx and Secure/main.aspx."""

    def get(self) -> None:
        if self.student() is None:
            return
        variant = self.variant()
        self.html(pages.menu_page(variant), variant=variant)


class TimetableHandler(OfficeHandler):
    """Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx: the query form; its answer, the DataGrid."""

    page_name = "xk_maincx"

    def get(self) -> None:
        found = self.student()
        if found is None:
            return
        year, term = self.current()
        variant = self.variant(found[1])
        self.html(
            pages.timetable_page(*self.forms(), self.years(), year, term, None, variant),
            variant=variant,
        )

    def post(self) -> None:
        q = self.posted_query()
        if q is None:
            return
        if "bthSearch" not in self.request.body_arguments:
            # Another button (or none): the form again, without results.
            self.html(
                pages.timetable_page(
                    *self.forms(), self.years(), q.year_text, q.term_text, None, q.variant
                ),
                variant=q.variant,
            )
            return
        data = self.term_data(q.stuid, q.year, q.term)
        self.html(
            pages.timetable_page(
                *self.forms(), self.years(), q.year_text, q.term_text, data.courses, q.variant
            ),
            variant=q.variant,
        )


class ExamsHandler(OfficeHandler):
    """Secure/PaiKeXuanKe/wfrm_xk_StudentKcb.aspx: its exam button answers with an iframe."""

    page_name = "xk_studentkcb"

    def get(self) -> None:
        found = self.student()
        if found is None:
            return
        year, term = self.current()
        variant = self.variant(found[1])
        self.html(
            pages.exams_form_page(*self.forms(), self.years(), year, term, variant=variant),
            variant=variant,
        )

    def post(self) -> None:
        q = self.posted_query()
        if q is None:
            return
        frame = ""
        if self.arg("btnExpKsb") == "导出或打印考试安排表":
            reports = q.session.reports
            key = f"{self.state.rng.getrandbits(40):010x}"
            reports[key] = (q.year, q.term)
            while len(reports) > MAX_REPORTS:
                reports.popitem(last=False)
            # Relative to this page, as the real one (evidence: 2013 lost its session by
            # resolving it against another host).
            frame = f"../../Reports/KsbFrame.aspx?key={key}"
        self.html(
            pages.exams_form_page(
                *self.forms(), self.years(), q.year_text, q.term_text, frame, q.variant
            ),
            variant=q.variant,
        )


class ReportFrameHandler(OfficeHandler):
    """Reports/KsbFrame.aspx: the frame set; the data is in its second frame."""

    def get(self) -> None:
        found = self.student()
        if found is None:
            return
        key = self.get_query_argument("key", "")
        variant = self.variant(found[1])
        self.html(
            pages.report_frameset("KsbToolbar.aspx", f"KsbContent.aspx?key={quote(key)}", variant),
            variant=variant,
        )


class ReportToolbarHandler(OfficeHandler):
    def get(self) -> None:
        found = self.student()
        if found is None:
            return
        variant = self.variant(found[1])
        self.html(pages.report_toolbar(variant), variant=variant)


class ReportContentHandler(OfficeHandler):
    """Reports/KsbContent.aspx: the exam schedule in DIV.r11 blocks."""

    def get(self) -> None:
        found = self.student()
        if found is None:
            return
        sess, stuid = found
        variant = self.variant(stuid)
        asked = sess.reports.get(self.get_query_argument("key", ""))
        if asked is None:
            self.html(
                pages.aspnet_error("报表已过期", "The report is no longer available.", variant),
                500,
                variant,
            )
            return
        year, term = asked
        data = self.term_data(stuid, year, term)
        self.html(
            pages.report_content(
                f"{year}-{year + 1}", pages.TERM_NAMES[term - 1], data.exams, variant
            ),
            variant=variant,
        )


class GradesHandler(OfficeHandler):
    """Secure/Cjgl/Cjgl_Cjcx_XsCjcx.aspx (guess): the grade list of a term."""

    page_name = "cjgl_xscjcx"

    def get(self) -> None:
        found = self.student()
        if found is None:
            return
        year, term = self.current()
        variant = self.variant(found[1])
        self.html(
            pages.grades_page(*self.forms(), self.years(), year, term, None, variant),
            variant=variant,
        )

    def post(self) -> None:
        q = self.posted_query()
        if q is None:
            return
        data = self.term_data(q.stuid, q.year, q.term)
        self.html(
            pages.grades_page(
                *self.forms(), self.years(), q.year_text, q.term_text, data.grades, q.variant
            ),
            variant=q.variant,
        )


class ProfileHandler(OfficeHandler):
    """Secure/Xjgl/...: the student-profile pages, counted (a client must never ask)."""

    def get(self, *args: str) -> None:
        self.state.profile_fetches += 1
        found = self.student()
        if found is None:
            return
        variant = self.variant(found[1])
        self.html(pages.profile_page(variant), variant=variant)

    def post(self, *args: str) -> None:
        self.get()


class NotFoundHandler(OfficeHandler):
    def get(self, *args: str) -> None:
        variant = self.variant()
        self.html(pages.not_found(variant), 404, variant)

    def post(self, *args: str) -> None:
        self.get()


# --- /__sim/academic/ side endpoints ---------------------------------------------------


class AcademicSimHandler(SimHandler):
    state: AcademicState


class StudentHandler(AcademicSimHandler):
    """GET /__sim/academic/students/<stuid>?year=2012&term=1: the truth of a term."""

    def get(self, stuid: str) -> None:
        if not exists(stuid):
            self.send({"error": f"no such student {stuid}"}, 404)
            return
        try:
            year = int(self.get_query_argument("year", "2012"))
            term = int(self.get_query_argument("term", "1"))
        except ValueError:
            self.send({"error": "year and term must be integers"}, 400)
            return
        if term not in (1, 2) or not 2000 <= year <= 2100:
            self.send({"error": "term is 1 or 2, year 2000..2100"}, 400)
            return
        data = self.state.dataset.term(stuid, year, term)
        self.send(
            {
                "stuid": stuid,
                "password_is_default": self.state.dataset.password(stuid) == stuid[-6:],
                "year": year,
                "term": term,
                "courses": [_course_json(c) for c in data.courses],
                "exams": [
                    {
                        "date": e.date.isoformat(),
                        "start": e.start,
                        "end": e.end,
                        "place": e.place,
                        "course_name": e.name,
                        "course_id": e.course_id,
                    }
                    for e in data.exams
                ],
                "grades": [
                    {
                        "code": g.code,
                        "name": g.name,
                        "category": g.category,
                        "score": g.score,
                        "credits": g.credits,
                        "grade_points": g.grade_points,
                        "remarks": g.remarks,
                    }
                    for g in data.grades
                ],
            }
        )


def _course_json(course: Any) -> dict[str, Any]:
    return {
        "course_id": course.course_id,
        "name": course.name,
        "class_id": course.class_id,
        "credits": course.credits,
        "category": course.category,
        "teacher": course.teacher,
        "schedule": course.schedule,
        "place": course.place,
        "remarks": course.remarks,
        "stage": course.stage,
        "exam_time": course.exam_time,
        "meetings": [
            {
                "weeks": list(s.weeks),
                "weekday": s.weekday,
                "periods": list(s.periods),
                "place": s.place,
                "text": s.text,
            }
            for s in course.segments
            if s.weeks
        ],
        "unparsed": [s.text for s in course.segments if not s.weeks],
    }


class PasswordHandler(AcademicSimHandler):
    """POST /__sim/academic/students/<stuid>/password {"password": "..."}."""

    def post(self, stuid: str) -> None:
        data = self.body()
        if data is None:
            return
        if not exists(stuid):
            self.send({"error": f"no such student {stuid}"}, 404)
            return
        password = data.get("password")
        if not isinstance(password, str) or not 1 <= len(password) <= 32:
            self.send({"error": "password must be 1..32 characters"}, 400)
            return
        try:
            self.state.dataset.set_password(stuid, password)
        except ValueError as exc:
            self.send({"error": str(exc)}, 409)
            return
        self.send({"ok": True})


class FaultsHandler(AcademicSimHandler):
    """POST /__sim/academic/faults {"wrong_captcha": N, "stale_viewstate": N, "rotate_key":
    true, "expire_sessions": true}: faults for the next requests."""

    def post(self) -> None:
        data = self.body()
        if data is None:
            return
        state = self.state
        for name in state.faults:
            if name in data:
                value = data[name]
                if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
                    self.send({"error": f"{name} must be an integer 0..1000"}, 400)
                    return
                state.faults[name] = value
        if data.get("rotate_key") is True:
            state.rotate_key()
        if data.get("expire_sessions") is True:
            state.sessions.clear()
        self.send({"ok": True, "faults": dict(state.faults)})


class TermChangeHandler(AcademicSimHandler):
    """Base of the endpoints that change a student's term: the student and the term
    named by the body's `year` and `term` (2012 and 1 by default)."""

    def changed_term(self, stuid: str) -> tuple[dict[str, Any], int, int, TermData] | None:
        """The body, year, term and the term's data now; None after answering an error."""
        data = self.body()
        if data is None:
            return None
        if not exists(stuid):
            self.send({"error": f"no such student {stuid}"}, 404)
            return None
        year, term = data.get("year", 2012), data.get("term", 1)
        if not isinstance(year, int) or not isinstance(term, int):
            self.send({"error": "year and term must be integers"}, 400)
            return None
        if term not in (1, 2) or not 2000 <= year <= 2100:
            self.send({"error": "term is 1 or 2, year 2000..2100"}, 400)
            return None
        return data, year, term, self.state.dataset.term(stuid, year, term)

    def keep(self, stuid: str, year: int, term: int, changed: TermData) -> None:
        try:
            self.state.dataset.change(stuid, year, term, changed)
        except ValueError as exc:
            self.send({"error": str(exc)}, 409)
            return
        self.send({"ok": True})


def _text(data: dict[str, Any], name: str, default: str | None = None, most: int = 40) -> str:
    """A short text field of a side endpoint's body (ValueError naming it if not one)."""
    value = data.get(name, default)
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise ValueError(f"{name} must be a text of 1..{most} characters")
    return value


class GradeChangeHandler(TermChangeHandler):
    """POST /__sim/academic/students/<stuid>/grade {"year", "term", "code", "score",
    "name"?, "credits"?}: post a grade (a course's grade replaced, or a new one)."""

    def post(self, stuid: str) -> None:
        found = self.changed_term(stuid)
        if found is None:
            return
        data, year, term, now = found
        try:
            code = _text(data, "code")
            score = _text(data, "score", most=8)
            old = next((g for g in now.grades if g.code == code), None)
            name = _text(data, "name", old.name if old is not None else None)
            credits = _text(data, "credits", old.credits if old is not None else "2.0", 8)
        except ValueError as exc:
            self.send({"error": str(exc)}, 400)
            return
        if old is not None:
            grade = replace(old, name=name, score=score, credits=credits)
            grades = tuple(grade if g.code == code else g for g in now.grades)
        else:
            grades = (*now.grades, SimGrade(code, name, "必修", score, credits, "", ""))
        self.keep(stuid, year, term, replace(now, grades=grades))


class ExamChangeHandler(TermChangeHandler):
    """POST /__sim/academic/students/<stuid>/exam {"year", "term", "date": "2026-12-08",
    "start": "09:00", "end": "11:00", "place", "course_name", "course_id"}: add an exam."""

    def post(self, stuid: str) -> None:
        found = self.changed_term(stuid)
        if found is None:
            return
        data, year, term, now = found
        try:
            day = date.fromisoformat(_text(data, "date", most=10))
            start = _text(data, "start", most=5)
            end = _text(data, "end", most=5)
            if not (re.fullmatch(r"\d\d:\d\d", start) and re.fullmatch(r"\d\d:\d\d", end)):
                raise ValueError("start and end are HH:MM")
            exam = SimExam(
                day,
                start,
                end,
                _text(data, "place"),
                _text(data, "course_name"),
                _text(data, "course_id", most=20),
            )
        except ValueError as exc:
            self.send({"error": str(exc)}, 400)
            return
        self.keep(stuid, year, term, replace(now, exams=(*now.exams, exam)))


class TimetableChangeHandler(TermChangeHandler):
    """POST /__sim/academic/students/<stuid>/timetable {"year", "term", "place",
    "course_id"?}: a course (the first, or the one named) moves to another room."""

    def post(self, stuid: str) -> None:
        found = self.changed_term(stuid)
        if found is None:
            return
        data, year, term, now = found
        try:
            place = _text(data, "place")
            course_id = data.get("course_id")
            if course_id is not None and not isinstance(course_id, str):
                raise ValueError("course_id must be a text")
        except ValueError as exc:
            self.send({"error": str(exc)}, 400)
            return
        target = next(
            (c for c in now.courses if course_id is None or c.course_id == course_id), None
        )
        if target is None:
            self.send({"error": "no such course this term"}, 404)
            return
        moved = replace(
            target,
            place=place,
            schedule=target.schedule.replace(target.place, place) if target.place else place,
            segments=tuple(replace(s, place=place) for s in target.segments),
        )
        courses = tuple(moved if c is target else c for c in now.courses)
        self.keep(stuid, year, term, replace(now, courses=courses))


def routes(prefix: str, state: SystemState) -> list[Rule]:
    """The office's pages under prefix (paths case-insensitive, as IIS's) and its extra
    side endpoints."""
    s: dict[str, Any] = {"state": state, "prefix": prefix}
    side: dict[str, Any] = {"state": state}
    base = prefix.rstrip("/")
    stu = r"/__sim/academic/students/([^/]+)"

    def page(path: str) -> str:
        return base + "/(?i:" + path + ")"

    return [
        (stu, StudentHandler, side),
        (stu + "/password", PasswordHandler, side),
        (stu + "/grade", GradeChangeHandler, side),
        (stu + "/exam", ExamChangeHandler, side),
        (stu + "/timetable", TimetableChangeHandler, side),
        (r"/__sim/academic/faults", FaultsHandler, side),
        (page(r"login\.aspx"), LoginHandler, s),
        (page(r"validatecode\.aspx"), CaptchaHandler, s),
        (page(r"secure/default\.aspx"), HomeHandler, s),
        (page(r"secure/(?:top|main)\.aspx"), MenuHandler, s),
        (page(r"secure/paikexuanke/wfrm_xk_maincx\.aspx"), TimetableHandler, s),
        (page(r"secure/paikexuanke/wfrm_xk_studentkcb\.aspx"), ExamsHandler, s),
        (page(r"reports/ksbframe\.aspx"), ReportFrameHandler, s),
        (page(r"reports/ksbtoolbar\.aspx"), ReportToolbarHandler, s),
        (page(r"reports/ksbcontent\.aspx"), ReportContentHandler, s),
        (page(r"secure/cjgl/cjgl_cjcx_xscjcx\.aspx"), GradesHandler, s),
        (page(r"secure/xjgl/.*"), ProfileHandler, s),
        (base + r"/.*", NotFoundHandler, s),
    ]


def mount(profile: str, settings: SimSettings) -> Mount:
    """The academic office under /jwc/, with its own state and overload layer."""
    return Mount(NAME, PREFIX, AcademicState(profile, settings), routes)
