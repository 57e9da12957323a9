"""Server-Timing, request ids, /readyz, /metrics access and exposition, log formats (in process)."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine
from tornado.netutil import bind_sockets

from db.engine import make_engine
from db.migrate import migrate
from handlers import make_app
from harness.processes import ROOT, Proc
from observability import metrics
from observability.logs import JsonFormatter, RequestIdFilter, TextFormatter
from observability.probes import MetricsAccess, OpsDeps, Readiness
from observability.timing import RequestTimer, activate, request_id_from
from runtime.wiring import build_worker_services
from runtime.worker import make_http_server
from settings import ConfigError, Settings, load_settings
from tests.conftest import make_settings, serve_app


def routes_of_app() -> list[tuple[str, type, dict[str, object]]]:
    """Every route pattern of the app (the handlers' arguments do not matter here)."""
    from handlers import routes
    from handlers.base import AppDeps

    ops = OpsDeps(debug_block_route=True)
    return routes(AppDeps(card=None, retry_after_s=1, ops=ops))  # type: ignore[arg-type]


CREDS = ("2012052690", "052690")
TIMING = re.compile(r"^cache;dur=[\d.]+, db;dur=([\d.]+), school;dur=([\d.]+), total;dur=([\d.]+)$")


async def test_api_answers_say_where_the_time_went(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/v1/card/balance", auth=CREDS)
    assert resp.status_code == 200
    match = TIMING.match(resp.headers["Server-Timing"])
    assert match, resp.headers["Server-Timing"]
    db, school, total = (float(g) for g in match.groups())
    assert school > 0, "the card center was asked (login + account page)"
    assert db > 0, "the result was recorded"
    assert total >= school


async def test_refusals_carry_a_request_id_but_no_timing(http_client: httpx.AsyncClient) -> None:
    """A refused caller learns nothing from timing parts (was the cache, the school asked?)."""
    answers = [
        await http_client.get("/no/such/thing"),
        await http_client.get("/v1/card/transactions", params={"start": "not a date"}),
        await http_client.get("/v1/card/balance"),
    ]
    # Wrong passwords: 401 from the school, then 429 once the student is locked out.
    for n in range(10):
        answers.append(await http_client.get("/v1/card/balance", auth=(CREDS[0], f"11111{n}")))
        if answers[-1].status_code == 429:
            break
    statuses = [resp.status_code for resp in answers]
    assert statuses[:4] == [404, 400, 401, 401], statuses
    assert statuses[-1] == 429, statuses
    for resp in answers:
        assert "Server-Timing" not in resp.headers, (resp.status_code, resp.headers)
        assert re.fullmatch(r"[0-9a-f]{16}", resp.headers["X-Request-Id"])
    ok = await http_client.get("/healthz")
    assert re.fullmatch(r"total;dur=[\d.]+$", ok.headers["Server-Timing"].split(", ")[-1])


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-2026-11-27.abc:42", True),
        ("has spaces in it", False),
        ("x" * 200, False),
        ("", False),
    ],
)
async def test_request_id_is_echoed_only_when_sane(
    http_client: httpx.AsyncClient, sent: str, kept: bool
) -> None:
    resp = await http_client.get("/healthz", headers={"X-Request-Id": sent})
    rid = resp.headers["X-Request-Id"]
    if kept:
        assert rid == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{16}", rid), rid


async def test_readyz_reports_database_migrations_and_breakers(
    http_client: httpx.AsyncClient,
) -> None:
    resp = await http_client.get("/readyz")
    assert resp.status_code == 200
    body = resp.json()
    assert body["ready"] is True
    assert body["database"] == "ok"
    assert body["migrations"] == "current"
    assert body["draining"] is False
    assert body["school"] == {
        system: "closed" for system in ("card", "academic", "library", "library_zhuhai", "covers")
    }


async def test_readyz_is_false_when_the_database_is_unreachable(tmp_path: object) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/missing-dir/x.sqlite3")
    try:
        body = await Readiness(engine, 30.0).check()
    finally:
        await engine.dispose()
    assert body["ready"] is False
    assert body["database"].startswith("unreachable")


async def test_readyz_is_false_before_migrations(settings: Settings) -> None:
    engine = make_engine(settings.database)  # a fresh database: no schema yet
    try:
        body = await Readiness(engine, 30.0).check()
    finally:
        await engine.dispose()
    assert body["ready"] is False


async def test_metrics_endpoint_counts_requests(http_client: httpx.AsyncClient) -> None:
    def count(text: str) -> float:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "jnufm_http_requests_total"
                    and sample.labels.get("route") == "/readyz"
                    and sample.labels.get("status") == "200"
                ):
                    return sample.value
        return 0.0

    before = await http_client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["Content-Type"].startswith("text/plain")
    for _ in range(3):
        await http_client.get("/readyz")
    after = await http_client.get("/metrics")
    assert count(after.text) - count(before.text) == 3


