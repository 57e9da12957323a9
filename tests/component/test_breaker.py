"""The circuit breaker: bad calls of several students open it, slow calls count, old
successes age out, a hang opens it within two query deadlines whatever the budget,
the workers of a host learn together, one probe at a time; over HTTP, covers refused
for their size never open it, and a hanging cover service gets 503 from it."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from services.breaker import BreakerCall, BreakerOpen, BreakerTable, Call, CircuitBreaker, Rule
from settings import BreakerSettings
from tests.conftest import make_settings, serve_app


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> Iterator[BreakerTable]:
    made = BreakerTable.create(8)
    yield made
    made.close()


def state_of(card: CircuitBreaker) -> str:
    return str(card.state)


def breaker(table: BreakerTable, clock: Ticks, name: str = "card", **kw: float) -> CircuitBreaker:
    options = {
        "min_students": 3,
        "window": 10,
        "window_s": 30.0,
        "failure_rate": 0.5,
        "slow_call_s": 5.0,
        "failures": 3,
        "budget": 0,
    }
    options.update(kw)
    return CircuitBreaker(
        name,
        int(options["failures"]),
        5.0,
        clock,
        table=table,
        min_students=int(options["min_students"]),
        window=int(options["window"]),
        window_s=options["window_s"],
        failure_rate=options["failure_rate"],
        slow_call_s=options["slow_call_s"],
        budget=int(options["budget"]) or None,
    )


def test_failures_of_three_students_open_it_one_student_never_does(table: BreakerTable) -> None:
    clock = Ticks()
    card = breaker(table, clock)
    for _ in range(10):
        card.begin("2012000001").failed()
    assert state_of(card) == "closed", "one student's failures are not the school's"
    card.begin("2012000002").failed()
    card.begin("2012000003").failed()
    assert state_of(card) == "open"
    with pytest.raises(BreakerOpen):
        card.begin("2012000004")


def test_healthy_calls_between_failures_keep_it_closed(table: BreakerTable) -> None:
    clock = Ticks()
    card = breaker(table, clock)
    for n in range(30):
        call = card.begin(f"20120000{n:02d}")
        call.failed() if n % 3 == 0 else call.ok()
        clock.now += 1.0
    assert state_of(card) == "closed", "a third of calls failing is below the rate"


def test_slow_calls_count_as_soon_as_they_are_slow(table: BreakerTable) -> None:
    clock = Ticks()
    card = breaker(table, clock)
    calls = [card.begin(f"201200000{n}") for n in range(3)]
    for call in calls:
        call.mark_slow()  # what the timer does at slow_call_s
    assert state_of(card) == "open", "opened while the calls still run"
    for call in calls:
        call.ok()  # their end changes nothing more


def test_the_workers_of_a_host_learn_together(table: BreakerTable) -> None:
    clock = Ticks()
    workers = [breaker(table, clock), breaker(table, clock)]
    workers[0].begin("2012000001").failed()
    workers[1].begin("2012000002").failed()
    workers[0].begin("2012000003").failed()
    assert state_of(workers[1]) == "open", "each saw too few calls alone"


# -- the rule, case by case --------------------------------------------------------------

NOW = 1000.0
RULE = Rule.of(3, 3, 0.5, slow_call_s=5.0, window=10, window_s=30.0)


def calls(*spec: tuple[float, int, bool]) -> list[Call]:
    """(seconds ago, student, bad) -> calls as recorded."""
    return [Call(NOW - ago, student, bad) for ago, student, bad in spec]


RULE_CASES = [
    # (what, calls, last success seconds ago, opens)
    (
        "three students failing, nothing else",
        calls((1, 1, True), (1, 2, True), (1, 3, True)),
        999,
        True,
    ),
    ("two students are not enough", calls((1, 1, True), (1, 2, True), (1, 2, True)), 999, False),
    (
        "fresh successes outweigh them",
        calls(*[(2, 10 + n, False) for n in range(7)], (1, 1, True), (1, 2, True), (1, 3, True)),
        1,
        False,
    ),
    (
        "the same successes, none since the slow threshold: the school stopped answering",
        calls(*[(8, 10 + n, False) for n in range(7)], (1, 1, True), (1, 2, True), (1, 3, True)),
        8,
        True,
    ),
    (
        "successes older than the window are forgotten",
        calls(*[(40, 10 + n, False) for n in range(7)], (1, 1, True), (1, 2, True), (1, 3, True)),
        40,
        True,
    ),
    (
        "failures older than the window are forgotten",
        calls((31, 1, True), (31, 2, True), (1, 3, True)),
        999,
        False,
    ),
    ("an empty record", [], 0, False),
]


@pytest.mark.parametrize(("what", "recorded", "good_ago", "opens"), RULE_CASES)
def test_when_the_rule_opens(what: str, recorded: list[Call], good_ago: float, opens: bool) -> None:
    assert RULE.opens(recorded, NOW - good_ago, NOW) is opens, what


@pytest.mark.parametrize(
    ("budget", "failures", "students"), [(None, 3, 3), (1, 2, 2), (2, 2, 2), (3, 3, 3), (4, 3, 3)]
)
def test_the_evidence_asked_for_is_capped_by_the_budget_never_below_two(
    budget: int | None, failures: int, students: int
) -> None:
    rule = Rule.of(3, 3, 0.5, 5.0, 10, 30.0, budget)
    assert (rule.failures, rule.students) == (failures, students)
    # An operator's lower setting stands.
    assert Rule.of(1, 1, 0.5, 5.0, 10, 30.0, budget).students == 1


# -- time ----------------------------------------------------------------------------------


def test_old_successes_age_out_of_the_window(table: BreakerTable) -> None:
    clock = Ticks()
    # No slow threshold: only the failure rate over the window decides here.
    card = breaker(table, clock, slow_call_s=float("inf"))
    for n in range(10):
        card.begin(f"20120001{n:02d}").ok()
    clock.now += 10.0
    for n in range(3):
        card.begin(f"201200000{n}").failed()
    assert state_of(card) == "closed", "ten successes 10 s ago still vouch for it"
    clock.now += 25.0  # the successes are 35 s old, the failures 25 s
    assert state_of(card) == "open"


def test_time_alone_opens_it_while_the_slots_hang(table: BreakerTable) -> None:
    clock = Ticks()
    card = breaker(table, clock, budget=2)
    for n in range(20):
        card.begin(f"20120001{n:02d}").ok()
    hung = [card.begin("2012000001"), card.begin("2012000002")]
    clock.now += 4.0
    for call in hung:
        call.mark_slow()
    card.raise_if_open()  # successes 4 s ago: not yet
    clock.now += 1.0
    # Nothing ended meanwhile (both slots hang): asking is enough to open it.
    with pytest.raises(BreakerOpen) as raised:
        card.raise_if_open()
    assert raised.value.retry_after == 5, "open_s, in whole seconds"


def test_one_student_cannot_open_it_even_when_nothing_else_succeeds(table: BreakerTable) -> None:
    clock = Ticks()
    for budget in (2, 4):
        card = breaker(table, clock, f"budget {budget}", budget=budget)
        for _ in range(20):
            call = card.begin("2012000001")
            clock.now += 5.0
            call.mark_slow()
            clock.now += 10.0
            call.failed()
            card.raise_if_open()
        assert state_of(card) == "closed"


def test_a_system_of_one_slot_opens_on_its_one_hung_call(table: BreakerTable) -> None:
    """Budget 1: the slot is held until the hung call ends, so nobody else could be
    served meanwhile; opening only turns their wait into a fast 503. A slow call that
    ends while other calls succeed does not open it (the rate rule needs two students)."""
    clock = Ticks()
    zhuhai = breaker(table, clock, "one slot", budget=1)
    for n in range(5):
        zhuhai.begin(f"q{n}").ok()
    slow = zhuhai.begin("q-slow")
    clock.now += 3.0
    zhuhai.begin("q-other").ok()  # another call succeeded 2 s before it turned slow
    clock.now += 2.0
    slow.mark_slow()
    zhuhai.raise_if_open()  # the school answered lately: one slow call is not a hang
    slow.ok()
    clock.now += 10.0
    # Slow 10 s ago, idle since: the one who asks now does not find it open.
    zhuhai.raise_if_open()
    hung = zhuhai.begin("q-hung")
    clock.now += 5.0
    hung.mark_slow()  # nothing has succeeded for the slow threshold, the one slot hangs
    with pytest.raises(BreakerOpen):
        zhuhai.raise_if_open()


def test_refusals_for_what_was_asked_never_open_it(table: BreakerTable) -> None:
    clock = Ticks()
    covers = breaker(table, clock, budget=4)
    for n in range(50):
        covers.begin(f"isbn-{n}").neutral()  # a cover too large, not an image, no record
        clock.now += 1.0
        covers.raise_if_open()
    assert state_of(covers) == "closed"


# -- a hang, system by system ----------------------------------------------------------------

DEADLINE_S = 10.0  # api.deadline_s
# (system, budget, school.<system>.total_timeout_s) as config.yaml sets them.
SYSTEMS = [
    ("card", 2, 30.0),
    ("academic", 2, 15.0),
    ("library", 2, 10.0),
    ("library_zhuhai", 1, 10.0),
    ("covers", 4, 5.0),
]


@dataclass(order=True)
class Event:
    at: float
    seq: int
    act: Callable[[], None] = field(compare=False)


@dataclass
class HangDrill:
    """Cold requests from ever new students against a school that hangs from `hang_at`,
    on a fake clock: each asks whether the breaker is open before waiting in line, waits
    for one of `budget` slots at most until its deadline, and a call holds its slot until
    it ends (answered, or at the school's total timeout), as the pipeline does."""

    budget: int
    total_timeout_s: float
    hang_at: float
    every_s: float = 0.04  # one cold request this often
    answer_s: float = 0.03  # a healthy school's answer time
    typical_s: float = 0.25  # a request is not sent with less of the deadline left
    clock: Ticks = field(default_factory=Ticks)
    events: list[Event] = field(default_factory=list)
    line: deque[tuple[str, float]] = field(default_factory=deque)
    busy: int = 0
    peak: int = 0
    refused: int = 0
    opened_at: float | None = None
    count: Iterator[int] = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.clock.now = 0.0
        self.table = BreakerTable.create(8)
        s = BreakerSettings()
        self.breaker = CircuitBreaker(
            "drill",
            s.failures,
            s.open_s,
            self.clock,
            table=self.table,
            min_students=s.min_students,
            window=s.window,
            window_s=s.window_s,
            failure_rate=s.failure_rate,
            slow_call_s=min(s.slow_call_s, DEADLINE_S),
            budget=self.budget,
        )
        self.slow_s = min(s.slow_call_s, DEADLINE_S)

    def at(self, when: float, act: Callable[[], None]) -> None:
        heapq.heappush(self.events, Event(when, next(self.count), act))

    def arrive(self, n: int) -> None:
        try:
            self.breaker.raise_if_open()
        except BreakerOpen:
            self.refused += 1
            return
        self.line.append((f"2012{n:06d}", self.clock.now + DEADLINE_S))
        self.dispatch()

    def dispatch(self) -> None:
        now = self.clock.now
        while self.busy < self.budget and self.line:
            student, deadline = self.line.popleft()
            if deadline - now < self.typical_s:
                continue  # not sent: it could not end in time (a 504, nothing counted)
            try:
                call = self.breaker.begin(student)
            except BreakerOpen:
                self.refused += 1
                continue
            self.busy += 1
            self.peak = max(self.peak, self.busy)
            if now + self.answer_s < self.hang_at:
                self.at(now + self.answer_s, partial(self.end, call, True))
            else:  # at the school when it hangs: held until our total timeout
                if self.slow_s < self.total_timeout_s:
                    self.at(now + self.slow_s, call.mark_slow)
                self.at(now + self.total_timeout_s, partial(self.end, call, False))

    def end(self, call: BreakerCall, good: bool) -> None:
        call.ok() if good else call.failed()
        self.busy -= 1
        self.dispatch()

    def run(self, until: float) -> float | None:
        """Seconds from the hang to the breaker's opening (None: never, by `until`)."""
        for n in range(int(until / self.every_s)):
            self.at(n * self.every_s, partial(self.arrive, n))
        try:
            while self.events and self.opened_at is None:
                event = heapq.heappop(self.events)
                self.clock.now = event.at
                event.act()
                if self.breaker.state == "open":
                    self.opened_at = self.clock.now
        finally:
            self.table.close()
        return None if self.opened_at is None else self.opened_at - self.hang_at


@pytest.mark.parametrize(("system", "budget", "total_timeout_s"), SYSTEMS)
def test_a_hang_opens_it_within_two_deadlines_for_every_system(
    system: str, budget: int, total_timeout_s: float
) -> None:
    worst = 0.0
    for phase in (0.0, 0.007, 0.013, 0.029):  # where in a call's life the hang begins
        drill = HangDrill(budget, total_timeout_s, hang_at=40.0 + phase)
        took = drill.run(until=40.0 + 4 * DEADLINE_S)
        assert took is not None, f"{system}: never opened"
        assert drill.peak <= budget, "never more calls than the budget"
        worst = max(worst, took)
    assert worst <= 2 * DEADLINE_S, f"{system}: opened {worst:.2f}s after the hang"


def test_a_healthy_busy_school_never_opens_it() -> None:
    drill = HangDrill(2, 30.0, hang_at=float("inf"))
    assert drill.run(until=120.0) is None
    assert drill.refused == 0


# -- the probe -------------------------------------------------------------------------------


def test_one_probe_then_closed_or_open_again(table: BreakerTable) -> None:
    clock = Ticks()
    first, second = breaker(table, clock), breaker(table, clock)
    for n in range(3):
        first.begin(f"201200000{n}").failed()
    clock.now += 5.0
    assert state_of(first) == "half_open"
    probe = first.begin("2012000009")
    with pytest.raises(BreakerOpen):
        second.begin("2012000008")  # one probe at a time, over the host
    with pytest.raises(BreakerOpen):
        second.raise_if_open()  # and the others do not wait in line meanwhile
    probe.failed()
    assert state_of(second) == "open"
    clock.now += 5.0
    second.begin("2012000007").ok()
    assert state_of(first) == "closed"


def test_a_probe_into_a_hang_opens_it_again_when_slow(table: BreakerTable) -> None:
    clock = Ticks()
    card = breaker(table, clock, budget=2)
    for n in range(2):
        card.begin(f"201200000{n}").failed()
    clock.now += 5.0
    probe = card.begin("2012000009")
    clock.now += 5.0
    probe.mark_slow()  # it still holds its budget slot until its timeout
    with pytest.raises(BreakerOpen):
        card.raise_if_open()
    probe.failed()  # the timeout, later: counted once
    clock.now += 5.0
    card.begin("2012000008").ok()
    assert state_of(card) == "closed"
    card.begin("2012000007").failed()
    assert state_of(card) == "closed", "the calls before it closed are forgotten"


def test_a_probe_whose_worker_died_is_given_up(table: BreakerTable) -> None:
    clock = Ticks()
    first, second = breaker(table, clock), breaker(table, clock)
    for n in range(3):
        first.begin(f"201200000{n}").failed()
    clock.now += 5.0
    first.begin("2012000009")  # its worker dies: no outcome ever
    with pytest.raises(BreakerOpen):
        second.begin("2012000008")
    clock.now += 5.0  # slow_call_s later
    second.begin("2012000008").ok()
    assert state_of(second) == "closed"


def test_a_wrong_password_probe_tells_nothing(table: BreakerTable) -> None:
    clock = Ticks()
    card = breaker(table, clock)
    for n in range(3):
        card.begin(f"201200000{n}").failed()
    clock.now += 5.0
    card.begin("2012000009").neutral()
    assert state_of(card) == "half_open"
    card.begin("2012000009").ok()
    assert state_of(card) == "closed"


# -- over HTTP, with the simulated cover service ----------------------------------------------


def isbn13s() -> Iterator[str]:
    """Valid ISBN-13s, in a fixed order."""
    for n in range(1000):
        stem = f"978000000{n:03d}"
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(stem))
        yield stem + str((10 - total % 10) % 10)


