"""How the academic office is built for one worker, and its routes."""

from __future__ import annotations

from collections.abc import Mapping

from handlers.base import AppDeps
from services.pipeline import CookieConnector
from systems.academic import SYSTEM, captcha, legacy, v1
from systems.academic.client import AcademicOfficeClient
from systems.academic.config import AcademicOfficeConfig
from systems.academic.models import AcademicSession
from systems.academic.service import AcademicService
from systems.parts import Built, Rule, WorkerParts


def build(parts: WorkerParts) -> Built:
    """Its client (its section as is), its pipeline (with the credential gate), its service."""
    client = AcademicOfficeClient(
        parts.section("academic", AcademicOfficeConfig), parts.http["academic"]
    )
    pipeline = parts.pipeline(
        parts.spec(SYSTEM, SYSTEM.upstreams[0]),
        CookieConnector(client.login, AcademicSession, lambda s: s.cookie),
    )
    return Built(AcademicService(client, pipeline, parts.settings), (pipeline,))


def routes(deps: AppDeps) -> Mapping[str, list[Rule]]:
    d = {"deps": deps}
    return {
        "legacy": [
            (r"/class/get", legacy.ClassHandler, d),
            (r"/kaoshi/get", legacy.ExamHandler, d),
        ],
        "v1": [
            (r"/v1/timetable", v1.TimetableHandler, d),
            (r"/v1/timetable\.ics", v1.TimetableIcsHandler, d),
            (r"/v1/exams", v1.ExamsHandler, d),
            (r"/v1/exams\.ics", v1.ExamsIcsHandler, d),
            (r"/v1/grades", v1.GradesHandler, d),
        ],
        # Calendar apps cannot send Basic auth: a revocable token in the URL instead.
        "token_urls": [
            (r"/v1/calendar/tokens", v1.CalendarTokensHandler, d),
            (r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics", v1.CalendarFeedHandler, d),
        ],
    }


def preload() -> None:
    """Before the fork: the captcha glyphs every worker reads logins with."""
    captcha.glyphs()
