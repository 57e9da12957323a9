"""The fair line in front of a school budget (services/budget.py FairLine): one tenant may
take every place while nobody else waits; when others wait, a freed place goes round
robin, to the tenant holding the fewest and served least recently."""

from __future__ import annotations

import asyncio

import pytest

from services.budget import FairLine


async def take(line: FairLine, tenant: str, order: list[str], hold: asyncio.Event) -> None:
    """Wait for a place, note whose it was, hold it until told, give it back."""
    await line.acquire(tenant, 10)
    order.append(tenant)
    await hold.wait()
    line.release(tenant)


async def test_alone_a_tenant_takes_every_place() -> None:
    line = FairLine(3)
    for _ in range(3):
        await line.acquire("a", 0)
    assert line.held("a") == 3
    with pytest.raises(TimeoutError):
        await line.acquire("a", 0.01)


async def test_freed_places_go_round_robin_between_waiting_tenants() -> None:
    line = FairLine(1)
    order: list[str] = []
    holds: dict[str, list[asyncio.Event]] = {"busy": [], "other": [], "third": []}
    tasks = []

    def queue(tenant: str) -> None:
        hold = asyncio.Event()
        holds[tenant].append(hold)
        tasks.append(asyncio.ensure_future(take(line, tenant, order, hold)))

    await line.acquire("busy", 0)  # the busy tenant holds the only place
    for _ in range(4):
        queue("busy")  # and queues four more
    await asyncio.sleep(0)
    queue("other")  # then two others arrive, one request each
    queue("third")
    await asyncio.sleep(0)
    line.release("busy")
    for n in range(6):
        while len(order) <= n:  # noqa: ASYNC110 - the line hands out on release
            await asyncio.sleep(0)
        holds[order[n]].pop(0).set()  # each holder in turn gives its place back
    await asyncio.gather(*tasks)
    # Each waiting tenant had its turn before the busy one's next request (who came
    # first among the never-served goes first; a tenant's own requests in order).
    assert order == ["other", "third", "busy", "busy", "busy", "busy"]


async def test_a_waiter_that_gives_up_leaves_no_place_behind() -> None:
    line = FairLine(1)
    await line.acquire("a", 0)
    with pytest.raises(TimeoutError):
        await line.acquire("b", 0.01)
    assert line.waiting == 0
    line.release("a")
    await line.acquire("c", 0)  # the place is free, not promised to the one that left
    assert line.held("c") == 1


async def test_a_waiter_gives_up_when_it_is_no_longer_wanted_and_its_place_goes_on() -> None:
    """A request waiting for a place asks `still_wanted` as it waits (the breaker opened:
    it gets its 503 at once, not at its deadline), and leaves the line clean."""
    line = FairLine(1)
    await line.acquire("busy", 0)
    opened = False

    class Opened(Exception):
        pass

    def still_wanted() -> None:
        if opened:
            raise Opened

    waiter = asyncio.ensure_future(line.acquire("cold", 30, still_wanted))
    await asyncio.sleep(0.3)
    assert not waiter.done() and line.waiting == 1
    opened = True
    with pytest.raises(Opened):
        await asyncio.wait_for(waiter, 5)
    assert line.waiting == 0
    line.release("busy")
    await line.acquire("next", 0)  # the place was not lost to the one that gave up
    assert line.held("next") == 1
