"""The slow-body attack as a benchmark: what slow clients cost everyone else.

    python -m bench slow-body [--preset one-worker|default] [--sockets N] [--addresses K]
                              [--seconds S] [--rate R] [--trickle-s T]

It starts the simulated school and jnufm on loopback (the server's own defaults,
except what the preset pins), then an attacker process: N sockets spread over K
loopback addresses (127.0.0.2, 127.0.0.3, ...), each sending a request's headers
with a `Content-Length` and then its body one byte every T seconds, reconnecting at
once whenever the server closes it (as a tool that wants to hold the server would).
Meanwhile two probes from other loopback addresses ask a warm balance query
(`/card/rest`, answered from the cache) at R requests per second in all, open loop:
one opens a new connection per request (so the accept queue is measured too), one
keeps its connection alive. It prints each probe's answers by status and its
latency percentiles, what became of the attacker's connections, the server's
counters of refused, cut and shed connections (/metrics), and how many connections
the kernel dropped from a full accept queue meanwhile (each costs its client a 1 s
retransmission); the figures go to bench/results/<time>-slow-body.json.

Presets: `one-worker` (1 worker whose connection cap, http.max_connections 64, is
below the attack: 70 sockets from 2 addresses) and `default` (the server's defaults,
one worker per core; 9,000 sockets from 9 addresses). Everything is bounded in time:
a ramp of --ramp-s while the attack connects, --seconds of probing, then the attacker
stops and every process is ended. Loopback only. `--set KEY=VALUE` changes a server
setting over the preset's (`--set connections.enabled=false`: without the guard).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime as dt
import json
import os
import re
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.procs import SINGLE_STUDENT, start_jnufm, start_school
from bench.run import RESULTS

# Linux: the source port is picked at connect() time, by the whole 4-tuple, instead of
# at bind() time among ports free on the address; thousands of quick reconnects from
# one address would otherwise run out of ports bound in TIME_WAIT.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

PROBE_NEW = "127.0.0.250"
PROBE_KEEP_ALIVE = "127.0.0.251"
PROBE_PATH = f"/card/rest?stuid={SINGLE_STUDENT}&password={SINGLE_STUDENT[-6:]}"
PROBE_TIMEOUT_S = 10.0
# The body the attack announces: under http.max_body_bytes (a larger one is refused at
# once), never sent in full within the run.
BODY_LENGTH = 4096


@dataclass(frozen=True)
class Preset:
    processes: int  # 0: one per core, the server's default
    sockets: int
    addresses: int
    config: dict[str, Any] = field(default_factory=dict)


PRESETS = {
    "one-worker": Preset(1, 70, 2, {"http": {"max_connections": 64}}),
    "default": Preset(0, 9000, 9),
}


# --- connections from a chosen loopback address ---------------------------------------


async def connect_from(source: str, host: str, port: int) -> socket.socket:
    """A non-blocking TCP connection to host:port from the loopback address `source`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def status_of(answer: bytes) -> str:
    """The status code of an HTTP answer's first line ("none" if there was no answer)."""
    found = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return found.group(1).decode() if found else ("none" if not answer else "garbled")


# --- the attacker (its own process, so its work never delays the probes' clock) -------


async def slow_socket(
    source: str, host: str, port: int, trickle_s: float, stop: asyncio.Event, seen: Any
) -> None:
    """One attacking socket: headers, then a byte every trickle_s; again when closed."""
    loop = asyncio.get_running_loop()
    head = (
        f"POST /v1/card/balance HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BODY_LENGTH}\r\n\r\n"
    ).encode()
    while not stop.is_set():
        try:
            sock = await asyncio.wait_for(connect_from(source, host, port), 5)
        except (OSError, TimeoutError):
            seen["connect_failed"] += 1
            await asyncio.sleep(0.05)
            continue
        seen["connections"] += 1
        answer = b""
        try:
            await loop.sock_sendall(sock, head)
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), trickle_s)
                except TimeoutError:
                    await loop.sock_sendall(sock, b"x")
                    continue
                if not data:
                    break
                answer += data
        except OSError:
            seen["reset"] += 1
        finally:
            sock.close()
        if not stop.is_set():
            seen[f"ended {status_of(answer)}"] += 1


