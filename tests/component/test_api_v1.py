"""The clean /v1/ API over real HTTP: Basic auth or POST body, typed answers with as_of."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import httpx

from harness.processes import Proc, sim_json

STUDENT = "2012052690"
AUTH = (STUDENT, "052690")


async def test_balance_with_basic_auth(http_client: httpx.AsyncClient, sim: Proc) -> None:
    before = datetime.now().astimezone()
    resp = await http_client.get("/v1/card/balance", auth=AUTH)
    assert resp.status_code == 200
    body = resp.json()
    assert body["student_id"] == STUDENT
    assert body["balance"]["currency"] == "CNY"
    assert Decimal(body["balance"]["amount"]) == Decimal(
        str(sim_json(sim.url, f"/__sim/students/{STUDENT}")["balance"])
    )
    as_of = datetime.fromisoformat(body["as_of"])
    assert as_of.utcoffset() == timedelta(hours=8)
    assert as_of >= before.replace(microsecond=0)
    assert body["source"] == "school"


async def test_balance_with_a_json_body(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.post(
        "/v1/card/balance", json={"student_id": STUDENT, "password": "052690"}
    )
    assert resp.status_code == 200
    assert "amount" in resp.json()["balance"]


async def test_balance_with_a_form_body(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.post(
        "/v1/card/balance", data={"student_id": STUDENT, "password": "052690"}
    )
    assert resp.status_code == 200


async def test_wrong_password_is_401_without_data(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/v1/card/balance", auth=(STUDENT, "111111"))
    assert resp.status_code == 401
    assert resp.json() == {
        "error": {
            "code": "invalid_credentials",
            "message": "the student number or card password is wrong",
        }
    }


async def test_profile(http_client: httpx.AsyncClient, sim: Proc) -> None:
    resp = await http_client.get("/v1/card/profile", auth=AUTH)
    assert resp.status_code == 200
    body = resp.json()
    truth = sim_json(sim.url, f"/__sim/students/{STUDENT}")
    assert body["name"] == truth["name"]
    assert body["card_number"] == truth["card_number"]
    assert {"identity", "department", "status", "as_of", "source"} <= set(body)


async def test_transactions_over_a_range_spanning_history_and_today(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    truth = sim_json(sim.url, f"/__sim/students/{STUDENT}")
    history = truth["history_days"]
    today_rows = truth["today"]
    assert isinstance(history, list) and isinstance(today_rows, list)
    # Ask for the card center's last 3 history days plus today, in its calendar.
    shown_days = sorted({item["time"][:10] for item in history})
    first = datetime.strptime(shown_days[-3], "%Y/%m/%d").date()
    today = date.fromisoformat(
        resp_today(await http_client.get("/v1/card/transactions", auth=AUTH))
    )
    resp = await http_client.get(
        "/v1/card/transactions",
        params={"start": first.isoformat(), "end": today.isoformat()},
        auth=AUTH,
    )
    assert resp.status_code == 200
    body = resp.json()
    expected = [i for i in history if i["time"][:10] in shown_days[-3:]]
    assert body["count"] == len(body["transactions"]) == len(today_rows) + len(expected)
    for row in body["transactions"]:
        assert set(row) == {"time", "kind", "place", "amount", "balance_after"}
        assert datetime.fromisoformat(row["time"]).utcoffset() == timedelta(hours=8)
        Decimal(row["amount"])
    assert body["currency"] == "CNY"


def resp_today(resp: httpx.Response) -> str:
    """Default range is today alone: start == end == today (campus time)."""
    assert resp.status_code == 200
    body = resp.json()
    assert body["start"] == body["end"]
    return str(body["start"])


async def test_index_page_and_favicon(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/")
    assert resp.status_code == 200
    assert "text/html" in resp.headers["Content-Type"]
    # The page's examples are built by its script from the contract and the page's own
    # origin (no address, student number or password written in the HTML).
    assert "app.js" in resp.text and "openapi.json" in resp.text
    assert "052690" not in resp.text and "127.0.0.1:8000" not in resp.text
    icon = await http_client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.content[:4] == b"\x00\x00\x01\x00"


async def test_healthz(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/healthz")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"
