"""What the master does when a worker dies: start another, when, or stop the server.

A pure function of the worker's exit and the history of deaths, so the policy
is tested without forking (tests/unit/test_restarts.py):

- a **boot failure**, a worker that died before it served or within
  `supervisor.boot_window_s` of starting to serve, says the code or the
  configuration cannot run: `crash_loop_deaths` of them within
  `crash_loop_window_s` stop the server (exit 1), so systemd reports it
  instead of us burning a core;
- a worker that served and then died (the OOM killer, a kill, a crash on some
  input) is replaced, forever, after a backoff that doubles with each death of
  the same worker younger than `stable_after_s` (up to `backoff_max_s`) and
  resets once one lives longer: one bad input that kills a worker every few
  seconds must not take the whole server down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from settings import SupervisorSettings


@dataclass(frozen=True, slots=True)
class WorkerExit:
    """One worker death, as the master saw it (times are time.monotonic())."""

    index: int
    started: float  # forked
    served_at: float | None  # first seen serving (heartbeat); None: never served
    died: float


@dataclass(frozen=True, slots=True)
class Decision:
    stop: bool  # a crash loop: stop the server
    delay_s: float  # else start a new worker after this long
    boot_failure: bool


@dataclass(frozen=True, slots=True)
class DeathHistory:
    """Boot failures in the crash-loop window, and each worker's young deaths in a row."""

    boot_failures: tuple[float, ...] = ()
    young_deaths: dict[int, int] = field(default_factory=dict)


def is_boot_failure(death: WorkerExit, sv: SupervisorSettings) -> bool:
    return death.served_at is None or death.died - death.served_at < sv.boot_window_s


def decide(
    death: WorkerExit, history: DeathHistory, sv: SupervisorSettings
) -> tuple[Decision, DeathHistory]:
    """What to do about `death`, and the history to remember for the next one."""
    boot = is_boot_failure(death, sv)
    recent = tuple(t for t in history.boot_failures if death.died - t <= sv.crash_loop_window_s)
    if boot:
        recent = (*recent, death.died)
    young = death.died - death.started < sv.stable_after_s
    streak = history.young_deaths.get(death.index, 0) + 1 if young else 0
    history = replace(
        history, boot_failures=recent, young_deaths={**history.young_deaths, death.index: streak}
    )
    if boot and len(recent) >= sv.crash_loop_deaths:
        return Decision(stop=True, delay_s=0.0, boot_failure=True), history
    delay = 0.0 if streak == 0 else min(sv.backoff_max_s, sv.backoff_initial_s * 2 ** (streak - 1))
    return Decision(stop=False, delay_s=delay, boot_failure=boot), history