@pytest.fixture
async def guarded_url(db_url: str, sim: Proc) -> AsyncIterator[str]:
    """The app with /metrics open only to 10.0.0.0/8 or a bearer token."""
    settings = make_settings(
        db_url,
        sim.url,
        **{"metrics.allow_networks": ["10.0.0.0/8"], "metrics.bearer_token": "s3cret-token"},
    )
    engine = make_engine(settings.database)
    await migrate(engine)
    await engine.dispose()
    services = await build_worker_services(settings)
    sockets = bind_sockets(0, "127.0.0.1")
    server = make_http_server(make_app(services.deps, settings.http), settings.http)
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
    server.stop()
    await server.close_all_connections()
    await services.close()


async def test_metrics_are_refused_outside_the_allowed_networks(guarded_url: str) -> None:
    async with httpx.AsyncClient(base_url=guarded_url, trust_env=False) as client:
        refused = await client.get("/metrics")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 403
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 200
        assert "jnufm_http_requests_total" in ok.text


def test_metrics_access_rules() -> None:
    access = MetricsAccess()
    assert access.allows("127.0.0.1", None)
    assert access.allows("::1", None)
    assert access.allows("::ffff:127.0.0.1", None)
    assert not access.allows("192.0.2.7", None)
    assert not access.allows("not an address", None)


def test_debug_route_is_refused_in_production() -> None:
    with pytest.raises(ConfigError, match=r"debug\.block_route: refused in production mode"):
        load_settings(
            None,
            env={},
            overrides={
                "mode": "production",
                "secret_key": "kV7nQ2xR9wLp4ZtB8mYc3HsJ6dFg1QeA0uNa",
                "debug.block_route": True,
            },
        )


def test_heartbeat_timeout_must_exceed_its_interval() -> None:
    with pytest.raises(ConfigError, match="heartbeat_timeout_s must be longer"):
        load_settings(
            None,
            env={},
            overrides={
                "supervisor.heartbeat_interval_s": 2,
                "supervisor.heartbeat_timeout_s": 1,
            },
        )


def test_service_events_appear_in_the_exposition() -> None:
    metrics.record_cache("account", "hit")
    metrics.record_cache("account", "stale", level="db")
    metrics.coalesced_wait("account")
    metrics.budget_queue("card", 1)
    metrics.budget_wait("card", 0.2)
    metrics.budget_rejected("card")
    metrics.set_breaker_state("card", "open")
    metrics.record_rate_limited("student")
    text, _ = metrics.render()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }
    hit = (
        "jnufm_cache_lookups_total",
        (("kind", "account"), ("level", "memory"), ("outcome", "hit")),
    )
    assert samples[hit] >= 1
    assert samples[("jnufm_breaker_state", (("system", "card"),))] == 2
    assert samples[("jnufm_budget_queue_length", (("system", "card"),))] >= 1
    assert samples[("jnufm_budget_wait_seconds_count", (("system", "card"),))] >= 1
    metrics.budget_queue("card", -1)
    metrics.set_breaker_state("card", "closed")


def exposition() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text, _ = metrics.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_tallied_request_metrics_publish_what_direct_observations_would() -> None:
    route = "/healthz"  # a real route: other tests check that labels are routes
    labels = (("route", route),)
    requests = (("method", "PATCH"), ("route", route), ("status", "200"))
    bounds = [(b, "+Inf" if b == float("inf") else str(float(b))) for b in metrics._HTTP_BOUNDS]

    def reading() -> dict[str, float]:
        samples = exposition()  # render() publishes this process's tallies first
        values = {
            "count": samples.get(("jnufm_http_request_duration_seconds_count", labels), 0.0),
            "sum": samples.get(("jnufm_http_request_duration_seconds_sum", labels), 0.0),
            "requests": samples.get(("jnufm_http_requests_total", requests), 0.0),
            "in_flight": samples.get(("jnufm_http_requests_in_flight", ()), 0.0),
        }
        for _, le in bounds:
            bucket = ("jnufm_http_request_duration_seconds_bucket", (("le", le), *labels))
            values[le] = samples.get(bucket, 0.0)
        return values

    before = reading()
    durations = [0.0004, 0.001, 0.003, 0.003, 0.2, 7.0, 45.0]
    for seconds in durations:
        metrics.observe_http_request(route, "PATCH", 200, seconds)
    metrics.http_in_flight(1)
    after = reading()
    assert after["count"] - before["count"] == len(durations)
    assert after["sum"] - before["sum"] == pytest.approx(sum(durations))
    assert after["requests"] - before["requests"] == len(durations)
    for bound, le in bounds:
        assert after[le] - before[le] == sum(1 for d in durations if d <= bound), le
    assert after["in_flight"] - before["in_flight"] == 1
    metrics.http_in_flight(-1)
    again = reading()  # published once: another scrape adds nothing
    assert again["requests"] == after["requests"]
    assert again["in_flight"] == before["in_flight"]


