"""The academic office's config section (`school.academic`), handed to its client as it is."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from school.config import Section, SystemConfig


class GpaSettings(Section):
    """How a grade point average is computed (see systems/academic/models.py GpaRule)."""

    # The office's 学分绩点 cell holds credits x grade point (as on the 2013 grade list).
    points_include_credits: bool = True
    count_failed: bool = True
    # Only these course categories count (e.g. ["必修"]); null: all of them.
    categories: list[str] | None = None
    places: Annotated[int, Field(ge=0, le=6)] = 2


class AcademicFreshness(Section):
    """How old an office answer may be, per kind, before we ask again (seconds)."""

    timetable: Annotated[float, Field(ge=0)] = 21600
    exams: Annotated[float, Field(ge=0)] = 3600
    grades: Annotated[float, Field(ge=0)] = 300


class AcademicOfficeConfig(SystemConfig):
    """Where the academic office is, how we talk to it and how long its answers stay fresh."""

    base_url: str = "http://127.0.0.1:8100/jwc/"
    max_connections: Annotated[int, Field(ge=1)] = 8
    total_timeout_s: Annotated[float, Field(gt=0)] = 15.0
    # Captchas fetched per login at most (each one a request; a wrong reading costs another).
    max_captcha_tries: Annotated[int, Field(ge=1, le=10)] = 5
    # The weeks of a schedule segment that names none (never a cap on named weeks).
    term_weeks: Annotated[int, Field(ge=1, le=30)] = 16
    # iframe / frameset hops followed from the exam answer to its data.
    max_frames: Annotated[int, Field(ge=1, le=10)] = 3
    gpa: GpaSettings = GpaSettings()
    fresh_s: AcademicFreshness = AcademicFreshness()
