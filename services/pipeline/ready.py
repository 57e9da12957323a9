"""Whole answers kept ready: a warm hit that does almost nothing.

A handler that answered from the cache keeps the body it wrote, per (route, student,
question), beside the cached result it was made of (`ReadyAnswers.keep`). The next
request for the same route, student and question is answered with that body
(`Pipeline.ready`) when all of these hold, else it takes the whole path:

- the client did not ask for fresh data;
- the credential gate proves the password right from this host's table alone
  (`CredentialGate.proves`: the verifier fresh and this password's, neither the
  student nor an anonymous caller locked out, nothing being decided for the
  student): the same reads and the same decision as `admit` for such a password,
  and a password it cannot prove so is left to `admit` (so the gate decides
  nothing differently: a refusal, a reservation, a lockout are all admit's);
- the worker's memory cache still holds the very result the body was made of
  (compared by identity: a newer result, a purge, a student's data forgotten or a
  password change all replace or drop it), and it is young enough for the question.

What it skips is the pipeline's stages (the ticket, the deadline, the cache stage's
decisions), the answer model and its JSON: the per-address rate limit and the
parameter check (in the handler's `prepare`), the access line and the metrics stay.
A body is kept only if it is a function of the result alone (`Answer.source` "cache",
not stale: no envelope field says "school" or "stale" for a later request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.cache import CacheKey

# A kept answer's key: route, student, question kind, question parameters.
ReadyKey = tuple[str, str, str, str]
# Forgotten at once when full (the oldest first): a bound, not a cache policy.
EVICT_SHARE: Final = 0.125


@dataclass(frozen=True, slots=True)
class Kept:
    """A body, and the cached result (its key, its value object) it was made of."""

    body: bytes
    key: CacheKey
    value: object


@dataclass(frozen=True, slots=True)
class ReadyHit:
    """A kept body that may answer this request: its result's age, and the answer's
    Cache-Status."""

    body: bytes
    age_s: float
    cache_status: str


class ReadyAnswers:
    """The bodies kept ready by one worker, at most `max_entries` (0: none kept)."""

    __slots__ = ("_kept", "_max")

    def __init__(self, max_entries: int) -> None:
        self._kept: dict[ReadyKey, Kept] = {}
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: ReadyKey) -> Kept | None:
        return self._kept.get(key)

    def keep(self, key: ReadyKey, body: bytes, cache_key: CacheKey, value: object) -> None:
        if self._max <= 0:
            return
        kept = self._kept
        if key not in kept and len(kept) >= self._max:
            # Insertion order is age order: the oldest eighth goes in one pass.
            for old in list(kept)[: max(1, int(self._max * EVICT_SHARE))]:
                del kept[old]
        kept[key] = Kept(body, cache_key, value)

    def forget(self, key: ReadyKey) -> None:
        self._kept.pop(key, None)
