"""The API contract: /openapi.json is a valid OpenAPI 3.1 document that describes every
route of handlers.routes() (and no other), each with the methods its handler
implements (the error codes: tests/unit/test_error_codes.py), and the dashboard's figures."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from api.contract import openapi_path
from api.routes import EXCLUDED, ROUTES, openapi
from handlers import routes
from handlers.base import AppDeps, allowed_methods
from harness.processes import Proc
from observability.dashboard import Reading, ReadingHistory, figures, quantile, read
from observability.probes import OpsDeps
from tests.conftest import make_settings, serve_app

METHODS = ("get", "post", "delete", "put", "patch", "head", "options")


def app_routes() -> dict[str, type]:
    """Every pattern the app routes (the debug route too), and its handler class."""
    deps = AppDeps(card=None, retry_after_s=1, ops=OpsDeps(debug_block_route=True))  # type: ignore[arg-type]
    return {pattern: handler for pattern, handler, _ in routes(deps)}


def implemented(handler: type) -> set[str]:
    """The methods a handler class answers (its 405's `Allow`): HEAD wherever GET is."""
    return {m.lower() for m in allowed_methods(handler)}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi()
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_described_or_excluded_and_nothing_else() -> None:
    routed = set(app_routes())
    described = [route.pattern for route in ROUTES]
    assert len(described) == len(set(described)), "a pattern is described twice"
    assert not set(described) & set(EXCLUDED), "a pattern is both described and excluded"
    assert routed - set(described) - set(EXCLUDED) == set(), "routes without a description"
    assert set(described) - routed == set(), "descriptions of routes the app does not have"
    assert set(EXCLUDED) - routed == set(), "exclusions of routes the app does not have"


def test_each_route_documents_exactly_the_methods_its_handler_answers() -> None:
    """HEAD is documented wherever GET is (the document adds it), OPTIONS (the CORS
    preflight) on the routes other sites' pages may read."""
    handlers = app_routes()
    paths = openapi()["paths"]
    for route in ROUTES:
        documented = set(paths[route.path])
        assert documented == implemented(handlers[route.pattern]), route.pattern
        assert ("head" in documented) == ("get" in documented), route.pattern
        assert ("options" in documented) == route.cross_origin, route.pattern
        assert route.cross_origin == getattr(handlers[route.pattern], "cross_origin", False)


def test_each_path_is_its_pattern_with_named_groups() -> None:
    paths = openapi()["paths"]
    for route in ROUTES:
        concrete = route.path
        for param in route.path_params:
            concrete = concrete.replace("{" + param.name + "}", param.example)
        assert re.fullmatch(route.pattern, concrete), (route.pattern, concrete)
        assert route.path in paths
    assert openapi_path(r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics", ["token"]) == (
        "/v1/calendar/{token}.ics",
        ["[A-Za-z0-9_-]{20,64}"],
    )
    assert openapi_path(r"/isbn/image/([0-9X]{10,13})", ["isbn"])[0] == "/isbn/image/{isbn}"
    with pytest.raises(ValueError, match="groups"):
        openapi_path(r"/book/(\d+)/(\d+)", ["id"])
    with pytest.raises(ValueError, match="outside a group"):
        openapi_path(r"/book/.*", [])


ERROR_SCHEMAS = ("Error", "LegacyError", "AccountError", "Readiness")


def test_every_operation_answers_errors_in_the_error_schema() -> None:
    for path, item in openapi()["paths"].items():
        for method, op in item.items():
            # The 2013 routes answer `"data": null` beside the error; the 2013 account API
            # (tag accounts) also 2013's `version` (AccountError), but for /version (a 2013
            # route: LegacyError) and the pictures it serves (Error).
            tag = op["tags"][0]
            for status, response in op["responses"].items():
                if int(status) < 400 or method == "head":  # HEAD: headers only
                    continue
                schemas = str(response["content"]["application/json"]["schema"])
                named = {n for n in ERROR_SCHEMAS if f"/{n}'" in schemas}
                # /readyz's 503 is its readiness body, or an error written before it runs.
                assert len(named - {"Readiness"}) == 1, (path, method, status, schemas)
                if tag == "2013":
                    assert named == {"LegacyError"}, (path, method, status)
                elif tag != "accounts":
                    assert named <= {"Error", "Readiness"}, (path, method, status)
                assert "X-Request-Id" in response["headers"], (path, method, status)
                if int(status) in (429, 502, 504):
                    assert "Retry-After" in response["headers"], (path, method, status)


# --- served over HTTP ------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path, sim: Proc) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a trusted loopback proxy, with a metrics token set."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        sim.url,
        **{
            "limits.trusted_proxies": ["127.0.0.1/32"],
            "metrics.bearer_token": "dashboard-token-for-tests-0123456789",
        },
    )
    async with serve_app(settings) as (http, _):
        yield http


