"""From a request to its LeanHandler: routes, the message delegate, an application.

LeanRoutes matches a path to its handler: literal paths by one dictionary lookup,
patterns with tornado.routing.PathMatches in the order given. Each route has a
label for metrics and access logs: the application's own (`labels`, by pattern),
else `route_label` of its pattern; "unmatched" for a path no route takes. LeanDelegate is the
HTTPMessageDelegate of one request routed here: it collects the body, then runs
the handler. LeanApplication serves a list of routes on tornado's HTTPServer, with
a 404 for any other path (an application that mixes in tornado.web's handlers
builds its own from LeanRoutes and LeanDelegate).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from tornado import httputil
from tornado.routing import PathMatches
from tornado.web import HTTPError

from leanweb.handler import Finisher, LeanHandler
from leanweb.request import server_request

_REGEX_SYNTAX = re.compile(r"[()\[\]{}*+?|^$.]")

Rule = tuple[str, type[LeanHandler], dict[str, Any]]


def _group_end(pattern: str, start: int) -> int:
    """The index just past the `)` that closes the group opened at `start`."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(pattern)


def route_label(pattern: str, names: Sequence[str] = ()) -> str:
    r"""A route's label for metrics and logs: its pattern with each group named.

    `/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics` with names ["token"] ->
    "/v1/calendar/{token}.ics". A group without a name is "{arg}" ("{arg2}" for the
    second...), one that holds only a literal is that literal (`/(favicon\.ico)`
    -> "/favicon.ico"). Its words are the pattern's, so labels are as many as routes.
    """
    out: list[str] = []
    group = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
        elif ch == "(":
            end = _group_end(pattern, i)
            inner = pattern[i + 1 : end - 1]
            group += 1
            if not _REGEX_SYNTAX.search(re.sub(r"\\.", "", inner)):
                out.append(re.sub(r"\\(.)", r"\1", inner))
            elif group <= len(names):
                out.append("{" + names[group - 1] + "}")
            else:
                out.append("{arg}" if group == 1 else f"{{arg{group}}}")
            i = end
        elif ch in "^$":
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out) or "/"


class LeanRoutes:
    """Path -> (handler class, its arguments, path arguments, route label).

    labels: each route's label by its pattern (else `route_label(pattern)`), built once.
    """

    def __init__(self, rules: list[Rule], labels: Mapping[str, str] | None = None) -> None:
        self._exact: dict[str, tuple[type[LeanHandler], dict[str, Any], str]] = {}
        self._patterns: list[tuple[PathMatches, type[LeanHandler], dict[str, Any], str]] = []
        for pattern, handler, kwargs in rules:
            label = (labels or {}).get(pattern) or route_label(pattern)
            literal = re.sub(r"\\(.)", r"\1", pattern)
            if not _REGEX_SYNTAX.search(re.sub(r"\\.", "", pattern)):
                self._exact.setdefault(literal, (handler, kwargs, label))
            else:
                self._patterns.append((PathMatches(pattern), handler, kwargs, label))

    def find(
        self, request: httputil.HTTPServerRequest
    ) -> tuple[type[LeanHandler], dict[str, Any], list[bytes], str] | None:
        found = self._exact.get(request.path)
        if found is not None:
            return found[0], found[1], [], found[2]
        for matcher, handler, kwargs, label in self._patterns:
            match = matcher.match(request)
            if match is not None:
                args = match.get("path_args") or []
                return handler, kwargs, [b"" if a is None else a for a in args], label
        return None


class LeanDelegate(httputil.HTTPMessageDelegate):
    """One request to a LeanHandler: collects the body, then runs the handler."""

    def __init__(
        self,
        request: httputil.HTTPServerRequest,
        handler: type[LeanHandler],
        kwargs: dict[str, Any],
        path_args: list[bytes],
        route: str,
        finisher: Finisher | None,
        log: Callable[[Any], None] | None,
        *,
        at_headers: bool = False,
    ) -> None:
        self.request = request
        self._handler = handler
        self._kwargs = kwargs
        self._path_args = path_args
        self._route = route
        self._finisher = finisher
        self._log = log
        # Answer as soon as the headers are in (a refusal that reads no body).
        self._at_headers = at_headers
        self._chunks: list[bytes] | None = []

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        if self._at_headers:
            # Tornado reads no body before this answer is out (then closes the connection).
            return self._run()
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        if self._chunks is not None and not self._at_headers:
            self._chunks.append(chunk)
        return None

    def finish(self) -> None:
        if self._at_headers:
            return
        self.request.body = b"".join(self._chunks or ())
        self._chunks = None
        self._run()

    def on_connection_close(self) -> None:
        self._chunks = None

    def _run(self) -> asyncio.Future[None]:
        handler = self._handler(
            self.request, self._route, self._finisher, self._log, **self._kwargs
        )
        task = asyncio.ensure_future(handler.execute(self._path_args))
        task.add_done_callback(_retrieve)
        return task


def _retrieve(task: asyncio.Future[None]) -> None:
    if not task.cancelled():
        task.exception()


class NotFoundHandler(LeanHandler):
    """A path no route takes: 404 whatever the method (tornado.web's ErrorHandler)."""

    def prepare(self) -> None:
        raise HTTPError(404)


class LeanApplication(httputil.HTTPServerConnectionDelegate):
    """Routes LeanHandlers on tornado's HTTPServer: `HTTPServer(LeanApplication(rules))`."""

    def __init__(
        self,
        rules: list[Rule],
        *,
        not_found: type[LeanHandler] = NotFoundHandler,
        finisher: Finisher | None = None,
        log: Callable[[Any], None] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.routes = LeanRoutes(rules, labels)
        self.not_found = not_found
        self.finisher = finisher
        self.log = log

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _Routing(self, server_conn, request_conn)

    def delegate(self, request: httputil.HTTPServerRequest) -> LeanDelegate:
        """The delegate that answers a request, by its path."""
        found = self.routes.find(request)
        if found is None:
            found = (self.not_found, {}, [], "unmatched")
        return LeanDelegate(request, *found, self.finisher, self.log)


class _Routing(httputil.HTTPMessageDelegate):
    """Builds the request from its headers, then hands every part to its route."""

    def __init__(
        self, app: LeanApplication, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> None:
        self._app = app
        self._server_conn = server_conn
        self._conn = request_conn
        self._inner: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        request = server_request(
            connection=self._conn,
            server_connection=self._server_conn,
            start_line=start_line,
            headers=headers,
        )
        self._inner = self._app.delegate(request)
        return self._inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        assert self._inner is not None
        return self._inner.data_received(chunk)

    def finish(self) -> None:
        if self._inner is not None:
            self._inner.finish()

    def on_connection_close(self) -> None:
        if self._inner is not None:
            self._inner.on_connection_close()
