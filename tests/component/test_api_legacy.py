"""The 2013 endpoints over real HTTP: same paths, methods, parameters and JSON shapes."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from harness.processes import Proc, sim_json
from tests.conftest import make_settings, serve_app

STUDENT = "2012052690"
PASSWORD = "052690"
CREDS = {"stuid": STUDENT, "password": PASSWORD}


def truth(sim: Proc, student: str = STUDENT) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/students/{student}")


async def test_rest_answers_the_balance_the_school_holds(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/card/rest", params=CREDS)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("application/json")
    body = resp.json()
    assert list(body) == ["data"]
    assert isinstance(body["data"], str)
    assert Decimal(body["data"]) == Decimal(str(truth(sim)["balance"]))
    assert resp.content == json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize("where", ["query", "body"])
@pytest.mark.parametrize("path", ["/card/rest", "/card/month"])
async def test_post_where_2013_took_it(
    http_client: httpx.AsyncClient, sim: Proc, path: str, where: str
) -> None:
    # 2013 routed /card/rest and /card/month for GET and POST.
    if where == "query":
        resp = await http_client.post(path, params=CREDS)
    else:
        resp = await http_client.post(path, data=CREDS)
    assert resp.status_code == 200
    assert resp.json() == (await http_client.get(path, params=CREDS)).json()


@pytest.mark.parametrize("path", ["/card/today", "/card/personalinfo"])
async def test_post_where_2013_did_not_is_405_with_null_data(
    http_client: httpx.AsyncClient, path: str
) -> None:
    resp = await http_client.post(path, params=CREDS)
    assert resp.status_code == 405
    body = resp.json()
    assert body["data"] is None
    assert body["error"]["code"] == "method_not_allowed"


async def test_today_rows_have_the_2013_fields_and_shifted_times(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/card/today", params=CREDS)
    assert resp.status_code == 200
    rows = resp.json()["data"]
    expected = truth(sim)["today"]
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert set(row) == {"time", "way", "position", "price", "rest"}
        shown = datetime.strptime(want["time"], "%Y/%m/%d %H:%M:%S")
        assert datetime.strptime(row["time"], "%Y-%m-%d %H:%M:%S") == shown + timedelta(minutes=55)
        assert (row["way"], row["position"]) == (want["way"], want["position"])
        assert Decimal(row["price"]) == Decimal(want["amount"])
        assert Decimal(row["rest"]) == Decimal(want["balance_after"])


async def test_month_is_today_and_the_seven_days_before(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    sim_json(sim.url, f"/__sim/students/{STUDENT}/spend", {"amount": "1.00"})
    resp = await http_client.get("/card/month", params=CREDS)
    assert resp.status_code == 200
    rows = resp.json()["data"]
    t = truth(sim)
    shown_today = datetime.strptime(t["displayed_now"], "%Y/%m/%d %H:%M:%S").date()
    # As 2013 asked: today-7 .. today, in the card center's own calendar.
    first = f"{shown_today - timedelta(days=7):%Y/%m/%d}"
    expected = t["today"] + [r for r in t["history_days"] if r["time"][:10] >= first]
    assert len(rows) == len(expected)
    shown = [datetime.strptime(r["time"], "%Y/%m/%d %H:%M:%S") for r in expected]
    shifted = [f"{t + timedelta(minutes=55):%Y-%m-%d %H:%M:%S}" for t in shown]
    assert [row["time"] for row in rows] == shifted
    assert rows[0]["price"] == "-1.00"
    for row in rows:
        assert set(row) == {"time", "way", "position", "price", "rest"}


async def test_personalinfo_lists_the_value_cells_as_2013_did(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/card/personalinfo", params=CREDS)
    assert resp.status_code == 200
    cells = resp.json()["data"]
    t = truth(sim)
    # Values only (2013 dropped the cells holding a full-width colon), in page order.
    assert all("：" not in c for c in cells)
    assert cells[:3] == [t["name"], t["card_number"], STUDENT]
    assert cells[-1].startswith(f"{t['balance']}元（卡余额）")


async def test_wrong_password_is_a_401_json_error_with_null_data(
    http_client: httpx.AsyncClient,
) -> None:
    resp = await http_client.get("/card/rest", params={"stuid": STUDENT, "password": "000000"})
    assert resp.status_code == 401
    body = resp.json()
    assert body == {"data": None, "error": body["error"]}
    assert body["error"]["code"] == "invalid_credentials"
    assert "000000" not in resp.text


async def test_unknown_student_is_a_401(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/card/rest", params={"stuid": "1999000000", "password": "000000"})
    assert resp.status_code == 401
    assert resp.json()["data"] is None
    assert resp.json()["error"]["code"] == "invalid_credentials"


async def test_the_school_failing_is_a_5xx_with_null_data(db_url: str, sim: Proc) -> None:
    async with serve_app(make_settings(db_url, sim.url)) as (client, _):
        sim_json(sim.url, "/__sim/control", {"down": True, "down_mode": "error"})
        try:
            resp = await client.get(
                "/card/rest", params={"stuid": "2011000555", "password": "000555"}
            )
        finally:
            sim_json(sim.url, "/__sim/control", {"down": False})
        assert resp.status_code == 502
        assert resp.json()["data"] is None
        assert resp.json()["error"]["code"] == "school_unavailable"


async def test_the_2013_bytes(db_url: str, sim: Proc) -> None:
    settings = make_settings(db_url, sim.url, **{"api.legacy_body": "2013"})
    async with serve_app(settings) as (client, _):
        balance = truth(sim)["balance"]
        resp = await client.get("/card/rest", params=CREDS)
        assert resp.content == b'{\n  "data": "' + balance.encode() + b'"\n}'
        # The 2013 log's 20 bytes were a balance of 4 characters, e.g. "6.50".
        assert len(resp.content) == 16 + len(balance)
        rows = await client.get("/card/today", params=CREDS)
        text = rows.content.decode("ascii")
        assert "\\u6301\\u5361\\u4eba" in text  # 持卡人, ASCII-escaped
        first = json.loads(text)["data"][0]
        assert text.startswith(
            '{\n  "data": [\n    {\n      "position": '
            + json.dumps(first["position"])
            + ', \n      "price": '
        )
        error = await client.get("/card/rest", params={"stuid": STUDENT, "password": "000000"})
        assert error.status_code == 401
        assert error.content.startswith(b'{\n  "data": null, \n  "error": {\n    "code": ')
