"""A circuit breaker per school system, per worker: stop asking a school that keeps failing.

closed -> (N consecutive failures, of at least M different students) -> open for T
seconds: calls fail fast -> half-open: one probe goes through; success closes,
failure opens again.

Failures must come from several students because one student's requests must
not be able to open the breaker for everyone (a history too long to page, a
page our parser chokes on for that account): a school that is really failing
fails for everybody.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from observability import metrics
from services.errors import ServiceError

State = Literal["closed", "open", "half_open"]


class BreakerOpen(ServiceError):
    """The school system failed repeatedly; we are not asking it for a while."""

    def __init__(self, system: str, retry_after_s: float) -> None:
        super().__init__(f"{system}: circuit open, retry in {retry_after_s:.0f}s")
        self.system = system
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Counts consecutive failures of one system and opens after too many."""

    def __init__(
        self,
        system: str,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        min_students: int = 1,
    ) -> None:
        self.system = system
        self._threshold = failure_threshold
        self._min_students = min(min_students, failure_threshold)
        self._open_s = open_s
        self._clock = clock
        self._failures = 0
        self._students: set[str] = set()
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._open_s:
            return "open"
        return "half_open"

    def before_call(self) -> None:
        """Raise BreakerOpen unless a call may go through now (at most one probe when half-open)."""
        state = self.state
        if state == "closed":
            return
        if state == "open":
            assert self._opened_at is not None
            raise BreakerOpen(self.system, self._open_s - (self._clock() - self._opened_at))
        if self._probing:
            raise BreakerOpen(self.system, 1.0)
        self._probing = True
        metrics.set_breaker_state(self.system, "half_open")

    def success(self) -> None:
        was_closed = self._opened_at is None
        self._failures = 0
        self._students.clear()
        self._opened_at = None
        self._probing = False
        if not was_closed:
            metrics.set_breaker_state(self.system, "closed")

    def failure(self, student: str = "") -> None:
        """One failure of the school itself, met while asking for `student`."""
        self._failures += 1
        if len(self._students) < self._threshold:
            self._students.add(student)
        if self._probing or (
            self._failures >= self._threshold and len(self._students) >= self._min_students
        ):
            self._opened_at = self._clock()
            metrics.set_breaker_state(self.system, "open")
        self._probing = False

    def release_probe(self) -> None:
        """The probe ended without telling us anything about the school (e.g. a wrong password)."""
        self._probing = False
