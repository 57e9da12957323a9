"""The simulated academic office's run-time state: sessions, view state keys, faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schoolsim.academic.dataset import Dataset
from schoolsim.overload import SystemState
from schoolsim.profiles import SimSettings

# ASP.NET session ids: 24 characters of a-z and 0-5.
_SID_ALPHABET = "abcdefghijklmnopqrstuvwxyz012345"
# Exam reports a session keeps (each query makes one).
MAX_REPORTS = 8
_VIEWSTATE_HEAD = "/wEPDwUK"


@dataclass
class Session:
    """One ASP.NET session: its captcha, who is logged in, its exam reports."""

    sid: str
    last_seen: float
    captcha: str | None = None
    stuid: str | None = None
    reports: OrderedDict[str, tuple[int, int]] = field(default_factory=OrderedDict)


class Sessions:
    """Live sessions, at most `max_sessions` (least recently used forgotten first)."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, sid: str | None, idle_s: float) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > idle_s:
            del self._by_id[sid]
            return None
        session.last_seen = now
        self._by_id.move_to_end(sid)
        return session

    def create(self, sid: str, max_sessions: int) -> Session:
        session = Session(sid, time.monotonic())
        self._by_id[sid] = session
        while len(self._by_id) > max_sessions:
            self._by_id.popitem(last=False)
        return session

    def sweep(self, idle_s: float) -> None:
        now = time.monotonic()
        for sid in [s.sid for s in self._by_id.values() if now - s.last_seen > idle_s]:
            del self._by_id[sid]

    def clear(self) -> None:
        self._by_id.clear()


class AcademicState(SystemState):
    """The academic office's state: the shared parts, its students, sessions and faults."""

    def __init__(self, profile: str, settings: SimSettings) -> None:
        super().__init__(profile, settings)
        self.dataset = Dataset(settings.seed)
        self.sessions = Sessions()
        self._key = self.rng.getrandbits(128).to_bytes(16, "big")
        self.zero()
        # Faults asked through /__sim/academic/faults: how many more of each to cause.
        self.faults: dict[str, int] = {"wrong_captcha": 0, "stale_viewstate": 0}

    def zero(self) -> None:
        self.captcha_wrong = 0
        self.captcha_fetches = 0
        self.profile_fetches = 0
        self.viewstate_failures = 0
        self.redirects_to_login = 0

    def reseed(self, seed: int) -> None:
        self.dataset = Dataset(seed)

    def reset(self, data: Mapping[str, Any]) -> None:
        """Zero the counters; {"sessions": true} also drops every session and fault."""
        super().reset(data)
        self.zero()
        if data.get("sessions") is True:
            self.sessions.clear()
            self.faults = dict.fromkeys(self.faults, 0)

    def new_sid(self) -> str:
        while True:
            sid = "".join(self.rng.choice(_SID_ALPHABET) for _ in range(24))
            if self.sessions.get(sid, self.settings.session_idle_s) is None:
                return sid

    def rotate_key(self) -> None:
        """A new machine key (as an application restart): every view state goes stale."""
        self._key = self.rng.getrandbits(128).to_bytes(16, "big")

    # View state: the page's name and a nonce, signed (as ASP.NET's MAC).
    def viewstate(self, page: str) -> str:
        payload = f"{page}|{self.rng.getrandbits(48):012x}".encode()
        mac = hmac.new(self._key, payload, hashlib.sha1).digest()[:10]
        return _VIEWSTATE_HEAD + base64.b64encode(payload + mac).decode()

    def event_validation(self, page: str) -> str:
        mac = hmac.new(self._key, f"ev|{page}".encode(), hashlib.sha1).digest()
        return "/wEW" + base64.b64encode(mac).decode()

    def valid(self, page: str, viewstate: str, validation: str) -> bool:
        """Whether a posted view state and event validation are this page's, under this key."""
        if self.faults["stale_viewstate"] > 0:
            self.faults["stale_viewstate"] -= 1
            return False
        if not viewstate.startswith(_VIEWSTATE_HEAD):
            return False
        try:
            raw = base64.b64decode(viewstate[len(_VIEWSTATE_HEAD) :], validate=True)
        except ValueError:
            return False
        payload, mac = raw[:-10], raw[-10:]
        good = hmac.new(self._key, payload, hashlib.sha1).digest()[:10]
        if not hmac.compare_digest(mac, good) or not payload.startswith(page.encode() + b"|"):
            return False
        return hmac.compare_digest(validation, self.event_validation(page))

    def stats_json(self) -> dict[str, Any]:
        self.sessions.sweep(self.settings.session_idle_s)
        return {
            **super().stats_json(),
            "sessions": len(self.sessions),
            "captcha_fetches": self.captcha_fetches,
            "captcha_wrong": self.captcha_wrong,
            "profile_fetches": self.profile_fetches,
            "viewstate_failures": self.viewstate_failures,
            "redirects_to_login": self.redirects_to_login,
            "faults": dict(self.faults),
        }