async def attack(
    host: str, port: int, sockets: int, addresses: int, trickle_s: float, seconds: float
) -> dict[str, int]:
    seen: collections.Counter[str] = collections.Counter()
    stop = asyncio.Event()
    sources = [f"127.0.0.{2 + i}" for i in range(addresses)]
    tasks = []
    for i in range(sockets):
        tasks.append(
            asyncio.ensure_future(
                slow_socket(sources[i % addresses], host, port, trickle_s, stop, seen)
            )
        )
        if i % 100 == 99:
            await asyncio.sleep(0)  # let the first ones connect while the rest start
    print("attacking", flush=True)
    await asyncio.sleep(seconds)
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return dict(seen)


def main_attacker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_body attack")
    parser.add_argument("url")
    parser.add_argument("--sockets", type=int, required=True)
    parser.add_argument("--addresses", type=int, required=True)
    parser.add_argument("--trickle-s", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    host, port = args.url.removeprefix("http://").split(":")
    seen = asyncio.run(
        attack(host, int(port), args.sockets, args.addresses, args.trickle_s, args.seconds)
    )
    print(json.dumps(seen), flush=True)
    return 0


# --- the probes -----------------------------------------------------------------------


@dataclass
class Probe:
    """Answers and latencies one probe saw."""

    name: str
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

        return {
            "requests": sum(self.statuses.values()),
            "statuses": dict(sorted(self.statuses.items())),
            "p50_ms": pct(0.50) if ordered else None,
            "p90_ms": pct(0.90) if ordered else None,
            "p99_ms": pct(0.99) if ordered else None,
            "max_ms": round(1000 * ordered[-1], 1) if ordered else None,
        }


REQUEST = f"GET {PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"


async def read_answer(sock: socket.socket) -> bytes:
    """One whole answer (its Content-Length); b"" if the connection ended first."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(body) < length:
        chunk = await loop.sock_recv(sock, 65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


async def ask_new(host: str, port: int, probe: Probe) -> None:
    """One request on a new connection, timed from connect() to the whole answer."""
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    status = "timeout"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            sock = await connect_from(PROBE_NEW, host, port)
            try:
                await loop.sock_sendall(sock, (REQUEST + "Connection: close\r\n\r\n").encode())
                status = status_of(await read_answer(sock))
            finally:
                sock.close()
    except TimeoutError:
        pass
    except OSError as exc:
        status = type(exc).__name__
    probe.statuses[status] += 1
    probe.latencies.append(time.perf_counter() - began)


class KeepAlive:
    """One keep-alive connection, opened again when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.lock = asyncio.Lock()

    async def ask(self, probe: Probe) -> None:
        loop = asyncio.get_running_loop()
        async with self.lock:  # one request at a time on the connection
            began = time.perf_counter()
            status = "timeout"
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    for attempt in (1, 2):  # a closed idle connection is opened again once
                        if self.sock is None:
                            self.sock = await connect_from(PROBE_KEEP_ALIVE, self.host, self.port)
                        try:
                            await loop.sock_sendall(self.sock, (REQUEST + "\r\n").encode())
                            answer = await read_answer(self.sock)
                        except OSError:
                            answer = b""
                        if answer or attempt == 2:
                            status = status_of(answer)
                            break
                        self.close()
                    if b"connection: close" in answer.lower():
                        self.close()
            except TimeoutError:
                self.close()
            except OSError as exc:
                status = type(exc).__name__
                self.close()
            probe.statuses[status] += 1
            probe.latencies.append(time.perf_counter() - began)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


async def probe(url: str, rate: float, seconds: float) -> list[Probe]:
    """Both probes at rate/2 each, open loop, for `seconds`; then wait for their answers."""
    host, port_text = url.removeprefix("http://").split(":")
    port = int(port_text)
    fresh, kept = Probe("new connection"), Probe("keep-alive")
    keep_alive = KeepAlive(host, port)
    tasks = []
    interval = 2.0 / rate
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < seconds:
        tasks.append(asyncio.ensure_future(ask_new(host, port, fresh)))
        tasks.append(asyncio.ensure_future(keep_alive.ask(kept)))
        n += 1
        await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
    await asyncio.gather(*tasks)
    keep_alive.close()
    return [fresh, kept]


# --- the run --------------------------------------------------------------------------


def listen_overflows() -> int | None:
    """Connections the kernel dropped because an accept queue was full, machine-wide
    (TcpExt ListenOverflows); None where /proc/net/netstat is not there."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return None


def connection_counters(url: str) -> dict[str, float]:
    """The server's counters of refused, cut and shed connections (/metrics), by reason."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"jnufm_http_connections_(\w+)_total(\{[^}]*\})? ([0-9.e+]+)$", line)
        if match:
            reason = re.search(r'reason="(\w+)"', match.group(2) or "")
            scope = re.search(r'scope="(\w+)"', match.group(2) or "")
            name = match.group(1) + (f" {reason.group(1)}" if reason else "")
            name += f" ({scope.group(1)})" if scope else ""
            found[name] = found.get(name, 0) + float(match.group(3))
    return {name: int(value) for name, value in sorted(found.items()) if value}


@dataclass(frozen=True)
class Attack:
    """One run's shape: the preset, and what the command line changed of it."""

    preset: str = "one-worker"
    sockets: int = 0  # 0: the preset's
    addresses: int = 0  # 0: the preset's
    trickle_s: float = 1.0
    ramp_s: float = 3.0
    seconds: float = 10.0
    rate: float = 40.0
    settings: tuple[str, ...] = ()  # KEY=VALUE server settings over the preset's


# Other addresses' p99 must stay under this while the attack runs (docs/operations.md).
TARGET_P99_MS = 100.0


async def measure(tmp: Path, attack: Attack) -> dict[str, Any]:
    """Start the school and jnufm in `tmp`, run the attack and the probes, stop them all;
    the figures."""
    preset = PRESETS[attack.preset]
    sockets = attack.sockets or preset.sockets
    addresses = attack.addresses or preset.addresses
    overlay = tmp / "overlay.yaml"
    overlay.write_text("{}\n")  # the server's own defaults
    processes = preset.processes or os.cpu_count() or 1
    config: dict[str, Any] = json.loads(json.dumps(preset.config))
    for text in attack.settings:
        path, _, value = text.partition("=")
        *sections, key = path.split(".")
        node = config
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = yaml.safe_load(value)
    school = start_school(tmp, "fast")
    attacker: asyncio.subprocess.Process | None = None
    try:
        system = start_jnufm(tmp, "jnufm", overlay, school.url, processes, extra_config=config)
        try:
            await probe(system.url, 10, 0.5)  # the balance is now in the cache
            attacker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.slow_body",
                "attack",
                system.url,
                "--sockets",
                str(sockets),
                "--addresses",
                str(addresses),
                "--trickle-s",
                str(attack.trickle_s),
                "--seconds",
                str(attack.ramp_s + attack.seconds + 1),
                stdout=asyncio.subprocess.PIPE,
            )
            assert attacker.stdout is not None
            await attacker.stdout.readline()  # "attacking": every socket has started
            await asyncio.sleep(attack.ramp_s)
            overflows_before = listen_overflows()
            probes = await probe(system.url, attack.rate, attack.seconds)
            overflows_after = listen_overflows()
            out = await asyncio.wait_for(attacker.stdout.read(), attack.seconds + 120)
            await attacker.wait()
            lines = out.decode().strip().splitlines()
            seen = json.loads(lines[-1]) if lines else {}
            counters = connection_counters(system.url)
        finally:
            if attacker is not None and attacker.returncode is None:
                attacker.kill()
                await attacker.wait()
            system.stop()
    finally:
        school.stop()
    summaries = {p.name: p.summary() for p in probes}
    return {
        "preset": attack.preset,
        "processes": processes,
        "config": config,
        "sockets": sockets,
        "addresses": addresses,
        "trickle_s": attack.trickle_s,
        "ramp_s": attack.ramp_s,
        "seconds": attack.seconds,
        "rate": attack.rate,
        "probes": summaries,
        # Every probe answered 200, at a p99 under the target.
        "held": all(
            s["statuses"] == {"200": s["requests"]} and (s["p99_ms"] or 0) < TARGET_P99_MS
            for s in summaries.values()
        ),
        "attacker": dict(sorted(seen.items())),
        "server_counters": counters,
        # While the probes ran: SYNs a full accept queue dropped (each costs its client
        # a 1 s retransmission); machine-wide, so anything else listening counts too.
        "listen_overflows": None
        if overflows_before is None or overflows_after is None
        else overflows_after - overflows_before,
    }


