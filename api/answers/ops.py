"""The operations answers: liveness (/healthz), readiness (/readyz), the operator
dashboard's figures (/ops/dashboard.json) and the contract itself (/openapi.json).
2013's /version is accounts.py's Version2013."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, PlainSerializer, WithJsonSchema

from api.answers.common import AnswerModel

BreakerState = Literal["closed", "half_open", "open"]
NonNegative = Annotated[float, Field(ge=0)]
# A rate over the dashboard's window: null until the worker has an earlier reading.
Rate = NonNegative | None


def _instant(value: datetime) -> str:
    if value.utcoffset() is None:
        raise ValueError("an instant needs its offset")
    return value.isoformat(timespec="seconds")


# A moment written at the offset it was read with (the database's UTC), seconds precision.
Instant = Annotated[
    datetime,
    PlainSerializer(_instant, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]

# --- /healthz, /readyz -----------------------------------------------------------------------


class Health(AnswerModel):
    status: Literal["ok"]
    worker: int = Field(description="index of the worker that answered")
    pid: int
    generation: int = Field(description="configuration generation")
    version: str = Field(
        description="jnufm's version (pyproject.toml; /openapi.json's info.version)"
    )
    mode: Literal["development", "production"] = Field(
        description="the server's mode (`mode` in config.yaml); the page offers no "
        "simulator credentials in production"
    )


class Readiness(AnswerModel):
    ready: bool
    degraded: bool
    database: str = Field(description="ok, or why not")
    migrations: str = Field(description="current, or at which revision")
    writes: Literal["ok", "failing"]
    deferred_writes: int = Field(ge=0)
    school: dict[str, BreakerState]
    draining: bool
    worker: int


# --- /ops/dashboard.json -----------------------------------------------------------------------


class DashboardLatency(AnswerModel):
    p50: Rate
    p99: Rate


class DashboardSchool(AnswerModel):
    system: str
    requests_per_s: Rate
    failures_per_s: Rate
    in_flight: Rate = Field(description="school requests in flight, averaged over the window")
    budget: Annotated[int, Field(ge=0)] | None
    waiting: NonNegative
    breaker: BreakerState


class DashboardClient(AnswerModel):
    client: str
    school_requests: NonNegative
    school_requests_per_s: Rate


class DashboardWatches(AnswerModel):
    live: NonNegative | None = Field(description="watches not ended")
    polls_per_min: Rate = Field(description="polls of the school by students' watches, a minute")
    outbox_depth: NonNegative | None = Field(description="messages waiting to be delivered")
    given_up: NonNegative | None = Field(
        description="messages given up on, still kept (watches.keep_s)"
    )
    delivered_per_min: Rate
    retries_per_min: Rate = Field(description="delivery attempts failed, retried")
    failures_per_min: Rate = Field(description="messages given up on")


class DashboardWorker(AnswerModel):
    worker: int
    pid: int | None
    generation: int


class DashboardWorkers(AnswerModel):
    count: NonNegative
    live: list[DashboardWorker]


class DashboardAnsweredBy(AnswerModel):
    worker: int
    generation: int


class DashboardLockout(AnswerModel):
    scope: Literal["student", "ip", "client", "account"]
    who: str = Field(description="a student's system and pseudonym, an address, a client")
    wrong: int = Field(ge=0)
    allowed: int = Field(ge=1)
    until: Instant


class DashboardPage(AnswerModel):
    id: int
    system: str
    page: str = Field(description="the page kind (login, balance, timetable, search...)")
    last_seen: Instant
    seen: int = Field(ge=1)
    reason: str


# Fields in the order the dashboard writes them (observability/dashboard.py's figures, then
# what its handler adds).
class Dashboard(AnswerModel):
    window_s: float | None = Field(description="seconds the rates cover")
    requests_per_s: Rate
    requests_total: NonNegative
    in_flight: NonNegative
    cache_hit_ratio: Annotated[float, Field(ge=0, le=1)] | None
    latency_ms: DashboardLatency
    school: list[DashboardSchool]
    clients: list[DashboardClient] = Field(
        description="clients by the school requests made for them (a registered client's "
        "name, or anonymous: every unregistered address)"
    )
    watches: DashboardWatches
    workers: DashboardWorkers
    answered_by: DashboardAnsweredBy
    lockouts: list[DashboardLockout] | None = Field(
        description="students and addresses locked out, and registered clients slowed down, "
        "now (null: the database cannot say)"
    )
    unreadable_pages: list[DashboardPage] | None = Field(
        description="the last school pages no client could read, kept redacted (python "
        "server.py pages show ID); null: the database cannot say"
    )


# --- /openapi.json ---------------------------------------------------------------------------


class OpenApiDocument(AnswerModel):
    """an OpenAPI 3.1 document"""

    # The document's other keys (components, servers, tags...) are its own.
    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


MODELS = (Health, Readiness, Dashboard, OpenApiDocument)
