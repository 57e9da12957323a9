"""The simulated card center's run-time state (the overload layer's is in overload.py)."""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from schoolsim.card.dataset import CHINA, Dataset
from schoolsim.card.sessions import SessionStore
from schoolsim.overload import SystemState
from schoolsim.profiles import SimSettings


class AppState(SystemState):
    """The simulated card center's state: the shared parts, its students and sessions."""

    def __init__(self, profile: str, settings: SimSettings) -> None:
        """Fresh state for a profile name and its (possibly overridden) settings."""
        super().__init__(profile, settings)
        self.dataset = Dataset(settings.seed, self.now().date())
        self.sessions = SessionStore(self.rng, self.settings.max_sessions)

    def now(self) -> datetime:
        """Real time now, in China time."""
        return datetime.now(CHINA)

    def displayed_now(self) -> datetime:
        """The card center's own (slow) clock now."""
        return self.now() + timedelta(minutes=self.settings.clock_offset_minutes)

    def reseed(self, seed: int) -> None:
        """A new seed is a new world: regenerate students, forget runtime changes."""
        self.dataset = Dataset(seed, self.now().date())

    def reset(self, data: Mapping[str, Any]) -> None:
        """Zero the counters; {"sessions": true} also drops every session."""
        super().reset(data)
        if data.get("sessions") is True:
            self.sessions.clear()

    def stats_json(self) -> dict[str, Any]:
        """The /__sim/stats document, with the live sessions."""
        self.sessions.sweep(self.settings.session_idle_s)
        return {**super().stats_json(), "sessions": len(self.sessions)}
