"""Every error the service layer raises, each with its HTTP status, code and retry-after.

The handlers answer any of them by looking these up (handlers/base.py); no
layer above raises another layer's errors: the pipeline turns school errors
into these at its edge (`from_school`), and storage turns SQLAlchemy's into
`StorageUnavailable` at its door.

ServiceError                      status code
├── BadInput                      400    (its own code; 401 for missing credentials)
├── QueryRefused                  400    query_rejected: the school refused what we asked
├── InvalidPassword               401    invalid_credentials
├── PasswordChanged               401    password_changed: a token's password no longer works
├── TokenRefused                  401    invalid_token, token_expired, token_revoked,
│                                        password_changed (with WWW-Authenticate: Bearer)
├── TokenScope                    403    insufficient_scope: a token of another system
├── RateLimited                   429    too_many_failed_logins, rate_limited, student_busy,
│                                        client_slowed
├── SchoolUnreachable             502    school_unavailable: refused, reset, 5xx, overload page
├── SchoolBadPage                 502    school_bad_page: a page we cannot read
├── SchoolSessionLost             502    school_session_lost
├── SchoolBusy                    503    school_busy: no budget slot in time
├── SchoolFailing                 503    school_unavailable: the breaker is open
├── StorageUnavailable            503    storage_unavailable
├── ShuttingDown                  503    shutting_down (Retry-After: 1)
└── SchoolTimedOut                504    school_timeout: no answer by the query's deadline
"""

from __future__ import annotations

import math
from typing import Literal

from school.errors import (
    DeadlinePassed,
    InvalidCredentials,
    QueryRejected,
    SchoolError,
    SchoolPageError,
    SchoolTimeout,
    SessionExpired,
)


class ServiceError(Exception):
    """Base of the service layer's errors: what the client is told, and when to retry."""

    status = 500
    code: str = "internal_error"

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        # None: the server's default (api.retry_after_s) where a status calls for one.
        self.retry_after_s = retry_after_s

    @property
    def retry_after(self) -> int | None:
        """Whole seconds for the Retry-After header, or None."""
        if self.retry_after_s is None:
            return None
        return max(1, math.ceil(self.retry_after_s))


class BadInput(ServiceError):
    """A parameter is missing or malformed; code is stable and machine-readable."""

    status = 400

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class QueryRefused(ServiceError):
    status = 400
    code = "query_rejected"


class InvalidPassword(ServiceError):
    """The school refused the credentials (or already refused them to this client)."""

    status = 401
    code = "invalid_credentials"

    def __init__(self, message: str = "the student number or password is wrong") -> None:
        super().__init__(message)


class PasswordChanged(ServiceError):
    """The school refused the password a student's token holds: the password was changed
    at the school, and every token made with the old one has ended."""

    status = 401
    code = "password_changed"

    def __init__(
        self,
        message: str = "the password this token holds no longer works at the school (it was "
        "changed there): every token made with it has ended; make a new one",
    ) -> None:
        super().__init__(message)


TokenCode = Literal["invalid_token", "token_expired", "token_revoked", "password_changed"]


class TokenRefused(ServiceError):
    """A bearer token that opens nothing: unknown, expired, revoked, or ended by a
    password change (the code says which)."""

    status = 401

    def __init__(self, code: TokenCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class TokenScope(ServiceError):
    """A valid token used where it gives no access (a card token on the academic office)."""

    status = 403
    code = "insufficient_scope"


RateLimitCode = Literal["too_many_failed_logins", "rate_limited", "student_busy", "client_slowed"]


class RateLimited(ServiceError):
    """A limit refuses the request for now; retry_after_s says when it may succeed."""

    status = 429

    def __init__(
        self,
        code: RateLimitCode,
        message: str,
        retry_after_s: int,
        scope: str | None = None,
        subject: str | None = None,
    ) -> None:
        super().__init__(message, retry_after_s)
        self.code = code
        # Whom the limit holds back, for the decision log ("student" and its pseudonym,
        # "ip" and the address, "client" and its name); None: the caller.
        self.scope = scope
        self.subject = subject


class SchoolUnreachable(ServiceError):
    status = 502
    code = "school_unavailable"


class SchoolBadPage(ServiceError):
    status = 502
    code = "school_bad_page"


class SchoolSessionLost(ServiceError):
    status = 502
    code = "school_session_lost"


class SchoolBusy(ServiceError):
    """No slot of the school's budget freed up before the deadline."""

    status = 503
    code = "school_busy"


class SchoolFailing(ServiceError):
    """The school failed repeatedly; we are not asking it for a while (the breaker)."""

    status = 503
    code = "school_unavailable"


class StorageUnavailable(ServiceError):
    """Our database cannot be used right now (unreachable, disk full, read-only)."""

    status = 503
    code = "storage_unavailable"

    def __init__(self, what: str) -> None:
        super().__init__("our database is unavailable; try again shortly")
        self.what = what

    def __str__(self) -> str:
        return f"storage unavailable: {self.what}"


class ShuttingDown(ServiceError):
    """This worker is stopping and the query could not be answered before it must."""

    status = 503
    code = "shutting_down"

    def __init__(self, message: str = "this server is restarting; try again") -> None:
        super().__init__(message, 1)


class SchoolTimedOut(ServiceError):
    """The school did not answer within the query's deadline (no older answer stands in)."""

    status = 504
    code = "school_timeout"


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
        return SchoolBadPage(f"{name} answered with a page we cannot read")
    return SchoolUnreachable(f"{name} is unavailable")
