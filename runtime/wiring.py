"""The app factory: build one worker's services and handlers' dependencies from the
settings, after the fork. It sits above everything it builds (handlers, services,
storage, every registered school system (systems/), observability) and nothing below
imports it."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from channels.wechat.config import WeChatAccount, load_accounts
from db.engine import make_engine, make_sessionmaker
from db.revision import head_revision
from handlers.base import AppDeps, WorkerState
from leanweb import Compression
from observability.probes import StorageState, make_ops_deps
from observability.timing import instrument_engine
from runtime.connections import ConnectionTable
from runtime.watches import WatchParts, build_watches, watch_store
from runtime.wechat import WeChatParts, build_wechat
from school.config import SystemConfig
from services.accounts import AccountService
from services.breaker import BreakerTable
from services.budget import slot_linger
from services.callers import ClientRegistry
from services.canary import Canary, CanaryTargets
from services.captures import PageCaptures
from services.credentials import pseudonym
from services.deferred import DeferredWrites, HostWrites, WriteHealth
from services.gate import CredentialGate, GateStore
from services.lockout import GateTable, OutageTable
from services.pipeline import (
    Connector,
    Pipeline,
    SystemSpec,
    build_pipeline,
    utc_now,
)
from services.rates import RequestRateLimiter, SharedRateTable
from services.retention import Retention
from services.sessions import SessionService
from services.shared_cache import open_shared_cache
from services.storage import Storage
from services.tokens import TokenStore
from services.vault import SessionVault
from services.wechat_followers import Followers
from settings import Settings
from systems import SYSTEMS
from systems.academic.service import AcademicService
from systems.card.service import CardService
from systems.library.service import LibraryService
from systems.parts import WorkerParts, service_of

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class WorkerServices:
    """What a worker serves with, what to do once it runs, and how to release it at the end."""

    deps: AppDeps
    recover: Callable[[], Awaitable[None]]
    close: Callable[[], Awaitable[None]]
    canary: Canary | None = None  # None: `canary.enabled` is false


# One TLS context for every outgoing client (the school's, the watches' webhooks, the
# WeChat API; the CA bundle loaded once, ~1.2 MB each), made at import, in the master
# before the fork: the workers share its pages.
SCHOOL_TLS = httpx.create_ssl_context()


def make_http_client(system: SystemConfig) -> httpx.AsyncClient:
    """One school system's HTTP client: its own connection pool and timeouts."""
    return httpx.AsyncClient(
        verify=SCHOOL_TLS,
        timeout=httpx.Timeout(system.total_timeout_s, connect=system.connect_timeout_s),
        limits=httpx.Limits(
            max_connections=system.max_connections,
            max_keepalive_connections=system.max_connections,
        ),
        follow_redirects=False,
        trust_env=False,
    )


