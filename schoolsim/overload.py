"""What every simulated school system shares: the overload layer, its counters, its side
endpoints.

Each system (the card center, the academic office, the library catalogues) is
mounted in the one simulator process under its own path prefix, with its own
`SystemState`: its own settings (the same knobs, `profiles.SimSettings`), its
own capacity gate, counters and randomness, so one overloaded system does not
slow another, as on the real campus where they were separate servers.

Every request to a system (never to `/__sim/`) goes through
`OverloadHandler.prepare`, in this order: counted; if `down`, the
`down_mode` answer; a slot of `capacity` (or the queue, or the overload
answer); the sampled latency; `failure_rate` random 500s; then the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import socket
import struct
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

import tornado.web
from tornado.iostream import IOStream

from schoolsim.profiles import SettingError, SimSettings, with_overrides

# Distinct request paths counted by name; the rest are "/other".
MAX_PATHS = 64


class Stats:
    """Counters of school requests (never of /__sim/ requests)."""

    def __init__(self) -> None:
        """All counters at zero."""
        self.in_flight = 0
        self.in_service = 0
        self.queued = 0
        self.zero()

    def zero(self) -> None:
        """Zero the counters; peaks restart from the current levels."""
        self.requests = 0
        self.requests_by_path: Counter[str] = Counter()
        self.answered = 0
        self.by_status: Counter[int] = Counter()
        self.logins_ok = 0
        self.logins_failed = 0
        self.errors: Counter[str] = Counter({"overload": 0, "random_failure": 0, "down": 0})
        self.peak_in_flight = self.in_flight
        self.peak_in_service = self.in_service
        self.peak_queued = self.queued

    def arrive(self, path: str) -> None:
        """A school request arrived (paths past the first MAX_PATHS count as "/other", so
        a client sending made-up paths cannot grow the counters without bound)."""
        self.requests += 1
        if path not in self.requests_by_path and len(self.requests_by_path) >= MAX_PATHS:
            path = "/other"
        self.requests_by_path[path] += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def depart(self, status: int | None) -> None:
        """A school request is over: answered with status, or not at all (None)."""
        self.in_flight -= 1
        if status is not None:
            self.answered += 1
            self.by_status[status] += 1


class Gate:
    """Admits at most `capacity` requests at once, `queue` more may wait for a slot."""

    def __init__(self, stats: Stats) -> None:
        """An empty gate reporting into stats."""
        self._stats = stats
        self._waiters: deque[asyncio.Future[None]] = deque()

    def _enter(self) -> None:
        self._stats.in_service += 1
        self._stats.peak_in_service = max(self._stats.peak_in_service, self._stats.in_service)

    async def acquire(self, settings: SimSettings) -> bool:
        """Wait for a slot; False if the queue is full or the wait timed out."""
        stats = self._stats
        if stats.in_service < settings.capacity and not self._waiters:
            self._enter()
            return True
        if stats.queued >= settings.queue:
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        stats.queued += 1
        stats.peak_queued = max(stats.peak_queued, stats.queued)
        try:
            async with asyncio.timeout(settings.queue_timeout_s):
                await fut
            return True
        except TimeoutError:
            if fut.done() and not fut.cancelled():
                # The slot was handed over just as the timeout fired: give it back.
                self.release(settings.capacity)
            return False
        finally:
            stats.queued -= 1
            if not fut.done():
                fut.cancel()

    def release(self, capacity: int) -> None:
        """Give a slot back and hand free slots to the longest waiters."""
        self._stats.in_service -= 1
        self.wake(capacity)

    def wake(self, capacity: int) -> None:
        """Hand free slots to waiters (also after capacity grew)."""
        while self._waiters and self._stats.in_service < capacity:
            fut = self._waiters.popleft()
            if fut.done():
                continue
            self._enter()
            fut.set_result(None)


class SystemState:
    """One simulated system's settings, randomness, counters and capacity gate."""

    def __init__(self, profile: str, settings: SimSettings) -> None:
        """Fresh state for a profile name and its (possibly overridden) settings."""
        self.profile = profile
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.stats = Stats()
        self.gate = Gate(self.stats)
        self.started = time.monotonic()

    def apply(self, overrides: Mapping[str, object]) -> SimSettings:
        """Apply run-time overrides (validated, all or nothing)."""
        new = with_overrides(self.settings, overrides)
        if new.seed != self.settings.seed:
            self.rng.seed(new.seed)
            self.reseed(new.seed)
        self.settings = new
        self.gate.wake(new.capacity)
        return new

    def reseed(self, seed: int) -> None:
        """A new seed is a new world: systems with a dataset make it again."""

    def reset(self, data: Mapping[str, Any]) -> None:
        """Zero the counters; systems forget more on request (e.g. sessions)."""
        self.stats.zero()

    def latency_s(self, factor: float) -> float:
        """A sampled service time in seconds (log-normal around the median, clamped).

        Slowed down by (1 + load_slowdown) for each other request in service now.
        """
        s = self.settings
        if s.latency_ms_median <= 0:
            ms = 0.0
        else:
            ms = s.latency_ms_median * math.exp(s.latency_sigma * self.rng.gauss(0.0, 1.0))
        ms = min(max(ms, s.latency_ms_min), s.latency_ms_max) * factor
        others = max(0, self.stats.in_service - 1)
        if s.load_slowdown > 0 and others:
            ms = min(ms * (1.0 + s.load_slowdown) ** others, s.latency_ms_max * max(factor, 1.0))
        return ms / 1000.0

    def stats_json(self) -> dict[str, Any]:
        """The /__sim/stats document."""
        st = self.stats
        return {
            "requests": st.requests,
            "requests_by_path": dict(st.requests_by_path),
            "answered": st.answered,
            "by_status": {str(k): v for k, v in sorted(st.by_status.items())},
            "logins_ok": st.logins_ok,
            "logins_failed": st.logins_failed,
            "in_flight": st.in_flight,
            "peak_in_flight": st.peak_in_flight,
            "in_service": st.in_service,
            "peak_in_service": st.peak_in_service,
            "queued": st.queued,
            "peak_queued": st.peak_queued,
            "errors": dict(st.errors),
            "profile": self.profile,
            "settings": self.settings.as_dict(),
            "uptime_s": round(time.monotonic() - self.started, 3),
        }


