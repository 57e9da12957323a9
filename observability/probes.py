"""What the operations endpoints need: the readiness check and who may read /metrics."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from settings import MetricsSettings, Settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def default_breaker_states() -> Mapping[str, str]:
    """Until a breaker exists, the card system is always let through."""
    return {"card": "closed"}


@dataclass(frozen=True, slots=True)
class MetricsAccess:
    """Who may read /metrics: clients in the allowed networks, or with the bearer token."""

    enabled: bool = True
    networks: tuple[Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    token: str = field(default="", repr=False)

    @classmethod
    def from_settings(cls, settings: MetricsSettings) -> MetricsAccess:
        return cls(
            enabled=settings.enabled,
            networks=tuple(ipaddress.ip_network(n, strict=False) for n in settings.allow_networks),
            token=settings.bearer_token,
        )

    def allows(self, remote_ip: str | None, authorization: str | None) -> bool:
        if self.token and authorization is not None:
            scheme, _, given = authorization.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                return True
        try:
            address = ipaddress.ip_address(remote_ip or "")
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)


class Readiness:
    """Can this worker serve: database reachable, schema at the newest migration.

    `breaker_states` is the hook through which the services report each school
    system's circuit breaker ("closed", "half_open", "open"); readiness shows
    them but does not depend on them (answers from the cache still work).
    `storage` reports whether writes are failing (kept for later) and whether
    the worker is serving degraded, from memory; failing writes make it not
    ready (a full disk leaves reads working), while it still answers what it
    can from memory.
    """

    def __init__(
        self,
        engine: AsyncEngine | None,
        timeout_s: float,
        breaker_states: Callable[[], Mapping[str, str]] = default_breaker_states,
        storage: Callable[[], StorageState] | None = None,
        head_revision: str | None = None,
    ) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self.breaker_states = breaker_states
        self.storage = storage or (lambda: StorageState())
        # The newest migration, which the database must be at to be ready.
        self._head = head_revision

    async def check(self) -> dict[str, Any]:
        """{"ready", "database", "migrations", "school"}; never raises."""
        database, migrations = "ok", "current"
        ready = True
        if self._engine is None:
            database, migrations, ready = "not configured", "unknown", False
        else:
            try:
                async with asyncio.timeout(self._timeout_s), self._engine.connect() as conn:
                    revision = (
                        await conn.execute(text("SELECT version_num FROM alembic_version"))
                    ).scalar()
                head = self._head
                if revision != head:
                    migrations, ready = f"at {revision}, newest is {head}", False
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                database, migrations, ready = f"unreachable ({reason})", "unknown", False
        storage = self.storage()
        writes = "failing" if storage.writes_failing else "ok"
        return {
            "ready": ready and writes == "ok",
            "degraded": database != "ok" or storage.degraded or writes != "ok",
            "database": database,
            "migrations": migrations,
            "writes": writes,
            "deferred_writes": storage.deferred_writes,
            "school": dict(self.breaker_states()),
        }


@dataclass(frozen=True, slots=True)
class StorageState:
    """What the services say about storage: writes waiting for it, serving from memory."""

    deferred_writes: int = 0
    degraded: bool = False
    # Writes wait, or one was refused moments ago (a nearly full disk takes some
    # writes and refuses others: the queue alone would flicker).
    writes_failing: bool = False


@dataclass(frozen=True, slots=True)
class OpsDeps:
    """What the operations handlers (/readyz, /metrics, /debug/block) need."""

    readiness: Readiness = field(default_factory=lambda: Readiness(None, 1.0))
    metrics: MetricsAccess = field(default_factory=MetricsAccess)
    debug_block_route: bool = False


def make_ops_deps(
    settings: Settings,
    engine: AsyncEngine,
    breaker_states: Callable[[], Mapping[str, str]] = default_breaker_states,
    storage: Callable[[], StorageState] | None = None,
    head_revision: str | None = None,
) -> OpsDeps:
    return OpsDeps(
        readiness=Readiness(
            engine, settings.database.connect_timeout_s, breaker_states, storage, head_revision
        ),
        metrics=MetricsAccess.from_settings(settings.metrics),
        debug_block_route=settings.debug.block_route and settings.mode != "production",
    )
