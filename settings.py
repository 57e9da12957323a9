"""Typed configuration: `config.yaml`, then environment overrides, validated once at start.

Every tunable number lives in `config.yaml` with a comment; this module only
describes the shape, the defaults and the checks. A bad file ends the process
with one line naming the key (`ConfigError`), never a traceback.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from datetime import date, time
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from channels.wechat.config import WeChatSettings
from school.config import SystemConfig
from secret_key import (
    DEFAULT_SECRET_KEY,
    KeyFile,
    key_file_problem,
    read_key_file,
    secret_key_weakness,
)
from systems import SYSTEMS
from systems.plugin import Upstream

C = TypeVar("C", bound=SystemConfig)


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the problem."""


class _Section(BaseModel):
    """As school.config.Section (a school system's section): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ListenSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    backlog: Annotated[int, Field(ge=1)] = 1024
    reuse_port: bool = False
    # Workers on the shared socket accept only while they hold no more connections
    # than the least loaded of them (docs/process-model.md).
    fair_accept: bool = True


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///var/jnufm.sqlite3"
    pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    connect_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    sqlite_busy_timeout_s: Annotated[float, Field(ge=0)] = 5.0
    sqlite_wal_max_mb: Annotated[float, Field(ge=0)] = 64
    sqlite_max_mb: Annotated[float, Field(ge=0)] = 0
    echo: bool = False
    deferred_writes: Annotated[int, Field(ge=0, le=1_000_000)] = 10000
    deferred_retry_s: Annotated[float, Field(gt=0)] = 0.5

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "mysql+aiomysql://")):
            raise ValueError("must start with sqlite+aiosqlite:// or mysql+aiomysql://")
        return value


class SchoolSection(_Section):
    """`school:`: one section per upstream of every registered system (systems/), each
    of the type its system declares; built below from the registry."""

    def systems(self) -> dict[str, SystemConfig]:
        """Every upstream's section, by name (`card`, `library_zhuhai`, ...)."""
        return {name: getattr(self, name) for name in type(self).model_fields}

    def section(self, name: str, kind: type[C]) -> C:
        """The section of upstream `name`, of the type its system declares."""
        value = getattr(self, name)
        if not isinstance(value, kind):
            raise TypeError(f"school.{name} is a {type(value).__name__}, not a {kind.__name__}")
        return value


UPSTREAMS: tuple[Upstream, ...] = tuple(u for system in SYSTEMS for u in system.upstreams)

if TYPE_CHECKING:
    SchoolSettings = SchoolSection
else:
    SchoolSettings = create_model(
        "SchoolSettings",
        __base__=SchoolSection,
        **{u.key: (u.config, u.config()) for u in UPSTREAMS},
    )

# Where each upstream is served by the bundled simulator, under its address.
SIMULATOR_PATHS: dict[str, str] = {u.key: u.simulator_path for u in UPSTREAMS}


class SimulatorSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8100
    profile: Literal["fast", "jnu-2013"] = "fast"
    seed: int = 2013
    start_timeout_s: Annotated[float, Field(gt=0)] = 20.0


class TermSettings(_Section):
    """One term of the campus calendar: `year` is its academic year's first calendar year
    (2026 = 2026-2027), `starts` the Monday of its teaching week 1."""

    year: Annotated[int, Field(ge=2000, le=2100)]
    term: Literal[1, 2]
    starts: date

    @field_validator("starts")
    @classmethod
    def _a_monday(cls, value: date) -> date:
        if value.weekday() != 0:
            raise ValueError("must be a Monday (the first day of teaching week 1)")
        return value


def _period(text: str) -> tuple[time, time]:
    first, sep, last = text.partition("-")
    try:
        start, end = time.fromisoformat(first.strip()), time.fromisoformat(last.strip())
    except ValueError:
        start = end = time()
    if not sep or len(first.strip()) != 5 or len(last.strip()) != 5 or start >= end:
        raise ValueError(f"{text!r} is not a period written HH:MM-HH:MM")
    return start, end


