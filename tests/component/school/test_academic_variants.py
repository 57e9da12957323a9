"""The academic office in every markup variant (schoolsim/variants.py), through our real
server over HTTP against the real simulator process: the same timetable, exams and
grades as the `plain` pages, a wrong password and an unknown student each a 401, a
refused captcha retried. One simulator for the module; the variant is switched through
its control endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from schoolsim.variants import VARIANTS
from systems.academic.pages import CaptchaRefused, login_page, parse_login_answer
from tests.conftest import make_settings, serve_app

STUDENT, PASSWORD = "2012052690", "052690"
OTHER_STUDENT = "2011031415"  # never logged in here: its refusal must come from the office
UNKNOWN_STUDENT = "1999000000"  # not a student of the office
TERM = {"year": 2012, "term": 1}
TERMS = [{"year": 2012, "term": 1, "starts": "2012-09-03"}]


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


def switch(sim: Proc, variant: str) -> None:
    """Pages in this variant from now on, and no session left (the next query logs in)."""
    answer = sim_json(sim.url, "/__sim/academic/control", {"variant": variant})
    assert answer["settings"]["variant"] == variant
    sim_json(sim.url, "/__sim/academic/reset", {"sessions": True})


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/academic/stats")


async def answers(client: httpx.AsyncClient) -> dict[str, Any]:
    """What a student sees of a term, asked of the office (not of our cache)."""
    params: dict[str, str | int] = {**TERM, "fresh": "1"}
    auth = (STUDENT, PASSWORD)
    got: dict[str, Any] = {}
    for path, keys in (
        ("/v1/timetable", ("courses",)),
        ("/v1/exams", ("exams",)),
        ("/v1/grades", ("grades", "gpa")),
    ):
        resp = await client.get(path, params=params, auth=auth)
        assert resp.status_code == 200, (path, resp.text)
        body = resp.json()
        assert body["source"] == "school"
        got[path] = {k: body[k] for k in keys}
    legacy = await client.get("/class/get", params={"user": STUDENT, "password": PASSWORD, **TERM})
    assert legacy.status_code == 200, legacy.text
    got["/class/get"] = legacy.json()["data"]
    return got


@pytest.mark.parametrize("variant", [*VARIANTS, "mixed"])
async def test_every_answer_and_refusal_in_each_variant(
    office: Proc, tmp_path: Path, variant: str
) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        office.url,
        # Every `fresh` question goes to the office: each variant's pages are read.
        **{"campus.terms": TERMS, "cache.fresh_min_interval_s": 0},
    )
    async with serve_app(settings) as (client, _):
        switch(office, "plain")
        plain = await answers(client)
        assert plain["/v1/timetable"]["courses"] and plain["/v1/grades"]["grades"]
        assert plain["/v1/exams"]["exams"]

        switch(office, variant)
        # The first login of the variant meets a refused captcha first: read, and retried.
        sim_json(office.url, "/__sim/academic/faults", {"wrong_captcha": 1})
        assert await answers(client) == plain
        counted = stats(office)
        assert counted["logins_ok"] == 1 and counted["captcha_wrong"] >= 1

        for student, password in ((OTHER_STUDENT, "000000"), (UNKNOWN_STUDENT, "000000")):
            failed = stats(office)["logins_failed"]
            resp = await client.get("/v1/timetable", params=TERM, auth=(student, password))
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"]["code"] == "invalid_credentials"
            # The office was asked, and refused once: no captcha retries on a refusal.
            assert stats(office)["logins_failed"] == failed + 1
        legacy = await client.get(
            "/kaoshi/get", params={"user": OTHER_STUDENT, "password": "111111", **TERM}
        )
        assert legacy.status_code == 401, legacy.text


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_office_writes_the_variant_asked(office: Proc, variant: str) -> None:
    """The simulator's side of the matrix: the refusal comes in the variant, with its
    charset declaration and, in `modern`, 2013's size of a refused captcha."""
    switch(office, variant)
    with httpx.Client(base_url=office.url + "/jwc/", trust_env=False, timeout=10) as web:
        form_page = web.get("login.aspx")
        form = login_page(form_page.content, form_page.headers["Content-Type"])
        fields = form.post({"txtYHBS": STUDENT, "txtYHMM": PASSWORD, "txtFJM": "????"}, "btnLogin")
        refused = web.post("login.aspx", data=dict(fields))
    assert refused.status_code == 200
    declared = "charset=gbk" in refused.headers["Content-Type"]
    assert declared == (variant in ("plain", "modern"))
    if variant == "modern":
        assert refused.headers["Content-Length"] == "8792"
    with pytest.raises(CaptchaRefused):
        parse_login_answer(refused.content, refused.headers["Content-Type"], str(refused.url))
    assert stats(office)["captcha_wrong"] == 1
