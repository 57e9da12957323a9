"""A circuit breaker per school system, shared by the workers of a host: stop asking a
school that keeps failing.

closed -> (enough bad calls lately, from several students) -> open for T seconds:
calls fail fast -> half-open: one probe goes through; a good probe closes it, a bad
one opens it again.

A call is bad when the school itself failed (timeout, refused connection, 5xx or
overload page, a page we cannot read) or when it has run longer than `slow_call_s`
(the pipeline passes at most the query deadline: a call that outlives it can no
longer answer anyone in time). A slow call counts as bad the moment it passes the
threshold, not when it ends: a school that hangs holds every budget slot until our
timeouts, and waiting for those to pile up kept cold queries waiting for 36 s.

When it opens (`Rule.opens`, a pure function of the recent calls): among the calls
of the last `window_s` seconds (at most the last `window`), at least `failures` are
bad, from at least `min_students` different students, and either
- at least `failure_rate` of those calls are bad (a school that fails often), or
- no call has succeeded for the slow threshold (a school that stopped answering).
The second is why a hang is seen in seconds: before it, the window is full of
successes, and only `budget` calls run at once, so bad ones outnumber them only
after the window has passed. A success older than the slow threshold does not vouch
for a school whose calls now hang, since any call that school answered in time would
have succeeded since. Successes older than `window_s` are forgotten in any case.

`failures` and `min_students` are capped at the system's budget (but not below 2):
no more calls than the budget are ever in flight, so a hang shows at most that many
bad calls before the first of them times out and frees a slot. A system of one slot
(the Zhuhai catalogue) opens on one call that stopped answering when nothing has
succeeded for the slow threshold: its slot is held until that call ends (and
`budget.abandoned_s` after a timeout), so nobody else could be served meanwhile, and
opening only gives them a fast 503 instead of a wait to the deadline.

Bad calls must come from several students because one student's requests must not
be able to open the breaker for everyone (a history too long to page, a page our
parser chokes on for that account): a school that is really failing fails for
everybody. A wrong password, a query the school refused as invalid, or an answer
refused for what was asked (a cover too large) is the school answering: neither
good nor bad.

The recent calls and the state live in memory shared by the workers of a host
(`BreakerTable`, made by the master before the fork), so the workers learn
together: with a budget of 2 school requests, one worker alone might never see
enough calls to decide. The rule is also applied when a request asks whether the
breaker is open (before waiting in any line), so time passing alone can open it
while every slot is held by a hanging call. A probe whose worker died is given up
after the slow threshold, and another may go.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal, NamedTuple

from observability import metrics
from services.errors import SchoolFailing
from services.shared_slots import SharedSlots, key_hash

State = Literal["closed", "open", "half_open"]

# Calls remembered per system (the `window` setting may not exceed it).
MAX_WINDOW: Final = 64
# tag, opened_at (0 closed), probe_until (0 none), last good call (0 none), next slot;
# then (at, student, bad) calls.
HEAD: Final = struct.Struct("=Qdddi")
CALL: Final = struct.Struct("=dQB")
# Never fewer bad calls (and students) than this open a breaker, whatever the budget:
# one call is one student's, and one student must not open it for everyone.
MIN_EVIDENCE: Final = 2


class BreakerOpen(SchoolFailing):
    """The school system failed repeatedly; we are not asking it for a while."""

    def __init__(self, system: str, retry_after_s: float) -> None:
        super().__init__(f"{system}: circuit open, retry in {retry_after_s:.0f}s", retry_after_s)
        self.system = system


class Call(NamedTuple):
    """One ended (or slow) call: when it was recorded, whose it was, whether it was bad."""

    at: float  # 0: an empty place
    student: int  # a hash of the student (or the question, for answers shared by all)
    bad: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """When a breaker opens (see the module docstring)."""

    failures: int  # bad calls needed
    students: int  # different students among them
    failure_rate: float  # share of the window's calls that must be bad...
    quiet_s: float  # ...unless no call has succeeded for this long
    window: int  # at most this many of the newest calls count
    window_s: float  # and none older than this
    # For a system of one slot: bad calls within quiet_s enough, whoever made them, when
    # none has succeeded for quiet_s (0: the rule above alone).
    quiet_failures: int = 0

    @classmethod
    def of(
        cls,
        failures: int,
        min_students: int,
        failure_rate: float,
        slow_call_s: float,
        window: int,
        window_s: float,
        budget: int | None = None,
    ) -> Rule:
        """The rule for a system that runs at most `budget` calls at once (None: no cap)."""
        quiet_failures = 0
        if budget is not None:
            most = max(MIN_EVIDENCE, budget)
            failures = min(failures, most)
            min_students = min(min_students, most)
            # One slot held by a call that stopped answering: nobody else can be served
            # until it ends, so opening takes nothing from anyone; it only turns their
            # wait for the slot into a fast 503 (or a stale answer).
            quiet_failures = budget if budget < MIN_EVIDENCE else 0
        return cls(
            failures=failures,
            students=min(min_students, failures),
            failure_rate=failure_rate,
            quiet_s=slow_call_s,
            window=min(MAX_WINDOW, max(window, failures)),
            window_s=window_s,
            quiet_failures=quiet_failures,
        )

    def opens(self, calls: Iterable[Call], last_good: float, now: float) -> bool:
        """Whether these recorded calls, the last success at `last_good` (0: none), open it."""
        recent = sorted((c for c in calls if c.at and now - c.at <= self.window_s), reverse=True)
        recent = recent[: self.window]
        bad = [c.student for c in recent if c.bad]
        quiet = now - last_good >= self.quiet_s  # nothing has succeeded lately
        if quiet and 0 < self.quiet_failures < self.failures:
            # One slot: its call turned bad within the slow threshold (it is hanging
            # now, not one that was slow before an idle spell).
            lately = [c for c in recent if c.bad and now - c.at <= self.quiet_s]
            if len(lately) >= self.quiet_failures:
                return True
        if len(bad) < self.failures or len(set(bad)) < self.students:
            return False
        return quiet or len(bad) >= self.failure_rate * len(recent)


class BreakerTable(SharedSlots):
    """The breakers' state and last calls, one record per school system, for a host."""

    slot_size = HEAD.size + MAX_WINDOW * CALL.size
    table_name = "jnufm-breakers"


