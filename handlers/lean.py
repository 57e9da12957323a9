"""The API's request handlers, without tornado.web's per-request machinery.

Tornado's HTTP server (tornado.http1connection) still reads every request and
writes every answer; what this replaces is tornado.web's layer between the two
for the JSON API: the RequestHandler object (its header defaults, output
transforms, ETag hashing, UI modules, XSRF and cookie hooks) and the
Application's routing through every rule. On the warm balance query that layer
cost as much as the whole rest of a pre-forked Tornado hello-world
(docs/benchmarks.md, "The warm path"); the static files and the redirect stay
on tornado.web, which serves them well.

LeanHandler keeps the part of RequestHandler's interface our handlers use, with
the same meaning: `get_argument` and its query/body forms (last value, UTF-8
checked, control characters replaced, stripped), `set_header` (values checked
for line breaks), `set_status`, `get_status`, `finish`, `send_error` /
`write_error` / `log_exception`, `prepare` / `on_finish`, `initialize`.
Differences, on purpose: no ETag (API answers are `no-store`; a cover is
cached by max-age) and no `Server` header. Compression is ours too: tornado.web's
output transforms (`compress_response`) never see these answers, so `finish`
gzips a large text answer itself when the client accepts it (`Compression`).

LeanRoutes matches a path to its handler: literal paths by one dictionary
lookup, patterns with tornado.routing.PathMatches in the order given.
LeanDelegate is the HTTPMessageDelegate of one request routed here.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from http.client import responses
from types import TracebackType
from typing import Any, ClassVar, overload

from tornado import httputil
from tornado.routing import PathMatches
from tornado.web import HTTPError, MissingArgumentError

app_log = logging.getLogger("tornado.application")

# What RequestHandler replaces with a space in arguments (it keeps tab, LF, VT, FF, CR).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f]")
# What a header value may hold (RequestHandler's rule): no line break, which would
# start a header of the client's choosing.
_HEADER_VALUE = re.compile(r"[\x09\x20-\x7e\x80-\xff]*")
_MISSING: Any = object()


class _Clock:
    """The `Date` header's value, formatted once a second rather than once a request."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def date(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second, self._value = second, formatdate(now, usegmt=True)
        return self._value


_CLOCK = _Clock()

# Headers added to every answer after the handler wrote its own (handlers/guards.py).
Finisher = Callable[[int, httputil.HTTPHeaders], None]

# Answers worth compressing: text. An image or a compressed file gains nothing.
_COMPRESSIBLE = ("application/json", "text/", "application/javascript")


@dataclass(frozen=True, slots=True)
class Compression:
    """Which answers go gzip-compressed to a client that accepts it (`api.gzip_*`).

    Only successful text answers of at least min_bytes: the large JSON (the OpenAPI
    document, a term's timetable, a long history, a page of books). BREACH (guessing
    a secret from the compressed size of answers that also echo the attacker's text)
    needs a secret repeated in many answers next to reflected input: no answer here
    holds both. The tokens an answer carries are new each time (a session, a feed),
    the other answers hold the student's own data, and no answer echoes request text
    beside a secret (a password is never echoed).
    """

    min_bytes: int
    level: int


def accepts_gzip(headers: httputil.HTTPHeaders) -> bool:
    """Whether the request's Accept-Encoding allows gzip (RFC 9110 12.5.3: `q=0`
    refuses it; `*` stands for it when it is not named)."""
    value = header(headers, "Accept-Encoding")
    if not value:
        return False
    anything = False
    for item in value.split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(number.strip())
                except ValueError:
                    weight = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return weight > 0
        if coding == "*":
            anything = weight > 0
    return anything