def server_error_page(status: int) -> str:
    """A bare server error page (systems override `error_page` with their server's look)."""
    return f"<html><body><h1>HTTP Status {status}</h1></body></html>"


def redesigned_page(path: str) -> str:  # path: the request URI, query included
    """A page after a redesign (the `redesign` drill): what it says is what a real page
    would (a student's name and number, a balance, a session token, an e-mail address),
    in a layout no client knows."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>新版服务大厅</title>'
        '</head><body><main class="v2-app" data-path="' + escape(path) + '">'
        '<section class="v2-card"><h2>欢迎您，张小明同学</h2>'
        "<p>学号 2010204060 · 身份证 440106199001011234 · 账户余额 36.50 元</p>"
        "<p>联系邮箱 zhangxm@stu2010.example.edu.cn 电话 13800138000</p>"
        '<input type="hidden" name="csrf" value="Qm9vdHN0cmFwVG9rZW4xMjM0NTY3ODkw">'
        '<input type="password" name="pwd" value="204060">'
        "</section></main></body></html>"
    )


class OverloadHandler(tornado.web.RequestHandler):
    """Base of every page of a simulated system: the overload layer runs in `prepare`."""

    state: SystemState

    def initialize(self, state: SystemState) -> None:
        """Bind the system's state."""
        self.state = state
        self._arrived = False
        self._slot = False
        self._silent = False
        self._gone: asyncio.Future[None] | None = None

    def compute_etag(self) -> str | None:
        """No ETags: every page is dynamic."""
        return None

    def error_page(self, status: int) -> str:
        """The HTML of this server's error pages (500 overload and failures, 503 down)."""
        return server_error_page(status)

    def latency_factor(self) -> float:
        """This page's latency multiplier (1 unless the page is known to be slow)."""
        return 1.0

    async def prepare(self) -> None:
        """The overload layer: count, maybe refuse, wait for a slot, sleep the latency."""
        state = self.state
        self._gone = asyncio.get_running_loop().create_future()
        state.stats.arrive(self.request.path)
        self._arrived = True
        settings = state.settings
        if settings.down:
            state.stats.errors["down"] += 1
            if settings.down_mode == "reset":
                self._reset()
            elif settings.down_mode == "error":
                self._plain(503, self.error_page(503))
            else:
                await self._hang()
            return
        if not await state.gate.acquire(settings):
            state.stats.errors["overload"] += 1
            if state.settings.overload_action == "reset":
                self._reset()
            else:
                self._plain(500, self.error_page(500))
            return
        self._slot = True
        delay = state.latency_s(self.latency_factor())
        if delay > 0:
            await asyncio.sleep(delay)
        if state.rng.random() < state.settings.failure_rate:
            state.stats.errors["random_failure"] += 1
            self._plain(500, self.error_page(500))
        elif state.settings.redesign and re.search(state.settings.redesign, self.request.path):
            self._plain(200, redesigned_page(self.request.uri or self.request.path))

    def on_finish(self) -> None:
        """Account for the answer and free the slot."""
        if self._arrived:
            self._arrived = False
            self.state.stats.depart(None if self._silent else self.get_status())
        if self._slot:
            self._slot = False
            self.state.gate.release(self.state.settings.capacity)

    def on_connection_close(self) -> None:
        """The client went away (ends a hang)."""
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)

    def _stream(self) -> IOStream | None:
        stream = getattr(self.request.connection, "stream", None)
        return stream if isinstance(stream, IOStream) else None

    def _reset(self) -> None:
        """Abort the TCP connection with an RST (SO_LINGER 0), answering nothing."""
        stream = self._stream()
        if stream is not None and not stream.closed():
            with contextlib.suppress(OSError):
                stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            stream.close()
        self._silent = True
        self.finish()

    async def _hang(self) -> None:
        """Answer nothing until the client goes away (or the simulator stops)."""
        stream = self._stream()
        if self._gone is not None and stream is not None and not stream.closed():
            await self._gone
        self._silent = True
        self.finish()

    def _plain(self, status: int, body: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html;charset=utf-8")
        self.finish(body.encode("utf-8"))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors look like the server's own reports."""
        self._plain(status_code, self.error_page(status_code))


# --- the side endpoints of one system (/__sim/<system>/...) ------------------------------


class SimHandler(tornado.web.RequestHandler):
    """Base of the JSON side endpoints (outside the overload layer)."""

    state: SystemState

    def initialize(self, state: SystemState) -> None:
        """Bind the system's state."""
        self.state = state

    def compute_etag(self) -> str | None:
        """No ETags on live counters."""
        return None

    def send(self, data: object, status: int = 200) -> None:
        """Answer with JSON."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors as JSON too."""
        self.send({"error": escape(self._reason)}, status_code)

    def body(self) -> dict[str, Any] | None:
        """The JSON object body ({} if empty); None after answering 400."""
        raw = self.request.body
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.send({"error": "body is not valid JSON"}, 400)
            return None
        if not isinstance(data, dict):
            self.send({"error": "body must be a JSON object"}, 400)
            return None
        return data


class StatsHandler(SimHandler):
    """GET /__sim/<system>/stats."""

    def get(self) -> None:
        """The counters."""
        self.send(self.state.stats_json())


class ResetHandler(SimHandler):
    """POST /__sim/<system>/reset: zero the counters (and more, as the system says)."""

    def post(self) -> None:
        data = self.body()
        if data is None:
            return
        self.state.reset(data)
        self.send({"ok": True})


class ControlHandler(SimHandler):
    """POST /__sim/<system>/control: change settings at run time."""

    def post(self) -> None:
        """Apply a JSON object of setting overrides (all or nothing)."""
        data = self.body()
        if data is None:
            return
        try:
            settings = self.state.apply(data)
        except SettingError as exc:
            self.send({"error": str(exc)}, 400)
            return
        self.send({"ok": True, "settings": settings.as_dict()})


def side_routes(side: str, state: SystemState) -> list[tuple[str, type, dict[str, Any]]]:
    """The stats, reset and control endpoints of one system under the `side` prefix."""
    s = {"state": state}
    return [
        (side + r"/stats", StatsHandler, s),
        (side + r"/reset", ResetHandler, s),
        (side + r"/control", ControlHandler, s),
    ]


Rule = tuple[str, type, dict[str, Any]]


@dataclass(frozen=True)
class Mount:
    """A simulated system beside the card center: its pages under `prefix`, its side
    endpoints under /__sim/<name>/."""

    name: str
    prefix: str
    state: SystemState
    routes: Callable[[str, SystemState], list[Rule]]

    def rules(self) -> list[Rule]:
        return [
            *side_routes(f"/__sim/{self.name}", self.state),
            *self.routes(self.prefix, self.state),
        ]