def test_access_lines_are_written_as_the_log_formatters_write_them(tmp_path: Path) -> None:
    from observability.logs import access_lines, configure_logging
    from settings import LogSettings

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        for style in ("text", "json"):
            path = tmp_path / f"{style}.log"
            configure_logging(LogSettings(format=style, file=str(path)), 0)
            fields = {
                "method": "GET",
                "uri": "/card/rest?stuid=1&password=***",
                "route": "/card/rest",
                "status": 200,
                "duration_ms": 1.5,
                "cache": "hit",
            }
            message = "200 GET /card/rest?stuid=1&password=*** 1.5ms route=/card/rest cache=hit"
            assert access_lines.write(logging.INFO, message, "rid-7", fields)
            access_lines.flush()
            line = path.read_text().strip()
            if style == "json":
                entry = json.loads(line)
                assert entry["logger"] == "jnufm.access" and entry["level"] == "INFO"
                assert entry["request_id"] == "rid-7" and entry["message"] == message
                assert {k: entry[k] for k in fields} == fields
            else:
                assert re.fullmatch(
                    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO \[\d+\] jnufm\.access: "
                    + re.escape(message)
                    + " rid=rid-7",
                    line,
                ), line
            # Another handler listening (a capture): the line goes through logging.
            extra = logging.NullHandler()
            root.addHandler(extra)
            assert not access_lines.write(logging.INFO, message, "rid-8", fields)
            root.removeHandler(extra)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        access_lines.configure(None, False)


def test_log_lines_carry_the_request_id_as_text_and_as_json() -> None:
    records = []
    for formatter in (TextFormatter(), JsonFormatter()):
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(RequestIdFilter())
        logger = logging.getLogger(f"jnufm.test.{type(formatter).__name__}")
        logger.propagate = False
        logger.addHandler(handler)

        def in_request(logger: logging.Logger = logger) -> None:
            activate(RequestTimer(request_id_from("rid-42")))
            logger.warning("school slow", extra={"route": "/card/rest", "status": 200})

        try:
            contextvars.copy_context().run(in_request)
        finally:
            logger.removeHandler(handler)
        records.append(stream.getvalue().strip())
    text, line = records
    assert text.endswith("school slow rid=rid-42")
    entry = json.loads(line)
    assert entry["request_id"] == "rid-42"
    assert entry["message"] == "school slow"
    assert entry["route"] == "/card/rest"
    assert entry["status"] == 200


def test_no_module_imports_prometheus_client_before_the_master_sets_it_up() -> None:
    """prometheus_client picks single- or multi-process storage when first imported."""
    code = (
        "import sys, server, handlers, runtime.master, runtime.worker, runtime.wiring, "
        "systems.card.client, db.engine; "
        "sys.exit('prometheus_client' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr or "prometheus_client was imported"


async def test_access_log_says_what_the_cache_did(
    http_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jnufm.access")
    for _ in range(2):
        resp = await http_client.get("/v1/card/balance", auth=CREDS)
        assert resp.status_code == 200
    lines = [
        r
        for r in caplog.records
        if r.name == "jnufm.access" and getattr(r, "route", "") == "/v1/card/balance"
    ]
    assert [getattr(r, "cache", None) for r in lines] == ["miss", "hit"]
    assert all(getattr(r, "request_id", "") for r in lines)
    assert "052690" not in caplog.text


async def test_metrics_behind_a_trusted_proxy_go_by_the_real_client(
    tmp_path: Path, sim: Proc
) -> None:
    """Behind a reverse proxy on loopback, every request comes from 127.0.0.1: the
    client's address from X-Forwarded-For decides, as for the rate limits."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        sim.url,
        **{"limits.trusted_proxies": ["127.0.0.1/32"]},
    )
    async with serve_app(settings) as (client, _):
        outside = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        assert outside.status_code == 403
        assert outside.json()["error"]["code"] == "forbidden"
        # A client cannot pose as local by adding an address of its own to the left.
        spoofed = await client.get(
            "/metrics", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}
        )
        assert spoofed.status_code == 403
        local = await client.get("/metrics")
        assert local.status_code == 200
        forwarded_local = await client.get("/metrics", headers={"X-Forwarded-For": "::1"})
        assert forwarded_local.status_code == 200


async def test_metric_labels_stay_bounded_whatever_the_client_sends(
    http_client: httpx.AsyncClient,
) -> None:
    invented = [f"X{n}FOO" for n in range(20)] + ["FOOBAR", "PROPFIND"]
    for method in invented:
        resp = await http_client.request(method, "/healthz")
        assert resp.status_code == 405
    for path in ("/no/such/thing", "/static/x" * 5, "/card/rest?x=1", "/%ff%fe"):
        await http_client.get(path)
    text = (await http_client.get("/metrics")).text
    methods, routes, statuses = set(), set(), set()
    other = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jnufm_http_requests_total":
                methods.add(sample.labels["method"])
                routes.add(sample.labels["route"])
                statuses.add(sample.labels["status"])
                if sample.labels["method"] == "other" and sample.labels["route"] == "/healthz":
                    other += sample.value
    assert methods <= metrics.HTTP_METHODS | {"other"}, methods
    assert other >= len(invented)
    assert not {m for m in invented if m in methods}
    from handlers import route_labels

    labels = set(route_labels(routes_of_app()).values())
    assert routes <= labels | {"unmatched"}, routes - labels
    assert "/static/{path}" in routes
    assert all(s.isdigit() and 100 <= int(s) <= 599 for s in statuses), statuses