def isbns(sim: Proc, with_cover: bool, count: int) -> list[str]:
    found = (
        i for i in isbn13s() if sim_json(sim.url, f"/__sim/covers/isbn/{i}")["cover"] is with_cover
    )
    return list(itertools.islice(found, count))


async def cover_breaker(client: httpx.AsyncClient) -> str:
    ready = await client.get("/readyz")
    return str(ready.json()["school"]["covers"])


def assert_placeholder(reply: httpx.Response) -> None:
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"] == "image/png"
    assert reply.headers.get("X-Cover") == "placeholder"


async def test_covers_too_large_never_open_the_cover_breaker(tmp_path: Path) -> None:
    with schoolsim(tmp_path, "fast") as sim:
        large, later = isbns(sim, True, 3), isbns(sim, True, 4)[3]
        (coverless,) = isbns(sim, False, 1)
        settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}", sim.url)
        async with serve_app(settings) as (client, _):
            sim_json(sim.url, "/__sim/covers/drill", {"answer": "oversize"})  # 600 KiB covers
            for _ in range(3):
                for isbn in large:
                    assert_placeholder(await client.get(f"/isbn/image/{isbn}"))
            assert await cover_breaker(client) == "closed"
            assert_placeholder(await client.get(f"/isbn/image/{coverless}"))
            sim_json(sim.url, "/__sim/covers/drill", {"answer": "mislabelled"})  # not an image
            for isbn in large:
                assert_placeholder(await client.get(f"/isbn/image/{isbn}"))
            assert await cover_breaker(client) == "closed"
            sim_json(sim.url, "/__sim/covers/reset", {})
            cover = await client.get(f"/isbn/image/{later}")
            assert cover.status_code == 200
            assert cover.headers["Content-Type"] == "image/jpeg"
            assert "X-Cover" not in cover.headers
            # Refused covers were not kept: once the service sends one we accept, it shows.
            again = await client.get(f"/isbn/image/{large[0]}")
            assert again.headers["Content-Type"] == "image/jpeg"


