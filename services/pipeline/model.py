"""What a school system and its service tell the pipeline, and what it answers: the
system's spec, its connector (how to log in and keep a session), the questions, and the
answers with their Cache-Status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Literal, Protocol, TypeVar

from services.storage import Codec

T = TypeVar("T")
S = TypeVar("S")
Source = Literal["school", "cache"]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Answer(Generic[T]):
    """A result, when the school produced it, where it came from, and its RFC 9211 Cache-Status."""

    value: T
    as_of: datetime
    source: Source = "school"
    stale: bool = False
    cache_status: str = "jnufm; fwd=uri-miss"


def combined(parts: list[Answer[list[T]]]) -> Answer[list[T]]:
    """Several answers' rows as one answer: as old as the oldest, stale if any is."""
    rows = [row for part in parts for row in part.value]
    oldest = min(parts, key=lambda p: p.as_of)
    return Answer(
        rows,
        oldest.as_of,
        "cache" if all(p.source == "cache" for p in parts) else "school",
        any(p.stale for p in parts),
        oldest.cache_status,
    )


@dataclass(frozen=True, slots=True)
class SystemSpec:
    """What the pipeline must know of a school system."""

    system: str  # its name in keys, metrics and leases: "card"
    name: str  # in messages: "the card center"
    budget: int  # school requests at once, over every worker and host
    takes_password: bool  # its questions need a student's credentials (through the gate)
    password_label: str = "password"  # noqa: S105  (in messages: "card password")


class Connector(Protocol[S]):
    """How a system with credentials is logged in to, and its sessions kept as text."""

    async def login(self, student_id: str, password: str) -> S: ...

    def session_value(self, session: S) -> str: ...

    def session_from(self, student_id: str, value: str) -> S: ...


class CookieConnector(Generic[S]):
    """A system whose session is the school's session cookie: log in with the client,
    keep the cookie, rebuild the session from it (the card center, the academic office)."""

    def __init__(
        self,
        login: Callable[[str, str], Awaitable[S]],
        make: Callable[[str, str], S],
        cookie: Callable[[S], str],
    ) -> None:
        self._login, self._make, self._cookie = login, make, cookie

    async def login(self, student_id: str, password: str) -> S:
        return await self._login(student_id, password)

    def session_value(self, session: S) -> str:
        return self._cookie(session)

    def session_from(self, student_id: str, value: str) -> S:
        return self._make(student_id, value)


@dataclass(frozen=True, slots=True)
class Question(Generic[T, S]):
    """One question to a school system: what, how fresh, how to fetch it. Who asks and by
    when come from the query it is asked in (`Pipeline.query`)."""

    kind: str  # what kind of answer: "account", "timetable", "search"
    params: str  # its parameters, as they key the cache
    max_age_s: float  # how old a cached answer may be
    fetch: Callable[[S], Awaitable[T]]  # with the session (None for systems without)
    codec: Codec[T]
    fresh: bool  # the client asked for fresh data
    # The student's name, when the answer carries it (kept with the student).
    name_of: Callable[[T], str | None] | None = None
