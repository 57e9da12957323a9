"""The master process: binds the socket, forks the workers, supervises them, stops them.

We own the fork/wait loop instead of calling `tornado.process.fork_processes`:
that function never returns in the parent, exits the parent when a worker
fails too often, and gives no hook for signals, so it can grow into none of
graceful stop, reload, backoff or readiness. Here the master is a plain loop
woken by signals (through `signal.set_wakeup_fd`), which later features extend.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from tornado.netutil import bind_sockets

from runtime.simulator import SimulatorProcess
from runtime.worker import EXIT_FATAL, run_worker
from services.factory import make_rate_table
from services.limits import SharedRateTable
from settings import Settings

log = logging.getLogger("jnufm.master")

# A worker that dies this soon after its start more than this many times in a
# row is failing at start-up: slow down instead of forking in a tight loop.
FAST_DEATH_S = 1.0
FAST_DEATH_DELAY_S = 1.0


@dataclass
class WorkerSlot:
    index: int
    pid: int = 0
    started: float = 0.0
    restarts: int = 0


@dataclass
class Master:
    """Supervises `settings.worker_count()` forked workers on one listening socket."""

    settings: Settings
    sockets: list[socket.socket] | None = None
    slots: dict[int, WorkerSlot] = field(default_factory=dict)
    pending_signals: list[int] = field(default_factory=list)
    stopping: bool = False
    exit_code: int = 0
    # Per-address request counters; created before the fork so all workers share them.
    rate_table: SharedRateTable | None = None

    def __post_init__(self) -> None:
        self.rate_table = make_rate_table(self.settings)

    def bind(self) -> None:
        """Bind the shared listening socket before forking (unless workers use SO_REUSEPORT)."""
        listen = self.settings.listen
        if listen.reuse_port:
            # Each worker binds its own socket; check once here that the port is free.
            probe = bind_sockets(listen.port, listen.host, reuse_port=True)
            for sock in probe:
                sock.close()
            return
        self.sockets = bind_sockets(listen.port, listen.host, backlog=listen.backlog)

    @property
    def address(self) -> tuple[str, int]:
        if self.sockets:
            host, port = self.sockets[0].getsockname()[:2]
            return str(host), int(port)
        return self.settings.listen.host, self.settings.listen.port

    def spawn(self, slot: WorkerSlot) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                code = run_worker(self.settings, self.sockets, slot.index, self.rate_table)
            except BaseException:
                log.exception("worker %d crashed", slot.index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        slot.pid = pid
        slot.started = time.monotonic()
        log.info("worker %d started (pid %d)", slot.index, pid)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.pending_signals.append(signum)

    def run(self, simulator: SimulatorProcess | None = None) -> int:
        """Fork the workers and supervise them until told to stop; returns the exit code."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)
        for index in range(self.settings.worker_count()):
            self.slots[index] = WorkerSlot(index)
            self.spawn(self.slots[index])
        try:
            while not self.stopping:
                select.select([wake_r], [], [], 1.0)
                try:
                    while os.read(wake_r, 512):
                        pass
                except BlockingIOError:
                    pass
                self._handle_signals()
                self._reap()
                if simulator is not None and not self.stopping and simulator.exited():
                    log.error("the bundled school simulator exited; stopping")
                    self.exit_code = 1
                    self.stopping = True
        finally:
            self._stop_workers()
            signal.set_wakeup_fd(-1)
            os.close(wake_r)
            os.close(wake_w)
        return self.exit_code

    def _handle_signals(self) -> None:
        while self.pending_signals:
            signum = self.pending_signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("received %s: stopping", signal.Signals(signum).name)
                self.stopping = True

    def _exited(self) -> list[tuple[WorkerSlot, int]]:
        """Workers that have exited since the last look, with their exit codes.

        Waits on each worker's pid rather than on -1: the simulator is our
        child too, and its Popen object must reap it itself.
        """
        exited = []
        for slot in self.slots.values():
            if not slot.pid:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = slot.pid, 0
            if pid:
                exited.append((slot, os.waitstatus_to_exitcode(status)))
                slot.pid = 0
        return exited

    def _reap(self) -> None:
        for slot, code in self._exited():
            if self.stopping:
                continue
            if code == EXIT_FATAL:
                log.error("worker %d cannot start (exit %d); stopping", slot.index, code)
                self.exit_code = 1
                self.stopping = True
                return
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.warning("worker %d died with %s; starting a new one", slot.index, how)
            if time.monotonic() - slot.started < FAST_DEATH_S:
                time.sleep(FAST_DEATH_DELAY_S)
            slot.restarts += 1
            self.spawn(slot)

    def _stop_workers(self) -> None:
        """SIGTERM every worker, wait for the grace period (+5 s), then SIGKILL the rest."""
        live = [s for s in self.slots.values() if s.pid]
        for slot in live:
            _kill(slot.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + 5
        while any(s.pid for s in self.slots.values()) and time.monotonic() < deadline:
            self._exited()
            time.sleep(0.02)
        for slot in self.slots.values():
            if slot.pid:
                log.warning("worker %d did not stop in time; killing it", slot.index)
                _kill(slot.pid, signal.SIGKILL)
        while any(s.pid for s in self.slots.values()):
            self._exited()
            time.sleep(0.02)
        for sock in self.sockets or []:
            sock.close()


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
