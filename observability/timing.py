"""Where a request's time goes: a per-request timer in a context variable, and its request id.

The base handler starts a `RequestTimer` for each request and makes it current
(`activate`); code anywhere below, on the same task or on tasks it creates,
adds time to named parts without being passed the timer:

    with timed("school"):            # a block of code
        ...
    add_time("db", seconds)          # time measured elsewhere (SQLAlchemy events)
    set_cache_status("hit")          # shown in the access log; default "-"

The handler turns it into `Server-Timing: cache;dur=0.1, db;dur=2.3,
school;dur=812.0, total;dur=815.2` (milliseconds) and the access log line.
Outside a request (start-up, the tests' direct calls) these functions do nothing.
"""

from __future__ import annotations

import contextvars
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# The parts every API answer reports, in this order (0 when unused).
PARTS = ("cache", "db", "school")

# A client's X-Request-Id is kept only if it is short and plain (it goes into logs).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")


class _RandomIds:
    """64-bit random request ids from the OS's generator, read 4 KiB at a time: one
    getrandom(2) per 512 ids rather than per request. A forked child starts afresh, so
    no two processes hand out the same bytes. Used from the worker's loop thread only."""

    __slots__ = ("_at", "_bytes")
    CHUNK = 4096

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0

    def reset(self) -> None:
        self._bytes, self._at = b"", 0

    def next(self) -> str:
        at = self._at
        if at + 8 > len(self._bytes):
            self._bytes, at = secrets.token_bytes(self.CHUNK), 0
        self._at = at + 8
        return self._bytes[at : at + 8].hex()


_ids = _RandomIds()
os.register_at_fork(after_in_child=_ids.reset)


def new_request_id() -> str:
    return _ids.next()


def request_id_from(header: str | None) -> str:
    """The client's request id if it is sane, else a new one."""
    if header is not None and _SANE_REQUEST_ID.fullmatch(header.strip()):
        return header.strip()
    return new_request_id()


@dataclass(slots=True)
class RequestTimer:
    """Milliseconds spent per part during one request, and what the cache did."""

    request_id: str
    spent_ms: dict[str, float] = field(default_factory=dict)
    cache_status: str = "-"
    # Whom the school requests of this request are charged to (a registered client's
    # name, else "anonymous"): metrics' jnufm_school_cost.
    client: str = "anonymous"

    def add(self, part: str, seconds: float) -> None:
        self.spent_ms[part] = self.spent_ms.get(part, 0.0) + seconds * 1000.0

    def server_timing(self, total_s: float) -> str:
        """The Server-Timing header value, parts in a fixed order then any others."""
        if not self.spent_ms:  # answered from memory: every part took no time
            return f"{_NO_PARTS}, total;dur={total_s * 1000.0:.1f}"
        spent = self.spent_ms
        # PARTS, written out (the usual answer has no other part); an unused one is 0.0.
        text = (
            f"cache;dur={_ms(spent.get('cache'))}, db;dur={_ms(spent.get('db'))}, "
            f"school;dur={_ms(spent.get('school'))}"
        )
        if len(spent) > sum(1 for name in PARTS if name in spent):
            others = sorted(name for name in spent if name not in PARTS)
            text += "".join(f", {name};dur={spent[name]:.1f}" for name in others)
        return f"{text}, total;dur={total_s * 1000.0:.1f}"


def _ms(value: float | None) -> str:
    return "0.0" if value is None else f"{value:.1f}"


_NO_PARTS = ", ".join(f"{name};dur=0.0" for name in PARTS)

_current: contextvars.ContextVar[RequestTimer | None] = contextvars.ContextVar(
    "jnufm_request_timer", default=None
)


def activate(timer: RequestTimer) -> None:
    """Make timer the current request's (for this task and the tasks it creates)."""
    _current.set(timer)


def current_timer() -> RequestTimer | None:
    return _current.get()


def current_request_id() -> str | None:
    timer = _current.get()
    return timer.request_id if timer is not None else None


def add_time(part: str, seconds: float) -> None:
    """Add seconds to a part of the current request's time, if there is a current request."""
    timer = _current.get()
    if timer is not None:
        timer.add(part, seconds)


@contextmanager
def timed(part: str) -> Iterator[None]:
    """Add the time the block takes to a part of the current request's time."""
    start = time.perf_counter()
    try:
        yield
    finally:
        add_time(part, time.perf_counter() - start)


def set_cache_status(status: str) -> None:
    """What the cache did for the current request ("hit", "miss", "stale"), for the access log."""
    timer = _current.get()
    if timer is not None:
        timer.cache_status = status


def instrument_engine(sync_engine: Any) -> None:
    """Count the time of every SQL statement of this engine as the current request's "db" time."""
    from sqlalchemy import event

    def before(
        _conn: Any, _cursor: Any, _stmt: Any, _params: Any, context: Any, _many: Any
    ) -> None:
        if context is not None:
            context._jnufm_started = time.perf_counter()

    def after(_conn: Any, _cursor: Any, _stmt: Any, _params: Any, context: Any, _many: Any) -> None:
        started = getattr(context, "_jnufm_started", None)
        if started is not None:
            add_time("db", time.perf_counter() - started)

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