async def test_openapi_json_serves_the_document(client: httpx.AsyncClient) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    assert resp.headers["X-Request-Id"]
    assert resp.json() == openapi()


async def test_the_dashboard_counts_queries_for_loopback_or_the_token_only(
    client: httpx.AsyncClient,
) -> None:
    first = await client.get("/ops/dashboard.json")
    assert first.status_code == 200, first.text
    body: dict[str, Any] = first.json()
    # Every school system with its budget (budget.<system>), the library's too.
    budgets = {s["system"]: s["budget"] for s in body["school"]}
    assert budgets == {
        "card": 2,
        "academic": 2,
        "library": 2,
        "library_zhuhai": 1,
        "covers": 4,
    }
    assert all(s["breaker"] == "closed" for s in body["school"])
    for _ in range(3):
        answer = await client.get("/v1/card/balance", auth=("2012052690", "052690"))
        assert answer.status_code == 200
    # A reading compares with one at least a second older (ReadingHistory.min_gap_s).
    await asyncio.sleep(1.05)
    later = (await client.get("/ops/dashboard.json")).json()
    assert later["requests_total"] >= body["requests_total"] + 3
    assert later["requests_per_s"] > 0
    assert later["latency_ms"]["p50"] is not None
    assert later["cache_hit_ratio"] is not None
    card = next(s for s in later["school"] if s["system"] == "card")
    assert card["requests_per_s"] > 0
    # Outside the allowed networks (the proxy says so): only with the token.
    outside = {"X-Forwarded-For": "203.0.113.9"}
    refused = await client.get("/ops/dashboard.json", headers=outside)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    token = {**outside, "Authorization": "Bearer dashboard-token-for-tests-0123456789"}
    assert (await client.get("/ops/dashboard.json", headers=token)).status_code == 200


def test_quantiles_interpolate_within_buckets() -> None:
    buckets = {0.001: 50.0, 0.01: 90.0, 0.1: 100.0, float("inf"): 100.0}
    assert quantile(0.5, buckets) == pytest.approx(0.001)
    assert quantile(0.7, buckets) == pytest.approx(0.001 + 0.009 * 0.5)
    assert quantile(0.99, buckets) == pytest.approx(0.01 + 0.09 * 0.9)
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.99, {0.1: 1.0, float("inf"): 10.0}) == pytest.approx(0.1)


def test_figures_are_rates_between_readings() -> None:
    exposition = "\n".join(
        [
            "# TYPE jnufm_http_requests_total counter",
            'jnufm_http_requests_total{method="GET",route="/card/rest",status="200"} 30',
            'jnufm_http_requests_total{method="GET",route="/ops/dashboard.json",status="200"} 99',
            "# TYPE jnufm_school_requests_total counter",
            'jnufm_school_requests_total{outcome="ok",path="/x",system="card"} 8',
            'jnufm_school_requests_total{outcome="timeout",path="/x",system="card"} 2',
            "# TYPE jnufm_school_request_duration_seconds histogram",
            'jnufm_school_request_duration_seconds_sum{system="card"} 5',
            "# TYPE jnufm_cache_lookups_total counter",
            'jnufm_cache_lookups_total{kind="balance",level="memory",outcome="hit"} 6',
            'jnufm_cache_lookups_total{kind="balance",level="memory",outcome="miss"} 4',
            'jnufm_cache_lookups_total{kind="balance",level="db",outcome="hit"} 2',
            "# TYPE jnufm_worker_generation gauge",
            'jnufm_worker_generation{pid="41",worker="0"} 3',
            "",
        ]
    )
    new = read(exposition, at=110.0)
    old = Reading(at=100.0)
    history = ReadingHistory(window_s=10.0, min_gap_s=1.0)
    assert history.baseline(old) is None
    assert history.baseline(new) is old
    body = figures(old, new, {"card": 2}, {"card": "open"}, (0, 3))
    assert body["window_s"] == 10.0
    assert body["requests_per_s"] == 3.0  # the dashboard's own requests are not counted
    assert body["cache_hit_ratio"] == 0.8
    card = body["school"][0]
    assert card == {
        "system": "card",
        "requests_per_s": 1.0,
        "failures_per_s": 0.2,
        "in_flight": 0.5,
        "budget": 2,
        "waiting": 0.0,
        "breaker": "open",
    }
    assert body["workers"]["live"] == [{"worker": 0, "pid": 41, "generation": 3}]
    assert figures(None, new, {}, {}, (0, 3))["requests_per_s"] is None