class CampusCalendarSettings(_Section):
    """The campus calendar: when terms start and when each class period is."""

    terms: list[TermSettings] = [
        TermSettings(year=2025, term=1, starts=date(2025, 9, 1)),
        TermSettings(year=2025, term=2, starts=date(2026, 3, 2)),
        TermSettings(year=2026, term=1, starts=date(2026, 9, 7)),
        TermSettings(year=2026, term=2, starts=date(2027, 3, 1)),
    ]
    # Period n of a day is the n-th entry, "HH:MM-HH:MM" (campus time).
    periods: list[str] = [
        "08:00-08:45",
        "08:50-09:35",
        "10:00-10:45",
        "10:50-11:35",
        "11:40-12:25",
        "14:30-15:15",
        "15:20-16:05",
        "16:30-17:15",
        "17:20-18:05",
        "19:30-20:15",
        "20:20-21:05",
        "21:10-21:55",
    ]
    # The words of calendar feeds (names, exam titles): Chinese, or "en" for English.
    feed_language: Literal["zh", "en"] = "zh"

    @field_validator("periods")
    @classmethod
    def _periods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one period")
        spans = [_period(text) for text in value]
        for (_, end), (start, _) in itertools.pairwise(spans):
            if start < end:
                raise ValueError("periods must be in order and must not overlap")
        return value

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: list[TermSettings]) -> list[TermSettings]:
        keys = [(t.year, t.term) for t in value]
        if len(set(keys)) != len(keys):
            raise ValueError("a term is listed twice")
        return sorted(value, key=lambda t: t.starts)

    def period_times(self) -> list[tuple[time, time]]:
        return [_period(text) for text in self.periods]


class ApiSettings(_Section):
    history_max_days: Annotated[int, Field(ge=1, le=366)] = 92
    deadline_s: Annotated[float, Field(gt=0, le=300)] = 10
    retry_after_s: Annotated[int, Field(ge=1)] = 30
    legacy_body: Literal["compact", "2013"] = "compact"
    # Where clients reach this server: every absolute URL an answer carries is built on
    # it, never on the request's Host header. Empty: the listen address
    # (Settings.public_base_url); production mode requires it.
    public_url: str = ""
    # Answers of at least gzip_min_bytes go gzip-compressed (at gzip_level) to a client
    # that accepts it; 0: never.
    gzip_min_bytes: Annotated[int, Field(ge=0)] = 1024
    gzip_level: Annotated[int, Field(ge=1, le=9)] = 6
    # The origins (scheme://host[:port]) whose web pages may read the password-free
    # answers (the library, calendar feed URLs, /openapi.json, /healthz); "*": any;
    # empty: none. Never the routes that take a password or a token in a header.
    cors_origins: tuple[str, ...] = ()
    # How long a browser may keep a preflight's answer.
    cors_max_age_s: Annotated[int, Field(ge=0, le=86400)] = 600

    @field_validator("cors_origins")
    @classmethod
    def _cors_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or f"{parts.scheme}://{parts.netloc}" != origin
                or "@" in parts.netloc
            ):
                raise ValueError(
                    f"{origin!r} is not an origin: scheme://host[:port] with no path "
                    'or trailing slash (e.g. https://app.example.edu), or "*"'
                )
        return value

    @field_validator("legacy_body", mode="before")
    @classmethod
    def _legacy_body(cls, value: object) -> object:
        # README writes `legacy_body: 2013`, which YAML reads as the number 2013.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or parts.query
            or parts.fragment
            or not value.isprintable()
            or " " in value
        ):
            raise ValueError(
                "must be an http(s) URL: scheme, host, an optional port and path prefix "
                "(no user, query or fragment), e.g. https://api.example.edu"
            )
        return value.rstrip("/")


class CacheSettings(_Section):
    enabled: bool = True
    memory_entries: Annotated[int, Field(ge=0)] = 20000
    memory_mb: Annotated[float, Field(ge=0)] = 16
    # How old an answer may be before we ask again: per system, `school.<name>.fresh_s`
    # (here in older config files, `cache.fresh_s.<kind>`: moved there on reading).
    max_stale_s: Annotated[float, Field(ge=0)] = 86400
    fresh_min_interval_s: Annotated[float, Field(ge=0)] = 10
    stale_wait_s: Annotated[float, Field(gt=0)] = 2
    # Whole answers kept ready per worker for a warm hit's short way
    # (services/pipeline/ready.py); 0: none, every hit takes the whole path.
    ready_answers: Annotated[int, Field(ge=0)] = 2048
    # The host's shared cache (services/shared_cache.py): a folder, relative to the
    # config file; at most shared_mb of answers (0: none), the oldest share out at once.
    shared_path: Annotated[str, Field(min_length=1)] = "var/cache.lmdb"
    shared_mb: Annotated[float, Field(ge=0, le=65536)] = 64
    shared_evict_share: Annotated[float, Field(gt=0, le=1)] = 0.01


class CoalescingSettings(_Section):
    enabled: bool = True
    lease_s: Annotated[float, Field(gt=0)] = 30
    poll_s: Annotated[float, Field(gt=0)] = 0.05


