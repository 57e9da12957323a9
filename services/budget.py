"""A global cap on concurrent requests to one school system, across workers and hosts.

A request first waits in its worker's own line (an asyncio semaphore of the
cap's size, so one worker never asks for more than the whole budget), then
takes one of `cap` numbered slots, each a lease in the shared database. A
slot held by a crashed process frees itself when its lease expires. Waiting
is bounded by a deadline; past it the caller gets BudgetExhausted.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._local = asyncio.Semaphore(cap)
        self._slot_lease_s = slot_lease_s
        self._poll_s = poll_s
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self, wait_s: float) -> AsyncIterator[None]:
        """Hold one slot for the block. Raises BudgetExhausted after wait_s."""
        started = time.monotonic()
        deadline = started + wait_s
        self.waiting += 1
        metrics.budget_queue(self.system, 1)
        try:
            try:
                await asyncio.wait_for(self._local.acquire(), timeout=max(0.0, wait_s))
            except TimeoutError:
                metrics.budget_rejected(self.system)
                raise BudgetExhausted(self.system, wait_s) from None
            try:
                name, holder = await self._take_slot(deadline, wait_s)
            except BudgetExhausted:
                metrics.budget_rejected(self.system)
                self._local.release()
                raise
            except BaseException:
                self._local.release()
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
                self._local.release()

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
