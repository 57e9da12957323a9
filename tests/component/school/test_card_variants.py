"""Every markup variant of the simulated card center through our real server, over HTTP.

One simulator per markup; its `variant` setting is switched with POST /__sim/control
between cases. Whatever the variant, a right password gives the answers plain gives (the
simulator's truth), a wrong password or an unknown student a 401, never a 502.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from school.errors import InvalidCredentials, SchoolPageError
from schoolsim.variants import VARIANTS, VariantSetting, variant_for
from systems.card.client import CardCenterClient
from systems.card.config import CardCenterConfig
from tests.component.school.fakeschool import FakeSchool, Response, fixture
from tests.conftest import make_settings, serve_app

STUDENT, PASSWORD = "2011305070", "305070"
OFFSET = timedelta(minutes=55)
# The login page's first tag as each variant writes it (the switch took effect).
FIRST_TAG = {
    "plain": b"<html>",
    "legacy": b"<HTML>",
    "modern": b"<!DOCTYPE html>",
    "bare": b"<html>",
}


@pytest.fixture(scope="module", params=["2013", "platform"])
def sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast", f"markup={request.param}") as proc:
        yield proc


def use_variant(sim: Proc, variant: VariantSetting) -> None:
    answer = sim_json(sim.url, "/__sim/control", {"variant": variant})
    assert answer["settings"]["variant"] == variant


def shifted(shown: str) -> str:
    """A card center time as the API prints it (ISO, +55 minutes, China time)."""
    return (datetime.strptime(shown, "%Y/%m/%d %H:%M:%S") + OFFSET).isoformat(sep=" ")


def expected(truth: dict[str, Any]) -> dict[str, Any]:
    """What /card/rest, /card/today and /card/month must answer, from the simulator's truth."""
    shown_today = datetime.strptime(truth["displayed_now"], "%Y/%m/%d %H:%M:%S").date()
    first = f"{shown_today - timedelta(days=7):%Y/%m/%d}"
    month = truth["today"] + [r for r in truth["history_days"] if r["time"][:10] >= first]
    return {
        "rest": truth["balance"],
        "today": [(shifted(r["time"]), r["amount"], r["balance_after"]) for r in truth["today"]],
        "month": [(shifted(r["time"]), r["position"], r["balance_after"]) for r in month],
    }


async def answers(client: httpx.AsyncClient, creds: dict[str, str]) -> dict[str, Any]:
    rest = await client.get("/card/rest", params=creds)
    today = await client.get("/card/today", params=creds)
    month = await client.get("/card/month", params=creds)
    assert (rest.status_code, today.status_code, month.status_code) == (200, 200, 200)
    return {
        "rest": rest.json()["data"],
        "today": [(r["time"], r["price"], r["rest"]) for r in today.json()["data"]],
        "month": [(r["time"], r["position"], r["rest"]) for r in month.json()["data"]],
    }


async def test_every_variant_answers_as_plain(sim: Proc, tmp_path: Path) -> None:
    sim_json(sim.url, f"/__sim/students/{STUDENT}/spend", {"amount": "2.20"})
    plain: tuple[dict[str, Any], dict[str, Any]] | None = None
    try:
        for variant in VARIANTS:
            use_variant(sim, variant)
            async with httpx.AsyncClient(trust_env=False) as browser:
                home = await browser.get(sim.url + "/")
            assert home.content.startswith(FIRST_TAG[variant])
            truth = sim_json(sim.url, f"/__sim/students/{STUDENT}")
            db = f"sqlite+aiosqlite:///{tmp_path / f'{variant}.sqlite3'}"
            async with serve_app(make_settings(db, sim.url)) as (client, _):
                got = await answers(client, {"stuid": STUDENT, "password": PASSWORD})
            assert got == expected(truth), variant
            assert got["today"] and got["today"][0][1] == "-2.20"
            if plain is None:
                plain = (truth, got)
            elif plain[0] == truth:  # nothing happened at the school in between
                assert got == plain[1], variant
    finally:
        use_variant(sim, "plain")


async def test_refusals_are_401_in_every_variant(sim: Proc, tmp_path: Path) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'db'}", sim.url)
    try:
        async with serve_app(settings) as (client, _):
            # Other students in each variant: no refusal counts against the next case.
            settings_tried: tuple[VariantSetting, ...] = (*VARIANTS, "mixed")
            for n, variant in enumerate(settings_tried):
                use_variant(sim, variant)
                for creds in (
                    {"stuid": f"201130507{n}", "password": "000000"},  # wrong password
                    {"stuid": f"199900000{n}", "password": "000000"},  # no such student
                ):
                    resp = await client.get("/card/rest", params=creds)
                    assert resp.status_code == 401, (variant, creds["stuid"], resp.text)
                    assert resp.json()["error"]["code"] == "invalid_credentials"
                    auth = (creds["stuid"], "000001")
                    v1 = await client.get("/v1/card/balance", auth=auth)
                    assert v1.status_code == 401, (variant, creds["stuid"], v1.text)
    finally:
        use_variant(sim, "plain")


async def test_mixed_gives_each_student_the_truth(sim: Proc, tmp_path: Path) -> None:
    students = ["2010204060", "2012052690", "2014000123", "2018111222"]
    assert {variant_for("mixed", s) for s in students} == set(VARIANTS)
    use_variant(sim, "mixed")
    try:
        async with serve_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'db'}", sim.url)) as (
            client,
            _,
        ):
            for stuid in students:
                truth = sim_json(sim.url, f"/__sim/students/{stuid}")
                resp = await client.get(
                    "/card/rest", params={"stuid": stuid, "password": stuid[-6:]}
                )
                assert resp.json() == {"data": truth["balance"]}, stuid
    finally:
        use_variant(sim, "plain")


# --- the client's own verdicts, on a scripted card center ---------------------------


@pytest.fixture
async def school() -> AsyncIterator[FakeSchool]:
    async with FakeSchool() as fake:
        yield fake


UNKNOWN = [
    "<html><body><p>系统维护中，请稍后再试</p></body></html>",
    "<HTML><BODY><CENTER><FONT color=red>密码错误次数过多将冻结账户</FONT>",
    "<html><body><h1>HTTP Status 404</h1></body></html>",
]


@pytest.mark.parametrize("page", UNKNOWN)
async def test_an_unknown_login_answer_is_a_login_page_error(school: FakeSchool, page: str) -> None:
    """Neither the login form nor account data, after the login: an unknown outcome."""
    school.overrides["/loginstudent.action"] = lambda r: Response(page.encode("gbk"))
    school.overrides["/accountcardUser.action"] = lambda r: Response(page.encode("gbk"))
    async with httpx.AsyncClient(trust_env=False) as http:
        config = CardCenterConfig(base_url=school.url, connect_timeout_s=1.0, total_timeout_s=2.0)
        with pytest.raises(SchoolPageError) as caught:
            await CardCenterClient(config, http).login("2012052690", "052690")
    assert caught.value.kind == "login"
    assert not isinstance(caught.value, InvalidCredentials)


async def test_an_unreadable_keypad_names_its_kind(school: FakeSchool) -> None:
    school.overrides["/getpasswdPhoto.action"] = lambda r: Response(
        fixture("login.html"), content_type="image/jpeg", set_cookie="K" * 32
    )
    async with httpx.AsyncClient(trust_env=False) as http:
        config = CardCenterConfig(base_url=school.url, connect_timeout_s=1.0, total_timeout_s=2.0)
        with pytest.raises(SchoolPageError) as caught:
            await CardCenterClient(config, http).login("2012052690", "052690")
    assert caught.value.kind == "keypad"