class BudgetSettings(_Section):
    # Each system's budget is `school.<name>.budget` (here in older config files,
    # `budget.<name>`: moved there on reading).
    wait_s: Annotated[float, Field(ge=0)] = 10
    per_student_queue: Annotated[int, Field(ge=1, le=1000)] = 4
    slot_lease_s: Annotated[float, Field(gt=0)] = 30
    abandoned_s: Annotated[float, Field(ge=0, le=3600)] = 15
    poll_s: Annotated[float, Field(gt=0)] = 0.02


class BreakerSettings(_Section):
    failures: Annotated[int, Field(ge=1)] = 3
    window: Annotated[int, Field(ge=1, le=64)] = 10
    window_s: Annotated[float, Field(gt=0)] = 30
    failure_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    slow_call_s: Annotated[float, Field(gt=0)] = 5
    min_students: Annotated[int, Field(ge=1)] = 3
    open_s: Annotated[float, Field(gt=0)] = 5


class RetrySettings(_Section):
    max_retries: Annotated[int, Field(ge=0, le=5)] = 2
    budget_ratio: Annotated[float, Field(ge=0, le=1)] = 0.2
    backoff_s: Annotated[float, Field(ge=0)] = 0.2


class SessionReuseSettings(_Section):
    enabled: bool = True
    max_idle_s: Annotated[float, Field(ge=0)] = 540
    max_age_s: Annotated[float, Field(ge=0)] = 3600
    # A stored session is used this long after the login that opened it; then a new
    # login judges the password again (a password changed at the school stops working).
    reverify_s: Annotated[float, Field(ge=0)] = 600


class LimitsSettings(_Section):
    enabled: bool = True
    failed_logins_max: Annotated[int, Field(ge=1, le=1000)] = 5
    # An anonymous address: wrong passwords allowed per window, more for each distinct
    # student proven right from it (a campus NAT), never more than the ceiling.
    failed_logins_ip_max: Annotated[int, Field(ge=1, le=100000)] = 30
    failed_logins_ip_per_student: Annotated[float, Field(ge=0, le=10)] = 0.1
    failed_logins_ip_ceiling: Annotated[int, Field(ge=1, le=100000)] = 150
    failed_logins_window_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    verifier_sync_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    pending_wait_s: Annotated[float, Field(gt=0, le=30)] = 2.0
    gate_table_slots: Annotated[int, Field(ge=64, le=1 << 24)] = 65536
    requests_per_s: Annotated[float, Field(gt=0)] = 1000.0
    burst: Annotated[float, Field(ge=1)] = 2000.0
    # 0: no fixed cap per address; the school budget is shared fairly instead.
    school_requests_per_s: Annotated[float, Field(ge=0)] = 0.0
    school_burst: Annotated[float, Field(ge=1)] = 20.0
    trusted_proxies: tuple[str, ...] = ()
    ipv6_prefix: Annotated[int, Field(ge=32, le=128)] = 64
    rate_table_slots: Annotated[int, Field(ge=64, le=1 << 24)] = 65536

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for index, text in enumerate(value):
            try:
                ip_network(text.strip())
            except ValueError as exc:
                raise ValueError(f"entry {index} ({text!r}) is not a CIDR network: {exc}") from None
        return tuple(text.strip() for text in value)

    @property
    def trusted_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        return tuple(ip_network(text) for text in self.trusted_proxies)


class ClientsSettings(_Section):
    """Registered clients (`python server.py clients add`): what a client gets unless its
    own record says otherwise, and how often workers read the list again."""

    refresh_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    requests_per_s: Annotated[float, Field(gt=0)] = 1000.0
    burst: Annotated[float, Field(ge=1)] = 2000.0
    # 0: no fixed cap; the client shares the school budget fairly with everyone else.
    school_requests_per_s: Annotated[float, Field(ge=0)] = 0.0
    school_burst: Annotated[float, Field(ge=1)] = 20.0
    # Wrong passwords per lockout window before the client is slowed down.
    failures_max: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    # While slowed: logins with passwords the school must judge, per minute.
    slowed_logins_per_min: Annotated[float, Field(gt=0, le=6000)] = 6.0


class TokensSettings(_Section):
    """Bearer tokens: students' session tokens, calendar feed URLs, 2013 account logins."""

    idle_s: Annotated[float, Field(gt=0)] = 30 * 86400.0
    max_age_s: Annotated[float, Field(gt=0)] = 180 * 86400.0
    per_student: Annotated[int, Field(ge=1, le=1000)] = 20
    cache_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    touch_s: Annotated[float, Field(ge=0)] = 300.0
    keep_ended_s: Annotated[float, Field(ge=0)] = 30 * 86400.0


