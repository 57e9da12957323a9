"""A pre-forked Tornado hello-world: the ceiling for any Tornado server on this machine.

    python -m bench.baselines.hello --port 9002 --processes 2 [--bare]

The parent binds one shared socket and forks the workers (as jnufm's master
does); every path answers a fixed JSON body. Each worker counts its requests
and prints `served PID N` on SIGUSR1 and when it stops, instead of an access log, so that
logging costs it nothing. SIGTERM to the parent stops the workers.

--bare answers through a plain HTTPServerConnectionDelegate instead of a
tornado.web Application and RequestHandler: Tornado's HTTP server alone, what
leanweb/ builds on (README, "Choices that depart").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys

import tornado.web
from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

BODY = b'{"data": "123.45"}'
served = 0


class Hello(tornado.web.RequestHandler):
    def get(self, *_args: str) -> None:
        global served
        served += 1
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(BODY)


class BareAnswer(httputil.HTTPMessageDelegate):
    def __init__(self, connection: httputil.HTTPConnection) -> None:
        self.connection = connection

    def finish(self) -> None:
        global served
        served += 1
        headers = httputil.HTTPHeaders(
            {"Content-Type": "application/json; charset=UTF-8", "Content-Length": str(len(BODY))}
        )
        self.connection.write_headers(httputil.ResponseStartLine("", 200, "OK"), headers, BODY)
        self.connection.finish()


class Bare(httputil.HTTPServerConnectionDelegate):
    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return BareAnswer(request_conn)


def quiet_log(_handler: tornado.web.RequestHandler) -> None:
    return None


def report() -> None:
    # One write(2) per line: the workers share stdout, and print() may write the text
    # and its newline separately, interleaving two workers' lines.
    os.write(sys.stdout.fileno(), f"served {os.getpid()} {served}\n".encode())


async def serve(sockets: list[socket.socket], bare: bool) -> None:
    app: httputil.HTTPServerConnectionDelegate = (
        Bare() if bare else tornado.web.Application([(r"/(.*)", Hello)], log_function=quiet_log)
    )
    server = HTTPServer(app)
    server.add_sockets(sockets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, report)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


def child(sockets: list[socket.socket], bare: bool) -> None:
    # At once: SIGUSR1's default action would kill a worker asked before its loop runs.
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: report())
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    asyncio.run(serve(sockets, bare))
    report()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--bare", action="store_true", help="no tornado.web: the HTTP server only")
    args = parser.parse_args()
    sockets = bind_sockets(args.port, args.host, backlog=1024)
    pids = []
    for _ in range(args.processes):
        pid = os.fork()
        if pid == 0:
            child(sockets, args.bare)
            os._exit(0)
        pids.append(pid)
    print(f"hello listening on http://{args.host}:{args.port} workers {pids}", flush=True)

    def forward(signum: int, _frame: object) -> None:
        for p in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in pids:
        while True:
            try:
                os.waitpid(p, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
    sys.exit(0)


if __name__ == "__main__":
    main()
