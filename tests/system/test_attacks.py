"""Attacks on the credential gate and on the school's protections, over real HTTP.

Concurrent bursts from several client addresses (127.0.0.x), the school down,
password changes, inputs meant to trip the breaker, one student filling the
line, two instances sharing one database, and the 2013 ApacheBench commands
with the default limits. The school is a real simulator process; each test
that changes its settings runs its own.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import Proc, jnufm_server, schoolsim, sim_json
from observability import metrics
from services.campus import CHINA
from tests.conftest import make_settings, serve_app, settings_with_default_limits


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school of this test's own (its settings may be changed), ~10 ms per request."""
    with schoolsim(
        tmp_path_factory.mktemp("school"), "fast", "latency_ms_median=10", "latency_ms_min=10"
    ) as proc:
        yield proc


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/stats")


def failed_logins(sim: Proc) -> int:
    return int(stats(sim)["logins_failed"])


@asynccontextmanager
async def clients(base_url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """One HTTP client per source address 127.0.0.2 .. 127.0.0.(count + 1)."""
    made = [
        httpx.AsyncClient(
            base_url=base_url,
            transport=httpx.AsyncHTTPTransport(local_address=f"127.0.0.{n + 2}"),
            timeout=60,
            trust_env=False,
        )
        for n in range(count)
    ]
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


def guesses(count: int, right: str) -> list[str]:
    return [g for g in (f"{n:06d}" for n in range(100, 100 + count + 1)) if g != right][:count]


def gate_count(decision: str) -> float:
    """How many times this process's gates decided `decision` (card system), from /metrics."""
    text, _ = metrics.render()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == "jnufm_gate_decisions_total"
        and sample.labels == {"system": "card", "decision": decision}
    )


def error_code(reply: httpx.Response) -> str | None:
    """The error code of a JSON error answer (None for an answer)."""
    if reply.status_code < 400:
        return None
    return str(reply.json()["error"]["code"])


async def balance(client: httpx.AsyncClient, student: str, password: str) -> httpx.Response:
    return await client.get("/card/rest", params={"stuid": student, "password": password})


async def patiently(send: Callable[[], Awaitable[httpx.Response]]) -> int:
    """The status of a request retried while it gets a short 429 (at most 3 times)."""
    for _ in range(3):
        reply = await send()
        wait = int(reply.headers.get("Retry-After", "0"))
        if reply.status_code != 429 or wait > 2:
            return reply.status_code
        await asyncio.sleep(wait)
    return reply.status_code


# -- guessing ---------------------------------------------------------------------------------


async def test_a_burst_of_guesses_at_a_cached_student_is_judged_at_most_five_times(
    db_url: str, school: Proc
) -> None:
    student = "2012052690"
    right = student[-6:]
    async with serve_app(settings_with_default_limits(db_url, school.url)) as (client, _):
        assert (await balance(client, student, right)).status_code == 200
        before = failed_logins(school)
        locked_before = gate_count("locked_out")
        async with clients(str(client.base_url), 8) as many:
            replies = await asyncio.gather(
                *(
                    balance(many[n % 8], student, guess)
                    for n, guess in enumerate(guesses(40, right))
                )
            )
        codes = Counter(r.status_code for r in replies)
        assert set(codes) <= {401, 429}, codes
        assert codes[401] <= 5, codes
        assert failed_logins(school) - before == codes[401], "every 401 was the school's verdict"
        refused = [r for r in replies if r.status_code == 429]
        # A refusal is the lockout, or (on a busy machine, while the student's line at
        # the school is full) student_busy. The lockout was neither judged nor counted.
        # A student_busy guess was admitted first: the stored verifier had judged it
        # wrong already, so it counts though the school never saw it (its answer
        # differs from the right password's, which the cache answers).
        assert {error_code(r) for r in refused} <= {"too_many_failed_logins", "student_busy"}
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
        locked = [r for r in refused if error_code(r) == "too_many_failed_logins"]
        assert gate_count("locked_out") - locked_before == len(locked), "and it shows in /metrics"
        counted = codes[401] + sum(error_code(r) == "student_busy" for r in refused)
        assert counted <= 5, codes
        # Concurrent attempts that counted each other may all have been refused (the
        # gate errs on the safe side, for the Retry-After it says): top the counted ones
        # up to five, one at a time, as a client that honours Retry-After would.
        for guess in guesses(45, right)[40 : 40 + 5 - counted]:
            assert await patiently(functools.partial(balance, client, student, guess)) == 401
        # The student is locked out now: the right password too, from a new address.
        async with clients(str(client.base_url), 9) as more:
            assert (await balance(more[8], student, right)).status_code == 429


async def test_the_right_password_never_slips_through_a_lockout(db_url: str, school: Proc) -> None:
    student = "2012052691"
    right = student[-6:]
    async with serve_app(settings_with_default_limits(db_url, school.url)) as (client, _):
        assert (await balance(client, student, right)).status_code == 200
        for guess in guesses(5, right):
            assert (await balance(client, student, guess)).status_code == 401
        async with clients(str(client.base_url), 6) as many:
            for round_ in range(10):
                burst = [balance(many[n], student, guesses(20, right)[5 + n]) for n in range(5)]
                burst.insert(round_ % 5, balance(many[5], student, right))
                replies = await asyncio.gather(*burst)
                assert [r.status_code for r in replies] == [429] * 6