class LeanHandler:
    """A request handler with RequestHandler's interface, as far as the API uses it."""

    SUPPORTED_METHODS: ClassVar[tuple[str, ...]] = (
        "GET",
        "HEAD",
        "POST",
        "DELETE",
        "PATCH",
        "PUT",
        "OPTIONS",
    )
    # The route pattern that matched, as metrics and the access log name it.
    route = "unmatched"
    # Which answers are gzip-compressed (None: none); set per app (handlers/base.py).
    compression: Compression | None = None

    def __init__(
        self,
        request: httputil.HTTPServerRequest,
        route: str,
        finisher: Finisher | None,
        log: Callable[[Any], None] | None,
        **kwargs: Any,
    ) -> None:
        self.request = request
        self.route = route
        self._finisher = finisher
        self._log_function = log
        self._finished = False
        self._headers_written = False
        self._gzipped: bytes | None = None
        self._headers: httputil.HTTPHeaders
        self._status_code: int
        self._reason: str
        self.path_args: list[str] = []
        self.clear()  # sets the three above
        self.initialize(**kwargs)

    # What subclasses override -----------------------------------------------------------

    def _initialize(self) -> None:
        return None

    # Takes the route's arguments (as RequestHandler's does: subclasses name their own).
    initialize: Callable[..., None] = _initialize

    def set_default_headers(self) -> None:
        return None

    def prepare(self) -> Awaitable[None] | None:
        return None

    def on_finish(self) -> None:
        return None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(f"{status_code}: {self._reason}")

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not isinstance(value, HTTPError):
            app_log.error("Uncaught exception", exc_info=(typ, value, tb))  # type: ignore[arg-type]

    # The answer ---------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget the headers and status set so far (before an error answer)."""
        self._headers = httputil.HTTPHeaders(
            {"Content-Type": "text/html; charset=UTF-8", "Date": _CLOCK.date()}
        )
        self._gzipped = None
        self._status_code, self._reason = 200, "OK"
        self.set_default_headers()

    def set_status(self, status_code: int, reason: str | None = None) -> None:
        self._status_code = status_code
        self._reason = reason or responses.get(status_code, "Unknown")

    def get_status(self) -> int:
        return self._status_code

    def set_header(self, name: str, value: str | int | bytes) -> None:
        if isinstance(value, bytes):
            value = value.decode("latin1")
        text = str(value)
        if _HEADER_VALUE.fullmatch(text) is None:
            raise ValueError(f"unsafe header value {text!r}")
        self._headers[name] = text

    def finish(self, chunk: str | bytes | None = None) -> None:
        """Send the answer: status, headers and the whole body at once."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        body = b"" if chunk is None else chunk.encode() if isinstance(chunk, str) else chunk
        status = self._status_code
        headers = self._headers
        if status in (204, 304) or 100 <= status < 200:
            body = b""
            for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
                headers.pop(name, None)
        else:
            body = self._encoded(body, status, headers)
            headers["Content-Length"] = str(len(body))
        if self._finisher is not None:
            self._finisher(status, headers)
        if self.request.method == "HEAD":
            body = b""
        connection = self.request.connection
        assert connection is not None
        self._headers_written = True
        connection.write_headers(
            httputil.ResponseStartLine("", status, self._reason), headers, body
        )
        connection.finish()
        self._finished = True
        try:
            if self._log_function is not None:
                self._log_function(self)
        finally:
            self.on_finish()  # the in-flight count must not leak (a drain waits on it)

    def precompressed(self, gzipped: bytes) -> None:
        """The gzip form of the body about to be finished, made once rather than per
        answer (an answer that never changes: the OpenAPI document)."""
        self._gzipped = gzipped

    def _encoded(self, body: bytes, status: int, headers: httputil.HTTPHeaders) -> bytes:
        """The body as it goes out: gzip-compressed if it is large text and the client
        accepts gzip (with `Vary: Accept-Encoding` on every answer that could be)."""
        compression = self.compression
        if (
            compression is None
            or status != 200
            or len(body) < compression.min_bytes
            or "Content-Encoding" in headers
            or not headers.get("Content-Type", "").startswith(_COMPRESSIBLE)
        ):
            return body
        headers.add("Vary", "Accept-Encoding")
        if not accepts_gzip(self.request.headers):
            return body
        headers["Content-Encoding"] = "gzip"
        etag = headers.get("ETag")
        if etag and not etag.startswith("W/"):
            # Other bytes than the strong tag named: weak, as nginx makes it (If-None-Match
            # compares weakly, so a client's cached copy still matches).
            headers["ETag"] = "W/" + etag
        if self._gzipped is not None:
            return self._gzipped
        return gzip.compress(body, compresslevel=compression.level, mtime=0)

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        """An error answer (write_error's), unless the answer has gone out already."""
        if self._headers_written:
            if not self._finished:
                self._finished = True
                self.request.connection.finish()  # type: ignore[union-attr]
            return
        self.clear()
        exc = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        self.set_status(status_code, exc.reason if isinstance(exc, HTTPError) else None)
        try:
            self.write_error(status_code, **kwargs)
        except Exception:
            app_log.error("Uncaught exception in write_error", exc_info=True)
        if not self._finished:
            self.finish()

    # The request --------------------------------------------------------------------------

    @overload
    def header(self, name: str) -> str | None: ...
    @overload
    def header(self, name: str, default: str) -> str: ...
    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header's value (default when it is missing)."""
        return header(self.request.headers, name, default)

    @overload
    def get_argument(self, name: str) -> str: ...
    @overload
    def get_argument(self, name: str, default: str, strip: bool = True) -> str: ...
    @overload
    def get_argument(self, name: str, default: None, strip: bool = True) -> str | None: ...
    def get_argument(self, name: str, default: Any = _MISSING, strip: bool = True) -> str | None:
        """The last value of a query or body argument (400 if missing and no default)."""
        return self._argument(self.request.arguments, name, default, strip)

    @overload
    def get_query_argument(self, name: str) -> str: ...
    @overload
    def get_query_argument(self, name: str, default: str, strip: bool = True) -> str: ...
    @overload
    def get_query_argument(self, name: str, default: None, strip: bool = True) -> str | None: ...
    def get_query_argument(
        self, name: str, default: Any = _MISSING, strip: bool = True
    ) -> str | None:
        return self._argument(self.request.query_arguments, name, default, strip)

    @overload
    def get_body_argument(self, name: str) -> str: ...
    @overload
    def get_body_argument(self, name: str, default: str, strip: bool = True) -> str: ...
    @overload
    def get_body_argument(self, name: str, default: None, strip: bool = True) -> str | None: ...
    def get_body_argument(
        self, name: str, default: Any = _MISSING, strip: bool = True
    ) -> str | None:
        return self._argument(self.request.body_arguments, name, default, strip)

    def _argument(
        self, source: dict[str, list[bytes]], name: str, default: str | None, strip: bool
    ) -> str | None:
        values = source.get(name)
        if not values:
            if default is _MISSING:
                raise MissingArgumentError(name)
            return default
        text = decode_argument(values[-1], name)
        text = _CONTROL_CHARS.sub(" ", text)
        return text.strip() if strip else text

    # Running one request ------------------------------------------------------------------

    async def execute(self, path_args: list[bytes]) -> None:
        """prepare(), then the method's handler, then finish(); errors become answers."""
        try:
            method = self.request.method or ""
            if method not in self.SUPPORTED_METHODS:
                raise HTTPError(405)
            if self.request.body:  # any method, as tornado.web does
                parse_body(self.request)
            self.path_args = [decode_argument(arg, "url") for arg in path_args]
            result = self.prepare()
            if result is not None:
                await result
            if self._finished:
                return
            call = getattr(self, method.lower(), None)
            if call is None:
                raise HTTPError(405)
            result = call(*self.path_args)
            if result is not None:
                await result
            if not self._finished:
                self.finish()
        except Exception as exc:
            self._failed(exc)
        except asyncio.CancelledError:
            if not self._finished:
                self.send_error(500)
            raise

    def _failed(self, exc: Exception) -> None:
        try:
            self.log_exception(type(exc), exc, exc.__traceback__)
        except Exception:
            app_log.error("Exception in exception handler", exc_info=True)
        if self._finished:
            return
        status = exc.status_code if isinstance(exc, HTTPError) else 500
        try:
            self.send_error(status, exc_info=sys.exc_info())
        except Exception:
            app_log.error("Exception in exception handler", exc_info=True)


@overload
def header(headers: httputil.HTTPHeaders, name: str) -> str | None: ...
@overload
def header(headers: httputil.HTTPHeaders, name: str, default: str) -> str: ...
@overload
def header(headers: httputil.HTTPHeaders, name: str, default: None) -> str | None: ...
def header(headers: httputil.HTTPHeaders, name: str, default: str | None = None) -> str | None:
    """A request header's value, as HTTPHeaders.get gives it (repeated ones joined by
    commas), without Mapping.get's KeyError for a missing one (most are missing)."""
    values = headers.get_list(name)
    return ",".join(values) if values else default


def decode_argument(value: bytes, name: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "Invalid unicode in %s: %r", name, value[:40]) from None


def parse_body(request: httputil.HTTPServerRequest) -> None:
    """Form and multipart bodies into request.body_arguments (and request.arguments)."""
    try:
        httputil.parse_body_arguments(
            header(request.headers, "Content-Type", ""),
            request.body,
            request.body_arguments,
            request.files,
            request.headers,
        )
    except httputil.HTTPInputError as exc:
        raise HTTPError(400, "Invalid body: %s", exc) from exc
    for name, values in request.body_arguments.items():
        request.arguments.setdefault(name, []).extend(values)


# Routing ------------------------------------------------------------------------------------

_REGEX_SYNTAX = re.compile(r"[()\[\]{}*+?|^$.]")
# What a route pattern holds that its label (for metrics and logs) leaves out.
ROUTE_SYNTAX = re.compile(r"[()$\\^]")


class LeanRoutes:
    """Path -> (handler class, its arguments, path arguments, route label)."""

    def __init__(self, rules: list[tuple[str, type[LeanHandler], dict[str, Any]]]) -> None:
        self._exact: dict[str, tuple[type[LeanHandler], dict[str, Any], str]] = {}
        self._patterns: list[tuple[PathMatches, type[LeanHandler], dict[str, Any], str]] = []
        for pattern, handler, kwargs in rules:
            label = ROUTE_SYNTAX.sub("", pattern) or "/"
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
