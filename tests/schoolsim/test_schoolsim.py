"""End-to-end tests of `python -m schoolsim`, speaking docs/card-center-protocol.md."""

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

from tests.procs import ROOT, Proc, schoolsim, sim_json

STUID = "2012052690"

# The protocol's glyph table, rows of digits 0..9 side by side.
_GLYPH_TABLE = """
.###.   ..#..   .###.   #####   ...#.   #####   ..##.   #####   .###.   .###.
#...#   .##..   #...#   ...#.   ..##.   #....   .#...   ....#   #...#   #...#
#..##   ..#..   ....#   ..#..   .#.#.   ####.   #....   ...#.   #...#   #...#
#.#.#   ..#..   ...#.   ...#.   #..#.   ....#   ####.   ..#..   .###.   .####
##..#   ..#..   ..#..   ....#   #####   ....#   #...#   .#...   #...#   ....#
#...#   ..#..   .#...   #...#   ...#.   #...#   #...#   .#...   #...#   ...#.
.###.   .###.   #####   .###.   ...#.   .###.   .###.   .#...   .###.   .##..
"""


def _trimmed(rows: list[str]) -> tuple[str, ...]:
    """A glyph without its all-blank columns at either side (the ink bounding box)."""
    cols = [c for c in range(len(rows[0])) if any(r[c] == "#" for r in rows)]
    return tuple(r[cols[0] : cols[-1] + 1] for r in rows)


def _glyphs() -> dict[tuple[str, ...], int]:
    lines = [line.split() for line in _GLYPH_TABLE.strip().splitlines()]
    return {_trimmed([line[d] for line in lines]): d for d in range(10)}


