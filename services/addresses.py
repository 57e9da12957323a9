"""Which address a request counts against: the peer, or the client a trusted proxy
names in X-Forwarded-For; IPv6 addresses by their network. Used by every limit
(services/rates.py, the lockouts of services/gate.py)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Final

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address

# Longer than any address with a port and an IPv6 zone; longer entries are garbage.
MAX_ADDRESS_TEXT: Final = 64


def client_ip(remote_ip: str, forwarded_for: str | None, trusted_proxies: Sequence[Network]) -> str:
    """The address a request counts against.

    X-Forwarded-For is read only when the direct peer is a trusted proxy; it
    is walked from the right (the entries proxies appended), skipping trusted
    proxies, and the first untrusted address is the client. Entries left of it
    are whatever the client sent, so they are never believed. A malformed entry
    stops the walk at the last address known to be real.
    """
    peer = parse_address(remote_ip)
    if peer is None:
        return remote_ip
    if not forwarded_for or not _is_trusted(peer, trusted_proxies):
        return str(peer)
    client = peer
    for entry in reversed(forwarded_for.split(",")):
        address = parse_address(entry)
        if address is None:
            break
        client = address
        if not _is_trusted(address, trusted_proxies):
            break
    return str(client)


def address_key(ip: str, ipv6_prefix: int) -> str:
    """What a limit counts against: an IPv4 address whole, an IPv6 address by its network.

    One IPv6 subscriber usually holds a whole /64 (or more), so counting single
    IPv6 addresses would give them 2^64 fresh counters.
    """
    if ":" not in ip:
        return ip
    return _ipv6_network(ip, ipv6_prefix)


@functools.lru_cache(maxsize=4096)
def _ipv6_network(ip: str, prefix: int) -> str:
    try:
        return str(ip_network((ip.partition("%")[0], prefix), strict=False))
    except ValueError:
        return ip


def _is_trusted(address: Address, trusted_proxies: Sequence[Network]) -> bool:
    return any(address in network for network in trusted_proxies)


# Most requests come from addresses seen moments ago; parsing one costs microseconds.
@functools.lru_cache(maxsize=4096)
def parse_address(text: str) -> Address | None:
    """An IP address from an XFF entry or a peer address; IPv4-mapped IPv6 becomes IPv4."""
    text = text.strip()
    if not text or len(text) > MAX_ADDRESS_TEXT:
        return None
    if text.startswith("["):  # [v6] or [v6]:port
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
