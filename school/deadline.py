"""The time after which a school client starts no new request, set per query by the caller.

A query (login, then pages) has one deadline. A request already sent runs to
its own timeout (the school is working on it, and we keep our budget slot
until it ends, so the school never sees more than the budget), but no further
request of that query is sent once it could not end before the deadline (the
client passes how long its requests have been taking): its answer could no
longer reach anyone in time, and its budget slot is better given to another.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from school.errors import DeadlinePassed

_deadline: contextvars.ContextVar[Callable[[], float] | None] = contextvars.ContextVar(
    "jnufm_school_deadline", default=None
)


@contextmanager
def requests_until(deadline: Callable[[], float]) -> Iterator[None]:
    """Within the block (and the tasks it creates), start no request after `deadline()`
    (time.monotonic(); asked before each request, so it may come closer, e.g. on stop)."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def check(where: str, expected_s: float = 0.0) -> None:
    """Raise DeadlinePassed if a request expected to take `expected_s` could not end
    before the current deadline."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() + expected_s >= deadline():
        raise DeadlinePassed(f"{where}: not sent, it could not end before the query's deadline")
