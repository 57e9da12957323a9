"""The base handler: JSON answers, and the one place where errors become HTTP.

services.errors.ServiceError  -> its status, code and message (the tree is in
                                 services/errors.py); Retry-After its own, or
                                 api.retry_after_s for a 5xx
SQLAlchemyError (escaped)     -> 503 storage_unavailable
tornado HTTPError 404/405/... -> not_found / method_not_allowed (with `Allow`) /
                                 unsupported_media_type / ...
anything else                 -> 500 internal_error, logged with its traceback

CrossOriginReads marks the password-free handlers (the library, calendar feed URLs,
the API description, liveness) whose answers a page of another site may read, as
`api.cors_origins` allows: never a route that takes a password or a token in a
header, whose answer a page could otherwise read with a student's credentials.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from sqlalchemy.exc import SQLAlchemyError
from tornado.httputil import HTTPServerRequest
from tornado.web import HTTPError, RequestHandler

from api.answers.common import AnswerModel, Error, ErrorBody
from handlers import params as contract_params
from leanweb import Compression, LeanHandler, answered_methods, header
from leanweb import route_label as pattern_label
from observability import metrics
from observability.decisions import refusals
from observability.logs import access_lines, redacted_uri
from observability.probes import OpsDeps
from observability.timing import RequestTimer, activate, request_id_from
from services import codes
from services.addresses import client_ip
from services.calendar import FeedCache
from services.callers import Caller, ClientRegistry, anonymous
from services.captures import PageCaptures
from services.errors import (
    BadInput,
    RateLimited,
    ServiceError,
    StorageUnavailable,
    TokenRefused,
    TokenScope,
)
from services.gate import Lockout
from services.pipeline import Answer
from services.pipeline.ready import ReadyHit
from services.rates import RequestRateLimiter
from services.sessions import SessionService
from services.tokens import TokenStore
from systems.academic.service import AcademicService
from systems.card.service import CardService
from systems.library.service import LibraryService

if TYPE_CHECKING:
    from channels.wechat.service import WeChatService
    from services.accounts import AccountService
    from services.watches.store import WatchStore
    from services.wechat_followers import Followers

access_log = logging.getLogger("jnufm.access")
error_log = logging.getLogger("jnufm.error")


@dataclass(slots=True)
class WorkerState:
    """Mutable per-worker facts the handlers keep up to date."""

    inflight: int = 0
    # Set when the worker stops or is replaced: /readyz answers 503 and every
    # answer closes its connection.
    draining: bool = False
    # Which configuration generation this worker serves (bumped by each reload).
    generation: int = 0
    # While stopping: when (time.monotonic()) every request must have its answer.
    stop_by: float | None = None


@dataclass(frozen=True, slots=True)
class AppDeps:
    """What handlers need, built per worker after the fork."""

    card: CardService
    retry_after_s: int
    worker_index: int = 0
    state: WorkerState = field(default_factory=WorkerState)
    ops: OpsDeps = field(default_factory=OpsDeps)
    rate_limiter: RequestRateLimiter | None = None
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    # How the 2013 endpoints write their JSON: "compact", or the 2013 server's bytes.
    legacy_body: str = "compact"
    # Where clients reach this server (Settings.public_base_url): the base of every
    # absolute URL an answer carries, never the request's Host header.
    public_url: str = "http://127.0.0.1:8000"
    # Settings.mode: /healthz says it, so the page offers no simulator credentials in production.
    mode: str = "development"
    # Which answers go gzip-compressed (`api.gzip_*`; None: none): the large JSON (the
    # OpenAPI document, a term's timetable, a long history, a page of books). BREACH
    # (guessing a secret from the compressed size of answers that also echo the
    # attacker's text) needs a secret repeated in many answers next to reflected input:
    # no answer here holds both. The tokens an answer carries are new each time (a
    # session, a feed), the other answers hold the student's own data, and no answer
    # echoes request text beside a secret (a password is never echoed).
    compression: Compression | None = None
    academic: AcademicService | None = None
    library: LibraryService | None = None
    # Every registered school system's service, by name (systems/): a system's own
    # handlers read theirs here; the fields above are for the parts of the server that
    # depend on a system by type (students' sessions, 2013 accounts, the dashboard).
    systems: Mapping[str, object] = field(default_factory=dict)
    # Each upstream's budget of concurrent school requests, by name (the dashboard's).
    school_budgets: Mapping[str, int] = field(default_factory=dict)
    # Who is asking: registered clients, and how addresses are counted.
    clients: ClientRegistry | None = None
    ipv6_prefix: int = 64
    # Bearer tokens (student sessions, calendar feeds, 2013 accounts) and built feeds.
    tokens: TokenStore | None = None
    sessions: SessionService | None = None
    feed_cache: FeedCache = field(default_factory=FeedCache)
    accounts: AccountService | None = None
    # Who is locked out or slowed down now (the dashboard's view of the gate).
    lockouts: Callable[[], Awaitable[list[Lockout]]] | None = None
    # The school pages no client could read, kept redacted (the dashboard lists them).
    page_captures: PageCaptures | None = None
    # The WeChat official accounts this server answers (channels/wechat/), if configured.
    wechat: WeChatService | None = None
    # WeChat followers bound to students (POST /v1/wechat/bind), if WeChat is configured.
    followers: Followers | None = None
    # Students' watches (/v1/watches), if built (services/watches/).
    watches: WatchStore | None = None
    # How access lines name a student (services.credentials.pseudonym).
    pseudonym: Callable[[str], str] = field(default=lambda student_id: "-")
    # The origins whose pages may read the password-free answers (`api.cors_origins`;
    # "*": any; empty: none), and how long a browser keeps a preflight's answer.
    cors_origins: frozenset[str] = frozenset()
    cors_max_age_s: int = 600


STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

# What a body may be where a route reads a form: URL-encoded or multipart (as 2013's
# server read them); /v1/ reads JSON too.
FORM_BODIES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def allowed_methods(handler: type) -> tuple[str, ...]:
    """The methods a route's handler class answers, for its 405's `Allow`: a
    LeanHandler's (leanweb.answered_methods), or a tornado.web handler's own (those
    that are not RequestHandler's 405)."""
    if issubclass(handler, LeanHandler):
        return answered_methods(handler)
    return tuple(
        method
        for method in RequestHandler.SUPPORTED_METHODS
        if method in getattr(handler, "SUPPORTED_METHODS", ())
        and getattr(handler, method.lower()) is not getattr(RequestHandler, method.lower())
    )


def route_label(handler: RequestHandler | LeanHandler) -> str:
    """The label of the route that took the request, for metrics and logs (one per route,
    never a value from the path): "/v1/card/balance", "/v1/calendar/{token}.ics"."""
    if isinstance(handler, LeanHandler):
        return handler.route
    # tornado.web's routes (static files): labelled by the application's table too.
    labels: Mapping[str, str] = getattr(handler.application, "route_labels", {})
    for rule in getattr(handler.application.wildcard_router, "rules", []):
        if rule.matcher.match(handler.request) is not None:
            pattern = getattr(rule.matcher, "regex", None)
            if pattern is not None:
                source = pattern.pattern.removesuffix("$")  # tornado's own anchor
                return labels.get(source) or pattern_label(source)
    return "unmatched"


@dataclass(slots=True)
class Who:
    """What an access line says of who asked and how it ended (never a password or a
    student number: the student by pseudonym)."""

    address: str  # the client's address
    client: str = "-"  # the registered client, if any
    end_user: str = "-"  # the end user's address a registered client passed on
    student: str = "-"
    outcome: str = "-"  # "ok", or the error code


def log_request(
    handler: RequestHandler | LeanHandler, path_words: frozenset[str] | None = None
) -> None:
    """Access log line and HTTP metrics: status, method, redacted URI, route, duration,
    cache status, request id. Never the password.

    path_words: the words of every route's path (handlers.path_words); of a request no
    route took, or a static file refused, only these are shown of the path.
    """
    status = handler.get_status()
    seconds = handler.request.request_time()
    route = route_label(handler)
    method = handler.request.method or "-"
    timer: RequestTimer | None = getattr(handler, "timer", None)
    cache = timer.cache_status if timer is not None else "-"
    # A path no handler could use (no route, a static file refused) may be anything.
    unknown = route == "unmatched" or (status >= 400 and not isinstance(handler, LeanHandler))
    uri = redacted_uri(handler.request.uri or "", path_words if unknown else None)
    metrics.observe_http_request(route, method, status, seconds)
    level = logging.INFO if status < 500 else logging.WARNING
    request_id = timer.request_id if timer is not None else ""
    duration_ms = 1000.0 * seconds
    who = getattr(handler, "who", None)
    if who is None:
        who = Who(str(handler.request.remote_ip or "-"))
    message = (
        f"{status} {method} {uri} {duration_ms:.1f}ms route={route} cache={cache} "
        f"addr={who.address} client={who.client} user={who.end_user} student={who.student} "
        f"outcome={who.outcome}"
    )
    fields = {
        "method": method,
        "uri": uri,
        "route": route,
        "status": status,
        "duration_ms": round(duration_ms, 1),
        "cache": cache,
        "addr": who.address,
        "client": who.client,
        "user": who.end_user,
        "student": who.student,
        "outcome": who.outcome,
    }
    # Every part is ours or redacted already (an invented method is not: it goes
    # through logging's redaction).
    if method in STANDARD_METHODS and access_lines.write(level, message, request_id, fields):
        return
    access_log.log(
        level,
        "%s",
        message,
        extra={**fields, "request_id": request_id, "redacted": method in STANDARD_METHODS},
    )


# The code of Tornado's own refusals (HTTPError), by status; any other 4xx: bad_request.
HTTP_CODES = {
    error.status: error.code
    for error in (
        codes.BAD_REQUEST,
        codes.UNAUTHORIZED,
        codes.FORBIDDEN,
        codes.NOT_FOUND,
        codes.METHOD_NOT_ALLOWED,
        codes.LENGTH_REQUIRED,
        codes.PAYLOAD_TOO_LARGE,
        codes.UNSUPPORTED_MEDIA_TYPE,
        codes.RANGE_NOT_SATISFIABLE,
    )
}


def describe_error(
    exc: BaseException | None, status: int, retry_after_s: int
) -> tuple[int, str, str, dict[str, str]]:
    """Map an exception to (status, code, message, extra headers)."""
    if isinstance(exc, SQLAlchemyError):
        # A database error that escaped storage's door (services/storage.py).
        exc = StorageUnavailable(type(exc).__name__)
    if isinstance(exc, ServiceError):
        headers: dict[str, str] = {}
        if isinstance(exc, BadInput) and exc.status == 401:
            # Credentials are missing (a wrong password gets none: no browser prompt).
            headers["WWW-Authenticate"] = 'Basic realm="jnufm", Bearer realm="jnufm"'
        elif isinstance(exc, TokenRefused) and exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="jnufm", error="invalid_token"'
        elif isinstance(exc, TokenScope):
            headers["WWW-Authenticate"] = 'Bearer realm="jnufm", error="insufficient_scope"'
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        elif exc.status >= 500:
            headers["Retry-After"] = str(retry_after_s)
        return exc.status, exc.code, exc.message, headers
    if isinstance(exc, HTTPError) and exc.status_code < 500:
        code = HTTP_CODES.get(exc.status_code, codes.BAD_REQUEST.code)
        message = exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
        if message and message.startswith("Invalid unicode"):
            # Tornado's message repeats the raw value, which may be a password.
            message = "a parameter is not valid UTF-8"
        return exc.status_code, code, message or code.replace("_", " "), {}
    if status < 500 and exc is None:
        code = HTTP_CODES.get(status, codes.BAD_REQUEST.code)
        return status, code, code.replace("_", " "), {}
    error = codes.INTERNAL_ERROR
    return error.status, error.code, "an internal error occurred; it has been logged", {}


class ErrorAnswer(Protocol):
    """What writing and logging an error needs of a handler: a LeanHandler and a
    tornado.web.RequestHandler (static files, the redirect) both have it, with JsonErrors."""

    request: HTTPServerRequest

    def set_status(self, status_code: int, reason: str | None = None) -> None: ...
    def set_header(self, name: str, value: str) -> None: ...
    def finish(self, chunk: str) -> object: ...
    def note_outcome(self, outcome: str) -> None: ...
    def retry_after(self) -> int: ...
    def error_body(self, exc: BaseException | None, code: str, message: str) -> str: ...


class JsonErrors:
    """Errors as JSON (describe_error) and logged without the raw URI: the one
    `write_error` and `log_exception` of every handler, on LeanHandler (JsonHandler)
    or on tornado.web.RequestHandler (handlers/pages.py)."""

    def write_error(self: ErrorAnswer, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        status, code, message, headers = describe_error(exc, status_code, self.retry_after())
        self.set_status(status)
        self.note_outcome(code)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        for name, value in headers.items():
            self.set_header(name, value)
        if status == 405:
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        self.finish(self.error_body(exc, code, message))

    def error_body(self, exc: BaseException | None, code: str, message: str) -> str:
        """An error answer's body (the 2013 routes add their own keys)."""
        return Error(error=ErrorBody(code=code, message=message)).json_text()

    def note_outcome(self, outcome: str) -> None:
        """Name how the request ended in its access line (where the handler keeps one)."""

    def retry_after(self) -> int:
        """The Retry-After of a 5xx that names none (`api.retry_after_s`)."""
        return 0

    def log_exception(
        self: ErrorAnswer,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Expected failures get one line; only real bugs get a traceback, and
        # never the raw URI (it may hold a password).
        where = f"{self.request.method} {redacted_uri(self.request.uri or '')}"
        if isinstance(value, HTTPError) or (isinstance(value, ServiceError) and value.status < 500):
            return
        if isinstance(value, ServiceError):
            # The cause (a school or storage error) says more than the client's message.
            cause = value.__cause__ or value
            error_log.warning("%s: %s: %s", where, type(cause).__name__, cause)
            return
        if isinstance(value, SQLAlchemyError):
            # The statement's parameters may hold user input; log the class and the reason only.
            reason = str(getattr(value, "orig", "") or "").splitlines()[0:1]
            error_log.error("%s: database error %s %s", where, type(value).__name__, reason)
            return
        error_log.error("%s: unexpected error", where, exc_info=value)


class JsonHandler(JsonErrors, LeanHandler):
    """Writes JSON answers and JSON errors."""

    deps: AppDeps
    BODY_TYPES: ClassVar[frozenset[str] | None] = FORM_BODIES
    # Whether pages of the origins in `api.cors_origins` may read the answers.
    cross_origin = False

    def initialize(self, deps: AppDeps) -> None:
        self.deps = deps
        self.compression = deps.compression
        self._counted = False
        self._caller: Caller | None = None
        self.who: Who | None = None

    # Whether the per-address request rate limit applies to this handler.
    rate_limited = True

    @property
    def timer(self) -> RequestTimer:
        """This request's timer and id (the client's X-Request-Id if sane, else a new one)."""
        timer: RequestTimer | None = getattr(self, "_timer", None)
        if timer is None:
            timer = RequestTimer(request_id_from(header(self.request.headers, "X-Request-Id")))
            self._timer = timer
        return timer

    def prepare(self) -> None:
        activate(self.timer)
        self.deps.state.inflight += 1
        metrics.http_in_flight(1)
        self._counted = True
        if self.rate_limited and self.deps.rate_limiter is not None:
            caller = self.caller()
            client = caller.client
            if client is None:
                self.deps.rate_limiter.check(caller.ip)
            else:
                self.deps.rate_limiter.check_subject(
                    client.name, client.requests_per_s, client.burst
                )
        # Parameters outside the contract are refused before the handler reads them.
        contract_params.check(self.route, self.request)

    def on_finish(self) -> None:
        if self._counted:
            self.deps.state.inflight -= 1
            metrics.http_in_flight(-1)
            self._counted = False

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Request-Id", self.timer.request_id)

    def finish(self, chunk: str | bytes | None = None) -> None:
        if self.who is None or self.who.outcome == "-":
            # An error answer names its code (write_error); any other its status.
            status = self.get_status()
            self.note_outcome("ok" if status < 400 else f"http_{status}")
        if not self.answered:
            # Only successful answers say where the time went: on a refusal (wrong
            # password, lockout, bad input) the parts would tell an unauthenticated
            # caller whether the cache, the database or the school was asked.
            if self.get_status() < 400:
                timing = self.timer.server_timing(self.request.request_time())
                self.set_header("Server-Timing", timing)
            if self.deps.state.draining:
                # `Connection: close`, and the connection closed after this answer.
                self.close_connection()
            if self.cross_origin and self.deps.cors_origins:
                self.cors_headers()
        super().finish(chunk)

    def cors_headers(self) -> bool:
        """`Access-Control-Allow-Origin` for a listed origin (with `Vary: Origin` unless
        every origin is); whether the origin may read the answer."""
        origins = self.deps.cors_origins
        if "*" in origins:
            self.set_header("Access-Control-Allow-Origin", "*")
        else:
            self.set_header("Vary", "Origin")
            origin = self.header("Origin")
            if origin is None or origin not in origins:
                return False
            self.set_header("Access-Control-Allow-Origin", origin)
        self.set_header("Access-Control-Expose-Headers", CORS_EXPOSED)
        return True

    def write_json(self, body: Any, status: int = 200) -> None:
        """An answer model (api/answers/) or, for bodies without one, plain JSON values."""
        self.set_status(status)
        if isinstance(body, AnswerModel):
            self.finish(body.json_text())
        else:
            self.finish(json.dumps(body, ensure_ascii=False, separators=(",", ":")))

    def wants_fresh(self) -> bool:
        """The client asked for fresh data (`Cache-Control: no-cache` or `?fresh=1`)."""
        cache_control = header(self.request.headers, "Cache-Control", "").lower()
        if "no-cache" in cache_control:
            return True
        return self.get_query_argument("fresh", "0").lower() in ("1", "true", "yes")

    def client_ip(self) -> str:
        """The client's address; X-Forwarded-For counts only when it comes from a trusted proxy."""
        remote = str(self.request.remote_ip or "")
        if not self.deps.trusted_proxies:
            return remote
        forwarded = header(self.request.headers, "X-Forwarded-For")
        return client_ip(remote, forwarded, self.deps.trusted_proxies)

    def caller(self) -> Caller:
        """Who sent this request: a registered client (by `X-Api-Key`, else by address), or
        the address (services/callers.py). Read once per request."""
        caller = self._caller
        if caller is None:
            ip = self.client_ip()
            registry = self.deps.clients
            if registry is None:
                caller = anonymous(ip, self.deps.ipv6_prefix)
            else:
                forwarded = header(self.request.headers, "Forwarded") or header(
                    self.request.headers, "X-Forwarded-For"
                )
                caller = registry.caller(ip, header(self.request.headers, "X-Api-Key"), forwarded)
            self._caller = caller
            if caller.client is not None:
                self.timer.client = caller.client.name
            self.who = Who(
                caller.ip,
                caller.client.name if caller.client is not None else "-",
                caller.end_user or "-",
            )
        return caller

    def note_student(self, student_id: str) -> None:
        """Name the student this request is about in its access line (by pseudonym)."""
        self.caller()
        assert self.who is not None
        self.who.student = self.deps.pseudonym(student_id)

    def mark_answer(self, answer: Answer[Any]) -> None:
        """The answer's `Age` and `Cache-Status` (RFC 9211) headers."""
        # The access log's short form: stale, hit (from the cache) or miss (the school asked).
        short = "stale" if answer.stale else ("hit" if answer.source == "cache" else "miss")
        self._mark((datetime.now(UTC) - answer.as_of).total_seconds(), answer.cache_status, short)

    def _mark(self, age_s: float, cache_status: str, short: str) -> None:
        self.set_header("Age", str(max(0, int(age_s))))
        self.set_header("Cache-Status", cache_status)
        self.timer.cache_status = short

    def write_ready(self, ready: ReadyHit) -> None:
        """A body kept ready (services/pipeline/ready.py), with its `Age` and `Cache-Status`."""
        self._mark(ready.age_s, ready.cache_status, "hit")
        self.finish(ready.body)

    def write_kept(self, answer: Answer[Any], body: bytes) -> None:
        """A body the handler keeps ready too, with the answer's `Age` and `Cache-Status`."""
        self.mark_answer(answer)
        self.finish(body)

    def note_outcome(self, outcome: str) -> None:
        if self.who is None:
            self.who = Who(str(self.request.remote_ip or "-"))
        self.who.outcome = outcome

    def write_answer(self, answer: Answer[Any], body: Any) -> None:
        """The JSON body with the answer's `Age` and `Cache-Status` headers."""
        self.mark_answer(answer)
        self.write_json(body)

    def retry_after(self) -> int:
        return self.deps.retry_after_s

    def log_exception(
        self, typ: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(value, RateLimited):
            metrics.record_rate_limited(value.code)
            caller = self._caller
            if value.scope is not None and value.subject is not None:
                refusals.refused(value.code, value.scope, value.subject, value.retry_after)
            elif caller is not None:
                refusals.refused(value.code, caller.scope, caller.subject, value.retry_after)
            return
        super().log_exception(typ, value, tb)


# What a page of another origin may read of an answer beyond the CORS-safelisted headers.
CORS_EXPOSED = "Age, Cache-Status, ETag, Retry-After, X-Cover, X-Request-Id"
# The request headers these routes read that a page may send (a preflight's answer).
CORS_REQUEST_HEADERS = "Cache-Control, If-None-Match, X-Request-Id"


class CrossOriginReads(JsonHandler):
    """Password-free answers that pages of `api.cors_origins` may read, and the CORS
    preflight (OPTIONS) for them: GET and HEAD only."""

    cross_origin = True

    def options(self, *path_args: str) -> None:
        self.set_header("Allow", ", ".join(answered_methods(type(self))))
        if self.deps.cors_origins and self.cors_headers():
            self.set_header("Access-Control-Allow-Methods", "GET, HEAD")
            self.set_header("Access-Control-Allow-Headers", CORS_REQUEST_HEADERS)
            self.set_header("Access-Control-Max-Age", str(self.deps.cors_max_age_s))
        self.set_status(204)
        self.finish()


class NotFoundHandler(JsonHandler):
    """Any unknown route: a JSON 404 whatever the method."""

    def prepare(self) -> None:
        raise HTTPError(404, "no such endpoint: %s", self.request.path)
