"""End-to-end tests of `python -m schoolsim`: both markups, as the evidence describes them.

The helpers here read pages with regular expressions and the keypad with the
2013 method (threshold 118, fixed crops, exact match against the 2013
templates), independently of school/: the simulator must satisfy what the
2013 client did, not what our client tolerates.
"""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from harness.processes import ROOT, Proc, schoolsim, sim_json

STUID = "2012052690"
KEYPAD_DIR = ROOT / "tests" / "fixtures" / "card-keypad"
# The 2013 templates and what each shows ("C" 清除, "X" 关闭).
TEMPLATES = {
    "00": "7",
    "01": "1",
    "02": "4",
    "10": "2",
    "11": "6",
    "12": "8",
    "20": "3",
    "21": "5",
    "22": "9",
    "30": "0",
    "31": "C",
    "32": "X",
}


def _binary(image: Image.Image) -> bytes:
    return image.convert("L").point([0 if i < 118 else 255 for i in range(256)]).tobytes()


def _templates() -> dict[bytes, str]:
    out = {}
    for name, key in TEMPLATES.items():
        with Image.open(KEYPAD_DIR / f"{name}.png") as image:
            out[_binary(image)] = key
    return out


def decode_keypad(jpeg: bytes) -> list[str]:
    """What each of the 12 keys shows, read exactly as the 2013 client read it."""
    image = Image.open(io.BytesIO(jpeg))
    assert (image.format, image.mode, image.size) == ("JPEG", "L", (117, 180))
    templates = _templates()
    keys = []
    for n in range(4):
        for m in range(3):
            crop = image.crop((10 + 36 * m, 36 + 36 * n, 33 + 36 * m, 59 + 36 * n))
            keys.append(templates[_binary(crop)])
    return keys


def gbk(resp: httpx.Response) -> str:
    """A card center page decoded from GBK."""
    return resp.content.decode("gbk")


def is_login_page(text: str) -> bool:
    return re.search(r'<form[^>]*action="[^"]*loginstudent\.action"', text) is not None


def message(text: str) -> str | None:
    m = re.search(r'<p class="biaotou">(.*?)</p>', text)
    return m.group(1) if m else None


def result_rows(text: str) -> list[tuple[str, list[str]]]:
    """(css class, cells) of each listbg/listbg2 row of a result page."""
    rows = []
    for css, inner in re.findall(r'<tr class="(listbg2?)">(.*?)</tr>', text):
        rows.append((css, re.findall(r"<td[^>]*>(.*?)</td>", inner)))
    return rows


def pager(text: str) -> tuple[int, int]:
    """(pages, current page) of the later platform's pager row."""
    m = re.search(
        r'<tr class="bl"><td colspan="10"><div align="center">[^<]*'
        r"共(\d+)页&nbsp;&nbsp;当前第(\d+)页",
        text,
    )
    assert m, text
    return int(m.group(1)), int(m.group(2))


def form_action(text: str) -> str:
    m = re.search(r'<form[^>]*action="([^"]*)"', text)
    assert m, text
    return m.group(1).replace("&amp;", "&")


def fetch_keypad(client: httpx.Client) -> list[str]:
    resp = client.get("/getpasswdPhoto.action")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/jpeg"
    return decode_keypad(resp.content)


def login(client: httpx.Client, stuid: str, password: str, keypad: bool = True) -> str:
    """The 2013 client's login, home page included; returns the answer page."""
    client.get("/")
    assert client.get("/getCheckpic.action", params={"rand": "8000."}).status_code == 200
    keys = fetch_keypad(client) if keypad else [str(d) for d in range(10)]
    cell_of = {key: "0123456789CX"[i] for i, key in enumerate(keys)}
    sent = "".join(cell_of[d] for d in password)
    resp = client.post(
        "/loginstudent.action",
        data={"name": stuid, "passwd": sent, "rand": "8000", "loginType": "2", "userType": "1"},
    )
    assert resp.status_code == 200
    return gbk(resp)