class RetentionSettings(_Section):
    """How long stored data is kept, and how the background pruning runs
    (services/retention.py). None: derived from the settings named in config.yaml."""

    enabled: bool = True
    interval_s: Annotated[float, Field(gt=0, le=86400)] = 60.0
    batch: Annotated[int, Field(ge=1, le=10000)] = 500
    pause_s: Annotated[float, Field(ge=0, le=60)] = 0.05
    # None: cache.max_stale_s.
    results_s: Annotated[float, Field(ge=0)] | None = None
    # None: results_s.
    shared_results_s: Annotated[float, Field(ge=0)] | None = None
    shared_results_max: Annotated[int, Field(ge=0)] = 50000
    students_s: Annotated[float, Field(gt=0)] = 180 * 86400.0


class CapturesSettings(_Section):
    """School pages a client could not read, kept redacted for the operator
    (services/captures.py, `python server.py pages`)."""

    enabled: bool = True
    # Distinct pages kept per school system and UTC day (the same page again only counts).
    per_system_per_day: Annotated[int, Field(ge=1, le=10000)] = 20
    # Characters of a redacted page kept (the rest is cut, and the copy says so).
    max_chars: Annotated[int, Field(ge=1024, le=4 * 1024 * 1024)] = 131072
    # Kept pages last seen longer ago than this are deleted by retention.
    keep_s: Annotated[float, Field(gt=0)] = 14 * 86400.0


# The name of an environment variable.
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"


class CanaryAccountSettings(_Section):
    """The canary's test account at a school system with passwords. Its password is
    never written in the config file: it is read, at each round, from the environment
    variable `password_env` or from `password_file` (relative to the config file; in
    production mode readable by the server's user alone, as JNUFM_SECRET_KEY_FILE)."""

    # "": no account, the canary skips the system.
    student_id: Annotated[str, Field(pattern=r"^(?:[0-9]{6,16})?$")] = ""
    password_env: Annotated[str, Field(pattern=_ENV_NAME)]
    password_file: str = ""

    @model_validator(mode="before")
    @classmethod
    def _no_password_here(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "password: never written in the config file; set the environment "
                "variable named by password_env, or password_file"
            )
        return data


class CanaryCardSettings(CanaryAccountSettings):
    password_env: Annotated[str, Field(pattern=_ENV_NAME)] = "JNUFM_CANARY_CARD_PASSWORD"  # noqa: S105


class CanaryAcademicSettings(CanaryAccountSettings):
    password_env: Annotated[str, Field(pattern=_ENV_NAME)] = "JNUFM_CANARY_ACADEMIC_PASSWORD"  # noqa: S105
    # The term read (both or neither; neither: the current term of campus.terms).
    year: Annotated[int, Field(ge=2000, le=2100)] | None = None
    term: Literal[1, 2] | None = None
    grades: bool = True

    @model_validator(mode="after")
    def _both_or_neither(self) -> CanaryAcademicSettings:
        if (self.year is None) != (self.term is None):
            raise ValueError("year and term: give both, or neither (the current term)")
        return self


class CanaryLibrarySettings(_Section):
    # "": the canary skips the library.
    query: Annotated[str, Field(max_length=200)] = "python"
    record: bool = True


class CanarySettings(_Section):
    """The background canary (services/canary.py): a test account's pages read on a
    slow schedule, a metric when one stops parsing."""

    enabled: bool = False
    interval_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0
    refused_backoff_s: Annotated[float, Field(ge=0, le=365 * 86400)] = 7 * 86400.0
    card: CanaryCardSettings = CanaryCardSettings()
    academic: CanaryAcademicSettings = CanaryAcademicSettings()
    library: CanaryLibrarySettings = CanaryLibrarySettings()


class WatchPollSettings(_Section):
    """How often each kind of watch asks the school (seconds), at most: a poll waits
    for spare capacity, so it may come later, never sooner."""

    card_transaction: Annotated[float, Field(ge=10)] = 300.0
    low_balance: Annotated[float, Field(ge=10)] = 600.0
    grade: Annotated[float, Field(ge=60)] = 3600.0
    exam_soon: Annotated[float, Field(ge=60)] = 6 * 3600.0
    timetable_change: Annotated[float, Field(ge=60)] = 12 * 3600.0


class SmtpSettings(_Section):
    """Where e-mail notifications go out (host "" = no e-mail channel)."""

    host: str = ""
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    # "starttls" (submission, 587), "tls" (implicit, 465) or "none" (a local relay only).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    # The password is never written here: from this environment variable or file.
    password_env: Annotated[str, Field(pattern=_ENV_NAME)] = "JNUFM_SMTP_PASSWORD"  # noqa: S105
    password_file: str = ""
    sender: str = "jnu.fm <noreply@localhost>"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 15.0


