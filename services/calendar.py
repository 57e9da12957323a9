"""Calendar feeds (RFC 5545): a term's classes and exams as iCalendar events, and the
revocable feed tokens that let a calendar app read them without a password.

Events: one per class meeting of the term (each week a meeting's schedule
names, on its weekday, from the start of its first period to the end of its
last, by the `campus:` period table), one per exam; times in campus time
(TZID Asia/Shanghai, with its VTIMEZONE). A class of a term whose start date
`campus.terms` does not know cannot be placed, and is left out (the feed's
description says how many); so is a meeting whose periods the table lacks.

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

from services.campus import CAMPUS_TZ_NAME, CampusCalendar, Term
from systems.academic.models import Exam, Timetable

CAMPUS_TZ = ZoneInfo(CAMPUS_TZ_NAME)
PRODID = "-//jnufm//campus calendar//EN"


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{digest}@jnufm"


@dataclass(frozen=True, slots=True)
class Events:
    """A feed's events, and how many classes could not be placed on the calendar."""

    events: list[Event]
    unplaced: int = 0


def class_events(
    student_id: str, term: Term, timetable: Timetable, calendar: CampusCalendar, stamp: datetime
) -> Events:
    """One event per meeting of every course of the term."""
    events: list[Event] = []
    unplaced = 0
    for course in timetable.courses:
        unplaced += len(course.unparsed)
        for meeting in course.meetings:
            span = calendar.span(meeting.periods)
            for week in meeting.weeks:
                day = calendar.day_of(term, week, meeting.weekday)
                if day is None or span is None:
                    unplaced += 1
                    continue
                event = Event()
                event.add(
                    "uid",
                    _uid(
                        student_id, term.key, course.course_id, course.class_id, week, meeting.text
                    ),
                )
                event.add("dtstamp", stamp)
                event.add("dtstart", _at(day, span[0]))
                event.add("dtend", _at(day, span[1]))
                event.add("summary", course.name)
                if meeting.place:
                    event.add("location", meeting.place)
                periods = ",".join(str(p) for p in meeting.periods)
                details = [f"week {week}, periods {periods}"]
                if course.teacher:
                    details.append(course.teacher)
                event.add("description", "; ".join(details))
                event.add("categories", ["class"])
                events.append(event)
    return Events(events, unplaced)


def exam_events(student_id: str, term: Term, exams: Iterable[Exam], stamp: datetime) -> Events:
    events: list[Event] = []
    for exam in exams:
        event = Event()
        event.add("uid", _uid(student_id, term.key, "exam", exam.course_id, exam.date))
        event.add("dtstamp", stamp)
        event.add("dtstart", _at(exam.date, exam.start))
        event.add("dtend", _at(exam.date, exam.end))
        event.add("summary", f"Exam: {exam.course_name}")
        if exam.place:
            event.add("location", exam.place)
        event.add("categories", ["exam"])
        events.append(event)
    return Events(events)


def _at(day: date, moment: time) -> datetime:
    return datetime.combine(day, moment, CAMPUS_TZ)


def calendar(name: str, parts: Iterable[Events], refresh_s: int) -> bytes:
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
        cal.add(
            "x-wr-caldesc",
            f"{unplaced} class meetings could not be placed (unknown term start, period "
            "or schedule); see the timetable in the API",
        )
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
