"""How evenly do requests spread over workers: one shared socket vs per-worker SO_REUSEPORT.

    python -m bench.worker_balance [--processes 2] [--requests 20000] [--concurrency 50]

For each mode it starts `server.py` (SQLite, no simulator), sends `/healthz`
requests with ApacheBench (`ab`, Debian's apache2-utils), once opening a new
connection per request and once with keep-alive, then counts the access-log
lines of each worker pid. Prints requests/s and busiest/least-busy ratio.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import tempfile
from pathlib import Path

from tests.procs import jnufm_server

# Only /healthz is asked: the card client is never used.
UNUSED_SCHOOL = "http://127.0.0.1:9"

ACCESS = re.compile(r"\[(\d+)\] jnufm\.access: 200 GET /healthz")


def run_mode(
    tmp: Path, reuse_port: bool, processes: int, requests: int, concurrency: int, keepalive: bool
) -> dict[str, float]:
    with jnufm_server(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}",
        UNUSED_SCHOOL,
        processes,
        listen={"reuse_port": reuse_port},
    ) as server:
        log_path = server.log_path
        # The probe above was logged too; count only what ab sends.
        before = collections.Counter(ACCESS.findall(log_path.read_text()))
        args = ["ab", "-q", "-n", str(requests), "-c", str(concurrency)]
        if keepalive:
            args.append("-k")
        out = subprocess.run(
            [*args, f"{server.url}/healthz"],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
    counts = collections.Counter(ACCESS.findall(log_path.read_text())) - before
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    per_worker = sorted(counts.values(), reverse=True)
    while len(per_worker) < processes:
        per_worker.append(0)
    ratio = per_worker[0] / per_worker[-1] if per_worker[-1] else float("inf")
    return {"rps": rps, "ratio": ratio, "counts": per_worker}  # type: ignore[dict-item]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    print(f"{'socket':<12} {'connections':<12} {'req/s':>8} {'busiest/least':>14}  per worker")
    with tempfile.TemporaryDirectory() as tmp:
        for keepalive in (False, True):
            for reuse_port in (False, True):
                r = run_mode(
                    Path(tmp),
                    reuse_port,
                    args.processes,
                    args.requests,
                    args.concurrency,
                    keepalive,
                )
                name = "reuse_port" if reuse_port else "shared"
                conns = "keep-alive" if keepalive else "new each"
                print(
                    f"{name:<12} {conns:<12} {r['rps']:>8.0f} {r['ratio']:>14.2f}  {r['counts']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
