"""A warm hit's short way (services/pipeline/ready.py): the body written for the last
answer from the cache, kept per route and student, answers the next request only while
the gate proves the password from the host's table and the cached result is unchanged;
anything else takes the whole path. Over real HTTP, against a real simulator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import Proc, schoolsim, sim_json
from services.cache import CacheKey
from services.pipeline.ready import ReadyAnswers
from tests.conftest import make_settings, serve_app, settings_with_default_limits

STUDENT = "2012052690"
RIGHT = STUDENT[-6:]
# Headers whose value is new on every answer.
PER_ANSWER = {"age", "date", "server-timing", "x-request-id"}


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(
        tmp_path_factory.mktemp("school"), "fast", "latency_ms_median=5", "latency_ms_min=5"
    ) as proc:
        yield proc


async def short_ways(client: httpx.AsyncClient) -> float:
    """Balance answers given the short way so far (cache lookups at level "ready")."""
    text = (await client.get("/metrics")).text
    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "jnufm_cache_lookups_total"
        and sample.labels.get("level") == "ready"
        and sample.labels.get("outcome") == "hit"
    )


def school_requests(school: Proc) -> int:
    return int(sim_json(school.url, "/__sim/stats")["requests"])


async def legacy(client: httpx.AsyncClient, password: str = RIGHT, **more: str) -> httpx.Response:
    return await client.get("/card/rest", params={"stuid": STUDENT, "password": password, **more})


async def v1(client: httpx.AsyncClient, password: str = RIGHT) -> httpx.Response:
    return await client.get("/v1/card/balance", auth=(STUDENT, password))


def same_answer(one: httpx.Response, other: httpx.Response) -> None:
    assert one.status_code == other.status_code == 200
    assert one.content == other.content
    assert one.headers["Cache-Status"].startswith("jnufm; hit; ttl=")
    assert other.headers["Cache-Status"].startswith("jnufm; hit; ttl=")
    names = {name for name in one.headers if name not in PER_ANSWER}
    assert names == {name for name in other.headers if name not in PER_ANSWER}
    for name in names - {"cache-status"}:
        assert one.headers[name] == other.headers[name], name


@pytest.mark.parametrize("ask", [legacy, v1], ids=["2013", "v1"])
async def test_a_warm_hit_takes_the_short_way_with_the_same_answer(
    db_url: str, school: Proc, ask: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        first = await ask(client)
        assert first.headers["Cache-Status"] == "jnufm; fwd=miss; stored"
        before = await short_ways(client)
        whole = await ask(client)  # a hit the whole way: its body is kept
        assert await short_ways(client) == before
        asked = school_requests(school)
        short = await ask(client)
        assert await short_ways(client) == before + 1
        same_answer(whole, short)
        assert school_requests(school) == asked
        head = await client.head(str(short.request.url), headers=dict(short.request.headers))
        assert head.status_code == 200 and head.content == b""
        assert head.headers["Content-Length"] == str(len(short.content))


async def test_a_wrong_password_is_never_answered_the_short_way(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        for _ in range(3):
            assert (await legacy(client)).status_code == 200
        before = await short_ways(client)
        failed = sim_json(school.url, "/__sim/stats")["logins_failed"]
        wrong = await legacy(client, "999999")
        assert wrong.status_code == 401
        assert "Cache-Status" not in wrong.headers
        assert sim_json(school.url, "/__sim/stats")["logins_failed"] == failed + 1
        assert await short_ways(client) == before


async def test_a_locked_out_student_is_refused_though_an_answer_is_kept(
    db_url: str, school: Proc
) -> None:
    async with serve_app(settings_with_default_limits(db_url, school.url)) as (client, _):
        for _ in range(3):
            assert (await legacy(client)).status_code == 200
        for guess in ("000101", "000102", "000103", "000104", "000105"):
            assert (await legacy(client, guess)).status_code == 401
        before = await short_ways(client)
        refused = await legacy(client)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "too_many_failed_logins"
        assert (await v1(client)).status_code == 429
        assert await short_ways(client) == before


async def test_fresh_takes_the_whole_way(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        for _ in range(3):
            assert (await legacy(client)).status_code == 200
        before = await short_ways(client)
        assert (await legacy(client, fresh="1")).status_code == 200
        no_cache = await client.get(
            "/card/rest",
            params={"stuid": STUDENT, "password": RIGHT},
            headers={"Cache-Control": "no-cache"},
        )
        assert no_cache.status_code == 200
        assert await short_ways(client) == before


async def test_a_newer_result_replaces_what_was_kept(db_url: str, school: Proc) -> None:
    settings = make_settings(db_url, school.url, **{"cache.fresh_min_interval_s": 0})
    async with serve_app(settings) as (client, _):
        for _ in range(3):
            assert (await legacy(client)).status_code == 200
        asked = school_requests(school)
        fetched = await legacy(client, fresh="1")
        assert fetched.headers["Cache-Status"].startswith("jnufm; fwd=")
        assert school_requests(school) > asked
        before = await short_ways(client)
        # The kept body was made of the result this fetch replaced: the whole way, which
        # keeps the new one; then the short way again.
        assert (await legacy(client)).headers["Cache-Status"].startswith("jnufm; hit")
        assert await short_ways(client) == before
        assert (await legacy(client)).status_code == 200
        assert await short_ways(client) == before + 1


async def test_a_password_changed_at_the_school(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        for _ in range(3):
            assert (await legacy(client)).status_code == 200
        new = "246810"
        sim_json(school.url, f"/__sim/students/{STUDENT}/password", {"password": new})
        before = await short_ways(client)
        changed = await legacy(client, new)
        assert changed.status_code == 200
        assert changed.headers["Cache-Status"].startswith("jnufm; fwd=")
        assert (await legacy(client, RIGHT)).status_code == 401
        assert await short_ways(client) == before
        for _ in range(2):
            assert (await legacy(client, new)).status_code == 200
        assert await short_ways(client) == before + 1


async def test_none_kept_when_the_setting_is_zero(db_url: str, school: Proc) -> None:
    settings = make_settings(db_url, school.url, **{"cache.ready_answers": 0})
    async with serve_app(settings) as (client, _):
        before = await short_ways(client)  # this process's metrics: other tests' too
        for _ in range(4):
            reply = await legacy(client)
            assert reply.status_code == 200
        assert reply.headers["Cache-Status"].startswith("jnufm; hit")
        assert await short_ways(client) == before


def test_the_kept_answers_are_bounded() -> None:
    kept = ReadyAnswers(16)
    for n in range(100):
        key = CacheKey("card", "account", str(n))
        kept.keep(("/card/rest", str(n), "account", ""), b"{}", key, object())
        assert len(kept) <= 16
    assert kept.get(("/card/rest", "99", "account", "")) is not None
    assert kept.get(("/card/rest", "0", "account", "")) is None
    nothing = ReadyAnswers(0)
    nothing.keep(
        ("/card/rest", "1", "account", ""), b"{}", CacheKey("card", "account", "1"), object()
    )
    assert len(nothing) == 0
