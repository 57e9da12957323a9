"""An official account's configuration, and its secrets read from the environment or a file.

The config file names the account (name, app id, mode) and where its two secrets are:
an environment variable, or a file (in production readable by the server's user alone,
as JNUFM_SECRET_KEY_FILE). Writing a secret in the config file itself is an error.
`load_accounts` turns the section into `WeChatAccount`s, secrets resolved and checked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from channels.wechat.cipher import aes_key
from secret_key import key_file_problem, read_key_file

Mode = Literal["plain", "compatible", "safe"]

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# WeChat's rule for the token: 3 to 32 letters or digits.
_TOKEN = re.compile(r"[A-Za-z0-9]{3,32}")
# The token signs every request: production wants one nobody guesses (16 random
# letters and digits are 95 bits).
MIN_PRODUCTION_TOKEN_LENGTH = 16


class WeChatConfigError(Exception):
    """The WeChat configuration cannot be used; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class WeChatAccountSettings(_Section):
    """One official account as the config file describes it (no secret in it)."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
    app_id: Annotated[str, Field(pattern=r"^wx[0-9A-Za-z]{16}$")]
    mode: Mode = "safe"
    token_env: Annotated[str, Field(pattern=_ENV_NAME)] = "JNUFM_WECHAT_TOKEN"  # noqa: S105
    token_file: str = ""
    encoding_aes_key_env: Annotated[str, Field(pattern=_ENV_NAME)] = "JNUFM_WECHAT_ENCODING_AES_KEY"
    encoding_aes_key_file: str = ""
    # The app secret (AppSecret) fetches the API's access_token, for customer messages
    # (answers that came after the passive reply). Without one, a late answer is given
    # on WeChat's retry of the message or on the follower's next question.
    app_secret_env: Annotated[str, Field(pattern=_ENV_NAME)] = "JNUFM_WECHAT_APP_SECRET"  # noqa: S105
    app_secret_file: str = ""

    @model_validator(mode="before")
    @classmethod
    def _no_secret_here(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for secret in ("token", "encoding_aes_key", "app_secret"):
                if secret in data:
                    raise ValueError(
                        f"{secret}: never written in the config file; set the environment "
                        f"variable named by {secret}_env, or {secret}_file"
                    )
        return data


class WeChatSettings(_Section):
    """The WeChat channel: its accounts and the protocol's limits."""

    accounts: tuple[WeChatAccountSettings, ...] = ()
    # Requests older or newer than this are refused as replays; WeChat's clock and
    # ours must agree within it, and seen nonces are held this long.
    replay_window_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # Bodies beyond this are refused unparsed (a safe-mode text message is ~1 KiB).
    max_body_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 64 * 1024
    # Memory for replay protection: requests remembered per process at most.
    seen_nonces_max: Annotated[int, Field(ge=1000, le=10_000_000)] = 100_000
    # WeChat waits 5 s for a passive reply: the answer if it came by then, else a
    # "being asked" reply while the query goes on.
    reply_within_s: Annotated[float, Field(gt=0, le=4.8)] = 4.5
    # A bind link opens the bind page for this long, once.
    bind_link_ttl_s: Annotated[float, Field(ge=60, le=86400)] = 600.0
    # Where the official-account API is (customer messages, access tokens).
    api_base_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")] = (
        "https://api.weixin.qq.com"
    )
    api_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    # The API's daily limit of customer messages per account (WeChat's 接口调用频次:
    # 500,000 a day for 客服消息); the account stops sending at it until the next day.
    customer_messages_per_day: Annotated[int, Field(ge=0, le=10_000_000)] = 500_000
    # Messages one follower may send a minute (more get a "too often" reply, no query).
    per_follower_per_min: Annotated[float, Field(gt=0, le=6000)] = 20.0
    # How long a message's record (for WeChat's retries of it) is kept.
    messages_keep_s: Annotated[float, Field(ge=30, le=86400)] = 600.0
    # How long an ended binding's row is kept (its follower learns why).
    ended_bindings_keep_s: Annotated[float, Field(ge=0)] = 30 * 86400.0

    @model_validator(mode="after")
    def _distinct(self) -> WeChatSettings:
        for what in ("name", "app_id", "token_env", "encoding_aes_key_env", "app_secret_env"):
            values = [getattr(account, what) for account in self.accounts]
            if len(set(values)) != len(values):
                raise ValueError(f"accounts: two accounts share a {what}")
        return self


class WeChatAccount(_Section):
    """One official account, secrets resolved: what the protocol needs."""

    name: str
    app_id: str
    mode: Mode
    token: SecretStr
    # None in plain mode when none is configured.
    encoding_aes_key: SecretStr | None = None
    # None: no customer messages (late answers on WeChat's retry only).
    app_secret: SecretStr | None = None

    @model_validator(mode="after")
    def _secrets_valid(self) -> WeChatAccount:
        if not _TOKEN.fullmatch(self.token.get_secret_value()):
            raise ValueError("token: WeChat takes 3 to 32 letters or digits")
        if self.encoding_aes_key is None:
            if self.mode != "plain":
                raise ValueError(f"encoding_aes_key: needed in {self.mode} mode")
        else:
            aes_key(self.encoding_aes_key.get_secret_value())
        return self


def load_accounts(
    settings: WeChatSettings, env: Mapping[str, str], production: bool
) -> tuple[WeChatAccount, ...]:
    """Every configured account with its secrets.

    Raises WeChatConfigError (one line, naming the account and the key, never a secret).
    """
    return tuple(load_account(account, env, production) for account in settings.accounts)


def load_account(
    account: WeChatAccountSettings, env: Mapping[str, str], production: bool
) -> WeChatAccount:
    """account with its secrets read. Raises WeChatConfigError."""
    where = f"wechat.accounts[{account.name}]"
    token = _read_secret(where, "token", account.token_file, account.token_env, env, production)
    if token is None:
        raise WeChatConfigError(f"{where}.token: not set (set {account.token_env} or token_file)")
    aes = _read_secret(
        where,
        "encoding_aes_key",
        account.encoding_aes_key_file,
        account.encoding_aes_key_env,
        env,
        production,
    )
    app_secret = _read_secret(
        where, "app_secret", account.app_secret_file, account.app_secret_env, env, production
    )
    try:
        loaded = WeChatAccount(
            name=account.name,
            app_id=account.app_id,
            mode=account.mode,
            token=SecretStr(token),
            encoding_aes_key=None if aes is None else SecretStr(aes),
            app_secret=None if app_secret is None else SecretStr(app_secret),
        )
    except ValidationError as exc:
        # The message, not str(exc): the latter quotes the input, here a secret.
        detail = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise WeChatConfigError(f"{where}: {detail}") from None
    if production and len(token) < MIN_PRODUCTION_TOKEN_LENGTH:
        raise WeChatConfigError(
            f"{where}.token: production mode needs at least {MIN_PRODUCTION_TOKEN_LENGTH} "
            "random letters and digits"
        )
    return loaded


def _read_secret(
    where: str, key: str, path: str, env_name: str, env: Mapping[str, str], production: bool
) -> str | None:
    """The secret from path if set (in production a file of the server's user alone),
    else from the environment variable env_name; None if neither holds one."""
    if path:
        try:
            found = read_key_file(path)
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise WeChatConfigError(f"{where}.{key}_file: cannot read ({why})") from None
        if production:
            problem = key_file_problem(found, dict(env))
            if problem is not None:
                raise WeChatConfigError(f"{where}.{key}_file: {problem}")
        if not found.key:
            raise WeChatConfigError(f"{where}.{key}_file: empty")
        return found.key
    return env.get(env_name) or None
