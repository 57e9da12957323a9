"""The master's restart policy as a pure function: boot failures stop the server, deaths
after serving are replaced forever with backoff."""

from __future__ import annotations

from runtime.restarts import DeathHistory, WorkerExit, decide, is_boot_failure
from settings import SupervisorSettings

SV = SupervisorSettings(
    backoff_initial_s=0.1,
    backoff_max_s=30,
    stable_after_s=10,
    crash_loop_deaths=3,
    crash_loop_window_s=60,
    boot_window_s=2,
)


def died(index: int, started: float, served_after: float | None, lived: float) -> WorkerExit:
    served = None if served_after is None else started + served_after
    return WorkerExit(index, started, served, started + lived)


def test_never_serving_is_a_boot_failure_and_three_stop_the_server() -> None:
    history = DeathHistory()
    decisions = []
    t = 0.0
    for _ in range(3):
        decision, history = decide(died(0, t, None, 0.5), history, SV)
        decisions.append(decision)
        t += 1
    assert [d.boot_failure for d in decisions] == [True, True, True]
    assert [d.stop for d in decisions] == [False, False, True]
    # The first two were started again with a growing delay.
    assert decisions[0].delay_s == 0.1
    assert decisions[1].delay_s == 0.2


def test_dying_right_after_serving_is_a_boot_failure_too() -> None:
    assert is_boot_failure(died(0, 0.0, 1.0, 2.5), SV)  # served for 1.5 s < 2 s
    assert not is_boot_failure(died(0, 0.0, 1.0, 3.5), SV)


def test_a_worker_killed_every_3s_after_serving_is_replaced_forever() -> None:
    history = DeathHistory()
    t = 0.0
    delays = []
    for _ in range(100):  # 10x the crash-loop count, within the window many times over
        decision, history = decide(died(1, t, 0.3, 3.0), history, SV)
        assert not decision.stop
        assert not decision.boot_failure
        delays.append(decision.delay_s)
        t += 3.0 + decision.delay_s
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(delays) == 30, "the backoff is capped"


def test_the_backoff_resets_once_a_worker_lives_past_stable_after_s() -> None:
    history = DeathHistory()
    for _ in range(3):
        decision, history = decide(died(0, 0.0, 0.3, 3.0), history, SV)
    assert decision.delay_s == 0.4
    decision, history = decide(died(0, 100.0, 0.3, 20.0), history, SV)
    assert decision.delay_s == 0.0
    decision, history = decide(died(0, 200.0, 0.3, 3.0), history, SV)
    assert decision.delay_s == 0.1


def test_old_boot_failures_leave_the_window() -> None:
    history = DeathHistory()
    for t in (0.0, 1.0):
        decision, history = decide(died(0, t, None, 0.1), history, SV)
    decision, history = decide(died(0, 100.0, None, 0.1), history, SV)
    assert not decision.stop, "the first two are older than the window"
    assert len(history.boot_failures) == 1


def test_each_worker_has_its_own_backoff() -> None:
    history = DeathHistory()
    for _ in range(3):
        decision, history = decide(died(0, 0.0, 0.3, 3.0), history, SV)
    decision, history = decide(died(1, 0.0, 0.3, 3.0), history, SV)
    assert decision.delay_s == 0.1
