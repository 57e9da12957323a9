"""CardCenterClient against a scripted local card center: flows, cookies, redirects, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from handlers.base import describe_error
from harness.processes import free_port
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
from school.web import CookieJar
from services.errors import from_school
from systems.card.client import CardCenterClient
from systems.card.config import CardCenterConfig
from systems.card.models import CardSession
from tests.component.school.fakeschool import (
    FakeSchool,
    Request,
    Response,
    fixture,
    login_page,
    make_rows,
    result_page,
)
from tests.unit.school.keypad_render import arrange, encode

STUDENT, PASSWORD = "2012052690", "052690"
CST = timezone(timedelta(hours=8))
LOGIN_PATHS = [
    ("GET", "/getCheckpic.action"),
    ("GET", "/getpasswdPhoto.action"),
    ("POST", "/loginstudent.action"),
    ("GET", "/accountcardUser.action"),
]


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
    settings = CardCenterConfig(base_url=url, connect_timeout_s=1.0, total_timeout_s=total, **kw)
    return CardCenterClient(settings, http)


async def logged_in(school: FakeSchool, client: CardCenterClient) -> CardSession:
    """A session as a later query finds it (stored: no account page kept)."""
    session = await client.login(STUDENT, PASSWORD)
    school.requests.clear()
    client.requests_sent = 0
    return CardSession(session.student_id, session.cookie)


def paths(school: FakeSchool) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in school.requests]


# --- login -------------------------------------------------------------------


async def test_login_is_captcha_keypad_login_and_account(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    client = make_client(school.url, http)
    session = await client.login(STUDENT, PASSWORD)
    # No home page: the captcha request opens the session.
    assert paths(school) == LOGIN_PATHS
    assert client.requests_sent == 4
    assert school.requests[0].target == "/getCheckpic.action?rand=8000."
    assert school.requests[0].cookie is None
    assert {r.cookie for r in school.requests[1:]} == {session.cookie}
    assert school.sessions[session.cookie].student == STUDENT
    form = school.requests[2].form()
    assert form["name"] == STUDENT
    assert (form["rand"], form["loginType"], form["userType"]) == ("8000", "2", "1")
    keys = school.sessions[session.cookie].keys
    assert keys is not None
    assert form["passwd"] == "".join(str(keys.index(d)) for d in PASSWORD)
    assert session.cookie not in repr(session)
    # The account page that proved the login answers an account query at once.
    info = await client.account(session)
    assert client.requests_sent == 4
    assert (info.student_id, info.name, info.balance) == (STUDENT, "张三", Decimal("129.68"))


async def test_host_and_referer(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    await client.login(STUDENT, PASSWORD)
    port = school.url.rsplit(":", 1)[1]
    # The 2013 client's Referer, on the card center's host.
    portal = "http://127.0.0.1/platform/cc/index"
    assert [r.headers["referer"] for r in school.requests[:3]] == [portal] * 3
    assert school.requests[3].headers["referer"] == school.url + "/loginstudent.action"
    assert {r.headers["host"] for r in school.requests} == {f"127.0.0.1:{port}"}
    school.requests.clear()
    named = make_client(school.url, http, host="card.jnu.edu.cn:8080", referer="http://x/")
    await named.login(STUDENT, PASSWORD)
    assert {r.headers["host"] for r in school.requests} == {"card.jnu.edu.cn:8080"}
    assert school.requests[0].headers["referer"] == "http://x/"


async def test_wrong_password(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    with pytest.raises(InvalidCredentials) as info:
        await client.login(STUDENT, "123456")
    assert info.value.reason == "wrong_password"
    assert client.requests_sent == 3
    sent = school.requests[2].form()["passwd"]
    assert "123456" not in str(info.value)
    assert sent not in str(info.value)


async def test_unknown_student(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    with pytest.raises(InvalidCredentials) as info:
        await client.login("1999000000", "000000")
    assert info.value.reason == "unknown_student"


async def test_login_page_given_back_is_never_success(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.overrides["/loginstudent.action"] = lambda r: Response(login_page())
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="login refused"):
        await client.login(STUDENT, PASSWORD)


async def test_no_refusal_but_no_account_data_is_not_success(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    # The card center answers the login with something that is not a refusal,
    # but the session is not logged in: the account page is the login page.
    school.overrides["/loginstudent.action"] = lambda r: Response(fixture("frame.html"))
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="account page is the login page"):
        await client.login(STUDENT, PASSWORD)
    school.overrides["/accountcardUser.action"] = lambda r: Response(
        fixture("account_no_balance.html")
    )
    with pytest.raises(SchoolPageError, match="no balance"):
        await client.login(STUDENT, PASSWORD)


async def test_lost_session_during_login(school: FakeSchool, http: httpx.AsyncClient) -> None:
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
        fixture("login.html"), content_type="image/jpeg", set_cookie="K" * 32
    )
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="keypad") as info:
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 2
    assert ("POST", "/loginstudent.action") not in paths(school)
    # What the API answers for it.
    answer = from_school(info.value, "the card center", "card password")
    assert describe_error(answer, 500, 30)[:2] == (502, "school_page_unreadable")


async def test_keypad_with_a_digit_beyond_key_9_stops_before_posting(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    keys = ["0", "1", "2", "3", "清除", "4", "5", "关闭", "6", "8", "7", "9"]
    school.overrides["/getpasswdPhoto.action"] = lambda r: Response(
        encode(arrange(keys)), content_type="image/jpeg", set_cookie="K" * 32
    )
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="key 11"):
        await client.login(STUDENT, "090000")
    assert ("POST", "/loginstudent.action") not in paths(school)


async def test_no_session_cookie(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/getCheckpic.action"] = lambda r: Response(b"png")
    school.overrides["/getpasswdPhoto.action"] = lambda r: Response(encode(arrange([])))
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match="JSESSIONID"):
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 2


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
    stored_a, stored_b = CardSession(STUDENT, a.cookie), CardSession("2012000001", b.cookie)
    info_a, info_b = await asyncio.gather(client.account(stored_a), client.account(stored_b))
    assert (info_a.student_id, info_a.name) == (STUDENT, "张三")
    assert (info_b.student_id, info_b.name) == ("2012000001", "李四")
    assert client.requests_sent == 10


async def test_account_page_of_the_login_is_reused_only_briefly(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    client = make_client(school.url, http, login_page_reuse_s=0.0)
    session = await client.login(STUDENT, PASSWORD)
    await client.account(session)
    assert client.requests_sent == 5


# --- redirects and cookies ------------------------------------------------------


async def test_login_redirected_to_the_account_page(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    def redirect(request: Request) -> Response:
        answer = school._default(request)
        if b"frame" in answer.body or "持卡人".encode("gbk") in answer.body:
            return Response(status=302, headers=[("Location", "accountcardUser.action")])
        return answer

    school.overrides["/loginstudent.action"] = redirect
    client = make_client(school.url, http)
    session = await client.login(STUDENT, PASSWORD)
    # The redirect is followed with GET; its page proves the login, no fourth page asked.
    assert paths(school) == LOGIN_PATHS
    # As browsers do, the redirected request keeps the Referer of the one redirected.
    assert school.requests[3].headers["referer"] == school.requests[2].headers["referer"]
    assert (await client.account(session)).balance == Decimal("129.68")
    assert client.requests_sent == 4


@pytest.mark.parametrize(("status", "method"), [(303, "GET"), (301, "GET"), (307, "POST")])
async def test_redirect_methods(
    school: FakeSchool, http: httpx.AsyncClient, status: int, method: str
) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    school.overrides["/accounttodayTrjn.action"] = lambda r: (
        Response(fixture("today_form.html"))
        if r.method == "GET"
        else Response(status=status, headers=[("Location", f"{school.url}/moved.action")])
    )
    school.overrides["/moved.action"] = lambda r: Response(result_page(make_rows(2), 1, True))
    rows = await client.today(session)
    assert len(rows) == 2
    moved = school.requests[-1]
    assert (moved.method, moved.path) == (method, "/moved.action")
    # 307 sends the form again, 301/303 drop it.
    assert bool(moved.form()) == (method == "POST")


async def test_redirect_to_another_host_is_not_followed(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    async with FakeSchool() as elsewhere:
        client = make_client(school.url, http)
        session = await logged_in(school, client)
        school.overrides["/accountcardUser.action"] = lambda r: Response(
            status=302, headers=[("Location", elsewhere.url + "/steal")]
        )
        with pytest.raises(SchoolPageError, match="away from itself"):
            await client.account(session)
        assert elsewhere.requests == []


async def test_redirect_loop_ends(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http, max_redirects=3)
    session = await logged_in(school, client)
    school.overrides["/accountcardUser.action"] = lambda r: Response(
        status=302, headers=[("Location", "/accountcardUser.action")]
    )
    with pytest.raises(SchoolPageError, match="more than 3 redirects"):
        await client.account(session)
    assert client.requests_sent == 4


async def test_every_cookie_is_kept(school: FakeSchool, http: httpx.AsyncClient) -> None:
    def balancer(request: Request) -> Response:
        answer = school._default(request)
        answer.headers.append(("Set-Cookie", "BIGipServerpool=123.20480.0000; path=/"))
        answer.headers.append(("Set-Cookie", "gone=1; Max-Age=0"))
        return answer

    school.overrides["/getpasswdPhoto.action"] = balancer
    client = make_client(school.url, http)
    session = await client.login(STUDENT, PASSWORD)
    jsessionid = school.requests[1].cookie
    assert session.cookie == f"JSESSIONID={jsessionid}; BIGipServerpool=123.20480.0000"
    assert school.requests[2].cookies == {
        "JSESSIONID": str(jsessionid),
        "BIGipServerpool": "123.20480.0000",
    }
    school.requests.clear()
    await client.today(CardSession(STUDENT, session.cookie))
    assert all(r.cookies["BIGipServerpool"] == "123.20480.0000" for r in school.requests)


def test_cookie_jar_session_values() -> None:
    main = "JSESSIONID"
    assert CookieJar.from_session("ABC", main).session_value(main) == "ABC"
    both = CookieJar.from_session("JSESSIONID=ABC; lb=1", main)
    assert both.header() == "JSESSIONID=ABC; lb=1"
    assert both.session_value(main) == "JSESSIONID=ABC; lb=1"
    assert "lb" in both


# --- data ----------------------------------------------------------------------


async def test_account_of_a_stored_session(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    info = await client.account(session)
    assert client.requests_sent == 1
    assert info.balance == Decimal("129.68")
    assert info.card_number == "337776"
    assert school.requests[0].cookie == session.cookie


async def test_today_follows_the_form_and_stops_on_a_repeated_page(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.today(session)
    assert len(rows) == 3
    # No pager: page 2 is asked, comes back as page 1 again, and ends the query.
    assert paths(school) == [
        ("GET", "/accounttodayTrjn.action"),
        ("POST", "/accounttodayTrjn.action"),
        ("POST", "/accountconsubBrows.action"),
    ]
    # The page's own form: the first option of each select, the button, in GBK.
    query = school.requests[1]
    assert query.form() == {"account": "337776", "inputObject": "all", "Submit": " 确 定 "}
    assert b"Submit=+%C8%B7+%B6%A8+" in query.body
    assert query.headers["referer"] == school.url + "/accounttodayTrjn.action"
    assert rows[0].time == datetime(2013, 8, 25, 0, 54, 7, tzinfo=CST)


async def test_today_pages_through_without_a_pager(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.today_rows = make_rows(23)
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.today(session)
    assert len(rows) == 23
    # Pages of 10, 10 and 3: the short page is the last.
    assert [r.form().get("pageNum") for r in school.requests[2:]] == ["2", "3"]
    assert rows[22].balance_after == Decimal("133.00")


async def test_today_pages_through_with_a_pager(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    school.today_rows = make_rows(20)
    school.pager = True
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.today(session)
    assert len(rows) == 20
    # The pager says 2 pages: no third page is asked.
    assert client.requests_sent == 3


async def test_today_empty(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = []
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    assert await client.today(session) == []
    assert client.requests_sent == 2


async def test_page_past_the_end_may_be_empty(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(10)
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(result_page([], 1))
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    assert len(await client.today(session)) == 10
    assert client.requests_sent == 3


async def test_paging_without_a_paging_form(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(12)
    formless = result_page(make_rows(12), 1).replace(b"pageNum", b"other")
    school.overrides["/accounttodayTrjn.action"] = lambda r: Response(
        fixture("today_form.html") if r.method == "GET" else formless
    )

    def paged(request: Request) -> Response:
        school.sessions[str(request.cookie)].last_rows = make_rows(12)
        return school._default(request)

    school.overrides["/accountconsubBrows.action"] = paged
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    assert len(await client.today(session)) == 12
    asked = school.requests[2]
    assert (asked.path, asked.form()) == ("/accountconsubBrows.action", {"pageNum": "2"})


async def test_history_chain(school: FakeSchool, http: httpx.AsyncClient) -> None:
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.history(session, date(2013, 8, 1), date(2013, 8, 23))
    assert len(rows) == 12
    assert paths(school) == [
        ("GET", "/accounthisTrjn.action"),
        ("POST", "/accounthisTrjn1.action"),
        ("POST", "/accounthisTrjn2.action"),
        ("POST", "/accounthisTrjn3.action"),
        ("POST", "/accountconsubBrows.action"),
    ]
    dates = school.requests[2].form()
    assert (dates["inputStartDate"], dates["inputEndDate"]) == ("20130801", "20130823")
    assert school.requests[3].body == b""


async def test_history_continuations_resolve_against_their_page(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    # The later platform's chain: every step posts to accounthisTrjn.action?__continue=K,
    # the "please wait" form's action is only "?__continue=K".
    def chain(request: Request) -> Response:
        if "__continue" not in request.target:
            return Response(fixture("history_form_platform.html"))
        if request.target.endswith("=abc"):
            return Response(result_page(make_rows(4), 1, pager=True))
        if request.form().get("inputEndDate"):
            return Response(fixture("wait_relative.html"))
        dates = fixture("history_dates.html")
        return Response(dates.replace(b"/accounthisTrjn2.action", b"?__continue=d"))

    school.overrides["/accounthisTrjn.action"] = chain
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    rows = await client.history(session, date(2013, 8, 1), date(2013, 8, 23))
    assert len(rows) == 4
    targets = [r.target for r in school.requests]
    assert targets[0] == "/accounthisTrjn.action"
    assert targets[1].startswith("/accounthisTrjn.action?__continue=")
    assert targets[2:] == [
        "/accounthisTrjn.action?__continue=d",
        "/accounthisTrjn.action?__continue=abc",
    ]


async def test_get_form(school: FakeSchool, http: httpx.AsyncClient) -> None:
    page = fixture("today_form.html").replace(b'method="post"', b'method="get"')
    school.overrides["/accounttodayTrjn.action"] = lambda r: Response(
        page if "?" not in r.target else result_page(make_rows(1), 1, True)
    )
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    assert len(await client.today(session)) == 1
    asked = school.requests[1]
    assert asked.method == "GET"
    assert asked.target.startswith("/accounttodayTrjn.action?account=337776&inputObject=all")


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


async def test_endless_forms_end(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/accounthisTrjn3.action"] = lambda r: Response(fixture("history_wait.html"))
    client = make_client(school.url, http, max_steps=3)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="no result page after 3"):
        await client.history(session, date(2013, 8, 1), date(2013, 8, 2))


async def test_rows_changing_while_paging(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(12)
    school.pager = True
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(
        result_page(make_rows(25), 2, pager=True)
    )
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="page 2 says page 2 of 3"):
        await client.today(session)


async def test_row_count_must_match_the_pagers_total(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    first = result_page(make_rows(12), 1, pager=True, total=True)
    short = result_page(make_rows(12), 2, pager=True, total=True).decode("gbk")
    # Page 2 shows 2 rows; hide one of them (a class the parser does not count).
    short = short.replace('<tr class="listbg2">', '<tr class="x">')
    school.overrides["/accounttodayTrjn.action"] = lambda r: Response(
        fixture("today_form.html") if r.method == "GET" else first
    )
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(short.encode("gbk"))
    client = make_client(school.url, http)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="11 rows"):
        await client.today(session)


async def test_too_many_pages(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.today_rows = make_rows(31)
    school.pager = True
    client = make_client(school.url, http, max_pages=3)
    session = await logged_in(school, client)
    with pytest.raises(SchoolPageError, match="4 pages"):
        await client.today(session)
    assert client.requests_sent == 2
    school.pager = False
    with pytest.raises(SchoolPageError, match="more than 3 pages"):
        await client.today(session)


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
    school.overrides["/accountconsubBrows.action"] = lambda r: Response(fixture("login.html"))
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
    school.overrides["/accountcardUser.action"] = lambda r: Response(fixture("server_busy.html"))
    school.overrides["/loginstudent.action"] = lambda r: Response(fixture("server_busy.html"))
    client = make_client(school.url, http)
    with pytest.raises(SchoolServerError):
        await client.account(CardSession(STUDENT, "B" * 32))
    with pytest.raises(SchoolServerError):
        await client.login(STUDENT, PASSWORD)
    assert client.requests_sent == 4


@pytest.mark.parametrize("status", [302, 404, 403])
async def test_other_statuses_are_page_errors(
    school: FakeSchool, http: httpx.AsyncClient, status: int
) -> None:
    school.overrides["/getCheckpic.action"] = lambda r: Response(b"<html></html>", status=status)
    client = make_client(school.url, http)
    with pytest.raises(SchoolPageError, match=str(status)):
        await client.login(STUDENT, PASSWORD)


async def test_reset_connection(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/getpasswdPhoto.action"] = lambda r: Response(reset=True)
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
    # The school would answer only after a minute: giving up first is the total timeout.
    answered: list[Request] = []

    async def a_minute_late(request: Request) -> Response:
        await asyncio.sleep(60)
        answered.append(request)
        return Response(b"png")

    school.overrides["/getCheckpic.action"] = a_minute_late
    client = make_client(school.url, http, total=0.5)
    with pytest.raises(SchoolTimeout):
        await client.login(STUDENT, PASSWORD)
    assert [r.path for r in school.requests] == ["/getCheckpic.action"]
    assert answered == [], "gave up while the school was still working on it"


class HandedOut(bytes):
    """A page that counts how many of its bytes the school has sent so far (one at a time)."""

    handed_out = 0

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            self.handed_out = max(self.handed_out, key.stop or 0)
        return super().__getitem__(key)


async def test_trickling_answer_hits_total_not_read_timeout(
    school: FakeSchool, http: httpx.AsyncClient
) -> None:
    # Each byte comes well within the read timeout, but the whole page takes a minute.
    body = HandedOut(fixture("account.html"))
    school.overrides["/accountcardUser.action"] = lambda r: Response(body, trickle=60 / len(body))
    client = make_client(school.url, http, total=0.8)
    with pytest.raises(SchoolTimeout, match="total"):
        await client.account(CardSession(STUDENT, "B" * 32))
    assert 0 < body.handed_out < len(body), "gave up in the middle of the page"


async def test_every_failure_is_a_school_error(school: FakeSchool, http: httpx.AsyncClient) -> None:
    school.overrides["/getCheckpic.action"] = lambda r: Response(reset=True)
    client = make_client(school.url, http)
    with pytest.raises(SchoolError):
        await client.login(STUDENT, PASSWORD)


def test_settings_validation() -> None:
    with pytest.raises(ValueError, match="base_url"):
        CardCenterConfig(base_url="127.0.0.1:8080")
    with pytest.raises(ValueError, match="total_timeout_s"):
        CardCenterConfig(base_url="http://127.0.0.1", total_timeout_s=0)
    with pytest.raises(ValueError, match="max_pages"):
        CardCenterConfig(base_url="http://127.0.0.1", max_pages=0)
    with pytest.raises(ValueError, match="max_steps"):
        CardCenterConfig(base_url="http://127.0.0.1", max_steps=0)
    settings = CardCenterConfig(base_url="http://127.0.0.1")
    assert settings.clock_offset == timedelta(minutes=55)
    assert settings.max_pages == 50
