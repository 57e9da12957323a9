"""One worker process: builds its own event loop, database engine and HTTP client, then serves.

Everything here is created after the fork (SQLAlchemy pools and event loops
must not cross a fork); what is inherited is the listening socket, the
heartbeat cell and the read end of the master's lifeline pipe.

Slow or idle clients cannot use up the worker: headers must arrive within
`http.header_timeout_s` and a body within `http.body_timeout_s`, bodies over
`http.max_body_bytes` are refused (handlers/guards.py), and beyond
`http.max_connections` open connections a new one gets an immediate 503 and is
closed. Within that cap, runtime/connections.py shares the connections fairly:
caps per address and per registered client over the host, a minimum body rate,
and, near the cap, idle and slow connections closed to make room. At start the
soft limit of open files is raised to the hard limit, and the cap is lowered if
the limit could not hold it with the worker's other files (database pool, school
connections, logs): with no file descriptor left the accept loop fails on every
wake-up and the worker stops answering.

Stopping (SIGTERM/SIGINT, or the master gone): stop accepting at once, mark
the worker draining (/readyz answers 503, every answer says `Connection:
close`), let requests in flight finish within `shutdown_grace_s`, give idle
keep-alive connections `supervisor.keepalive_drain_s` to send one last
request, then close everything and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import resource
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tornado import httputil
from tornado.http1connection import HTTP1ServerConnection
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.netutil import add_accept_handler, bind_sockets
from tornado.web import Application

from handlers import make_app
from handlers.base import AppDeps
from observability import metrics
from observability.logs import access_lines, configure_logging, reopen_log_files
from runtime import memory
from runtime.connections import (
    ConnectionGuard,
    ConnectionTable,
    answer_and_close,
    everyone_alive,
    heartbeat_liveness,
    refusal_answer,
)
from runtime.heartbeat import HeartbeatTable
from runtime.wiring import HostTables, build_worker_services
from services import codes
from services.callers import Caller, anonymous
from settings import HttpSettings, Settings

log = logging.getLogger("jnufm.worker")

# How long before the end of the grace period requests in flight get their answer.
DRAIN_MARGIN_S = 0.5

# Exit code of a worker that cannot start at all (port taken, bad settings):
# the master must not respawn it in a loop.
EXIT_FATAL = 78

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class MasterLink:
    """What ties a forked worker to its master."""

    generation: int
    master_pid: int
    heartbeats: HeartbeatTable
    cell: int
    lifeline_fd: int  # read end of a pipe only the master writes: EOF = the master is gone


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the master dies, so no worker is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


# Files a worker holds besides client connections and its pools: listening
# sockets, event loop, signal and lifeline pipes, heartbeat memory, rate table,
# log file, SQLite files; with room to spare.
BASE_FILES = 64


def raise_open_files_limit() -> int:
    """Raise the soft limit of open files to the hard one; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft


def files_besides_connections(settings: Settings) -> int:
    """Files a worker holds besides client connections."""
    return (
        BASE_FILES
        + sum(system.max_connections for system in settings.school.systems().values())
        + 2 * settings.database.pool_size  # the pool, and as many again in overflow
    )


def connection_cap(settings: Settings, open_files: int) -> int:
    """`http.max_connections`, lowered so that the worker's other files fit under open_files."""
    return max(
        1, min(settings.http.max_connections, open_files - files_besides_connections(settings))
    )


def held_refusals_room(settings: Settings, open_files: int, cap: int) -> int:
    """`connections.held_refusals`, lowered so that refusals held open (one file each)
    fit beside the worker's other files and its `cap` of connections."""
    others = files_besides_connections(settings)
    return max(0, min(settings.connections.held_refusals, open_files - others - cap))


def overload_answer(retry_after_s: int) -> bytes:
    """The whole answer to a connection over the cap: a minimal JSON 503."""
    return refusal_answer(
        codes.OVERLOADED,
        "the server has too many open connections; try again shortly",
        retry_after_s,
    )


@dataclass(slots=True)
class FairShare:
    """This worker's place among its peers on the shared socket (runtime/heartbeat.py):
    it reports its open connections and asks whether it may take one more."""

    table: HeartbeatTable
    cell: int
    stale_s: float

    def report(self, connections: int, accepting: bool = True) -> None:
        self.table.set_connections(self.cell, connections, accepting)

    def fair(self, connections: int) -> bool:
        return self.table.fair_to_accept(self.cell, connections, self.stale_s)


