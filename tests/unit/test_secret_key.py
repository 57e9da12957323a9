"""Production refuses a secret key with little entropy (however it is written: hex,
base64, leetspeak), one written in the configuration file, and a key file others may
read; development keeps working with the built-in key."""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from secret_key import DEFAULT_SECRET_KEY, secret_key_weakness
from settings import ConfigError, Settings, load_settings

PUBLIC_URL = "https://api.example.edu"
GOOD_KEY = "kV7nQ2xR9wLp4ZtB8mYc3HsJ6dFg1QeA0uNa"


def production(key: str) -> Settings:
    return load_settings(
        None,
        env={},
        overrides={"mode": "production", "secret_key": key, "api.public_url": PUBLIC_URL},
    )


def refusal(key: str) -> str:
    with pytest.raises(ConfigError) as refused:
        production(key)
    message = str(refused.value)
    assert "\n" not in message
    assert key not in message
    return message


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("Zq8wLp3vNx7tKc2m", "shorter than 32 characters"),
        ("kV7nQ2xR9wLp4ZtB8mYc3HsJ6dFg1Qe", "shorter than 32 characters"),
        ("please-change-me-before-deploying-it", "placeholder word 'change'"),
        ("my-very-long-production-Secret-2026!", "placeholder word 'secret'"),
        ("Password1234567890Password1234567890", "placeholder word 'password'"),
        ("my-very-long-production-p4s5w0rd-2026!", "placeholder word 'password'"),
        ("x" * 40, "fewer than 8 distinct characters"),
        ("abab" * 10, "fewer than 8 distinct characters"),
        ("0123456789abcdef" * 2, "a repeated pattern"),
        ("abcdefghijklmnopqrstuvwxyz0123456789", "a sequence of characters"),
        ("aaaaaaaabbbbbbbbccccccccddddddddeeeeeeeeffffffffgggggggghhhhhhhh", "a sequence"),
        # Words, names and years: long, varied, and guessable.
        ("correct-horse-battery-staple-2026", "bits of estimated entropy, fewer than 128"),
        ("my-very-long-production-Kitten-2026!", "bits of estimated entropy, fewer than 128"),
        ("jnufm-production-key-2026-campus-api", "bits of estimated entropy, fewer than 128"),
        ("thisisaverylongpassphrasewithoutspaces", "bits of estimated entropy"),
        # 122 random bits, not 128.
        (str(uuid.UUID(int=0x5A17_9D3C_44E1_4B6F_9A02_C7D8_E1F0_3B6A)), "about 122 bits"),
        # Bytes in a pattern, written in base64.
        (base64.b64encode(bytes(range(32))).decode(), "(read as base64)"),
        (base64.b64encode(bytes(32)).decode(), "fewer than 8 distinct characters"),
    ],
)
def test_production_refuses_a_weak_key_in_one_line(key: str, why: str) -> None:
    message = refusal(key)
    assert message.startswith("secret_key: production mode refuses a weak key (")
    assert why in message


@pytest.mark.parametrize(
    ("key", "how"),
    [
        (DEFAULT_SECRET_KEY.upper(), ""),
        (DEFAULT_SECRET_KEY + "-2026-prod", ""),
        ("InSecure_Development_Key_Change_Me!!", ""),
        ("1n53cur3-d3v3l0pm3nt-k3y-ch4ng3-m3", ""),
        ("!N$3CUR3 D3V3|0PM3NT K3Y CH4NG3 M3", ""),
        (DEFAULT_SECRET_KEY.encode().hex(), " (read as hex)"),
        (DEFAULT_SECRET_KEY.encode().hex().upper(), " (read as hex)"),
        (base64.b64encode(DEFAULT_SECRET_KEY.encode()).decode(), " (read as base64)"),
        (base64.urlsafe_b64encode(DEFAULT_SECRET_KEY.encode()).decode().rstrip("="), "base64"),
        # Layers: the base64 of the hex of the key.
        (base64.b64encode(DEFAULT_SECRET_KEY.encode().hex().encode()).decode(), "base64"),
    ],
)
def test_production_refuses_the_default_key_written_another_way(key: str, how: str) -> None:
    message = refusal(key)
    assert "the development key written another way" in message
    assert how in message


