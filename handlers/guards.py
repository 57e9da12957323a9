"""What every request passes, whatever its route: the body size limit and security headers.

GuardedApplication  the Tornado application; each request's message goes through
                    BodyLimit before its handler sees it, and every answer through
                    SecurityHeaders.
BodyLimit           a request whose declared Content-Length exceeds `http.max_body_bytes`
                    is answered 413 (JSON) before a byte of its body is read; a chunked
                    body is answered 413 once it passes the limit, and nothing beyond
                    the limit is kept. Either way the connection is closed after the
                    answer (the only way not to read the rest).
SecurityHeaders     `X-Content-Type-Options: nosniff` on every answer; a strict
                    Content-Security-Policy and `Referrer-Policy: no-referrer` on HTML.

Tornado's own `max_body_size` (set to the same limit on the HTTPServer) stays as
a backstop: it closes the connection with a bare 400, where this answers JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.web import Application, HTTPError, OutputTransform, stream_request_body

from handlers.base import AppDeps, JsonHandler

# The index page loads its style sheet and icon from this server and runs no script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# A chunked body is counted here, not by Tornado (which would answer a bare 400).
_UNLIMITED = 1 << 62


class GuardedApplication(Application):
    """An Application whose requests all pass the body limit and get security headers."""

    def __init__(
        self,
        handlers: list[Any],
        deps: AppDeps,
        max_body_bytes: int,
        **settings: Any,
    ) -> None:
        super().__init__(handlers, transforms=[SecurityHeaders], **settings)
        self.deps = deps
        self.max_body_bytes = max_body_bytes

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return BodyLimit(
            self, server_conn, request_conn, super().start_request(server_conn, request_conn)
        )


@stream_request_body
class PayloadTooLargeHandler(JsonHandler):
    """Answers 413 as soon as the headers are in (streaming: Tornado reads no body first)."""

    def initialize(self, deps: AppDeps, limit: int) -> None:  # type: ignore[override]
        super().initialize(deps)
        self.limit = limit

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # The rest of the body is not read, so the connection cannot carry another request.
        self.set_header("Connection", "close")

    def prepare(self) -> None:
        super().prepare()
        raise HTTPError(413, "the request body must not exceed %d bytes", self.limit)

    def data_received(self, chunk: bytes) -> None:
        return None


def declared_length(headers: httputil.HTTPHeaders) -> int | None:
    """The Content-Length the client declared, if it is a plain number."""
    value = headers.get("Content-Length", "").split(",")[0].strip()
    return int(value) if value.isdigit() else None


class BodyLimit(httputil.HTTPMessageDelegate):
    """Passes a request on to its route, unless its body is over the limit: then a JSON 413."""

    def __init__(
        self,
        app: GuardedApplication,
        server_conn: object,
        request_conn: httputil.HTTPConnection,
        inner: httputil.HTTPMessageDelegate,
    ) -> None:
        self._app = app
        self._server_conn = server_conn
        self._conn = request_conn
        self._inner = inner
        self._refusal: httputil.HTTPMessageDelegate | None = None
        self._received = 0
        self._start_line: httputil.RequestStartLine | None = None
        self._headers = httputil.HTTPHeaders()

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self._start_line, self._headers = start_line, headers
        declared = declared_length(headers)
        if declared is not None and declared > self._app.max_body_bytes:
            # Answered without reading: Tornado must not refuse it again with a bare 400.
            self._set_connection_limit(declared)
            return self._refuse()
        if "Transfer-Encoding" in headers:  # chunked (Tornado refuses any other)
            self._set_connection_limit(_UNLIMITED)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._refusal is not None:
            return None
        self._received += len(chunk)
        if self._received > self._app.max_body_bytes:
            self._inner.on_connection_close()  # drops what the route buffered so far
            return self._refuse()
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        (self._refusal or self._inner).finish()

    def on_connection_close(self) -> None:
        (self._refusal or self._inner).on_connection_close()

    def _set_connection_limit(self, size: int) -> None:
        if isinstance(self._conn, HTTP1Connection):
            self._conn.set_max_body_size(size)

    def _refuse(self) -> Awaitable[None] | None:
        assert self._start_line is not None
        request = httputil.HTTPServerRequest(
            connection=self._conn,
            server_connection=self._server_conn,
            start_line=self._start_line,
            headers=self._headers,
        )
        self._refusal = self._app.get_handler_delegate(
            request,
            PayloadTooLargeHandler,
            {"deps": self._app.deps, "limit": self._app.max_body_bytes},
        )
        return self._refusal.headers_received(self._start_line, self._headers)


class SecurityHeaders(OutputTransform):
    """Headers that stop browsers from guessing content types or framing our pages."""

    def transform_first_chunk(
        self,
        status_code: int,
        headers: httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        headers["X-Content-Type-Options"] = "nosniff"
        if headers.get("Content-Type", "").startswith("text/html"):
            headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
            headers["Referrer-Policy"] = "no-referrer"
        return status_code, headers, chunk
