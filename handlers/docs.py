"""The API contract (`/openapi.json`, built from api/routes.py) and the operator
dashboard's figures (`/ops/dashboard.json`, from the metrics /metrics serves)."""

from __future__ import annotations

import functools
import gzip
import json
import time
from typing import Any

from api.answers.ops import Dashboard
from api.routes import openapi
from handlers.base import AppDeps, CrossOriginReads, JsonHandler
from handlers.ops import readable_metrics
from observability.dashboard import ReadingHistory, figures, read
from services.errors import StorageUnavailable

# Lockouts listed on the dashboard, the latest-ending first.
TOP_LOCKOUTS = 20


@functools.cache
def openapi_body(production_mode: bool = False) -> bytes:
    """The document as served: built and encoded once per process (and mode)."""
    doc = openapi(production_mode)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


@functools.cache
def openapi_gzipped(production_mode: bool = False) -> bytes:
    """The document gzip-compressed, once per process: it never changes while the
    process runs, so the smallest form (level 9) costs its time once, not per answer."""
    return gzip.compress(openapi_body(production_mode), compresslevel=9, mtime=0)


class OpenApiHandler(CrossOriginReads):
    """The OpenAPI 3.1 document of every route: the largest answer (~400 KB; gzip makes
    it ~14 times smaller)."""

    def get(self) -> None:
        # Public, and the same for everyone until the next deployment.
        self.set_header("Cache-Control", "no-cache")
        production_mode = self.deps.mode == "production"
        self.precompressed(openapi_gzipped(production_mode))
        self.finish(openapi_body(production_mode))


def school_budgets(deps: AppDeps) -> dict[str, int]:
    """Each school system's budget of concurrent requests (`school.<system>.budget`)."""
    return dict(deps.school_budgets)


# Unreadable pages the dashboard lists (the newest).
DASHBOARD_PAGES = 10


class DashboardHandler(JsonHandler):
    """Requests/s, cache hit ratio, school load against budgets, breakers, latency and
    workers, for whoever may read /metrics (the same rule: loopback or the token)."""

    def initialize(self, deps: AppDeps, history: ReadingHistory) -> None:  # type: ignore[override]
        super().initialize(deps)
        self.history = history

    async def get(self) -> None:
        exposition, _ = readable_metrics(self, "the dashboard is")
        reading = read(exposition.decode("utf-8"), time.monotonic())
        baseline = self.history.baseline(reading)
        breakers = dict(self.deps.ops.readiness.breaker_states())
        state = self.deps.state
        body = figures(
            baseline,
            reading,
            school_budgets(self.deps),
            breakers,
            (self.deps.worker_index, state.generation),
        )
        body["lockouts"] = await self.lockouts()
        body["unreadable_pages"] = await self.unreadable_pages()
        # The figures are computed from the metrics as plain values; the model checks them.
        self.write_json(Dashboard.model_validate(body))

    async def unreadable_pages(self) -> list[dict[str, Any]] | None:
        """The last school pages no client could read (`python server.py pages show ID`
        prints one); None when the database cannot say."""
        captures = self.deps.page_captures
        if captures is None:
            return []
        try:
            rows = await captures.latest(DASHBOARD_PAGES)
        except StorageUnavailable:
            return None
        return [
            {
                "id": r.id,
                "system": r.system,
                "page": r.kind,
                "last_seen": r.last_seen_at.isoformat(timespec="seconds"),
                "seen": r.seen,
                "reason": r.reason,
            }
            for r in rows
        ]

    async def lockouts(self) -> list[dict[str, Any]] | None:
        """Who is locked out or slowed down now; None when the database cannot say."""
        if self.deps.lockouts is None:
            return []
        try:
            found = await self.deps.lockouts()
        except StorageUnavailable:
            return None
        return [
            {
                "scope": lock.scope,
                "who": lock.who,
                "wrong": lock.wrong,
                "allowed": lock.allowed,
                "until": lock.until.isoformat(timespec="seconds"),
            }
            for lock in found[:TOP_LOCKOUTS]
        ]