def truth(sim: Proc, stuid: str = STUID) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/students/{stuid}")


def control(sim: Proc, **settings: object) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/control", settings)


def stats(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, "/__sim/stats")


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        proc.extra["settings"] = stats(proc)["settings"]
        yield proc
        assert proc.stop() == 0


@pytest.fixture(autouse=True)
def _restore(request: pytest.FixtureRequest) -> Iterator[None]:
    """Put the shared simulator's settings back after a test that changed them."""
    yield
    if "sim" in request.fixturenames:
        proc: Proc = request.getfixturevalue("sim")
        sim_json(proc.url, "/__sim/control", proc.extra["settings"])
        sim_json(proc.url, "/__sim/reset", {"sessions": True})


@pytest.fixture
def client(sim: Proc) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.url, timeout=5) as c:
        yield c


def new_client(sim: Proc) -> httpx.Client:
    return httpx.Client(base_url=sim.url, timeout=5)


def displayed_today(sim: Proc) -> date:
    return datetime.strptime(truth(sim)["displayed_now"], "%Y/%m/%d %H:%M:%S").date()


# ---- pages (2013 markup, the default) ---------------------------------------


def test_home_sets_cookie_and_declares_gbk(client: httpx.Client) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html;charset=GBK"
    assert re.fullmatch(r"JSESSIONID=[0-9A-Fa-f]{32}; Path=/", resp.headers["set-cookie"])
    text = gbk(resp)
    assert '<meta http-equiv="Content-Type" content="text/html; charset=gbk">' in text
    assert is_login_page(text)
    for field in ("name", "passwd", "rand", "loginType", "userType"):
        assert f'name="{field}"' in text
    assert message(text) is None
    assert text.rstrip().endswith("</html>")
    assert gbk(client.get("/homeLogin.action")) == text


def test_captcha_opens_the_session(client: httpx.Client) -> None:
    resp = client.get("/getCheckpic.action", params={"rand": "8000."})
    assert resp.status_code == 200
    assert "JSESSIONID=" in resp.headers["set-cookie"]


def test_keypad_is_the_real_one_reshuffled(client: httpx.Client) -> None:
    client.get("/")
    jpeg = client.get("/getpasswdPhoto.action").content
    keys = decode_keypad(jpeg)
    assert sorted(keys[:10]) == [str(d) for d in range(10)]
    assert keys[10:] == ["C", "X"]
    # Everything but the key faces is the real image's frame and title bar.
    image = Image.open(io.BytesIO(jpeg)).convert("L")
    real = Image.open(KEYPAD_DIR / "full.jpg").convert("L")
    for index in range(12):
        n, m = divmod(index, 3)
        box = (10 + 36 * m, 36 + 36 * n, 33 + 36 * m, 59 + 36 * n)
        image.paste(255, box)
        real.paste(255, box)
    assert _binary(image) == _binary(real)
    # The real image is a quality 75 JPEG: the same quantisation tables.
    with Image.open(io.BytesIO(jpeg)) as ours, Image.open(KEYPAD_DIR / "full.jpg") as theirs:
        assert ours.quantization == theirs.quantization  # type: ignore[attr-defined]
    shuffles = {tuple(keys)} | {tuple(fetch_keypad(client)) for _ in range(4)}
    assert len(shuffles) > 1


def test_login_success(sim: Proc, client: httpx.Client) -> None:
    text = login(client, STUID, STUID[-6:])
    assert not is_login_page(text)
    assert f"持卡人：{truth(sim)['name']}" in text
    assert stats(sim)["logins_ok"] == 1


def test_login_wrong_password(sim: Proc, client: httpx.Client) -> None:
    text = login(client, STUID, "000000")
    assert is_login_page(text)
    assert message(text) == "登陆失败，密码错误"
    assert stats(sim)["logins_failed"] == 1


