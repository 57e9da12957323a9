"""A circuit breaker per school system, per worker: stop asking a school that keeps failing.

closed -> (enough bad calls among the last ones, for several students) -> open for
T seconds: calls fail fast -> half-open: one probe goes through; a good probe
closes it, a bad one opens it again.

A call is bad when the school itself failed (timeout, refused connection, 5xx
or overload page, a page we cannot read) or when it has run longer than
`slow_call_s`: a school that answers in 9 s out of a 10 s timeout is failing
too, and waiting for its timeouts to pile up let a hanging school keep every
query waiting for 40 s. A slow call counts as bad the moment it passes the
threshold, not when it ends.

Bad calls must come from several students because one student's requests must
not be able to open the breaker for everyone (a history too long to page, a
page our parser chokes on for that account): a school that is really failing
fails for everybody. A wrong password, or a query the school refused as
invalid, is the school answering: neither good nor bad.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
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


class BreakerCall:
    """One call through the breaker: say how it ended (`ok`, `failed` or `neutral`)."""

    def __init__(self, breaker: CircuitBreaker, student: str, probe: bool) -> None:
        self._breaker = breaker
        self._student = student
        self._probe = probe
        self._slow = False
        self._ended = False
        self._timer: asyncio.TimerHandle | None = None

    def _start(self, slow_after_s: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(slow_after_s, self.mark_slow)

    def mark_slow(self) -> None:
        """The call has run past the slow-call threshold: it counts as bad now."""
        if self._ended or self._slow:
            return
        self._slow = True
        self._breaker._record(bad=True, student=self._student, probe=self._probe)

    def _end(self) -> bool:
        """Whether this is the first end (and the call was not already counted slow)."""
        if self._timer is not None:
            self._timer.cancel()
        first = not self._ended
        self._ended = True
        return first and not self._slow

    def ok(self) -> None:
        if self._end():
            self._breaker._record(bad=False, student=self._student, probe=self._probe)

    def failed(self) -> None:
        if self._end():
            self._breaker._record(bad=True, student=self._student, probe=self._probe)

    def neutral(self) -> None:
        """The call told us nothing about the school's health (a wrong password)."""
        if self._end() and self._probe:
            self._breaker._probing = False


class CircuitBreaker:
    """Watches the last calls to one school system and opens when too many are bad."""

    def __init__(
        self,
        system: str,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        min_students: int = 1,
        window: int = 10,
        failure_rate: float = 0.5,
        slow_call_s: float = float("inf"),
    ) -> None:
        self.system = system
        self._threshold = failure_threshold
        self._min_students = min(min_students, failure_threshold)
        self._open_s = open_s
        self._clock = clock
        self._window: deque[tuple[bool, str]] = deque(maxlen=max(window, failure_threshold))
        self._rate = failure_rate
        self._slow_call_s = slow_call_s
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._open_s:
            return "open"
        return "half_open"

    def raise_if_open(self) -> None:
        """Raise BreakerOpen while the breaker is open (without taking the half-open probe)."""
        if self.state == "open":
            assert self._opened_at is not None
            raise BreakerOpen(self.system, self._open_s - (self._clock() - self._opened_at))

    def begin(self, student: str) -> BreakerCall:
        """Start a call for `student`. Raises BreakerOpen if none may go through now."""
        call = BreakerCall(self, student, probe=self._admit())
        call._start(self._slow_call_s)
        return call

    def _admit(self) -> bool:
        """Whether the call admitted now is the half-open probe; BreakerOpen if none may go."""
        state = self.state
        if state == "closed":
            return False
        if state == "open":
            assert self._opened_at is not None
            raise BreakerOpen(self.system, self._open_s - (self._clock() - self._opened_at))
        if self._probing:
            raise BreakerOpen(self.system, 1.0)
        self._probing = True
        metrics.set_breaker_state(self.system, "half_open")
        return True

    def _record(self, bad: bool, student: str, probe: bool) -> None:
        if probe or self._opened_at is not None:
            # Only the probe's outcome decides while the breaker is not closed.
            if not probe:
                return
            self._probing = False
            if bad:
                self._open()
            else:
                self._close()
            return
        self._window.append((bad, student))
        bad_calls = [s for b, s in self._window if b]
        if (
            len(bad_calls) >= self._threshold
            and len(bad_calls) >= self._rate * len(self._window)
            and len(set(bad_calls)) >= self._min_students
        ):
            self._open()

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._window.clear()
        metrics.set_breaker_state(self.system, "open")

    def _close(self) -> None:
        self._opened_at = None
        self._window.clear()
        metrics.set_breaker_state(self.system, "closed")
