"""The simulator's run-time state: settings, randomness, counters, capacity gate."""

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from schoolsim.dataset import CHINA, Dataset
from schoolsim.profiles import SimSettings, with_overrides
from schoolsim.sessions import SessionStore


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


# Distinct request paths counted by name; the rest are "/other".
MAX_PATHS = 64


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


class AppState:
    """Everything the handlers share; one per running simulator."""

    def __init__(self, profile: str, settings: SimSettings) -> None:
        """Fresh state for a profile name and its (possibly overridden) settings."""
        self.profile = profile
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.dataset = Dataset(settings.seed, self.now().date())
        self.sessions = SessionStore(self.rng, self.settings.max_sessions)
        self.stats = Stats()
        self.gate = Gate(self.stats)
        self.started = time.monotonic()

    def now(self) -> datetime:
        """Real time now, in China time."""
        return datetime.now(CHINA)

    def displayed_now(self) -> datetime:
        """The card center's own (slow) clock now."""
        return self.now() + timedelta(minutes=self.settings.clock_offset_minutes)

    def apply(self, overrides: Mapping[str, object]) -> SimSettings:
        """Apply run-time overrides (validated, all or nothing)."""
        new = with_overrides(self.settings, overrides)
        if new.seed != self.settings.seed:
            # A new seed is a new world: regenerate students, forget runtime changes.
            self.rng.seed(new.seed)
            self.dataset = Dataset(new.seed, self.now().date())
        self.settings = new
        self.gate.wake(new.capacity)
        return new

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
        self.sessions.sweep(self.settings.session_idle_s)
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
            "sessions": len(self.sessions),
            "profile": self.profile,
            "settings": self.settings.as_dict(),
            "uptime_s": round(time.monotonic() - self.started, 3),
        }