class WatchesSettings(_Section):
    """Students' opt-in watches (services/watches/): polled on the school's spare
    capacity only, their messages delivered through a persistent outbox."""

    enabled: bool = True
    poll_s: WatchPollSettings = WatchPollSettings()
    # The watches' own ceiling at the school, over all workers and hosts of a database:
    # school requests a minute (a poll is one to three). Students' queries come first:
    # a poll starts only while no student's query waits for the school.
    school_requests_per_min: Annotated[float, Field(gt=0, le=100_000)] = 60.0
    # Polls are spread: each watch's next poll is its interval plus up to this share of
    # it, at random (no thundering herd on the hour).
    jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    # A poll the school failed (breaker open, timeout) is tried again after this,
    # doubled each time up to the kind's interval.
    failure_backoff_s: Annotated[float, Field(gt=0)] = 60.0
    # Watches a student may hold at once.
    per_student: Annotated[int, Field(ge=1, le=1000)] = 10
    # Messages one student may be sent an hour over all channels, and one watch a day
    # (more are kept undelivered, counted as capped).
    messages_per_student_per_hour: Annotated[int, Field(ge=1, le=10000)] = 30
    # Messages each channel (webhook, email, wechat) may send a minute over all workers
    # and hosts (a mail relay's or WeChat's own rate; more wait for the next minute).
    messages_per_channel_per_min: Annotated[int, Field(ge=1, le=1_000_000)] = 600
    # Delivery: attempts before a message is given up on, the first retry's delay
    # (doubled each time), how long a worker may hold a message it delivers.
    delivery_attempts: Annotated[int, Field(ge=1, le=50)] = 8
    delivery_backoff_s: Annotated[float, Field(gt=0)] = 10.0
    delivery_lease_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    # Webhook URLs must be https, and not point at this host or a private network,
    # unless this is on (development and tests against a local receiver).
    webhook_allow_private: bool = False
    smtp: SmtpSettings = SmtpSettings()
    # Delivered or given-up messages are kept this long (the student's listing shows
    # the latest), ended watches as long.
    keep_s: Annotated[float, Field(gt=0)] = 14 * 86400.0


class AccountsSettings(_Section):
    """The 2013 account API (/signup, /login, ...)."""

    enabled: bool = True
    max_upload_bytes: Annotated[int, Field(ge=1024, le=16 << 20)] = 1 << 20
    max_image_side: Annotated[int, Field(ge=16, le=8192)] = 2048
    # argon2id of account passwords: memory (KiB) and passes of one hash.
    hash_memory_kib: Annotated[int, Field(ge=8, le=1 << 20)] = 19456
    hash_time_cost: Annotated[int, Field(ge=1, le=20)] = 2
    # Password hashes and picture re-encodings run in threads, this many at once per worker.
    work_at_once: Annotated[int, Field(ge=1, le=64)] = 2


class HttpSettings(_Section):
    """What one client may send and hold: body size, slow-client timeouts, connections."""

    max_body_bytes: Annotated[int, Field(ge=1024, le=64 << 20)] = 65536
    header_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    body_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    max_connections: Annotated[int, Field(ge=1)] = 4096
    overload_retry_after_s: Annotated[int, Field(ge=1)] = 5
    log_repeat_interval_s: Annotated[float, Field(ge=0)] = 60.0


class ConnectionsSettings(_Section):
    """Connections shared fairly (runtime/connections.py): caps per address and per
    registered client over the host, and who gives way when a worker nears its cap."""

    enabled: bool = True
    per_address: Annotated[int, Field(ge=1)] = 256
    per_address_unfinished: Annotated[int, Field(ge=1)] = 16
    per_client: Annotated[int, Field(ge=1)] = 4096
    per_client_unfinished: Annotated[int, Field(ge=1)] = 256
    retry_after_s: Annotated[int, Field(ge=1, le=3600)] = 2
    refusal_hold_s: Annotated[float, Field(ge=0, le=60)] = 5.0
    held_refusals: Annotated[int, Field(ge=0)] = 8192
    reclaim_at: Annotated[float, Field(gt=0, le=1)] = 0.9
    header_grace_s: Annotated[float, Field(gt=0)] = 3.0
    body_grace_s: Annotated[float, Field(gt=0)] = 3.0
    min_body_bytes_per_s: Annotated[int, Field(ge=1)] = 1024
    table_slots: Annotated[int, Field(ge=64, le=1 << 24)] = 65536


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    # Empty: stderr. Else a file (relative to the config file), reopened on SIGUSR1.
    file: str = ""