# While a worker has stopped accepting (over its share), how often it looks again:
# at first soon, then less often the longer nothing changes (an idle server holding
# one keep-alive connection in one worker must not spin).
FAIR_POLL_S = 0.002
FAIR_POLL_MAX_S = 0.02


def keep_nodelay(stream: IOStream) -> None:
    """TCP_NODELAY on for the connection's whole life. Every answer is written whole, in
    one write (leanweb), so Nagle's algorithm has nothing to gather; Tornado's
    HTTP1Connection turns it on before each answer's end and off after it, two system
    calls a request, which this stream then skips."""
    stream.set_nodelay(True)
    setattr(stream, "set_nodelay", _nodelay_kept)  # noqa: B010 (an instance's own method)


def _nodelay_kept(value: bool) -> None:
    """IOStream.set_nodelay of a stream that keeps TCP_NODELAY on (keep_nodelay)."""


class DrainingHTTPServer(HTTPServer):
    """An HTTPServer that counts its open connections, to drain them on stop and to cap
    them, that accepts only while it holds no more than its peers (`share`), and whose
    `guard` (runtime/connections.py) shares its connections fairly."""

    open_connections = 0
    # Beyond this many open connections a new one gets `overload` and is closed (0: no cap).
    max_connections = 0
    overload = b""
    share: FairShare | None = None
    guard: ConnectionGuard | None = None
    _paused = False
    _pauses = 0

    def _handle_connection(self, connection: socket.socket, address: Any) -> None:
        # Tornado's TCPServer calls this with each socket it accepts, before it makes an
        # IOStream of it: the cheapest place to turn away a connection over its
        # address's cap, which a tool reconnecting in a loop sends thousands of a second.
        if self.guard is not None and not self.guard.screen(connection, address):
            return  # held for its 429, or answered and closed
        super()._handle_connection(connection, address)

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        guard = self.guard
        # Near the cap the guard first closes idle and slow connections to make room.
        held = self.open_connections if guard is None else guard.make_room(self.open_connections)
        if self.max_connections and held >= self.max_connections:
            if guard is not None:
                guard.withdraw()
            self._shed(stream)
            return
        if guard is not None:
            guard.admit(stream)
        self.open_connections += 1
        self._rebalance()
        keep_nodelay(stream)
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        delegate = super().start_request(server_conn, request_conn)
        if self.guard is None or not isinstance(server_conn, HTTP1ServerConnection):
            return delegate
        return self.guard.watch(server_conn.stream, request_conn, delegate)

    # Fair accepting: every worker waits on the one shared socket, and the kernel wakes
    # them in no fair order (one busy worker can take every keep-alive connection). A
    # worker holding more connections than the least loaded of its peers stops
    # accepting until it does not; the kernel's queue is never dropped, whatever
    # happens to a worker (docs/process-model.md).

    def _rebalance(self) -> None:
        share = self.share
        if share is None or self._stopped:
            return
        share.report(self.open_connections)
        fair = share.fair(self.open_connections)
        if fair and self._paused:
            self._resume()
        elif not fair and not self._paused:
            self._pause()

    def _pause(self) -> None:
        for remove in self._handlers.values():
            remove()  # also ends Tornado's accept loop for this wake-up
        self._handlers.clear()
        self._paused = True
        self._pauses += 1  # a new pause: an earlier pause's polling ends
        IOLoop.current().call_later(FAIR_POLL_S, self._poll, self._pauses, FAIR_POLL_S)

    def _resume(self) -> None:
        for fd, sock in self._sockets.items():
            self._handlers[fd] = add_accept_handler(sock, self._handle_connection)
        self._paused = False

    def _poll(self, pause: int, delay: float) -> None:
        if not self._paused or self._stopped or pause != self._pauses:
            return
        self._rebalance()
        if self._paused and pause == self._pauses:
            later = min(FAIR_POLL_MAX_S, delay * 1.5)
            IOLoop.current().call_later(later, self._poll, pause, later)

    def stop(self) -> None:
        if self._paused and not self._stopped:
            self._resume()  # stop() removes the accept handlers it finds
        if self.share is not None:
            self.share.report(self.open_connections, accepting=False)
            self.share = None
        super().stop()

    def _shed(self, stream: IOStream) -> None:
        metrics.record_connection_shed()
        log.warning("%d connections open, the most allowed: answering 503", self.max_connections)
        answer_and_close(stream, self.overload)

    def on_close(self, server_conn: object) -> None:
        self.open_connections -= 1
        if self.guard is not None and isinstance(server_conn, HTTP1ServerConnection):
            self.guard.closed(server_conn.stream)
        self._rebalance()
        super().on_close(server_conn)


