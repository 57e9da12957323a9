"""Build one worker's WeChat channel (channels/wechat/) from the settings: each
configured account's protocol endpoint on a replay guard the workers share, the chat on
the school systems' services, the shared message records, the customer message client
and the per-follower allowance."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from channels.wechat.chat import Chat
from channels.wechat.config import WeChatAccount
from channels.wechat.customer import CustomerMessages
from channels.wechat.endpoint import AccountEndpoint
from channels.wechat.records import MessageRecords
from channels.wechat.replay import MemoryNonceStore, ReplayGuard
from channels.wechat.responder import Responder
from channels.wechat.service import WeChatService
from channels.wechat.shared_nonces import SharedNonceStore
from services.leases import LeaseStore
from services.pipeline import utc_now
from services.rates import RequestRateLimiter, SharedRateTable
from services.watches.store import WatchStore
from services.wechat_followers import Followers
from settings import Settings
from systems.academic.service import AcademicService
from systems.card.service import CardService
from systems.library.service import LibraryService


@dataclass(frozen=True, slots=True)
class WeChatParts:
    service: WeChatService
    http: httpx.AsyncClient
    # The customer message API: late answers, and watches' messages (runtime/watches.py).
    customer: CustomerMessages

    async def close(self, grace_s: float) -> None:
        await self.service.responder.aclose(grace_s)
        await self.http.aclose()


def build_wechat(
    settings: Settings,
    accounts: Mapping[str, WeChatAccount],
    followers: Followers,
    sessions: async_sessionmaker[AsyncSession],
    leases: LeaseStore,
    rates: SharedRateTable | None,
    card: CardService | None,
    academic: AcademicService | None,
    library: LibraryService | None,
    watches: WatchStore | None = None,
    tls: ssl.SSLContext | None = None,
) -> WeChatParts:
    """tls: the TLS context of the API client (one made before the fork and shared by the
    workers; None: httpx makes one, loading the CA bundle in this process)."""
    wechat = settings.wechat
    secret = settings.secret_key.encode()
    guard = ReplayGuard(
        SharedNonceStore(MemoryNonceStore(wechat.seen_nonces_max), leases), wechat.replay_window_s
    )
    endpoints = {
        name: AccountEndpoint(account, guard, wechat.max_body_bytes)
        for name, account in accounts.items()
    }
    http = httpx.AsyncClient(
        verify=tls if tls is not None else True,
        timeout=httpx.Timeout(wechat.api_timeout_s),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        follow_redirects=False,
        trust_env=False,
    )
    limit = None
    if rates is not None and settings.limits.enabled:
        allowance = RequestRateLimiter(
            rates,
            wechat.per_follower_per_min / 60.0,
            max(1.0, wechat.per_follower_per_min / 2),
            namespace="wechat|",
            message="this follower sends too many messages",
        )
        limit = allowance.check_subject
    chat = Chat(followers, card, academic, library, settings.public_base_url(), utc_now, watches)
    customer = CustomerMessages(sessions, http, wechat, secret, utc_now)
    responder = Responder(
        chat, MessageRecords(sessions, secret, utc_now), wechat, customer, limit, utc_now
    )
    return WeChatParts(WeChatService(endpoints, responder), http, customer)
