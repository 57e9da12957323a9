"""/v1/timetable, /v1/exams, /v1/grades (and their .ics feeds), and calendar feed tokens.

`?year=&term=` name the term (2026 = 2026-2027, term 1 or 2); without them,
the current term of `campus.terms`. Credentials are the academic office's
(HTTP Basic, a student's Bearer token, or a POST body). Weeks are lists, times
`HH:MM` campus time by the `campus.periods` table, dates ISO.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from email.utils import formatdate
from typing import Any

from api.answers.academic import (
    Course,
    Exam,
    Exams,
    FeedToken,
    Grade,
    Grades,
    Meeting,
    Timetable,
)
from handlers.base import CrossOriginReads
from handlers.v1 import V1Handler
from services import codes
from services.calendar import (
    Events,
    calendar,
    class_events,
    exam_events,
    feed_name,
    stamp_of,
)
from services.campus import CampusCalendar, Term
from services.credentials import Credentials
from services.errors import BadInput, NotConfigured, StorageUnavailable
from services.pipeline import Answer
from services.tokens import FEEDS, Feed, TokenStore
from systems.academic.models import Course as OfficeCourse
from systems.academic.models import Exam as OfficeExam
from systems.academic.models import Grade as OfficeGrade
from systems.academic.models import Meeting as CourseMeeting
from systems.academic.models import Timetable as OfficeTimetable
from systems.academic.service import AcademicService


def term_fields(term: Term, calendar: CampusCalendar) -> dict[str, Any]:
    """The fields of api/answers/academic.py's TermFields: which term, and when it starts."""
    return {
        "year": term.year,
        "term": term.term,
        "term_name": term.label,
        "term_starts": calendar.starts(term),
    }


def clock(moment: time) -> str:
    return f"{moment:%H:%M}"


def decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def v1_meeting(meeting: CourseMeeting, calendar: CampusCalendar) -> Meeting:
    span = calendar.span(meeting.periods)
    return Meeting(
        weeks=list(meeting.weeks),
        weekday=meeting.weekday,
        periods=list(meeting.periods),
        starts=None if span is None else clock(span[0]),
        ends=None if span is None else clock(span[1]),
        place=meeting.place,
        text=meeting.text,
    )


def v1_course(course: OfficeCourse, calendar: CampusCalendar) -> Course:
    return Course(
        id=course.course_id,
        name=course.name,
        class_=course.class_id,
        credits=decimal_text(course.credits),
        category=course.category,
        teacher=course.teacher,
        meetings=[v1_meeting(m, calendar) for m in course.meetings],
        unparsed=list(course.unparsed),
        schedule=course.schedule,
        place=course.place,
        remarks=course.remarks,
    )


def v1_exam(exam: OfficeExam) -> Exam:
    return Exam(
        course_id=exam.course_id,
        course_name=exam.course_name,
        date=exam.date,
        starts=clock(exam.start),
        ends=clock(exam.end),
        starts_at=exam.starts_at,
        ends_at=exam.ends_at,
        place=exam.place,
    )


def v1_grade(grade: OfficeGrade) -> Grade:
    return Grade(
        course_id=grade.code,
        course_name=grade.name,
        category=grade.category,
        score=grade.score_text,
        score_value=decimal_text(grade.score),
        credits=decimal_text(grade.credits),
        grade_points=decimal_text(grade.grade_points),
        remarks=grade.remarks,
    )


class V1AcademicHandler(V1Handler):
    def academic(self) -> AcademicService:
        if self.deps.academic is None:
            raise NotConfigured("the academic office is not configured here")
        return self.deps.academic

    def tokens(self) -> TokenStore:
        if self.deps.tokens is None:
            raise NotConfigured("calendar feeds are not configured here")
        return self.deps.tokens

    def asked_term(self, academic: AcademicService) -> Term:
        return academic.term(self.param("year"), self.param("term"))

    async def academic_credentials(self) -> Credentials:
        return await self.credentials("academic")


class TimetableHandler(V1AcademicHandler):
    async def get(self) -> None:
        academic = self.academic()
        creds = await self.academic_credentials()
        term = self.asked_term(academic)
        answer = await academic.timetable(creds, term, self.caller(), self.wants_fresh())
        body = Timetable(
            **self.about(creds, answer),
            **term_fields(term, academic.calendar),
            courses=[v1_course(c, academic.calendar) for c in answer.value.courses],
        )
        self.write_answer(answer, body)

    post = get


class ExamsHandler(V1AcademicHandler):
    async def get(self) -> None:
        academic = self.academic()
        creds = await self.academic_credentials()
        term = self.asked_term(academic)
        answer = await academic.exams(creds, term, self.caller(), self.wants_fresh())
        exams = sorted(answer.value, key=lambda e: (e.date, e.start))
        body = Exams(
            **self.about(creds, answer),
            **term_fields(term, academic.calendar),
            exams=[v1_exam(e) for e in exams],
        )
        self.write_answer(answer, body)

    post = get


class GradesHandler(V1AcademicHandler):
    async def get(self) -> None:
        academic = self.academic()
        creds = await self.academic_credentials()
        term = self.asked_term(academic)
        answer = await academic.grades(creds, term, self.caller(), self.wants_fresh())
        gpa = academic.gpa(answer.value)
        body = Grades(
            **self.about(creds, answer),
            **term_fields(term, academic.calendar),
            grades=[v1_grade(g) for g in answer.value],
            gpa=decimal_text(gpa),
        )
        self.write_answer(answer, body)

    post = get


# Calendar feeds -----------------------------------------------------------------------------


