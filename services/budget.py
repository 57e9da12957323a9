"""A global cap on concurrent requests to one school system, across workers and hosts.

A request first waits in its worker's own line (a `FairLine` of the cap's size,
so one worker never asks for more than the whole budget), then takes one of
`cap` numbered slots, each a lease in the shared database. A slot held by a
crashed process frees itself when its lease expires. Waiting is bounded by a
deadline; past it the caller gets BudgetExhausted.

The line is fair between tenants (the clients asking: an address, or a
registered client): a freed place goes to the waiting tenant that holds the
fewest places and, among those, was served least recently (round robin), the
longest-waiting of its requests first. So one client may use the whole budget
while nobody else waits, and as soon as others wait, each gets its turn: what
is protected is the school's budget, not a count per client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import random
import time
from collections.abc import AsyncIterator

from observability import metrics
from services.errors import SchoolBusy
from services.leases import LeaseStore, new_holder_id


class BudgetExhausted(SchoolBusy):
    """No slot to the school freed up before the deadline."""

    def __init__(self, system: str, waited_s: float) -> None:
        super().__init__(f"{system}: no request slot within {waited_s:.1f}s")
        self.system = system


class FairLine:
    """`size` places, handed out fairly between tenants (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._held: dict[str, int] = {}
        # Waiting requests per tenant, oldest first: (arrival number, future set when
        # it gets a place).
        self._waiting: dict[str, collections.deque[tuple[int, asyncio.Future[None]]]] = {}
        self._arrivals = itertools.count()
        # When each tenant holding or waiting was last given a place (a grant number).
        self._served: dict[str, int] = {}
        self._grants = itertools.count()

    def held(self, tenant: str) -> int:
        return self._held.get(tenant, 0)

    @property
    def waiting(self) -> int:
        return sum(len(line) for line in self._waiting.values())

    async def acquire(self, tenant: str, timeout_s: float) -> None:
        """Take a place within timeout_s. Raises TimeoutError."""
        if self._free > 0 and not self._waiting:
            self._take(tenant)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (next(self._arrivals), future)
        self._waiting.setdefault(tenant, collections.deque()).append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, timeout_s))
        except BaseException:
            if future.done() and not future.cancelled():
                self.release(tenant)  # got the place just as we gave up: pass it on
            else:
                future.cancel()
                self._forget(tenant, entry)
            raise

    def release(self, tenant: str) -> None:
        left = self._held.get(tenant, 0) - 1
        if left > 0:
            self._held[tenant] = left
        else:
            self._held.pop(tenant, None)
            if tenant not in self._waiting:
                self._served.pop(tenant, None)  # gone: nothing to be fair about
        self._free += 1
        self._hand_out()

    def _take(self, tenant: str) -> None:
        self._free -= 1
        self._held[tenant] = self._held.get(tenant, 0) + 1
        self._served[tenant] = next(self._grants)

    def _hand_out(self) -> None:
        while self._free > 0 and self._waiting:
            # The tenant holding the fewest places; among equals, the one served least
            # recently (never: first), then the oldest waiter.
            tenant = min(
                self._waiting,
                key=lambda name: (
                    self.held(name),
                    self._served.get(name, -1),
                    self._waiting[name][0][0],
                ),
            )
            line = self._waiting[tenant]
            _, future = line.popleft()
            if not line:
                del self._waiting[tenant]
            if future.done():
                if tenant not in self._waiting and tenant not in self._held:
                    self._served.pop(tenant, None)
                continue
            self._take(tenant)
            future.set_result(None)

    def _forget(self, tenant: str, entry: tuple[int, asyncio.Future[None]]) -> None:
        line = self._waiting.get(tenant)
        if line is None:
            return
        with contextlib.suppress(ValueError):
            line.remove(entry)
        if not line:
            del self._waiting[tenant]
            if tenant not in self._held:
                self._served.pop(tenant, None)


class UpstreamBudget:
    """At most `cap` concurrent operations on `system`, over every process on the database."""

    def __init__(
        self,
        leases: LeaseStore,
        system: str,
        cap: int,
        slot_lease_s: float,
        poll_s: float,
    ) -> None:
        self.system = system
        self.cap = cap
        self._leases = leases
        self._local = FairLine(cap)
        self._slot_lease_s = slot_lease_s
        self._poll_s = poll_s
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, wait_s: float, tenant: str = "") -> AsyncIterator[None]:
        """Hold one slot for the block, for `tenant` (who asks: its fair share of this
        worker's line). Raises BudgetExhausted after wait_s."""
        started = time.monotonic()
        deadline = started + wait_s
        self.waiting += 1
        metrics.budget_queue(self.system, 1)
        try:
            try:
                await self._local.acquire(tenant, wait_s)
            except TimeoutError:
                metrics.budget_rejected(self.system)
                raise BudgetExhausted(self.system, wait_s) from None
            try:
                name, holder = await self._take_slot(deadline, wait_s)
            except BudgetExhausted:
                metrics.budget_rejected(self.system)
                self._local.release(tenant)
                raise
            except BaseException:
                self._local.release(tenant)
                raise
        finally:
            self.waiting -= 1
            metrics.budget_queue(self.system, -1)
        metrics.budget_wait(self.system, time.monotonic() - started)
        try:
            yield
        finally:
            try:
                await asyncio.shield(self._leases.release(name, holder, self._slot_lease_s))
            finally:
                self._local.release(tenant)

    async def _take_slot(self, deadline: float, wait_s: float) -> tuple[str, str]:
        holder = new_holder_id()
        while True:
            # Start at a random slot so processes do not all fight over slot 0.
            first = random.randrange(self.cap)
            for i in range(self.cap):
                name = f"budget:{self.system}:{(first + i) % self.cap}"
                if await self._leases.try_acquire(name, holder, self._slot_lease_s):
                    return name, holder
            if time.monotonic() >= deadline:
                raise BudgetExhausted(self.system, wait_s)
            await asyncio.sleep(self._poll_s * (0.5 + random.random()))