class SupervisorSettings(_Section):
    """How the master restarts, watches and replaces its workers."""

    backoff_initial_s: Annotated[float, Field(ge=0)] = 0.1
    backoff_max_s: Annotated[float, Field(ge=0)] = 30.0
    stable_after_s: Annotated[float, Field(ge=0)] = 10.0
    crash_loop_deaths: Annotated[int, Field(ge=1)] = 10
    crash_loop_window_s: Annotated[float, Field(gt=0)] = 60.0
    boot_window_s: Annotated[float, Field(ge=0)] = 2.0
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 1.0
    heartbeat_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    start_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    keepalive_drain_s: Annotated[float, Field(ge=0)] = 1.0

    @model_validator(mode="after")
    def _timeout_after_interval(self) -> SupervisorSettings:
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must be longer than heartbeat_interval_s")
        return self


# A trim walks the allocator's heap (~1 ms after a burst): not many times a second.
MIN_TRIM_INTERVAL_S = 0.5


class MemorySettings(_Section):
    """Each worker's C allocator (glibc only; see runtime/memory.py)."""

    malloc_arenas: Annotated[int, Field(ge=0, le=64)] = 2
    trim_interval_s: Annotated[float, Field(ge=0)] = 5.0

    @field_validator("trim_interval_s")
    @classmethod
    def _not_a_busy_loop(cls, value: float) -> float:
        if 0 < value < MIN_TRIM_INTERVAL_S:
            raise ValueError(f"0 (never) or at least {MIN_TRIM_INTERVAL_S} s")
        return value


class MetricsSettings(_Section):
    """The Prometheus endpoint /metrics and who may read it."""

    enabled: bool = True
    allow_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    bearer_token: Annotated[str, Field(repr=False)] = ""
    multiproc_dir: str = ""

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not an IP network") from None
        return value


class DebugSettings(_Section):
    """Test-only switches; production mode refuses every one of them."""

    block_route: bool = False


def _fresh_owners() -> dict[str, str]:
    """Which upstream's section holds each kind's lifetime (`fresh_s`)."""
    owners: dict[str, str] = {}
    for u in UPSTREAMS:
        fresh = u.config.model_fields.get("fresh_s")
        kind = fresh.annotation if fresh is not None else None
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            owners.update(dict.fromkeys(kind.model_fields, u.key))
    return owners


def move_older_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw config with the older places of per-system keys moved to the
    system's section; a key set in both places is an error (which one would win?)."""
    data = dict(data)
    school = {
        k: dict(v) if isinstance(v, dict) else v for k, v in (data.get("school") or {}).items()
    }
    moves: list[tuple[str, str, str, Any]] = []  # (old key, section, key in it, value)
    budget = data.get("budget")
    if isinstance(budget, dict):
        budget = dict(budget)
        for u in UPSTREAMS:
            if u.key in budget:
                moves.append((f"budget.{u.key}", u.key, "budget", budget.pop(u.key)))
        data["budget"] = budget
    cache = data.get("cache")
    if isinstance(cache, dict) and isinstance(cache.get("fresh_s"), dict):
        cache, fresh = dict(cache), dict(cache["fresh_s"])
        for kind, owner in _fresh_owners().items():
            if kind in fresh:
                moves.append((f"cache.fresh_s.{kind}", owner, f"fresh_s.{kind}", fresh.pop(kind)))
        if fresh:
            cache["fresh_s"] = fresh  # unknown kinds: left to fail validation, named
        else:
            del cache["fresh_s"]
        data["cache"] = cache
    for old, owner, key, value in moves:
        section = school.setdefault(owner, {})
        if not isinstance(section, dict):
            continue  # not a mapping: its own validation error names it
        head, _, kind = key.partition(".")
        target = section
        if kind:
            target = section[head] = dict(section.get(head) or {})
            head = kind
        if head in target:
            raise ValueError(f"{old} and school.{owner}.{key} are both set: keep one")
        target[head] = value
    if school:
        data["school"] = school
    return data