class IcsMixin(V1AcademicHandler):
    def write_ics(
        self,
        name: str,
        student_id: str,
        feed: Feed,
        term: Term,
        timetable: Answer[OfficeTimetable] | None,
        exams: Answer[list[OfficeExam]] | None,
    ) -> None:
        """The feed, built once per change of what it shows (services.calendar.FeedCache),
        with its ETag: `304 Not Modified` to a calendar app that already has it."""
        academic = self.academic()
        refresh = academic.feed_refresh_s
        shown = [a for a in (timetable, exams) if a is not None]
        key = (name, student_id, feed, term.key, *(a.as_of for a in shown), refresh)
        built = self.deps.feed_cache.get(
            key,
            lambda: calendar(
                name,
                feed_parts(feed, student_id, term, academic.calendar, timetable, exams),
                refresh,
                academic.calendar.feed_language,
            ),
        )
        newest = max(a.as_of for a in shown)
        self.mark_answer(min(shown, key=lambda a: a.as_of))
        self.set_header("Cache-Control", self.feed_cache_control(refresh))
        self.set_header("ETag", built.etag)
        self.set_header("Last-Modified", formatdate(newest.timestamp(), usegmt=True))
        if built.etag in etags(self.header("If-None-Match", "")):
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Type", "text/calendar; charset=utf-8")
        self.set_header("Content-Disposition", 'inline; filename="jnufm.ics"')
        self.finish(built.body)

    def feed_cache_control(self, refresh_s: int) -> str:
        """A feed read with the password: calendar apps may keep it, and must ask again
        before they use it."""
        return "private, no-cache"


def etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header (weak ones compared by their value)."""
    if header.strip() == "*":
        return {"*"}
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def feed_parts(
    feed: Feed,
    student_id: str,
    term: Term,
    calendar: CampusCalendar,
    timetable: Answer[OfficeTimetable] | None,
    exams: Answer[list[OfficeExam]] | None,
) -> list[Events]:
    parts = []
    lang = calendar.feed_language
    if timetable is not None and feed in ("all", "timetable"):
        stamp = stamp_of(timetable.as_of)
        parts.append(class_events(student_id, term, timetable.value, calendar, stamp, lang))
    if exams is not None and feed in ("all", "exams"):
        parts.append(exam_events(student_id, term, exams.value, stamp_of(exams.as_of), lang))
    return parts


class TimetableIcsHandler(IcsMixin):
    async def get(self) -> None:
        academic = self.academic()
        creds = await self.academic_credentials()
        term = self.asked_term(academic)
        answer = await academic.timetable(creds, term, self.caller(), self.wants_fresh())
        name = feed_name("timetable", term, academic.calendar.feed_language)
        self.write_ics(name, creds.student_id, "timetable", term, answer, None)

    post = get


class ExamsIcsHandler(IcsMixin):
    async def get(self) -> None:
        academic = self.academic()
        creds = await self.academic_credentials()
        term = self.asked_term(academic)
        answer = await academic.exams(creds, term, self.caller(), self.wants_fresh())
        name = feed_name("exams", term, academic.calendar.feed_language)
        self.write_ics(name, creds.student_id, "exams", term, None, answer)

    post = get


class CalendarTokensHandler(V1AcademicHandler):
    """POST: a new feed URL for the student's term (fetching the term's classes and exams
    once, so the feed has them)."""

    async def post(self) -> None:
        academic = self.academic()
        creds = await self.academic_credentials()
        term = self.asked_term(academic)
        asked = self.param("feed") or "all"
        feed = next((f for f in FEEDS if f == asked), None)
        if feed is None:
            raise BadInput(codes.INVALID_FEED, "feed is all, timetable or exams")
        await academic.term_events(creds, term, self.caller())
        client = self.caller().client
        token = await self.tokens().create_feed(
            creds.student_id,
            feed,
            term.year,
            term.term,
            academic.pipeline.attempt_of(creds),
            client.name if client is not None else "",
        )
        path = f"/v1/calendar/{token}.ics"
        self.set_header("Location", path)
        body = FeedToken(
            student_id=creds.student_id,
            **term_fields(term, academic.calendar),
            feed=feed,
            token=token,
            path=path,
            # The configured public URL: the Host header is the client's to write.
            url=f"{self.deps.public_url}{path}",
        )
        self.write_json(body, 201)


class CalendarFeedHandler(CrossOriginReads, IcsMixin):
    """GET: the feed a token opens, from stored answers only. DELETE: revoke the token
    (holding the URL is enough: whoever has it can read the feed anyway). The token in
    the URL is the only secret: a page of a listed origin may read the feed (CORS), and
    the reader's own cache may keep it for the feed's refresh interval."""

    rate_limited = True

    def feed_cache_control(self, refresh_s: int) -> str:
        return f"private, max-age={refresh_s}"

    async def get(self, token: str) -> None:
        academic = self.academic()
        found = await self.tokens().feed(token)
        term = Term(found.year, found.term)
        timetable, exams = await academic.stored_term(found.student_id, term)
        if (found.feed != "exams" and timetable is None) or (
            found.feed != "timetable" and exams is None
        ):
            raise StorageUnavailable("feed answers")
        self.write_ics(
            feed_name(found.feed, term, academic.calendar.feed_language),
            found.student_id,
            found.feed,
            term,
            timetable if found.feed != "exams" else None,
            exams if found.feed != "timetable" else None,
        )

    async def delete(self, token: str) -> None:
        if not await self.tokens().revoke_token(token, "feed"):
            raise BadInput(codes.UNKNOWN_TOKEN, "no such calendar feed (revoked or never made)")
        self.set_status(204)
        self.finish()