async def serve(
    settings: Settings,
    sockets: list[socket.socket],
    index: int,
    link: MasterLink | None = None,
    on_ready: Callable[[], None] | None = None,
    host_tables: HostTables | None = None,
) -> None:
    """Serve on the given sockets until SIGTERM/SIGINT or the master's death, then drain."""
    # Before this worker's threads start (database connections, name lookups).
    memory.limit_arenas(settings.memory.malloc_arenas)
    open_files = raise_open_files_limit()
    cap = connection_cap(settings, open_files)
    if cap < settings.http.max_connections:
        log.warning(
            "worker %d: at most %d connections (http.max_connections is %d, but only %d "
            "files may be open)",
            index,
            cap,
            settings.http.max_connections,
            open_files,
        )
    services = await build_worker_services(settings, index, host_tables)
    deps = services.deps
    deps.state.generation = link.generation if link is not None else 0
    await services.recover()
    server = make_http_server(make_app(deps, settings.http), settings.http, cap)
    # A worker whose loop has not beaten for this long no longer counts among its peers.
    stale_s = max(1.0, 3 * settings.supervisor.heartbeat_interval_s)
    if link is not None and settings.listen.fair_accept and not settings.listen.reuse_port:
        server.share = FairShare(link.heartbeats, link.cell, stale_s)
        server.share.report(0)
    own_table = None
    if settings.connections.enabled:
        if host_tables is not None:
            table = host_tables.connections
        else:
            table = own_table = ConnectionTable.create(settings.connections.table_slots)
        hold_room = held_refusals_room(settings, open_files, cap)
        server.guard = connection_guard(settings, deps, cap, table, link, stale_s, hold_room)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)
    if link is not None:
        _watch_master(loop, link, stop)
        _beat(loop, link, settings.supervisor.heartbeat_interval_s)
    _publish_metrics(loop)
    if settings.memory.trim_interval_s > 0 and memory.available():
        loop.call_later(
            settings.memory.trim_interval_s, _trim, loop, settings.memory.trim_interval_s
        )
    if on_ready is not None:
        on_ready()
    log.debug("worker %d serving (generation %d)", index, deps.state.generation)
    await stop.wait()

    server.stop()
    if server.guard is not None:
        server.guard.stop()
    deps.state.draining = True
    # Every request in flight gets its answer (stale, or 503 with Retry-After) a
    # little before the grace period ends, and no school work starts that could
    # not finish by then: never a cut connection.
    grace = settings.shutdown_grace_s
    deps.state.stop_by = time.monotonic() + grace - min(DRAIN_MARGIN_S, grace / 10)
    # New requests on open connections are answered with `Connection: close`.
    server.conn_params.no_keep_alive = True
    deadline = loop.time() + settings.shutdown_grace_s
    while deps.state.inflight > 0 and loop.time() < deadline:  # noqa: ASYNC110 - shutdown only
        await asyncio.sleep(0.01)
    if deps.state.inflight:
        log.warning(
            "worker %d: %d requests cut at the end of the grace period", index, deps.state.inflight
        )
    # Idle keep-alive clients may still send one request (answered, then closed);
    # closing their connections at once would race with requests already on the way.
    linger = min(deadline, loop.time() + settings.supervisor.keepalive_drain_s)
    while server.open_connections > 0 and loop.time() < linger:  # noqa: ASYNC110 - shutdown only
        await asyncio.sleep(0.01)
    await server.close_all_connections()
    await services.close()
    if own_table is not None:
        own_table.close()