async def test_while_the_school_is_down_a_wrong_guess_still_counts(
    db_url: str, school: Proc
) -> None:
    student = "2012052692"
    right = student[-6:]
    settings = settings_with_default_limits(db_url, school.url, **{"cache.fresh_min_interval_s": 0})
    async with serve_app(settings) as (client, _):
        assert (await balance(client, student, right)).status_code == 200
        sim_json(school.url, "/__sim/control", {"down": True, "down_mode": "reset"})
        stale = await client.get(
            "/v1/card/balance", auth=(student, right), headers={"Cache-Control": "no-cache"}
        )
        assert stale.status_code == 200, "the verified password gets the last answer"
        assert stale.json()["stale"] is True
        for guess in guesses(5, right):
            reply = await balance(client, student, guess)
            assert reply.status_code in (502, 503, 504), reply.text
            assert "Retry-After" in reply.headers
        # Five passwords the school could not judge count: now every password gets 429,
        # so the stale answer is no oracle either.
        assert (await balance(client, student, guesses(6, right)[5])).status_code == 429
        assert (await balance(client, student, right)).status_code == 429


async def test_a_password_change_at_the_school(db_url: str, school: Proc) -> None:
    student = "2012052693"
    old, new = student[-6:], "246810"
    async with serve_app(settings_with_default_limits(db_url, school.url)) as (client, _):
        assert (await balance(client, student, old)).status_code == 200
        sim_json(school.url, f"/__sim/students/{student}/password", {"password": new})
        before = stats(school)
        accepted = await client.get("/v1/card/balance", auth=(student, new))
        assert accepted.status_code == 200, "judged by the school, not refused by the cache"
        assert accepted.json()["source"] == "school"
        assert stats(school)["logins_ok"] == before["logins_ok"] + 1
        # The old password stops at once, also asking for fresh data through a session.
        for params in ({}, {"fresh": "1"}):
            refused = await client.get(
                "/card/rest", params={"stuid": student, "password": old, **params}
            )
            assert refused.status_code == 401
        # The new one is answered from the cache now.
        again = await client.get("/v1/card/balance", auth=(student, new))
        assert again.json()["source"] == "cache"


# -- inputs meant to trip the breaker, fill the line or reach the school ----------------------


async def test_dates_that_cannot_be_real_never_reach_the_school(db_url: str, school: Proc) -> None:
    student = "2012052694"
    auth = (student, student[-6:])
    today = datetime.now(CHINA).date()
    async with serve_app(make_settings(db_url, school.url)) as (client, deps):
        before = stats(school)["requests"]
        for start, end in (
            ("0001-01-01", "0001-01-02"),
            ("1999-12-31", "2000-01-02"),
            (today.isoformat(), (today + timedelta(days=2)).isoformat()),
        ):
            reply = await client.get(
                "/v1/card/transactions", params={"start": start, "end": end}, auth=auth
            )
            assert reply.status_code == 400, (start, end, reply.text)
            assert reply.json()["error"]["code"] == "invalid_range"
        assert stats(school)["requests"] == before
        assert deps.card.breaker.state == "closed"
        tomorrow = (today + timedelta(days=1)).isoformat()
        reply = await client.get(
            "/v1/card/transactions", params={"start": tomorrow, "end": tomorrow}, auth=auth
        )
        assert reply.status_code == 200, "tomorrow is today for a client a few hours ahead"


async def test_the_schools_date_page_is_a_client_error_not_a_school_failure(
    db_url: str, school: Proc
) -> None:
    # The card center's clock three days behind (we expect 55 minutes): the days we
    # ask of its history are its future, which its history form calls illegal.
    sim_json(school.url, "/__sim/control", {"clock_offset_minutes": -3 * 24 * 60})
    yesterday = (datetime.now(CHINA).date() - timedelta(days=1)).isoformat()
    async with serve_app(make_settings(db_url, school.url)) as (client, deps):
        for n in range(8):
            student = f"20120527{n:02d}"
            reply = await client.get(
                "/v1/card/transactions",
                params={"start": yesterday, "end": yesterday},
                auth=(student, student[-6:]),
            )
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"]["code"] == "query_rejected"
        assert deps.card.breaker.state == "closed"
        other = "2012052795"
        assert (await balance(client, other, other[-6:])).status_code == 200


async def test_one_student_cannot_open_the_breaker_for_everyone(db_url: str, school: Proc) -> None:
    # A history longer than we page through fails for this student only.
    settings = make_settings(db_url, school.url, **{"school.card.max_pages": 1})
    student = "2012052696"
    start = (date.today() - timedelta(days=60)).isoformat()
    end = (date.today() - timedelta(days=1)).isoformat()
    async with serve_app(settings) as (client, deps):
        for _ in range(12):
            reply = await client.get(
                "/v1/card/transactions",
                params={"start": start, "end": end, "fresh": "1"},
                auth=(student, student[-6:]),
            )
            assert reply.status_code == 502, reply.text
        assert deps.card.breaker.state == "closed"
        for other in ("2012052697", "2012052698"):
            assert (await balance(client, other, other[-6:])).status_code == 200