def test_login_unknown_user(client: httpx.Client) -> None:
    text = login(client, "1999000000", "000000")
    assert is_login_page(text)
    assert message(text) == "登陆失败，无此用户名称！"


def test_login_without_keypad_is_expired(client: httpx.Client) -> None:
    text = login(client, STUID, STUID[-6:], keypad=False)
    assert message(text) == "验证码已过期，请刷新页面"
    fresh = httpx.post(
        client.base_url.join("/loginstudent.action"),
        data={"name": STUID, "passwd": "012345", "rand": "8000"},
    )
    assert message(gbk(fresh)) == "验证码已过期，请刷新页面"
    assert "JSESSIONID=" in fresh.headers["set-cookie"]


def test_data_pages_need_login(client: httpx.Client) -> None:
    client.get("/")
    for resp in (
        client.get("/accountcardUser.action"),
        client.get("/accounttodayTrjn.action"),
        client.post("/accounthisTrjn3.action"),
        client.post("/accountconsubBrows.action", data={"pageNum": "2"}),
    ):
        assert resp.status_code == 200
        assert is_login_page(gbk(resp))


def test_account_page_matches_truth(sim: Proc, client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    text = gbk(client.get("/accountcardUser.action"))
    t = truth(sim)
    # Evidence: every cell td.neiwen, labels with a full-width colon.
    cells = re.findall(r'<td class="neiwen"[^>]*>(.*?)</td>', text)
    assert len(cells) == len(re.findall(r"<td", text)) == 14
    values = [c for c in cells if "：" not in c]
    assert values[:6] == [
        t["name"],
        t["card_number"],
        STUID,
        t["identity"],
        t["department"],
        "正常",
    ]
    # 2013: the first value cell holding 余额, the text before its first 元.
    balance = next(v for v in values if "余额" in v)
    assert balance.split("元")[0] == t["balance"]
    assert balance.endswith("元（卡余额）0.00元(当前过渡余额)0.00元(上次过渡余额)")


def _expected(rows: list[dict[str, Any]]) -> list[list[str]]:
    return [[r["time"], r["way"], r["position"], r["amount"], r["balance_after"]] for r in rows]


def test_today_chain_and_spend(sim: Proc, client: httpx.Client) -> None:
    before = truth(sim)
    spent = sim_json(
        sim.url, f"/__sim/students/{STUID}/spend", {"amount": "5.50", "position": "第二饭堂"}
    )
    sim_json(sim.url, f"/__sim/students/{STUID}/spend", {"amount": "1.25"})
    after = truth(sim)
    assert Decimal(str(spent["balance"])) == Decimal(before["balance"]) - Decimal("5.50")
    assert Decimal(after["balance"]) == Decimal(before["balance"]) - Decimal("6.75")
    assert after["today"][0]["amount"] == "-1.25"
    assert after["today"][1]["position"] == "第二饭堂"

    login(client, STUID, STUID[-6:])
    form = gbk(client.get("/accounttodayTrjn.action"))
    assert form_action(form) == "/accounttodayTrjn.action"
    card = after["card_number"]
    # The first option of each select, the GBK " 确 定 " button, as a browser posts them.
    assert f'<option value="{card}">{card}[主卡]</option>' in form
    assert '<select name="inputObject"><option value="all">' in form
    body = f"account={card}&inputObject=all&Submit=+%C8%B7+%B6%A8+".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    text = gbk(client.post("/accounttodayTrjn.action", content=body, headers=headers))
    rows = result_rows(text)
    assert [cells[:5] for _, cells in rows] == _expected(after["today"][:10])
    assert all(len(cells) == 7 for _, cells in rows)
    assert [css for css, _ in rows][:2] == ["listbg", "listbg2"]
    # No pager in the 2013 markup, but a form for the next page.
    assert "共" not in text
    assert '<input type="hidden" name="pageNum" value="1">' in text
    account = gbk(client.get("/accountcardUser.action"))
    assert f"{after['balance']}元（卡余额）" in account


def _history_query(client: httpx.Client, start: str, end: str) -> httpx.Response:
    client.get("/accounthisTrjn.action")
    client.post("/accounthisTrjn1.action", data={"account": "x", "inputObject": "all"})
    return client.post(
        "/accounthisTrjn2.action", data={"inputStartDate": start, "inputEndDate": end}
    )


def test_history_chain_with_paging(sim: Proc, client: httpx.Client) -> None:
    t = truth(sim, "2011000001")
    login(client, "2011000001", "000001")
    step1 = gbk(client.get("/accounthisTrjn.action"))
    assert form_action(step1) == "/accounthisTrjn1.action"
    step2 = gbk(client.post("/accounthisTrjn1.action", data={"inputObject": "all"}))
    assert form_action(step2) == "/accounthisTrjn2.action"
    yesterday = displayed_today(sim) - timedelta(days=1)
    assert f'name="inputStartDate" value="{yesterday - timedelta(days=7):%Y%m%d}"' in step2
    assert f'name="inputEndDate" value="{yesterday:%Y%m%d}"' in step2
    step3 = gbk(
        client.post(
            "/accounthisTrjn2.action",
            data={"inputStartDate": t["history_from"], "inputEndDate": t["history_to"]},
        )
    )
    assert "正在查询，请稍候..." in step3
    assert form_action(step3) == "/accounthisTrjn3.action"
    assert "document.form1.submit()" in step3
    got = result_rows(gbk(client.post("/accounthisTrjn3.action")))
    expected = t["history_days"]
    pages = -(-len(expected) // 10)
    assert len(expected) > 10
    assert len(got) == 10
    for n in range(2, pages + 1):
        got += result_rows(gbk(client.post("/accountconsubBrows.action", data={"pageNum": str(n)})))
    assert [cells[:5] for _, cells in got] == _expected(expected)
    assert all(cells[6] == "正常" and cells[5].isdigit() for _, cells in got)
    assert [css for css, _ in got[:3]] == ["listbg", "listbg2", "listbg"]
    # A page past the end answers the last page again.
    last = result_rows(gbk(client.post("/accountconsubBrows.action", data={"pageNum": "99"})))
    assert last == got[(pages - 1) * 10 :]
    # The chain is used up: step 4 again is out of order.
    assert message(gbk(client.post("/accounthisTrjn3.action"))) == "请按步骤查询"


def test_history_may_end_today_but_holds_no_row_of_today(sim: Proc, client: httpx.Client) -> None:
    # Evidence: 2013 asked today-7 .. today; later clients note dated queries hold no today rows.
    sim_json(sim.url, f"/__sim/students/{STUID}/spend", {"amount": "2.00"})
    t = truth(sim)
    login(client, STUID, STUID[-6:])
    today = displayed_today(sim)
    start = today - timedelta(days=7)
    text = gbk(_history_query(client, f"{start:%Y%m%d}", f"{today:%Y%m%d}"))
    assert "正在查询" in text
    got = result_rows(gbk(client.post("/accounthisTrjn3.action")))
    for n in range(2, 6):
        got += result_rows(gbk(client.post("/accountconsubBrows.action", data={"pageNum": str(n)})))
    times = {cells[0] for _, cells in got}
    assert not any(r["time"] in times for r in t["today"])
    assert times >= {r["time"] for r in t["history_days"] if r["time"][:10] >= f"{start:%Y/%m/%d}"}


def test_history_empty_range(client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    assert "正在查询" in gbk(_history_query(client, "20000101", "20000131"))
    text = gbk(client.post("/accounthisTrjn3.action"))
    assert result_rows(text) == []
    assert "<td>交易发生时间</td>" in text


def test_history_bad_dates(sim: Proc, client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    today = displayed_today(sim)
    yesterday = today - timedelta(days=1)
    fmt = "%Y%m%d"
    for start, end in (
        (yesterday.strftime(fmt), (yesterday - timedelta(days=3)).strftime(fmt)),
        (today.strftime(fmt), (today + timedelta(days=2)).strftime(fmt)),
        ("2013-08-01", yesterday.strftime(fmt)),
        ("20130231", "20130301"),
    ):
        text = gbk(_history_query(client, start, end))
        assert message(text) == "查询日期不合法", (start, end)
        assert not is_login_page(text)


def test_out_of_order_steps(client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    assert message(gbk(client.post("/accountconsubBrows.action", data={"pageNum": "1"}))) == (
        "请按步骤查询"
    )
    assert message(gbk(client.post("/accounthisTrjn3.action"))) == "请按步骤查询"
    assert message(gbk(client.post("/accounthisTrjn2.action"))) == "请按步骤查询"
    assert message(gbk(client.post("/accounttodayTrjn.action"))) == "请按步骤查询"
    client.get("/accounthisTrjn.action")
    # Step 3 (dates) without step 2 (date form).
    resp = client.post(
        "/accounthisTrjn2.action", data={"inputStartDate": "20130801", "inputEndDate": "20130802"}
    )
    assert message(gbk(resp)) == "请按步骤查询"
    # The later platform's entry point does not exist in 2013.
    assert client.post("/accounttodatTrjnObject.action").status_code == 404


def test_session_idle_expiry(sim: Proc, client: httpx.Client) -> None:
    control(sim, session_idle_s=0.3)
    login(client, STUID, STUID[-6:])
    old = client.cookies["JSESSIONID"]
    assert not is_login_page(gbk(client.get("/accountcardUser.action")))
    time.sleep(0.4)
    resp = client.get("/accountcardUser.action")
    assert is_login_page(gbk(resp))
    assert client.cookies["JSESSIONID"] != old
    wait_until(lambda: stats(sim)["sessions"] <= 1)


def test_kick_old_sessions(sim: Proc) -> None:
    with new_client(sim) as a, new_client(sim) as b, new_client(sim) as c:
        login(a, STUID, STUID[-6:])
        login(b, STUID, STUID[-6:])
        assert not is_login_page(gbk(a.get("/accountcardUser.action")))
        control(sim, kick_old_sessions=True)
        login(c, STUID, STUID[-6:])
        assert is_login_page(gbk(a.get("/accountcardUser.action")))
        assert is_login_page(gbk(b.get("/accountcardUser.action")))
        assert not is_login_page(gbk(c.get("/accountcardUser.action")))


def test_password_change(sim: Proc, client: httpx.Client) -> None:
    stuid = "2013000042"
    sim_json(sim.url, f"/__sim/students/{stuid}/password", {"password": "123456"})
    assert truth(sim, stuid)["password_is_default"] is False
    assert message(login(client, stuid, "000042")) == "登陆失败，密码错误"
    assert "持卡人" in login(client, stuid, "123456")
    sim_json(sim.url, f"/__sim/students/{stuid}/password", {"password": "000042"})
    assert truth(sim, stuid)["password_is_default"] is True


# ---- the later platform's markup ----------------------------------------------


def test_platform_pages(sim: Proc, client: httpx.Client) -> None:
    control(sim, markup="platform")
    t = truth(sim, "2011000001")
    login(client, "2011000001", "000001")
    account = gbk(client.get("/accountcardUser.action"))
    # Evidence: values in <div align="left">; the account number second, the name first.
    values = re.findall(r'<div align="left">(.*?)</div>', account)
    assert (values[0], values[1], values[3]) == (t["name"], t["card_number"], "2011000001")
    assert "卡  状  态：" in account and "余    额：" in account
    assert f'<td class="neiwen" colspan="3">{t["balance"]}元（卡余额）' in account
    # Today: the form posts to accounttodatTrjnObject.action, pages by pageVo.pageNum.
    form = gbk(client.get("/accounttodayTrjn.action"))
    assert form_action(form) == "/accounttodatTrjnObject.action"
    for _ in range(12):
        sim_json(sim.url, "/__sim/students/2011000001/spend", {"amount": "0.10"})
    today = truth(sim, "2011000001")["today"]
    first = gbk(client.post("/accounttodatTrjnObject.action", data={"inputObject": "all"}))
    second = gbk(client.post("/accounttodatTrjnObject.action", data={"pageVo.pageNum": "2"}))
    rows = result_rows(first) + result_rows(second)
    pages = -(-len(today) // 10)
    assert pager(first) == (pages, 1)
    assert pager(second) == (pages, 2)
    assert 'name="pageVo.pageNum" value="2"' in second
    assert all(len(cells) == 10 for _, cells in rows)
    # Ten columns: amount td[5], balance td[6].
    assert [[c[0], c[3], c[4], c[5], c[6]] for _, c in rows] == _expected(today)[: len(rows)]
    assert '<table id="tables"' in first and "总交易额为:" in first


def test_platform_history_continuations(sim: Proc, client: httpx.Client) -> None:
    control(sim, markup="platform")
    t = truth(sim, "2011000001")
    login(client, "2011000001", "000001")
    step1 = gbk(client.get("/accounthisTrjn.action"))
    first = form_action(step1)
    assert re.fullmatch(r"/accounthisTrjn\.action\?__continue=[0-9a-f]{16}", first)
    step2 = gbk(client.post(first, data={"account": "x", "inputObject": "all"}))
    second = form_action(step2)
    assert second.startswith("/accounthisTrjn.action?__continue=") and second != first
    dates = {"inputStartDate": t["history_from"], "inputEndDate": t["history_to"]}
    wait = gbk(client.post(second, data=dates))
    relative = form_action(wait)
    # Evidence: the wait page's form names its continuation relative to the page.
    assert relative.startswith("?__continue=")
    assert f'<form id="{relative}"' in wait
    page1 = gbk(client.get("/accounthisTrjn.action" + relative))
    expected = t["history_days"]
    pages = -(-len(expected) // 10)
    assert pager(page1) == (pages, 1)
    got = result_rows(page1)
    for n in range(2, pages + 1):
        text = gbk(client.post("/accountconsubBrows.action", data={"pageNum": str(n)}))
        assert pager(text) == (pages, n)
        got += result_rows(text)
    assert [[c[0], c[3], c[4], c[5], c[6]] for _, c in got] == _expected(expected)
    # A continuation is used once.
    assert message(gbk(client.post(second, data=dates))) == "请按步骤查询"


def test_login_redirect_and_extra_cookie(sim: Proc) -> None:
    control(sim, login_redirect=True, extra_cookie=True)
    with new_client(sim) as c:
        c.get("/getCheckpic.action")
        assert set(c.cookies) == {"JSESSIONID", "BIGipServercard_pool"}
        keys = fetch_keypad(c)
        sent = "".join(str(keys.index(d)) for d in STUID[-6:])
        resp = c.post("/loginstudent.action", data={"name": STUID, "passwd": sent})
        assert resp.status_code == 302
        assert resp.headers["location"] == "accountcardUser.action"
        assert not is_login_page(gbk(c.get("/accountcardUser.action")))
        # Without the balancer's cookie the session is unknown.
        del c.cookies["BIGipServercard_pool"]
        assert is_login_page(gbk(c.get("/accountcardUser.action")))


# ---- overload, failures, down ------------------------------------------------


async def _burst(url: str, n: int) -> list[httpx.Response | Exception]:
    async with httpx.AsyncClient(timeout=5) as ac:
        results = await asyncio.gather(
            *(ac.get(url + "/") for _ in range(n)), return_exceptions=True
        )
    return [r if isinstance(r, httpx.Response | Exception) else Exception(r) for r in results]


async def test_overload_error(sim: Proc) -> None:
    control(sim, capacity=1, queue=0, latency_ms_median=200, latency_sigma=0, latency_ms_min=200)
    sim_json(sim.url, "/__sim/reset", {})
    results = await _burst(sim.url, 5)
    codes = sorted(r.status_code for r in results if isinstance(r, httpx.Response))
    assert codes == [200, 500, 500, 500, 500]
    assert all(
        "<h1>HTTP Status 500</h1>" in r.text
        for r in results
        if isinstance(r, httpx.Response) and r.status_code == 500
    )
    s = stats(sim)
    assert s["peak_in_service"] == 1
    assert s["errors"]["overload"] == 4
    assert s["requests"] == s["answered"] == 5
    assert s["in_flight"] == s["in_service"] == s["queued"] == 0


async def test_overload_queue_and_timeout(sim: Proc) -> None:
    control(sim, capacity=1, queue=1, latency_ms_median=150, latency_sigma=0, latency_ms_min=150)
    sim_json(sim.url, "/__sim/reset", {})
    codes = sorted(r.status_code for r in await _burst(sim.url, 3) if isinstance(r, httpx.Response))
    assert codes == [200, 200, 500]
    s = stats(sim)
    assert (s["peak_in_service"], s["peak_queued"]) == (1, 1)
    # A waiter that cannot get a slot within queue_timeout_s is refused.
    control(sim, queue=5, queue_timeout_s=0.05, latency_ms_median=300, latency_ms_min=300)
    codes = sorted(r.status_code for r in await _burst(sim.url, 3) if isinstance(r, httpx.Response))
    assert codes == [200, 500, 500]


async def test_overload_reset(sim: Proc) -> None:
    control(
        sim,
        capacity=1,
        queue=0,
        latency_ms_median=200,
        latency_sigma=0,
        latency_ms_min=200,
        overload_action="reset",
    )
    sim_json(sim.url, "/__sim/reset", {})
    results = await _burst(sim.url, 4)
    ok = [r for r in results if isinstance(r, httpx.Response)]
    failed = [r for r in results if isinstance(r, httpx.TransportError)]
    assert [r.status_code for r in ok] == [200]
    assert len(failed) == 3
    s = stats(sim)
    assert s["peak_in_service"] == 1
    assert s["errors"]["overload"] == 3
    assert s["answered"] == 1


def test_random_failures(sim: Proc, client: httpx.Client) -> None:
    control(sim, failure_rate=1.0)
    resp = client.get("/")
    assert resp.status_code == 500
    assert "<h1>HTTP Status 500</h1>" in resp.text
    assert stats(sim)["errors"]["random_failure"] == 1
    control(sim, failure_rate=0.0)
    assert client.get("/").status_code == 200


def test_down_modes(sim: Proc) -> None:
    control(sim, down=True, down_mode="reset")
    with pytest.raises(httpx.TransportError):
        httpx.get(sim.url + "/", timeout=2)
    control(sim, down_mode="error")
    resp = httpx.get(sim.url + "/accountcardUser.action", timeout=2)
    assert resp.status_code == 503
    assert "<h1>Service Temporarily Unavailable</h1>" in resp.text
    control(sim, down_mode="hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(sim.url + "/", timeout=0.3)
    # The hung request ends once its client has gone.
    wait_until(lambda: stats(sim)["in_flight"] == 0)
    s = stats(sim)
    assert s["errors"]["down"] == 3
    assert s["answered"] == 1
    control(sim, down=False)
    assert httpx.get(sim.url + "/", timeout=2).status_code == 200


def test_control_rejects_bad_input(sim: Proc) -> None:
    for body in (
        b'{"nope": 1}',
        b'{"capacity": "many"}',
        b'{"capacity": 0}',
        b'{"failure_rate": 1.5}',
        b'{"down": "maybe"}',
        b'{"down_mode": "explode"}',
        b"[1, 2]",
        b"not json",
    ):
        resp = httpx.post(sim.url + "/__sim/control", content=body)
        assert resp.status_code == 400, body
        assert "error" in resp.json()
    assert stats(sim)["settings"] == sim.extra["settings"]
    ok = control(sim, capacity="7", down="false", latency_ms_median=2)
    assert ok["settings"]["capacity"] == 7


def test_stats_counting(sim: Proc, client: httpx.Client) -> None:
    sim_json(sim.url, "/__sim/reset", {"sessions": True})
    client.get("/")
    client.get("/")
    client.get("/nowhere.action")
    login(client, "1999000000", "123456")
    truth(sim)
    s = stats(sim)
    assert s["requests"] == 7
    assert s["requests_by_path"] == {
        "/": 3,
        "/nowhere.action": 1,
        "/getCheckpic.action": 1,
        "/getpasswdPhoto.action": 1,
        "/loginstudent.action": 1,
    }
    assert s["answered"] == 7
    assert s["by_status"] == {"200": 6, "404": 1}
    assert (s["logins_ok"], s["logins_failed"]) == (0, 1)
    assert s["in_flight"] == s["in_service"] == s["queued"] == 0
    assert s["peak_in_flight"] >= 1
    assert s["sessions"] == 1
    assert s["profile"] == "fast"
    assert set(s["errors"]) == {"overload", "random_failure", "down"}
    sim_json(sim.url, "/__sim/reset", {})
    s = stats(sim)
    assert (s["requests"], s["answered"], s["peak_in_flight"], s["sessions"]) == (0, 0, 0, 1)


def test_students_endpoint(sim: Proc) -> None:
    with pytest.raises(Exception, match="404"):
        truth(sim, "1999000000")
    t = truth(sim, "2009123456")
    assert re.fullmatch(r"\d{6}", t["card_number"])
    assert re.fullmatch(r"\d+\.\d\d", t["balance"])
    times = [r["time"] for r in t["history_days"]]
    assert times == sorted(times, reverse=True)
    days = {r["time"][:10] for r in t["history_days"]}
    assert len(days) >= 10
    first = datetime.strptime(t["history_from"], "%Y%m%d").date()
    assert all(date(*map(int, d.split("/"))) >= first for d in days)


def test_determinism(sim: Proc, tmp_path: Path) -> None:
    stuid = "2010333444"
    mine = truth(sim, stuid)
    del mine["displayed_now"]
    with schoolsim(tmp_path, "fast") as same, schoolsim(tmp_path, "fast", "seed=7") as other:
        again = truth(same, stuid)
        del again["displayed_now"]
        assert again == mine
        theirs = truth(other, stuid)
        assert theirs["history_days"] != mine["history_days"]
        assert (theirs["name"], theirs["card_number"]) != (mine["name"], mine["card_number"])
        assert other.stop() == 0


def test_cli_rejects_bad_settings() -> None:
    for args in (["--set", "nope=1"], ["--set", "capacity=lots"], ["--set", "down_mode=x"]):
        run = subprocess.run(
            [sys.executable, "-m", "schoolsim", "--port", "0", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert run.returncode == 2, run
        assert run.stdout == ""
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_sigterm_with_a_hung_request(tmp_path: Path) -> None:
    with schoolsim(tmp_path, "fast", "down=true", "down_mode=hang") as proc:
        assert "schoolsim listening on http://127.0.0.1:" in proc.log()
        hung = subprocess.Popen(
            [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen({proc.url!r})"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(lambda: stats(proc)["in_flight"] == 1)
            # Exits by itself (a kill would give -9), closing the hung connection: the
            # client hears the end from the simulator, not from being killed.
            assert proc.stop(timeout=60) == 0
            assert hung.wait(60) == 1, "the hung request was closed, not answered"
        finally:
            hung.kill()
            hung.wait()
