"""The 2013 endpoints over real HTTP: same paths, parameters and JSON shapes."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import httpx

from tests.procs import Proc, sim_json

STUDENT = "2012052690"
PASSWORD = "052690"
CREDS = {"stuid": STUDENT, "password": PASSWORD}


def truth(sim: Proc, student: str = STUDENT) -> dict[str, object]:
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


async def test_today_rows_have_the_2013_fields_and_shifted_times(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/card/today", params=CREDS)
    assert resp.status_code == 200
    rows = resp.json()["data"]
    expected = truth(sim)["today"]
    assert isinstance(expected, list)
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert set(row) == {"time", "way", "position", "price", "rest"}
        shown = datetime.strptime(want["time"], "%Y/%m/%d %H:%M:%S")
        assert datetime.strptime(row["time"], "%Y-%m-%d %H:%M:%S") == shown + timedelta(minutes=55)
        assert (row["way"], row["position"]) == (want["way"], want["position"])
        assert Decimal(row["price"]) == Decimal(want["amount"])
        assert Decimal(row["rest"]) == Decimal(want["balance_after"])


async def test_month_is_the_last_seven_days_before_today(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/card/month", params=CREDS)
    assert resp.status_code == 200
    rows = resp.json()["data"]
    assert rows, "a seeded student eats every day"
    days = {row["time"][:10] for row in rows}
    history = truth(sim)["history_days"]
    assert isinstance(history, list)
    shown_days = sorted({item["time"][:10].replace("/", "-") for item in history})
    # The 7 days before today in the card center's own calendar, each shifted +55 min.
    last7 = set(shown_days[-7:])
    assert len(rows) == sum(1 for item in history if item["time"][:10].replace("/", "-") in last7)
    assert days <= {
        (datetime.fromisoformat(d) + timedelta(days=k)).date().isoformat()
        for d in last7
        for k in (0, 1)
    }
    for row in rows:
        assert set(row) == {"time", "way", "position", "price", "rest"}


async def test_personalinfo_lists_the_account_page_cells(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    resp = await http_client.get("/card/personalinfo", params=CREDS)
    assert resp.status_code == 200
    cells = resp.json()["data"]
    assert all(isinstance(c, str) for c in cells)
    t = truth(sim)
    assert t["name"] in cells
    assert STUDENT in cells
    assert t["card_number"] in cells


async def test_wrong_password_is_a_401_json_error(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/card/rest", params={"stuid": STUDENT, "password": "000000"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_credentials"
    assert "000000" not in resp.text


async def test_unknown_student_is_a_401(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/card/rest", params={"stuid": "1999000000", "password": "000000"})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_credentials"
