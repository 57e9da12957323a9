"""Simulator settings: every knob, the named profiles and typed overrides."""

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin, get_type_hints

from schoolsim.variants import VariantSetting

OverloadAction = Literal["error", "reset"]
DownMode = Literal["reset", "error", "hang"]
Markup = Literal["2013", "platform"]

PROFILE_NAMES = ("fast", "jnu-2013")


class SettingError(ValueError):
    """A setting override names an unknown key or carries a bad value."""


@dataclass(frozen=True)
class SimSettings:
    """Every behaviour knob of a simulated system (every system starts from the same
    profile: schoolsim/systems.py)."""

    # Seed of the dataset and of every random choice (latency, failures, keypads).
    seed: int = 2013
    # Median of the log-normal per-request latency, in milliseconds.
    latency_ms_median: float = 1.0
    # Sigma of the log-normal latency (0 = always the median).
    latency_sigma: float = 0.0
    # Lower clamp of a sampled latency, in milliseconds.
    latency_ms_min: float = 0.0
    # Upper clamp of a sampled latency, so a freak sample cannot stall a test forever.
    latency_ms_max: float = 60_000.0
    # Multiplier on the latency of the login POST (the 2013 login was the slowest page).
    login_latency_factor: float = 1.0
    # Multiplier on the latency of the history query (accounthisTrjn3.action).
    history_latency_factor: float = 1.0
    # Thrashing: a request's latency is multiplied by (1 + load_slowdown) for every
    # other request in service when it starts (0 = no slowdown under load).
    load_slowdown: float = 0.0
    # Requests served at once; the others wait in the queue.
    capacity: int = 256
    # Requests allowed to wait for a slot; one more gets the overload action at once.
    queue: int = 1024
    # A request that waited longer than this for a slot gets the overload action.
    queue_timeout_s: float = 30.0
    # Overload answer: "error" = HTTP 500 Tomcat page, "reset" = TCP RST (SO_LINGER 0).
    overload_action: OverloadAction = "error"
    # Share (0..1) of served requests answered with a random HTTP 500 page.
    failure_rate: float = 0.0
    # A session unused for this many seconds is forgotten (Tomcat default 10 min).
    session_idle_s: float = 600.0
    max_sessions: int = 20000
    # A new login of a student invalidates that student's older sessions.
    kick_old_sessions: bool = False
    # The card center's displayed clock minus real China time, in minutes (it ran slow).
    clock_offset_minutes: int = -55
    # The whole school is down (every school request gets the down_mode answer).
    down: bool = False
    # Down answer: "reset" = TCP RST, "error" = HTTP 503 page, "hang" = never answer.
    down_mode: DownMode = "reset"
    # Rows per result page.
    page_size: int = 10
    # Which card center the pages follow: "2013" (the 2013 jnu.fm client's
    # evidence) or "platform" (later versions of the same platform at other
    # schools: accounttodatTrjnObject.action, the history continuation, the
    # tr.bl pager, ten columns). See docs/card-center-protocol.md.
    markup: Markup = "2013"
    # How the pages are written (schoolsim/variants.py): "plain", "legacy", "modern",
    # "bare", or "mixed" (one of them per student, per query for the catalogues).
    # The facts on the pages are the same in every variant.
    variant: VariantSetting = "plain"
    # Drill, not evidence: request paths matching this regular expression (searched in
    # the path; "" = none) are answered with a redesigned page no client knows (200,
    # HTML, a name, numbers and a token on it), as after a redesign at the school.
    redesign: str = ""
    # Not evidence, tolerance drills for clients: a successful login answers
    # 302 to the account page instead of the frame page...
    login_redirect: bool = False
    # ...and a second cookie (a load balancer's) is set with the session and
    # required with it on every later request.
    extra_cookie: bool = False

    def __post_init__(self) -> None:
        """Reject values outside their meaningful range."""
        checks: list[tuple[bool, str]] = [
            (self.latency_ms_median >= 0, "latency_ms_median must be >= 0"),
            (self.latency_sigma >= 0, "latency_sigma must be >= 0"),
            (self.latency_ms_min >= 0, "latency_ms_min must be >= 0"),
            (
                self.latency_ms_max >= self.latency_ms_min,
                "latency_ms_max must be >= latency_ms_min",
            ),
            (self.login_latency_factor >= 0, "login_latency_factor must be >= 0"),
            (self.history_latency_factor >= 0, "history_latency_factor must be >= 0"),
            (self.load_slowdown >= 0, "load_slowdown must be >= 0"),
            (self.capacity >= 1, "capacity must be >= 1"),
            (self.queue >= 0, "queue must be >= 0"),
            (self.queue_timeout_s >= 0, "queue_timeout_s must be >= 0"),
            (0 <= self.failure_rate <= 1, "failure_rate must be in 0..1"),
            (self.session_idle_s > 0, "session_idle_s must be > 0"),
            (self.max_sessions >= 1, "max_sessions must be >= 1"),
            (
                -7 * 24 * 60 < self.clock_offset_minutes < 7 * 24 * 60,
                "clock_offset_minutes out of range (a week either way)",
            ),
            (self.page_size >= 1, "page_size must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingError(message)
        try:
            re.compile(self.redesign)
        except re.error as exc:
            raise SettingError(f"redesign is not a regular expression: {exc}") from None
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingError(f"{f.name} must be a finite number")

    def as_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


def profile(name: str) -> SimSettings:
    """The settings of a named profile."""
    if name == "fast":
        # For tests: about 1 ms per request, room for everyone, no failures.
        return SimSettings(
            latency_ms_median=1.0,
            latency_sigma=0.2,
            latency_ms_min=0.5,
            capacity=256,
            queue=1024,
            queue_timeout_s=30.0,
            failure_rate=0.0,
            kick_old_sessions=False,
        )
    if name == "jnu-2013":
        # Calibrated against the 2013 log (see docs/benchmarks.md, "Calibration"):
        # cheap pages when idle, a login ~6x a page, and steep thrashing (each
        # other request in service multiplies a request's time by 3.3), so that
        # the school does less total work under more load; 4 served at once, the
        # rest wait and get the HTTP 500 page after 0.55 s; 3% random 500s; one
        # student may hold several sessions (no kicking).
        return SimSettings(
            latency_ms_median=11.5,
            latency_sigma=0.4,
            latency_ms_min=1.0,
            latency_ms_max=20_000.0,
            login_latency_factor=6.0,
            history_latency_factor=2.0,
            load_slowdown=2.3,
            capacity=4,
            queue=8,
            queue_timeout_s=0.55,
            overload_action="error",
            failure_rate=0.03,
            session_idle_s=600.0,
            kick_old_sessions=False,
        )
    raise SettingError(f"unknown profile {name!r} (known: {', '.join(PROFILE_NAMES)})")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, kind: Any, raw: object) -> object:
    """Convert one raw value (JSON value or command-line string) to the setting's type."""
    if get_origin(kind) is Literal:
        allowed = get_args(kind)
        if isinstance(raw, int) and not isinstance(raw, bool) and str(raw) in allowed:
            return str(raw)  # a word that is a number ("2013"), sent as one in JSON
        if raw not in allowed:
            raise SettingError(f"{name} must be one of {', '.join(map(str, allowed))}, not {raw!r}")
        return raw
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise SettingError(f"{name} must be true or false, not {raw!r}")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise SettingError(f"{name} must be an integer, not {raw!r}")
    if kind is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            try:
                return float(raw.strip())
            except ValueError:
                pass
        raise SettingError(f"{name} must be a number, not {raw!r}")
    if kind is str:
        if isinstance(raw, str) and len(raw) <= 500:
            return raw
        raise SettingError(f"{name} must be a string of at most 500 characters, not {raw!r}")
    raise SettingError(f"{name} has an unsupported type")  # pragma: no cover


def with_overrides(settings: SimSettings, overrides: Mapping[str, object]) -> SimSettings:
    """A copy of settings with typed, validated overrides applied (all or nothing)."""
    hints = get_type_hints(SimSettings)
    changes: dict[str, Any] = {}
    for name, raw in overrides.items():
        if name not in hints:
            raise SettingError(f"unknown setting {name!r}")
        changes[name] = _coerce(name, hints[name], raw)
    try:
        return dataclasses.replace(settings, **changes)
    except SettingError:
        raise
    except (TypeError, ValueError) as exc:  # pragma: no cover
        raise SettingError(str(exc)) from exc


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """Split `key=value` strings from the command line into a dict."""
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingError(f"--set expects key=value, not {item!r}")
        result[key.strip()] = value
    return result
