"""Operations drill: reload under load, graceful stop, worker replacement, scrape cost.

    python -m bench.ops_drill [--processes 2] [--restarts 1000] [--load-s 8]

Starts `server.py` (SQLite, its own simulated school) and measures:

1. peak: requests/s of a closed loop (32 keep-alive connections, as fast as they go);
2. reload: an open loop at 80 % of that peak for `--load-s` seconds, with a
   SIGHUP every 2 s; every failed, reset or non-2xx request is counted;
3. replacement: SIGKILL a worker, time until a new worker answers (5 times);
4. scrape: `--restarts` worker kills (each new worker serves before it is
   killed, so each leaves metric files behind), then the time of /metrics;
5. stop: SIGTERM with slow requests in flight: time until the port refuses
   connections, whether the requests finished, time until the master exited.

Traffic goes to 127.0.0.1 only; every loop is bounded and ends by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.processes import ROOT, free_port, schoolsim, sim_json, wait_for_http

PATHS = ("/healthz", "/card/rest?stuid=2012052690&password=052690")


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1


async def _request(
    port: int, conn: list[asyncio.StreamReader | asyncio.StreamWriter | None], path: str
) -> tuple[int, bool]:
    """One GET on a kept-alive connection (opened as needed): (status, server closes)."""
    if conn[0] is None:
        conn[0], conn[1] = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = conn[0], conn[1]
    assert isinstance(reader, asyncio.StreamReader) and isinstance(writer, asyncio.StreamWriter)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", "0")))
    closing = headers.get("connection", "").lower() == "close"
    if closing:
        writer.close()
        conn[0] = conn[1] = None
    return status, closing


async def load(
    port: int, seconds: float, connections: int, rate: float | None, school_every: int = 0
) -> LoadResult:
    """Keep-alive load for `seconds`: closed loop (rate None) or about `rate` requests/s;
    every `school_every`-th request is a balance query (0: only /healthz)."""
    result = LoadResult()
    end = time.monotonic() + seconds
    interval = connections / rate if rate else 0.0

    async def one_connection(offset: int) -> None:
        conn: list[asyncio.StreamReader | asyncio.StreamWriter | None] = [None, None]
        due = time.monotonic() + (interval * offset / connections)
        n = offset
        while time.monotonic() < end:
            if interval:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                due += interval
            path = PATHS[1] if school_every and n % school_every == 0 else PATHS[0]
            n += 1
            started = time.perf_counter()
            result.sent += 1
            try:
                async with asyncio.timeout(30):
                    status, _ = await _request(port, conn, path)
            except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
                result.fail(type(exc).__name__)
                if conn[1] is not None:
                    conn[1].close()  # type: ignore[union-attr]
                conn[0] = conn[1] = None
                continue
            result.latencies.append(time.perf_counter() - started)
            if 200 <= status < 300:
                result.ok += 1
            else:
                result.fail(f"HTTP {status}")
        if conn[1] is not None:
            conn[1].close()  # type: ignore[union-attr]

    await asyncio.gather(*(one_connection(i) for i in range(connections)))
    return result


def children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    return []


def healthz_pid(port: int) -> int | None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/healthz", headers={"Connection": "close"}
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(json.loads(resp.read())["pid"])
    except OSError:
        return None


def wait_serving_pid(port: int, pid: int, timeout: float = 10) -> float:
    """Seconds until a request is answered by worker `pid`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if healthz_pid(port) == pid:
            return time.monotonic() - start
    raise TimeoutError(f"worker {pid} did not answer within {timeout}s")


def new_child(master: int, old: set[int], timeout: float = 10) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [p for p in children(master) if p not in old]
        if fresh:
            return fresh[0]
        time.sleep(0.001)
    raise TimeoutError("no new worker")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return True
    return False


