"""The circuit breaker: bad calls of several students open it, slow calls count, the
workers of a host learn together, one probe at a time."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.breaker import BreakerOpen, BreakerTable, CircuitBreaker


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


def breaker(table: BreakerTable, clock: Ticks, **kw: float) -> CircuitBreaker:
    options = {"min_students": 3, "window": 10, "failure_rate": 0.5, "slow_call_s": 5.0}
    options.update(kw)
    return CircuitBreaker(
        "card",
        int(options.pop("failures", 3)),
        5.0,
        clock,
        table=table,
        min_students=int(options["min_students"]),
        window=int(options["window"]),
        failure_rate=options["failure_rate"],
        slow_call_s=options["slow_call_s"],
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
    probe.failed()
    assert state_of(second) == "open"
    clock.now += 5.0
    second.begin("2012000007").ok()
    assert state_of(first) == "closed"


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
