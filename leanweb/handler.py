"""LeanHandler: the part of tornado.web.RequestHandler's interface a JSON API uses,
without its per-request machinery.

It keeps that interface with the same meaning: `get_argument` and its query/body
forms (last value, UTF-8 checked, control characters replaced, stripped),
`set_header` (values checked for line breaks), `set_status`, `get_status`,
`finish`, `send_error` / `write_error` / `log_exception`, `prepare` / `on_finish`,
`initialize`, `set_default_headers`; errors become answers as `_execute` makes them
(an HTTPError its status, anything else a logged 500) and the default error page is
Tornado's. Differences, on purpose (tests/component/test_lean_parity.py lists them):
an ETag only where a handler asks for one (`etagged`; most API answers are not cached
by validation), no `Server` header, the whole answer written at once (no
`write`/`flush`), and compression by `Compression` rather than an output transform.

HTTP's rules kept here, once for every handler: HEAD is answered wherever GET is (the
same status and headers, Content-Length of GET's body, no body); a 405 says `Allow`
(`answered_methods`); a body of a type the handler does not read (`BODY_TYPES`) is a
415; a GET answer's ETag (its own, or `etagged`'s) matched by `If-None-Match` is a 304.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http.client import responses
from types import TracebackType
from typing import Any, ClassVar, overload

from tornado import httputil
from tornado.escape import xhtml_escape
from tornado.http1connection import HTTP1ServerConnection
from tornado.web import HTTPError, MissingArgumentError

from leanweb.compression import COMPRESSIBLE, Compression, accepts_gzip
from leanweb.request import decode_argument, entity_tags, header, media_type, parse_body

app_log = logging.getLogger("tornado.application")

# What RequestHandler replaces with a space in arguments (it keeps tab, LF, VT, FF, CR).
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f]")
# What a header value may hold (RequestHandler's rule): no line break, which would
# start a header of the client's choosing.
_HEADER_VALUE = re.compile(r"[\x09\x20-\x7e\x80-\xff]*")
_MISSING: Any = object()
# Connections being closed after their last answer (a task must be referenced until done).
_CLOSING: set[asyncio.Future[None]] = set()

# Headers added to every answer after the handler wrote its own (security headers).
Finisher = Callable[[int, httputil.HTTPHeaders], None]

# The methods whose body a handler reads (a body of another type is a 415); a body sent
# with GET is parsed as tornado.web does, never refused.
BODY_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
# Which answers may be revalidated with If-None-Match.
_VALIDATED_METHODS = ("GET", "HEAD")


def answered_methods(handler: type[LeanHandler]) -> tuple[str, ...]:
    """The methods a handler class answers (its 405's `Allow`): those it defines, and
    HEAD wherever it defines GET."""
    return tuple(
        method
        for method in handler.SUPPORTED_METHODS
        if callable(getattr(handler, method.lower(), None))
        or (method == "HEAD" and callable(getattr(handler, "get", None)))
    )


def body_etag(body: bytes) -> str:
    """A strong entity tag of a body: its hash (128 bits, quoted)."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


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


class LeanHandler:
    """A request handler with RequestHandler's interface, as far as a JSON API uses it."""

    SUPPORTED_METHODS: ClassVar[tuple[str, ...]] = (
        "GET",
        "HEAD",
        "POST",
        "DELETE",
        "PATCH",
        "PUT",
        "OPTIONS",
    )
    # The route pattern that matched, as metrics and access logs name it.
    route = "unmatched"
    # Which answers are gzip-compressed (None: none); an application sets it.
    compression: Compression | None = None
    # The media types of a POST/PUT/DELETE/PATCH body this handler reads (parameters
    # such as charset aside); another is a 415. None: any (not checked).
    BODY_TYPES: ClassVar[frozenset[str] | None] = None
    # A 200 answer to GET or HEAD carries a strong ETag of its body (and If-None-Match
    # gets a 304): for answers that hold nothing one reader may not see of another's.
    etagged: ClassVar[bool] = False

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
        self._close_after = False
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
        """Tornado's default error page (RequestHandler.write_error without a traceback)."""
        reason = xhtml_escape(self._reason)
        self.finish(
            f"<html><title>{status_code}: {reason}</title>"
            f"<body>{status_code}: {reason}</body></html>"
        )

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not isinstance(value, HTTPError):
            app_log.error("Uncaught exception", exc_info=(typ, value, tb))  # type: ignore[arg-type]

    # The answer ---------------------------------------------------------------------------

    @property
    def answered(self) -> bool:
        """Whether the answer's status and headers have gone out (nothing can change them)."""
        return self._headers_written

    def clear(self) -> None:
        """Forget the headers and status set so far (before an error answer)."""
        headers = self._headers = httputil.HTTPHeaders()  # set one by one: no Mapping.update
        headers["Content-Type"] = "text/html; charset=UTF-8"
        headers["Date"] = _CLOCK.date()
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
        # Printable ASCII (0x20-0x7e, what nearly every value is) passes without the regex.
        if not (text.isascii() and text.isprintable()) and _HEADER_VALUE.fullmatch(text) is None:
            raise ValueError(f"unsafe header value {text!r}")
        self._headers[name] = text

    def close_connection(self) -> None:
        """Close the connection once this answer is out, saying so to an HTTP/1.1 client
        (`Connection: close`), as Tornado does for a client that asked for it."""
        self._close_after = True

    def finish(self, chunk: str | bytes | None = None) -> None:
        """Send the answer: status, headers and the whole body at once."""
        if self._finished:
            raise RuntimeError("finish() called twice")
        body = b"" if chunk is None else chunk.encode() if isinstance(chunk, str) else chunk
        headers = self._headers
        if self._status_code == 200 and self.request.method in _VALIDATED_METHODS:
            self._validate(body, headers)
        status = self._status_code
        if status in (204, 304) or 100 <= status < 200:
            body = b""
            for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
                headers.pop(name, None)
        else:
            body = self._encoded(body, status, headers)
            headers["Content-Length"] = str(len(body))
        if self._close_after and self.request.version == "HTTP/1.1":
            headers["Connection"] = "close"
        if self._finisher is not None:
            self._finisher(status, headers)
        if self.request.method == "HEAD":
            body = b""
        connection = self.request.connection
        assert connection is not None
        self._headers_written = True
        written = connection.write_headers(
            httputil.ResponseStartLine("", status, self._reason), headers, body
        )
        connection.finish()
        if self._close_after:
            written.add_done_callback(self._close)
        self._finished = True
        try:
            if self._log_function is not None:
                self._log_function(self)
        finally:
            self.on_finish()  # a count of requests in flight must not leak

    def _validate(self, body: bytes, headers: httputil.HTTPHeaders) -> None:
        """The answer's ETag (`etagged`), and 304 when the client holds it already
        (If-None-Match compares weakly, RFC 9110 13.1.2)."""
        if self.etagged and "ETag" not in headers:
            headers["ETag"] = body_etag(body)
        etag = headers.get("ETag")
        held = self.header("If-None-Match")
        if etag is None or held is None:
            return
        tags = entity_tags(held)
        if "*" in tags or etag.removeprefix("W/") in tags:
            self.set_status(304)

    def _close(self, _written: asyncio.Future[None]) -> None:
        """Close the connection, its answer written (closing sooner would drop its end)."""
        server = self.request.server_connection
        if isinstance(server, HTTP1ServerConnection):
            closing = asyncio.ensure_future(server.close())
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)

    def precompressed(self, gzipped: bytes) -> None:
        """The gzip form of the body about to be finished, made once rather than per
        answer (an answer that never changes)."""
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
            or not headers.get("Content-Type", "").startswith(COMPRESSIBLE)
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
        if status_code == 405:
            self.set_header("Allow", ", ".join(answered_methods(type(self))))
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
            unreadable = False
            if self.request.body:  # any method, as tornado.web does
                types = self.BODY_TYPES
                readable = types is None or method not in BODY_METHODS
                if readable or media_type(self.request.headers) in (types or ()):
                    parse_body(self.request)
                else:
                    unreadable = True  # refused once the method is known
            self.path_args = [decode_argument(arg, "url") for arg in path_args]
            result = self.prepare()
            if result is not None:
                await result
            if self._finished:
                return
            call = getattr(self, method.lower(), None)
            if call is None and method == "HEAD":
                call = getattr(self, "get", None)  # finish() leaves the body out
            if call is None:
                raise HTTPError(405)
            if unreadable:
                # The client's Content-Type is not repeated: it may be anything.
                kinds = " or ".join(sorted(self.BODY_TYPES or ()))
                raise HTTPError(415, "this route reads a body of type %s", kinds)
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
