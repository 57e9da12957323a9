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

import httpx
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from db.engine import make_engine, make_sessionmaker
from handlers import make_app
from handlers.base import AppDeps
from school.card import CardCenterClient, CardCenterSettings
from services.card import CardService
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


def card_client(settings: Settings, http: httpx.AsyncClient) -> CardCenterClient:
    card = settings.school.card
    return CardCenterClient(
        CardCenterSettings(
            base_url=settings.card_base_url,
            connect_timeout=card.connect_timeout_s,
            total_timeout=card.total_timeout_s,
            clock_offset=card.clock_offset,
            max_pages=card.max_pages,
            user_agent=card.user_agent,
        ),
        http,
    )


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    card = settings.school.card
    return httpx.AsyncClient(
        timeout=httpx.Timeout(card.total_timeout_s, connect=card.connect_timeout_s),
        limits=httpx.Limits(
            max_connections=card.max_connections, max_keepalive_connections=card.max_connections
        ),
        follow_redirects=False,
        trust_env=False,
    )


async def serve(settings: Settings, sockets: list[socket.socket], index: int) -> None:
    """Serve on the given sockets until SIGTERM/SIGINT, then drain and close."""
    engine = make_engine(settings.database)
    http = make_http_client(settings)
    service = CardService(
        card_client(settings, http),
        make_sessionmaker(engine),
        settings.secret_key.encode(),
        settings.api.history_max_days,
    )
    deps = AppDeps(card=service, retry_after_s=settings.api.retry_after_s, worker_index=index)
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
    await http.aclose()
    await engine.dispose()


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
    asyncio.run(serve(settings, sockets, index))
    return 0
