"""The shared request rate table (services/rates.py) across forked processes: two
children taking tokens for one address at once get exactly the burst together, and
stay within the rate."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

from services.rates import RequestRateLimiter, SharedRateTable
from tests.unit.test_limits import allowed


@pytest.fixture
def table() -> Iterator[SharedRateTable]:
    made = SharedRateTable.create(1024)
    yield made
    made.close()


def hammer_in_children(
    table: SharedRateTable, make_limiter: Callable[[], RequestRateLimiter], seconds: float
) -> tuple[list[int], float]:
    """Two forked children call check() on one IP for `seconds`; their allowed counts."""
    go_read, go_write = os.pipe()
    children: list[tuple[int, int]] = []
    for _ in range(2):
        out_read, out_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: wait for the start, hammer, report, exit without cleanup
            code = 1
            try:
                limiter = make_limiter()
                os.read(go_read, 1)
                deadline = time.monotonic() + seconds
                count = 0
                while time.monotonic() < deadline:
                    count += allowed(limiter, "203.0.113.9", 50)
                os.write(out_write, str(count).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(out_write)
        children.append((pid, out_read))
    start = time.monotonic()
    os.write(go_write, b"gg")
    counts = []
    for pid, out_read in children:
        with os.fdopen(out_read, "rb") as out:
            counts.append(int(out.read() or b"-1"))
        assert os.waitpid(pid, 0)[1] == 0
    elapsed = time.monotonic() - start
    os.close(go_read)
    os.close(go_write)
    return counts, elapsed


def test_forked_processes_share_buckets_exactly(table: SharedRateTable) -> None:
    # A frozen clock: no refill, so both processes together get exactly the burst.
    counts, _ = hammer_in_children(
        table, lambda: RequestRateLimiter(table, 100, 500, clock=lambda: 5000.0), 0.5
    )
    assert sum(counts) == 500


def test_forked_processes_stay_within_rate(table: SharedRateTable) -> None:
    counts, elapsed = hammer_in_children(table, lambda: RequestRateLimiter(table, 200, 50), 0.5)
    assert all(count > 0 for count in counts)
    assert 50 <= sum(counts) <= 50 + 200 * elapsed + 2
