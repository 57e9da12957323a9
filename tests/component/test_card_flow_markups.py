"""The whole card flow through the API, against each simulator markup, on each database.

The simulator's default markup follows the 2013 evidence, `markup=platform`
the later platform; the answers must be the same, and right, on both.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from harness.processes import Proc, schoolsim, sim_json
from tests.conftest import make_settings, serve_app

STUDENT, PASSWORD = "2010204060", "204060"
CREDS = {"stuid": STUDENT, "password": PASSWORD}
OFFSET = timedelta(minutes=55)


@pytest.fixture(scope="module", params=["2013", "platform"])
def markup_sim(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast", f"markup={request.param}") as proc:
        yield proc


def truth(sim: Proc) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/students/{STUDENT}")


def shifted(shown: str) -> str:
    """A card center time as the API prints it (ISO, +55 minutes, China time)."""
    return (datetime.strptime(shown, "%Y/%m/%d %H:%M:%S") + OFFSET).isoformat(sep=" ")


async def test_every_card_answer_on_each_markup(db_url: str, markup_sim: Proc) -> None:
    sim = markup_sim
    sim_json(sim.url, f"/__sim/students/{STUDENT}/spend", {"amount": "3.30"})
    t = truth(sim)
    sim_json(sim.url, "/__sim/reset", {})
    async with serve_app(make_settings(db_url, sim.url)) as (client, _):
        rest = await client.get("/card/rest", params=CREDS)
        assert rest.json() == {"data": t["balance"]}
        # One login (captcha, keypad, login, account page); the session is reused after it.
        assert sim_json(sim.url, "/__sim/stats")["logins_ok"] == 1

        today = (await client.get("/card/today", params=CREDS)).json()["data"]
        assert [(r["time"], r["price"]) for r in today] == [
            (shifted(r["time"]), r["amount"]) for r in t["today"]
        ]
        assert today[0]["price"] == "-3.30"

        month = (await client.get("/card/month", params=CREDS)).json()["data"]
        shown_today = datetime.strptime(t["displayed_now"], "%Y/%m/%d %H:%M:%S").date()
        first = f"{shown_today - timedelta(days=7):%Y/%m/%d}"
        want = t["today"] + [r for r in t["history_days"] if r["time"][:10] >= first]
        assert [(r["time"], r["position"], r["rest"]) for r in month] == [
            (shifted(r["time"]), r["position"], r["balance_after"]) for r in want
        ]

        info = (await client.get("/card/personalinfo", params=CREDS)).json()["data"]
        assert t["name"] in info and t["card_number"] in info and STUDENT in info

        auth = (STUDENT, PASSWORD)
        profile = (await client.get("/v1/card/profile", auth=auth)).json()
        assert (profile["name"], profile["card_number"]) == (t["name"], t["card_number"])
        assert (profile["identity"], profile["department"]) == (t["identity"], t["department"])
        balance = (await client.get("/v1/card/balance", auth=auth)).json()
        assert Decimal(balance["balance"]["amount"]) == Decimal(t["balance"])

        # Fourteen days of history and today, across several result pages.
        today_date = datetime.fromisoformat(shifted(t["displayed_now"])).date()
        start = today_date - timedelta(days=14)
        params = {"start": f"{start}", "end": f"{today_date}", "fresh": "1"}
        listed = await client.get("/v1/card/transactions", params=params, auth=auth)
        assert listed.status_code == 200
        rows = listed.json()["transactions"]
        assert len(rows) > 20
        assert all(start <= datetime.fromisoformat(r["time"]).date() <= today_date for r in rows)
        assert rows[0]["amount"] == "-3.30"
        assert sim_json(sim.url, "/__sim/stats")["logins_ok"] == 1
