"""A circuit breaker per school system, shared by the workers of a host: stop asking a
school that keeps failing.

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

The last calls and the state live in memory shared by the workers of a host
(`BreakerTable`, made by the master before the fork), so the workers learn
together: with a budget of 2 school requests, one worker alone might never
see enough calls to decide. A probe whose worker died is given up after
`slow_call_s`, and another may go.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Final, Literal

from observability import metrics
from services.errors import SchoolFailing
from services.shared_slots import SharedSlots, key_hash

State = Literal["closed", "open", "half_open"]

# Calls remembered per system (the `window` setting may not exceed it).
MAX_WINDOW: Final = 64
# Calls older than this are forgotten: a few old failures do not add up to an outage.
HORIZON_S: Final = 300.0
# tag, opened_at (0 closed), probe_until (0 none), next slot; then (at, student, bad) calls.
HEAD: Final = struct.Struct("=Qddi")
CALL: Final = struct.Struct("=dQB")


class BreakerOpen(SchoolFailing):
    """The school system failed repeatedly; we are not asking it for a while."""

    def __init__(self, system: str, retry_after_s: float) -> None:
        super().__init__(f"{system}: circuit open, retry in {retry_after_s:.0f}s", retry_after_s)
        self.system = system


class BreakerTable(SharedSlots):
    """The breakers' state and last calls, one record per school system, for a host."""

    slot_size = HEAD.size + MAX_WINDOW * CALL.size
    table_name = "jnufm-breakers"


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
            self._breaker._release_probe()


class CircuitBreaker:
    """Watches the last calls to one school system and opens when too many are bad."""

    def __init__(
        self,
        system: str,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        table: BreakerTable | None = None,
        min_students: int = 1,
        window: int = 10,
        failure_rate: float = 0.5,
        slow_call_s: float = float("inf"),
    ) -> None:
        self.system = system
        self._threshold = failure_threshold
        self._min_students = min(min_students, failure_threshold)
        self._open_s = open_s
        self._clock = clock  # CLOCK_MONOTONIC: one clock for every process of the host
        self._table = table if table is not None else BreakerTable.create(8)
        self._window = min(MAX_WINDOW, max(window, failure_threshold))
        self._rate = failure_rate
        self._slow_call_s = slow_call_s
        self._probe_timeout_s = min(slow_call_s, 60.0) if slow_call_s != float("inf") else 60.0
        self._tag = key_hash("breaker|" + system)
        self._first = self._table.chain_start(self._tag)
        self._last_reported: State = "closed"

    # The shared record -----------------------------------------------------------------

    def _read(self) -> tuple[int, float, float, int, list[tuple[float, int, bool]]]:
        memory = self._table.memory
        for offset in self._table.chain(self._first):
            tag, opened, probe, nxt = HEAD.unpack_from(memory, offset)
            if tag == self._tag:
                calls = [
                    CALL.unpack_from(memory, offset + HEAD.size + i * CALL.size)
                    for i in range(MAX_WINDOW)
                ]
                return offset, opened, probe, nxt, [(a, s, bool(b)) for a, s, b in calls]
        for offset in self._table.chain(self._first):
            if HEAD.unpack_from(memory, offset)[0] == 0:
                HEAD.pack_into(memory, offset, self._tag, 0.0, 0.0, 0)
                return offset, 0.0, 0.0, 0, [(0.0, 0, False)] * MAX_WINDOW
        raise RuntimeError("breaker table full")  # one record per school system: never

    def _write_head(self, offset: int, opened: float, probe: float, nxt: int) -> None:
        HEAD.pack_into(self._table.memory, offset, self._tag, opened, probe, nxt)

    def _clear_calls(self, offset: int) -> None:
        start = offset + HEAD.size
        self._table.memory[start : start + MAX_WINDOW * CALL.size] = bytes(MAX_WINDOW * CALL.size)

    # State -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        with self._table.locked(self._first):
            _, opened, _, _, _ = self._read()
        state = self._state_of(opened)
        self._report(state)
        return state

    def _state_of(self, opened: float) -> State:
        if not opened:
            return "closed"
        return "open" if self._clock() - opened < self._open_s else "half_open"

    def _report(self, state: State) -> None:
        if state != self._last_reported:
            self._last_reported = state
            metrics.set_breaker_state(self.system, state)

    def raise_if_open(self) -> None:
        """Raise BreakerOpen while the breaker is open (without taking the half-open probe)."""
        with self._table.locked(self._first):
            _, opened, _, _, _ = self._read()
        state = self._state_of(opened)
        self._report(state)
        if state == "open":
            raise BreakerOpen(self.system, self._open_s - (self._clock() - opened))

    def begin(self, student: str) -> BreakerCall:
        """Start a call for `student`. Raises BreakerOpen if none may go through now."""
        call = BreakerCall(self, student, probe=self._admit())
        call._start(self._slow_call_s)
        return call

    def _admit(self) -> bool:
        """Whether the call admitted now is the half-open probe; BreakerOpen if none may go."""
        now = self._clock()
        with self._table.locked(self._first):
            offset, opened, probe, nxt, _ = self._read()
            state = self._state_of(opened)
            if state == "closed":
                return False
            if state == "open":
                raise BreakerOpen(self.system, self._open_s - (now - opened))
            if probe > now:
                raise BreakerOpen(self.system, 1.0)
            self._write_head(offset, opened, now + self._probe_timeout_s, nxt)
        self._report("half_open")
        return True

    def _release_probe(self) -> None:
        with self._table.locked(self._first):
            offset, opened, _, nxt, _ = self._read()
            self._write_head(offset, opened, 0.0, nxt)

    def _record(self, bad: bool, student: str, probe: bool) -> None:
        now = self._clock()
        with self._table.locked(self._first):
            offset, opened, probe_until, nxt, calls = self._read()
            if probe or opened:
                # Only the probe's outcome decides while the breaker is not closed.
                if not probe:
                    return
                self._write_head(offset, now if bad else 0.0, 0.0, 0)
                self._clear_calls(offset)
                state: State = "open" if bad else "closed"
            else:
                CALL.pack_into(
                    self._table.memory,
                    offset + HEAD.size + nxt * CALL.size,
                    now,
                    key_hash(student),
                    int(bad),
                )
                calls[nxt] = (now, key_hash(student), bad)
                nxt = (nxt + 1) % self._window
                recent = sorted(
                    (c for c in calls if c[0] and now - c[0] <= HORIZON_S), reverse=True
                )
                recent = recent[: self._window]
                bad_students = [s for _, s, b in recent if b]
                if (
                    len(bad_students) >= self._threshold
                    and len(bad_students) >= self._rate * len(recent)
                    and len(set(bad_students)) >= self._min_students
                ):
                    self._write_head(offset, now, 0.0, 0)
                    self._clear_calls(offset)
                    state = "open"
                else:
                    self._write_head(offset, 0.0, probe_until, nxt)
                    state = "closed"
        self._report(state)
