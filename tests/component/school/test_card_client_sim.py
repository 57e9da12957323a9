"""CardCenterClient against the real simulated card center (`python -m schoolsim`), both markups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from school.errors import InvalidCredentials, SessionExpired
from systems.card.client import CardCenterClient
from systems.card.config import CardCenterConfig
from systems.card.models import CardSession, Transaction

STUDENT, PASSWORD = "2012052690", "052690"
OFFSET = timedelta(minutes=55)


@pytest.fixture(scope="module", params=["2013", "platform"])
def sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A simulator of each markup: every test here runs against both."""
    markup = request.param
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast", f"markup={markup}") as proc:
        proc.extra["markup"] = markup
        yield proc


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client_for(url: str, http: httpx.AsyncClient) -> CardCenterClient:
    settings = CardCenterConfig(base_url=url, connect_timeout_s=2.0, total_timeout_s=10.0)
    return CardCenterClient(settings, http)


def stored(session: CardSession) -> CardSession:
    """The session as a later query gets it back from storage: its cookie only."""
    return CardSession(session.student_id, session.cookie)


def truth(sim: Proc, student: str = STUDENT) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/students/{student}")


def as_truth(row: Transaction) -> tuple[str, str, str, str, str]:
    """A client row in the simulator's truth terms (card center time, money text)."""
    shown = row.time - OFFSET
    assert shown.utcoffset() == timedelta(hours=8)
    return (
        f"{shown:%Y/%m/%d %H:%M:%S}",
        row.way,
        row.position,
        f"{row.amount:.2f}",
        f"{row.balance_after:.2f}",
    )


