"""Connections are shared fairly (runtime/connections.py): caps per address and per
registered client over the whole host, slow bodies cut, and idle or slow connections
closed first when a worker nears its cap; another address is always served.

The table and the order of giving way are tested as functions; the rest with a real
server process and real sockets from chosen loopback addresses (127.0.0.x).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from harness.processes import ROOT, Proc, jnufm_server
from runtime.connections import (
    CHAIN_SLOTS,
    IDLE,
    SLOW_BODY,
    SLOW_HEADERS,
    Admission,
    Caps,
    ConnectionTable,
    EventCounts,
    body_deadline_s,
    everyone_alive,
    heartbeat_liveness,
    reclaim_order,
)
from services.shared_slots import key_hash
from settings import load_settings

WAIT_S = 20.0  # how long a test waits for the server to act before it fails


# --- the table, without a server ---------------------------------------------------------

A, B = key_hash("a|192.0.2.1"), key_hash("a|192.0.2.2")


@contextmanager
def table(slots: int = 1024) -> Iterator[ConnectionTable]:
    made = ConnectionTable.create(slots)
    try:
        yield made
    finally:
        made.close()


def test_the_cap_counts_an_address_over_every_worker_of_the_host() -> None:
    caps = Caps(open=3, unfinished=2)
    with table() as t:
        assert t.connect(A, 0, caps, everyone_alive) is Admission.COUNTED
        assert t.connect(A, 0, caps, everyone_alive) is Admission.COUNTED
        assert t.connect(A, 1, caps, everyone_alive) is Admission.COUNTED
        # Worker 1 holds one, worker 0 two: the address is at its cap on either.
        assert t.connect(A, 1, caps, everyone_alive) is Admission.TOO_MANY_CONNECTIONS
        assert t.connect(A, 0, caps, everyone_alive) is Admission.TOO_MANY_CONNECTIONS
        assert t.connect(B, 1, caps, everyone_alive) is Admission.COUNTED  # another address
        assert t.counts(A, everyone_alive) == (3, 0)
        t.disconnect(A, 0)
        assert t.connect(A, 1, caps, everyone_alive) is Admission.COUNTED
        assert t.counts(A, everyone_alive) == (3, 0)


def test_while_every_unfinished_slot_is_taken_no_new_connection_is_let_in() -> None:
    caps = Caps(open=10, unfinished=2)
    with table() as t:
        assert t.begin(A, 0, caps, everyone_alive) is Admission.COUNTED
        assert t.begin(A, 1, caps, everyone_alive) is Admission.COUNTED
        assert t.begin(A, 0, caps, everyone_alive) is Admission.TOO_MANY_UNFINISHED
        assert t.connect(A, 0, caps, everyone_alive) is Admission.TOO_MANY_UNFINISHED
        assert t.connect(B, 0, caps, everyone_alive) is Admission.COUNTED
        t.end(A, 1)
        assert t.connect(A, 0, caps, everyone_alive) is Admission.COUNTED
        assert t.counts(A, everyone_alive) == (1, 1)


def test_a_dead_workers_counts_stop_counting_and_its_successor_clears_them() -> None:
    caps = Caps(open=2, unfinished=2)
    beats = {0: 100.0, 1: 100.0}
    now = [100.0]
    alive = heartbeat_liveness(beats.__getitem__, 3.0, lambda: now[0])
    with table() as t:
        assert t.connect(A, 1, caps, alive) is Admission.COUNTED
        assert t.connect(A, 1, caps, alive) is Admission.COUNTED
        assert t.connect(A, 0, caps, alive) is Admission.TOO_MANY_CONNECTIONS
        # Worker 1 is SIGKILLed: it never gives its two back; its heartbeat ages.
        now[0] = 104.0
        beats[0] = 104.0
        assert t.counts(A, alive) == (0, 0)
        assert t.connect(A, 0, caps, alive) is Admission.COUNTED
        assert t.connect(A, 0, caps, alive) is Admission.COUNTED
        assert t.connect(A, 0, caps, alive) is Admission.TOO_MANY_CONNECTIONS
        # Its cell's next holder clears what was left before it serves.
        assert t.forget_cell(1) == 1
        beats[1] = 104.0
        assert t.counts(A, alive) == (2, 0)


def test_a_full_chain_lets_a_connection_in_uncounted_until_a_record_frees() -> None:
    caps = Caps(open=5, unfinished=5)
    with table(CHAIN_SLOTS) as t:  # one chain: every subject lands in it
        subjects = [key_hash(f"a|198.51.100.{i}") for i in range(CHAIN_SLOTS)]
        for tag in subjects:
            assert t.connect(tag, 0, caps, everyone_alive) is Admission.COUNTED
        assert t.connect(A, 0, caps, everyone_alive) is Admission.UNCOUNTED
        t.disconnect(subjects[7], 0)  # holds nothing now: its record may be taken
        assert t.connect(A, 0, caps, everyone_alive) is Admission.COUNTED
        assert t.counts(A, everyone_alive) == (1, 0)


def test_who_gives_way_first() -> None:
    now = 100.0
    idle = [("idle-oldest", 10.0, False), ("idle-sending", 20.0, True), ("idle-new", 99.0, False)]
    fresh = [("fresh-old", 50.0), ("fresh-young", 99.5)]
    reading = [("body-old", 60.0), ("body-young", 99.9)]

    def order(need: int) -> list[tuple[str, str]]:
        return reclaim_order(need, now, idle, fresh, reading, 3.0, 2.0)

    # Idle keep-alive connections first, oldest idle first; then connections slow with
    # their headers (a keep-alive one that began a request counts as one), oldest first;
    # then slow bodies. Young connections and requests never give way.
    assert order(1) == [("idle-oldest", IDLE)]
    assert order(2) == [("idle-oldest", IDLE), ("idle-sending", SLOW_HEADERS)]
    assert order(10) == [
        ("idle-oldest", IDLE),
        ("idle-sending", SLOW_HEADERS),
        ("idle-new", IDLE),
        ("fresh-old", SLOW_HEADERS),
        ("body-old", SLOW_BODY),
    ]
    assert order(0) == []
    # A keep-alive connection that began a request moments ago is not idle, nor slow yet.
    assert reclaim_order(5, now, [("sending", 99.0, True)], [], [], 3.0, 2.0) == []


def test_a_body_may_take_the_grace_then_the_minimum_rate_never_more_than_the_timeout() -> None:
    settings = load_settings(
        None,
        env={},
        overrides={"connections.body_grace_s": 2, "connections.min_body_bytes_per_s": 1000},
    )
    assert body_deadline_s(100, settings.connections, 10.0) == pytest.approx(2.1)
    assert body_deadline_s(4000, settings.connections, 10.0) == pytest.approx(6.0)
    assert body_deadline_s(64_000, settings.connections, 10.0) == 10.0


def test_a_flood_of_refusals_is_logged_once_per_interval_with_its_count() -> None:
    now = [0.0]
    events = EventCounts(lambda: now[0])
    assert events.due("too_many_connections") == 1  # the first is logged at once
    assert [events.due("too_many_connections") for _ in range(500)] == [0] * 500
    assert events.due("slow_body") == 1  # each kind on its own
    now[0] = EventCounts.LOG_EVERY_S
    assert events.due("too_many_connections") == 501


# --- a real server, real sockets --------------------------------------------------------


def sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}"


# Every connection a test opens, closed when it ends (whatever it left open on purpose).
_opened: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_connections() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def open_from(server: Proc, source: str) -> socket.socket:
    """A connection to the server from the loopback address `source`."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _opened.append(sock)
    sock.settimeout(WAIT_S)
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole answer: status, headers (lower-case names), body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed without a whole answer: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def ask(sock: socket.socket, path: str = "/healthz") -> int:
    """A keep-alive GET on the connection; its status."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return read_answer(sock)[0]


def refusal(sock: socket.socket) -> tuple[int, dict[str, str], dict[str, object]]:
    """The answer the server sent before closing the connection (nothing was asked)."""
    status, headers, body = read_answer(sock)
    assert sock.recv(1) == b"", "the connection stays open after a refusal"
    return status, headers, json.loads(body)


def closed_by_server(sock: socket.socket) -> bool:
    """Wait (up to WAIT_S) for the server to end the connection; True if it did."""
    readable, _, _ = select.select([sock], [], [], WAIT_S)
    if not readable:
        return False
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def still_open(sock: socket.socket) -> bool:
    """The connection still carries a request."""
    try:
        return ask(sock) == 200
    except OSError:
        return False


def slow_body(server: Proc, source: str, api_key: str = "") -> tuple[socket.socket, int]:
    """A POST whose headers announce 100 bytes, of which one is sent. `Expect:
    100-continue` makes the server say when it has read the headers (its guard has
    judged the request by then): returns the socket and the status it answered first."""
    sock = open_from(server, source)
    key = f"X-Api-Key: {api_key}\r\n" if api_key else ""
    sock.sendall(
        (
            "POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
            f"Expect: 100-continue\r\n{key}\r\n"
        ).encode()
    )
    status, _, _ = read_answer(sock)
    if status == 100:
        sock.sendall(b"x")
    return sock, status


def until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        time.sleep(0.05)


def metric(server: Proc, name: str, **labels: str) -> float:
    """A counter's value on /metrics (0 if it has no such series yet)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(rf"{name}\{{(.*)\}} ([0-9.e+]+)", line)
        if found and ",".join(sorted(found.group(1).split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def register_client(tmp_path: Path, db_url: str, name: str, *argv: str) -> str:
    """`server.py clients add` on the database the server will use; its key, if any."""
    config = tmp_path / f"clients-{name}.yaml"
    config.write_text(f"database:\n  url: {db_url}\n", encoding="utf-8")
    added = subprocess.run(
        [
            sys.executable,
            str(ROOT / "server.py"),
            "clients",
            "add",
            name,
            *argv,
            "--config",
            config,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    keys = [line.split()[1] for line in added.stdout.splitlines() if line.startswith("key:")]
    return keys[0] if keys else ""


def workers(server: Proc) -> set[int]:
    master = server.popen.pid
    return {int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


def worker_of(sock: socket.socket) -> int:
    """The pid of the worker serving the connection (/healthz says)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, _, body = read_answer(sock)
    assert status == 200
    return int(json.loads(body)["pid"])


def admitted(server: Proc, source: str) -> socket.socket | None:
    """A new connection from `source` that the server serves, or None: refused."""
    sock = open_from(server, source)
    try:
        if ask(sock) == 200:
            return sock
    except OSError:
        pass  # refused before it read the request: the answer may be lost to a reset
    sock.close()
    return None


@pytest.mark.timeout(180)
def test_an_address_over_its_cap_is_refused_over_the_whole_host(tmp_path: Path, sim: Proc) -> None:
    db_url = sqlite(tmp_path)
    register_client(tmp_path, db_url, "campus-nat", "--address", "127.0.0.4", "--no-key")
    with jnufm_server(
        tmp_path,
        db_url,
        sim.url,
        processes=2,
        http={"header_timeout_s": 120},
        # Refusals answered at once here (their holding is tested below).
        connections={"per_address": 3, "per_client": 6, "refusal_hold_s": 0},
    ) as server:
        held = [open_from(server, "127.0.0.2") for _ in range(3)]
        pids = [worker_of(sock) for sock in held]
        # The fourth, on whichever worker takes it: 429 in JSON, and closed.
        status, headers, body = refusal(open_from(server, "127.0.0.2"))
        assert status == 429 and headers["retry-after"] == "2", (status, headers)
        assert headers["content-type"].startswith("application/json")
        assert body["data"] is None
        assert body["error"] == {
            "code": "too_many_connections",
            "message": "this address holds too many connections; reuse one or try again shortly",
        }
        # Another address is served meanwhile.
        other = open_from(server, "127.0.0.3")
        assert ask(other) == 200
        # A registered client (known by its address) has its own, larger cap.
        nat = [open_from(server, "127.0.0.4") for _ in range(6)]
        assert all(ask(sock) == 200 for sock in nat)
        status, _, body = refusal(open_from(server, "127.0.0.4"))
        assert status == 429 and "this client holds" in str(body["error"])
        # One of the address's connections closes: it may open one again.
        held.pop().close()
        pids.pop()

        def admitted_again() -> bool:
            sock = admitted(server, "127.0.0.2")
            if sock is not None:
                held.append(sock)
                pids.append(worker_of(sock))
            return sock is not None

        until(admitted_again, "a connection from 127.0.0.2 admitted after one closed")
        until(
            lambda: (
                metric(
                    server,
                    "jnufm_http_connections_refused_total",
                    reason="too_many_connections",
                    scope="ip",
                )
                >= 1
            ),
            "the refusal counted in /metrics",
        )
        # Each worker publishes its counters on its own timer: wait for the one that refused.
        until(
            lambda: (
                metric(
                    server,
                    "jnufm_http_connections_refused_total",
                    reason="too_many_connections",
                    scope="client",
                )
                >= 1
            ),
            "the client's refusal counted in /metrics",
        )

        # A worker killed with SIGKILL never gives its counts back: they stop counting
        # (its successor clears them), so the address gets its whole cap again.
        pid = pids[0]
        victims = [sock for sock, served in zip(held, pids, strict=True) if served == pid]
        survivors = [sock for sock, served in zip(held, pids, strict=True) if served != pid]
        before = workers(server)
        os.kill(pid, signal.SIGKILL)
        assert all(closed_by_server(sock) for sock in victims)
        until(lambda: len(workers(server) - before) == 1, "a new worker")
        fresh: list[socket.socket] = []

        def whole_cap_again() -> bool:
            sock = admitted(server, "127.0.0.2")
            if sock is not None:
                fresh.append(sock)
            return len(survivors) + len(fresh) == 3

        until(whole_cap_again, "the address's whole cap usable again after the kill")
        assert fresh and admitted(server, "127.0.0.2") is None  # and no more than that
        log = server.log()
    assert "Traceback" not in log
    assert "holds too many connections; answering 429" in log


@pytest.mark.timeout(120)
def test_a_refused_connection_is_held_for_its_answer_while_there_is_room(
    tmp_path: Path, sim: Proc
) -> None:
    server = jnufm_server(
        tmp_path,
        sqlite(tmp_path),
        sim.url,
        processes=1,
        http={"header_timeout_s": 120},
        # Longer than the test waits for anything: a held refusal is never answered
        # within the test, except when the server stops.
        connections={"per_address": 1, "refusal_hold_s": 60, "held_refusals": 1},
    )
    with server as running:
        first = open_from(running, "127.0.0.2")
        assert ask(first) == 200
        held = open_from(running, "127.0.0.2")  # over the cap: held, no answer yet
        assert ask(open_from(running, "127.0.0.3")) == 200  # served meanwhile
        # No room to hold another: it is answered at once (not after 60 s).
        status, headers, body = refusal(open_from(running, "127.0.0.2"))
        assert status == 429 and headers["retry-after"] == "2"
        assert body["error"]["code"] == "too_many_connections"  # type: ignore[index]
    # The server stopped: the held one got its answer then, and was closed.
    status, _, body = refusal(held)
    assert status == 429 and body["error"]["code"] == "too_many_connections"  # type: ignore[index]


@pytest.mark.timeout(120)
def test_requests_still_being_sent_are_capped_per_address_and_per_client(
    tmp_path: Path, sim: Proc
) -> None:
    db_url = sqlite(tmp_path)
    key = register_client(tmp_path, db_url, "gateway")
    assert key
    with jnufm_server(
        tmp_path,
        db_url,
        sim.url,
        processes=1,
        http={"header_timeout_s": 120, "body_timeout_s": 120},
        connections={
            "per_address_unfinished": 1,
            "per_client_unfinished": 2,
            "body_grace_s": 100,
            "refusal_hold_s": 0,
        },
    ) as server:
        first, status = slow_body(server, "127.0.0.2")
        assert status == 100
        # Its one slot taken, the address may not even connect: refused before reading.
        status, headers, body = refusal(open_from(server, "127.0.0.2"))
        assert status == 429 and headers["retry-after"] == "2"
        assert body["error"]["code"] == "too_many_unfinished_requests"  # type: ignore[index]
        assert ask(open_from(server, "127.0.0.3")) == 200
        # A registered client known by its key counts as itself once its headers are in.
        keyed = [slow_body(server, "127.0.0.5", key) for _ in range(2)]
        assert [status for _, status in keyed] == [100, 100]
        third, status = slow_body(server, "127.0.0.5", key)
        assert status == 429
        assert closed_by_server(third)
        # The first body completes: the address may connect again.
        first.sendall(b"x" * 99)
        assert read_answer(first)[0] == 405  # answered as any whole request (no POST here)
        until(
            lambda: admitted(server, "127.0.0.2") is not None,
            "127.0.0.2 admitted after its body completed",
        )
        until(
            lambda: (
                metric(
                    server,
                    "jnufm_http_connections_refused_total",
                    reason="too_many_unfinished_requests",
                    scope="client",
                )
                >= 1
            ),
            "the client's refusal counted",
        )
        assert (
            metric(
                server,
                "jnufm_http_connections_refused_total",
                reason="too_many_unfinished_requests",
                scope="ip",
            )
            >= 1
        )


@pytest.mark.timeout(120)
def test_a_trickling_body_is_cut_while_another_address_is_served(tmp_path: Path, sim: Proc) -> None:
    with jnufm_server(
        tmp_path,
        sqlite(tmp_path),
        sim.url,
        processes=1,
        http={"body_timeout_s": 120},
        # 1,000 bytes must come within 0.2 + 1 s; one byte every 0.05 s never will.
        connections={"body_grace_s": 0.2, "min_body_bytes_per_s": 1000},
    ) as server:
        sock = open_from(server, "127.0.0.2")
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n")
        other = open_from(server, "127.0.0.3")
        sent = 0
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            sock.sendall(b"x")
            sent += 1
            assert ask(other) == 200  # the trickle holds nothing another client needs
        status, headers, body = read_answer(sock)
        assert status == 408, (status, body)
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert headers["connection"] == "close"
        assert sent < 1000  # cut well before the body could have been complete
        assert closed_by_server(sock)
        until(
            lambda: metric(server, "jnufm_http_connections_cut_total", reason="slow_body") >= 1,
            "the cut counted",
        )


@pytest.mark.timeout(120)
def test_near_the_cap_idle_keep_alive_connections_are_closed_first_oldest_first(
    tmp_path: Path, sim: Proc
) -> None:
    with jnufm_server(
        tmp_path,
        sqlite(tmp_path),
        sim.url,
        processes=1,
        # Room is made from 5 of 10 connections on; silent new connections stay young.
        http={"max_connections": 10, "header_timeout_s": 120},
        connections={"reclaim_at": 0.5, "header_grace_s": 100},
    ) as server:
        idle = [open_from(server, "127.0.0.2") for _ in range(3)]
        for sock in idle:  # one after another: idle since, oldest first
            assert ask(sock) == 200
        silent = open_from(server, "127.0.0.3")  # connected, sent nothing yet
        first_new = open_from(server, "127.0.0.4")  # the 5th: nothing to make room for yet
        assert ask(first_new) == 200
        second_new = open_from(server, "127.0.0.4")  # at 5: the oldest idle one goes
        assert ask(second_new) == 200
        assert closed_by_server(idle[0])
        assert still_open(idle[1])  # now the most recently idle of them
        third_new = open_from(server, "127.0.0.4")
        assert ask(third_new) == 200
        assert closed_by_server(idle[2])  # idle since its first answer: the oldest now
        assert ask(silent) == 200  # young and about to ask: never closed to make room
        until(
            lambda: (
                metric(server, "jnufm_http_connections_cut_total", reason="idle_under_pressure")
                >= 2
            ),
            "the idle connections closed, counted",
        )
        log = server.log()
    assert "answering 503" not in log  # nobody was refused: room was made


@pytest.mark.timeout(120)
def test_near_the_cap_a_connection_slow_with_its_headers_gives_way_with_a_408(
    tmp_path: Path, sim: Proc
) -> None:
    with jnufm_server(
        tmp_path,
        sqlite(tmp_path),
        sim.url,
        processes=1,
        # Room is made from the first connection on.
        http={"max_connections": 4, "header_timeout_s": 120},
        connections={"reclaim_at": 0.25, "header_grace_s": 0.01},
    ) as server:
        slow = open_from(server, "127.0.0.2")
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the end

        def slow_one_answered() -> bool:
            with open_from(server, "127.0.0.3") as sock:
                assert ask(sock) == 200  # every newcomer is served
            readable, _, _ = select.select([slow], [], [], 0.05)
            return bool(readable)

        until(slow_one_answered, "the connection slow with its headers closed")
        status, _, body = read_answer(slow)
        assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
        assert closed_by_server(slow)
        until(
            lambda: metric(server, "jnufm_http_connections_cut_total", reason="slow_headers") >= 1,
            "the cut counted",
        )


@pytest.mark.timeout(120)
def test_the_slow_body_benchmark_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m bench slow-body`, small: the attack is refused, the probes answered."""
    from bench.slow_body import Attack, measure

    monkeypatch.setenv("JNUFM_BENCH_PYTHON", sys.executable)  # no virtualenv made here
    result = asyncio.run(
        measure(
            tmp_path,
            Attack(
                "one-worker",
                sockets=12,
                addresses=2,
                ramp_s=0.5,
                seconds=1.0,
                rate=20.0,
                settings=("connections.per_address_unfinished=2",),
            ),
        )
    )
    for probe in result["probes"].values():
        assert probe["requests"] > 0 and probe["statuses"] == {"200": probe["requests"]}
    assert result["server_counters"]["refused too_many_unfinished_requests (ip)"] > 0
    assert result["attacker"]["connections"] >= 12
