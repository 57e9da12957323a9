"""Leases and budget slots in a real database: one holder, expiry after a crash, release."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import queries
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from services.budget import BudgetExhausted, UpstreamBudget
from services.leases import LeaseStore
from settings import DatabaseSettings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(DatabaseSettings(url=db_url))
    await migrate(engine)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def holder(
    sessions: async_sessionmaker[AsyncSession], name: str, now: datetime
) -> str | None:
    """Who holds the lease now, read from the table."""
    async with sessions() as db:
        return await queries.lease_holder(db, name, now)


async def test_one_holder_at_a_time_and_release(sessions: async_sessionmaker[AsyncSession]) -> None:
    leases = LeaseStore(sessions, Clock())
    assert await leases.try_acquire("card:1", "a", 30)
    assert not await leases.try_acquire("card:1", "b", 30)
    assert await holder(sessions, "card:1", Clock().now) == "a"
    await leases.release("card:1", "b", 30)  # not the holder: nothing happens
    assert not await leases.try_acquire("card:1", "b", 30)
    await leases.release("card:1", "a", 30)
    assert await leases.try_acquire("card:1", "b", 30)


async def test_a_crashed_holder_loses_its_lease_when_it_expires(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock()
    leases = LeaseStore(sessions, clock)
    assert await leases.try_acquire("card:2", "crashed", 30)
    clock.now += timedelta(seconds=29)
    assert not await leases.try_acquire("card:2", "next", 30)
    clock.now += timedelta(seconds=2)
    assert await holder(sessions, "card:2", clock.now) is None
    assert await leases.try_acquire("card:2", "next", 30)
    await leases.release("card:2", "crashed", 30)  # the old holder coming back cannot free it
    assert await holder(sessions, "card:2", clock.now) == "next"


async def test_concurrent_acquirers_get_one_winner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    leases = LeaseStore(sessions, Clock())
    wins = await asyncio.gather(*(leases.try_acquire("card:3", f"h{i}", 30) for i in range(20)))
    assert wins.count(True) == 1


async def test_budget_slots_cap_and_wait(sessions: async_sessionmaker[AsyncSession]) -> None:
    leases = LeaseStore(sessions, lambda: datetime.now(UTC))
    # Two budgets on one database stand for two processes.
    first = UpstreamBudget(leases, "card", cap=2, slot_lease_s=30, poll_s=0.01)
    second = UpstreamBudget(leases, "card", cap=2, slot_lease_s=30, poll_s=0.01)
    inside = 0
    peak = 0

    async def work(budget: UpstreamBudget) -> None:
        nonlocal inside, peak
        async with budget.slot(wait_s=10):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.02)
            inside -= 1

    await asyncio.gather(*(work(first if i % 2 else second) for i in range(12)))
    assert peak == 2


async def test_budget_refuses_after_the_wait(sessions: async_sessionmaker[AsyncSession]) -> None:
    leases = LeaseStore(sessions, lambda: datetime.now(UTC))
    holder = UpstreamBudget(leases, "card", cap=1, slot_lease_s=30, poll_s=0.01)
    other = UpstreamBudget(leases, "card", cap=1, slot_lease_s=30, poll_s=0.01)
    async with holder.slot(wait_s=1):
        with pytest.raises(BudgetExhausted):
            async with other.slot(wait_s=0.1):
                pass
    async with other.slot(wait_s=1):
        pass
