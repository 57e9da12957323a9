"""The simulated official-account API (api.weixin.qq.com): access tokens and customer messages.

Served under `/wechat-api/`, so that an account's `wechat.api_base_url` of
`http://HOST:PORT/wechat-api` maps onto WeChat's own paths:

    GET  /wechat-api/cgi-bin/token?grant_type=client_credential&appid=&secret=
         -> {"access_token": "...", "expires_in": 7200}, or {"errcode": ..., "errmsg": ...}
    POST /wechat-api/cgi-bin/message/custom/send?access_token=...
         {"touser": openid, "msgtype": "text", "text": {"content": ...}}
         {"touser": openid, "msgtype": "news", "news": {"articles": [{...}]}}
         -> {"errcode": 0, "errmsg": "ok"}, or an error

What it follows of WeChat's docs (获取Access token, 客服消息, 全局返回码): a token is
valid `expires_in` seconds (7200); fetching a new one leaves the previous one valid for
`overlap_s` (300) more, after which it answers 40001; a token past its time answers
42001; a daily quota of customer messages per app (UTC+8 days) answers 45009 past it;
one follower gets at most `follower_limit` (20) messages without writing in between
(45047), and none once `reply_window_s` (48 h) passed since they last wrote (45015;
only for followers the simulator was told wrote, unless `require_wrote`). A news
message holds one article (WeChat's rule since 2018; more answer 45008). Answers are
HTTP 200 with a JSON body whatever the errcode, as WeChat's.

Guesses: the errmsg wording beyond the code (WeChat's carry a `rid` we make up), the
order of the checks (drill, token, body, quota, follower), 41001/41002/41004 for a
missing parameter.

The API sits behind its own overload layer (`/__sim/wechat/control` makes it slow or
down, as for a school system). Side endpoints, under `/__sim/wechat/`: see
schoolsim/README.md ("The WeChat API").
"""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from schoolsim.overload import Mount, OverloadHandler, Rule, SimHandler, SystemState
from schoolsim.profiles import SettingError, SimSettings, profile, with_overrides

NAME = "wechat"
PREFIX = "/wechat-api/"
CHINA = timezone(timedelta(hours=8))

# Kept at most: messages per follower, followers with messages, tokens per app.
MESSAGES_PER_FOLLOWER = 500
FOLLOWERS_KEPT = 10_000
TOKENS_KEPT = 16
TOKEN_LENGTH = 136
_TOKEN_ALPHABET = string.ascii_letters + string.digits + "_-"

ERRMSG: dict[int, str] = {
    -1: "system error",
    0: "ok",
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40003: "invalid openid",
    40008: "invalid message type",
    40013: "invalid appid",
    40125: "invalid appsecret",
    40164: "invalid ip, not in whitelist",
    41001: "access_token missing",
    41002: "appid missing",
    41004: "appsecret missing",
    42001: "access_token expired",
    44004: "empty content",
    45008: "article size out of limit",
    45009: "reach max api daily quota limit",
    45015: "response out of time limit or subscription is canceled",
    45047: "out of response count limit",
    47001: "data format error",
}

# Where the API is in jnu-2013 (benchmarks): an outside service, a few tens of ms, never
# overloaded by one campus (a guess). The fast profile's settings otherwise.
_BENCH = {
    "latency_ms_median": 40.0,
    "latency_sigma": 0.3,
    "latency_ms_min": 10.0,
    "latency_ms_max": 10_000.0,
    "load_slowdown": 0.0,
    "capacity": 1024,
    "queue": 4096,
    "queue_timeout_s": 30.0,
    "failure_rate": 0.0,
}


