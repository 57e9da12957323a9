"""The pipeline's cache stage: stored answers read through storage's one door, and the
answers made of them (a hit, a stale answer standing in); what is good enough is
decided in services/pipeline/decisions.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from math import inf
from typing import Any, TypeVar

from observability import metrics
from services.cache import CacheEntry, CacheKey
from services.pipeline import decisions
from services.pipeline.decisions import CachePolicy
from services.pipeline.model import Answer, Question
from services.pipeline.tickets import Ticket
from services.storage import Codec, Storage

T = TypeVar("T")


class CacheStage:
    """One system's stored answers, for one worker."""

    def __init__(
        self, system: str, storage: Storage, policy: CachePolicy, now: Callable[[], datetime]
    ) -> None:
        self.system = system
        self.policy = policy
        self._storage = storage
        self._now = now

    def key(self, ticket: Ticket, q: Question[Any, Any]) -> CacheKey:
        return CacheKey(self.system, q.kind, ticket.subject, q.params)

    async def lookup(
        self, key: CacheKey, now: datetime, q: Question[T, Any], matches: bool
    ) -> CacheEntry[T] | None:
        """The newest stored answer to the question, of any age (None if there is none,
        or this request may not be answered from the cache)."""
        if not decisions.cache_usable(self.policy, matches):
            return None
        return await self._storage.lookup(key, now, q.max_age_s, q.codec)

    def current(self, key: CacheKey, now: datetime) -> CacheEntry[Any] | None:
        """The worker's memory's result for the key (no other level is read), if any."""
        return self._storage.memory.get(key, now)

    async def last_answer(
        self, kind: str, subject: str, params: str, codec: Codec[T]
    ) -> Answer[T] | None:
        """The last good answer stored for a question, whatever its age, without asking
        the school (None if there is none, or storage cannot be read)."""
        key = CacheKey(self.system, kind, subject, params)
        entry = await self._storage.lookup(key, self._now(), inf, codec)
        if entry is None:
            return None
        return Answer(entry.value, entry.fetched_at, "cache", False, "jnufm; hit")

    @staticmethod
    def hit(entry: CacheEntry[T], status: str) -> Answer[T]:
        return Answer(entry.value, entry.fetched_at, "cache", False, status)

    @staticmethod
    def stale(key: CacheKey, entry: CacheEntry[T], status: str) -> Answer[T]:
        """An old answer standing in for the school's."""
        metrics.record_cache(key.kind, "stale", "db")
        return Answer(entry.value, entry.fetched_at, "cache", True, status)
