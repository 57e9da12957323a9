"""The academic office's answers: the 2013 shapes (/class/get, /kaoshi/get), /v1/'s timetable,
exams and grades, and a calendar feed's token."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from api.answers.common import (
    AnswerModel,
    Clock,
    Day,
    DecimalText,
    LegacyVersion,
    Moment,
    StudentAnswer,
    StudentId,
)

Weekday = Annotated[int, Field(ge=1, le=7)]
Period = Annotated[int, Field(ge=1)]
Feed = Literal["all", "timetable", "exams"]
TermStart = Annotated[Day, Field(description="Monday of week 1 (campus.terms)")]
Gpa = Annotated[DecimalText, Field(description="by the rule of school.academic.gpa")]

# --- 2013 ------------------------------------------------------------------------------------


# One meeting of a 2013 course.
class LegacyMeeting(AnswerModel):
    week: str = Field(description="weeks 1-16, one 0/1 character each", pattern=r"^[01]{16}$")
    weekday: Weekday
    node: str = Field(description='the class periods, e.g. "3,4"')
    position: str


class LegacyCourse(AnswerModel):
    class_: str = Field(alias="class", description="the class (teaching group) id")
    id: str = Field(description="the course id")
    name: str
    score: str = Field(description='credits, as text ("" when unknown)')
    type: str = Field(description="category")
    teacher: str
    position: str = Field(description="place")
    more: str = Field(description="remarks")
    time: list[LegacyMeeting]


class LegacyTimetable(AnswerModel):
    data: dict[str, LegacyCourse] = Field(description="courses by course id")
    version: LegacyVersion


class LegacyExam(AnswerModel):
    date: Day
    time: str = Field(description="HH:MM-HH:MM")
    place: str
    name: str = Field(description="course name")
    id: str = Field(description="course id")
    socre: Literal[0] = Field(description="2013's spelling, always 0")
    time_start: Clock = Field(alias="time-start")
    time_end: Clock = Field(alias="time-end")


class LegacyExams(AnswerModel):
    data: list[LegacyExam]
    version: LegacyVersion


# --- /v1/ ------------------------------------------------------------------------------------


class TermFields(AnswerModel):
    """The term an answer is about (year 2026 = 2026-2027)."""

    year: int = Field(description="the academic year's first year")
    term: int = Field(ge=1, le=2)
    term_name: str = Field(description='e.g. "2026-2027 term 1"')
    term_starts: TermStart | None


class TermAnswer(TermFields, StudentAnswer):
    """A /v1/ answer about a student's term: the envelope, then the term."""


class Meeting(AnswerModel):
    weeks: list[Period]
    weekday: Weekday = Field(description="1 = Monday")
    periods: list[Period]
    starts: Clock | None
    ends: Clock | None
    place: str
    text: str = Field(description="the schedule segment as the office wrote it")


class Course(AnswerModel):
    id: str
    name: str
    class_: str = Field(alias="class")
    credits: DecimalText | None
    category: str
    teacher: str
    meetings: list[Meeting]
    unparsed: list[str] = Field(
        description="schedule text that could not be read: kept, never dropped"
    )
    schedule: str
    place: str
    remarks: str


class Timetable(TermAnswer):
    courses: list[Course]


class Exam(AnswerModel):
    course_id: str
    course_name: str
    date: Day
    starts: Clock
    ends: Clock
    starts_at: Moment
    ends_at: Moment
    place: str


class Exams(TermAnswer):
    exams: list[Exam]


class Grade(AnswerModel):
    course_id: str
    course_name: str
    category: str
    score: str = Field(description="as written: 95, 优秀")
    score_value: DecimalText | None
    # null when the office's row shows no credits.
    credits: DecimalText | None
    grade_points: DecimalText | None
    remarks: str


class Grades(TermAnswer):
    grades: list[Grade]
    gpa: Gpa | None


class StudentNamed(AnswerModel):
    student_id: StudentId


# A calendar feed's URL: whose, which term, which feed (no freshness: nothing was read).
class FeedToken(TermFields, StudentNamed):
    feed: Feed
    token: str = Field(description="256 random bits, base64url", pattern=r"^[A-Za-z0-9_-]{20,64}$")
    path: str
    url: str = Field(json_schema_extra={"format": "uri"})


MODELS = (
    LegacyTimetable,
    LegacyExams,
    Timetable,
    Exams,
    Grades,
    FeedToken,
)
