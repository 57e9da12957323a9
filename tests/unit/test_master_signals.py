"""The master's signal table: which signal does what, and only that (runtime/master.py).

The processes and their signals end to end are in the system tests (restarts,
server process, operations); here the table itself, on a master without workers.
"""

from __future__ import annotations

import signal

import pytest

from runtime.master import HANDLED_SIGNALS, SIGNAL_ACTIONS, Master
from settings import ConfigError, Settings


def master(workers: int = 2) -> Master:
    return Master(Settings.model_validate({"processes": workers}))


def test_the_table_names_every_signal_the_master_handles_and_no_other() -> None:
    assert set(SIGNAL_ACTIONS) == {
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
        signal.SIGUSR1,
        signal.SIGTTIN,
        signal.SIGTTOU,
        signal.SIGCHLD,
    }
    assert tuple(SIGNAL_ACTIONS) == HANDLED_SIGNALS
    assert SIGNAL_ACTIONS[signal.SIGTERM] is SIGNAL_ACTIONS[signal.SIGINT]


@pytest.mark.parametrize(
    ("workers", "received", "stopping", "wanted", "left"),
    [
        (2, [signal.SIGTERM], True, 2, []),
        (2, [signal.SIGINT], True, 2, []),
        (2, [signal.SIGTTIN], False, 3, []),
        (2, [signal.SIGTTIN, signal.SIGTTIN], False, 4, []),
        (2, [signal.SIGTTOU], False, 1, []),
        (1, [signal.SIGTTOU], False, 1, []),  # never fewer than one worker
        (2, [signal.SIGTTIN, signal.SIGTTOU], False, 2, []),
        (2, [signal.SIGCHLD], False, 2, []),
        (2, [signal.SIGUSR1], False, 2, []),
        # A stop ends the round: what came after it is left unhandled.
        (2, [signal.SIGTERM, signal.SIGTTIN], True, 2, [signal.SIGTTIN]),
    ],
)
def test_each_signal_does_what_the_table_says(
    workers: int, received: list[int], stopping: bool, wanted: int, left: list[int]
) -> None:
    m = master(workers)
    m.pending_signals.extend(received)
    m._handle_signals()
    assert (m.stopping, m.wanted) == (stopping, wanted)
    assert m.pending_signals == left


def test_sighup_reloads_and_a_refused_file_keeps_the_running_configuration() -> None:
    seen: list[Settings] = []

    def refuse(old: Settings) -> Settings:
        seen.append(old)
        raise ConfigError("not this time")

    m = master()
    m.reload_settings = refuse
    m.pending_signals.append(signal.SIGHUP)
    m._handle_signals()
    assert seen == [m.settings]
    assert (m.stopping, m.wanted, m.generation) == (False, 2, 1)