def preload(settings: Settings) -> None:
    """Import and build in the master, before the fork, what every worker would otherwise
    import or build on its first request: loaded once and shared, not once per worker.

    Found with `python -X importtime server.py` and a request of every kind: what was
    imported after the fork. Each worker's first cold request cost ~10 MB of its own
    memory before this (docs/benchmarks.md, "Memory").
    """
    import codecs

    import anyio
    import anyio._backends._asyncio  # anyio's backend, imported on its first use
    import anyio.abc
    import anyio.lowlevel
    import anyio.streams.tls
    import h11  # noqa: F401
    import httpcore
    import httpcore._backends.anyio  # noqa: F401  (httpx's default async transport)
    import lmdb._envid  # noqa: F401  (lmdb's, on the first environment opened)
    import prometheus_client
    import prometheus_client.multiprocess  # noqa: F401
    import sniffio  # noqa: F401
    import tornado.platform.asyncio  # noqa: F401  (each worker's IOLoop on its event loop)
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from PIL import Image
    from sqlalchemy.orm import configure_mappers

    # anyio imports its parts on first use of a name (httpcore's async backend uses these).
    for name in (
        "connect_tcp",
        "create_memory_object_stream",
        "create_task_group",
        "get_current_task",
        "EndOfStream",
        "TypedAttributeSet",
    ):
        getattr(anyio, name)
    # The school's pages come in GBK (decoded as GB18030); BOM-marked UTF-8 files.
    for name in ("gbk", "gb2312", "gb18030", "utf-8-sig", "ascii"):
        codecs.lookup(name)
    # The image formats Image.open tries first (captchas are GIF/JPEG/BMP, covers any).
    Image.preinit()
    # Each school system's own (the academic office's captcha glyphs, the card
    # center's keypad faces), with every module of it the workers will use.
    for system in SYSTEMS:
        system.assembly().preload()
    # cryptography sets OpenSSL up on first use (each worker's session vault: ~1.7 MB
    # of its own pages), SQLAlchemy its ORM mappers on the first query (~1.3 MB).
    AESGCM(bytes(32)).encrypt(bytes(12), b"", None)
    configure_mappers()
    # The OpenAPI document, built and gzipped once per process (handlers/docs.py): every
    # worker's application asks for it at start, ~8 MB of its own pages when built there.
    from handlers import docs

    # Cached by the arguments as given: make_app's call, then the document handler's.
    docs.openapi_gzipped()
    docs.openapi_gzipped(settings.mode == "production")
    if settings.event_loop == "uvloop":
        import uvloop  # noqa: F401  (each worker makes its own loop after the fork)

    engine = make_engine(settings.database)  # loads the dialect and its driver; connects not
    engine.sync_engine.dispose()


# /readyz says writes are failing for this long after one was refused.
WRITE_FAILURE_MEMORY_S = 5.0
# Students whose log pseudonym a worker keeps (about 150 bytes each).
PSEUDONYMS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class HostTables:
    """Memory shared by every worker of a host: made in the master, before the fork."""

    rates: SharedRateTable
    gate: GateTable
    outage: OutageTable
    breakers: BreakerTable
    writes: HostWrites
    connections: ConnectionTable

    def close(self) -> None:
        for table in (self.rates, self.gate, self.outage, self.breakers, self.writes):
            table.close()
        self.connections.close()


