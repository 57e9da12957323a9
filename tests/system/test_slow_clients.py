"""Slow and idle clients cannot take a worker down: timeouts cut them, a connection cap sheds
the excess with an immediate 503, and the log stays small.

Without these, a few hundred slow connections used up a worker's file descriptors:
its accept loop then failed on every wake-up, it stopped answering and wrote
hundreds of megabytes of tracebacks. Here the server gets a small limit of open
files (256) so that the same attack needs only a few hundred loopback sockets.
"""

from __future__ import annotations

import contextlib
import json
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from harness.processes import ROOT, Proc, jnufm_server
from runtime.worker import connection_cap
from settings import load_settings

OPEN_FILES = 256
# What runtime/worker.py keeps for files other than client connections at its defaults:
# 64 + every school system's max_connections (card 32, academic 8, library 8, Zhuhai 4,
# covers 8) + 2 * database.pool_size (5).
CAP = OPEN_FILES - 64 - (32 + 8 + 8 + 4 + 8) - 10
SLOW_CLIENTS = 300


@contextlib.contextmanager
def slow_clients(url: str, count: int) -> Iterator[list[socket.socket]]:
    """count connections that each send the start of a request and then nothing more."""
    host, port = url.removeprefix("http://").split(":")
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def outcomes(socks: list[socket.socket], timeout: float) -> dict[str, int]:
    """Wait until every socket is answered or closed by the server: count 503s and plain ends."""
    pending = {sock: b"" for sock in socks}
    counts = {"503": 0, "closed": 0, "other": 0}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        readable, _, _ = select.select(list(pending), [], [], 0.2)
        for sock in readable:
            try:
                data = sock.recv(4096)
            except ConnectionResetError:
                data = b""
            if data:
                pending[sock] += data
                continue
            answer = pending.pop(sock)
            if not answer:
                counts["closed"] += 1
            elif answer.startswith(b"HTTP/1.1 503 ") and b"\r\nRetry-After: 5\r\n" in answer:
                body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
                assert body["error"]["code"] == "overloaded", body
                counts["503"] += 1
            else:
                counts["other"] += 1
    assert not pending, f"{len(pending)} connections neither answered nor closed"
    return counts


def test_more_slow_clients_than_the_cap_cannot_stop_the_server(
    tmp_path: Path, sim: Proc, db_url: str
) -> None:
    with jnufm_server(
        tmp_path,
        db_url,
        sim.url,
        processes=1,
        open_files=OPEN_FILES,
        http={"header_timeout_s": 3},
        # The cap itself is tested here: nothing gives way to make room before it.
        connections={"header_grace_s": 60},
    ) as server:
        assert f"at most {CAP} connections" in server.log()
        with slow_clients(server.url, SLOW_CLIENTS) as socks:
            # While the slow clients hold every slot, a new client is answered at
            # once (503, or 200 if a slot is free), never left hanging.
            busy = httpx.get(server.url + "/healthz", timeout=10)
            assert busy.status_code in (200, 503)
            counts = outcomes(socks, timeout=30)
        assert counts["other"] == 0, counts
        assert counts["503"] >= SLOW_CLIENTS - CAP, counts
        # The held ones were cut by the header timeout; the server serves again.
        deadline = time.monotonic() + 30
        while httpx.get(server.url + "/healthz", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.05)
        log = server.log()
    assert server.popen.returncode == 0
    assert "Traceback" not in log
    assert len(log.encode()) < 20_000, log[-3000:]
    # One line for the whole flood of refusals, however many there were.
    assert log.count("answering 503") == 1, log


def test_the_cap_leaves_room_for_the_workers_other_files() -> None:
    settings = load_settings(None, env={}, overrides={})
    assert connection_cap(settings, 1_000_000) == settings.http.max_connections == 4096
    assert connection_cap(settings, OPEN_FILES) == CAP
    bigger_pool = load_settings(None, env={}, overrides={"database.pool_size": 20})
    assert connection_cap(bigger_pool, OPEN_FILES) == CAP - 30
    assert connection_cap(settings, 50) == 1


def test_the_soft_open_files_limit_is_raised_to_the_hard_one() -> None:
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 512))

    code = (
        "import resource; from runtime.worker import raise_open_files_limit; "
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        preexec_fn=low_soft_limit,
    )
    assert out.stdout.split(None, 1) == ["512", "(512, 512)\n"]
