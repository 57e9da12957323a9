"""HTTP handlers and the one list of every route of the app (see `routes`)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from tornado.web import Application

from api.routes import ROUTES
from handlers import docs, ops, pages, wechat
from handlers.base import AppDeps, log_request
from handlers.guards import GuardedApplication
from handlers.legacy import accounts as legacy_accounts
from handlers.v1 import sessions as v1_sessions
from handlers.v1 import watches as v1_watches
from handlers.v1 import wechat_bind as v1_wechat_bind
from leanweb import route_label
from observability import metrics
from observability.dashboard import ReadingHistory
from settings import HttpSettings
from systems import SYSTEMS
from systems.parts import Rule
from systems.plugin import ROUTE_GROUPS

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def routes(deps: AppDeps) -> list[tuple[str, type, dict[str, Any]]]:
    """Every URL the server answers, in one place."""
    d = {"deps": deps}
    static = {"path": str(STATIC_DIR)}
    by_group = system_routes(deps)
    return [
        # The 2013 endpoints, unchanged for old clients: each school system's.
        *by_group["legacy"],
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
        # The clean API: each school system's.
        *by_group["v1"],
        # Students' session tokens: a token instead of a password on every call.
        (r"/v1/sessions", v1_sessions.SessionsHandler, d),
        (r"/v1/sessions/([0-9]{1,18})", v1_sessions.SessionHandler, d),
        # URLs that carry a token instead of credentials (calendar feeds).
        *by_group["token_urls"],
        # The WeChat bind page's form: a follower bound to a student, by session tokens.
        (r"/v1/wechat/bind", v1_wechat_bind.WeChatBindHandler, d),
        # Students' watches: told of a change at the school (services/watches/).
        (r"/v1/watches", v1_watches.WatchesHandler, d),
        (r"/v1/watches/([0-9]{1,18})", v1_watches.WatchHandler, d),
        # WeChat official accounts' callback URLs (channels/wechat/): the first account's,
        # and each one's by name.
        (r"/wechat", wechat.WeChatHandler, d),
        (r"/wechat/([a-z][a-z0-9_-]{0,31})", wechat.WeChatHandler, d),
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


def system_routes(deps: AppDeps) -> dict[str, list[Rule]]:
    """Every registered school system's routes, by group, in the registry's order."""
    by_group: dict[str, list[Rule]] = {group: [] for group in ROUTE_GROUPS}
    for system in SYSTEMS:
        for group, rules in system.assembly().routes(deps).items():
            by_group[group].extend(rules)
    return by_group


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


# Names of the path parts of routes api/routes.py leaves out (EXCLUDED), for their labels.
_UNDESCRIBED_NAMES = {
    r"/static/(.*)": ("path",),
    r"/wechat/([a-z][a-z0-9_-]{0,31})": ("account",),
}


def route_labels(rules: list[tuple[str, type, dict[str, Any]]]) -> dict[str, str]:
    """Each route's label for metrics and access logs, by pattern: its OpenAPI path
    (`/v1/calendar/{token}.ics`, api/routes.py), else its pattern with the groups named
    (leanweb.route_label). One per route: the metrics' route label stays bounded."""
    described = {route.pattern: route.path for route in ROUTES}
    return {
        pattern: described.get(pattern) or route_label(pattern, _UNDESCRIBED_NAMES.get(pattern, ()))
        for pattern, _, _ in rules
    }


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
        labels=route_labels(rules),
        compress_response=False,
        xheaders=False,
    )
