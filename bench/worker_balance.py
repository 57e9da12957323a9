"""How evenly requests spread over the workers, by how clients connect.

    python -m bench balance [--processes 2] [--seconds 5]

For each way of sharing the port (the shared socket with fair accepting, the
default; the shared socket without it; one SO_REUSEPORT socket per worker) it
starts `server.py` (SQLite, no simulator) and sends `/healthz` requests: with
wrk on 4, 10 and 100 keep-alive connections (an app gateway's pool, the
benchmark's cold and mixed runs, a crowd), and with ab opening a new
connection per request (`-c 10`). It counts the access-log lines of each
worker pid and prints requests/s and the busiest/least-busy ratio (goal:
<= 1.2). Every run is bounded by `--seconds` (wrk -d, ab -t).
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.processes import jnufm_server

# Only /healthz is asked: no school client is used.
UNUSED_SCHOOL = "http://127.0.0.1:9"

ACCESS = re.compile(r"\[(\d+)\] jnufm\.access: 200 GET /healthz")

MODES: dict[str, dict[str, bool]] = {
    "shared+fair": {"reuse_port": False, "fair_accept": True},
    "shared": {"reuse_port": False, "fair_accept": False},
    "reuse_port": {"reuse_port": True, "fair_accept": False},
}
LOADS: list[tuple[str, int]] = [("keep-alive", 4), ("keep-alive", 10), ("keep-alive", 100)]
NEW_EACH = ("new each", 10)


def load(url: str, kind: str, connections: int, seconds: float) -> float:
    """Requests per second of one load against url."""
    if kind == "keep-alive":
        threads = min(connections, 4)
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    else:
        out = subprocess.run(
            ["ab", "-q", "-t", f"{seconds:g}", "-n", "1000000", "-c", str(connections), url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        ).stdout
        found = re.search(r"Requests per second:\s+([\d.]+)", out)
    return float(found.group(1)) if found else 0.0


def spread(counts: collections.Counter[str], processes: int) -> tuple[float, list[int]]:
    per_worker = sorted(counts.values(), reverse=True)
    per_worker += [0] * (processes - len(per_worker))
    ratio = per_worker[0] / per_worker[-1] if per_worker[-1] else float("inf")
    return ratio, per_worker


def run_mode(tmp: Path, mode: str, processes: int, seconds: float) -> list[dict[str, Any]]:
    rows = []
    with jnufm_server(
        tmp,
        f"sqlite+aiosqlite:///{tmp / f'bench-{mode}.sqlite3'}",
        UNUSED_SCHOOL,
        processes,
        listen=MODES[mode],
    ) as server:
        # Measure every worker serving: connections made before a worker is up stay
        # where they were accepted (keep-alive), which is not what is measured here.
        deadline = time.monotonic() + 30
        while f"{processes} workers serving" not in server.log_path.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{processes} workers did not start within 30 s")
            time.sleep(0.05)
        for kind, connections in [*LOADS, NEW_EACH]:
            before = collections.Counter(ACCESS.findall(server.log_path.read_text()))
            rps = load(f"{server.url}/healthz", kind, connections, seconds)
            counts = collections.Counter(ACCESS.findall(server.log_path.read_text())) - before
            ratio, per_worker = spread(counts, processes)
            rows.append(
                {
                    "mode": mode,
                    "load": f"{kind} x{connections}",
                    "rps": rps,
                    "ratio": ratio,
                    "per_worker": per_worker,
                }
            )
    return rows


def main_balance(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench balance", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated: " + ", ".join(MODES)
    )
    args = parser.parse_args(argv)
    print(f"{'socket':<12} {'connections':<16} {'req/s':>8} {'busiest/least':>14}  per worker")
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes.split(","):
            for row in run_mode(Path(tmp), mode, args.processes, args.seconds):
                print(
                    f"{row['mode']:<12} {row['load']:<16} {row['rps']:>8.0f} "
                    f"{row['ratio']:>14.2f}  {row['per_worker']}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main_balance(sys.argv[1:]))
