"""The academic office's questions: a term's timetable, exams and grades.

The academic office is the second school system on the shared pipeline
(services/pipeline/): this module says what it asks (one question per
term and kind), how fresh each answer must be (`school.academic.fresh_s`), and how a
term is named (services/campus.py). Its client is systems/academic/.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal

from services import codes
from services.breaker import CircuitBreaker
from services.callers import Caller
from services.campus import CampusCalendar, Term, campus_today
from services.credentials import Credentials
from services.errors import BadInput, QueryRefused
from services.pipeline import Answer, Pipeline, Question, utc_now
from services.storage import Codec
from settings import Settings
from systems.academic.client import AcademicOfficeClient
from systems.academic.config import AcademicOfficeConfig
from systems.academic.models import (
    AcademicSession,
    Exam,
    GpaRule,
    Grade,
    Timetable,
    grade_point_average,
)

SYSTEM = "academic"

TIMETABLE: Codec[Timetable] = Codec(Timetable)
EXAMS: Codec[list[Exam]] = Codec(list[Exam])
GRADES: Codec[list[Grade]] = Codec(list[Grade])


@contextlib.contextmanager
def offered(term: Term) -> Iterator[None]:
    """A term the academic office does not offer (its term lists refused it) is no term
    of the student's: BadInput `unknown_term` (404), not an error of the query."""
    try:
        yield
    except QueryRefused:
        raise BadInput(codes.UNKNOWN_TERM, f"the academic office has no term {term.key}") from None


class AcademicService:
    """Answers timetable, exam and grade queries for one worker process."""

    def __init__(
        self,
        client: AcademicOfficeClient,
        pipeline: Pipeline[AcademicSession],
        settings: Settings,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._client = client
        self.pipeline = pipeline
        self._settings = settings
        self._config = settings.school.section("academic", AcademicOfficeConfig)
        self._now = now
        self.calendar = CampusCalendar(settings.campus)
        g = self._config.gpa
        self.gpa_rule = GpaRule(
            points_include_credits=g.points_include_credits,
            count_failed=g.count_failed,
            categories=frozenset(g.categories) if g.categories is not None else None,
            places=g.places,
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self.pipeline.breaker

    def today(self) -> date:
        return campus_today(self._now())

    def term(self, year: str | None, term: str | None) -> Term:
        """The term a request names (or the current one). Raises BadInput."""
        return self.calendar.term(year, term, self.today())

    # Queries -----------------------------------------------------------------------------

    async def timetable(
        self, creds: Credentials, term: Term, caller: Caller, fresh: bool = False
    ) -> Answer[Timetable]:
        with offered(term):
            async with self.pipeline.query(creds, caller) as q:
                return await q.answer(self._timetable_q(term, fresh))

    async def exams(
        self, creds: Credentials, term: Term, caller: Caller, fresh: bool = False
    ) -> Answer[list[Exam]]:
        with offered(term):
            async with self.pipeline.query(creds, caller) as q:
                return await q.answer(self._exams_q(term, fresh))

    async def grades(
        self, creds: Credentials, term: Term, caller: Caller, fresh: bool = False
    ) -> Answer[list[Grade]]:
        with offered(term):
            async with self.pipeline.query(creds, caller) as q:
                return await q.answer(self._grades_q(term, fresh))

    async def term_events(
        self, creds: Credentials, term: Term, caller: Caller, fresh: bool = False
    ) -> tuple[Answer[Timetable], Answer[list[Exam]]]:
        """The timetable and the exams of a term, for one request (one pass of the gate)."""
        with offered(term):
            async with self.pipeline.query(creds, caller) as q:
                classes = await q.answer(self._timetable_q(term, fresh))
                return classes, await q.answer(self._exams_q(term, fresh))

    async def stored_term(
        self, student_id: str, term: Term
    ) -> tuple[Answer[Timetable] | None, Answer[list[Exam]] | None]:
        """The last timetable and exams stored for a student's term, whatever their age
        (a feed read by token: it cannot log in, and costs the school nothing)."""
        classes = await self.pipeline.last_answer("timetable", student_id, term.key, TIMETABLE)
        exams = await self.pipeline.last_answer("exams", student_id, term.key, EXAMS)
        return classes, exams

    @property
    def feed_refresh_s(self) -> int:
        """How often a calendar app should read a feed again."""
        return int(self._config.fresh_s.timetable)

    def gpa(self, grades: list[Grade]) -> Decimal | None:
        """The grade point average of these grades by `school.academic.gpa`."""
        return grade_point_average(grades, self.gpa_rule)

    # Questions -----------------------------------------------------------------------------

    def _timetable_q(self, term: Term, fresh: bool) -> Question[Timetable, AcademicSession]:
        async def fetch(session: AcademicSession) -> Timetable:
            return await self._client.timetable(session, term.year, term.term)

        max_age = self._config.fresh_s.timetable
        return Question("timetable", term.key, max_age, fetch, TIMETABLE, fresh)

    def _exams_q(self, term: Term, fresh: bool) -> Question[list[Exam], AcademicSession]:
        async def fetch(session: AcademicSession) -> list[Exam]:
            return await self._client.exams(session, term.year, term.term)

        max_age = self._config.fresh_s.exams
        return Question("exams", term.key, max_age, fetch, EXAMS, fresh)

    def _grades_q(self, term: Term, fresh: bool) -> Question[list[Grade], AcademicSession]:
        async def fetch(session: AcademicSession) -> list[Grade]:
            return await self._client.grades(session, term.year, term.term)

        max_age = self._config.fresh_s.grades
        return Question("grades", term.key, max_age, fetch, GRADES, fresh)