@dataclass
class SimApp:
    """One official account at the API: its secret, limits, tokens and counters."""

    app_id: str
    secret: str
    expires_in: int = 7200
    overlap_s: float = 300.0
    daily_quota: int = 500_000
    follower_limit: int = 20
    reply_window_s: float = 48 * 3600.0
    require_wrote: bool = False
    # token -> the time (time.time()) it stops being valid; the newest is `current`.
    tokens: OrderedDict[str, float] = field(default_factory=OrderedDict)
    current: str = ""
    day: str = ""
    sent_today: int = 0
    # openid -> messages since the follower last wrote; openid -> when they last wrote.
    since_wrote: Counter[str] = field(default_factory=Counter)
    wrote_at: dict[str, float] = field(default_factory=dict)
    tokens_fetched: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)

    def json(self) -> dict[str, Any]:
        now = time.time()
        return {
            "app_id": self.app_id,
            "expires_in": self.expires_in,
            "overlap_s": self.overlap_s,
            "daily_quota": self.daily_quota,
            "follower_limit": self.follower_limit,
            "reply_window_s": self.reply_window_s,
            "require_wrote": self.require_wrote,
            "tokens_fetched": self.tokens_fetched,
            "valid_tokens": sum(1 for until in self.tokens.values() if until > now),
            "accepted": self.accepted,
            "refused": {str(code): n for code, n in sorted(self.refused.items())},
            "day": self.day,
            "sent_today": self.sent_today,
        }


# What a registration may set, and the checks on it.
_APP_OPTIONS: dict[str, tuple[type, Any]] = {
    "expires_in": (int, lambda v: 1 <= v <= 86400),
    "overlap_s": (float, lambda v: 0 <= v <= 86400),
    "daily_quota": (int, lambda v: 0 <= v <= 100_000_000),
    "follower_limit": (int, lambda v: 1 <= v <= 1_000_000),
    "reply_window_s": (float, lambda v: v > 0),
    "require_wrote": (bool, lambda v: True),
}


