"""Build one worker's service objects from the settings; called after the fork."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from db.engine import make_engine, make_sessionmaker
from handlers.base import AppDeps, WorkerState
from observability.probes import StorageState, make_ops_deps
from school.card.client import CardCenterClient, CardCenterSettings
from services.breaker import BreakerTable
from services.card import CardService
from services.deferred import DeferredWrites, HostWrites, WriteHealth
from services.gate import CredentialGate, GateStore, GateTable, OutageTable
from services.limits import RequestRateLimiter, SharedRateTable
from settings import Settings


@dataclass(frozen=True, slots=True)
class WorkerServices:
    """What a worker serves with, and how to release it at the end."""

    deps: AppDeps
    close: Callable[[], Awaitable[None]]


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    card = settings.school.card
    return httpx.AsyncClient(
        timeout=httpx.Timeout(card.total_timeout_s, connect=card.connect_timeout_s),
        limits=httpx.Limits(
            max_connections=card.max_connections, max_keepalive_connections=card.max_connections
        ),
        follow_redirects=False,
        trust_env=False,
    )


def card_client(settings: Settings, http: httpx.AsyncClient) -> CardCenterClient:
    card = settings.school.card
    return CardCenterClient(
        CardCenterSettings(
            base_url=settings.card_base_url,
            connect_timeout=card.connect_timeout_s,
            total_timeout=card.total_timeout_s,
            clock_offset=card.clock_offset,
            max_pages=card.max_pages,
            user_agent=card.user_agent,
        ),
        http,
    )


# /readyz says writes are failing for this long after one was refused.
WRITE_FAILURE_MEMORY_S = 5.0


@dataclass(frozen=True, slots=True)
class HostTables:
    """Memory shared by every worker of a host: made in the master, before the fork."""

    rates: SharedRateTable
    gate: GateTable
    outage: OutageTable
    breakers: BreakerTable
    writes: HostWrites

    def close(self) -> None:
        for table in (self.rates, self.gate, self.outage, self.breakers, self.writes):
            table.close()


def make_host_tables(settings: Settings) -> HostTables:
    limits = settings.limits
    return HostTables(
        rates=SharedRateTable.create(limits.rate_table_slots),
        gate=GateTable.create(limits.gate_table_slots),
        # Only subjects that fail while the database is away: a quarter is plenty.
        outage=OutageTable.create(max(64, limits.gate_table_slots // 4)),
        breakers=BreakerTable.create(64),
        writes=HostWrites.make(),
    )


async def build_worker_services(
    settings: Settings, worker_index: int = 0, host_tables: HostTables | None = None
) -> WorkerServices:
    """The engine, HTTP client and services of one worker, on the running event loop.

    Without tables from the master (tests, `processes: 1`), the worker makes its own.
    """
    engine = make_engine(settings.database)
    sessions = make_sessionmaker(engine)
    http = make_http_client(settings)
    limits = settings.limits
    tables = host_tables or make_host_tables(settings)
    db = settings.database
    deferred = DeferredWrites(db.deferred_writes, db.deferred_retry_s, WriteHealth(tables.writes))
    gate = CredentialGate(
        GateStore(sessions, deferred.health),
        tables.gate,
        limits,
        settings.secret_key.encode(),
        outage=tables.outage,
        deferred=deferred,
    )
    limiter = None
    school_limiter = None
    if limits.enabled:
        limiter = RequestRateLimiter(
            tables.rates, limits.requests_per_s, limits.burst, ipv6_prefix=limits.ipv6_prefix
        )
        school_limiter = RequestRateLimiter(
            tables.rates,
            limits.school_requests_per_s,
            limits.school_burst,
            ipv6_prefix=limits.ipv6_prefix,
            namespace="school|",
            message="too many queries from this address need the card center; slow down",
        )
    state = WorkerState()
    service = CardService(
        card_client(settings, http),
        sessions,
        settings,
        gate,
        school_limiter=school_limiter,
        deferred=deferred,
        stop_by=lambda: state.stop_by,
        breakers=tables.breakers,
    )
    deps = AppDeps(
        card=service,
        state=state,
        retry_after_s=settings.api.retry_after_s,
        worker_index=worker_index,
        rate_limiter=limiter,
        trusted_proxies=limits.trusted_networks,
        legacy_body=settings.api.legacy_body,
        ops=make_ops_deps(
            settings,
            engine,
            breaker_states=lambda: {service.breaker.system: service.breaker.state},
            storage=lambda: StorageState(
                len(deferred),
                degraded=not gate.storage_ok,
                writes_failing=deferred.failing(WRITE_FAILURE_MEMORY_S),
            ),
        ),
    )

    async def close() -> None:
        await service.aclose(settings.shutdown_grace_s)
        await deferred.drain(settings.shutdown_grace_s)
        await http.aclose()
        await engine.dispose()
        if host_tables is None:
            tables.close()  # made here, not inherited from the master

    return WorkerServices(deps, close)
