"""A failing school becomes a clear 502/504 JSON answer with Retry-After, never a hang or a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from db.engine import make_engine
from db.models import Result, Student
from handlers.base import AppDeps
from harness.processes import Proc, free_port, schoolsim, sim_json
from settings import Settings
from tests.conftest import make_settings, serve_app

CREDS = {"stuid": "2012052690", "password": "052690"}


@pytest.fixture(scope="module")
def failing_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A simulator of our own, so switching it off does not disturb other tests."""
    with schoolsim(tmp_path_factory.mktemp("failing-sim")) as proc:
        yield proc


@pytest.fixture
def settings(db_url: str, failing_sim: Proc) -> Iterator[Settings]:
    sim_json(failing_sim.url, "/__sim/control", {"down": False, "failure_rate": 0.0})
    yield make_settings(db_url, failing_sim.url, **{"school.card.total_timeout_s": 1.0})
    sim_json(failing_sim.url, "/__sim/control", {"down": False, "failure_rate": 0.0})


async def count_rows(settings: Settings) -> tuple[int, int]:
    engine = make_engine(settings.database)
    try:
        async with engine.connect() as conn:
            students = (await conn.execute(select(func.count()).select_from(Student))).scalar_one()
            results = (await conn.execute(select(func.count()).select_from(Result))).scalar_one()
            return students, results
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("control", "status", "code"),
    [
        ({"down": True, "down_mode": "reset"}, 502, "school_unavailable"),
        ({"down": True, "down_mode": "error"}, 502, "school_unavailable"),
        ({"down": True, "down_mode": "hang"}, 504, "school_timeout"),
        ({"failure_rate": 1.0}, 502, "school_unavailable"),
    ],
)
async def test_school_failure_is_a_json_gateway_error(
    http_client: httpx.AsyncClient,
    failing_sim: Proc,
    settings: Settings,
    deps: AppDeps,
    control: dict[str, object],
    status: int,
    code: str,
) -> None:
    sim_json(failing_sim.url, "/__sim/control", control)
    resp = await http_client.get("/card/rest", params=CREDS)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code
    assert int(resp.headers["Retry-After"]) > 0
    assert await count_rows(settings) == (0, 0), "nothing half-written"


async def test_school_unreachable_is_a_502(db_url: str) -> None:
    """Nothing listens at the school's address at all."""
    settings = make_settings(db_url, f"http://127.0.0.1:{free_port()}")
    async with serve_app(settings) as (client, _):
        resp = await client.get("/v1/card/balance", auth=("2012052690", "052690"))
        assert resp.status_code == 502
        assert resp.json()["error"]["code"] == "school_unavailable"
        assert "Retry-After" in resp.headers
