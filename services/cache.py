"""The first cache level: a bounded in-memory LRU per worker, in front of the shared database level.

Entries keep the typed value and when the school produced it; freshness is
decided by the caller per query kind, so one stored account page can be
fresh enough for a profile and too old for a balance. Whom an entry may be
served to is the credential gate's decision (services/gate.py), not the
cache's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What a stored answer answers: a question of a kind, with parameters, to a school
    system, about a subject (a student number, or "" for an answer every student shares)."""

    system: str
    kind: str
    subject: str
    params: str = ""


# Python objects take this many times the bytes of their stored JSON (measured on
# account pages and transaction lists: 4.1-5.3x), plus a fixed cost per entry.
OBJECT_FACTOR = 5
ENTRY_OVERHEAD = 256


def estimated_size(payload: str) -> int:
    """What an entry decoded from this stored payload costs in memory, roughly."""
    return OBJECT_FACTOR * len(payload.encode()) + ENTRY_OVERHEAD


@dataclass(frozen=True, slots=True)
class CacheEntry(Generic[T]):
    value: T
    fetched_at: datetime
    size: int = ENTRY_OVERHEAD  # bytes of memory it costs, estimated (estimated_size)

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.fetched_at).total_seconds())


class MemoryCache:
    """An LRU map bounded in entries and in (estimated) bytes; entries older than
    max_age_s are dropped on read."""

    def __init__(self, max_entries: int, max_age_s: float, max_bytes: int = 1 << 62) -> None:
        self._entries: OrderedDict[CacheKey, CacheEntry[Any]] = OrderedDict()
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        self._max_bytes = max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: datetime) -> CacheEntry[Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.age_s(now) > self._max_age_s:
            del self._entries[key]
            self.bytes -= entry.size
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: CacheKey, entry: CacheEntry[Any]) -> None:
        old = self._entries.get(key)
        if old is not None and old.fetched_at > entry.fetched_at:
            return  # never replace newer data with older
        if entry.size > self._max_bytes:
            return  # would evict everything else and still not fit
        if old is not None:
            self.bytes -= old.size
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self.bytes += entry.size
        while len(self._entries) > self._max_entries or self.bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= evicted.size
