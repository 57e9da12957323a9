"""What the per-request limits cost: ns per RequestRateLimiter.check and per client_ip.

    python -m bench.limits_cost [--checks 200000]

Single process: one warm IP, many IPs (65536-slot table, as configured by
default), the fcntl lock/unlock pair alone, and client_ip with and without a
trusted proxy chain. Then two forked processes at once, on one IP (they
contend for the same lock) and on different IPs.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from ipaddress import ip_network

from services.addresses import client_ip
from services.errors import RateLimited
from services.rates import CHAIN, SLOT, RequestRateLimiter, SharedRateTable


def ns_per_call(call: Callable[[int], object], count: int) -> float:
    start = time.perf_counter_ns()
    for n in range(count):
        call(n)
    return (time.perf_counter_ns() - start) / count


def limiter_call(limiter: RequestRateLimiter, ips: list[str]) -> Callable[[int], object]:
    size = len(ips)

    def call(n: int) -> None:
        with contextlib.suppress(RateLimited):
            limiter.check(ips[n % size])

    return call


def forked(table: SharedRateTable, ips_per_child: list[list[str]], count: int) -> list[float]:
    """ns/check in each of several processes running at the same time."""
    go_read, go_write = os.pipe()
    children = []
    for ips in ips_per_child:
        out_read, out_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                call = limiter_call(RequestRateLimiter(table, 1e9, 1e9), ips)
                os.read(go_read, 1)
                os.write(out_write, f"{ns_per_call(call, count):.0f}".encode())
                code = 0
            finally:
                os._exit(code)
        os.close(out_write)
        children.append((pid, out_read))
    os.write(go_write, b"g" * len(children))
    results = []
    for pid, out_read in children:
        with os.fdopen(out_read, "rb") as out:
            results.append(float(out.read()))
        os.waitpid(pid, 0)
    os.close(go_read)
    os.close(go_write)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=200_000)
    args = parser.parse_args()
    count = args.checks
    table = SharedRateTable.create(65536)
    try:
        warm = RequestRateLimiter(table, 1e9, 1e9)
        many = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(50_000)]
        refused = RequestRateLimiter(table, 1e-6, 1)
        size = CHAIN * SLOT.size

        def lock_pair(n: int) -> None:
            fcntl.lockf(table.fd, fcntl.LOCK_EX, size, 0)
            fcntl.lockf(table.fd, fcntl.LOCK_UN, size, 0)

        proxies = [ip_network("10.0.0.0/8"), ip_network("192.168.0.0/16")]
        rows = [
            ("check, one warm IP", ns_per_call(limiter_call(warm, ["203.0.113.9"]), count)),
            ("check, 50000 IPs", ns_per_call(limiter_call(warm, many), count)),
            ("check, refused (429)", ns_per_call(limiter_call(refused, ["198.51.100.1"]), count)),
            ("fcntl lock + unlock alone", ns_per_call(lock_pair, count)),
            ("client_ip, no XFF", ns_per_call(lambda n: client_ip("203.0.113.9", None, []), count)),
            (
                "client_ip, 2 trusted hops",
                ns_per_call(
                    lambda n: client_ip("10.0.0.2", "203.0.113.9, 192.168.1.1", proxies), count
                ),
            ),
        ]
        for label, ns in rows:
            print(f"{label:40} {ns:8.0f} ns")
        same = forked(table, [["203.0.113.9"], ["203.0.113.9"]], count)
        apart = forked(table, [many[:25_000], many[25_000:]], count)
        print(f"{'check, 2 processes, same IP':40} {max(same):8.0f} ns (slower process)")
        print(f"{'check, 2 processes, different IPs':40} {max(apart):8.0f} ns (slower process)")
        print(f"cores: {os.cpu_count()}")
    finally:
        table.close()


if __name__ == "__main__":
    main()