class Settings(_Section):
    mode: Literal["development", "production"] = "development"
    listen: ListenSettings = ListenSettings()
    processes: Annotated[int, Field(ge=0, le=256)] = 0
    shutdown_grace_s: Annotated[float, Field(ge=0)] = 10.0
    event_loop: Literal["asyncio", "uvloop"] = "uvloop"
    database: DatabaseSettings = DatabaseSettings()
    secret_key: Annotated[str, Field(min_length=16, repr=False)] = DEFAULT_SECRET_KEY
    school: SchoolSettings = SchoolSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    campus: CampusCalendarSettings = CampusCalendarSettings()
    api: ApiSettings = ApiSettings()
    cache: CacheSettings = CacheSettings()
    coalescing: CoalescingSettings = CoalescingSettings()
    budget: BudgetSettings = BudgetSettings()
    breaker: BreakerSettings = BreakerSettings()
    retries: RetrySettings = RetrySettings()
    sessions: SessionReuseSettings = SessionReuseSettings()
    limits: LimitsSettings = LimitsSettings()
    clients: ClientsSettings = ClientsSettings()
    tokens: TokensSettings = TokensSettings()
    accounts: AccountsSettings = AccountsSettings()
    retention: RetentionSettings = RetentionSettings()
    captures: CapturesSettings = CapturesSettings()
    canary: CanarySettings = CanarySettings()
    wechat: WeChatSettings = WeChatSettings()
    watches: WatchesSettings = WatchesSettings()
    http: HttpSettings = HttpSettings()
    connections: ConnectionsSettings = ConnectionsSettings()
    log: LogSettings = LogSettings()
    supervisor: SupervisorSettings = SupervisorSettings()
    memory: MemorySettings = MemorySettings()
    metrics: MetricsSettings = MetricsSettings()
    debug: DebugSettings = DebugSettings()

    @model_validator(mode="before")
    @classmethod
    def _older_keys(cls, data: Any) -> Any:
        """Read older config files: `budget.<name>` and `cache.fresh_s.<kind>` now live
        in the system's section (`school.<name>.budget`, `school.<name>.fresh_s.<kind>`)."""
        return move_older_keys(data) if isinstance(data, dict) else data

    def fresh_s(self) -> dict[str, float]:
        """Every kind of cached answer and how long it stays fresh, over every system."""
        lifetimes: dict[str, float] = {}
        for section in self.school.systems().values():
            fresh = getattr(section, "fresh_s", None)
            if isinstance(fresh, BaseModel):
                lifetimes.update(fresh.model_dump())
        return lifetimes

    def base_url(self, system: str) -> str:
        """Where a school system's client goes: the bundled simulator when it is on."""
        if self.simulator.enabled:
            return f"http://{self.simulator.host}:{self.simulator.port}{SIMULATOR_PATHS[system]}"
        return self.school.systems()[system].base_url

    def worker_count(self) -> int:
        return self.processes or (os.cpu_count() or 1)

    def public_base_url(self) -> str:
        """Where clients reach this server: `api.public_url`, else the listen address."""
        if self.api.public_url:
            return self.api.public_url
        host = self.listen.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.listen.port}"


# Environment variables that override keys of the file, for secrets and per-host values.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "JNUFM_DATABASE_URL": ("database", "url"),
    "JNUFM_SECRET_KEY": ("secret_key",),
    "JNUFM_MODE": ("mode",),
    "JNUFM_PORT": ("listen", "port"),
    "JNUFM_PROCESSES": ("processes",),
    "JNUFM_METRICS_TOKEN": ("metrics", "bearer_token"),
    "JNUFM_PUBLIC_URL": ("api", "public_url"),
    "JNUFM_CACHE_PATH": ("cache", "shared_path"),
}


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    node = data
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: cannot override, {key} is not a section")
        node = child
    node[path[-1]] = value


def _anchor_sqlite_path(settings: Settings, base: Path) -> Settings:
    """A relative SQLite file is relative to the config file, not to the current directory."""
    prefix = "sqlite+aiosqlite:///"
    url = settings.database.url
    if not url.startswith(prefix) or url.startswith(prefix + "/") or ":memory:" in url:
        return settings
    absolute = prefix + str(base / url[len(prefix) :])
    database = settings.database.model_copy(update={"url": absolute})
    return settings.model_copy(update={"database": database})


