"""Non-API pages: the index page, and a liveness probe."""

from __future__ import annotations

import json
import os
from types import TracebackType
from typing import Any

from tornado.web import HTTPError, RedirectHandler, RequestHandler, StaticFileHandler

from handlers.base import JsonHandler, describe_error, error_log
from observability.logs import redacted_uri


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


class JsonErrors(RequestHandler):
    """Errors of Tornado's own handlers as JSON like the rest, logged without the raw URI."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        status, code, message, _ = describe_error(exc_info[1] if exc_info else None, status_code, 0)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Tornado's own would log the raw URI, query string included.
        if isinstance(value, HTTPError):
            return
        where = f"{self.request.method} {redacted_uri(self.request.uri or '')}"
        error_log.error("%s: unexpected error", where, exc_info=value)


class StaticHandler(JsonErrors, StaticFileHandler):
    """Static files, with JSON errors like the rest of the server."""

    def parse_url_path(self, url_path: str) -> str:
        # No file name holds a NUL byte, and the os functions raise on one.
        if "\x00" in url_path:
            raise HTTPError(404, "no such file")
        return super().parse_url_path(url_path)

    async def get(self, path: str, include_body: bool = True) -> None:
        await super().get(path, include_body)
        if self.get_status() == 416:
            # Tornado answers an unsatisfiable Range with an empty text/plain body.
            self.set_header("Content-Type", "application/json; charset=UTF-8")
            error = {"code": "range_not_satisfiable", "message": "the range is outside the file"}
            self.finish(json.dumps({"error": error}))


class RedirectToIndex(JsonErrors, RedirectHandler):
    """/index.html -> /, with JSON errors (a bad method or body)."""