def test_production_refuses_the_default_key() -> None:
    with pytest.raises(ConfigError, match=r"^secret_key: production mode refuses the default key"):
        production(DEFAULT_SECRET_KEY)


@pytest.mark.parametrize(
    "make",
    [
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),  # README's recipe
        lambda: secrets.token_hex(16),  # exactly 128 bits
        lambda: secrets.token_hex(32),
        lambda: secrets.token_urlsafe(32),
        lambda: secrets.token_urlsafe(24),
    ],
)
def test_production_accepts_random_keys(make: Callable[[], str]) -> None:
    for _ in range(200):
        key = make()
        assert secret_key_weakness(key) is None, key
    assert production(key).secret_key == key


def write_config(tmp_path: Path, **values: object) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"mode": "production", **values}), encoding="utf-8")
    return path


def test_production_refuses_a_key_written_in_the_config_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, secret_key=GOOD_KEY, api={"public_url": PUBLIC_URL})
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env={})
    message = str(refused.value)
    assert message.startswith(f"secret_key: production mode refuses a key written in {path}")
    assert GOOD_KEY not in message
    # The same key from the environment is taken; so is the file in development.
    assert load_settings(path, env={"JNUFM_SECRET_KEY": GOOD_KEY}).secret_key == GOOD_KEY
    development = write_config(tmp_path, mode="development", secret_key=GOOD_KEY)
    assert load_settings(development, env={}).secret_key == GOOD_KEY


def key_file(tmp_path: Path, mode: int, key: str = GOOD_KEY) -> Path:
    path = tmp_path / "secret_key"
    path.write_text(key + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def from_key_file(tmp_path: Path, path: Path, **env: str) -> Settings:
    config = write_config(tmp_path, api={"public_url": PUBLIC_URL})
    return load_settings(config, env={"JNUFM_SECRET_KEY_FILE": str(path), **env})


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_production_reads_a_key_file_only_its_user_may_read(tmp_path: Path, mode: int) -> None:
    assert from_key_file(tmp_path, key_file(tmp_path, mode)).secret_key == GOOD_KEY


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_production_refuses_a_key_file_others_may_read(tmp_path: Path, mode: int) -> None:
    path = key_file(tmp_path, mode)
    with pytest.raises(ConfigError) as refused:
        from_key_file(tmp_path, path)
    assert str(refused.value) == (
        f"JNUFM_SECRET_KEY_FILE: {path} may be read by others (mode {mode:04o}); "
        f"production mode needs 0600 or stricter: chmod 600 {path}"
    )
    # Development reads it all the same.
    config = write_config(tmp_path, mode="development")
    assert load_settings(config, env={"JNUFM_SECRET_KEY_FILE": str(path)}).secret_key == GOOD_KEY


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_production_refuses_a_key_file_of_another_user(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600)
    os.chown(path, 65534, -1)
    with pytest.raises(ConfigError, match=r"belongs to uid 65534, not to this server's user"):
        from_key_file(tmp_path, path)


def test_a_systemd_credential_passes_as_systemd_made_it(tmp_path: Path) -> None:
    """systemd makes LoadCredential= files readable by the service alone; with ACLs its
    mode bits show the ACL's mask (0440), owned by root."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    path = key_file(credentials, 0o440)
    settings = from_key_file(tmp_path, path, CREDENTIALS_DIRECTORY=str(credentials))
    assert settings.secret_key == GOOD_KEY


def test_a_weak_key_in_a_key_file_is_refused_too(tmp_path: Path) -> None:
    path = key_file(tmp_path, 0o600, key=DEFAULT_SECRET_KEY.encode().hex())
    with pytest.raises(ConfigError, match=r"the development key written another way \(read as"):
        from_key_file(tmp_path, path)


def test_development_keeps_the_builtin_key() -> None:
    settings = load_settings(None, env={}, overrides={})
    assert settings.mode == "development"
    assert settings.secret_key == DEFAULT_SECRET_KEY
    load_settings(None, env={}, overrides={"secret_key": "short-dev-key-16"})
