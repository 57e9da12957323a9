"""The canary against a real simulated school and a real database: off, it asks the school
nothing; on, a round reads every system fresh and says its pages are readable; a page
redesigned at the school turns its gauge to 0; a school that is down is a skipped round,
not an unreadable page; a refused password is tried once, until it changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from db.engine import make_engine
from db.migrate import migrate
from harness.processes import Proc, schoolsim, sim_json
from observability import metrics
from runtime.wiring import WorkerServices, build_worker_services
from settings import Settings
from tests.conftest import make_settings

STUDENT = "2012052690"  # every simulated student exists; both passwords: the last 6 digits
PASSWORD = "052690"
WRONG = "913572"
OUTCOMES = ("ok", "unreadable", "skipped", "refused_login")
# The card center's page of today's transactions (systems/card/client.py TODAY_PATH).
TODAY_PAGE = "accounttodayTrjn"
# The academic office's exams page (systems/academic/client.py EXAMS_PATH).
EXAMS_PAGE = "wfrm_xk_StudentKcb"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def exposition() -> Samples:
    text, _ = metrics.render()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def runs(samples: Samples, system: str, outcome: str) -> float:
    labels = (("outcome", outcome), ("system", system))
    return samples.get(("jnufm_canary_runs_total", labels), 0.0)


def readable(samples: Samples, system: str, page: str) -> float | None:
    return samples.get(("jnufm_canary_page_readable", (("page", page), ("system", system))))


async def eventually(check: Callable[[], bool], what: str, within_s: float = 60) -> None:
    """Wait until check() holds (looked at every 0.1 s), or fail naming what was awaited."""
    give_up = time.monotonic() + within_s
    while not check():
        if time.monotonic() > give_up:
            raise AssertionError(f"not within {within_s:.0f}s: {what}")
        await asyncio.sleep(0.1)


def password_file(tmp_path: Path, name: str, password: str) -> str:
    path = tmp_path / name
    path.write_text(password + "\n")
    path.chmod(0o600)
    return str(path)


def canary_settings(
    db_url: str,
    sim: Proc,
    tmp_path: Path,
    overrides: dict[str, Any] | None = None,
    enabled: bool = True,
) -> Settings:
    """The canary reading every system often, with the simulator's test student: on, or
    (enabled False) as configured by default, without `canary.enabled`."""
    values: dict[str, Any] = {
        "canary.interval_s": 1.0,
        "canary.card.student_id": STUDENT,
        "canary.card.password_file": password_file(tmp_path, "card", PASSWORD),
        "canary.academic.student_id": STUDENT,
        "canary.academic.password_file": password_file(tmp_path, "academic", PASSWORD),
        "canary.library.query": "python",
    }
    if enabled:
        values["canary.enabled"] = True
    values.update(overrides or {})
    return make_settings(db_url, sim.url, **values)


@asynccontextmanager
async def worker(settings: Settings) -> AsyncIterator[WorkerServices]:
    """A worker's services on this event loop, started as a worker starts them."""
    engine = make_engine(settings.database)
    await migrate(engine)
    await engine.dispose()
    services = await build_worker_services(settings)
    await services.recover()
    try:
        yield services
    finally:
        await services.close()


def requests_to(sim: Proc, path_part: str, system: str = "") -> int:
    """How many requests the simulated system got on paths containing path_part."""
    stats = sim_json(sim.url, f"/__sim/{system + '/' if system else ''}stats")
    return sum(n for path, n in stats["requests_by_path"].items() if path_part in path)


async def test_off_by_default_the_canary_asks_the_school_nothing(
    db_url: str, tmp_path: Path
) -> None:
    with (
        schoolsim(tmp_path) as quiet,
        schoolsim(tmp_path) as watched,
    ):
        # Both fully configured and looking often; only one of them is switched on.
        off = canary_settings(db_url, quiet, tmp_path, enabled=False)
        on = canary_settings(db_url, watched, tmp_path)
        assert off.canary.enabled is False
        async with worker(off) as idle, worker(on) as running:
            assert idle.canary is None
            assert running.canary is not None
            # The one switched on has read every system at least once meanwhile.
            await eventually(
                lambda: (
                    all(
                        requests_to(watched, page, system) > 0
                        for page, system in (("accountcardUser", ""), ("wfrm", "academic"))
                    )
                    and requests_to(watched, "", "opac") > 0
                ),
                "the canary switched on read the card center, the office and the catalogue",
            )
        for system in ("", "academic", "opac", "ilas", "covers"):
            assert requests_to(quiet, "", system) == 0, system or "card"


