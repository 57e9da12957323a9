"""The 2013 jnu.fm endpoints: same paths, methods, parameters and JSON shapes. Here the
handler base every 2013 endpoint shares (LegacyHandler) and the 2013 account API
(accounts.py); each school system's 2013 endpoints are in its package
(systems/<name>/legacy.py). Every error body is {"data": null, "error": {...}}, so a
2013 client reading ["data"] shows nothing instead of crashing. README lists every
difference from 2013.
"""

from __future__ import annotations

import json
from typing import Any

from api.answers.common import AnswerModel, ErrorBody, LegacyError
from handlers.base import AppDeps, JsonHandler


def body_style(deps: AppDeps) -> str:
    """`api.legacy_body` of this worker's settings ("compact" or "2013")."""
    return "2013" if deps.legacy_body == "2013" else "compact"


def encode(body: Any, style: str) -> str:
    """A legacy body (an answer model, api/answers/, or plain JSON values): compact, or the
    2013 server's bytes.

    2013 answered with Flask 0.10's jsonify on Python 2.7: indent 2, ASCII
    escapes, sorted keys, and Python 2's ", " item separator (a space at the
    end of every line but a block's last). The log's balance answers were 20
    bytes: `{\\n  "data": "6.50"\\n}`, a balance of 4 characters.
    """
    if isinstance(body, AnswerModel):
        if style != "2013":
            return body.json_text()
        body = body.model_dump(mode="json")
    if style == "2013":
        return json.dumps(
            body, indent=2, ensure_ascii=True, sort_keys=True, separators=(", ", ": ")
        )
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class LegacyHandler(JsonHandler):
    """Answers in the 2013 style: a body of `api.legacy_body`, errors beside `"data": null`."""

    def initialize(self, deps: AppDeps) -> None:
        super().initialize(deps)
        self.style = body_style(deps)

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(encode(body, self.style))

    def error_body(self, exc: BaseException | None, code: str, message: str) -> str:
        # "data" beside "error": a 2013 client reads body["data"] and finds nothing.
        return encode(
            LegacyError(data=None, error=ErrorBody(code=code, message=message)), self.style
        )
