"""A global cap on concurrent requests to one school system, across workers and hosts.

A request first waits in its worker's own line (a `FairLine` of the cap's size,
so one worker never asks for more than the whole budget), then takes one of
`cap` numbered slots, each a lease in the shared database. Waiting is bounded
by a deadline; past it the caller gets BudgetExhausted.

The cap is a hard ceiling on what the school sees, so a slot is free again only
when no request sent under it can still be at the school. The school keeps
working on a request when our side of the connection closes (a real server
does), so closing it is not enough. We assume the school is done with a request
`in_flight_s` after it was sent: the system's `total_timeout_s` (after which we
give up on any request) plus `budget.abandoned_s` (how long the school may go on
with a request nobody waits for any more: a guess). Hence:

- a holder whose work ends (answered, failed) frees its slot at once;
- a holder whose request timed out keeps the slot `abandoned_s` more;
- a holder stopped while a request may be out (cancelled: the operation's time
  limit, a worker stopping) keeps the slot `in_flight_s` more (`release_after`);
- a holder that died (SIGKILL) is found by its replacement, which keeps the slot
  `in_flight_s` from then (`slot_linger`, LeaseStore.release_dead_holders);
- a holder that died unseen (another host) loses the slot when its lease
  expires, and the lease is made long enough for that: at least the longest a
  holder may keep a slot (`hold_s`) plus `in_flight_s`.

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
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

from observability import metrics
from school.errors import SchoolTimeout
from services.errors import SchoolBusy
from services.leases import LeaseStore, new_holder_id


class BudgetExhausted(SchoolBusy):
    """No slot to the school freed up before the deadline."""

    def __init__(self, system: str, waited_s: float) -> None:
        super().__init__(f"{system}: no request slot within {waited_s:.1f}s")
        self.system = system


# How often a request waiting for a slot looks whether it is still wanted (the
# system's breaker opened meanwhile: it gets the fast 503 at once, not at its deadline).
CHECK_S: Final = 0.25


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

    async def acquire(
        self, tenant: str, timeout_s: float, still_wanted: Callable[[], None] | None = None
    ) -> None:
        """Take a place within timeout_s. Raises TimeoutError; while waiting, calls
        `still_wanted` every CHECK_S, which may raise to give up (the breaker opened)."""
        if self._free > 0 and not self._waiting:
            self._take(tenant)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (next(self._arrivals), future)
        self._waiting.setdefault(tenant, collections.deque()).append(entry)
        give_up = time.monotonic() + max(0.0, timeout_s)
        try:
            while True:
                left = give_up - time.monotonic()
                step = left if still_wanted is None else min(left, CHECK_S)
                try:
                    await asyncio.wait_for(asyncio.shield(future), timeout=max(0.0, step))
                    break
                except TimeoutError:
                    if step >= left:
                        raise
                assert still_wanted is not None
                still_wanted()
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


def slot_prefix(system: str) -> str:
    """The start of the name of every budget slot of `system` (slot n: prefix + n)."""
    return f"budget:{system}:"


def slot_linger(in_flight_s: Mapping[str, float]) -> Callable[[str], float]:
    """For LeaseStore.release_dead_holders: how long a dead holder's lease may still
    stand for a request at the school (`in_flight_s` by system; 0 for any other lease)."""
    by_prefix = {slot_prefix(system): s for system, s in in_flight_s.items()}

    def linger(name: str) -> float:
        prefix, _, number = name.rpartition(":")
        return by_prefix.get(prefix + ":", 0.0) if number.isdigit() else 0.0

    return linger


class UpstreamBudget:
    """At most `cap` concurrent operations on `system`, over every process on the database."""

    def __init__(
        self,
        leases: LeaseStore,
        system: str,
        cap: int,
        slot_lease_s: float,
        poll_s: float,
        *,
        in_flight_s: float = 0.0,
        hold_s: float = 0.0,
        abandoned_s: float = 0.0,
    ) -> None:
        """`in_flight_s`: how long a request may be at the school after it was sent (see
        the module docstring); `hold_s`: the longest a holder keeps a slot (its caller's
        time limit); `abandoned_s`: how long the school may go on with a request after
        we waited our whole timeout for it. A slot's lease lasts `slot_lease_s`, or
        hold_s + in_flight_s if longer."""
        self.system = system
        self.cap = cap
        self.in_flight_s = in_flight_s
        self.abandoned_s = abandoned_s
        self._leases = leases
        self._local = FairLine(cap)
        self._slot_lease_s = max(slot_lease_s, hold_s + in_flight_s)
        self._poll_s = poll_s
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(
        self, wait_s: float, tenant: str = "", still_wanted: Callable[[], None] | None = None
    ) -> AsyncIterator[None]:
        """Hold one slot for the block, for `tenant` (who asks: its fair share of this
        worker's line). Raises BudgetExhausted after wait_s, or what `still_wanted`
        raises while waiting (BreakerOpen)."""
        started = time.monotonic()
        deadline = started + wait_s
        self.waiting += 1
        metrics.budget_queue(self.system, 1)
        try:
            try:
                await self._local.acquire(tenant, wait_s, still_wanted)
            except TimeoutError:
                metrics.budget_rejected(self.system)
                raise BudgetExhausted(self.system, wait_s) from None
            try:
                name, holder = await self._take_slot(deadline, wait_s, still_wanted)
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
        linger = 0.0
        try:
            yield
        except asyncio.CancelledError:
            # Stopped while a request may be out: the school goes on with it.
            linger = self.in_flight_s
            raise
        except SchoolTimeout:
            # We waited our whole timeout; the school may still be at it.
            linger = self.abandoned_s
            raise
        finally:
            try:
                if linger > 0:
                    await asyncio.shield(self._leases.release_after(name, holder, linger))
                else:
                    await asyncio.shield(self._leases.release(name, holder, self._slot_lease_s))
            finally:
                self._local.release(tenant)

    async def _take_slot(
        self, deadline: float, wait_s: float, still_wanted: Callable[[], None] | None
    ) -> tuple[str, str]:
        holder = new_holder_id()
        checked = time.monotonic()
        while True:
            # Start at a random slot so processes do not all fight over slot 0.
            first = random.randrange(self.cap)
            for i in range(self.cap):
                name = f"{slot_prefix(self.system)}{(first + i) % self.cap}"
                if await self._leases.try_acquire(name, holder, self._slot_lease_s):
                    return name, holder
            now = time.monotonic()
            if now >= deadline:
                raise BudgetExhausted(self.system, wait_s)
            if still_wanted is not None and now - checked >= CHECK_S:
                checked = now
                still_wanted()
            await asyncio.sleep(self._poll_s * (0.5 + random.random()))
