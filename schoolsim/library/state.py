"""What the simulated library systems share: their state, counters and calibration."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from typing import Any

from schoolsim.library.dataset import Book, Campus, Catalogue
from schoolsim.overload import SimHandler, SystemState
from schoolsim.profiles import SimSettings, profile, with_overrides

# Guess (no measurements exist of the 2013 catalogues): old CGI-style systems on
# one server each, a few hundred ms a search when idle, few requests served at
# once, steep slowdown under load, a few random failures. The main WebPAC
# (Millennium) was the sturdier; the Zhuhai ILAS (a CGI per request) the
# weakest; the cover service an outside web service. See schoolsim/README.md.
CALIBRATION: dict[str, dict[str, dict[str, object]]] = {
    "opac": {
        "jnu-2013": {
            "latency_ms_median": 150.0,
            "latency_sigma": 0.5,
            "latency_ms_min": 20.0,
            "latency_ms_max": 20_000.0,
            "load_slowdown": 0.35,
            "capacity": 6,
            "queue": 12,
            "queue_timeout_s": 3.0,
            "overload_action": "error",
            "failure_rate": 0.02,
        },
    },
    "ilas": {
        "jnu-2013": {
            "latency_ms_median": 250.0,
            "latency_sigma": 0.5,
            "latency_ms_min": 30.0,
            "latency_ms_max": 20_000.0,
            "load_slowdown": 0.8,
            "capacity": 3,
            "queue": 6,
            "queue_timeout_s": 2.0,
            "overload_action": "error",
            "failure_rate": 0.04,
        },
    },
    "covers": {
        "jnu-2013": {
            "latency_ms_median": 60.0,
            "latency_sigma": 0.6,
            "latency_ms_min": 10.0,
            "latency_ms_max": 10_000.0,
            "load_slowdown": 0.05,
            "capacity": 16,
            "queue": 32,
            "queue_timeout_s": 5.0,
            "overload_action": "error",
            "failure_rate": 0.01,
        },
    },
}


def calibrated(system: str, profile_name: str, given: SimSettings) -> SimSettings:
    """The system's own calibration of a profile, with the overrides `given` carries
    (every value in which it differs from the plain profile) applied over it."""
    plain = profile(profile_name)
    overrides = {
        f.name: getattr(given, f.name)
        for f in dataclasses.fields(SimSettings)
        if getattr(given, f.name) != getattr(plain, f.name)
    }
    own = with_overrides(plain, CALIBRATION.get(system, {}).get(profile_name, {}))
    return with_overrides(own, overrides)


class LibraryState(SystemState):
    """One simulated library system: the shared overload state, its counters, its prefix."""

    def __init__(self, system: str, profile_name: str, settings: SimSettings, prefix: str) -> None:
        super().__init__(profile_name, settings)
        self.system = system
        self.prefix = prefix
        self.today = date.today()
        self.counts: dict[str, int] = {}
        self.zero_counts()

    def zero_counts(self) -> None:
        self.counts = {"searches": 0, "records": 0, "covers": 0, "covers_missing": 0}

    def count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def reset(self, data: Mapping[str, Any]) -> None:
        """Zero the counters (the shared ones and this system's)."""
        super().reset(data)
        self.zero_counts()

    def stats_json(self) -> dict[str, Any]:
        return {**super().stats_json(), **self.counts, "system": self.system}


class TruthHandler(SimHandler):
    """Base of a library system's truth endpoints (JSON, outside the overload layer)."""

    state: LibraryState

    def initialize(self, state: SystemState) -> None:
        assert isinstance(state, LibraryState)
        self.state = state


class CatalogueState(LibraryState):
    """A catalogue's state: a LibraryState with its books."""

    def __init__(
        self,
        system: str,
        profile_name: str,
        settings: SimSettings,
        prefix: str,
        campus: Campus,
        size: int,
    ) -> None:
        super().__init__(system, profile_name, settings, prefix)
        self.campus: Campus = campus
        self.size = size
        self.catalogue = Catalogue(settings.seed, campus, size, self.today)

    def reseed(self, seed: int) -> None:
        """A new seed is a new collection."""
        self.catalogue = Catalogue(seed, self.campus, self.size, self.today)


def book_json(book: Book) -> dict[str, Any]:
    """A book as the truth endpoints show it."""
    return {
        "record_id": book.record_id,
        "title": book.title,
        "author": book.author,
        "publication": book.publication,
        "year": str(book.year),
        "isbn": book.isbn,
        "isbn_shown": book.isbn_shown,
        "call_number": book.call_number,
        "available": book.available,
        "copies": [
            {
                "location": c.location,
                "barcode": c.barcode,
                "state": c.state,
                "due": c.due.isoformat() if c.due else None,
            }
            for c in book.copies
        ],
    }


class BookTruthHandler(TruthHandler):
    """GET /__sim/<system>/books/<id>: one book."""

    state: CatalogueState

    def get(self, record_id: str) -> None:
        book = self.state.catalogue.by_id.get(record_id)
        if book is None:
            self.send({"error": "no such book"}, 404)
            return
        self.send(book_json(book))


class SearchTruthHandler(TruthHandler):
    """GET /__sim/<system>/search?q=...&available=1&title_only=1: what a search finds."""

    state: CatalogueState

    def get(self) -> None:
        query = self.get_query_argument("q", "")
        available = self.get_query_argument("available", "0") == "1"
        title_only = self.get_query_argument("title_only", "0") == "1"
        found = self.state.catalogue.search(query, title_only, available)
        self.send({"total": len(found), "ids": [b.record_id for b in found[:200]]})


def truth_routes(system: str, state: CatalogueState) -> list[tuple[str, type, dict[str, Any]]]:
    s = {"state": state}
    return [
        (rf"/__sim/{system}/books/([0-9A-Za-z]+)", BookTruthHandler, s),
        (rf"/__sim/{system}/search", SearchTruthHandler, s),
    ]
