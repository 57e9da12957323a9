"""HTTP handlers and the one list of every route of the app (see `routes`)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from tornado.web import Application

from handlers import docs, ops, pages
from handlers.base import AppDeps, log_request
from handlers.guards import GuardedApplication
from handlers.legacy import academic as legacy_academic
from handlers.legacy import accounts as legacy_accounts
from handlers.legacy import card as legacy_card
from handlers.legacy import library as legacy_library
from handlers.v1 import academic as v1_academic
from handlers.v1 import card as v1_card
from handlers.v1 import library as v1_library
from handlers.v1 import sessions as v1_sessions
from observability import metrics
from observability.dashboard import ReadingHistory
from settings import HttpSettings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def routes(deps: AppDeps) -> list[tuple[str, type, dict[str, Any]]]:
    """Every URL the server answers, in one place."""
    d = {"deps": deps}
    static = {"path": str(STATIC_DIR)}
    return [
        # The 2013 endpoints, unchanged for old clients.
        (r"/card/rest", legacy_card.BalanceHandler, d),
        (r"/card/today", legacy_card.TodayHandler, d),
        (r"/card/month", legacy_card.MonthHandler, d),
        (r"/card/personalinfo", legacy_card.PersonalInfoHandler, d),
        (r"/class/get", legacy_academic.ClassHandler, d),
        (r"/kaoshi/get", legacy_academic.ExamHandler, d),
        # No length in the pattern: it sees the percent-encoded path (a Chinese character
        # is 9 characters there); the handler bounds the decoded query (400 invalid_query).
        (r"/book/search/([^/]+)", legacy_library.BookSearchHandler, d),
        (r"/web/book", legacy_library.BookPageHandler, d),
        (r"/isbn/image/([0-9Xx-]{10,17})", legacy_library.CoverHandler, d),
        # The 2013 account API: accounts, their tokens and pictures, the bound office.
        (r"/signup", legacy_accounts.SignupHandler, d),
        (r"/login", legacy_accounts.LoginHandler, d),
        (r"/password/reset", legacy_accounts.PasswordResetHandler, d),
        (r"/auth_jwc", legacy_accounts.AuthJwcHandler, d),
        (r"/get_username", legacy_accounts.UsernameHandler, d),
        (r"/get_info", legacy_accounts.GetInfoHandler, d),
        (r"/set_info", legacy_accounts.SetInfoHandler, d),
        (r"/set_avatar", legacy_accounts.AvatarHandler, d),
        (r"/set_background", legacy_accounts.BackgroundHandler, d),
        (r"/sync", legacy_accounts.SyncHandler, d),
        (r"/class/auth", legacy_accounts.ClassAuthHandler, d),
        (r"/kaoshi/auth", legacy_accounts.ExamAuthHandler, d),
        (r"/version", legacy_accounts.VersionHandler, d),
        (r"/uploads/([A-Za-z0-9_-]{32})\.png", legacy_accounts.PictureFileHandler, d),
        # The clean API.
        (r"/v1/card/balance", v1_card.V1BalanceHandler, d),
        (r"/v1/card/transactions", v1_card.V1TransactionsHandler, d),
        (r"/v1/card/profile", v1_card.V1ProfileHandler, d),
        (r"/v1/timetable", v1_academic.TimetableHandler, d),
        (r"/v1/timetable\.ics", v1_academic.TimetableIcsHandler, d),
        (r"/v1/exams", v1_academic.ExamsHandler, d),
        (r"/v1/exams\.ics", v1_academic.ExamsIcsHandler, d),
        (r"/v1/grades", v1_academic.GradesHandler, d),
        (r"/v1/library/search", v1_library.LibrarySearchHandler, d),
        (r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})", v1_library.LibraryBookHandler, d),
        # Students' session tokens: a token instead of a password on every call.
        (r"/v1/sessions", v1_sessions.SessionsHandler, d),
        (r"/v1/sessions/([0-9]{1,18})", v1_sessions.SessionHandler, d),
        # Calendar apps cannot send Basic auth: a revocable token in the URL instead.
        (r"/v1/calendar/tokens", v1_academic.CalendarTokensHandler, d),
        (r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics", v1_academic.CalendarFeedHandler, d),
        # Operations: liveness, readiness, Prometheus metrics (see docs/operations.md).
        (r"/healthz", pages.HealthHandler, d),
        (r"/readyz", ops.ReadyHandler, d),
        (r"/metrics", ops.MetricsHandler, d),
        # The API contract (api/routes.py describes every route) and the page's dashboard.
        (r"/openapi\.json", docs.OpenApiHandler, d),
        (r"/ops/dashboard\.json", docs.DashboardHandler, {**d, "history": ReadingHistory()}),
        # Test only: blocks the worker's loop; routed only when debug.block_route is on.
        *([(r"/debug/block", ops.DebugBlockHandler, d)] if deps.ops.debug_block_route else []),
        # Static files: the index page and the favicon.
        (r"/()", pages.StaticHandler, {"path": str(STATIC_DIR), "default_filename": "index.html"}),
        (r"/(favicon\.ico)", pages.StaticHandler, static),
        (r"/static/(.*)", pages.StaticHandler, static),
        (r"/index\.html", pages.RedirectToIndex, {"url": "/"}),
    ]


# What makes a part of a route's pattern more than a literal word.
_PATTERN_SYNTAX = re.compile(r"[\[\](){}*+?|^$.\\]")


def path_words(rules: list[tuple[str, type, dict[str, Any]]]) -> frozenset[str]:
    """The literal words of every route's path: all an access line shows of a path no
    route took (the rest may be anything a client typed, a password included)."""
    words = set()
    for pattern, _, _ in rules:
        for part in pattern.strip("^$").split("/"):
            part = part.removeprefix("(").removesuffix(")")
            literal = re.sub(r"\\(.)", r"\1", part)
            if literal and not _PATTERN_SYNTAX.search(re.sub(r"\\.", "", part)):
                words.add(literal)
    return frozenset(words)


def make_app(deps: AppDeps, http: HttpSettings) -> Application:
    """The Tornado application for one worker; every request passes handlers/guards.py."""
    metrics.set_worker_generation(deps.worker_index, deps.state.generation)
    # Built and compressed once per worker, before any client waits for it.
    docs.openapi_gzipped()
    rules = routes(deps)
    return GuardedApplication(
        rules,
        deps,
        http.max_body_bytes,
        functools.partial(log_request, path_words=path_words(rules)),
        compress_response=False,
        xheaders=False,
    )
