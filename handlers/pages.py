"""Non-API pages: the index page, and a liveness probe."""

from __future__ import annotations

import json
import os
from typing import Any

from tornado.web import StaticFileHandler

from handlers.base import JsonHandler, describe_error


class HealthHandler(JsonHandler):
    """The process serves; says which worker answered (used to measure balancing)."""

    rate_limited = False

    def get(self) -> None:
        self.write_json(
            {
                "status": "ok",
                "worker": self.deps.worker_index,
                "pid": os.getpid(),
                "generation": self.deps.state.generation,
            }
        )


class StaticHandler(StaticFileHandler):
    """Static files, with JSON errors like the rest of the server."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        status, code, message, _ = describe_error(None, status_code, 0)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": {"code": code, "message": message}}))
