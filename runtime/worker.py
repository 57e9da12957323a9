"""One worker process: builds its own event loop, database engine and HTTP client, then serves.

Everything here is created after the fork (SQLAlchemy pools and event loops
must not cross a fork); the only thing inherited is the listening socket.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import signal
import socket
from collections.abc import Callable

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from handlers import make_app
from services.factory import build_worker_services
from settings import Settings

log = logging.getLogger("jnufm.worker")

# Exit code of a worker that cannot start at all (port taken, bad settings):
# the master must not respawn it in a loop.
EXIT_FATAL = 78

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the master dies, so no worker is orphaned."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


async def serve(settings: Settings, sockets: list[socket.socket], index: int) -> None:
    """Serve on the given sockets until SIGTERM/SIGINT, then drain and close."""
    services = await build_worker_services(settings, index)
    deps = services.deps
    server = HTTPServer(make_app(deps), xheaders=False, idle_connection_timeout=60)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.debug("worker %d serving", index)
    await stop.wait()
    server.stop()
    # Let requests in flight finish (within the grace period) before closing connections.
    deadline = loop.time() + settings.shutdown_grace_s
    while deps.state.inflight > 0 and loop.time() < deadline:  # noqa: ASYNC110 - shutdown only
        await asyncio.sleep(0.02)
    if deps.state.inflight:
        log.warning(
            "worker %d: %d requests cut at the end of the grace period", index, deps.state.inflight
        )
    await server.close_all_connections()
    await services.close()


def run_worker(settings: Settings, sockets: list[socket.socket] | None, index: int) -> int:
    """Entry point of a forked worker; returns its exit code."""
    die_with_parent()
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
        runner.run(serve(settings, sockets, index))
    return 0


def loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop constructor named by `event_loop` (None: asyncio's default)."""
    if settings.event_loop == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None
