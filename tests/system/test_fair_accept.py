"""Fair accepting on the shared socket: a few keep-alive connections spread over every
worker instead of all landing on the first one the kernel wakes."""

from __future__ import annotations

import http.client
import json
import time
from collections import Counter
from pathlib import Path

from harness.processes import Proc, jnufm_server
from runtime.heartbeat import HeartbeatTable


def test_the_table_says_who_may_accept() -> None:
    table = HeartbeatTable(8)
    a, b, c = table.allocate(), table.allocate(), table.allocate()
    for cell in (a, b, c):
        table.beat(cell)
    table.set_connections(a, 2, True)
    table.set_connections(b, 1, True)
    table.set_connections(c, 5, False)  # stopping: does not count
    assert not table.fair_to_accept(a, 2, stale_s=5)
    assert table.fair_to_accept(b, 1, stale_s=5)
    # A worker whose loop stopped beating does not hold the others back.
    assert table.fair_to_accept(a, 2, stale_s=-1)
    # A dead worker's cell no longer counts.
    table.release(b)
    assert table.fair_to_accept(a, 2, stale_s=5)


def wait_all_serving(server: Proc, processes: int) -> None:
    deadline = time.monotonic() + 30
    while f"{processes} workers serving" not in server.log():
        assert time.monotonic() < deadline, server.log()[-2000:]
        time.sleep(0.05)


def test_keep_alive_connections_spread_over_the_workers(tmp_path: Path) -> None:
    with jnufm_server(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}", "http://127.0.0.1:9", 2
    ) as server:
        wait_all_serving(server, 2)
        port = int(server.url.rsplit(":", 1)[1])
        conns = []
        for _ in range(4):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.connect()
            conns.append(conn)
            time.sleep(0.05)  # each accepted (and counted) before the next arrives
        pids: Counter[int] = Counter()
        for _ in range(3):  # the same connection is always answered by the same worker
            for conn in conns:
                conn.request("GET", "/healthz")
                pids[json.loads(conn.getresponse().read())["pid"]] += 1
        for conn in conns:
            conn.close()
    assert sorted(pids.values()) == [6, 6], pids
