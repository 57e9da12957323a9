"""What every request passes, whatever its route: the body size limit and security headers.

GuardedApplication  the Tornado application; each request's message goes through
                    BodyLimit, which routes it (the API's handlers through
                    leanweb, static files through tornado.web), and every
                    answer gets security_headers.
BodyLimit           a request whose declared Content-Length exceeds `http.max_body_bytes`
                    is answered 413 (JSON) before a byte of its body is read; a chunked
                    body is answered 413 once it passes the limit, and nothing beyond
                    the limit is kept. A Content-Length Tornado cannot read (not one
                    whole number, or beside a Transfer-Encoding) is answered 400 (JSON)
                    at once, where Tornado would send a bare 400. Either way the
                    connection is closed after the answer (the only way not to read
                    the rest). A route whose handler
                    takes more (a picture upload: its `body_limit(**route kwargs)`) has
                    its own limit, by exact path; only its requests may be that large.
security_headers    `X-Content-Type-Options: nosniff` on every answer; a strict
                    Content-Security-Policy and `Referrer-Policy: no-referrer` on HTML
                    (SecurityHeaders applies it to tornado.web's answers).

Tornado's own `max_body_size` (set to the same limit on the HTTPServer) stays as
a backstop: it closes the connection with a bare 400, where this answers JSON.
BodyLimit raises it for the one request of a route with a larger limit, so the
backstop stays tight for every other route.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.web import Application, HTTPError, OutputTransform

from handlers.base import AppDeps, JsonHandler, NotFoundHandler
from leanweb import LeanDelegate, LeanHandler, LeanRoutes, header, server_request

# The index page loads its style sheet and icon from this server and runs no script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

# A chunked body is counted here, not by Tornado (which would answer a bare 400).
_UNLIMITED = 1 << 62


def security_headers(status: int, headers: httputil.HTTPHeaders) -> None:
    """Headers that stop browsers from guessing content types or framing our pages."""
    headers["X-Content-Type-Options"] = "nosniff"
    if headers.get("Content-Type", "").startswith("text/html"):
        headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        headers["Referrer-Policy"] = "no-referrer"


class GuardedApplication(Application):
    """An Application whose requests all pass the body limit and get security headers.

    Routes whose handler is a LeanHandler are matched here (leanweb.LeanRoutes); the
    others (static files, the redirect) by tornado.web; a path neither knows gets
    NotFoundHandler's JSON 404.
    """

    def __init__(
        self,
        handlers: list[tuple[str, type, dict[str, Any]]],
        deps: AppDeps,
        max_body_bytes: int,
        log_function: Callable[[Any], None],
        labels: Mapping[str, str] | None = None,
        **settings: Any,
    ) -> None:
        web = [rule for rule in handlers if not issubclass(rule[1], LeanHandler)]
        super().__init__(web, transforms=[SecurityHeaders], log_function=log_function, **settings)
        # Each route's label for metrics and access logs, by pattern (handlers.route_labels).
        self.route_labels: Mapping[str, str] = labels or {}
        self.lean_routes = LeanRoutes([rule for rule in handlers if rule not in web], labels)
        self.deps = deps
        self.max_body_bytes = max_body_bytes
        # Exact paths whose handler takes a larger body (uploads), and their limits.
        self.body_limits = larger_bodies(handlers, max_body_bytes)
        # A delegate for one request to a LeanHandler: its answer gets the security
        # headers and an access line, like tornado.web's answers.
        self.lean_delegate = functools.partial(
            LeanDelegate, finisher=security_headers, log=log_function
        )

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return BodyLimit(self, server_conn, request_conn)

    def route(self, request: httputil.HTTPServerRequest) -> httputil.HTTPMessageDelegate:
        """The delegate that answers a request, by its path."""
        found = self.lean_routes.find(request)
        if found is not None:
            return self.lean_delegate(request, *found)
        web = self.default_router.find_handler(request)
        if web is not None:
            return web
        return self.lean_delegate(request, NotFoundHandler, {"deps": self.deps}, [], "unmatched")


def larger_bodies(handlers: list[tuple[str, type, dict[str, Any]]], default: int) -> dict[str, int]:
    """The routes whose handler takes a body larger than `default` (its `body_limit`,
    given the route's arguments), by exact path: an upload's route is a literal path."""
    limits: dict[str, int] = {}
    for pattern, handler, kwargs in handlers:
        own = getattr(handler, "body_limit", None)
        limit = own(**kwargs) if own is not None else None
        if limit is not None and limit > default:
            limits[re.sub(r"\\(.)", r"\1", pattern)] = limit
    return limits


class PayloadTooLargeHandler(JsonHandler):
    """Answers 413 as soon as the headers are in (Tornado reads no body first)."""

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


class BadFramingHandler(JsonHandler):
    """Answers 400 for a body whose length cannot be known, as soon as the headers are in
    (Tornado would answer it with a bare 400 and no JSON)."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        # Where this request's body ends is unknown, so the connection cannot go on.
        self.set_header("Connection", "close")

    def prepare(self) -> None:
        super().prepare()
        raise HTTPError(
            400, "Content-Length must be one whole number (and not sent with Transfer-Encoding)"
        )


_DIGITS = re.compile(r"[0-9]{1,18}")


def declared_length(headers: httputil.HTTPHeaders) -> int | None:
    """The Content-Length the client declared, if it is a plain number."""
    value = header(headers, "Content-Length", "").split(",")[0].strip()
    return int(value) if _DIGITS.fullmatch(value) else None


def framing_ok(headers: httputil.HTTPHeaders) -> bool:
    """Whether Tornado can tell where the body ends: no Content-Length, or copies of one
    plain number, and never beside a Transfer-Encoding (Tornado's own rules)."""
    if "Content-Length" not in headers:
        return True
    if "Transfer-Encoding" in headers:
        return False
    pieces = re.split(r",[ \t]*", headers["Content-Length"].strip())
    return len(set(pieces)) == 1 and _DIGITS.fullmatch(pieces[0]) is not None


class BodyLimit(httputil.HTTPMessageDelegate):
    """Passes a request on to its route, unless its body is over the limit: then a JSON 413."""

    def __init__(
        self,
        app: GuardedApplication,
        server_conn: object,
        request_conn: httputil.HTTPConnection,
    ) -> None:
        self._app = app
        self._server_conn = server_conn
        self._conn = request_conn
        self._inner: httputil.HTTPMessageDelegate = _NOWHERE
        self._refusal: httputil.HTTPMessageDelegate | None = None
        self._received = 0
        self._limit = app.max_body_bytes
        self._request: httputil.HTTPServerRequest | None = None
        self._start_line: httputil.RequestStartLine | None = None
        self._headers = httputil.HTTPHeaders()

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self._start_line, self._headers = start_line, headers
        self._request = server_request(
            connection=self._conn,
            server_connection=self._server_conn,
            start_line=start_line,
            headers=headers,
        )
        if self._app.body_limits:
            self._limit = self._app.body_limits.get(self._request.path, self._limit)
        if not framing_ok(headers):
            # Answered without reading a body (and the connection closed after it).
            del headers["Content-Length"]
            headers.pop("Transfer-Encoding", None)
            return self._refuse(BadFramingHandler, {"deps": self._app.deps})
        declared = declared_length(headers)
        if declared is not None and declared > self._limit:
            # Answered without reading: Tornado must not refuse it again with a bare 400.
            self._set_connection_limit(declared)
            return self._refuse(
                PayloadTooLargeHandler, {"deps": self._app.deps, "limit": self._limit}
            )
        if headers.get_list("Transfer-Encoding"):  # chunked (Tornado refuses any other)
            self._set_connection_limit(_UNLIMITED)
        elif self._limit > self._app.max_body_bytes:
            self._set_connection_limit(self._limit)  # this route's larger body passes
        self._inner = self._app.route(self._request)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._refusal is not None:
            return None
        self._received += len(chunk)
        if self._received > self._limit:
            self._inner.on_connection_close()  # drops what the route buffered so far
            return self._refuse(
                PayloadTooLargeHandler, {"deps": self._app.deps, "limit": self._limit}
            )
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        (self._refusal or self._inner).finish()

    def on_connection_close(self) -> None:
        (self._refusal or self._inner).on_connection_close()

    def _set_connection_limit(self, size: int) -> None:
        if isinstance(self._conn, HTTP1Connection):
            self._conn.set_max_body_size(size)

    def _refuse(self, handler: type[JsonHandler], kwargs: dict[str, Any]) -> Awaitable[None] | None:
        assert self._start_line is not None and self._request is not None
        self._refusal = self._app.lean_delegate(
            self._request,
            handler,
            kwargs,
            [],
            "unmatched",
            at_headers=True,
        )
        return self._refusal.headers_received(self._start_line, self._headers)


class _Nowhere(httputil.HTTPMessageDelegate):
    """Where a request's parts go before its headers are in (nothing comes first)."""


_NOWHERE = _Nowhere()


class SecurityHeaders(OutputTransform):
    """security_headers on the answers of tornado.web's handlers."""

    def transform_first_chunk(
        self,
        status_code: int,
        headers: httputil.HTTPHeaders,
        chunk: bytes,
        finishing: bool,
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        security_headers(status_code, headers)
        return status_code, headers, chunk
