"""Errors raised by the service layer (school errors pass through from school.errors).

ServiceError
├── BadInput        input that can never succeed: 400 (or 401 when credentials are missing)
├── InvalidPassword the school refused the credentials: 401
├── RateLimited     too many failed logins, or too many requests from one client: 429
│                   with Retry-After
├── StorageUnavailable
│                   our database cannot be used right now (down, disk full): 503
├── DeadlineExceeded
│                   the school did not answer within the query's deadline: 504
└── ShuttingDown    the worker is stopping and the query could not finish in time: 503
"""

from __future__ import annotations

from typing import Literal


class ServiceError(Exception):
    """Base of the service layer's own errors."""


class BadInput(ServiceError):
    """A parameter is missing or malformed; code is stable and machine-readable."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


RateLimitCode = Literal["too_many_failed_logins", "rate_limited", "student_busy"]


class RateLimited(ServiceError):
    """A limit refuses the request for now; retry_after_s says when it may succeed."""

    def __init__(self, code: RateLimitCode, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.code: RateLimitCode = code
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidPassword(ServiceError):
    """The school refused these credentials (or already refused them to this client)."""

    def __init__(self) -> None:
        super().__init__("the student number or password is wrong")


class StorageUnavailable(ServiceError):
    """Our database cannot be used right now (unreachable, disk full, read-only)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"storage unavailable: {what}")


class DeadlineExceeded(ServiceError):
    """The school did not answer within the query's deadline (and no older answer stands in)."""

    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"no answer from the school within {deadline_s:g}s")


class ShuttingDown(ServiceError):
    """This worker is stopping and the query could not be answered before it must."""
