"""CardCenterClient against a scripted local card center: flows, cookies and error mapping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from school.card import CardCenterClient, CardCenterSettings
from school.errors import (
    InvalidCredentials,
    QueryRejected,
    SchoolConnectionError,
    SchoolError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SchoolUnavailable,
    SessionExpired,
)
from school.models import CardSession
from tests.procs import free_port
from tests.school.fakeschool import (
    FakeSchool,
    Request,
    Response,
    fixture,
    login_page,
    make_rows,
    result_page,
)

STUDENT, PASSWORD = "2012052690", "052690"
CST = timezone(timedelta(hours=8))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def school() -> AsyncIterator[FakeSchool]:
    async with FakeSchool() as fake:
        yield fake


def make_client(
    url: str, http: httpx.AsyncClient, total: float = 2.0, **kw: object
) -> CardCenterClient:
    settings = CardCenterSettings(base_url=url, connect_timeout=1.0, total_timeout=total, **kw)  # type: ignore[arg-type]
    return CardCenterClient(settings, http)


async def logged_in(school: FakeSchool, client: CardCenterClient) -> CardSession:
    session = await client.login(STUDENT, PASSWORD)
    school.requests.clear()
    client.requests_sent = 0
    return session


# --- login -------------------------------------------------------------------


async def test_login_takes_exactly_four_requests(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    client = make_client(school.url, http)
    session = await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 4
    assert [(r.method, r.target) for r in school.requests] == [
        ("GET", "/"),
        ("GET", "/getCheckpic.action?rand=8000"),
        ("GET", "/getpasswdPhoto.action"),
        ("POST", "/loginstudent.action"),
    ]
    assert school.requests[0].cookie is None
    assert {r.cookie for r in school.requests[1:]} == {session.cookie}
    assert session.student_id == STUDENT
    assert school.sessions[session.cookie].student == STUDENT
    form = school.requests[3].form()
    assert form["name"] == STUDENT
    assert form["rand"] == "8000"
    assert (form["loginType"], form["userType"]) == ("2", "1")
    assert form["passwd"] != PASSWORD or school.sessions[session.cookie].cells == list(range(10))
    assert session.cookie not in repr(session)


async def test_wrong_password(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    with pytest.raises(InvalidCredentials) as info:
        await client.login(STUDENT, "123456")
    assert info.value.reason == "wrong_password"
    assert client.requests_sent == 4
    sent = school.requests[3].form()["passwd"]
    assert "123456" not in str(info.value)
    assert sent not in str(info.value)


async def test_unknown_student(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    with pytest.raises(InvalidCredentials) as info:
        await client.login("1999000000", "000000")
    assert info.value.reason == "unknown_student"


async def test_login_never_assumes_success(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/loginstudent.action"] = lambda r: Response(login_page())
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError):
        await client.login(STUDENT, PASSWORD)


async def test_login_answered_by_a_data_page_is_not_success(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.overrides["/loginstudent.action"] = lambda r: Response(fixture("today_result.html"))
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="welcome"):
        await client.login(STUDENT, PASSWORD)


async def test_lost_session_during_login(school: FakeSchool, http: httpx.AsyncClient) -> None:
    # The server forgets the session between keypad and login: it must not look like success.
    def forget(request: Request) -> Response:
        school.sessions.clear()
        return Response(login_page("验证码已过期，请刷新页面"), set_cookie="F" * 32)

    school.overrides["/loginstudent.action"] = forget
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="验证码已过期"):
        await client.login(STUDENT, PASSWORD)


async def test_unreadable_keypad_stops_before_posting(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.overrides["/getpasswdPhoto.action"] = lambda r: Response(
        fixture("home.html"), content_type="image/png"
    )
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="keypad"):
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 3


async def test_home_without_cookie(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/"] = lambda r: Response(login_page())
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="cookie"):
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 1


@pytest.mark.parametrize(("student", "password"), [("2012052690", "05269x"), ("abc", "052690")])
async def test_bad_input_sends_nothing(
    school: FakeSchool, http: httpx.AsyncClient, student: str, password: str
) -> None:
    client = make_client(school.url, http)
    with pytest.raises(ValueError, match="digits") as info:
        await client.login(student, password)
    assert password not in str(info.value)
    assert client.requests_sent == 0
    assert school.requests == []


async def test_concurrent_logins_share_one_http_client_without_mixing(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    client = make_client(school.url, http)
    # Poison the shared jar: the client must never send what it holds.
    http.cookies.set("JSESSIONID", "0" * 32)
    a, b = await asyncio.gather(
        client.login(STUDENT, PASSWORD), client.login("2012000001", "000001")
    )
    assert a.cookie != b.cookie
    assert school.sessions[a.cookie].student == STUDENT
    assert school.sessions[b.cookie].student == "2012000001"
    assert all(r.cookie != "0" * 32 for r in school.requests)
    info_a, info_b = await asyncio.gather(client.account(a), client.account(b))
    assert (info_a.student_id, info_a.name) == (STUDENT, "张三")
    assert (info_b.student_id, info_b.name) == ("2012000001", "李四")
    assert client.requests_sent == 10


# --- data ----------------------------------------------------------------------


async def test_account(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    info = await client.account(session)
    assert client.requests_sent == 1
    assert info.balance == Decimal("123.45")
    assert info.card_number == "152690"
    assert school.requests[0].cookie == session.cookie


async def test_today_pages_through(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(23)
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.today(session)
    assert len(rows) == 23
    assert client.requests_sent == 4  # form, query, pages 2 and 3
    assert [r.path for r in school.requests] == [
        "/accounttodayTrjn.action",
        "/accounttodayTrjn.action",
        "/accountconsubBrows.action",
        "/accountconsubBrows.action",
    ]
    assert school.requests[1].form() == {"account": "152690", "inputObject": "all"}
    assert [r.form()["pageNum"] for r in school.requests[2:]] == ["2", "3"]
    assert rows[0].time == datetime(2013, 8, 25, 0, 54, 7, tzinfo=CST)
    assert rows[22].amount == Decimal("-1.50")
    assert rows[22].balance_after == Decimal("133.00")


async def test_today_empty(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = []
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    assert await client.today(session) == []
    assert client.requests_sent == 2


async def test_history_chain(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.history(session, date(2013, 8, 1), date(2013, 8, 23))
    assert len(rows) == 12
    assert [(r.method, r.path) for r in school.requests] == [
        ("GET", "/accounthisTrjn.action"),
        ("POST", "/accounthisTrjn1.action"),
        ("POST", "/accounthisTrjn2.action"),
        ("POST", "/accounthisTrjn3.action"),
        ("POST", "/accountconsubBrows.action"),
    ]
    assert school.requests[2].form() == {"inputStartDate": "20130801", "inputEndDate": "20130823"}
    assert school.requests[3].body == b""


async def test_history_reversed_range_sends_nothing(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(ValueError, match="start"):
        await client.history(session, date(2013, 8, 2), date(2013, 8, 1))
    assert client.requests_sent == 0


async def test_history_bad_date_page(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/accounthisTrjn2.action"] = lambda r: Response(fixture("error_bad_date.html"))
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(QueryRejected, match="查询日期不合法"):
        await client.history(session, date(2013, 8, 1), date(2013, 8, 1))


async def test_rows_changing_while_paging(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(12)
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(
        result_page(make_rows(13), 2)
    )
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="page 2"):
        await client.today(session)


async def test_row_count_must_match_total(school: FakeSchool, http: httpx.AsyncClient) -> None:
    short = result_page(make_rows(12), 2).decode("gbk")
    # Page 2 shows 2 rows; hide one of them (a class the parser does not count).
    short = short.replace('<tr class="listbg2">', '<tr class="x">')
    school.today_rows = make_rows(12)
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(short.encode("gbk"))
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="11 rows"):
        await client.today(session)


async def test_too_many_pages(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(31)
    client = make_client(school.url, http, max_pages=3)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="4 pages"):
        await client.today(session)
    assert client.requests_sent == 2


async def test_unknown_session_is_expired(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    stale = CardSession(STUDENT, "A" * 32)
    with pytest.raises(SessionExpired):
        await client.account(stale)
    with pytest.raises(SessionExpired):
        await client.today(stale)
    with pytest.raises(SessionExpired):
        await client.history(stale, date(2013, 8, 1), date(2013, 8, 2))
    # Each operation stops at its first page, the login page.
    assert client.requests_sent == 3


async def test_login_page_while_paging_is_expired(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.today_rows = make_rows(15)
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(
        fixture("expired_login.html")
    )
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(SessionExpired):
        await client.today(session)


# --- transport error mapping ----------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(school: FakeSchool, http: httpx.AsyncClient, status: int) -> None:
    school.overrides["/accountcardUser.action"] = lambda r: Response(
        fixture("server_busy.html"), status=status
    )
    client = make_client(school.url, http)
    with pytest.raises(SchoolServerError) as info:
        await client.account(CardSession(STUDENT, "B" * 32))
    assert info.value.status == status
    assert isinstance(info.value, SchoolUnavailable)


async def test_overload_page_with_200(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/"] = lambda r: Response(fixture("server_busy.html"), set_cookie="C" * 32)
    school.overrides["/accountcardUser.action"] = lambda r: Response(fixture("server_busy.html"))
    client = make_client(school.url, http)
    with pytest.raises(SchoolServerError):
        await client.account(CardSession(STUDENT, "B" * 32))
    with pytest.raises(SchoolServerError):
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 2


@pytest.mark.parametrize("status", [302, 404, 403])
async def test_other_statuses_are_page_errors(
    school: FakeSchool, http: httpx.AsyncClient, status: int
) -> None:
    school.overrides["/"] = lambda r: Response(b"<html></html>", status=status)
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match=str(status)):
        await client.login(STUDENT, PASSWORD)


async def test_reset_connection(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/getCheckpic.action"] = lambda r: Response(reset=True)
    client = make_client(school.url, http)
    with pytest.raises(SchoolConnectionError) as info:
        await client.login(STUDENT, PASSWORD)
    assert isinstance(info.value, SchoolUnavailable)
    assert PASSWORD not in str(info.value)


async def test_body_cut_short_then_closed(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/accountcardUser.action"] = lambda r: Response(
        fixture("account.html")[:200], declared_length=5000, close=True
    )
    client = make_client(school.url, http)
    with pytest.raises(SchoolConnectionError):
        await client.account(CardSession(STUDENT, "B" * 32))


async def test_body_cut_short_then_stalled(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/accountcardUser.action"] = lambda r: Response(
        fixture("account.html")[:200], declared_length=5000
    )
    client = make_client(school.url, http, total=0.5)
    with pytest.raises(SchoolTimeout):
        await client.account(CardSession(STUDENT, "B" * 32))


async def test_truncated_page_with_honest_length(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.overrides["/accounttodayTrjn.action"] = lambda r: (
        Response(fixture("today_form.html"))
        if r.method == "GET"
        else Response(fixture("truncated_result.html"))
    )
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="truncated"):
        await client.today(CardSession(STUDENT, "B" * 32))


async def test_connection_refused(http: httpx.AsyncClient) -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", http)
    with pytest.raises(SchoolConnectionError):
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 1


async def test_slow_answer_beyond_total_timeout(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.overrides["/"] = lambda r: Response(login_page(), set_cookie="D" * 32, delay=5)
    client = make_client(school.url, http, total=0.5)
    started = time.monotonic()
    with pytest.raises(SchoolTimeout):
        await client.login(STUDENT, PASSWORD)
    assert time.monotonic() - started < 2


async def test_trickling_answer_hits_total_not_read_timeout(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    # Each byte comes well within the read timeout, but the whole page takes ~3 s.
    body = fixture("account.html")
    school.overrides["/accountcardUser.action"] = lambda r: Response(body, trickle=3 / len(body))
    client = make_client(school.url, http, total=0.8)
    started = time.monotonic()
    with pytest.raises(SchoolTimeout, match="total"):
        await client.account(CardSession(STUDENT, "B" * 32))
    assert time.monotonic() - started < 2


async def test_every_failure_is_a_school_error(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/"] = lambda r: Response(reset=True)
    client = make_client(school.url, http)
    with pytest.raises(SchoolError):
        await client.login(STUDENT, PASSWORD)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="base_url"):
        CardCenterSettings(base_url="127.0.0.1:8080")
    with pytest.raises(ValueError, match="timeouts"):
        CardCenterSettings(base_url="http://127.0.0.1", total_timeout=0)
    with pytest.raises(ValueError, match="max_pages"):
        CardCenterSettings(base_url="http://127.0.0.1", max_pages=0)
    settings = CardCenterSettings(base_url="http://127.0.0.1")
    assert settings.clock_offset == timedelta(minutes=55)
    assert settings.max_pages == 50
