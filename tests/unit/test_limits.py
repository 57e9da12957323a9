"""Per-address rate limits: the shared rate table (across forked processes:
tests/component/test_rate_table_forks.py), X-Forwarded-For trust, and the limits'
configuration. (Failed logins: tests/component/test_gate.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from ipaddress import ip_network
from pathlib import Path

import pytest

from services.addresses import address_key, client_ip
from services.errors import RateLimited
from services.rates import RequestRateLimiter, SharedRateTable
from settings import ConfigError, LimitsSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WINDOW_S = 900.0


# -- the shared request rate table ------------------------------------------------


class Ticks:
    """A settable monotonic clock for the rate limiter."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> Iterator[SharedRateTable]:
    made = SharedRateTable.create(1024)
    yield made
    made.close()


def allowed(limiter: RequestRateLimiter, ip: str, tries: int) -> int:
    count = 0
    for _ in range(tries):
        try:
            limiter.check(ip)
        except RateLimited:
            continue
        count += 1
    return count


def test_burst_then_refusal_then_refill(table: SharedRateTable) -> None:
    ticks = Ticks()
    limiter = RequestRateLimiter(table, rate_per_s=4, burst=10, clock=ticks)
    assert allowed(limiter, "10.0.0.1", 25) == 10
    with pytest.raises(RateLimited) as caught:
        limiter.check("10.0.0.1")
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after_s == 1
    ticks.now += 1.0
    assert allowed(limiter, "10.0.0.1", 25) == 4
    ticks.now += 3600
    assert allowed(limiter, "10.0.0.1", 25) == 10
    # Other addresses have their own buckets.
    assert allowed(limiter, "2001:db8::1", 25) == 10


def test_workers_take_tokens_ahead_only_while_the_bucket_is_plentiful(
    table: SharedRateTable,
) -> None:
    """Two workers' limiters on one host (one table, one clock): a worker takes a few
    tokens at once while the bucket holds more than half its burst, so together they
    still pass exactly the burst; the other worker is refused only as many sooner as
    the first holds ahead."""
    ticks = Ticks()
    first = RequestRateLimiter(table, rate_per_s=0.001, burst=256, clock=ticks)
    second = RequestRateLimiter(table, rate_per_s=0.001, burst=256, clock=ticks)
    assert allowed(first, "10.0.0.5", 1) == 1  # took 4 (256 // 64): 3 held ahead
    assert allowed(second, "10.0.0.5", 400) == 252
    assert allowed(first, "10.0.0.5", 10) == 3  # what it held, then refused
    # Below half the burst, each request takes one token under the lock: nothing ahead.
    ticks.now += 100_000.0  # refilled (0.001/s)
    assert allowed(first, "10.0.0.6", 129) == 129
    assert allowed(second, "10.0.0.6", 400) == 127
    # Tokens held ahead lapse after STASH_S (never returned: the limit only tightens).
    assert allowed(first, "10.0.0.7", 1) == 1
    ticks.now += 2.0
    assert allowed(second, "10.0.0.7", 400) == 252


def test_small_bursts_never_take_tokens_ahead(table: SharedRateTable) -> None:
    ticks = Ticks()
    first = RequestRateLimiter(table, rate_per_s=0.001, burst=20, clock=ticks)
    second = RequestRateLimiter(table, rate_per_s=0.001, burst=20, clock=ticks)
    assert allowed(first, "10.0.0.8", 1) == 1
    assert allowed(second, "10.0.0.8", 40) == 19


def test_ipv6_shares_a_bucket_per_network(table: SharedRateTable) -> None:
    limiter = RequestRateLimiter(table, rate_per_s=1, burst=3, clock=Ticks())
    assert allowed(limiter, "2001:db8:5:6::1", 2) == 2
    assert allowed(limiter, "2001:db8:5:6::2", 5) == 1
    assert allowed(limiter, "2001:db8:5:7::1", 5) == 3


def test_retry_after_for_slow_rates(table: SharedRateTable) -> None:
    limiter = RequestRateLimiter(table, rate_per_s=0.25, burst=1, clock=Ticks())
    limiter.check("10.0.0.1")
    with pytest.raises(RateLimited) as caught:
        limiter.check("10.0.0.1")
    assert caught.value.retry_after_s == 4


def test_full_table_evicts_least_recently_seen() -> None:
    small = SharedRateTable.create(8)
    try:
        ticks = Ticks()
        limiter = RequestRateLimiter(small, rate_per_s=1, burst=3, clock=ticks)
        for n in range(8):
            assert allowed(limiter, f"10.0.0.{n}", 5) == 3
            ticks.now += 0.01
        # The table is full of drained buckets; a newcomer takes the stalest.
        assert allowed(limiter, "10.0.1.1", 5) == 3
        assert allowed(limiter, "10.0.0.7", 5) == 0
    finally:
        small.close()


def test_table_needs_a_chain() -> None:
    with pytest.raises(ValueError, match="at least"):
        SharedRateTable.create(4)


# -- client addresses -------------------------------------------------------------

PROXIES = [ip_network("10.0.0.0/8"), ip_network("2001:db8:1::/48")]