def decode_keypad(png: bytes) -> list[int]:
    """The digit in each keypad cell 0..9, decoded as the protocol describes."""
    img = Image.open(io.BytesIO(png)).convert("L")
    assert img.size == (66, 104)
    px = img.load()
    assert px is not None
    glyphs = _glyphs()
    digits = []
    for i in range(10):
        x0, y0 = 22 * (i % 3), 26 * (i // 3)
        ink = [(x, y) for y in range(26) for x in range(22) if px[x0 + x, y0 + y] < 128]  # type: ignore[operator]
        left, right = min(x for x, _ in ink), max(x for x, _ in ink)
        top, bottom = min(y for _, y in ink), max(y for _, y in ink)
        width, height = right - left + 1, bottom - top + 1
        # Digit 1 has blank side columns, so its box is 6 wide; all others are 10 x 14.
        assert height == 14
        assert width in (6, 10)
        pattern = tuple(
            "".join(
                "#" if px[x0 + left + 2 * c, y0 + top + 2 * r] < 128 else "."  # type: ignore[operator]
                for c in range(width // 2)
            )
            for r in range(7)
        )
        digits.append(glyphs[pattern])
    assert sorted(digits) == list(range(10))
    return digits


def gbk(resp: httpx.Response) -> str:
    """A card center page decoded from GBK."""
    return resp.content.decode("gbk")


def is_login_page(text: str) -> bool:
    return re.search(r'<form[^>]*action="[^"]*loginstudent\.action"', text) is not None


def error_info(text: str) -> str | None:
    m = re.search(r'<p id="errorInfo">(.*?)</p>', text)
    return m.group(1) if m else None


def result_rows(text: str) -> list[tuple[str, list[str]]]:
    """(css class, cells) of each listbg/listbg2 row of a result page."""
    rows = []
    for css, inner in re.findall(r'<tr class="(listbg2?)">(.*?)</tr>', text):
        rows.append((css, re.findall(r"<td>(.*?)</td>", inner)))
    return rows


def pager(text: str) -> tuple[int, int, int]:
    m = re.search(r'<div id="pager">共(\d+)条记录&nbsp;&nbsp;当前第(\d+)页/共(\d+)页</div>', text)
    assert m, text
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def fetch_keypad(client: httpx.Client) -> list[int]:
    resp = client.get("/getpasswdPhoto.action")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "image/png"
    return decode_keypad(resp.content)


def login(client: httpx.Client, stuid: str, password: str, keypad: bool = True) -> str:
    """Do the whole login dance; returns the answer page."""
    client.get("/")
    assert client.get("/getCheckpic.action", params={"rand": "8000"}).status_code == 200
    cells = fetch_keypad(client) if keypad else list(range(10))
    sent = "".join(str(cells.index(int(d))) for d in password)
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


# ---- pages -------------------------------------------------------------------


def test_home_sets_cookie_and_declares_gbk(client: httpx.Client) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "text/html;charset=GBK"
    assert re.fullmatch(r"JSESSIONID=[0-9A-Fa-f]{32}; Path=/", resp.headers["set-cookie"])
    text = gbk(resp)
    assert '<meta http-equiv="Content-Type" content="text/html; charset=gbk">' in text
    assert "校园卡用户服务中心" in text
    assert is_login_page(text)
    assert error_info(text) == ""
    assert text.rstrip().endswith("</html>")
    assert gbk(client.get("/homeLogin.action")) == text


def test_keypad_image_follows_the_protocol(client: httpx.Client) -> None:
    client.get("/")
    png = client.get("/getpasswdPhoto.action").content
    img = Image.open(io.BytesIO(png))
    assert img.mode == "RGB"
    assert img.size == (66, 104)
    raw = img.tobytes()
    for i in range(0, len(raw), 3):
        pixel = raw[i : i + 3]
        assert max(pixel) <= 90 or min(pixel) >= 150, pixel
    first = decode_keypad(png)
    shuffles = {tuple(first)} | {tuple(fetch_keypad(client)) for _ in range(4)}
    assert len(shuffles) > 1


def test_login_success(sim: Proc, client: httpx.Client) -> None:
    text = login(client, STUID, STUID[-6:])
    name = truth(sim)["name"]
    assert f'<div id="welcome">欢迎您，<span class="name">{name}</span></div>' in text
    assert '<a href="/accountcardUser.action">' in text
    assert stats(sim)["logins_ok"] == 1


def test_login_wrong_password(sim: Proc, client: httpx.Client) -> None:
    text = login(client, STUID, "000000")
    assert is_login_page(text)
    assert error_info(text) == "密码错误"
    assert stats(sim)["logins_failed"] == 1


def test_login_unknown_user(client: httpx.Client) -> None:
    text = login(client, "1999000000", "000000")
    assert is_login_page(text)
    assert error_info(text) == "无此用户"


def test_login_without_keypad_is_expired(client: httpx.Client) -> None:
    text = login(client, STUID, STUID[-6:], keypad=False)
    assert error_info(text) == "验证码已过期，请刷新页面"
    fresh = httpx.post(
        client.base_url.join("/loginstudent.action"),
        data={"name": STUID, "passwd": "012345", "rand": "8000"},
    )
    assert error_info(gbk(fresh)) == "验证码已过期，请刷新页面"
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
    table = re.search(r'<table class="neiwen".*?</table>', text, re.S)
    assert table
    cells = re.findall(r"<td[^>]*>(.*?)</td>", table.group(0))
    pairs = dict(zip(cells[::2], cells[1::2], strict=True))
    assert list(pairs) == [
        "姓　　名：",
        "学 工 号：",
        "卡　　号：",
        "身份类型：",
        "所属部门：",
        "卡状态：",
        "余　　额：",
    ]
    assert pairs["姓　　名："] == t["name"]
    assert pairs["学 工 号："] == STUID
    assert pairs["卡　　号："] == t["card_number"]
    balance = re.match(r"(-?\d+\.\d\d)元", pairs["余　　额："])
    assert balance
    assert balance.group(1) == t["balance"]


def _cells(row: dict[str, Any]) -> list[str]:
    return [row["time"], row["way"], row["position"], "1", row["amount"], row["balance_after"]]


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
    assert '<form id="accounthisTrjn" name="form1" action="/accounttodayTrjn.action"' in form
    card = after["card_number"]
    assert f'<option value="{card}">{card}[主卡]</option>' in form
    text = gbk(
        client.post("/accounttodayTrjn.action", data={"account": card, "inputObject": "all"})
    )
    rows = result_rows(text)
    assert [cells[:6] for _, cells in rows] == [_cells(r) for r in after["today"][:10]]
    assert [css for css, _ in rows][:2] == ["listbg", "listbg2"]
    assert pager(text)[0] == len(after["today"])
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
    assert 'action="/accounthisTrjn1.action"' in step1
    step2 = gbk(client.post("/accounthisTrjn1.action", data={"inputObject": "all"}))
    assert '<form name="form1" action="/accounthisTrjn2.action" method="post">' in step2
    today = datetime.strptime(t["displayed_now"], "%Y/%m/%d %H:%M:%S").date()
    yesterday = today - timedelta(days=1)
    assert f'<input name="inputStartDate" value="{yesterday - timedelta(days=7):%Y%m%d}">' in step2
    assert f'<input name="inputEndDate" value="{yesterday:%Y%m%d}">' in step2
    step3 = client.post(
        "/accounthisTrjn2.action",
        data={"inputStartDate": t["history_from"], "inputEndDate": t["history_to"]},
    )
    assert "正在查询，请稍候..." in gbk(step3)
    assert '<form id="form1" action="/accounthisTrjn3.action" method="post">' in gbk(step3)
    page1 = gbk(client.post("/accounthisTrjn3.action"))
    total, current, pages = pager(page1)
    expected = t["history_days"]
    assert total == len(expected) > 10
    assert (current, pages) == (1, -(-total // 10))
    got = result_rows(page1)
    assert len(got) == 10
    for n in range(2, pages + 1):
        text = gbk(client.post("/accountconsubBrows.action", data={"pageNum": str(n)}))
        assert pager(text) == (total, n, pages)
        got += result_rows(text)
    assert [cells[:6] for _, cells in got] == [_cells(r) for r in expected]
    assert all(cells[7] == "正常" and cells[6].isdigit() for _, cells in got)
    assert [css for css, _ in got[:3]] == ["listbg", "listbg2", "listbg"]
    # The chain is used up: step 4 again is out of order.
    assert error_info(gbk(client.post("/accounthisTrjn3.action"))) == "请按步骤查询"


def test_history_empty_range_has_pager(client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    assert "正在查询" in gbk(_history_query(client, "20000101", "20000131"))
    text = gbk(client.post("/accounthisTrjn3.action"))
    assert pager(text) == (0, 1, 1)
    assert result_rows(text) == []


def test_history_bad_dates(sim: Proc, client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    today = datetime.strptime(truth(sim)["displayed_now"], "%Y/%m/%d %H:%M:%S").date()
    yesterday = today - timedelta(days=1)
    fmt = "%Y%m%d"
    for start, end in (
        (yesterday.strftime(fmt), (yesterday - timedelta(days=3)).strftime(fmt)),
        (yesterday.strftime(fmt), today.strftime(fmt)),
        (today.strftime(fmt), (today + timedelta(days=2)).strftime(fmt)),
        ("2013-08-01", yesterday.strftime(fmt)),
        ("20130231", "20130301"),
    ):
        text = gbk(_history_query(client, start, end))
        assert error_info(text) == "查询日期不合法", (start, end)
        assert not is_login_page(text)


def test_out_of_order_steps(client: httpx.Client) -> None:
    login(client, STUID, STUID[-6:])
    assert error_info(gbk(client.post("/accountconsubBrows.action", data={"pageNum": "1"}))) == (
        "请按步骤查询"
    )
    assert error_info(gbk(client.post("/accounthisTrjn3.action"))) == "请按步骤查询"
    assert error_info(gbk(client.post("/accounthisTrjn2.action"))) == "请按步骤查询"
    assert error_info(gbk(client.post("/accounttodayTrjn.action"))) == "请按步骤查询"
    client.get("/accounthisTrjn.action")
    # Step 3 (dates) without step 2 (date form).
    resp = client.post(
        "/accounthisTrjn2.action", data={"inputStartDate": "20130801", "inputEndDate": "20130802"}
    )
    assert error_info(gbk(resp)) == "请按步骤查询"


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
    assert error_info(login(client, stuid, "000042")) == "密码错误"
    assert "welcome" in login(client, stuid, "123456")
    sim_json(sim.url, f"/__sim/students/{stuid}/password", {"password": "000042"})
    assert truth(sim, stuid)["password_is_default"] is True


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
            started = time.monotonic()
            assert proc.stop() == 0
            assert time.monotonic() - started < 5
        finally:
            hung.kill()
            hung.wait()
