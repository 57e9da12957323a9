"""Typed values the academic office client returns, and the grade point average.

Plain frozen dataclasses of str, int, Decimal, date, time and tuples, so that
services/storage.py keeps them as JSON (pydantic) and reads them back equal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

# Campus time; the office shows exam dates and times in it.
CHINA_TZ = timezone(timedelta(hours=8), "CST")

# Score texts that say a course was failed (guess: the office's words for grades
# that are not numbers; 及格/合格/优秀... pass).
FAILED_TEXTS = ("不及格", "不合格", "缺考", "作弊", "违纪", "旷考")
PASS_MARK = Decimal(60)


@dataclass(frozen=True, slots=True)
class AcademicSession:
    """A logged-in academic office session.

    `cookie` is the ASP.NET_SessionId value when that is the only cookie the
    office set (the usual case), else every cookie as a Cookie header value:
    one string either way, so it can be stored.
    """

    student_id: str
    # As good as the password while the session lives: keep it out of logs.
    cookie: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Meeting:
    """One schedule segment read: the weeks, weekday (1 = Monday) and periods it names."""

    weeks: tuple[int, ...]
    weekday: int
    periods: tuple[int, ...]
    place: str
    # The segment as the office wrote it, e.g. "双周(4-14)周二 - 7,8,9节".
    text: str


@dataclass(frozen=True, slots=True)
class Course:
    """One row of the timetable; `schedule` and `place` are the raw cells.

    Segments of the schedule that could not be read are kept, raw, in `unparsed`.
    """

    course_id: str
    name: str
    class_id: str
    credits: Decimal | None
    category: str
    teacher: str
    schedule: str
    place: str
    meetings: tuple[Meeting, ...]
    unparsed: tuple[str, ...]
    remarks: str
    stage: str
    exam_time: str


@dataclass(frozen=True, slots=True)
class Timetable:
    """A student's courses of one term (year 2012 = 2012-2013; term 1 or 2)."""

    year: int
    term: int
    courses: tuple[Course, ...]


@dataclass(frozen=True, slots=True)
class Exam:
    """One exam of the exam schedule, in campus time.

    Date and times are required: an entry the office shows without them (not
    yet scheduled) is left out by the parser, and logged.
    """

    # A module-qualified type: a field named `date` hides the class `date` in the
    # class body, where pydantic resolves the annotations.
    date: dt.date
    start: time
    end: time
    place: str
    course_name: str
    course_id: str

    @property
    def starts_at(self) -> datetime:
        """When it starts (aware, campus time)."""
        return datetime.combine(self.date, self.start, CHINA_TZ)

    @property
    def ends_at(self) -> datetime:
        """When it ends (aware, campus time)."""
        return datetime.combine(self.date, self.end, CHINA_TZ)


@dataclass(frozen=True, slots=True)
class Grade:
    """One row of the grade list; `score` is None when the office shows a word (优秀, 缺考)."""

    code: str
    name: str
    category: str
    score_text: str
    score: Decimal | None
    credits: Decimal | None
    grade_points: Decimal | None
    remarks: str

    @property
    def failed(self) -> bool:
        """A failing grade: a number under 60, a failing word, or zero grade points."""
        if self.score is not None and self.score < PASS_MARK:
            return True
        if any(word in self.score_text for word in FAILED_TEXTS):
            return True
        return self.grade_points is not None and self.grade_points == 0


@dataclass(frozen=True, slots=True)
class GpaRule:
    """How a grade point average is computed from a grade list."""

    # The 学分绩点 cell already holds credits x grade point (the 2013 grade list's
    # figure); False: it holds the grade point alone.
    points_include_credits: bool = True
    # Failed courses count (with their credits and zero or few points).
    count_failed: bool = True
    # Only these course categories count; None: all.
    categories: frozenset[str] | None = None
    # Decimal places of the result.
    places: int = 2


def grade_point_average(grades: Iterable[Grade], rule: GpaRule) -> Decimal | None:
    """Credit-weighted grade points over the grades that have both points and credits.

    None when no grade counts (nothing to average).
    """
    points = Decimal(0)
    credits = Decimal(0)
    for grade in grades:
        if grade.grade_points is None or grade.credits is None or grade.credits <= 0:
            continue
        if rule.categories is not None and grade.category not in rule.categories:
            continue
        if not rule.count_failed and grade.failed:
            continue
        weighted = grade.grade_points
        if not rule.points_include_credits:
            weighted = grade.grade_points * grade.credits
        points += weighted
        credits += grade.credits
    if credits == 0:
        return None
    quantum = Decimal(1).scaleb(-rule.places)
    return (points / credits).quantize(quantum, rounding=ROUND_HALF_UP)