@pytest.mark.parametrize(
    ("remote", "xff", "expected"),
    [
        # No proxies trusted or peer untrusted: XFF is ignored, whatever it says.
        ("198.51.100.7", "1.2.3.4", "198.51.100.7"),
        ("198.51.100.7", None, "198.51.100.7"),
        # A trusted proxy: the rightmost untrusted entry is the client.
        ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "198.51.100.7, 10.1.1.1, 10.2.2.2", "198.51.100.7"),
        # Spoofed left-most entries are never believed.
        ("10.0.0.2", "6.6.6.6, 127.0.0.1, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.2", "10.3.3.3, 198.51.100.7, 10.1.1.1", "198.51.100.7"),
        # Garbage stops the walk at the last address known to be real.
        ("10.0.0.2", "garbage", "10.0.0.2"),
        ("10.0.0.2", "1.2.3.4, unknown, 10.1.1.1", "10.1.1.1"),
        ("10.0.0.2", "1.2.3.4, , 10.1.1.1", "10.1.1.1"),
        ("10.0.0.2", "999.1.1.1", "10.0.0.2"),
        ("10.0.0.2", "x" * 5000, "10.0.0.2"),
        ("10.0.0.2", "", "10.0.0.2"),
        ("10.0.0.2", "garbage, 198.51.100.7", "198.51.100.7"),
        # Ports and brackets as some proxies write them.
        ("10.0.0.2", "198.51.100.7:4711", "198.51.100.7"),
        ("10.0.0.2", "[2001:db8:9::5]:443", "2001:db8:9::5"),
        ("10.0.0.2", "[2001:db8:9::5", "10.0.0.2"),
        # IPv6 peers and proxies; IPv4-mapped addresses count as IPv4.
        ("2001:db8:1::10", "2001:db8:9::5, 2001:db8:1::11", "2001:db8:9::5"),
        ("2001:db8:2::10", "198.51.100.7", "2001:db8:2::10"),
        ("::ffff:10.0.0.2", "198.51.100.7", "198.51.100.7"),
        ("::ffff:198.51.100.7", None, "198.51.100.7"),
        # Every hop trusted: the farthest one is the client.
        ("10.0.0.2", "10.1.1.1, 10.2.2.2", "10.1.1.1"),
        # A peer that is not an IP (a Unix socket) is passed through.
        ("", "1.2.3.4", ""),
    ],
)
def test_client_ip(remote: str, xff: str | None, expected: str) -> None:
    assert client_ip(remote, xff, PROXIES) == expected


@pytest.mark.parametrize(
    ("ip", "prefix", "expected"),
    [
        ("198.51.100.7", 64, "198.51.100.7"),
        ("2001:db8:5:6:a:b:c:d", 64, "2001:db8:5:6::/64"),
        ("2001:db8:5:6:a:b:c:d", 48, "2001:db8:5::/48"),
        ("2001:db8::1", 128, "2001:db8::1/128"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("not:an:address", 64, "not:an:address"),
    ],
)
def test_address_key(ip: str, prefix: int, expected: str) -> None:
    assert address_key(ip, prefix) == expected


def test_client_ip_without_trusted_proxies() -> None:
    assert client_ip("10.0.0.2", "198.51.100.7", []) == "10.0.0.2"


# -- configuration ----------------------------------------------------------------


def test_config_yaml_documents_the_defaults() -> None:
    settings = load_settings(ROOT / "config.yaml", env={})
    assert settings.limits == LimitsSettings()
    assert settings.limits.failed_logins_max == 5
    assert settings.limits.trusted_networks == ()
    # Every other section too: config.yaml says what the server does without it.
    defaults = Settings()
    for name in Settings.model_fields:
        if name not in ("database", "cache"):  # relative paths are anchored to the file
            assert getattr(settings, name) == getattr(defaults, name), name
    assert settings.cache.shared_path == str(ROOT / defaults.cache.shared_path)
    anchored = {"shared_path": defaults.cache.shared_path}
    assert settings.cache.model_copy(update=anchored) == defaults.cache


def test_trusted_proxies_parse() -> None:
    settings = load_settings(
        None, env={}, overrides={"limits.trusted_proxies": ["10.0.0.0/8", " ::1 "]}
    )
    assert settings.limits.trusted_networks == (ip_network("10.0.0.0/8"), ip_network("::1/128"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["10.0.0.0/8", "10.0.0.300/8"], "limits.trusted_proxies: Value error, entry 1"),
        (["10.0.0.1/8"], "has host bits set"),
        (["proxy.example"], "entry 0 ('proxy.example') is not a CIDR network"),
        ([8], "limits.trusted_proxies.0: Input should be a valid string"),
        ("10.0.0.0/8", "limits.trusted_proxies: Input should be a valid tuple"),
    ],
)
def test_bad_trusted_proxies_name_the_key(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^limits\.trusted_proxies") as caught:
        load_settings(None, env={}, overrides={"limits.trusted_proxies": value})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("failed_logins_max", 0),
        ("failed_logins_window_s", 0),
        ("requests_per_s", 0),
        ("burst", 0.5),
        ("rate_table_slots", 4),
        ("ipv6_prefix", 16),
        ("requests_per_minute", 5),
    ],
)
def test_bad_limits_name_the_key(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^limits\.{key}: "):
        load_settings(None, env={}, overrides={f"limits.{key}": value})
