"""Everything the school client raises.

::

    SchoolError                      base of everything the school client raises
    ├── SchoolUnavailable            the school could not answer (HTTP layer 502/504)
    │   ├── SchoolTimeout            connect or total timeout
    │   ├── SchoolConnectionError    refused / reset / broken connection
    │   └── SchoolServerError        HTTP 5xx or an overload page
    ├── SchoolPageError              a page we cannot read: unexpected, truncated, keypad unreadable
    │   └── AnswerRefused            an answer we refuse for what was asked (a cover too large,
    │                                not an image): a fault of the request, never of the school
    ├── DeadlinePassed               not sent: the query's deadline passed (our choice, not the
    │                                school's health)
    ├── QueryRejected                the school refused what we asked ("date illegal" page):
    │                                a fault of the request, never of the school
    ├── SessionExpired               a login page where data was expected
    └── InvalidCredentials           wrong password or unknown student

No message ever contains a password (plain or keypad-mapped).
"""

from __future__ import annotations

from typing import Literal

CredentialsReason = Literal["wrong_password", "unknown_student"]


class SchoolError(Exception):
    """Base of everything the school client raises."""


class SchoolUnavailable(SchoolError):
    """The school could not answer; callers map it to 502 or 504."""


class SchoolTimeout(SchoolUnavailable):
    """A connect or total timeout expired."""


class SchoolConnectionError(SchoolUnavailable):
    """The connection was refused, reset or broken."""


class SchoolServerError(SchoolUnavailable):
    """The school answered HTTP 5xx or an overload page."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SchoolPageError(SchoolError):
    """A page we cannot read: unexpected, truncated, or an unreadable keypad.

    `kind` names the page (`login`, `balance`, `timetable`, `search`, ...: lower case
    letters and `_`), for the operator's copy of the page, the metric and the breaker
    (which counts an unreadable page once per kind, not once per student). None: the
    client did not say; the page's path stands in.
    """

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class AnswerRefused(SchoolPageError):
    """The school answered, but with something we refuse for what was asked (a cover longer
    than we accept, or not an image).

    About this one request, not the school's health: it must never count as a school
    failure for the breaker. Still a SchoolPageError for callers that do not tell it apart
    (an unreadable answer, 502 `school_page_unreadable`).
    """


class DeadlinePassed(SchoolError):
    """A request was not sent because the query's deadline had passed (school/deadline.py)."""


class QueryRejected(SchoolError):
    """The school answered with an error about our input (e.g. an illegal date range).

    Caused by the request, not by the school's health: it must never count as a
    school failure (breaker, stale-if-error); the HTTP layer answers 4xx.
    """


class SessionExpired(SchoolError):
    """The card center showed its login page where data was expected."""


class InvalidCredentials(SchoolError):
    """The card center refused the login: wrong password or unknown student."""

    def __init__(self, reason: CredentialsReason, message: str | None = None) -> None:
        super().__init__(message or reason.replace("_", " "))
        self.reason: CredentialsReason = reason
