"""With the school down: are warm students still answered (stale), and cold ones refused fast?

    python -m bench.school_down [--students 50] [--mode reset|error|hang]

Starts a simulated school and jnufm (2 workers, SQLite, default config), asks
once for each of N students (warm), switches the school off, then asks with
`Cache-Control: no-cache` for the warm ones (a fresh answer is impossible: a
stale one must come) and for N students never seen (cold). Prints status codes
and latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from harness.processes import jnufm_server, schoolsim, sim_json


async def ask(
    client: httpx.AsyncClient, url: str, student: str, fresh: bool
) -> tuple[int, float, bool]:
    headers = {"Cache-Control": "no-cache"} if fresh else {}
    start = time.perf_counter()
    resp = await client.get(url + "/v1/card/balance", auth=(student, student[-6:]), headers=headers)
    stale = resp.status_code == 200 and bool(resp.json().get("stale"))
    return resp.status_code, time.perf_counter() - start, stale


def show(name: str, results: list[tuple[int, float, bool]]) -> None:
    codes = Counter(code for code, _, _ in results)
    times = sorted(t for _, t, _ in results)
    stale = sum(1 for _, _, s in results if s)
    print(
        f"{name:<6} statuses {dict(codes)}  stale {stale}/{len(results)}  "
        f"p50 {1000 * statistics.median(times):.1f} ms  max {1000 * times[-1]:.1f} ms"
    )


async def run(students: int, mode: str) -> None:
    with tempfile.TemporaryDirectory(prefix="jnufm-down-") as name:
        tmp = Path(name)
        with schoolsim(tmp, "fast") as sim:
            db = f"sqlite+aiosqlite:///{tmp / 'down.sqlite3'}"
            with jnufm_server(tmp, db, sim.url, 2, cache={"fresh_min_interval_s": 0}) as server:
                warm = [f"20120{i:05d}" for i in range(students)]
                cold = [f"20130{i:05d}" for i in range(students)]
                async with httpx.AsyncClient(timeout=60) as client:
                    first = await asyncio.gather(*(ask(client, server.url, s, False) for s in warm))
                    show("warm-up", first)
                    sim_json(sim.url, "/__sim/control", {"down": True, "down_mode": mode})
                    show(
                        "warm",
                        await asyncio.gather(*(ask(client, server.url, s, True) for s in warm)),
                    )
                    show(
                        "cold",
                        await asyncio.gather(*(ask(client, server.url, s, False) for s in cold)),
                    )
                    show(
                        "cold",
                        await asyncio.gather(*(ask(client, server.url, s, False) for s in cold)),
                    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--mode", choices=["reset", "error", "hang"], default="reset")
    args = parser.parse_args()
    asyncio.run(run(args.students, args.mode))


if __name__ == "__main__":
    main()