def _anchor_paths(settings: Settings, base: Path) -> Settings:
    """The log file, metrics directory, shared cache, the canary's password files, the
    WeChat accounts' secret files and the SMTP password file are relative to the config
    file too."""
    log, metrics, cache = settings.log, settings.metrics, settings.cache
    if log.file and not Path(log.file).is_absolute():
        log = log.model_copy(update={"file": str(base / log.file)})
    if metrics.multiproc_dir and not Path(metrics.multiproc_dir).is_absolute():
        metrics = metrics.model_copy(update={"multiproc_dir": str(base / metrics.multiproc_dir)})
    if not Path(cache.shared_path).is_absolute():
        cache = cache.model_copy(update={"shared_path": str(base / cache.shared_path)})
    canary = settings.canary
    for name in ("card", "academic"):
        account = getattr(canary, name)
        if account.password_file and not Path(account.password_file).is_absolute():
            anchored = str(base / account.password_file)
            account = account.model_copy(update={"password_file": anchored})
            canary = canary.model_copy(update={name: account})
    accounts = []
    for account in settings.wechat.accounts:
        anchored_files = {
            key: str(base / value)
            for key in ("token_file", "encoding_aes_key_file", "app_secret_file")
            if (value := getattr(account, key)) and not Path(value).is_absolute()
        }
        accounts.append(account.model_copy(update=anchored_files))
    wechat = settings.wechat.model_copy(update={"accounts": tuple(accounts)})
    watches, smtp = settings.watches, settings.watches.smtp
    if smtp.password_file and not Path(smtp.password_file).is_absolute():
        smtp = smtp.model_copy(update={"password_file": str(base / smtp.password_file)})
        watches = watches.model_copy(update={"smtp": smtp})
    return settings.model_copy(
        update={
            "log": log,
            "metrics": metrics,
            "cache": cache,
            "canary": canary,
            "wechat": wechat,
            "watches": watches,
        }
    )


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if not key:
        # A check of the whole file has no location: its message names the keys.
        return str(first["msg"]).removeprefix("Value error, ")
    return f"{key}: {first['msg']}"


def _check_production_key(
    key: str, key_from: str, path: Path | None, key_file: KeyFile | None, env: dict[str, str]
) -> None:
    """Raises ConfigError (one line) if production mode must not run with this key."""
    if key == DEFAULT_SECRET_KEY:
        raise ConfigError(
            "secret_key: production mode refuses the default key; "
            "set JNUFM_SECRET_KEY or JNUFM_SECRET_KEY_FILE"
        )
    if key_from == "file":
        raise ConfigError(
            f"secret_key: production mode refuses a key written in {path} (a configuration "
            "file is copied, backed up and kept under version control); remove it and set "
            "JNUFM_SECRET_KEY or JNUFM_SECRET_KEY_FILE (a file of mode 0600)"
        )
    problem = key_file_problem(key_file, env) if key_file is not None else None
    if problem is not None:
        raise ConfigError(f"JNUFM_SECRET_KEY_FILE: {problem}")
    weakness = secret_key_weakness(key)
    if weakness is not None:
        raise ConfigError(
            f"secret_key: production mode refuses a weak key ({weakness}); set "
            "JNUFM_SECRET_KEY or JNUFM_SECRET_KEY_FILE to random bytes, e.g. "
            "`head -c 32 /dev/urandom | base64`"
        )


def load_settings(
    path: Path | None, env: dict[str, str] | None = None, overrides: dict[str, Any] | None = None
) -> Settings:
    """Read the YAML file (if any), apply environment and CLI overrides, validate.

    Raises ConfigError with one line naming the problem.
    """
    env = dict(os.environ) if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}:{where} is not valid YAML") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys")
        data = loaded or {}
    # Where the key comes from: production takes it from the environment or a key file
    # only (a configuration file is copied, backed up and kept under version control).
    key_from = "file" if "secret_key" in data else "default"
    for name, key_path in ENV_OVERRIDES.items():
        if env.get(name):
            _set_path(data, key_path, env[name])
    if env.get("JNUFM_SECRET_KEY"):
        key_from = "environment"
    key_file: KeyFile | None = None
    secret_file = env.get("JNUFM_SECRET_KEY_FILE")
    if secret_file:
        try:
            key_file = read_key_file(secret_file)
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"JNUFM_SECRET_KEY_FILE: cannot read ({why})") from None
        data["secret_key"] = key_file.key
        key_from = "key file"
    for dotted, value in (overrides or {}).items():
        _set_path(data, tuple(dotted.split(".")), value)
        if dotted == "secret_key":
            key_from = "caller"
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    if path is not None:
        settings = _anchor_sqlite_path(settings, path.resolve().parent)
        settings = _anchor_paths(settings, path.resolve().parent)
    if settings.mode == "production":
        _check_production_key(settings.secret_key, key_from, path, key_file, env)
    if settings.mode == "production" and settings.debug.block_route:
        raise ConfigError("debug.block_route: refused in production mode")
    if settings.mode == "production" and not settings.api.public_url:
        raise ConfigError(
            "api.public_url: production mode needs the URL clients reach this server at "
            "(e.g. https://api.example.edu, or JNUFM_PUBLIC_URL): the URLs answers carry "
            "are built on it, never on the Host header"
        )
    return settings
