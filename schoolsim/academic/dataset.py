"""The simulated academic office's students: courses, exams and grades of every term,
deterministic by (seed, student, year, term).

A student exists as at the card center (schoolsim/card/dataset.py: a 10-digit
number 2000xxxxxx..2019xxxxxx) and has courses in every term from the year of
the number's first four digits on. Schedules use every form the evidence shows
(docs/academic-office-protocol.md), weeks past 16, several segments with `;`,
and now and then a segment the office writes in words (unparsable on purpose).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

from schoolsim.card.dataset import default_password, exists

__all__ = ["Dataset", "SimCourse", "SimExam", "SimGrade", "default_password", "exists"]

# (course id, name, category, credits)
CATALOGUE: tuple[tuple[str, str, str, str], ...] = (
    ("0801001", "高等数学(一)", "必修", "5.0"),
    ("0801002", "线性代数", "必修", "3.0"),
    ("0801003", "概率论与数理统计", "必修", "3.0"),
    ("0802011", "大学英语(二)", "必修", "4.0"),
    ("0802012", "大学物理", "必修", "4.0"),
    ("0803101", "数据结构", "专业必修", "4.0"),
    ("0803102", "操作系统", "专业必修", "3.5"),
    ("0803103", "计算机网络", "专业必修", "3.0"),
    ("0803104", "数据库原理", "专业必修", "3.0"),
    ("0803201", "编译原理", "专业选修", "3.0"),
    ("0803202", "人工智能导论", "专业选修", "2.0"),
    ("0804001", "中国近现代史纲要", "公共必修", "2.0"),
    ("0804002", "马克思主义基本原理", "公共必修", "3.0"),
    ("0805001", "体育(二)", "公共必修", "1.0"),
    ("0806001", "大学语文", "通识选修", "2.0"),
    ("0806002", "音乐欣赏", "通识选修", "1.5"),
    ("0806003", "心理健康教育", "通识选修", "1.0"),
    ("0807001", "经济学原理", "通识选修", "2.0"),
)
TEACHERS = ("王建国", "李秀英", "张伟", "刘洋", "陈静", "杨帆", "黄敏", "赵磊", "周婷", "吴强")
BUILDINGS = ("第一教学楼", "第二教学楼", "第三教学楼", "理工楼", "图书馆", "体育馆")
PERIOD_SETS = ("1,2", "3,4", "5,6", "7,8", "9,10,11", "7,8,9", "3,4,5")
WEEKDAY_NAMES = "一二三四五六日"
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"
# Segments the office writes in words (guess): kept unparsed by a client.
WORDS = ("另行安排", "周二 - 待定", "实践周(集中)")
EXAM_SLOTS = (("09:00", "11:00"), ("14:30", "16:30"), ("19:00", "21:00"))
SCORE_WORDS = ("优秀", "良好", "中等", "及格", "合格", "不及格", "缺考")
WORD_POINTS = {
    "优秀": "4.5",
    "良好": "3.5",
    "中等": "2.5",
    "及格": "1.5",
    "不及格": "0",
    "缺考": "0",
}
TERM_WEEKS = 16


@dataclass(frozen=True, slots=True)
class Segment:
    """One schedule segment and what it means (weeks empty: unparsable)."""

    text: str
    weeks: tuple[int, ...]
    weekday: int
    periods: tuple[int, ...]
    place: str


@dataclass(frozen=True, slots=True)
class SimCourse:
    class_id: str
    course_id: str
    name: str
    credits: str
    hours: str
    category: str
    schedule: str
    teacher: str
    place: str
    remarks: str
    stage: str
    exam_time: str
    segments: tuple[Segment, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class SimExam:
    date: date
    start: str
    end: str
    place: str
    name: str
    course_id: str


@dataclass(frozen=True, slots=True)
class SimGrade:
    code: str
    name: str
    category: str
    score: str
    credits: str
    grade_points: str
    remarks: str


@dataclass(frozen=True, slots=True)
class TermData:
    courses: tuple[SimCourse, ...]
    exams: tuple[SimExam, ...]
    grades: tuple[SimGrade, ...]


def term_start(year: int, term: int) -> date:
    """The Monday of teaching week 1 (guess: early September, late February)."""
    day = date(year, 9, 1) if term == 1 else date(year + 1, 2, 20)
    return day + timedelta(days=(7 - day.weekday()) % 7)


def _segment(rng: random.Random, place: str) -> Segment:
    day = rng.randint(1, 5)
    periods = rng.choice(PERIOD_SETS)
    tail = f"周{WEEKDAY_NAMES[day - 1]} - {periods}节"
    numbers = tuple(int(p) for p in periods.split(","))
    form = rng.randrange(6)
    if form == 0:
        return Segment(tail, tuple(range(1, TERM_WEEKS + 1)), day, numbers, place)
    if form == 1:
        first, last = rng.randint(1, 3), rng.choice((12, 14, 16, 17, 18))
        return Segment(
            f"({first}-{last}){tail}", tuple(range(first, last + 1)), day, numbers, place
        )
    if form == 2:
        odd = tuple(w for w in range(1, TERM_WEEKS + 1) if w % 2)
        return Segment(f"单周{tail}", odd, day, numbers, place)
    if form == 3:
        first, last = rng.choice((2, 4)), rng.choice((14, 16, 18))
        even = tuple(w for w in range(first, last + 1) if w % 2 == 0)
        return Segment(f"双周({first}-{last}){tail}", even, day, numbers, place)
    if form == 4:
        first, last = rng.randint(2, 9), rng.randint(10, 19)
        return Segment(
            f"({first}-{last}){tail}", tuple(range(first, last + 1)), day, numbers, place
        )
    return Segment(tail, tuple(range(1, TERM_WEEKS + 1)), day, numbers, place)


def _course(rng: random.Random, entry: tuple[str, str, str, str], index: int) -> SimCourse:
    course_id, name, category, credits = entry
    rooms = [
        f"{rng.choice(BUILDINGS)}{rng.randint(1, 6)}{rng.randint(1, 20):02d}" for _ in range(3)
    ]
    count = rng.choice((1, 1, 2, 2, 3))
    places = rooms[:count] if rng.random() < 0.7 else rooms[:1]
    segments = []
    for i in range(count):
        place = places[min(i, len(places) - 1)]
        if rng.random() < 0.06:
            segments.append(Segment(rng.choice(WORDS), (), 0, (), place))
        else:
            segments.append(_segment(rng, place))
    # Circled items; now and then two segments in one item, joined by ";".
    items: list[str] = []
    i = 0
    while i < len(segments):
        if i + 1 < len(segments) and rng.random() < 0.35:
            items.append(f"{segments[i].text};{segments[i + 1].text}")
            i += 2
        else:
            items.append(segments[i].text)
            i += 1
    schedule = "".join(f"{CIRCLED[k]}{item}" for k, item in enumerate(items))
    place_cell = (
        "".join(f"{CIRCLED[k]}{p}" for k, p in enumerate(places)) if len(places) > 1 else places[0]
    )
    stage = "考试" if rng.random() < 0.7 else "考查"
    return SimCourse(
        class_id=f"{course_id}{index + 1:02d}",
        course_id=course_id,
        name=name,
        credits=credits,
        hours=str(int(float(credits) * 16)),
        category=category,
        schedule=schedule,
        teacher=rng.choice(TEACHERS),
        place=place_cell,
        remarks=rng.choice(("", "", "", "双语教学", "单双周上课")),
        stage=stage,
        exam_time="",
        segments=tuple(segments),
    )


def _grade(rng: random.Random, course: SimCourse) -> SimGrade:
    credits = Decimal(course.credits)
    if rng.random() < 0.8:
        score = rng.randint(45, 99)
        text = str(score)
        points: Decimal | None = Decimal(max(0, score - 50)) / 10 if score >= 60 else Decimal(0)
    else:
        text = rng.choice(SCORE_WORDS)
        points = Decimal(WORD_POINTS[text]) if text in WORD_POINTS else None
    cell = "" if points is None else str((points * credits).quantize(Decimal("0.01")))
    remarks = "缺考" if text == "缺考" else rng.choice(("", "", "", "", "重修"))
    return SimGrade(
        course.course_id, course.name, course.category, text, course.credits, cell, remarks
    )


def generate(seed: int, stuid: str, year: int, term: int) -> TermData:
    """A student's term: nothing before the year the student came."""
    if not exists(stuid) or year < int(stuid[:4]):
        return TermData((), (), ())
    rng = random.Random(f"{seed}:{stuid}:{year}:{term}")
    picked = rng.sample(CATALOGUE, rng.randint(5, 8))
    courses = [_course(rng, entry, i) for i, entry in enumerate(picked)]
    start = term_start(year, term)
    exams: list[SimExam] = []
    for i, course in enumerate(courses):
        if course.stage != "考试":
            continue
        day = start + timedelta(weeks=18, days=rng.randint(0, 11))
        begin, end = rng.choice(EXAM_SLOTS)
        place = f"{rng.choice(BUILDINGS[:4])}{rng.randint(1, 6)}{rng.randint(1, 20):02d}"
        exams.append(SimExam(day, begin, end, place, course.name, course.course_id))
        courses[i] = _with_exam_time(course, f"{day:%Y-%m-%d} {begin}-{end}")
    grades = tuple(_grade(rng, c) for c in courses)
    return TermData(tuple(courses), tuple(exams), grades)


