"""Build one worker's watches (services/watches/): the store the API and the chat make
watches in, the scheduler that polls them on the school's spare capacity, and the
outbox's delivery through each configured channel."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.config import WeChatAccount
from channels.wechat.customer import CustomerMessages
from channels.wechat.notify import WeChatDeliverer
from services.pipeline import utc_now
from services.rates import RequestRateLimiter, SharedRateTable
from services.tokens import TokenStore
from services.vault import SessionVault
from services.watches.email import EmailDeliverer, smtp_password
from services.watches.outbox import Deliverer, OutboxDelivery
from services.watches.scheduler import WatchScheduler, WatchTargets
from services.watches.store import WatchStore
from services.watches.webhook import WebhookDeliverer
from settings import ConfigError, Settings
from systems.academic.service import AcademicService
from systems.card.service import CardService


@dataclass(frozen=True, slots=True)
class WatchParts:
    store: WatchStore
    scheduler: WatchScheduler
    delivery: OutboxDelivery
    webhook: WebhookDeliverer
    # The webhook's HTTP client when made here (closed with the rest), None: its own.
    http: httpx.AsyncClient | None = None

    def start(self) -> None:
        self.scheduler.start()
        self.delivery.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.delivery.stop()
        await self.webhook.aclose()
        if self.http is not None:
            await self.http.aclose()


def watch_store(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> WatchStore:
    """Where watches are made (the API, the chat) and polled from."""
    return WatchStore(sessions, settings, SessionVault(settings.secret_key.encode()), utc_now)


def build_watches(
    settings: Settings,
    store: WatchStore,
    sessions: async_sessionmaker[AsyncSession],
    tokens: TokenStore,
    rates: SharedRateTable,
    card: CardService | None,
    academic: AcademicService | None,
    students_waiting: Callable[[str], bool],
    customer: CustomerMessages | None = None,
    wechat_accounts: Iterable[WeChatAccount] = (),
    budgets: Mapping[str, int] | None = None,
    tls: ssl.SSLContext | None = None,
) -> WatchParts:
    """Raises ConfigError (the SMTP password file cannot be read).

    tls: the TLS context of the webhook's client (one made before the fork and shared
    by the workers; None: httpx makes one, loading the CA bundle in this process)."""
    config = settings.watches
    vault = SessionVault(settings.secret_key.encode())
    # The watches' own ceiling at the school, over the host's workers.
    ceiling = RequestRateLimiter(
        rates,
        config.school_requests_per_min / 60.0,
        2.0,
        namespace="watch|",
        message="the watches' share of the school is spent",
    )
    scheduler = WatchScheduler(
        store,
        tokens,
        WatchTargets(card, academic, students_waiting, dict(budgets or {})),
        ceiling,
        settings,
    )
    http = None
    if tls is not None:
        # As the deliverer makes its own, but on the shared context.
        http = httpx.AsyncClient(
            verify=tls, trust_env=False, follow_redirects=False, timeout=config.webhook_timeout_s
        )
    webhook = WebhookDeliverer(config, http)
    deliverers: list[Deliverer] = [webhook]
    if config.smtp.host:
        try:
            password = smtp_password(config.smtp, dict(os.environ))
        except OSError as exc:
            raise ConfigError(f"watches.smtp.password_file: cannot read ({exc.strerror})") from None
        deliverers.append(EmailDeliverer(config.smtp, password))
    if customer is not None:
        deliverers.append(WeChatDeliverer(customer, wechat_accounts))
    delivery = OutboxDelivery(sessions, vault, config, deliverers)
    return WatchParts(store, scheduler, delivery, webhook, http)