async def test_one_student_cannot_fill_the_line(tmp_path: Path, db_url: str) -> None:
    with schoolsim(tmp_path, "fast", "latency_ms_median=200", "latency_ms_min=200") as slow:
        settings = make_settings(db_url, slow.url, **{"budget.per_student_queue": 2})
        student = "2012052699"
        auth = (student, student[-6:])
        async with serve_app(settings) as (client, _):
            assert (await client.get("/v1/card/balance", auth=auth)).status_code == 200

            async def history(days_back: int) -> httpx.Response:
                day = (date.today() - timedelta(days=days_back)).isoformat()
                return await client.get(
                    "/v1/card/transactions", params={"start": day, "end": day}, auth=auth
                )

            other = "2012052600"
            flood = [history(n) for n in range(1, 11)]
            replies = await asyncio.gather(*flood, balance(client, other, other[-6:]))
            codes = Counter(r.status_code for r in replies[:-1])
            assert codes[429] >= 1, codes
            assert {r.json()["error"]["code"] for r in replies[:-1] if r.status_code == 429} == {
                "student_busy"
            }
            assert replies[-1].status_code == 200, "another student is not held up"


# -- across processes and hosts, and the default limits ---------------------------------------


async def test_two_instances_on_one_database_judge_at_most_five_guesses(
    tmp_path: Path, db_url: str, school: Proc
) -> None:
    student = "2012052601"
    right = student[-6:]
    with (
        jnufm_server(tmp_path, db_url, school.url, default_limits=True) as one,
        jnufm_server(tmp_path, db_url, school.url, default_limits=True) as two,
    ):
        async with clients(one.url, 4) as first, clients(two.url, 4) as second:
            assert (await balance(first[0], student, right)).status_code == 200
            before = failed_logins(school)
            pool = first + second
            replies = await asyncio.gather(
                *(balance(pool[n % 8], student, g) for n, g in enumerate(guesses(30, right)))
            )
            codes = Counter(r.status_code for r in replies)
            assert set(codes) <= {401, 429}, codes
            # A 429 may also be the student's line being full (student_busy: the school
            # never judged it, though the stored verifier's verdict counts it); on a busy
            # machine the burst can end before the lockout. More guesses, one at a time,
            # until the lockout answers.
            extra = iter(guesses(60, right)[30:])
            while not any(error_code(r) == "too_many_failed_logins" for r in replies):
                reply = await balance(second[0], student, next(extra))
                assert reply.status_code in (401, 429), reply.text
                replies.append(reply)
                codes[reply.status_code] += 1
            assert codes[401] <= 5, codes
            assert failed_logins(school) - before == codes[401]
            assert error_code(await balance(second[3], student, right)) == "too_many_failed_logins"


async def ab(client: httpx.AsyncClient, path: str, concurrency: int, total: int) -> list[int]:
    """What `ab -c concurrency -n total` does: `concurrency` clients share `total` requests."""
    left = iter(range(total))
    codes: list[int] = []

    async def one_client() -> None:
        for _ in left:
            codes.append((await client.get(path)).status_code)

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return codes


async def test_the_2013_ab_commands_pass_with_the_default_limits(
    tmp_path: Path, db_url: str, school: Proc
) -> None:
    """`ab -c 3 -n 10` then `ab -c 5 -n 50` on one student's balance: no non-2xx."""
    path = "/card/rest?stuid=2012052690&password=052690"
    with jnufm_server(tmp_path, db_url, school.url, default_limits=True) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=60, trust_env=False) as client:
            assert await ab(client, path, 3, 10) == [200] * 10
            assert await ab(client, path, 5, 50) == [200] * 50


async def test_an_address_over_its_school_limit_does_not_refuse_others_the_same_search(
    db_url: str, school: Proc
) -> None:
    # The attacker's address spends its school requests; then it leads searches that
    # others ask at the same moment. Its own limit must not answer them.
    rounds = 4
    settings = make_settings(
        db_url,
        school.url,
        **{"limits.school_requests_per_s": 0.001, "limits.school_burst": rounds + 1},
    )
    async with serve_app(settings) as (client, _):
        base = str(client.base_url)
        async with clients(base, 9) as (attacker, *others):
            for n in range(rounds + 1):
                spent = await attacker.get("/v1/library/search", params={"q": f"Java {n}"})
                assert spent.status_code == 200, spent.text
            refused = 0
            for n in range(rounds):
                q = f"Kotlin {n}"

                async def search(c: httpx.AsyncClient, q: str = q) -> httpx.Response:
                    return await c.get("/v1/library/search", params={"q": q})

                replies = await asyncio.gather(search(attacker), *(search(c) for c in others))
                refused += replies[0].status_code == 429
                for reply in replies[1:]:
                    assert reply.status_code == 200, reply.text
            # The attacker's own searches are still refused.
            assert refused
