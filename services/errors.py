"""Every error the service layer raises, each with its HTTP status, code and retry-after.

The handlers answer any of them by looking these up (handlers/base.py); no
layer above raises another layer's errors: the pipeline turns school errors
into these at its edge (`from_school`), and storage turns SQLAlchemy's into
`StorageUnavailable` at its door. Each error's code and status are an entry of
the catalogue (services/codes.py): a class names its entry, and the errors
that carry one of several codes take the entry where they are raised.

ServiceError                      status code
├── BadInput                      400    (the entry it is given: 401 for missing
│                                        credentials, 404 for a name that names nothing,
│                                        409 not_bound, 413 for a picture too large)
├── NotConfigured                 404    not_configured: the route's system is not set up
├── QueryRefused                  400    query_rejected: the school refused what we asked
├── InvalidPassword               401    invalid_credentials
├── PasswordChanged               401    password_changed: a token's password no longer works
├── TokenRefused                  401    invalid_token, token_expired, token_revoked,
│                                        password_changed (with WWW-Authenticate: Bearer);
│                                        410 with the same codes for an ended feed
├── TokenScope                    403    insufficient_scope: a token of another system
├── RateLimited                   429    too_many_failed_logins, rate_limited, student_busy,
│                                        client_slowed
├── SchoolUnreachable             502    school_unavailable: refused, reset, 5xx, overload page
├── SchoolPageUnreadable          502    school_page_unreadable: a page we cannot read
├── SchoolSessionLost             502    school_session_lost
├── SchoolBusy                    503    school_busy: no budget slot in time
├── SchoolFailing                 503    school_unavailable: the breaker is open
├── StorageUnavailable            503    storage_unavailable
├── ShuttingDown                  503    shutting_down (Retry-After: 1)
└── SchoolTimedOut                504    school_timeout: no answer by the query's deadline
"""

from __future__ import annotations

import math

from school.errors import (
    DeadlinePassed,
    InvalidCredentials,
    QueryRejected,
    SchoolError,
    SchoolPageError,
    SchoolTimeout,
    SessionExpired,
)
from services import codes
from services.codes import ErrorCode


class ServiceError(Exception):
    """Base of the service layer's errors: what the client is told, and when to retry."""

    # The catalogue's entry: the code and status the client is answered with.
    error: ErrorCode = codes.INTERNAL_ERROR

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        # None: the server's default (api.retry_after_s) where a status calls for one.
        self.retry_after_s = retry_after_s

    @property
    def status(self) -> int:
        return self.error.status

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def retry_after(self) -> int | None:
        """Whole seconds for the Retry-After header, or None."""
        if self.retry_after_s is None:
            return None
        return max(1, math.ceil(self.retry_after_s))


class BadInput(ServiceError):
    """A parameter is missing or malformed (or names nothing): `error` says which, with a
    stable, machine-readable code."""

    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error


class NotConfigured(ServiceError):
    """The route's school system (or feature) is not set up on this server: nothing the
    client sent is wrong, and nothing it may send will help."""

    error = codes.NOT_CONFIGURED


class QueryRefused(ServiceError):
    error = codes.QUERY_REJECTED


class InvalidPassword(ServiceError):
    """The school refused the credentials (or already refused them to this client)."""

    error = codes.INVALID_CREDENTIALS

    def __init__(self, message: str = "the student number or password is wrong") -> None:
        super().__init__(message)


class PasswordChanged(ServiceError):
    """The school refused the password a student's token holds: the password was changed
    at the school, and every token made with the old one has ended."""

    error = codes.PASSWORD_CHANGED

    def __init__(
        self,
        message: str = "the password this token holds no longer works at the school (it was "
        "changed there): every token made with it has ended; make a new one",
    ) -> None:
        super().__init__(message)


class TokenRefused(ServiceError):
    """A bearer token that opens nothing: unknown, expired, revoked, or ended by a
    password change (`error` says which: 401, or 410 for a feed's token)."""

    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error


class TokenScope(ServiceError):
    """A valid token used where it gives no access (a card token on the academic office)."""

    error = codes.INSUFFICIENT_SCOPE


class RateLimited(ServiceError):
    """A limit refuses the request for now (`error` says which limit); retry_after_s says
    when it may succeed."""

    def __init__(
        self,
        error: ErrorCode,
        message: str,
        retry_after_s: int,
        scope: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message, retry_after_s)
        self.error = error
        # Whom the limit holds back, for the decision log ("student" and its pseudonym,
        # "ip" and the address, "client" and its name); None: the caller.
        self.scope = scope
        self.subject = subject


class SchoolUnreachable(ServiceError):
    error = codes.SCHOOL_UNAVAILABLE


class SchoolPageUnreadable(ServiceError):
    error = codes.SCHOOL_PAGE_UNREADABLE


class SchoolSessionLost(ServiceError):
    error = codes.SCHOOL_SESSION_LOST


class SchoolBusy(ServiceError):
    """No slot of the school's budget freed up before the deadline."""

    error = codes.SCHOOL_BUSY


class SchoolFailing(ServiceError):
    """The school failed repeatedly; we are not asking it for a while (the breaker)."""

    error = codes.BREAKER_OPEN


class StorageUnavailable(ServiceError):
    """Our database cannot be used right now (unreachable, disk full, read-only)."""

    error = codes.STORAGE_UNAVAILABLE

    def __init__(self, what: str) -> None:
        super().__init__("our database is unavailable; try again shortly")
        self.what = what

    def __str__(self) -> str:
        return f"storage unavailable: {self.what}"


class ShuttingDown(ServiceError):
    """This worker is stopping and the query could not be answered before it must."""

    error = codes.SHUTTING_DOWN

    def __init__(self, message: str = "this server is restarting; try again") -> None:
        super().__init__(message, 1)


class SchoolTimedOut(ServiceError):
    """The school did not answer within the query's deadline (no older answer stands in)."""

    error = codes.SCHOOL_TIMEOUT


def from_school(exc: SchoolError, name: str, password: str) -> ServiceError:
    """What a school error means to a client, for the system called `name` ("the card
    center") whose password is called `password` ("card password"); the pipeline's one
    translation point."""
    if isinstance(exc, InvalidCredentials):
        return InvalidPassword(f"the student number or {password} is wrong")
    if isinstance(exc, QueryRejected):
        return QueryRefused(f"{name} refused this query as invalid")
    if isinstance(exc, SchoolTimeout | DeadlinePassed):
        return SchoolTimedOut(f"{name} did not answer in time")
    if isinstance(exc, SessionExpired):
        return SchoolSessionLost(f"{name} dropped the session; try again")
    if isinstance(exc, SchoolPageError):
        return SchoolPageUnreadable(f"{name} answered with a page we cannot read")
    return SchoolUnreachable(f"{name} is unavailable")
