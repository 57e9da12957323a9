"""The time after which a school client starts no new request, set per query by the caller.

A query (login, then pages) has one deadline. A request already sent runs to
its own timeout (the school is working on it, and we keep our budget slot
until it ends, so the school never sees more than the budget), but once the
deadline has passed no further request of that query is sent: its answer
could no longer reach anyone in time.
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


def check(where: str) -> None:
    """Raise DeadlinePassed if the current deadline has passed."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() >= deadline():
        raise DeadlinePassed(f"{where}: not sent, the query's deadline has passed")
