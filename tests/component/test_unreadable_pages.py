"""A page no client can read (the simulator's `redesign` drill): the student gets 502
school_page_unreadable, the page is kept redacted with the request that led to it,
counted once per kind (in the table and by the breaker), listed on the dashboard and
by `python server.py pages`, on each database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import Proc, schoolsim, sim_json
from tests.conftest import make_settings, serve_app

ROOT = Path(__file__).resolve().parents[2]
# Students of the simulator's dataset (default password: the last 6 digits).
STUDENTS = ["2010204060", "2010204061", "2010204062", "2010204063", "2010204064"]
# What the redesigned page says (schoolsim/overload.py `redesigned_page`): none of it
# may be kept readable.
SECRETS = (
    "张小明",
    "2010204060",
    "440106199001011234",
    "36.50",
    "zhangxm@stu2010.example.edu.cn",
    "13800138000",
    "Qm9vdHN0cmFwVG9rZW4xMjM0NTY3ODkw",
    "204060",
)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


@pytest.fixture
def redesigned(sim: Proc) -> Iterator[Proc]:
    """The card center's account page (the balance) redesigned."""
    sim_json(sim.url, "/__sim/control", {"redesign": r"accountcardUser"})
    try:
        yield sim
    finally:
        sim_json(sim.url, "/__sim/control", {"redesign": ""})


def unreadable_counted(metrics: str, system: str) -> float:
    """jnufm_school_pages_unreadable_total of a system, all page kinds (the counters
    live as long as the test process: compare before and after)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("jnufm_school_pages_unreadable_total{") and f'system="{system}"' in line
    )


def pages_command(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "pages", *argv, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_a_redesigned_page_is_kept_redacted_counted_once_and_listed(
    db_url: str, redesigned: Proc, tmp_path: Path
) -> None:
    settings = make_settings(db_url, redesigned.url)
    async with serve_app(settings) as (client, deps):
        before = unreadable_counted((await client.get("/metrics")).text, "card")
        for student in STUDENTS:
            answer = await client.get(
                "/card/rest", params={"stuid": student, "password": student[-6:]}
            )
            # Every student: the page is unreadable, never a breaker's 503 (the same
            # page kind counts once, however many students meet it), never a 401.
            assert answer.status_code == 502, answer.text
            assert answer.json()["error"]["code"] == "school_page_unreadable"
            assert student[-6:] not in answer.text
        captures = deps.page_captures
        assert captures is not None
        kept = await captures.latest(10)
        # One page, one row: seen by every student.
        assert len(kept) == 1
        row = kept[0]
        assert row.system == "card" and row.seen == len(STUDENTS)
        assert row.kind and row.kind != "other"
        assert row.status == 200 and row.method == "GET"
        assert "accountcardUser" in row.url
        for secret in SECRETS:
            assert secret not in row.page, secret
            assert secret not in row.reason and secret not in row.url
        # What changed stays visible: the new layout's markup and its labels.
        assert 'class="v0-card"' in row.page and "余额" in row.page
        assert 'name="csrf"' in row.page

        metrics = (await client.get("/metrics")).text
        assert f'jnufm_school_pages_unreadable_total{{page="{row.kind}",system="card"}}' in metrics
        assert unreadable_counted(metrics, "card") - before == len(STUDENTS)
        dashboard = (await client.get("/ops/dashboard.json")).json()
        assert [
            (p["id"], p["system"], p["page"], p["seen"]) for p in dashboard["unreadable_pages"]
        ] == [(row.id, "card", row.kind, len(STUDENTS))]
        card = next(s for s in dashboard["school"] if s["system"] == "card")
        assert card["breaker"] == "closed"

    config = tmp_path / "c.yaml"
    config.write_text(f"database:\n  url: {db_url}\n")
    listed = pages_command(config, "list")
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith(f"{row.id}\t"))
    assert f"\tcard\t{row.kind}\t" in line and f"\t{len(STUDENTS)}\t" in line
    shown = pages_command(config, "show", str(row.id))
    assert shown.returncode == 0, shown.stderr
    assert "--- the page, redacted ---" in shown.stdout and 'class="v0-card"' in shown.stdout
    for secret in SECRETS:
        assert secret not in shown.stdout + listed.stdout, secret
    missing = pages_command(config, "show", "999999")
    assert missing.returncode == 2 and "no kept page" in missing.stderr


async def test_pages_kept_are_bounded_per_system_and_day(db_url: str, sim: Proc) -> None:
    # The catalogue's search page redesigned: a different page for every query (the
    # drill writes the path, which holds the query, into the page); at most
    # per_system_per_day of them are kept, every one is counted.
    sim_json(sim.url, "/__sim/opac/control", {"redesign": r"search"})
    try:
        settings = make_settings(db_url, sim.url, **{"captures.per_system_per_day": 2})
        async with serve_app(settings) as (client, deps):
            before = unreadable_counted((await client.get("/metrics")).text, "library")
            for query in ("alpha", "beta", "gamma"):
                answer = await client.get("/book/search/engine", params={"query": query})
                assert answer.status_code == 502, answer.text
                assert answer.json()["error"]["code"] == "school_page_unreadable"
            assert deps.page_captures is not None
            kept = await deps.page_captures.latest(10)
            assert len(kept) == 2 and {r.system for r in kept} == {"library"}
            metrics = (await client.get("/metrics")).text
            assert unreadable_counted(metrics, "library") - before == 3
    finally:
        sim_json(sim.url, "/__sim/opac/control", {"redesign": ""})
