"""The campus calendar: China time, the terms and the class periods of `campus:` in
config.yaml. Every date a student sees is a campus date.

Breaks: a gap between two periods of the table at least as long as its shortest
period (another class would fit in it) is a break, such as lunch and dinner; the
shorter gaps (5 minutes between periods, the 25-minute pause mid-morning of the
default table) are the usual walk to the next room. A class meeting's periods
are held as runs: periods that follow one another with no break between them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from services import codes
from services.errors import BadInput
from settings import CampusCalendarSettings

CHINA = timezone(timedelta(hours=8), "CST")
# The IANA name of campus time, for calendar feeds.
CAMPUS_TZ_NAME = "Asia/Shanghai"

# The words of calendar feeds (`campus.feed_language`).
Language = Literal["zh", "en"]

# Years a term may be asked for (2012 = 2012-2013, the first year of the 2013 server).
FIRST_YEAR = 2000
LAST_YEAR = 2100


@dataclass(frozen=True, slots=True)
class Term:
    """A term: its academic year's first calendar year and 1 or 2."""

    year: int
    term: int

    @property
    def key(self) -> str:
        """How the term keys cached answers: "2026-1"."""
        return f"{self.year}-{self.term}"

    @property
    def label(self) -> str:
        """As the academic office names it: "2026-2027 term 1"."""
        return f"{self.year}-{self.year + 1} term {self.term}"


@dataclass(frozen=True, slots=True)
class Run:
    """Periods of a class meeting held in one sitting: from start to end, campus time."""

    periods: tuple[int, ...]
    start: time
    end: time


class CampusCalendar:
    """The calendar of `campus:`: which term it is, when a week starts, when a period is."""

    def __init__(self, settings: CampusCalendarSettings) -> None:
        self._terms = [(Term(t.year, t.term), t.starts) for t in settings.terms]
        self._periods = settings.period_times()
        self.breaks = breaks_of(self._periods)
        self.feed_language: Language = settings.feed_language

    def term(self, year: str | None, term: str | None, today: date) -> Term:
        """The term asked for; what is not given (the year, the term or both) is taken
        from the term under way on the campus today.

        Raises BadInput for a malformed year or term, or when one is missing and the
        calendar knows no term started by today.
        """
        if not year or not term:
            current = self.current(today)
            if current is None:
                raise BadInput(
                    codes.MISSING_TERM, "give year and term (no term of campus.terms has started)"
                )
            if not year and not term:
                return current
            year = year or str(current.year)
            term = term or str(current.term)
        if not (year.isascii() and year.isdigit() and len(year) == 4):
            raise BadInput(codes.INVALID_YEAR, "year is the academic year's first year, e.g. 2026")
        if term not in ("1", "2"):
            raise BadInput(codes.INVALID_TERM, "term is 1 or 2")
        number = int(year)
        if not FIRST_YEAR <= number <= LAST_YEAR:
            raise BadInput(codes.INVALID_YEAR, f"year must be within {FIRST_YEAR}..{LAST_YEAR}")
        return Term(number, int(term))

    def current(self, today: date) -> Term | None:
        """The latest term of the calendar that started by today (its holidays included)."""
        started = [term for term, starts in self._terms if starts <= today]
        return started[-1] if started else None

    def starts(self, term: Term) -> date | None:
        """The Monday of the term's teaching week 1, if the calendar knows the term."""
        return next((starts for t, starts in self._terms if t == term), None)

    def day_of(self, term: Term, week: int, weekday: int) -> date | None:
        """The date of a teaching week's weekday (1 = Monday), if the term is known."""
        starts = self.starts(term)
        if starts is None:
            return None
        return starts + timedelta(weeks=week - 1, days=weekday - 1)

    def period(self, number: int) -> tuple[time, time] | None:
        """When class period `number` (1-based) starts and ends, if the table has it."""
        if 1 <= number <= len(self._periods):
            return self._periods[number - 1]
        return None

    def span(self, periods: tuple[int, ...]) -> tuple[time, time] | None:
        """From the start of the first period to the end of the last, if both are known."""
        if not periods:
            return None
        first, last = self.period(min(periods)), self.period(max(periods))
        if first is None or last is None:
            return None
        return first[0], last[1]

    def runs(self, periods: tuple[int, ...]) -> list[Run] | None:
        """These periods as runs: periods that follow one another, split at every break
        of the table (5-6 of the default table, across lunch, are two runs). None if the
        table lacks one of them."""
        if not periods or any(self.period(n) is None for n in periods):
            return None
        numbers = sorted(set(periods))
        runs: list[list[int]] = [[numbers[0]]]
        for previous, number in itertools.pairwise(numbers):
            if number == previous + 1 and previous not in self.breaks:
                runs[-1].append(number)
            else:
                runs.append([number])
        return [
            Run(tuple(run), self._periods[run[0] - 1][0], self._periods[run[-1] - 1][1])
            for run in runs
        ]


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def breaks_of(periods: list[tuple[time, time]]) -> frozenset[int]:
    """The periods (1-based) after which the table has a break: a gap at least as long
    as its shortest period."""
    if not periods:
        return frozenset()
    shortest = min(_minutes(end) - _minutes(start) for start, end in periods)
    return frozenset(
        number
        for number, ((_, end), (start, _)) in enumerate(itertools.pairwise(periods), start=1)
        if _minutes(start) - _minutes(end) >= shortest
    )


def campus_today(now: datetime) -> date:
    return now.astimezone(CHINA).date()