def scrape_ms(port: int, times: int = 20) -> tuple[float, float, int]:
    durations = []
    size = 0
    for _ in range(times):
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            size = len(resp.read())
        durations.append((time.perf_counter() - started) * 1000)
    return statistics.median(durations), max(durations), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--restarts", type=int, default=1000)
    parser.add_argument("--load-s", type=float, default=8.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jnufm-drill-") as tmp_name:
        tmp = Path(tmp_name)
        with schoolsim(tmp, "fast") as sim:
            port = free_port()
            grace = 10
            config = tmp / "config.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "listen": {"port": port},
                        "processes": args.processes,
                        "shutdown_grace_s": grace,
                        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'drill.sqlite3'}"},
                        "school": {"card": {"base_url": sim.url}},
                        "simulator": {"enabled": False},
                        "log": {"level": "WARNING"},
                        # Kills here are deliberate: no backoff, no crash-loop exit.
                        "supervisor": {"stable_after_s": 0, "crash_loop_deaths": 1_000_000},
                        # All load comes from one address: no per-address rate limit.
                        "limits": {"enabled": False},
                    }
                )
            )
            log_path = tmp / "server.log"
            with log_path.open("wb") as log:
                server = subprocess.Popen(
                    [sys.executable, str(ROOT / "server.py"), "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                    env={**os.environ, "JNUFM_SECRET_KEY": "drill-secret-key-0123456789"},
                )
            try:
                wait_for_http(f"http://127.0.0.1:{port}/healthz", server, timeout=30)
                run_drill(server, port, sim.url, args, grace)
            except BaseException:
                tail = log_path.read_text(errors="replace").splitlines()[-30:]
                print("server log (last lines):", *tail, sep="\n  ", file=sys.stderr)
                raise
            finally:
                if server.poll() is None:
                    server.kill()
                    server.wait()
    return 0


def reload_drill(
    server: subprocess.Popen[bytes], port: int, seconds: float, school_every: int, mix: str
) -> None:
    peak = asyncio.run(load(port, 3.0, 32, None, school_every))
    peak_rps = peak.sent / 3.0
    print(f"peak, {mix} (closed loop, 32 keep-alive conns): {peak_rps:.0f} req/s")
    rate = 0.8 * peak_rps

    async def reload_under_load() -> tuple[LoadResult, int]:
        task = asyncio.create_task(load(port, seconds, 32, rate, school_every))
        reloads = 0
        await asyncio.sleep(1.0)
        while not task.done() and reloads < int(seconds // 2):
            server.send_signal(signal.SIGHUP)
            reloads += 1
            await asyncio.sleep(2.0)
        return await task, reloads

    during, reloads = asyncio.run(reload_under_load())
    lat = sorted(during.latencies)
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0
    print(
        f"  {reloads} reloads under {rate:.0f} req/s (80% of peak) for {seconds:g} s: "
        f"sent {during.sent}, ok {during.ok}, failed or reset "
        f"{sum(during.failures.values())} {during.failures or ''}, p99 {p99:.1f} ms"
    )


def run_drill(
    server: subprocess.Popen[bytes], port: int, sim_url: str, args: argparse.Namespace, grace: int
) -> None:
    print(f"cpu cores: {os.cpu_count()}, workers: {args.processes}")
    for school_every, mix in ((0, "/healthz only"), (10, "10% balance queries")):
        reload_drill(server, port, args.load_s, school_every, mix)

    replace_times = []
    for _ in range(5):
        old = set(children(server.pid))
        victim = sorted(old)[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        fresh = new_child(server.pid, old)
        wait_serving_pid(port, fresh)
        replace_times.append(time.monotonic() - killed_at)
        time.sleep(0.2)
    print(
        "killed worker replaced and serving: "
        f"median {statistics.median(replace_times) * 1000:.0f} ms, "
        f"max {max(replace_times) * 1000:.0f} ms"
    )

    median, worst, size = scrape_ms(port)
    print(f"/metrics before restarts: median {median:.1f} ms, max {worst:.1f} ms, {size} bytes")
    started = time.monotonic()
    for _ in range(args.restarts):
        old = set(children(server.pid))
        victim = sorted(old)[0]
        os.kill(victim, signal.SIGKILL)
        fresh = new_child(server.pid, old)
        wait_serving_pid(port, fresh)
    took = time.monotonic() - started
    median, worst, size = scrape_ms(port)
    print(
        f"/metrics after {args.restarts} worker restarts ({took:.0f} s): "
        f"median {median:.1f} ms, max {worst:.1f} ms, {size} bytes"
    )

    # Graceful stop with slow requests in flight (5 school requests of 400 ms each).
    sim_json(
        sim_url,
        "/__sim/control",
        {"latency_ms_median": 400, "latency_ms_min": 400, "latency_sigma": 0},
    )

    async def stop_with_requests() -> tuple[list[int | str], float, float]:
        async def slow(student: str) -> int | str:
            conn: list[asyncio.StreamReader | asyncio.StreamWriter | None] = [None, None]
            try:
                path = f"/card/rest?stuid={student}&password={student[-6:]}"
                status, _ = await _request(port, conn, path)
                return status
            except (OSError, asyncio.IncompleteReadError) as exc:
                return type(exc).__name__
            finally:
                if conn[1] is not None:
                    conn[1].close()  # type: ignore[union-attr]

        # Students not asked before: nothing cached, each query goes to the school.
        tasks = [asyncio.create_task(slow(f"201300000{i}")) for i in range(4)]
        await asyncio.sleep(0.5)
        sent_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        while not refused(port) and time.monotonic() - sent_at < 5:  # noqa: ASYNC110 - polling a port
            await asyncio.sleep(0.001)
        stopped_listening = time.monotonic() - sent_at
        results = list(await asyncio.gather(*tasks))
        while server.poll() is None and time.monotonic() - sent_at < grace + 10:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return results, stopped_listening, time.monotonic() - sent_at

    results, listening_s, exit_s = asyncio.run(stop_with_requests())
    print(
        f"SIGTERM: listening stopped after {listening_s * 1000:.0f} ms; in-flight answers "
        f"{results}; exited (code {server.returncode}) after {exit_s:.2f} s "
        f"(grace {grace} s + 5 s allowed)"
    )


if __name__ == "__main__":
    sys.exit(main())
