"""Who is asking: a registered client (a gateway, an app's backend, a campus NAT), known by
its API key or its addresses, else an anonymous address.

    Caller            one request's asker: what its limits count against and what its
                      access line names
    RegisteredClient  an operator-registered client, with its own quotas and failure budget
    ClientRegistry    a worker's copy of the `clients` table, read again every
                      `clients.refresh_s` (a revoked key stops working within that)

A registered client speaks for many students: its requests count against its
own quotas, not its address's, and wrong passwords behind it lock out only
their student (its own failure budget slows it down instead). Only a
registered client may name the end user's address (`Forwarded` or
`X-Forwarded-For`), which its access lines then carry. An API key is 256
random bits shown once; only its SHA-256 is stored (a fast hash suffices for a
random secret that long).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Client
from db.tokens import live_clients
from services.addresses import Network, address_key, parse_address
from settings import ClientsSettings

log = logging.getLogger("jnufm.clients")

KEY_PREFIX: Final = "jnufm_"
NAME_SHAPE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def new_key() -> str:
    """A new API key: a recognisable prefix (secret scanners look for it) and 256 bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class RegisteredClient:
    """A client an operator registered, with the quotas that apply to it."""

    name: str
    networks: tuple[Network, ...]
    requests_per_s: float
    burst: float
    school_requests_per_s: float  # 0: no fixed cap (a fair share of the budget)
    school_burst: float
    failures_max: int


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent one request."""

    ip: str  # the client's address (behind a trusted proxy, the one it names)
    address: str  # what per-address limits count (IPv6: its network)
    client: RegisteredClient | None = None
    end_user: str = ""  # the end user's address, as a registered client passed it on

    @property
    def scope(self) -> str:
        """What its limits count against: "client" (registered) or "ip"."""
        return "client" if self.client is not None else "ip"

    @property
    def subject(self) -> str:
        """The client's name, or the address."""
        return self.client.name if self.client is not None else self.address

    @property
    def key(self) -> str:
        """Its key in the per-host tables and the fair share of the school budget."""
        return f"c|{self.client.name}" if self.client is not None else f"a|{self.address}"


def anonymous(ip: str, ipv6_prefix: int = 64) -> Caller:
    """An unregistered caller at this address."""
    return Caller(ip, address_key(ip, ipv6_prefix))


@dataclass(slots=True)
class _Snapshot:
    by_hash: dict[str, RegisteredClient] = field(default_factory=dict)
    by_network: list[tuple[Network, RegisteredClient]] = field(default_factory=list)
    by_name: dict[str, RegisteredClient] = field(default_factory=dict)


class ClientRegistry:
    """Registered clients, as this worker last read them from the database."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: ClientsSettings,
        ipv6_prefix: int = 64,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._ipv6_prefix = ipv6_prefix
        self._snapshot = _Snapshot()
        self._timer: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read the table again (the last good copy stays if the database fails)."""
        try:
            async with self._sessions() as db:
                rows = await live_clients(db)
        except SQLAlchemyError as exc:
            log.warning("could not read registered clients (%s); keeping the last list", exc)
            return
        snapshot = _Snapshot()
        for row in rows:
            client = self._client(row)
            snapshot.by_name[client.name] = client
            if row.key_hash:
                snapshot.by_hash[row.key_hash] = client
            snapshot.by_network.extend((net, client) for net in client.networks)
        # Most specific network first: a client registered for one address wins over
        # one registered for its whole network.
        snapshot.by_network.sort(key=lambda pair: -pair[0].prefixlen)
        self._snapshot = snapshot

    def _client(self, row: Client) -> RegisteredClient:
        d = self._settings
        return RegisteredClient(
            name=row.name,
            networks=parse_networks(row.addresses),
            requests_per_s=row.requests_per_s or d.requests_per_s,
            burst=row.burst or d.burst,
            school_requests_per_s=(
                d.school_requests_per_s
                if row.school_requests_per_s is None
                else row.school_requests_per_s
            ),
            school_burst=row.school_burst or d.school_burst,
            failures_max=row.failures_max or d.failures_max,
        )

    def start(self) -> None:
        """Read the table again every `clients.refresh_s` from now on, until `stop`."""
        if self._timer is None:
            self._timer = asyncio.ensure_future(self._every())

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self._settings.refresh_s)
            await self.refresh()

    async def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    def caller(self, peer_ip: str, api_key: str | None, forwarded: str | None) -> Caller:
        """Who sent a request from `peer_ip` (already resolved through trusted proxies),
        with this `X-Api-Key` and this end-user address header."""
        snapshot = self._snapshot
        client = None
        if api_key:
            # Looked up by its hash: a dictionary lookup on a digest leaks nothing useful
            # about the key through timing.
            client = snapshot.by_hash.get(key_hash(api_key.strip()))
        if client is None and snapshot.by_network:
            parsed = parse_address(peer_ip)
            if parsed is not None:
                for net, registered in snapshot.by_network:
                    if parsed.version == net.version and parsed in net:
                        client = registered
                        break
        address = address_key(peer_ip, self._ipv6_prefix)
        if client is None:
            return Caller(peer_ip, address)
        end_user = end_user_address(forwarded) if forwarded else ""
        return Caller(peer_ip, address, client, end_user)

    def failures_max_of(self, name: str) -> int:
        """A registered client's failure budget (the default for one no longer listed)."""
        client = self._snapshot.by_name.get(name)
        return client.failures_max if client is not None else self._settings.failures_max


def parse_networks(text: str) -> tuple[Network, ...]:
    """CIDR networks from a space- or comma-separated list; raises ValueError naming a bad one."""
    nets = []
    for part in re.split(r"[\s,]+", text.strip()):
        if part:
            try:
                nets.append(ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"{part!r} is not an address or CIDR network") from None
    return tuple(nets)


_FORWARDED_FOR = re.compile(r'(?i)(?:^|[;,\s])for\s*=\s*"?([^";,\s]+)"?')


def end_user_address(header: str) -> str:
    """The end user's address from `Forwarded: for=...` (RFC 7239) or `X-Forwarded-For`
    (the first entry: the registered client put it there); "" if none is an address."""
    match = _FORWARDED_FOR.search(header)
    candidate = match.group(1) if match else header.split(",")[0]
    parsed = parse_address(candidate)
    return "" if parsed is None else str(parsed)


def check_name(name: str) -> str:
    if not NAME_SHAPE.fullmatch(name):
        raise ValueError(
            "a client's name is 1-64 of A-Z a-z 0-9 . _ - (starting with a letter or digit)"
        )
    return name
