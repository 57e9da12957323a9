"""The 2013 academic office endpoints: `/class/get` (timetable) and `/kaoshi/get` (exams).

GET or POST, with `user`, `password` (the academic office password), `year`
(2012 = 2012-2013) and `term` (1 or 2); without year and term, the current
term of `campus.terms`. Answers as 2013 wrote them, with `"version": 1.0`:

    /class/get  {"data": {"<course id>": {"class", "id", "name", "score", "type",
                 "teacher", "position", "more", "time": [{"week", "weekday", "node",
                 "position"}]}}, "version": 1.0}
    /kaoshi/get {"data": [{"date", "time", "place", "name", "id", "socre": 0,
                 "time-start", "time-end"}], "version": 1.0}

`week` keeps 2013's form: 16 characters of 0/1 for weeks 1 to 16 (a meeting
in later weeks shows only its first 16; /v1/timetable has them all). `socre`
is 2013's spelling, which old clients read. Schedule segments that could not
be read have no place in this shape: /v1/timetable lists them.
"""

from __future__ import annotations

from api.answers.academic import (
    LegacyCourse,
    LegacyExam,
    LegacyExams,
    LegacyMeeting,
    LegacyTimetable,
)
from api.answers.common import LEGACY_VERSION
from handlers.legacy import LegacyHandler
from services.credentials import Credentials
from services.errors import NotConfigured
from systems.academic.models import Course, Exam
from systems.academic.service import AcademicService

# The 2013 week string covers weeks 1..16.
LEGACY_WEEKS = 16


def legacy_week(weeks: tuple[int, ...]) -> str:
    taught = set(weeks)
    return "".join("1" if week in taught else "0" for week in range(1, LEGACY_WEEKS + 1))


def legacy_meetings(course: Course) -> list[LegacyMeeting]:
    return [
        LegacyMeeting(
            week=legacy_week(m.weeks),
            weekday=m.weekday,
            node=",".join(str(p) for p in m.periods),
            position=m.place,
        )
        for m in course.meetings
    ]


def legacy_timetable(courses: tuple[Course, ...]) -> LegacyTimetable:
    """Courses by id, as 2013 keyed them (a second row of the same course adds its times)."""
    meetings: dict[str, list[LegacyMeeting]] = {}
    first: dict[str, Course] = {}
    for course in courses:
        first.setdefault(course.course_id, course)
        meetings.setdefault(course.course_id, []).extend(legacy_meetings(course))
    data = {
        course_id: LegacyCourse(
            class_=course.class_id,
            id=course.course_id,
            name=course.name,
            score="" if course.credits is None else str(course.credits),
            type=course.category,
            teacher=course.teacher,
            position=course.place,
            more=course.remarks,
            time=meetings[course_id],
        )
        for course_id, course in first.items()
    }
    return LegacyTimetable(data=data, version=LEGACY_VERSION)


def legacy_exam_list(exams: list[Exam]) -> LegacyExams:
    data = [
        LegacyExam(
            date=exam.date,
            time=f"{exam.start:%H:%M}-{exam.end:%H:%M}",
            place=exam.place,
            name=exam.course_name,
            id=exam.course_id,
            socre=0,
            time_start=f"{exam.start:%H:%M}",
            time_end=f"{exam.end:%H:%M}",
        )
        for exam in exams
    ]
    return LegacyExams(data=data, version=LEGACY_VERSION)


class LegacyAcademicHandler(LegacyHandler):
    def academic(self) -> AcademicService:
        if self.deps.academic is None:
            raise NotConfigured("the academic office is not configured here")
        return self.deps.academic

    def credentials(self) -> Credentials:
        creds = Credentials.parse(
            self.get_argument("user", None), self.get_argument("password", None), "academic"
        )
        self.note_student(creds.student_id)
        return creds


class ClassHandler(LegacyAcademicHandler):
    async def get(self) -> None:
        academic = self.academic()
        creds = self.credentials()
        term = academic.term(self.get_argument("year", None), self.get_argument("term", None))
        answer = await academic.timetable(creds, term, self.caller(), self.wants_fresh())
        self.write_answer(answer, legacy_timetable(answer.value.courses))

    post = get


class ExamHandler(LegacyAcademicHandler):
    async def get(self) -> None:
        academic = self.academic()
        creds = self.credentials()
        term = academic.term(self.get_argument("year", None), self.get_argument("term", None))
        answer = await academic.exams(creds, term, self.caller(), self.wants_fresh())
        self.write_answer(answer, legacy_exam_list(answer.value))

    post = get