class Record(NamedTuple):
    """A breaker's shared record as read under its lock."""

    offset: int
    opened: float
    probe_until: float
    last_good: float
    next: int
    calls: list[Call]


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

    def failed(self, subject: str | None = None) -> None:
        """The call failed; `subject` counts it under another name than its student's
        (an unreadable page kind fails for everyone: one subject, not many)."""
        if self._end():
            self._breaker._record(bad=True, student=subject or self._student, probe=self._probe)

    def neutral(self) -> None:
        """The call told us nothing about the school's health (a wrong password)."""
        if self._end() and self._probe:
            self._breaker._release_probe()


class CircuitBreaker:
    """Watches the recent calls to one school system and opens when too many are bad."""

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
        window_s: float = 30.0,
        failure_rate: float = 0.5,
        slow_call_s: float = float("inf"),
        budget: int | None = None,
    ) -> None:
        """`slow_call_s`: how long a call may run before it is bad (the caller passes at
        most the query deadline); `budget`: calls at most in flight at once (caps
        `failure_threshold` and `min_students`, never below 2)."""
        self.system = system
        self.rule = Rule.of(
            failure_threshold, min_students, failure_rate, slow_call_s, window, window_s, budget
        )
        self._open_s = open_s
        self._clock = clock  # CLOCK_MONOTONIC: one clock for every process of the host
        self._table = table if table is not None else BreakerTable.create(8)
        self._slow_call_s = slow_call_s
        self._probe_timeout_s = min(slow_call_s, 60.0)
        self._tag = key_hash("breaker|" + system)
        self._first = self._table.chain_start(self._tag)
        self._last_reported: State = "closed"

    # The shared record -----------------------------------------------------------------

    def _read(self) -> Record:
        memory = self._table.memory
        for offset in self._table.chain(self._first):
            tag, opened, probe, good, nxt = HEAD.unpack_from(memory, offset)
            if tag == self._tag:
                calls = [
                    Call(*CALL.unpack_from(memory, offset + HEAD.size + i * CALL.size))
                    for i in range(MAX_WINDOW)
                ]
                return Record(offset, opened, probe, good, nxt, calls)
        for offset in self._table.chain(self._first):
            if HEAD.unpack_from(memory, offset)[0] == 0:
                HEAD.pack_into(memory, offset, self._tag, 0.0, 0.0, 0.0, 0)
                return Record(offset, 0.0, 0.0, 0.0, 0, [Call(0.0, 0, False)] * MAX_WINDOW)
        raise RuntimeError("breaker table full")  # one record per school system: never

    def _write_head(self, r: Record, opened: float, probe: float, good: float, nxt: int) -> None:
        HEAD.pack_into(self._table.memory, r.offset, self._tag, opened, probe, good, nxt)

    def _clear_calls(self, r: Record) -> None:
        start = r.offset + HEAD.size
        self._table.memory[start : start + MAX_WINDOW * CALL.size] = bytes(MAX_WINDOW * CALL.size)

    def _open(self, r: Record, now: float) -> None:
        """Open now, forgetting the calls (the probe's outcome decides what comes next)."""
        self._write_head(r, now, 0.0, r.last_good, 0)
        self._clear_calls(r)

    def _judged(self, now: float) -> tuple[State, Record]:
        """The state now (under the lock), opening the breaker first if the rule says so:
        time alone can open it (the last success ageing past the slow threshold)."""
        r = self._read()
        if not r.opened and self.rule.opens(r.calls, r.last_good, now):
            self._open(r, now)
            r = r._replace(opened=now, probe_until=0.0)
        return self._state_of(r.opened, now), r

    # State -------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        with self._table.locked(self._first):
            state, _ = self._judged(self._clock())
        self._report(state)
        return state

    def _state_of(self, opened: float, now: float) -> State:
        if not opened:
            return "closed"
        return "open" if now - opened < self._open_s else "half_open"

    def _report(self, state: State) -> None:
        if state != self._last_reported:
            self._last_reported = state
            metrics.set_breaker_state(self.system, state)

    def raise_if_open(self) -> None:
        """Raise BreakerOpen while no call may go through: open, or half-open with the
        probe out (without taking the probe)."""
        now = self._clock()
        with self._table.locked(self._first):
            state, r = self._judged(now)
        self._report(state)
        if state == "open":
            raise BreakerOpen(self.system, self._open_s - (now - r.opened))
        if state == "half_open" and r.probe_until > now:
            raise BreakerOpen(self.system, r.probe_until - now)

    def begin(self, student: str) -> BreakerCall:
        """Start a call for `student`. Raises BreakerOpen if none may go through now."""
        call = BreakerCall(self, student, probe=self._admit())
        call._start(self._slow_call_s)
        return call

    def _admit(self) -> bool:
        """Whether the call admitted now is the half-open probe; BreakerOpen if none may go."""
        now = self._clock()
        with self._table.locked(self._first):
            state, r = self._judged(now)
            if state == "closed":
                return False
            if state == "open":
                self._report(state)
                raise BreakerOpen(self.system, self._open_s - (now - r.opened))
            if r.probe_until > now:
                raise BreakerOpen(self.system, r.probe_until - now)
            self._write_head(r, r.opened, now + self._probe_timeout_s, r.last_good, r.next)
        self._report("half_open")
        return True

    def _release_probe(self) -> None:
        with self._table.locked(self._first):
            r = self._read()
            self._write_head(r, r.opened, 0.0, r.last_good, r.next)

    def _record(self, bad: bool, student: str, probe: bool) -> None:
        now = self._clock()
        with self._table.locked(self._first):
            r = self._read()
            good = r.last_good if bad else now
            if probe or r.opened:
                # Only the probe's outcome decides while the breaker is not closed.
                if not probe:
                    return
                if bad:
                    self._open(r, now)
                    state: State = "open"
                else:
                    self._write_head(r, 0.0, 0.0, now, 0)
                    self._clear_calls(r)
                    state = "closed"
            else:
                call = Call(now, key_hash(student), bad)
                CALL.pack_into(self._table.memory, r.offset + HEAD.size + r.next * CALL.size, *call)
                r.calls[r.next] = call
                self._write_head(r, 0.0, r.probe_until, good, (r.next + 1) % self.rule.window)
                state, _ = self._judged(now)
        self._report(state)
