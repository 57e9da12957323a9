"""Bounded retries for idempotent school reads: jittered backoff and a retry budget.

The budget is a token bucket filled by calls: each call adds `ratio` tokens
(up to a cap), each retry spends one, so retries stay near `ratio` of calls
and a failing school is not hit twice as hard.
"""

from __future__ import annotations

import random


class RetryBudget:
    """Allows a retry only while retries stay under `ratio` of calls."""

    def __init__(self, ratio: float, max_tokens: float = 10.0) -> None:
        self._ratio = ratio
        self._max = max_tokens
        self._tokens = max_tokens

    def on_call(self) -> None:
        self._tokens = min(self._max, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def backoff_s(attempt: int, base_s: float) -> float:
    """Full-jitter exponential backoff before retry number `attempt` (1-based)."""
    return random.uniform(0, base_s * (2 ** (attempt - 1)))
