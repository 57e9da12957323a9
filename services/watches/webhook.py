"""The webhook channel: a watch's notice POSTed as JSON to the client's URL, signed.

    POST <url>
    Content-Type: application/json; charset=utf-8
    X-Jnufm-Event: <event_key>          the same for every delivery of one event
    X-Jnufm-Timestamp: <Unix seconds>
    X-Jnufm-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the watch's secret>

    {"event_key", "watch_id", "student_id", "kind", "title", "text", "text_en",
     "facts", "seen_at", "sent_at"}

(docs/webhooks.md shows how a receiver checks it.) What the receiver answered decides:

    2xx                                   delivered
    408, 429, 5xx, a timeout, no connection   retry later
    other 4xx, 3xx (redirects are not followed), a URL refused   give up

A URL is checked again at each send: https only, and its host resolved and refused if
any address is loopback, private, link-local, multicast or otherwise not public,
unless `watches.webhook_allow_private` (development, tests). The request then goes to
the address that was checked (the name kept for TLS and the Host header), so a name
that resolves elsewhere a moment later cannot turn it inward. No environment proxy,
no redirect, at most webhook_timeout_s in all; the answer's body is not read past
MAX_BODY bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import httpx

from services.watches.notices import Notice
from services.watches.outbox import Outcome, Target
from settings import WatchesSettings

# Bytes of an answer's body read at most (then the connection is closed).
MAX_BODY: Final = 4096
USER_AGENT: Final = "jnufm-webhook/1"
# Statuses worth trying again: the receiver is busy, slow or down for now.
RETRY_STATUSES: Final = frozenset({408, 429})

Resolver = Callable[[str, int], Awaitable[list[str]]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def utc_now() -> datetime:
    return datetime.now(UTC)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Jnufm-Signature value of a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def notice_body(notice: Notice, sent_at: datetime) -> bytes:
    """The JSON a receiver gets (UTF-8, the characters as they are)."""
    data = {
        "event_key": notice.event_key,
        "watch_id": notice.watch_id,
        "student_id": notice.student_id,
        "kind": notice.kind,
        "title": notice.title,
        "text": notice.text,
        "text_en": notice.text_en,
        "facts": notice.facts,
        "seen_at": notice.seen_at,
        "sent_at": sent_at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def public_address(address: IpAddress) -> bool:
    """Whether an address is one of the Internet's (not this host's, a private network's,
    link-local, multicast, reserved or unspecified)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


@dataclass(frozen=True, slots=True)
class WebhookUrl:
    """A webhook URL taken apart."""

    scheme: str
    host: str
    port: int


def url_problem(url: str, allow_private: bool) -> str | None:
    """Why a URL cannot be a webhook's (before any name is resolved), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port out of range)
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "not an http(s) URL"
    if parts.scheme != "https" and not allow_private:
        return "not https"
    if parts.username is not None or parts.password is not None:
        return "a URL with a user name or password"
    return None


def split_url(url: str) -> WebhookUrl:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return WebhookUrl(parts.scheme, parts.hostname or "", parts.port or default)


async def resolve(host: str, port: int) -> list[str]:
    """Every address a name resolves to (OSError when it does not)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return sorted({str(info[4][0]) for info in infos})


class WebhookDeliverer:
    """The webhook channel (see the module docstring)."""

    channel: Final = "webhook"

    def __init__(
        self,
        settings: WatchesSettings,
        http: httpx.AsyncClient | None = None,
        now: Callable[[], datetime] = utc_now,
        resolver: Resolver = resolve,
    ) -> None:
        self._timeout_s = settings.webhook_timeout_s
        self._allow_private = settings.webhook_allow_private
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(
            trust_env=False, follow_redirects=False, timeout=settings.webhook_timeout_s
        )
        self._now = now
        self._resolve = resolver

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def deliver(self, target: Target, notice: Notice) -> Outcome:
        url = target.address
        problem = url_problem(url, self._allow_private)
        if problem is not None:
            return Outcome.give_up(f"webhook URL refused: {problem}")
        if not target.secret:
            return Outcome.give_up("the watch has no signing secret")
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self._post(url, target.secret, notice)
        except TimeoutError:
            return Outcome.retry(f"no answer within {self._timeout_s:g} s")

    async def _post(self, url: str, secret: str, notice: Notice) -> Outcome:
        where = split_url(url)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        extensions: dict[str, str] = {}
        request_url = httpx.URL(url)
        if not self._allow_private:
            try:
                addresses = await self._resolve(where.host, where.port)
            except OSError:
                return Outcome.retry("the webhook's host name does not resolve")
            refused = [a for a in addresses if not public_address(ipaddress.ip_address(a))]
            if not addresses or refused:
                return Outcome.give_up("webhook URL refused: a private or local address")
            # Sent to the address checked; the name stays for TLS (SNI, the certificate)
            # and Host. A fresh connection each time: a pooled one to the same address
            # may have been opened for another name.
            request_url = request_url.copy_with(host=addresses[0])
            headers["Host"] = _host_header(where)
            headers["Connection"] = "close"
            extensions["sni_hostname"] = where.host
        sent_at = self._now()
        body = notice_body(notice, sent_at)
        timestamp = str(int(sent_at.timestamp()))
        headers["X-Jnufm-Event"] = notice.event_key
        headers["X-Jnufm-Timestamp"] = timestamp
        headers["X-Jnufm-Signature"] = sign(secret, timestamp, body)
        request = self._http.build_request(
            "POST", request_url, content=body, headers=headers, extensions=extensions
        )
        try:
            response = await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            return Outcome.retry(f"no answer within {self._timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Outcome.retry(f"the receiver cannot be reached ({type(exc).__name__})")
        try:
            await _drain(response)
        finally:
            await response.aclose()
        return judge(response.status_code)


def _host_header(where: WebhookUrl) -> str:
    default = 443 if where.scheme == "https" else 80
    host = f"[{where.host}]" if ":" in where.host else where.host
    return host if where.port == default else f"{host}:{where.port}"


async def _drain(response: httpx.Response) -> None:
    """Read at most MAX_BODY bytes of the answer (the rest is never read)."""
    read = 0
    try:
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= MAX_BODY:
                break
    except (httpx.HTTPError, httpx.StreamError):
        pass  # the status is what counts


def judge(status: int) -> Outcome:
    """What a receiver's status means for the message."""
    if 200 <= status < 300:
        return Outcome.delivered()
    if status >= 500 or status in RETRY_STATUSES:
        return Outcome.retry(f"the receiver answered HTTP {status}")
    if 300 <= status < 400:
        return Outcome.give_up(f"the receiver answered HTTP {status} (redirects not followed)")
    return Outcome.give_up(f"the receiver answered HTTP {status}")