async def drill_slow_body(tmp: Path, seconds: float) -> dict[str, Any]:
    """Both presets as a fault drill (bench/drills.py's shape: figures and `checks`)."""
    from bench.drills import check

    figures: dict[str, Any] = {"checks": []}
    for preset in PRESETS:
        folder = tmp / preset
        folder.mkdir()
        result = await measure(folder, Attack(preset, seconds=min(seconds, 10.0)))
        figures[preset] = result
        shown = "; ".join(
            f"{name}: p99 {s['p99_ms']} ms, {s['statuses']}" for name, s in result["probes"].items()
        )
        figures["checks"].append(
            check(
                f"slow-body attack, {result['sockets']} sockets ({preset}): other addresses "
                f"answered, p99 under {TARGET_P99_MS:.0f} ms",
                result["held"],
                shown,
            )
        )
    return figures


def print_result(result: dict[str, Any]) -> None:
    print(
        f"slow-body, preset {result['preset']}: {result['sockets']} sockets from "
        f"{result['addresses']} addresses, a byte every {result['trickle_s']} s; "
        f"probes at {result['rate']} req/s for {result['seconds']} s"
    )
    print(f"{'probe':<16} {'requests':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, s in result["probes"].items():
        print(
            f"{name:<16} {s['requests']:>8} {s['p50_ms']!s:>8} {s['p90_ms']!s:>8} "
            f"{s['p99_ms']!s:>8} {s['max_ms']!s:>8}  {s['statuses']}"
        )
    print(f"attacker: {result['attacker']}")
    print(f"server: {result['server_counters']}")
    print(f"accept queue overflows while probing: {result['listen_overflows']}")
    verdict = "held" if result["held"] else "NOT held"
    print(f"other addresses all answered, p99 under {TARGET_P99_MS:.0f} ms: {verdict}")


def main_slow_body(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench slow-body", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="one-worker")
    parser.add_argument("--sockets", type=int, default=0, help="default: the preset's")
    parser.add_argument("--addresses", type=int, default=0, help="default: the preset's")
    parser.add_argument("--trickle-s", type=float, default=1.0)
    parser.add_argument("--ramp-s", type=float, default=3.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0, help="probe requests per second")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a server setting over the preset's, e.g. listen.backlog=4096 (repeatable)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not write bench/results/")
    args = parser.parse_args(argv)
    if not 1 <= (args.addresses or 1) <= 200:
        parser.error("--addresses must be 1 to 200 (127.0.0.2 and up)")
    attack = Attack(
        args.preset,
        args.sockets,
        args.addresses,
        args.trickle_s,
        args.ramp_s,
        args.seconds,
        args.rate,
        tuple(args.set),
    )
    with tempfile.TemporaryDirectory(prefix="jnufm-slow-body-") as folder:
        result = asyncio.run(measure(Path(folder), attack))
    print_result(result)
    if not args.no_save:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"{stamp}-slow-body.json"
        with contextlib.suppress(OSError):
            path.write_text(json.dumps(result, indent=2) + "\n")
            print(f"written: {path.relative_to(RESULTS.parent.parent)}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["attack"]:
        sys.exit(main_attacker(sys.argv[2:]))
    sys.exit(main_slow_body(sys.argv[1:]))
