"""Non-API pages: the index page, and a liveness probe."""

from __future__ import annotations

import os

from tornado.web import HTTPError, RedirectHandler, StaticFileHandler

from api.answers.ops import Health
from handlers.base import CrossOriginReads, JsonErrors
from services import codes
from version import version


class HealthHandler(CrossOriginReads):
    """The process serves; says which worker answered (used to measure balancing)."""

    rate_limited = False

    def get(self) -> None:
        health = Health(
            status="ok",
            worker=self.deps.worker_index,
            pid=os.getpid(),
            generation=self.deps.state.generation,
            version=version(),
            mode="production" if self.deps.mode == "production" else "development",
        )
        self.write_json(health)


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
            code, message = codes.RANGE_NOT_SATISFIABLE.code, "the range is outside the file"
            self.finish(self.error_body(None, code, message))


class RedirectToIndex(JsonErrors, RedirectHandler):
    """/index.html -> /, with JSON errors (a bad method or body)."""

    head = RedirectHandler.get