def make_host_tables(settings: Settings) -> HostTables:
    limits = settings.limits
    return HostTables(
        rates=SharedRateTable.create(limits.rate_table_slots),
        gate=GateTable.create(limits.gate_table_slots),
        # Only subjects that fail while the database is away: a quarter is plenty.
        outage=OutageTable.create(max(64, limits.gate_table_slots // 4)),
        breakers=BreakerTable.create(64),
        writes=HostWrites.make(),
        connections=ConnectionTable.create(settings.connections.table_slots),
    )


async def build_worker_services(
    settings: Settings, worker_index: int = 0, host_tables: HostTables | None = None
) -> WorkerServices:
    """The engine, HTTP client and services of one worker, on the running event loop.

    Without tables from the master (tests, `processes: 1`), the worker makes its own.
    """
    engine = make_engine(settings.database)
    # Statement time counts as "db" in the current request's Server-Timing.
    instrument_engine(engine.sync_engine)
    sessions = make_sessionmaker(engine)
    clients = {name: make_http_client(system) for name, system in settings.school.systems().items()}
    limits = settings.limits
    tables = host_tables or make_host_tables(settings)
    db = settings.database
    deferred = DeferredWrites(db.deferred_writes, db.deferred_retry_s, WriteHealth(tables.writes))
    limiter = None
    school_limiter = None
    slowed = None
    if limits.enabled:
        limiter = RequestRateLimiter(
            tables.rates, limits.requests_per_s, limits.burst, ipv6_prefix=limits.ipv6_prefix
        )
        # Its rate applies to addresses only where limits.school_requests_per_s is set; a
        # registered client's own quota is given with each check.
        school_limiter = RequestRateLimiter(
            tables.rates,
            limits.school_requests_per_s or settings.clients.school_requests_per_s or 1.0,
            limits.school_burst,
            ipv6_prefix=limits.ipv6_prefix,
            namespace="school|",
            message="too many queries from this client need the school; slow down",
        )
        slowed = RequestRateLimiter(
            tables.rates,
            settings.clients.slowed_logins_per_min / 60.0,
            1,
            namespace="slowed|",
            message="this client is slowed down",
        )
    secret = settings.secret_key.encode()
    token_store = TokenStore(sessions, settings.tokens, SessionVault(secret), utc_now)
    gate = CredentialGate(
        GateStore(sessions, deferred.health),
        tables.gate,
        limits,
        secret,
        outage=tables.outage,
        deferred=deferred,
        slowed=slowed,
        on_password_change=token_store.forget,
    )
    # Opened here, after the fork: an LMDB environment must not cross one.
    shared_cache = open_shared_cache(settings.cache, settings.database.url)
    storage = Storage(sessions, settings, deferred, utc_now, shared_cache)
    retention = Retention(sessions, storage.leases, settings, utc_now)
    page_captures = PageCaptures(sessions, settings.captures, utc_now)
    state = WorkerState()

    def pipeline(spec: SystemSpec, connector: Connector[S] | None) -> Pipeline[S]:
        """A school system on the shared pipeline: this worker's storage, limits and, for
        a system with passwords, the credential gate."""
        return build_pipeline(
            spec,
            connector,
            storage,
            settings,
            gate if spec.takes_password else None,
            school_limiter=school_limiter,
            stop_by=lambda: state.stop_by,
            breakers=tables.breakers,
            captures=page_captures,
        )

    # Every registered school system builds itself from this worker's parts.
    parts = WorkerParts(settings, clients, pipeline)
    built = {system.name: system.assembly().build(parts) for system in SYSTEMS}
    pipelines: list[Pipeline[Any]] = [p for b in built.values() for p in b.pipelines]
    services = {name: b.service for name, b in built.items()}
    # The parts of the server that depend on a system by type: students' sessions (the
    # card center, the academic office), the 2013 accounts (the academic office).
    card_service = service_of(services, "card", CardService)
    academic_service = service_of(services, "academic", AcademicService)
    registry = ClientRegistry(sessions, settings.clients, limits.ipv6_prefix)

    def students_waiting(system: str) -> bool:
        """Whether students of this worker wait for a system's budget: the canary and
        the watches, which use only what students leave, wait then."""
        students = built.get(system)
        return students is not None and any(p.budget.waiting for p in students.pipelines)

    canary: Canary | None = None
    canary_pipelines: list[Pipeline[Any]] = []
    if settings.canary.enabled:
        # The canary's own services, on pipelines that take no cached answer and let
        # none stand in (services/canary.py); budget slots, breakers, gate and quota
        # are the students'.
        uncached = settings.model_copy(
            update={"cache": settings.cache.model_copy(update={"enabled": False})}
        )

        def canary_pipeline(spec: SystemSpec, connector: Connector[S] | None) -> Pipeline[S]:
            return build_pipeline(
                spec,
                connector,
                storage,
                uncached,
                gate if spec.takes_password else None,
                school_limiter=school_limiter,
                stop_by=lambda: state.stop_by,
                breakers=tables.breakers,
                captures=page_captures,
            )

        watched = WorkerParts(settings, clients, canary_pipeline)
        probes = {system.name: system.assembly().build(watched) for system in SYSTEMS}
        canary_pipelines = [p for b in probes.values() for p in b.pipelines]
        probe_services = {name: b.service for name, b in probes.items()}

        canary = Canary(
            CanaryTargets(
                card=service_of(probe_services, "card", CardService),
                academic=service_of(probe_services, "academic", AcademicService),
                library=service_of(probe_services, "library", LibraryService),
                students_waiting=students_waiting,
            ),
            storage.leases,
            settings,
        )
    accounts = None
    if settings.accounts.enabled:
        accounts = AccountService(sessions, settings, token_store, academic_service)
    student_sessions = SessionService(token_store, card_service, academic_service)
    # Students' watches, made through the API or the chat.
    watches = watch_store(settings, sessions) if settings.watches.enabled else None
    # WeChat followers bound to students, when an official account is configured.
    followers = None
    wechat_accounts: tuple[WeChatAccount, ...] = ()
    wechat: WeChatParts | None = None
    if settings.wechat.accounts:
        wechat_accounts = load_accounts(
            settings.wechat, os.environ, production=settings.mode == "production"
        )
        by_name = {account.name: account for account in wechat_accounts}
        followers = Followers(
            sessions,
            token_store,
            student_sessions,
            by_name,
            settings.wechat,
            secret,
            settings.public_base_url(),
        )
        # The accounts' callback URLs: the protocol, the chat, late answers.
        wechat = build_wechat(
            settings,
            by_name,
            followers,
            sessions,
            storage.leases,
            tables.rates,
            card_service,
            academic_service,
            service_of(services, "library", LibraryService),
            watches,
            tls=SCHOOL_TLS,
        )
    watch_parts: WatchParts | None = None
    if watches is not None:
        # Polled on the school's spare capacity; their messages delivered by channel.
        watch_parts = build_watches(
            settings,
            watches,
            sessions,
            token_store,
            tables.rates,
            card_service,
            academic_service,
            students_waiting,
            wechat.customer if wechat is not None else None,
            wechat_accounts,
            {p.spec.system: p.spec.budget for p in pipelines},
            tls=SCHOOL_TLS,
        )
    deps = AppDeps(
        card=card_service,
        academic=academic_service,
        tokens=token_store,
        sessions=student_sessions,
        followers=followers,
        wechat=wechat.service if wechat is not None else None,
        watches=watches,
        accounts=accounts,
        clients=registry,
        ipv6_prefix=limits.ipv6_prefix,
        # Once per student per worker, not per request (an HMAC): the same students ask again.
        pseudonym=functools.lru_cache(PSEUDONYMS_KEPT)(functools.partial(pseudonym, secret)),
        lockouts=lambda: gate.lockouts(registry.failures_max_of),
        page_captures=page_captures,
        library=service_of(services, "library", LibraryService),
        systems=services,
        school_budgets={p.spec.system: p.spec.budget for p in pipelines},
        state=state,
        retry_after_s=settings.api.retry_after_s,
        worker_index=worker_index,
        rate_limiter=limiter,
        trusted_proxies=limits.trusted_networks,
        legacy_body=settings.api.legacy_body,
        public_url=settings.public_base_url(),
        mode=settings.mode,
        cors_origins=frozenset(settings.api.cors_origins),
        cors_max_age_s=settings.api.cors_max_age_s,
        compression=Compression(settings.api.gzip_min_bytes, settings.api.gzip_level)
        if settings.api.gzip_min_bytes
        else None,
        ops=make_ops_deps(
            settings,
            engine,
            breaker_states=lambda: {p.spec.system: p.breaker.state for p in pipelines},
            storage=lambda: StorageState(
                len(deferred),
                degraded=not gate.storage_ok,
                writes_failing=deferred.failing(WRITE_FAILURE_MEMORY_S),
            ),
            head_revision=head_revision(),
        ),
    )

    async def recover() -> None:
        """Free the school budget and student leases this host's dead processes held
        (a killed worker's slots once its requests can no longer be at the school,
        services/budget.py), and read the registered clients before the first request.
        Then prune in the background."""
        await storage.leases.release_dead_holders(
            slot_linger({p.budget.system: p.budget.in_flight_s for p in pipelines})
        )
        await registry.refresh()
        registry.start()
        retention.start()
        if canary is not None:
            canary.start()
        if watch_parts is not None:
            watch_parts.start()

    async def close() -> None:
        if wechat is not None:
            await wechat.close(settings.shutdown_grace_s)  # its late answers go out first
        await retention.stop()
        if canary is not None:
            await canary.stop()
        if watch_parts is not None:
            await watch_parts.stop()
        await registry.stop()
        for pipeline in [*pipelines, *canary_pipelines]:
            await pipeline.aclose(settings.shutdown_grace_s)
        await deferred.drain(settings.shutdown_grace_s)
        await token_store.aclose()
        for http in clients.values():
            await http.aclose()
        await engine.dispose()
        if shared_cache is not None:
            shared_cache.close()  # after the pipelines and deferred writes that write it
        if host_tables is None:
            tables.close()  # made here, not inherited from the master

    return WorkerServices(deps, recover, close, canary)
