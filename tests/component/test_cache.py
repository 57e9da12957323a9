"""Cache, coalescing, budget, session reuse, breaker and stale answers, in one worker, real school.

Each test uses its own database (SQLite, and MySQL when configured) and its
own simulated school, whose counters say exactly what reached the school.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from handlers.base import AppDeps
from harness.processes import Proc, schoolsim, sim_json
from tests.conftest import make_settings, serve_app


def password_of(student: str) -> str:
    """The simulator's default password."""
    return student[-6:]


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school of our own, ~20 ms per request, so concurrent queries really overlap."""
    with schoolsim(
        tmp_path_factory.mktemp("school"), "fast", "latency_ms_median=20", "latency_ms_min=20"
    ) as proc:
        yield proc


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/stats")


def breaker_state(deps: AppDeps) -> str:
    return str(deps.card.breaker.state)


def creds(student: str) -> dict[str, str]:
    return {"stuid": student, "password": password_of(student)}


async def test_a_repeat_query_is_a_cache_hit_that_costs_the_school_nothing(
    db_url: str, school: Proc
) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        first = await client.get("/card/rest", params=creds("2012052690"))
        assert first.status_code == 200
        assert first.headers["Cache-Status"] == "jnufm; fwd=miss; stored"
        before = stats(school)["requests"]
        second = await client.get("/card/rest", params=creds("2012052690"))
        assert second.status_code == 200
        assert second.json() == first.json(), "the 2013 JSON shape, unchanged"
        assert second.headers["Cache-Status"].startswith("jnufm; hit; ttl=")
        assert int(second.headers["Age"]) >= 0
        assert stats(school)["requests"] == before
        v1 = await client.get("/v1/card/balance", auth=("2012052690", "052690"))
        assert v1.json()["source"] == "cache"
        assert v1.json()["stale"] is False
        assert v1.json()["balance"]["amount"] == first.json()["data"]


async def test_a_wrong_password_never_gets_cached_data(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        assert (await client.get("/card/rest", params=creds("2012052690"))).status_code == 200
        before = stats(school)
        for path in ("/card/rest", "/card/personalinfo"):
            wrong = await client.get(path, params={"stuid": "2012052690", "password": "999999"})
            assert wrong.status_code == 401
            assert wrong.json() == {
                "data": None,
                "error": {
                    "code": "invalid_credentials",
                    "message": "the student number or card password is wrong",
                },
            }
            assert "Age" not in wrong.headers and "Cache-Status" not in wrong.headers
        after = stats(school)
        # Not judged from the cache: the school judged it, once; asked again by the same
        # client, the school's refusal stands without asking it again.
        assert after["logins_failed"] - before["logins_failed"] == 1
        assert after["logins_ok"] == before["logins_ok"]


async def test_100_concurrent_cold_queries_cost_one_login_and_one_fetch(
    db_url: str, school: Proc
) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        sim_json(school.url, "/__sim/reset", {})
        replies = await asyncio.gather(
            *(client.get("/card/rest", params=creds("2011000777")) for _ in range(100))
        )
        assert {r.status_code for r in replies} == {200}
        assert len({r.text for r in replies}) == 1
        s = stats(school)
        assert s["logins_ok"] == 1
        assert s["requests_by_path"].get("/accountcardUser.action") == 1
        statuses = [r.headers["Cache-Status"] for r in replies]
        assert statuses.count("jnufm; fwd=miss; stored") == 1


async def test_a_fresh_query_reuses_the_school_session(db_url: str, school: Proc) -> None:
    settings = make_settings(db_url, school.url, **{"cache.fresh_min_interval_s": 0})
    async with serve_app(settings) as (client, _):
        assert (await client.get("/card/rest", params=creds("2012052690"))).status_code == 200
        for ask in (
            {"params": {**creds("2012052690"), "fresh": "1"}},
            {"params": creds("2012052690"), "headers": {"Cache-Control": "no-cache"}},
        ):
            before = stats(school)
            resp = await client.get("/card/rest", **ask)  # type: ignore[arg-type]
            assert resp.status_code == 200
            assert resp.headers["Cache-Status"] == "jnufm; fwd=request; stored"
            after = stats(school)
            assert after["requests"] - before["requests"] == 1, "one data page, no login"
            assert after["logins_ok"] == before["logins_ok"]


async def test_a_lost_school_session_means_one_new_login(db_url: str, school: Proc) -> None:
    settings = make_settings(db_url, school.url, **{"cache.fresh_min_interval_s": 0})
    async with serve_app(settings) as (client, _):
        assert (await client.get("/card/rest", params=creds("2012052690"))).status_code == 200
        sim_json(school.url, "/__sim/reset", {"sessions": True})
        resp = await client.get("/card/rest", params={**creds("2012052690"), "fresh": "1"})
        assert resp.status_code == 200
        s = stats(school)
        assert s["logins_ok"] == 1
        # the stale session's login page, then captcha + keypad + login + the account
        # page that proves it, which is also the data
        assert s["requests"] == 5


async def test_the_fresh_request_limit_protects_the_school(db_url: str, school: Proc) -> None:
    settings = make_settings(db_url, school.url, **{"cache.fresh_min_interval_s": 60})
    async with serve_app(settings) as (client, _):
        assert (await client.get("/card/rest", params=creds("2012052690"))).status_code == 200
        before = stats(school)["requests"]
        resp = await client.get("/card/rest", params={**creds("2012052690"), "fresh": "1"})
        assert resp.headers["Cache-Status"].startswith("jnufm; hit")
        assert stats(school)["requests"] == before


async def test_stale_answers_while_the_school_is_down(db_url: str, school: Proc) -> None:
    settings = make_settings(db_url, school.url, **{"cache.fresh_min_interval_s": 0})
    async with serve_app(settings) as (client, _):
        warm = await client.get("/v1/card/balance", auth=("2012052690", "052690"))
        assert warm.status_code == 200
        legacy_warm = await client.get("/card/today", params=creds("2012052690"))
        assert legacy_warm.status_code == 200
        sim_json(school.url, "/__sim/control", {"down": True, "down_mode": "reset"})
        stale = await client.get(
            "/v1/card/balance", auth=("2012052690", "052690"), headers={"Cache-Control": "no-cache"}
        )
        assert stale.status_code == 200
        body = stale.json()
        assert body["stale"] is True
        assert body["source"] == "cache"
        assert body["as_of"] == warm.json()["as_of"]
        assert body["balance"] == warm.json()["balance"]
        assert "fwd=stale; fwd-status=502" in stale.headers["Cache-Status"]
        legacy = await client.get("/card/today", params={**creds("2012052690"), "fresh": "1"})
        assert legacy.status_code == 200
        assert legacy.json() == legacy_warm.json(), "the 2013 shape, even when stale"
        assert "fwd=stale" in legacy.headers["Cache-Status"]
        # A wrong password gets no stale data either.
        wrong = await client.get("/v1/card/balance?fresh=1", auth=("2012052690", "111111"))
        assert wrong.status_code in (502, 503)
        assert "balance" not in wrong.json()
        # A student never seen before: an honest error with Retry-After.
        cold = await client.get("/card/rest", params=creds("2011000888"))
        assert cold.status_code in (502, 503)
        assert "Retry-After" in cold.headers


async def test_the_breaker_opens_after_failures_then_probes_and_closes(
    db_url: str, school: Proc
) -> None:
    settings = make_settings(db_url, school.url, **{"breaker.failures": 2, "breaker.open_s": 0.5})
    async with serve_app(settings) as (client, deps):
        sim_json(school.url, "/__sim/control", {"down": True, "down_mode": "error"})
        for student in ("2011000001", "2011000002"):
            resp = await client.get("/card/rest", params=creds(student))
            assert resp.status_code == 502
        assert breaker_state(deps) == "open"
        before = stats(school)["requests"]
        fast = await client.get("/card/rest", params=creds("2011000003"))
        assert fast.status_code == 503
        assert fast.json()["error"]["code"] == "school_unavailable"
        assert int(fast.headers["Retry-After"]) >= 1
        assert stats(school)["requests"] == before, "an open breaker asks the school nothing"
        sim_json(school.url, "/__sim/control", {"down": False})
        for _ in range(100):
            if breaker_state(deps) == "half_open":
                break
            await asyncio.sleep(0.05)
        probe = await client.get("/card/rest", params=creds("2011000004"))
        assert probe.status_code == 200
        assert breaker_state(deps) == "closed"


async def test_the_budget_caps_concurrent_school_requests(db_url: str, school: Proc) -> None:
    # 50 cold students through 3 slots take longer than a query's default total
    # deadline on a slow machine; the deadline is not what this test is about.
    settings = make_settings(
        db_url,
        school.url,
        **{
            "budget.card": 3,
            "budget.wait_s": 30,
            "school.card.total_timeout_s": 60,
            "api.deadline_s": 60,
        },
    )
    async with serve_app(settings) as (client, _):
        sim_json(school.url, "/__sim/reset", {})
        students = [f"20110{i:05d}" for i in range(50)]
        replies = await asyncio.gather(
            *(client.get("/card/rest", params=creds(s)) for s in students)
        )
        assert [r.status_code for r in replies] == [200] * 50
        s = stats(school)
        assert s["logins_ok"] == 50
        assert s["peak_in_flight"] <= 3
        assert s["peak_in_flight"] == 3, "the budget was used, not just respected"


async def test_over_budget_without_stale_data_is_a_503(db_url: str, school: Proc) -> None:
    sim_json(school.url, "/__sim/control", {"latency_ms_median": 400, "latency_ms_min": 400})
    settings = make_settings(db_url, school.url, **{"budget.card": 1, "budget.wait_s": 0.2})
    async with serve_app(settings) as (client, _):
        replies = await asyncio.gather(
            *(client.get("/card/rest", params=creds(f"20110{i:05d}")) for i in range(4))
        )
        codes = sorted(r.status_code for r in replies)
        assert codes.count(200) >= 1
        busy = [r for r in replies if r.status_code == 503]
        assert busy, codes
        for r in busy:
            assert r.json()["error"]["code"] == "school_busy"
            assert int(r.headers["Retry-After"]) > 0


async def test_no_half_parsed_or_error_result_is_cached(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        sim_json(school.url, "/__sim/control", {"failure_rate": 1.0})
        bad = await client.get("/card/rest", params=creds("2012052690"))
        assert bad.status_code == 502
        sim_json(school.url, "/__sim/control", {"failure_rate": 0.0})
        good = await client.get("/card/rest", params=creds("2012052690"))
        assert good.status_code == 200
        assert good.headers["Cache-Status"] == "jnufm; fwd=miss; stored"


async def test_cache_off_asks_the_school_every_time(db_url: str, school: Proc) -> None:
    settings = make_settings(
        db_url,
        school.url,
        **{"cache.enabled": False, "coalescing.enabled": False, "sessions.enabled": False},
    )
    async with serve_app(settings) as (client, _):
        for _ in range(2):
            assert (await client.get("/card/rest", params=creds("2012052690"))).status_code == 200
        assert stats(school)["logins_ok"] == 2
        assert stats(school)["requests"] == 8, "no reuse: captcha, keypad, login, account page"


async def test_every_answer_has_age_and_cache_status(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        auth = ("2012052690", "052690")
        answers: list[httpx.Response] = [
            await client.get("/card/rest", params=creds("2012052690")),
            await client.get("/card/today", params=creds("2012052690")),
            await client.get("/card/month", params=creds("2012052690")),
            await client.get("/card/personalinfo", params=creds("2012052690")),
            await client.get("/v1/card/balance", auth=auth),
            await client.get("/v1/card/profile", auth=auth),
            await client.get("/v1/card/transactions", auth=auth),
        ]
        for resp in answers:
            assert resp.status_code == 200, resp.request.url
            assert resp.headers["Cache-Status"].startswith("jnufm; ")
            assert int(resp.headers["Age"]) >= 0


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def test_metrics_show_what_the_cache_coalescing_and_budget_did(
    db_url: str, school: Proc
) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        before = (await client.get("/metrics")).text
        replies = await asyncio.gather(
            *(client.get("/card/rest", params=creds("2011000999")) for _ in range(10))
        )
        assert {r.status_code for r in replies} == {200}
        assert (await client.get("/card/rest", params=creds("2011000999"))).status_code == 200
        after = (await client.get("/metrics")).text

        def delta(name: str, **labels: str) -> float:
            return metric(after, name, **labels) - metric(before, name, **labels)

        # The eleventh is a memory hit: the whole path's, or its short way (a body kept ready).
        hits = sum(
            delta("jnufm_cache_lookups_total", kind="account", level=level, outcome="hit")
            for level in ("memory", "ready")
        )
        assert hits >= 1
        assert delta("jnufm_coalesced_waits_total", kind="account") == 9
        assert delta("jnufm_budget_wait_seconds_count", system="card") == 1
        assert delta("jnufm_school_requests_total", system="card", outcome="ok") >= 4


async def test_a_hanging_school_gets_a_stale_answer_after_a_short_wait(
    db_url: str, school: Proc
) -> None:
    settings = make_settings(
        db_url,
        school.url,
        **{
            "cache.fresh_min_interval_s": 0,
            "cache.stale_wait_s": 0.3,
            # Ten times the stale wait: the school's request is still held when the
            # stale answer comes.
            "school.card.total_timeout_s": 3.0,
        },
    )
    async with serve_app(settings) as (client, _):
        auth = ("2012052690", "052690")
        warm = await client.get("/v1/card/balance", auth=auth)
        assert warm.status_code == 200
        sim_json(school.url, "/__sim/control", {"down": True, "down_mode": "hang"})
        sim_json(school.url, "/__sim/reset", {})
        stale = await client.get(
            "/v1/card/balance", auth=auth, headers={"Cache-Control": "no-cache"}
        )
        held = stats(school)
        assert stale.status_code == 200
        assert stale.json()["stale"] is True
        assert stale.json()["balance"] == warm.json()["balance"]
        assert 'detail="stale-while-revalidate"' in stale.headers["Cache-Status"]
        assert held["requests"] >= 1 and held["in_flight"] == held["requests"], (
            "answered while the school still held the request, before the school's timeout"
        )
        # A wrong password gets no stale answer from this path either.
        wrong = await client.get(
            "/v1/card/balance", auth=("2012052690", "111111"), headers={"Cache-Control": "no-cache"}
        )
        assert wrong.status_code in (401, 502, 503, 504)
        assert "balance" not in wrong.json()
        # The fetch left running in the background ends with the school's timeout.
        sim_json(school.url, "/__sim/control", {"down": False})
        for _ in range(1200):  # a wait of at most a minute, not a measure of speed
            if stats(school)["in_flight"] == 0:
                break
            await asyncio.sleep(0.05)
        assert stats(school)["in_flight"] == 0