def connection_guard(
    settings: Settings,
    deps: AppDeps,
    cap: int,
    table: ConnectionTable,
    link: MasterLink | None,
    stale_s: float,
    hold_room: int,
) -> ConnectionGuard:
    """This worker's guard over its connections, counting in the host's table under its
    heartbeat cell (cleared first of what an earlier holder of the cell left)."""
    if link is not None:
        cell, alive = link.cell, heartbeat_liveness(link.heartbeats.last_beat, stale_s)
        table.forget_cell(cell)
    else:
        cell, alive = 0, everyone_alive  # one process: no other worker counts here
    registry, prefix = deps.clients, deps.ipv6_prefix

    def identify(ip: str, api_key: str | None) -> Caller:
        if registry is None:
            return anonymous(ip, prefix)
        return registry.caller(ip, api_key, None)

    return ConnectionGuard(
        table,
        cell,
        alive,
        settings.connections,
        settings.http,
        cap,
        identify,
        deps.trusted_proxies,
        hold_room,
    )


def make_http_server(
    app: Application, http: HttpSettings, max_connections: int | None = None
) -> DrainingHTTPServer:
    """The HTTP server of one worker, with the `http:` limits on time, size and connections."""
    server = DrainingHTTPServer(
        app,
        xheaders=False,
        # Tornado's header timeout also bounds how long an idle keep-alive connection waits.
        idle_connection_timeout=http.header_timeout_s,
        body_timeout=http.body_timeout_s,
        max_body_size=http.max_body_bytes,
    )
    server.max_connections = http.max_connections if max_connections is None else max_connections
    server.overload = overload_answer(http.overload_retry_after_s)
    return server


def _beat(loop: asyncio.AbstractEventLoop, link: MasterLink, interval_s: float) -> None:
    """Write a heartbeat now and every interval while the loop runs (the first one = serving)."""
    link.heartbeats.beat(link.cell)
    loop.call_later(interval_s, _beat, loop, link, interval_s)


def _publish_metrics(loop: asyncio.AbstractEventLoop) -> None:
    """Publish this worker's metric tallies now and every metrics.PUBLISH_S."""
    metrics.publish()
    loop.call_later(metrics.PUBLISH_S, _publish_metrics, loop)


def _trim(loop: asyncio.AbstractEventLoop, interval_s: float) -> None:
    """Give the allocator's free pages back to the kernel every interval (~1 ms on a
    worker's heap after a burst, ~0.1 ms when nothing was freed)."""
    memory.trim()
    loop.call_later(interval_s, _trim, loop, interval_s)


def _watch_master(loop: asyncio.AbstractEventLoop, link: MasterLink, stop: asyncio.Event) -> None:
    """Stop when the lifeline pipe reaches EOF: the master is gone (even by SIGKILL)."""

    def readable() -> None:
        try:
            data = os.read(link.lifeline_fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(link.lifeline_fd)
            if not stop.is_set():
                log.warning("worker: the master is gone; stopping")
                stop.set()

    os.set_blocking(link.lifeline_fd, False)
    loop.add_reader(link.lifeline_fd, readable)


def run_worker(
    settings: Settings,
    sockets: list[socket.socket] | None,
    index: int,
    link: MasterLink,
    host_tables: HostTables | None = None,
) -> int:
    """Entry point of a forked worker; returns its exit code."""
    die_with_parent()
    if os.getppid() != link.master_pid:
        return 0  # the master died before we could ask to die with it
    configure_logging(settings.log, settings.http.log_repeat_interval_s)
    if sockets is None:
        try:
            sockets = bind_sockets(
                settings.listen.port,
                settings.listen.host,
                backlog=settings.listen.backlog,
                reuse_port=True,
            )
        except OSError as exc:
            log.error(
                "worker %d cannot bind %s:%d: %s",
                index,
                settings.listen.host,
                settings.listen.port,
                exc,
            )
            return EXIT_FATAL
    with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
        runner.run(serve(settings, sockets, index, link, host_tables=host_tables))
    access_lines.flush()
    metrics.publish()
    with contextlib.suppress(OSError):
        os.close(link.lifeline_fd)
    return 0


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop constructor named by `event_loop` (None: asyncio's default)."""
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None
