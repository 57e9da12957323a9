"""Read the timetable's schedule strings (时间安排) and place cells (上课地点).

Evidence (the 2013 client and its samples, docs/academic-office-protocol.md):
segments are separated by circled numbers (①, ②, ...) or `;`, and read

    周二 - 3,4节                 every week, Tuesday, periods 3 and 4
    (1-14)周二 - 1,2节           weeks 1 to 14
    单周周五 - 1,2节             odd weeks
    双周(4-14)周二 - 7,8,9节     even weeks of 4 to 14

A segment naming no weeks is taught every week of the term (`term_weeks`);
weeks past 16 are kept (2013 dropped them). The place cell splits the same
way, one place per segment; with fewer places than segments the last one
repeats. A segment that does not read is kept raw (never dropped) and logged.
Also read, as guesses of the same system's habits: full-width parentheses,
semicolons and commas, `、`, week lists like `(1-8,10-16)`, period ranges
like `3-4节`, 周日/周天/星期二.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from systems.academic.models import Meeting

log = logging.getLogger("jnufm.school")

# Circled numbers ① (U+2460) .. ⑳ (U+2473).
_SEPARATORS = re.compile(r"[\u2460-\u2473;；]")
_SPACES = re.compile(r"[\s\u3000\xa0]+")
_WEEKDAYS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7, "七": 7}
_SEGMENT = re.compile(
    r"^(?P<parity1>[单双]周)?"
    r"(?:\((?P<weeks>[0-9,\-]+)\)周?)?"
    r"(?P<parity2>[单双]周)?"
    r"(?:周|星期)(?P<day>[一二三四五六日天七])"
    r"-?(?:第)?(?P<periods>[0-9,\-]+)节$"
)
# Sanity bounds: a term has no week 0 or 60, a day no period 0 or 20.
MAX_WEEK = 53
MAX_PERIOD = 16


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule cell read: its meetings, and the segments that did not read."""

    meetings: tuple[Meeting, ...]
    unparsed: tuple[str, ...]


def split_segments(text: str) -> list[str]:
    """The non-empty segments of a schedule or place cell, stripped."""
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]


def _numbers(text: str, upper: int) -> list[int] | None:
    """`1-8,10,12-16` as a sorted list; None if malformed or out of 1..upper."""
    found: set[int] = set()
    for item in text.split(","):
        first, dash, last = item.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            return None
        low, high = int(first), int(last) if dash else int(first)
        if not 1 <= low <= high <= upper:
            return None
        found.update(range(low, high + 1))
    return sorted(found) if found else None


def _normalised(segment: str) -> str:
    text = _SPACES.sub("", segment)
    return (
        text.replace("（", "(")
        .replace("）", ")")
        .replace("，", ",")
        .replace("、", ",")
        .replace("－", "-")
        .replace("—", "-")
        .replace("~", "-")
        .replace("～", "-")
    )


def parse_segment(segment: str, term_weeks: int) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """Weeks, weekday and periods of one segment; ValueError if it does not read."""
    found = _SEGMENT.match(_normalised(segment))
    if found is None:
        raise ValueError("not a schedule segment")
    parities = {p for p in (found["parity1"], found["parity2"]) if p}
    if len(parities) > 1:
        raise ValueError("both odd and even weeks")
    if found["weeks"]:
        weeks = _numbers(found["weeks"], MAX_WEEK)
        if weeks is None:
            raise ValueError("unreadable weeks")
    else:
        weeks = list(range(1, term_weeks + 1))
    if "单周" in parities:
        weeks = [w for w in weeks if w % 2 == 1]
    elif "双周" in parities:
        weeks = [w for w in weeks if w % 2 == 0]
    if not weeks:
        raise ValueError("no week left")
    periods = _numbers(found["periods"], MAX_PERIOD)
    if periods is None:
        raise ValueError("unreadable periods")
    return tuple(weeks), _WEEKDAYS[found["day"]], tuple(periods)


def parse_schedule(schedule: str, places: str, term_weeks: int, course: str = "") -> Schedule:
    """The meetings of a schedule cell, each with its place from the place cell."""
    segments = split_segments(schedule)
    rooms = split_segments(places)
    meetings: list[Meeting] = []
    unparsed: list[str] = []
    for index, segment in enumerate(segments):
        place = rooms[min(index, len(rooms) - 1)] if rooms else ""
        try:
            weeks, weekday, periods = parse_segment(segment, term_weeks)
        except ValueError as exc:
            log.warning(
                "academic timetable: course %s: schedule segment %r kept unread (%s)",
                course,
                segment,
                exc,
            )
            unparsed.append(segment)
            continue
        meetings.append(Meeting(weeks, weekday, periods, place, segment))
    return Schedule(tuple(meetings), tuple(unparsed))