async def test_a_hanging_cover_service_gets_503_from_the_breaker(tmp_path: Path) -> None:
    with schoolsim(tmp_path, "fast") as sim:
        first, (then,) = isbns(sim, True, 6), isbns(sim, False, 1)
        settings = make_settings(
            f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
            sim.url,
            **{
                "breaker.slow_call_s": 1,
                "breaker.open_s": 60,  # stays open while the test looks
                "school.covers.total_timeout_s": 3,
            },
        )
        async with serve_app(settings) as (client, _):
            sim_json(sim.url, "/__sim/covers/control", {"down": True, "down_mode": "hang"})
            # More cold covers than the budget (4): the rest wait in line.
            asking = [asyncio.ensure_future(client.get(f"/isbn/image/{i}")) for i in first]
            try:
                async with asyncio.timeout(20):
                    while await cover_breaker(client) != "open":  # noqa: ASYNC110 - over HTTP
                        await asyncio.sleep(0.05)
                # Open: a cold cover is refused at once, never sent, never left to time out.
                before = sim_json(sim.url, "/__sim/covers/stats")["requests"]
                refused = await client.get(f"/isbn/image/{then}")
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"]["code"] == "school_unavailable"
                assert int(refused.headers["Retry-After"]) >= 1
                assert sim_json(sim.url, "/__sim/covers/stats")["requests"] == before
                replies = await asyncio.gather(*asking)
            finally:
                sim_json(sim.url, "/__sim/covers/control", {"down": False})
            # The ones at the school timed out (504); the ones in line met the open breaker.
            codes = sorted((r.status_code, r.json()["error"]["code"]) for r in replies)
            assert set(codes) <= {(503, "school_unavailable"), (504, "school_timeout")}, codes
            assert (503, "school_unavailable") in codes
            stats = sim_json(sim.url, "/__sim/covers/stats")
            assert isinstance(stats["peak_in_flight"], int)
            assert stats["peak_in_flight"] <= 4, "never more than the budget at the school"
