"""Over real HTTP: failed-login lockout (school and cache paths), address rate limit, XFF."""

from __future__ import annotations

import pytest

from harness.processes import Proc, sim_json
from settings import Settings
from tests.conftest import make_settings, serve_app

STUDENT = "2012052690"


def limited(db_url: str, sim: Proc, **limits: object) -> Settings:
    values = {f"limits.{k}": v for k, v in limits.items()}
    return make_settings(db_url, sim.url, **values)


async def test_five_wrong_passwords_lock_the_student_out(db_url: str, sim: Proc) -> None:
    student = "2011022334"
    async with serve_app(limited(db_url, sim)) as (client, _):
        before = sim_json(sim.url, "/__sim/stats")["logins_failed"]
        for guess in range(5):
            wrong = await client.get(
                "/card/rest", params={"stuid": student, "password": f"99999{guess}"}
            )
            assert wrong.status_code == 401
        after = sim_json(sim.url, "/__sim/stats")["logins_failed"]
        assert after - before == 5
        locked = await client.get("/card/rest", params={"stuid": student, "password": "999995"})
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "too_many_failed_logins"
        assert 0 < int(locked.headers["Retry-After"]) <= 900
        # Even the right password is refused: the lockout must not be an oracle.
        right = await client.get("/card/rest", params={"stuid": student, "password": student[-6:]})
        assert right.status_code == 429
        assert sim_json(sim.url, "/__sim/stats")["logins_failed"] == after


async def test_guesses_against_cached_data_count_too(db_url: str, sim: Proc) -> None:
    async with serve_app(limited(db_url, sim)) as (client, _):
        ok = await client.get("/card/rest", params={"stuid": STUDENT, "password": "052690"})
        assert ok.status_code == 200
        codes = [
            (
                await client.get("/card/rest", params={"stuid": STUDENT, "password": f"11111{i}"})
            ).status_code
            for i in range(6)
        ]
        assert codes == [401] * 5 + [429]
        right = await client.get("/card/rest", params={"stuid": STUDENT, "password": "052690"})
        assert right.status_code == 429


async def test_one_address_guessing_many_students_is_locked_out(db_url: str, sim: Proc) -> None:
    async with serve_app(limited(db_url, sim, failed_logins_ip_max=5)) as (client, _):
        for i in range(5):
            student = f"201103{i:04d}"
            resp = await client.get("/card/rest", params={"stuid": student, "password": "000001"})
            assert resp.status_code == 401
        fresh_student = "2011039999"
        resp = await client.get("/card/rest", params={"stuid": fresh_student, "password": "039999"})
        assert resp.status_code == 429


async def test_requests_per_address_are_rate_limited(db_url: str, sim: Proc) -> None:
    settings = limited(db_url, sim, requests_per_s=0.5, burst=3)
    async with serve_app(settings) as (client, _):
        codes = [
            (
                await client.get("/card/rest", params={"stuid": STUDENT, "password": "052690"})
            ).status_code
            for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        refused = await client.get("/v1/card/balance", auth=(STUDENT, "052690"))
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        assert (await client.get("/healthz")).status_code == 200, "probes are not limited"


@pytest.mark.parametrize("trusted", [True, False])
async def test_forwarded_for_counts_only_from_trusted_proxies(
    db_url: str, sim: Proc, trusted: bool
) -> None:
    proxies = ["127.0.0.1/32"] if trusted else []
    settings = limited(db_url, sim, requests_per_s=0.5, burst=2, trusted_proxies=proxies)
    async with serve_app(settings) as (client, _):
        codes = []
        for i in range(4):
            headers = {"X-Forwarded-For": f"203.0.113.{i}"}
            resp = await client.get("/v1/card/balance", auth=(STUDENT, "052690"), headers=headers)
            codes.append(resp.status_code)
        # Behind a trusted proxy each forwarded address has its own bucket; otherwise
        # the header is ignored and every request comes from 127.0.0.1.
        assert codes == ([200] * 4 if trusted else [200, 200, 429, 429])
