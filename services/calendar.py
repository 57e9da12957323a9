"""Calendar feeds (RFC 5545): a term's classes and exams as iCalendar events, and the
revocable feed tokens that let a calendar app read them without a password.

Events: one per run of a class meeting's periods, each week its schedule names,
on its weekday (by the `campus:` period table: a run is periods that follow one
another with no break between them, so periods 5-6 across lunch are two events,
services/campus.py), one per exam; times in campus time (TZID Asia/Shanghai,
with its VTIMEZONE). A class of a term whose start date `campus.terms` does not
know cannot be placed, and is left out (the feed's description says how many);
so is a meeting whose periods the table lacks.

Words: Chinese (the calendar's name "课表 2026-2027 学年第 1 学期", an exam's
"考试：<course>"), or English when `campus.feed_language` is "en". A feed URL
carries no language: a feed read by an old URL reads as the server is set.

Feed URLs carry a token (services/tokens.py, kind "feed"): `POST
/v1/calendar/tokens` (with the password or a session token) makes one. A feed
read by token is built from the stored answers only (it cannot log in): it costs
the school nothing, and is as new as the student's last query (the token's
creation fetches both). A built feed is kept (`FeedCache`) until what it shows
changes, and served with its ETag (304 to a calendar app that has it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from services.campus import CAMPUS_TZ_NAME, CampusCalendar, Language, Term
from services.tokens import Feed
from systems.academic.models import Exam, Timetable

CAMPUS_TZ = ZoneInfo(CAMPUS_TZ_NAME)
PRODID = "-//jnufm//campus calendar//EN"

_FEED_NAMES: dict[Language, dict[Feed, str]] = {
    "zh": {"all": "课表与考试", "timetable": "课表", "exams": "考试"},
    "en": {"all": "Classes and exams", "timetable": "Classes", "exams": "Exams"},
}


def term_name(term: Term, lang: Language) -> str:
    """ "2026-2027 学年第 1 学期", or in English "2026-2027 term 1"."""
    if lang == "en":
        return term.label
    return f"{term.year}-{term.year + 1} 学年第 {term.term} 学期"


def feed_name(feed: Feed, term: Term, lang: Language = "zh") -> str:
    """A feed's calendar name: "课表 2026-2027 学年第 1 学期", "Exams 2026-2027 term 1"."""
    return f"{_FEED_NAMES[lang][feed]} {term_name(term, lang)}"


def exam_title(course_name: str, lang: Language = "zh") -> str:
    return f"Exam: {course_name}" if lang == "en" else f"考试：{course_name}"


def _class_details(week: int, numbers: tuple[int, ...], teacher: str, lang: Language) -> str:
    """ "第 3 周，第 5-6 节；<teacher>", or "week 3, periods 5-6; <teacher>"."""
    periods = f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    if lang == "en":
        details = [f"week {week}, periods {periods}"]
    else:
        details = [f"第 {week} 周，第 {periods} 节"]
    if teacher:
        details.append(teacher)
    return ("; " if lang == "en" else "；").join(details)


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{digest}@jnufm"


@dataclass(frozen=True, slots=True)
class Events:
    """A feed's events, and how many classes could not be placed on the calendar."""

    events: list[Event]
    unplaced: int = 0


def class_events(
    student_id: str,
    term: Term,
    timetable: Timetable,
    calendar: CampusCalendar,
    stamp: datetime,
    lang: Language = "zh",
) -> Events:
    """One event per run of periods (campus.CampusCalendar.runs) of each meeting of every
    course of the term, each week it meets."""
    events: list[Event] = []
    unplaced = 0
    for course in timetable.courses:
        unplaced += len(course.unparsed)
        for meeting in course.meetings:
            runs = calendar.runs(meeting.periods)
            for week in meeting.weeks:
                day = calendar.day_of(term, week, meeting.weekday)
                if day is None or runs is None:
                    unplaced += 1
                    continue
                for run in runs:
                    uid = [student_id, term.key, course.course_id, course.class_id, week]
                    # A meeting held in one run keeps the UID it always had.
                    extra = [run.periods[0]] if len(runs) > 1 else []
                    event = Event()
                    event.add("uid", _uid(*uid, meeting.text, *extra))
                    event.add("dtstamp", stamp)
                    event.add("dtstart", _at(day, run.start))
                    event.add("dtend", _at(day, run.end))
                    event.add("summary", course.name)
                    if meeting.place:
                        event.add("location", meeting.place)
                    details = _class_details(week, run.periods, course.teacher, lang)
                    event.add("description", details)
                    event.add("categories", ["class"])
                    events.append(event)
    return Events(events, unplaced)


def exam_events(
    student_id: str, term: Term, exams: Iterable[Exam], stamp: datetime, lang: Language = "zh"
) -> Events:
    events: list[Event] = []
    for exam in exams:
        event = Event()
        event.add("uid", _uid(student_id, term.key, "exam", exam.course_id, exam.date))
        event.add("dtstamp", stamp)
        event.add("dtstart", _at(exam.date, exam.start))
        event.add("dtend", _at(exam.date, exam.end))
        event.add("summary", exam_title(exam.course_name, lang))
        if exam.place:
            event.add("location", exam.place)
        event.add("categories", ["exam"])
        events.append(event)
    return Events(events)


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, CAMPUS_TZ)


def calendar(name: str, parts: Iterable[Events], refresh_s: int, lang: Language = "zh") -> bytes:
    """The iCalendar text of these events, with the campus VTIMEZONE."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", CAMPUS_TZ_NAME)
    # How often a calendar app should read the feed again (RFC 7986; and the de facto name).
    hours = max(1, refresh_s // 3600)
    cal.add("refresh-interval", timedelta(hours=hours), parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", f"PT{hours}H")
    unplaced = 0
    for part in parts:
        unplaced += part.unplaced
        for event in part.events:
            cal.add_component(event)
    if unplaced:
        if lang == "en":
            text = (
                f"{unplaced} class meetings could not be placed (unknown term start, period "
                "or schedule); see the timetable in the API"
            )
        else:
            text = (
                f"{unplaced} 次课无法排入日历（学期开始日期、节次或上课时间未知），"
                "请查看接口中的课表"
            )
        cal.add("x-wr-caldesc", text)
    cal.add_missing_timezones()
    data: bytes = cal.to_ical()
    return data


def stamp_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


# Built feeds ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltFeed:
    """A feed's bytes and their entity tag (a hash of the bytes)."""

    body: bytes
    etag: str


class FeedCache:
    """Feeds built once per change of what they show, kept in this worker's memory.

    Keyed by everything a feed's text depends on (its student, feed, term and
    name, and when the school produced the answers it shows): a calendar app
    polling an unchanged feed costs a dictionary lookup, not a rebuild (about 30
    ms of CPU for a full term).
    """

    def __init__(self, entries: int = 2048) -> None:
        self._entries = entries
        self._built: dict[tuple[object, ...], BuiltFeed] = {}

    def get(self, key: tuple[object, ...], build: Callable[[], bytes]) -> BuiltFeed:
        found = self._built.get(key)
        if found is not None:
            return found
        body = build()
        built = BuiltFeed(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        if len(self._built) >= self._entries:
            self._built.pop(next(iter(self._built)))  # the oldest
        self._built[key] = built
        return built
