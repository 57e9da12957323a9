"""An official account's settings and secrets: from the environment or a file, checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from channels.wechat.config import (
    WeChatAccountSettings,
    WeChatConfigError,
    WeChatSettings,
    load_account,
    load_accounts,
)

KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TOKEN = "Zq8vR2mXk4Tn7pLw"
APP_ID = "wx2c2769f8efd9abc2"


def settings(**extra: Any) -> WeChatAccountSettings:
    return WeChatAccountSettings.model_validate({"name": "jnu", "app_id": APP_ID, **extra})


ENV = {"JNUFM_WECHAT_TOKEN": TOKEN, "JNUFM_WECHAT_ENCODING_AES_KEY": KEY}


def test_secrets_from_the_environment() -> None:
    account = load_account(settings(), ENV, production=True)
    assert account.token.get_secret_value() == TOKEN
    assert account.encoding_aes_key is not None
    assert account.encoding_aes_key.get_secret_value() == KEY
    assert account.mode == "safe"
    assert TOKEN not in repr(account)
    assert KEY not in repr(account)


def _secret_file(tmp_path: Path, name: str, text: str, mode: int) -> Path:
    path = tmp_path / name
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def test_secrets_from_files_of_mode_0600(tmp_path: Path) -> None:
    token = _secret_file(tmp_path, "token", TOKEN, 0o600)
    key = _secret_file(tmp_path, "key", KEY, 0o400)
    account = load_account(
        settings(token_file=str(token), encoding_aes_key_file=str(key)), {}, production=True
    )
    assert account.token.get_secret_value() == TOKEN
    assert account.encoding_aes_key is not None


def test_file_readable_by_others_refused_in_production(tmp_path: Path) -> None:
    token = _secret_file(tmp_path, "token", TOKEN, 0o644)
    chosen = settings(token_file=str(token))
    with pytest.raises(WeChatConfigError, match=r"token_file: .*mode 0644"):
        load_account(chosen, ENV, production=True)
    assert load_account(chosen, ENV, production=False).token.get_secret_value() == TOKEN


@pytest.mark.parametrize(
    ("extra", "env", "problem"),
    [
        ({}, {}, r"jnu\]\.token: not set \(set JNUFM_WECHAT_TOKEN"),
        ({}, {"JNUFM_WECHAT_TOKEN": TOKEN}, "encoding_aes_key: needed in safe mode"),
        ({"mode": "compatible"}, {"JNUFM_WECHAT_TOKEN": TOKEN}, "needed in compatible mode"),
        ({}, {**ENV, "JNUFM_WECHAT_TOKEN": "no spaces allowed"}, "3 to 32 letters or digits"),
        ({}, {**ENV, "JNUFM_WECHAT_ENCODING_AES_KEY": KEY[:-1]}, "43 characters"),
        ({}, {**ENV, "JNUFM_WECHAT_ENCODING_AES_KEY": KEY[:-1] + "-"}, "43 characters"),
        ({}, {**ENV, "JNUFM_WECHAT_TOKEN": "short1"}, "production mode needs at least 16"),
    ],
)
def test_bad_secrets_refused_without_showing_them(
    extra: dict[str, str], env: dict[str, str], problem: str
) -> None:
    with pytest.raises(WeChatConfigError, match=problem) as refused:
        load_account(settings(**extra), env, production=True)
    for secret in env.values():
        assert secret not in str(refused.value)


def test_plain_mode_needs_no_key_and_a_short_token_passes_in_development() -> None:
    account = load_account(settings(mode="plain"), {"JNUFM_WECHAT_TOKEN": "abc"}, production=False)
    assert account.encoding_aes_key is None


def test_unreadable_or_empty_file_refused(tmp_path: Path) -> None:
    with pytest.raises(WeChatConfigError, match="token_file: cannot read"):
        load_account(settings(token_file=str(tmp_path / "absent")), ENV, production=False)
    empty = _secret_file(tmp_path, "empty", "", 0o600)
    with pytest.raises(WeChatConfigError, match="encoding_aes_key_file: empty"):
        load_account(settings(encoding_aes_key_file=str(empty)), ENV, production=False)


@pytest.mark.parametrize("secret", ["token", "encoding_aes_key"])
def test_a_secret_in_the_config_file_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="never written in the config file"):
        settings(**{secret: "x" * 43})


@pytest.mark.parametrize(
    "bad",
    [
        {"app_id": "wx123"},
        {"app_id": "gh_0123456789abcdef"},
        {"name": "Has Spaces"},
        {"mode": "aes"},
        {"token_env": "1BAD"},
        {"unknown": 1},
    ],
)
def test_invalid_settings_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**bad)


def test_two_accounts_need_their_own_names_and_variables() -> None:
    one = {"name": "jnu", "app_id": APP_ID}
    two = {"name": "lib", "app_id": "wx49f0ab532d5d035a"}
    with pytest.raises(ValidationError, match="share a token_env"):
        WeChatSettings.model_validate({"accounts": [one, two]})
    two |= {"token_env": "LIB_TOKEN", "encoding_aes_key_env": "LIB_KEY"}
    with pytest.raises(ValidationError, match="share a app_secret_env"):
        WeChatSettings.model_validate({"accounts": [one, two]})
    two |= {"app_secret_env": "LIB_APP_SECRET"}
    loaded = load_accounts(
        WeChatSettings.model_validate({"accounts": [one, two]}),
        {**ENV, "LIB_TOKEN": "Lq8vR2mXk4Tn7pLw", "LIB_KEY": KEY},
        production=True,
    )
    assert [account.name for account in loaded] == ["jnu", "lib"]
    assert loaded[1].token.get_secret_value() == "Lq8vR2mXk4Tn7pLw"


def test_limits_have_their_defaults_and_bounds() -> None:
    section = WeChatSettings()
    assert (section.replay_window_s, section.max_body_bytes) == (300.0, 64 * 1024)
    with pytest.raises(ValidationError):
        WeChatSettings.model_validate({"replay_window_s": 0})
    with pytest.raises(ValidationError):
        WeChatSettings.model_validate({"max_body_bytes": 100})
