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
    kind: str  # what the school page was: account, today, history
    student_id: str
    params: str = ""


@dataclass(frozen=True, slots=True)
class CacheEntry(Generic[T]):
    value: T
    fetched_at: datetime

    def age_s(self, now: datetime) -> float:
        return max(0.0, (now - self.fetched_at).total_seconds())


class MemoryCache:
    """A size-bounded LRU map; entries older than max_age_s are dropped on read."""

    def __init__(self, max_entries: int, max_age_s: float) -> None:
        self._entries: OrderedDict[CacheKey, CacheEntry[Any]] = OrderedDict()
        self._max_entries = max_entries
        self._max_age_s = max_age_s

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: datetime) -> CacheEntry[Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.age_s(now) > self._max_age_s:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: CacheKey, entry: CacheEntry[Any]) -> None:
        old = self._entries.get(key)
        if old is not None and old.fetched_at > entry.fetched_at:
            return  # never replace newer data with older
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