def _with_exam_time(course: SimCourse, text: str) -> SimCourse:
    return replace(course, exam_time=text)


class Dataset:
    """Students' terms (generated on demand, a few kept) and passwords set at run time."""

    CACHE = 256
    MAX_PASSWORDS = 100_000

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._terms: dict[tuple[str, int, int], TermData] = {}
        self._passwords: dict[str, str] = {}
        # Terms changed through the side endpoints: kept, never regenerated.
        self._changed: dict[tuple[str, int, int], TermData] = {}

    def term(self, stuid: str, year: int, term: int) -> TermData:
        key = (stuid, year, term)
        changed = self._changed.get(key)
        if changed is not None:
            return changed
        found = self._terms.pop(key, None)
        if found is None:
            found = generate(self.seed, stuid, year, term)
        self._terms[key] = found
        while len(self._terms) > self.CACHE:
            del self._terms[next(iter(self._terms))]
        return found

    def change(self, stuid: str, year: int, term: int, data: TermData) -> None:
        """Keep a term as changed (a grade posted, an exam added, a class moved)."""
        key = (stuid, year, term)
        if key not in self._changed and len(self._changed) >= self.MAX_PASSWORDS:
            raise ValueError("too many terms changed")
        self._changed[key] = data

    def password(self, stuid: str) -> str:
        return self._passwords.get(stuid, default_password(stuid))

    def set_password(self, stuid: str, password: str) -> None:
        if stuid not in self._passwords and len(self._passwords) >= self.MAX_PASSWORDS:
            raise ValueError("too many passwords set")
        self._passwords[stuid] = password
