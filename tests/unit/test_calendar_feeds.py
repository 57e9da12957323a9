"""Calendar feeds (services/calendar.py, services/campus.py): a meeting's periods split at
the period table's breaks, one event per run; the feed's words in Chinese or English;
every feed read back by the icalendar library."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from services.calendar import (
    Events,
    calendar,
    class_events,
    exam_events,
    exam_title,
    feed_name,
)
from services.campus import CampusCalendar, Language, Term, breaks_of
from settings import CampusCalendarSettings, TermSettings
from systems.academic.models import Course, Exam, Meeting, Timetable

TERM = Term(2026, 1)
STARTS = date(2026, 9, 7)  # a Monday
STAMP = datetime(2026, 9, 1, tzinfo=UTC)
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A school that breaks only for lunch, with 10-minute gaps and 40-minute periods.
CUSTOM = [
    "08:00-08:40",
    "08:50-09:30",
    "09:40-10:20",
    "12:00-12:40",
    "12:50-13:30",
]


def campus(periods: list[str] | None = None, feed_language: Language = "zh") -> CampusCalendar:
    terms = [TermSettings(year=TERM.year, term=TERM.term, starts=STARTS)]
    settings = CampusCalendarSettings(terms=terms, feed_language=feed_language)
    if periods is not None:
        settings = CampusCalendarSettings(terms=terms, periods=periods, feed_language=feed_language)
    return CampusCalendar(settings)


def spans(cal: CampusCalendar, periods: tuple[int, ...]) -> list[tuple[str, str]]:
    runs = cal.runs(periods)
    assert runs is not None
    return [(r.start.strftime("%H:%M"), r.end.strftime("%H:%M")) for r in runs]


def test_the_default_table_breaks_for_lunch_and_dinner_only() -> None:
    # 12:25-14:30 after period 5, 18:05-19:30 after period 9; the 25-minute pauses
    # mid-morning (after 2) and mid-afternoon (after 7) are shorter than a period.
    assert campus().breaks == frozenset({5, 9})


def test_a_custom_table_breaks_where_its_own_gaps_are_long() -> None:
    assert campus(CUSTOM).breaks == frozenset({3})
    assert spans(campus(CUSTOM), (2, 3, 4)) == [("08:50", "10:20"), ("12:00", "12:40")]
    assert spans(campus(CUSTOM), (1, 2, 3)) == [("08:00", "10:20")]


def test_a_table_without_long_gaps_has_no_breaks() -> None:
    assert breaks_of([(time(8), time(8, 45)), (time(8, 50), time(9, 35))]) == frozenset()
    assert breaks_of([(time(8), time(8, 45))]) == frozenset()
    assert campus(["08:00-08:45", "08:50-09:35"]).breaks == frozenset()


def test_a_morning_run_stays_one_event() -> None:
    cal = campus()
    assert spans(cal, (1, 2, 3, 4)) == [("08:00", "11:35")]
    assert spans(cal, (3, 4, 5)) == [("10:00", "12:25")]
    assert spans(cal, (1, 2)) == [("08:00", "09:35")]


def test_periods_across_lunch_or_dinner_become_two_runs() -> None:
    cal = campus()
    assert spans(cal, (5, 6)) == [("11:40", "12:25"), ("14:30", "15:15")]
    assert spans(cal, (9, 10, 11)) == [("17:20", "18:05"), ("19:30", "21:05")]
    runs = cal.runs((5, 6))
    assert runs is not None and [r.periods for r in runs] == [(5,), (6,)]


def test_periods_that_do_not_follow_one_another_are_separate_runs() -> None:
    assert spans(campus(), (3, 1)) == [("08:00", "08:45"), ("10:00", "10:45")]


def test_a_period_the_table_lacks_places_nothing() -> None:
    assert campus().runs((12, 13)) is None
    assert campus().runs(()) is None


def course(periods: tuple[int, ...], weeks: tuple[int, ...] = (1,)) -> Course:
    meeting = Meeting(weeks, 3, periods, "教学楼 101", f"周三 - {periods}节")
    return Course(
        course_id="C1",
        name="高等数学",
        class_id="01",
        credits=None,
        category="必修",
        teacher="李老师",
        schedule="",
        place="教学楼 101",
        meetings=(meeting,),
        unparsed=(),
        remarks="",
        stage="",
        exam_time="",
    )


def feed(
    *parts: Events, name: str = "课表 2026-2027 学年第 1 学期", lang: Language = "zh"
) -> Calendar:
    text = calendar(name, parts, 3600, lang)
    # RFC 5545 3.1: CRLF lines of at most 75 octets, folded without splitting a
    # UTF-8 character (Chinese names are 3 octets a character).
    assert text.endswith(b"\r\n")
    for line in text.split(b"\r\n"):
        assert len(line) <= 75, line
        line.decode("utf-8")
    parsed = Calendar.from_ical(text)
    assert parsed.get("version") == "2.0"
    for event in parsed.walk("VEVENT"):
        assert all(event.get(key) for key in ("uid", "dtstamp", "dtstart", "dtend", "summary"))
    return parsed


def test_a_class_across_lunch_is_two_events_that_skip_lunch() -> None:
    timetable = Timetable(2026, 1, (course((5, 6), weeks=(1, 2)),))
    events = class_events("2012052690", TERM, timetable, campus(), STAMP)
    parsed = feed(events).walk("VEVENT")
    assert len(parsed) == 4  # two runs, two weeks
    assert len({str(e.get("uid")) for e in parsed}) == 4
    wednesday = date(2026, 9, 9)
    first_week = sorted(
        (e.decoded("dtstart"), e.decoded("dtend"))
        for e in parsed
        if e.decoded("dtstart").date() == wednesday
    )
    assert first_week == [
        (
            datetime(2026, 9, 9, 11, 40, tzinfo=SHANGHAI),
            datetime(2026, 9, 9, 12, 25, tzinfo=SHANGHAI),
        ),
        (
            datetime(2026, 9, 9, 14, 30, tzinfo=SHANGHAI),
            datetime(2026, 9, 9, 15, 15, tzinfo=SHANGHAI),
        ),
    ]
    assert all(str(e.get("summary")) == "高等数学" for e in parsed)
    descriptions = sorted(str(e.get("description")) for e in parsed)
    assert descriptions[0] == "第 1 周，第 5 节；李老师"


def test_a_class_within_the_morning_keeps_one_event_and_its_uid() -> None:
    timetable = Timetable(2026, 1, (course((1, 2, 3, 4)),))
    events = class_events("2012052690", TERM, timetable, campus(), STAMP)
    (event,) = feed(events).walk("VEVENT")
    assert event.decoded("dtstart") == datetime(2026, 9, 9, 8, 0, tzinfo=SHANGHAI)
    assert event.decoded("dtend") == datetime(2026, 9, 9, 11, 35, tzinfo=SHANGHAI)
    assert str(event.get("description")) == "第 1 周，第 1-4 节；李老师"
    # The same meeting read again is the same event for a calendar app.
    again = class_events("2012052690", TERM, timetable, campus(), STAMP)
    assert str(again.events[0].get("uid")) == str(event.get("uid"))


def test_names_are_chinese_by_default() -> None:
    assert feed_name("timetable", TERM) == "课表 2026-2027 学年第 1 学期"
    assert feed_name("exams", Term(2025, 2)) == "考试 2025-2026 学年第 2 学期"
    assert feed_name("all", TERM) == "课表与考试 2026-2027 学年第 1 学期"
    assert exam_title("高等数学") == "考试：高等数学"


def test_names_in_english() -> None:
    assert feed_name("timetable", TERM, "en") == "Classes 2026-2027 term 1"
    assert feed_name("exams", TERM, "en") == "Exams 2026-2027 term 1"
    assert feed_name("all", TERM, "en") == "Classes and exams 2026-2027 term 1"
    assert exam_title("Calculus", "en") == "Exam: Calculus"


EXAM = Exam(date(2027, 1, 12), time(9), time(11), "教学楼 201", "高等数学", "C1")


@pytest.mark.parametrize(
    ("lang", "name", "title", "details"),
    [
        ("zh", "课表与考试 2026-2027 学年第 1 学期", "考试：高等数学", "第 1 周，第 5 节；李老师"),
        ("en", "Classes and exams 2026-2027 term 1", "Exam: 高等数学", "week 1, periods 5; 李老师"),
    ],
)
def test_a_feed_reads_in_its_language(lang: Language, name: str, title: str, details: str) -> None:
    timetable = Timetable(2026, 1, (course((5, 6)),))
    classes = class_events("2012052690", TERM, timetable, campus(), STAMP, lang)
    exams = exam_events("2012052690", TERM, [EXAM], STAMP, lang)
    parsed = feed(classes, exams, name=feed_name("all", TERM, lang), lang=lang)
    assert str(parsed.get("x-wr-calname")) == name
    summaries = [str(e.get("summary")) for e in parsed.walk("VEVENT")]
    assert summaries.count(title) == 1
    assert details in [str(e.get("description")) for e in parsed.walk("VEVENT")]


def test_unplaced_meetings_are_counted_in_the_feeds_language() -> None:
    unknown_term = Term(2030, 1)
    timetable = Timetable(2030, 1, (course((5, 6), weeks=(1, 2)),))
    events = class_events("2012052690", unknown_term, timetable, campus(), STAMP)
    assert events.events == [] and events.unplaced == 2
    assert str(feed(events).get("x-wr-caldesc")).startswith("2 次课无法排入日历")
    english = feed(events, lang="en")
    assert str(english.get("x-wr-caldesc")).startswith("2 class meetings could not be placed")


def test_the_language_is_a_setting_chinese_unless_set() -> None:
    assert campus().feed_language == "zh"
    assert campus(feed_language="en").feed_language == "en"
    with pytest.raises(ValueError, match="feed_language"):
        CampusCalendarSettings(feed_language="fr")
