"""Production refuses a secret key that is short, a placeholder or not random; development
keeps working with the built-in one."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable

import pytest

from settings import DEFAULT_SECRET_KEY, ConfigError, load_settings, secret_key_weakness


def production(key: str) -> None:
    load_settings(None, env={}, overrides={"mode": "production", "secret_key": key})


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("Zq8wLp3vNx7tKc2m", "shorter than 32 characters"),
        ("kV7nQ2xR9wLp4ZtB8mYc3HsJ6dFg1Qe", "shorter than 32 characters"),
        ("please-change-me-before-deploying-it", "placeholder word 'change'"),
        ("my-very-long-production-Secret-2026!", "placeholder word 'secret'"),
        ("Password1234567890Password1234567890", "placeholder word 'password'"),
        ("x" * 40, "fewer than 8 distinct characters"),
        ("abab" * 10, "fewer than 8 distinct characters"),
        ("0123456789abcdef" * 2, "a repeated pattern"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "a sequence of characters"),
        ("aaaaaaaabbbbbbbbccccccccddddddddeeeeeeeeffffffffgggggggghhhhhhhh", "a sequence"),
    ],
)
def test_production_refuses_a_weak_key_in_one_line(key: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        production(key)
    message = str(refused.value)
    assert message.startswith("secret_key: production mode refuses a weak key (")
    assert why in message
    assert "\n" not in message
    assert key not in message


def test_production_refuses_the_default_key() -> None:
    with pytest.raises(ConfigError, match=r"^secret_key: production mode refuses the default key"):
        production(DEFAULT_SECRET_KEY)


@pytest.mark.parametrize(
    "make",
    [
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),  # README's recipe
        lambda: secrets.token_hex(16),
        lambda: secrets.token_urlsafe(32),
    ],
)
def test_production_accepts_random_keys(make: Callable[[], str]) -> None:
    for _ in range(200):
        key = make()
        assert secret_key_weakness(key) is None, key
    production(key)


def test_development_keeps_the_builtin_key() -> None:
    settings = load_settings(None, env={}, overrides={})
    assert settings.mode == "development"
    assert settings.secret_key == DEFAULT_SECRET_KEY
    load_settings(None, env={}, overrides={"secret_key": "short-dev-key-16"})