def truth_rows(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    return [(r["time"], r["way"], r["position"], r["amount"], r["balance_after"]) for r in rows]


async def test_login_and_account_match_truth(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    session = await client.login(STUDENT, PASSWORD)
    info = await client.account(session)
    expected = truth(sim)
    assert info.student_id == STUDENT
    assert info.balance == Decimal(expected["balance"])
    assert info.name == expected["name"]
    assert info.card_number == expected["card_number"]
    assert info.identity == expected["identity"]
    assert info.department == expected["department"]
    assert STUDENT in info.cells


async def test_a_cold_balance_takes_four_school_requests(
    sim: Proc, http: httpx.AsyncClient
) -> None:
    client = client_for(sim.url, http)
    sim_json(sim.url, "/__sim/reset", {})
    session = await client.login(STUDENT, PASSWORD)
    info = await client.account(session)
    stats = sim_json(sim.url, "/__sim/stats")
    # Captcha, keypad, login, account page: no home page, no second account page.
    assert stats["requests_by_path"] == {
        "/getCheckpic.action": 1,
        "/getpasswdPhoto.action": 1,
        "/loginstudent.action": 1,
        "/accountcardUser.action": 1,
    }
    assert client.requests_sent == 4
    assert stats["logins_ok"] == 1
    assert info.balance == Decimal(truth(sim)["balance"])


async def test_today_matches_truth(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    session = await client.login(STUDENT, PASSWORD)
    # A purchase now makes sure today is not empty.
    sim_json(sim.url, f"/__sim/students/{STUDENT}/spend", {"amount": "5.50"})
    rows = await client.today(session)
    expected = truth(sim)
    assert [as_truth(r) for r in rows] == truth_rows(expected["today"])
    assert rows
    assert rows[0].amount == Decimal("-5.50")
    assert rows[0].position == "第一饭堂"
    assert rows[0].balance_after == Decimal(expected["balance"])
    # Card center time is 55 minutes slow; the client's time is close to now.
    now = datetime.now(rows[0].time.tzinfo)
    assert abs(rows[0].time - now) < timedelta(minutes=2)


async def test_history_pages_and_matches_truth(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    session = await client.login(STUDENT, PASSWORD)
    expected = truth(sim)
    start = datetime.strptime(expected["history_from"], "%Y%m%d").date()
    end = datetime.strptime(expected["history_to"], "%Y%m%d").date()
    want = truth_rows(expected["history_days"])
    assert len(want) > 10, "the dataset should give this student more than a page of history"
    sim_json(sim.url, "/__sim/reset", {})
    rows = await client.history(session, start, end)
    assert [as_truth(r) for r in rows] == want
    pages = -(-len(want) // 10)
    # Four pages to the first result page, then the others; without a pager
    # (2013 markup) a last page that is full costs one more, answered again.
    extra = 1 if sim.extra["markup"] == "2013" and len(want) % 10 == 0 else 0
    assert sim_json(sim.url, "/__sim/stats")["requests"] == 4 + pages - 1 + extra
    assert all(isinstance(r.amount, Decimal) for r in rows)
    assert all(start <= (r.time - OFFSET).date() <= end for r in rows)


async def test_history_of_one_day(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    session = await client.login(STUDENT, PASSWORD)
    expected = truth(sim)
    day = datetime.strptime(expected["history_to"], "%Y%m%d").date()
    want = [r for r in truth_rows(expected["history_days"]) if r[0].startswith(f"{day:%Y/%m/%d}")]
    rows = await client.history(session, day, day)
    assert [as_truth(r) for r in rows] == want


async def test_wrong_password(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    with pytest.raises(InvalidCredentials) as info:
        await client.login(STUDENT, "111111")
    assert info.value.reason == "wrong_password"
    assert "111111" not in str(info.value)


async def test_unknown_student(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    with pytest.raises(InvalidCredentials) as info:
        await client.login("1999000000", "000000")
    assert info.value.reason == "unknown_student"


async def test_kicked_out_by_a_newer_login(sim: Proc, http: httpx.AsyncClient) -> None:
    client = client_for(sim.url, http)
    sim_json(sim.url, "/__sim/control", {"kick_old_sessions": True})
    try:
        # As stored between queries: the cookie alone (no account page kept).
        old = stored(await client.login(STUDENT, PASSWORD))
        new = stored(await client.login(STUDENT, PASSWORD))
        with pytest.raises(SessionExpired):
            await client.account(old)
        with pytest.raises(SessionExpired):
            await client.today(old)
        assert (await client.account(new)).student_id == STUDENT
    finally:
        sim_json(sim.url, "/__sim/control", {"kick_old_sessions": False})


async def test_idle_session_expires(tmp_path: Any, http: httpx.AsyncClient) -> None:
    with schoolsim(tmp_path, "fast", "session_idle_s=0.5") as short:
        client = client_for(short.url, http)
        session = stored(await client.login(STUDENT, PASSWORD))
        assert (await client.account(session)).student_id == STUDENT
        await asyncio.sleep(1.0)
        with pytest.raises(SessionExpired):
            await client.account(session)
        with pytest.raises(SessionExpired):
            await client.history(session, date(2013, 8, 1), date(2013, 8, 2))
        # A fresh login works again.
        again = await client.login(STUDENT, PASSWORD)
        assert (await client.account(again)).student_id == STUDENT


async def test_redirected_login_and_a_second_cookie(tmp_path: Any, http: httpx.AsyncClient) -> None:
    # Tolerance drills of the simulator (not evidence): the login answers 302 to
    # the account page, and a load balancer's cookie must come back with the session's.
    settings = ("markup=platform", "login_redirect=true", "extra_cookie=true")
    with schoolsim(tmp_path, "fast", *settings) as sim:
        client = client_for(sim.url, http)
        session = await client.login(STUDENT, PASSWORD)
        assert "BIGipServercard_pool=" in session.cookie
        assert (await client.account(session)).balance == Decimal(truth(sim)["balance"])
        # A stored session (the cookie string alone) carries both cookies.
        later = stored(session)
        assert (await client.account(later)).student_id == STUDENT
        assert len(await client.today(later)) == len(truth(sim)["today"])
        by_path = sim_json(sim.url, "/__sim/stats")["requests_by_path"]
        assert isinstance(by_path, dict)
        assert by_path["/accountcardUser.action"] == 2
