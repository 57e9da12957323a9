"""The master process: binds the socket, forks the workers, supervises them, stops them.

We own the fork/wait loop instead of calling `tornado.process.fork_processes`:
that function never returns in the parent, exits the parent when a worker
fails too often, and gives no hook for signals. Here the master is a plain
loop woken by signals (through `signal.set_wakeup_fd`) and by a 0.1 s tick:

- a worker that dies is started again, after an exponential backoff when it
  keeps dying young; too many deaths in a window (a crash loop) stop the
  server with exit code 1 and a line naming the last death;
- each worker's event loop writes a heartbeat into shared memory
  (runtime/heartbeat.py); a worker whose loop is blocked longer than
  `supervisor.heartbeat_timeout_s` is killed (SIGKILL) and replaced;
- SIGTERM/SIGINT: graceful stop; SIGHUP: rolling reload of config.yaml;
  SIGUSR1: reopen log files; SIGTTIN/SIGTTOU: one worker more/fewer;
- under systemd (Type=notify) it reports READY/RELOADING/STOPPING and sends
  watchdog pings only while workers beat (runtime/systemd.py).

Workers learn of the master's death three ways: PR_SET_PDEATHSIG, a parent
pid check right after the fork, and EOF on a lifeline pipe whose write end
only the master holds.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from tornado.netutil import bind_sockets

from observability import metrics
from observability.logs import configure_logging, reopen_log_files
from runtime.heartbeat import HeartbeatTable
from runtime.restarts import DeathHistory, WorkerExit, decide
from runtime.simulator import SimulatorProcess
from runtime.systemd import Notifier
from runtime.wiring import HostTables, make_host_tables, preload
from runtime.worker import EXIT_FATAL, MasterLink, run_worker
from settings import ConfigError, Settings

log = logging.getLogger("jnufm.master")

TICK_S = 0.1
# Extra time a stopping worker gets beyond its grace period before SIGKILL.
KILL_MARGIN_S = 5.0


@dataclass
class Worker:
    """One forked worker process as the master sees it."""

    index: int
    generation: int
    pid: int
    cell: int
    started: float
    settings: Settings
    ready: bool = False
    served_at: float | None = None  # when the master first saw it serving (a heartbeat)
    retiring: bool = False  # asked to stop on purpose: not restarted
    retire_deadline: float = 0.0
    kill_reason: str = ""  # set when the master killed it (blocked, start_timeout)


def describe_exit(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"


@dataclass
class Master:
    """Supervises `settings.worker_count()` forked workers on one listening socket."""

    settings: Settings
    # Re-reads and validates the configuration for a reload; raises ConfigError.
    reload_settings: Callable[[Settings], Settings] | None = None
    notifier: Notifier = field(default_factory=lambda: Notifier({}))
    sockets: list[socket.socket] | None = None
    workers: dict[int, Worker] = field(default_factory=dict)
    pending_signals: list[int] = field(default_factory=list)
    stopping: bool = False
    exit_code: int = 0
    generation: int = 1
    wanted: int = 0
    restart_at: dict[int, float] = field(default_factory=dict)
    history: DeathHistory = field(default_factory=DeathHistory)
    announced_ready: bool = False
    # Per-address request counters and the credential gate's per-host state;
    # created before the fork so all workers (of every generation) share them.
    host_tables: HostTables | None = None

    def __post_init__(self) -> None:
        self.wanted = self.settings.worker_count()
        self._last_generation = self.generation
        self.heartbeats = HeartbeatTable()
        self._wake_r, self._wake_w = -1, -1
        self._lifeline_r, self._lifeline_w = -1, -1
        self.host_tables = make_host_tables(self.settings)

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

    # --- starting workers ------------------------------------------------------

    def spawn(self, index: int, settings: Settings, generation: int) -> Worker:
        cell = self.heartbeats.allocate()
        link = MasterLink(generation, os.getpid(), self.heartbeats, cell, self._lifeline_r)
        sys.stdout.flush()
        sys.stderr.flush()
        # Everything imported and built so far moves to the GC's permanent generation:
        # collections in the worker never write to those objects' headers, so their
        # pages stay shared with the master instead of being copied into each worker.
        gc.collect()
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)
                # Reload and scaling are the master's business; SIGUSR1 is handled
                # once the worker's loop runs.
                for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1):
                    signal.signal(sig, signal.SIG_IGN)
                for fd in (self._lifeline_w, self._wake_r, self._wake_w):
                    os.close(fd)
                self.notifier.close()
                code = run_worker(settings, self.sockets, index, link, self.host_tables)
            except BaseException:
                log.exception("worker %d crashed", index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        worker = Worker(index, generation, pid, cell, time.monotonic(), settings)
        self.workers[pid] = worker
        metrics.set_worker_count(len(self.workers))
        log.info("worker %d started (pid %d, generation %d)", index, pid, generation)
        return worker

    def _current(self) -> list[Worker]:
        """Workers of the running generation that are meant to keep serving."""
        return [
            w for w in self.workers.values() if not w.retiring and w.generation == self.generation
        ]

    def _fill(self) -> None:
        """Start workers for indexes that have none and no restart scheduled."""
        if self.stopping:
            return
        covered = {w.index for w in self._current()} | set(self.restart_at)
        for index in range(self.wanted):
            if index not in covered:
                self.spawn(index, self.settings, self.generation)

    def _start_due(self, now: float) -> None:
        for index, due in list(self.restart_at.items()):
            if due <= now:
                del self.restart_at[index]
                if index < self.wanted and not self.stopping:
                    self.spawn(index, self.settings, self.generation)

    # --- the loop --------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.pending_signals.append(signum)

    def run(self, simulator: SimulatorProcess | None = None) -> int:
        """Fork the workers and supervise them until told to stop; returns the exit code."""
        self._wake_r, self._wake_w = os.pipe()
        self._lifeline_r, self._lifeline_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        for sig in HANDLED_SIGNALS:
            signal.signal(sig, self._on_signal)
        preload(self.settings)
        try:
            self._fill()
            while not self.stopping:
                self._sleep(TICK_S)
                self._handle_signals()
                self._supervise()
                if simulator is not None and not self.stopping and simulator.exited():
                    log.error("the bundled school simulator exited; stopping")
                    self.exit_code = 1
                    self.stopping = True
        finally:
            self._stop_workers()
            signal.set_wakeup_fd(-1)
            for fd in (self._wake_r, self._wake_w, self._lifeline_r, self._lifeline_w):
                os.close(fd)
            self.notifier.close()
        return self.exit_code

    def _sleep(self, timeout: float) -> None:
        """Wait for a signal or the timeout."""
        select.select([self._wake_r], [], [], timeout)
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _supervise(self) -> None:
        """One round: reap the dead, start the due, kill the blocked, report to systemd."""
        self._reap()
        now = time.monotonic()
        self._start_due(now)
        self._fill()
        self._watch(now)
        self._report(now)

    def _handle_signals(self) -> None:
        """Act on the signals received since the last round, in order, by SIGNAL_ACTIONS."""
        while self.pending_signals and not self.stopping:
            signum = self.pending_signals.pop(0)
            SIGNAL_ACTIONS[signal.Signals(signum)](self, signum)

    def _on_stop_signal(self, signum: int) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        self.stopping = True

    def _on_reload_signal(self, _signum: int) -> None:
        self.reload()

    def _on_reopen_logs_signal(self, _signum: int) -> None:
        log.info("received SIGUSR1: reopening log files")
        reopen_log_files()
        for worker in self.workers.values():
            _kill(worker.pid, signal.SIGUSR1)

    def _on_more_workers_signal(self, _signum: int) -> None:
        self.wanted += 1
        log.info("received SIGTTIN: %d workers", self.wanted)

    def _on_fewer_workers_signal(self, _signum: int) -> None:
        if self.wanted > 1:
            self.wanted -= 1
            for worker in self._current():
                if worker.index >= self.wanted:
                    self._retire(worker)
            self.restart_at = {i: t for i, t in self.restart_at.items() if i < self.wanted}
        log.info("received SIGTTOU: %d workers", self.wanted)

    def _on_child_signal(self, _signum: int) -> None:
        """Nothing more: the signal woke the loop, whose next round reaps the dead."""

    # --- deaths ----------------------------------------------------------------

    def _reap(self) -> None:
        """Collect exited workers. Waits on each worker's pid rather than on -1: the
        simulator is our child too, and its Popen object must reap it itself."""
        for pid, worker in list(self.workers.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if not done:
                continue
            del self.workers[pid]
            if worker.served_at is None and self.heartbeats.last_beat(worker.cell):
                worker.served_at = self.heartbeats.last_beat(worker.cell)
            self.heartbeats.release(worker.cell)
            try:
                metrics.retire_process(pid)
            except OSError as exc:
                log.warning("could not fold the metrics of pid %d: %s", pid, exc)
            metrics.set_worker_count(len(self.workers))
            self._on_exit(worker, os.waitstatus_to_exitcode(status))

    def _on_exit(self, worker: Worker, code: int) -> None:
        how = describe_exit(code)
        name = f"worker {worker.index}"
        pid = f"pid {worker.pid}, generation {worker.generation}"
        if self.stopping or worker.retiring:
            log.info("%s stopped with %s (%s)", name, how, pid)
            return
        if code == EXIT_FATAL:
            log.error("worker %d cannot start (exit %d); stopping", worker.index, code)
            self.exit_code = 1
            self.stopping = True
            return
        if worker.generation != self.generation or worker.index >= self.wanted:
            log.warning(
                "%s died with %s (%s); not restarted, it was being replaced", name, how, pid
            )
            return
        now = time.monotonic()
        death = WorkerExit(worker.index, worker.started, worker.served_at, now)
        decision, self.history = decide(death, self.history, self.settings.supervisor)
        reason = worker.kill_reason or ("killed" if code < 0 else "exited")
        if decision.stop:
            sv = self.settings.supervisor
            log.critical(
                "crash loop: %d workers died before serving (or within %gs of it) within %gs "
                "(supervisor.crash_loop_deaths / crash_loop_window_s), the last one %s with "
                "%s (%s); stopping",
                len(self.history.boot_failures),
                sv.boot_window_s,
                sv.crash_loop_window_s,
                name,
                how,
                pid,
            )
            self.exit_code = 1
            self.stopping = True
            return
        delay = decision.delay_s
        metrics.record_worker_restart(reason)
        kind = "before serving" if decision.boot_failure else "after serving"
        if delay:
            log.warning(
                "%s died with %s %s (%s); starting a new one in %.1fs", name, how, kind, pid, delay
            )
        else:
            log.warning("%s died with %s %s (%s); starting a new one", name, how, kind, pid)
        self.restart_at[worker.index] = now + delay

    # --- liveness ----------------------------------------------------------------

    def _watch(self, now: float) -> None:
        """Kill workers whose loop stopped beating, that never started, or that overstay a stop."""
        for worker in self.workers.values():
            if worker.kill_reason:
                continue
            sv = worker.settings.supervisor
            beat = self.heartbeats.last_beat(worker.cell)
            if worker.retiring and now > worker.retire_deadline:
                log.warning(
                    "worker %d (pid %d) did not stop in time; killing it", worker.index, worker.pid
                )
                self._kill(worker, "stop_timeout")
            elif beat == 0.0:
                if now - worker.started > sv.start_timeout_s:
                    log.error(
                        "worker %d (pid %d) did not start serving within %gs "
                        "(supervisor.start_timeout_s); killing it",
                        worker.index,
                        worker.pid,
                        sv.start_timeout_s,
                    )
                    self._kill(worker, "start_timeout")
            elif now - beat > sv.heartbeat_timeout_s:
                log.error(
                    "worker %d (pid %d): event loop blocked for %.1fs "
                    "(supervisor.heartbeat_timeout_s %g); killing it",
                    worker.index,
                    worker.pid,
                    now - beat,
                    sv.heartbeat_timeout_s,
                )
                self._kill(worker, "blocked")
            else:
                worker.ready = True
                if worker.served_at is None:
                    worker.served_at = beat

    def _kill(self, worker: Worker, reason: str) -> None:
        worker.kill_reason = reason
        _kill(worker.pid, signal.SIGKILL)

    def _healthy(self, now: float) -> bool:
        """At least one worker serves with a fresh heartbeat."""
        for worker in self.workers.values():
            beat = self.heartbeats.last_beat(worker.cell)
            fresh = now - beat <= worker.settings.supervisor.heartbeat_timeout_s
            if beat and fresh and not worker.kill_reason:
                return True
        return False

    def _report(self, now: float) -> None:
        """READY=1 once every first worker serves; WATCHDOG=1 only while workers beat."""
        if not self.announced_ready:
            current = self._current()
            if len(current) >= self.wanted and all(w.ready for w in current):
                self.announced_ready = True
                log.info("%d workers serving", len(current))
                self.notifier.ready(f"serving with {len(current)} workers")
        if self.notifier.watchdog_due(now) and self._healthy(now):
            self.notifier.watchdog(now)

    # --- reload --------------------------------------------------------------------

    def reload(self) -> None:
        """Re-read the config; start a new generation of workers, then retire the old one.

        An invalid file is logged and the running configuration stays. The
        listening socket stays open in the master throughout (so no connection
        is refused), which is also why listen.* cannot change on reload.
        """
        if self.reload_settings is None:
            log.warning("received SIGHUP, but this server cannot reload")
            return
        log.info("received SIGHUP: reloading the configuration")
        self.notifier.reloading()
        old = self.settings
        try:
            new = self.reload_settings(old)
        except ConfigError as exc:
            log.error("reload refused: %s; the running configuration stays", exc)
            self.notifier.ready(f"serving with {len(self._current())} workers")
            return
        if new.listen != old.listen:
            log.warning(
                "reload: listen.* cannot change without a restart; still listening on %s:%d",
                old.listen.host,
                old.listen.port,
            )
            new = new.model_copy(update={"listen": old.listen})
        previous = self._current()
        old_generation, old_wanted = self.generation, self.wanted
        self._last_generation += 1
        self.settings, self.generation = new, self._last_generation
        self.wanted = new.worker_count()
        self.restart_at.clear()
        self.history = DeathHistory(self.history.boot_failures)
        configure_logging(new.log, new.http.log_repeat_interval_s)
        fresh = [self.spawn(index, new, self.generation) for index in range(self.wanted)]
        if self._wait_ready(fresh, new.supervisor.start_timeout_s):
            for worker in previous:
                self._retire(worker)
            log.info("reload done: generation %d, %d workers", self.generation, len(fresh))
        else:
            log.error("reload failed: the new workers did not start serving; keeping the old ones")
            for worker in fresh:
                if worker.pid in self.workers:
                    self._retire(worker)
            self.settings, self.generation, self.wanted = old, old_generation, old_wanted
            self.restart_at.clear()
            configure_logging(old.log, old.http.log_repeat_interval_s)
        self.notifier.ready(f"serving with {len(self._current())} workers")

    def _wait_ready(self, fresh: list[Worker], timeout_s: float) -> bool:
        """Supervise until every fresh worker serves; False if one dies, or on timeout or stop."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(s in (signal.SIGTERM, signal.SIGINT) for s in self.pending_signals):
                return False
            self._reap()
            now = time.monotonic()
            self._watch(now)
            self._report(now)
            if any(w.pid not in self.workers for w in fresh):
                return False
            if all(w.ready for w in fresh):
                return True
            self._sleep(0.01)
        return False

    # --- stopping ------------------------------------------------------------------

    def _retire(self, worker: Worker) -> None:
        """Ask a worker to stop gracefully; it is killed if it overstays its grace period."""
        worker.retiring = True
        worker.retire_deadline = time.monotonic() + worker.settings.shutdown_grace_s + KILL_MARGIN_S
        _kill(worker.pid, signal.SIGTERM)

    def _stop_workers(self) -> None:
        """Stop listening, SIGTERM every worker, SIGKILL those still there after grace + 5 s."""
        self.stopping = True
        self.notifier.stopping()
        for sock in self.sockets or []:
            sock.close()
        for worker in list(self.workers.values()):
            if not worker.retiring:
                self._retire(worker)
        while self.workers:
            self._reap()
            self._watch(time.monotonic())
            if self.workers:
                self._sleep(0.02)


# What the master does on each signal it handles; every one of them also wakes the loop
# (through the wakeup fd), and a worker's death (SIGCHLD) needs nothing more.
SIGNAL_ACTIONS: Final[Mapping[signal.Signals, Callable[[Master, int], None]]] = {
    signal.SIGTERM: Master._on_stop_signal,
    signal.SIGINT: Master._on_stop_signal,
    signal.SIGHUP: Master._on_reload_signal,
    signal.SIGUSR1: Master._on_reopen_logs_signal,
    signal.SIGTTIN: Master._on_more_workers_signal,
    signal.SIGTTOU: Master._on_fewer_workers_signal,
    signal.SIGCHLD: Master._on_child_signal,
}
HANDLED_SIGNALS: Final = tuple(SIGNAL_ACTIONS)


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