async def test_a_round_reads_every_system_fresh_and_says_its_pages_are_readable(
    db_url: str, tmp_path: Path
) -> None:
    with schoolsim(tmp_path) as sim:
        settings = canary_settings(db_url, sim, tmp_path)
        before = exposition()
        async with worker(settings):
            # Two rounds of each: the second asks the school again (no cached answer).
            await eventually(
                lambda: all(
                    runs(exposition(), system, "ok") >= runs(before, system, "ok") + 2
                    for system in ("card", "academic", "library")
                ),
                "two ok rounds of every system",
            )
        after = exposition()
    for system, pages in {
        "card": ("login", "account", "today"),
        "academic": ("login", "timetable", "exams", "grades"),
        "library": ("search", "book"),
    }.items():
        for page in pages:
            assert readable(after, system, page) == 1, (system, page)
        stamp = after[("jnufm_canary_last_run_timestamp_seconds", (("system", system),))]
        assert stamp > time.time() - 120
    for outcome in ("unreadable", "skipped", "refused_login"):
        for system in ("card", "academic", "library"):
            assert runs(after, system, outcome) == runs(before, system, outcome), (system, outcome)


async def test_a_redesigned_page_turns_its_gauge_to_zero_and_the_others_stay_readable(
    db_url: str, tmp_path: Path
) -> None:
    with schoolsim(tmp_path) as sim:
        settings = canary_settings(
            db_url, sim, tmp_path, {"canary.library.query": "", "canary.academic.grades": False}
        )
        before = exposition()
        async with worker(settings):
            await eventually(
                lambda: (
                    runs(exposition(), "card", "ok") > runs(before, "card", "ok")
                    and runs(exposition(), "academic", "ok") > runs(before, "academic", "ok")
                ),
                "a first ok round of the card center and the office",
            )
            assert readable(exposition(), "card", "today") == 1
            assert readable(exposition(), "academic", "exams") == 1
            sim_json(sim.url, "/__sim/control", {"redesign": TODAY_PAGE})
            sim_json(sim.url, "/__sim/academic/control", {"redesign": EXAMS_PAGE})
            seen = exposition()
            await eventually(
                lambda: (
                    runs(exposition(), "card", "unreadable") > runs(seen, "card", "unreadable")
                    and runs(exposition(), "academic", "unreadable")
                    > runs(seen, "academic", "unreadable")
                ),
                "a round of each that found a page unreadable",
            )
            after = exposition()
            assert readable(after, "card", "today") == 0
            assert readable(after, "card", "account") == 1
            assert readable(after, "academic", "exams") == 0
            assert readable(after, "academic", "timetable") == 1
            # The redesign undone, the next round reads the page again.
            sim_json(sim.url, "/__sim/control", {"redesign": ""})
            await eventually(
                lambda: readable(exposition(), "card", "today") == 1,
                "the card center's today page readable again",
            )


async def test_a_refused_password_is_tried_once_until_it_changes(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with schoolsim(tmp_path) as sim:
        secret = password_file(tmp_path, "card-password", WRONG)
        settings = canary_settings(
            db_url,
            sim,
            tmp_path,
            {
                "canary.card.password_file": secret,
                "canary.academic.student_id": "",
                "canary.library.query": "",
            },
        )
        before = exposition()
        async with worker(settings):
            # Three rounds said refused_login: the first tried, the next two did not.
            await eventually(
                lambda: (
                    runs(exposition(), "card", "refused_login")
                    >= runs(before, "card", "refused_login") + 3
                ),
                "three refused_login rounds of the card center",
            )
            stats = sim_json(sim.url, "/__sim/stats")
            assert stats["logins_failed"] == 1
            assert stats["logins_ok"] == 0
            assert runs(exposition(), "card", "ok") == runs(before, "card", "ok")
            # The operator puts the right password in the file: the next round uses it.
            assert password_file(tmp_path, "card-password", PASSWORD) == secret
            await eventually(
                lambda: runs(exposition(), "card", "ok") > runs(before, "card", "ok"),
                "an ok round with the new password",
            )
        stats = sim_json(sim.url, "/__sim/stats")
    assert stats["logins_failed"] == 1
    assert stats["logins_ok"] >= 1
    after = exposition()
    assert readable(after, "card", "account") == 1
    # One line per round, and no password in any line of any part of the server.
    rounds = [r for r in caplog.records if r.name == "jnufm.canary"]
    said = sum(r.getMessage().startswith("canary card: ") for r in rounds)
    counted = sum(runs(after, "card", o) - runs(before, "card", o) for o in OUTCOMES)
    assert said == counted
    assert WRONG not in caplog.text


async def test_a_school_that_is_down_skips_the_round_and_says_nothing_of_its_pages(
    db_url: str, tmp_path: Path
) -> None:
    with schoolsim(tmp_path) as sim:
        settings = canary_settings(
            db_url,
            sim,
            tmp_path,
            {"canary.academic.student_id": "", "canary.library.query": ""},
        )
        before = exposition()
        async with worker(settings):
            await eventually(
                lambda: runs(exposition(), "card", "ok") > runs(before, "card", "ok"),
                "a first ok round of the card center",
            )
            sim_json(sim.url, "/__sim/control", {"down": True})
            seen = exposition()
            await eventually(
                lambda: runs(exposition(), "card", "skipped") >= runs(seen, "card", "skipped") + 2,
                "two skipped rounds of the card center",
            )
            after = exposition()
        assert runs(after, "card", "unreadable") == runs(before, "card", "unreadable")
        for page in ("login", "account", "today"):
            assert readable(after, "card", page) == 1, page
