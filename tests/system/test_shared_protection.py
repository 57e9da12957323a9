"""Coalescing and the school budget hold across workers and server instances on one database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Proc, jnufm_server, schoolsim, sim_json


@pytest.fixture
def slow_school(tmp_path: Path) -> Iterator[Proc]:
    """~50 ms per request: a fetch takes long enough for others to pile up behind it."""
    with schoolsim(tmp_path, "fast", "latency_ms_median=50", "latency_ms_min=50") as proc:
        yield proc


async def ask_all(urls: list[str], students: list[str]) -> list[httpx.Response]:
    """Send one balance query per student, round-robin over the servers, all at once."""
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(
                client.get(
                    urls[i % len(urls)] + "/card/rest",
                    params={"stuid": s, "password": s[-6:]},
                    headers={"Connection": "close"},
                )
                for i, s in enumerate(students)
            )
        )


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/stats")


@pytest.mark.long
async def test_two_instances_of_two_workers_fetch_one_student_once(
    tmp_path: Path, db_url: str, slow_school: Proc
) -> None:
    with (
        jnufm_server(tmp_path, db_url, slow_school.url) as one,
        jnufm_server(tmp_path, db_url, slow_school.url) as two,
    ):
        sim_json(slow_school.url, "/__sim/reset", {})
        replies = await ask_all([one.url, two.url], ["2011000555"] * 100)
        assert {r.status_code for r in replies} == {200}
        assert len({r.json()["data"] for r in replies}) == 1
        s = stats(slow_school)
        assert s["logins_ok"] == 1
        assert s["requests_by_path"].get("/accountcardUser.action") == 1


@pytest.mark.long
async def test_two_instances_of_two_workers_never_exceed_the_budget(
    tmp_path: Path, db_url: str, slow_school: Proc
) -> None:
    budget = {"card": 4, "wait_s": 60}
    # The budget is under test, not the answer's deadline: 50 students behind 4 slots
    # may wait longer than the default 10 s for theirs on a busy machine.
    api = {"deadline_s": 60}
    with (
        jnufm_server(tmp_path, db_url, slow_school.url, budget=budget, api=api) as one,
        jnufm_server(tmp_path, db_url, slow_school.url, budget=budget, api=api) as two,
    ):
        sim_json(slow_school.url, "/__sim/reset", {})
        students = [f"20100{i:05d}" for i in range(50)]
        replies = await ask_all([one.url, two.url], students)
        assert [r.status_code for r in replies] == [200] * 50
        s = stats(slow_school)
        assert s["logins_ok"] == 50
        assert s["peak_in_flight"] <= 4
