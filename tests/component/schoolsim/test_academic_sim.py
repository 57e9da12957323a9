"""The simulated academic office over HTTP: ASP.NET behaviour, captcha, side endpoints."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from PIL import Image

from harness.processes import Proc, schoolsim, sim_json

STUDENT = "2012052690"
VIEWSTATE = re.compile(r'name="__VIEWSTATE" id="__VIEWSTATE" value="([^"]+)"')
VALIDATION = re.compile(r'name="__EVENTVALIDATION" id="__EVENTVALIDATION" value="([^"]+)"')


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast", "academic.max_sessions=50") as proc:
        yield proc


@pytest.fixture
def web(sim: Proc) -> Iterator[httpx.Client]:
    sim_json(sim.url, "/__sim/academic/reset", {"sessions": True})
    with httpx.Client(base_url=sim.url + "/jwc/", follow_redirects=False) as client:
        yield client


def gbk_form(fields: dict[str, str]) -> dict[str, object]:
    return {
        "content": urlencode(fields, encoding="gbk"),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


def hidden(page: str) -> dict[str, str]:
    vs, ev = VIEWSTATE.search(page), VALIDATION.search(page)
    assert vs is not None and ev is not None
    return {"__VIEWSTATE": vs[1], "__EVENTVALIDATION": ev[1]}


def test_login_page_is_gbk_aspnet_with_a_session_cookie(web: httpx.Client) -> None:
    answer = web.get("login.aspx")
    assert answer.status_code == 200
    assert "charset=gbk" in answer.headers["content-type"]
    assert re.fullmatch(r"[a-z0-5]{24}", answer.cookies["ASP.NET_SessionId"])
    page = answer.content.decode("gbk")
    assert hidden(page)["__VIEWSTATE"].startswith("/wEP")
    assert 'name="txtYHBS"' in page and 'name="btnLogin"' in page


def test_captcha_is_a_46_by_20_rgba_png(web: httpx.Client) -> None:
    web.get("login.aspx")
    answer = web.get("ValidateCode.aspx")
    with Image.open(io.BytesIO(answer.content)) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (46, 20), "RGBA")


@pytest.mark.parametrize(
    "fields", [{}, {"__VIEWSTATE": "/wEPDwUKforged", "__EVENTVALIDATION": "x"}]
)
def test_a_post_without_a_good_viewstate_fails_as_aspnet(
    sim: Proc, web: httpx.Client, fields: dict[str, str]
) -> None:
    web.get("login.aspx")
    answer = web.post("login.aspx", **gbk_form({**fields, "txtYHBS": STUDENT}))  # type: ignore[arg-type]
    assert answer.status_code == 500
    assert "Validation of viewstate MAC failed" in answer.text
    assert sim_json(sim.url, "/__sim/academic/stats")["viewstate_failures"] == 1


def test_a_viewstate_of_another_key_is_stale(sim: Proc, web: httpx.Client) -> None:
    page = web.get("login.aspx").content.decode("gbk")
    sim_json(sim.url, "/__sim/academic/faults", {"rotate_key": True})
    answer = web.post("login.aspx", **gbk_form({**hidden(page), "txtYHBS": STUDENT}))  # type: ignore[arg-type]
    assert answer.status_code == 500


def test_wrong_captcha_message_and_counter(sim: Proc, web: httpx.Client) -> None:
    page = web.get("login.aspx").content.decode("gbk")
    web.get("ValidateCode.aspx")
    fields = {**hidden(page), "txtYHBS": STUDENT, "txtYHMM": "052690", "txtFJM": "????"}
    answer = web.post("login.aspx", **gbk_form({**fields, "btnLogin": "登 录"}))  # type: ignore[arg-type]
    assert answer.status_code == 200 and "验证码错误" in answer.content.decode("gbk")
    s = sim_json(sim.url, "/__sim/academic/stats")
    assert s["captcha_wrong"] == 1 and s["logins_failed"] == 1


@pytest.mark.parametrize(
    "path",
    [
        "Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx",
        "secure/paikexuanke/WFRM_XK_MAINCX.ASPX",
        "Secure/Cjgl/Cjgl_Cjcx_XsCjcx.aspx",
        "Reports/KsbContent.aspx?key=x",
    ],
)
def test_secure_pages_without_login_redirect_to_login(web: httpx.Client, path: str) -> None:
    answer = web.get(path)
    assert answer.status_code == 302
    assert answer.headers["location"].startswith("/jwc/login.aspx?ReturnUrl=")


def test_the_profile_page_is_counted(sim: Proc, web: httpx.Client) -> None:
    web.get("Secure/Xjgl/Xjgl_Xsxxgl_Xjxxxg_XS.aspx")
    assert sim_json(sim.url, "/__sim/academic/stats")["profile_fetches"] == 1


def test_unknown_page_is_404(web: httpx.Client) -> None:
    assert web.get("nothing.aspx").status_code == 404


def test_truth_is_deterministic_and_has_every_form(sim: Proc) -> None:
    texts = []
    for year in range(2012, 2016):
        for term in (1, 2):
            one = sim_json(sim.url, f"/__sim/academic/students/{STUDENT}?year={year}&term={term}")
            again = sim_json(sim.url, f"/__sim/academic/students/{STUDENT}?year={year}&term={term}")
            assert one == again
            courses = one["courses"]
            assert isinstance(courses, list)
            texts += [c["schedule"] for c in courses]
    joined = "".join(texts)
    for mark in ("单周", "双周", ";", "②", "-17)", "周"):
        assert mark in joined


def test_side_endpoints_refuse_bad_input(sim: Proc) -> None:
    with httpx.Client(base_url=sim.url) as client:
        assert client.get("/__sim/academic/students/1999000000").status_code == 404
        bad = client.post("/__sim/academic/students/2012052690/password", json={"password": 5})
        assert bad.status_code == 400
        assert client.post("/__sim/academic/faults", json={"wrong_captcha": -1}).status_code == 400
        assert client.post("/__sim/academic/control", json={"nope": 1}).status_code == 400


def test_sessions_are_capped(sim: Proc) -> None:
    for _ in range(80):
        with httpx.Client(base_url=sim.url + "/jwc/") as client:
            client.get("login.aspx")
    sessions = sim_json(sim.url, "/__sim/academic/stats")["sessions"]
    assert isinstance(sessions, int) and sessions <= 50


def test_stats_reset(sim: Proc, web: httpx.Client) -> None:
    web.get("login.aspx")
    assert sim_json(sim.url, "/__sim/academic/stats")["requests"] == 1
    sim_json(sim.url, "/__sim/academic/reset", {})
    s = sim_json(sim.url, "/__sim/academic/stats")
    assert s["requests"] == 0 and s["captcha_wrong"] == 0


def login(web: httpx.Client) -> None:
    from systems.academic.captcha import read_captcha

    for _ in range(5):
        page = web.get("login.aspx").content.decode("gbk")
        code = read_captcha(web.get("ValidateCode.aspx").content)
        fields = {**hidden(page), "txtYHBS": STUDENT, "txtYHMM": "052690", "txtFJM": code}
        answer = web.post("login.aspx", **gbk_form({**fields, "btnLogin": "登 录"}))  # type: ignore[arg-type]
        if answer.status_code == 302:
            return
    pytest.fail("no login in 5 tries")


@pytest.mark.parametrize(("encoding", "status"), [("gbk", 200), ("utf-8", 500)])
def test_term_values_must_come_in_gbk(web: httpx.Client, encoding: str, status: int) -> None:
    login(web)
    page = web.get("Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx").content.decode("gbk")
    fields = {**hidden(page), "dlstXndZ": "2012-2013", "dlstXndZ0": "2012-2013"}
    fields |= {"dlstNdxq": "第一学期", "dlstNdxq0": "第一学期", "bthSearch": "查 询"}
    answer = web.post(
        "Secure/PaiKeXuanKe/wfrm_XK_MainCX.aspx",
        content=urlencode(fields, encoding=encoding),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == status
    if status == 200:
        assert "DGItemStyle" in answer.content.decode("gbk")
    else:
        assert "Invalid postback or callback argument" in answer.text