def new_app(data: Mapping[str, Any]) -> SimApp:
    """An app from a registration's JSON. Raises SettingError naming the bad key."""
    app_id, secret = data.get("app_id"), data.get("secret")
    if not isinstance(app_id, str) or not re.fullmatch(r"wx[0-9A-Za-z]{16}", app_id):
        raise SettingError("app_id must be wx and 16 letters or digits")
    if not isinstance(secret, str) or not re.fullmatch(r"[0-9A-Za-z]{8,64}", secret):
        raise SettingError("secret must be 8 to 64 letters or digits")
    options: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("app_id", "secret"):
            continue
        if key not in _APP_OPTIONS:
            raise SettingError(f"unknown app option {key}")
        kind, valid = _APP_OPTIONS[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not kind or not valid(value):
            raise SettingError(f"{key}: bad value {value!r}")
        options[key] = value
    return SimApp(app_id=app_id, secret=secret, **options)


@dataclass
class Drill:
    """The next `count` calls of a kind ("token", "send" or "any") answer `errcode`."""

    errcode: int = 0
    count: int = 0
    calls: str = "any"

    def take(self, kind: str) -> int:
        """The errcode to answer this call with (0: none)."""
        if self.count <= 0 or self.calls not in ("any", kind):
            return 0
        self.count -= 1
        return self.errcode


class WeChatApiState(SystemState):
    """The API's apps, the customer messages received, counters and the drill."""

    def __init__(self, profile_name: str, settings: SimSettings) -> None:
        super().__init__(profile_name, settings)
        self.apps: dict[str, SimApp] = {}
        # token -> app id, for every token kept by some app.
        self.token_apps: dict[str, str] = {}
        self.messages: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self.drill = Drill()
        self.seq = 0
        self.zero_counts()

    def zero_counts(self) -> None:
        self.tokens_fetched = 0
        self.accepted = 0
        self.refused: Counter[int] = Counter()

    def reset(self, data: Mapping[str, Any]) -> None:
        """Zero the counters, forget the messages and the drill; `{"apps": true}` also
        forgets every app and token."""
        super().reset(data)
        self.zero_counts()
        self.messages.clear()
        self.drill = Drill()
        for app in self.apps.values():
            app.tokens_fetched = app.accepted = app.sent_today = 0
            app.refused.clear()
            app.since_wrote.clear()
            app.wrote_at.clear()
        if data.get("apps"):
            self.apps.clear()
            self.token_apps.clear()

    def register(self, app: SimApp) -> None:
        """Add an app, or replace one of that id (its tokens end)."""
        self.revoke(app.app_id)
        self.apps[app.app_id] = app

    def revoke(self, app_id: str) -> bool:
        """End every token of an app at once (as after another fetch and its overlap)."""
        app = self.apps.get(app_id)
        if app is None:
            return False
        for token in app.tokens:
            self.token_apps.pop(token, None)
        app.tokens.clear()
        app.current = ""
        return True

    def stats_json(self) -> dict[str, Any]:
        return {
            **super().stats_json(),
            "system": NAME,
            "apps": len(self.apps),
            "tokens_fetched": self.tokens_fetched,
            "accepted": self.accepted,
            "refused": {str(code): n for code, n in sorted(self.refused.items())},
            "drill": {
                "errcode": self.drill.errcode,
                "count": self.drill.count,
                "calls": self.drill.calls,
            },
        }

    # --- the API --------------------------------------------------------------------

    def fetch_token(self, grant_type: str, app_id: str, secret: str) -> dict[str, Any]:
        app = self.apps.get(app_id)
        code = self.drill.take("token")
        if not code:
            if grant_type != "client_credential":
                code = 40002
            elif not app_id:
                code = 41002
            elif app is None:
                code = 40013
            elif not secret:
                code = 41004
            elif secret != app.secret:
                code = 40125
        if code:
            return self._refuse(app, code)
        assert app is not None
        now = time.time()
        if app.current and app.current in app.tokens:
            app.tokens[app.current] = min(app.tokens[app.current], now + app.overlap_s)
        token = "".join(self.rng.choices(_TOKEN_ALPHABET, k=TOKEN_LENGTH))
        app.tokens[token] = now + app.expires_in
        app.current = token
        self.token_apps[token] = app.app_id
        while len(app.tokens) > TOKENS_KEPT:
            old, _ = app.tokens.popitem(last=False)
            self.token_apps.pop(old, None)
        app.tokens_fetched += 1
        self.tokens_fetched += 1
        return {"access_token": token, "expires_in": app.expires_in}

    def send(self, token: str, body: bytes) -> dict[str, Any]:
        app = self.apps.get(self.token_apps.get(token, ""))
        code = self.drill.take("send")
        if code:
            return self._refuse(app, code)
        now = time.time()
        if not token:
            return self._refuse(None, 41001)
        if app is None:
            return self._refuse(None, 40001)
        if app.tokens[token] <= now:
            return self._refuse(app, 42001 if token == app.current else 40001)
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._refuse(app, 47001)
        if not isinstance(data, dict):
            return self._refuse(app, 47001)
        touser, msgtype = data.get("touser"), data.get("msgtype")
        if not isinstance(touser, str) or not re.fullmatch(r"[0-9A-Za-z_-]{1,64}", touser):
            return self._refuse(app, 40003)
        code = _content_problem(msgtype, data)
        if code:
            return self._refuse(app, code)
        day = datetime.fromtimestamp(now, CHINA).date().isoformat()
        if app.day != day:
            app.day, app.sent_today = day, 0
        if app.sent_today >= app.daily_quota:
            return self._refuse(app, 45009)
        wrote = app.wrote_at.get(touser)
        if (wrote is None and app.require_wrote) or (
            wrote is not None and now - wrote > app.reply_window_s
        ):
            return self._refuse(app, 45015)
        if app.since_wrote[touser] >= app.follower_limit:
            return self._refuse(app, 45047)
        app.sent_today += 1
        app.since_wrote[touser] += 1
        app.accepted += 1
        self.accepted += 1
        self._keep(app.app_id, touser, str(msgtype), data, now)
        return {"errcode": 0, "errmsg": "ok"}

    def follower_wrote(self, app_id: str, openid: str) -> bool:
        """A follower wrote to the account: the 48 h window and the count start again."""
        app = self.apps.get(app_id)
        if app is None:
            return False
        app.wrote_at[openid] = time.time()
        app.since_wrote.pop(openid, None)
        return True

    def _keep(
        self, app_id: str, touser: str, msgtype: str, data: dict[str, Any], now: float
    ) -> None:
        self.seq += 1
        kept = self.messages.get(touser)
        if kept is None:
            kept = self.messages[touser] = deque(maxlen=MESSAGES_PER_FOLLOWER)
            while len(self.messages) > FOLLOWERS_KEPT:
                self.messages.popitem(last=False)
        else:
            self.messages.move_to_end(touser)
        kept.append(
            {
                "seq": self.seq,
                "app_id": app_id,
                "touser": touser,
                "msgtype": msgtype,
                msgtype: data[msgtype],
                "at": datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            }
        )

    def _refuse(self, app: SimApp | None, code: int) -> dict[str, Any]:
        self.refused[code] += 1
        if app is not None:
            app.refused[code] += 1
        rid = "".join(self.rng.choices("0123456789abcdef", k=8))
        return {"errcode": code, "errmsg": f"{ERRMSG.get(code, 'error')} rid: {rid}"}


def _content_problem(msgtype: object, data: dict[str, Any]) -> int:
    """The errcode a message's content earns (0: none)."""
    if msgtype == "text":
        text = data.get("text")
        content = text.get("content") if isinstance(text, dict) else None
        if not isinstance(content, str):
            return 47001
        return 0 if content.strip() else 44004
    if msgtype == "news":
        news = data.get("news")
        articles = news.get("articles") if isinstance(news, dict) else None
        if not isinstance(articles, list) or not articles:
            return 47001
        if len(articles) > 1:
            return 45008
        if not all(isinstance(a, dict) and isinstance(a.get("title"), str) for a in articles):
            return 47001
        return 0
    return 40008


class ApiHandler(OverloadHandler):
    """Base of the API's pages: JSON answers, WeChat's content type."""

    state: WeChatApiState

    def answer(self, data: Mapping[str, Any]) -> None:
        self.set_header("Content-Type", "application/json; encoding=utf-8")
        self.finish(json.dumps(data, ensure_ascii=False).encode("utf-8"))


class TokenHandler(ApiHandler):
    """GET /wechat-api/cgi-bin/token."""

    def get(self) -> None:
        arg = self.get_query_argument
        self.answer(
            self.state.fetch_token(arg("grant_type", ""), arg("appid", ""), arg("secret", ""))
        )


class CustomSendHandler(ApiHandler):
    """POST /wechat-api/cgi-bin/message/custom/send?access_token=..."""

    def post(self) -> None:
        self.answer(self.state.send(self.get_query_argument("access_token", ""), self.request.body))


class ApiNotFoundHandler(ApiHandler):
    def get(self) -> None:
        self.set_status(404)
        self.answer({"errcode": 404, "errmsg": "not found"})

    post = get


# --- side endpoints (/__sim/wechat/...) ------------------------------------------------


class WeChatSimHandler(SimHandler):
    state: WeChatApiState

    def initialize(self, state: SystemState) -> None:
        assert isinstance(state, WeChatApiState)
        self.state = state


class AppsHandler(WeChatSimHandler):
    """POST /__sim/wechat/apps {app_id, secret, ...options}: register (or replace) an app;
    GET: every app's counters."""

    def get(self) -> None:
        self.send({"apps": [app.json() for app in self.state.apps.values()]})

    def post(self) -> None:
        data = self.body()
        if data is None:
            return
        try:
            app = new_app(data)
        except SettingError as exc:
            self.send({"error": str(exc)}, 400)
            return
        self.state.register(app)
        self.send({"ok": True, "app": app.json()})


class AppHandler(WeChatSimHandler):
    """GET /__sim/wechat/apps/<app_id>: one app's counters."""

    def get(self, app_id: str) -> None:
        app = self.state.apps.get(app_id)
        if app is None:
            self.send({"error": "no such app"}, 404)
            return
        self.send(app.json())


class RevokeHandler(WeChatSimHandler):
    """POST /__sim/wechat/apps/<app_id>/revoke: every token of the app ends now."""

    def post(self, app_id: str) -> None:
        if not self.state.revoke(app_id):
            self.send({"error": "no such app"}, 404)
            return
        self.send({"ok": True})


class WroteHandler(WeChatSimHandler):
    """POST /__sim/wechat/followers/wrote {app_id, openid}: the follower wrote just now."""

    def post(self) -> None:
        data = self.body()
        if data is None:
            return
        app_id, openid = data.get("app_id"), data.get("openid")
        if not isinstance(app_id, str) or not isinstance(openid, str) or not openid:
            self.send({"error": "app_id and openid are needed"}, 400)
            return
        if not self.state.follower_wrote(app_id, openid):
            self.send({"error": "no such app"}, 404)
            return
        self.send({"ok": True})


class MessagesHandler(WeChatSimHandler):
    """GET /__sim/wechat/messages?touser=<openid>[&app_id=]: the customer messages accepted
    for a follower, oldest first."""

    def get(self) -> None:
        touser = self.get_query_argument("touser", "")
        app_id = self.get_query_argument("app_id", "")
        if not touser:
            self.send({"error": "touser is needed"}, 400)
            return
        kept = self.state.messages.get(touser, ())
        self.send({"messages": [m for m in kept if not app_id or m["app_id"] == app_id]})


class DrillHandler(WeChatSimHandler):
    """POST /__sim/wechat/drill {"errcode": -1, "count": 3, "calls": "send"}: the next
    `count` calls ("token", "send" or "any") answer that errcode; {"count": 0} ends it."""

    def post(self) -> None:
        data = self.body()
        if data is None:
            return
        errcode, count, calls = (
            data.get("errcode", -1),
            data.get("count", 1),
            data.get("calls", "any"),
        )
        if (
            not isinstance(errcode, int)
            or not isinstance(count, int)
            or isinstance(count, bool)
            or count < 0
            or calls not in ("any", "token", "send")
        ):
            self.send({"error": "errcode (int), count (int >= 0), calls: any, token or send"}, 400)
            return
        self.state.drill = Drill(errcode, count, calls)
        self.send({"ok": True})


def routes(prefix: str, state: SystemState) -> list[Rule]:
    s: dict[str, Any] = {"state": state}
    p = re.escape(prefix)
    app = r"/__sim/wechat/apps/(wx[0-9A-Za-z]{16})"
    return [
        (r"/__sim/wechat/apps", AppsHandler, s),
        (app, AppHandler, s),
        (app + r"/revoke", RevokeHandler, s),
        (r"/__sim/wechat/followers/wrote", WroteHandler, s),
        (r"/__sim/wechat/messages", MessagesHandler, s),
        (r"/__sim/wechat/drill", DrillHandler, s),
        (rf"{p}cgi-bin/token", TokenHandler, s),
        (rf"{p}cgi-bin/message/custom/send", CustomSendHandler, s),
        (rf"{p}.*", ApiNotFoundHandler, s),
    ]


def api_settings(profile_name: str, given: SimSettings) -> SimSettings:
    """The API's settings: the fast profile's, or in jnu-2013 an outside service's (a
    guess), with the overrides `given` carries over its profile applied."""
    plain = profile(profile_name)
    overrides = {
        name: value for name, value in given.as_dict().items() if value != getattr(plain, name)
    }
    base = profile("fast") if profile_name == "fast" else with_overrides(profile("fast"), _BENCH)
    return with_overrides(base, overrides)


def mount(profile_name: str, settings: SimSettings) -> Mount:
    """The API under /wechat-api/, with its own overload layer."""
    return Mount(
        NAME, PREFIX, WeChatApiState(profile_name, api_settings(profile_name, settings)), routes
    )
