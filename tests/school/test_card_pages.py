"""The card center page parsers against hand-written GBK fixtures."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from school.card_pages import (
    check_login_page,
    decode_page,
    is_login_page,
    page_charset,
    parse_account,
    parse_account_form,
    parse_form,
    parse_login_result,
    parse_money,
    parse_result_page,
    parse_time,
)
from school.errors import (
    InvalidCredentials,
    QueryRejected,
    SchoolPageError,
    SchoolServerError,
    SessionExpired,
)

PAGES = Path(__file__).resolve().parent.parent / "fixtures" / "card_pages"
OFFSET = timedelta(minutes=55)
CST = timezone(timedelta(hours=8))
GBK_TYPE = "text/html;charset=GBK"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def gbk_text(name: str) -> str:
    return page(name).decode("gbk")


# --- decoding ---------------------------------------------------------------


def test_fixtures_are_really_gbk() -> None:
    raw = page("account.html")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "张三" in raw.decode("gbk")


def test_charset_header_first_then_meta_then_gbk() -> None:
    assert page_charset(b"<html>", "text/html; charset=UTF-8") == "utf-8"
    assert page_charset(page("account.html"), "text/html") == "gbk"
    assert page_charset(page("utf8_account.html"), None) == "utf-8"
    assert page_charset(b"<html><body>x</body></html>", None) == "gbk"


def test_header_charset_wins_over_meta() -> None:
    body = "<html><head><meta charset=gbk></head><body>张三</body></html>".encode()
    assert "张三" in decode_page(body, "text/html; charset=utf-8")
    assert "张三" not in decode_page(body, None)


def test_undecodable_page_is_a_page_error() -> None:
    with pytest.raises(SchoolPageError, match="decode"):
        decode_page(b"<html>\x81</html>", GBK_TYPE)


def test_unknown_charset_is_a_page_error() -> None:
    with pytest.raises(SchoolPageError, match="charset"):
        decode_page(b"<html></html>", "text/html; charset=x-klingon")


def test_utf8_declared_page_decodes_correctly() -> None:
    info = parse_account(page("utf8_account.html"), "2013012345")
    assert info.name == "李四·欧阳"
    assert info.department == "暨南大学华文学院"
    assert info.status == "挂失"
    assert info.balance == Decimal("8.00")


# --- login -------------------------------------------------------------------


def test_home_is_a_login_page() -> None:
    assert is_login_page(page("home.html"), GBK_TYPE)
    assert is_login_page(page("expired_login.html"))
    assert not is_login_page(page("welcome.html"))
    assert not is_login_page(page("today_result.html"))


def test_check_login_page() -> None:
    check_login_page(page("home.html"), GBK_TYPE)
    with pytest.raises(SchoolPageError, match="not the login page"):
        check_login_page(page("welcome.html"))
    with pytest.raises(SchoolServerError):
        check_login_page(page("server_busy.html"))


def test_welcome_gives_the_name() -> None:
    assert parse_login_result(page("welcome.html"), GBK_TYPE) == "张三"


def test_wrong_password() -> None:
    with pytest.raises(InvalidCredentials) as info:
        parse_login_result(page("login_wrong_password.html"))
    assert info.value.reason == "wrong_password"


def test_unknown_student() -> None:
    with pytest.raises(InvalidCredentials) as info:
        parse_login_result(page("login_unknown_student.html"))
    assert info.value.reason == "unknown_student"


def test_captcha_expired_is_a_page_error_not_bad_credentials() -> None:
    with pytest.raises(SchoolPageError, match="验证码已过期"):
        parse_login_result(page("login_captcha_expired.html"))


def test_plain_login_page_after_login_is_never_success() -> None:
    with pytest.raises(SchoolPageError):
        parse_login_result(page("home.html"))


@pytest.mark.parametrize("name", ["account.html", "today_result.html", "error_steps.html"])
def test_anything_else_after_login_is_a_page_error(name: str) -> None:
    with pytest.raises(SchoolPageError):
        parse_login_result(page(name))


def test_welcome_without_name_is_a_page_error() -> None:
    text = gbk_text("welcome.html").replace("张三", "")
    with pytest.raises(SchoolPageError, match="name"):
        parse_login_result(text.encode("gbk"))


def test_overload_page_is_a_server_error() -> None:
    with pytest.raises(SchoolServerError):
        parse_login_result(page("server_busy.html"))
    with pytest.raises(SchoolServerError):
        parse_result_page(page("server_busy.html"), OFFSET)


# --- account -----------------------------------------------------------------


def test_account_page() -> None:
    info = parse_account(page("account.html"), "2012052690", GBK_TYPE)
    assert info.student_id == "2012052690"
    assert info.name == "张三"
    assert info.card_number == "152690"
    assert info.identity == "本科生"
    assert info.department == "信息科学技术学院"
    assert info.status == "正常"
    assert info.balance == Decimal("123.45")
    assert isinstance(info.balance, Decimal)
    assert info.cells[:4] == ("姓　　名：", "张三", "学 工 号：", "2012052690")
    assert info.cells[-1].startswith("123.45元（卡余额）")
    assert len(info.cells) == 14


def test_account_of_another_student_is_refused() -> None:
    with pytest.raises(SchoolPageError, match="another student"):
        parse_account(page("account.html"), "2012000001")


def test_account_login_page_means_session_expired() -> None:
    with pytest.raises(SessionExpired):
        parse_account(page("expired_login.html"), "2012052690")


def test_account_missing_label_is_a_page_error() -> None:
    text = gbk_text("account.html").replace("卡状态：", "备注：")
    with pytest.raises(SchoolPageError, match="卡状态"):
        parse_account(text.encode("gbk"), "2012052690")


def test_account_unreadable_balance() -> None:
    text = gbk_text("account.html").replace("123.45元", "暂无")
    with pytest.raises(SchoolPageError, match="balance"):
        parse_account(text.encode("gbk"), "2012052690")


# --- forms -------------------------------------------------------------------


def test_today_form_account() -> None:
    assert parse_account_form(page("today_form.html"), "accounttodayTrjn.action") == "152690"
    fields = parse_form(page("today_form.html"), "accounttodayTrjn.action")
    assert fields == {"account": "152690", "inputObject": "all"}


def test_history_chain_forms() -> None:
    assert parse_account_form(page("history_form.html"), "accounthisTrjn1.action") == "152690"
    dates = parse_form(page("history_dates.html"), "accounthisTrjn2.action")
    assert dates == {"inputStartDate": "20130816", "inputEndDate": "20130823"}
    assert parse_form(page("history_wait.html"), "accounthisTrjn3.action") == {}


def test_wrong_form_is_a_page_error() -> None:
    with pytest.raises(SchoolPageError, match="accounthisTrjn1"):
        parse_account_form(page("today_form.html"), "accounthisTrjn1.action")


def test_form_on_login_page_means_session_expired() -> None:
    with pytest.raises(SessionExpired):
        parse_account_form(page("expired_login.html"), "accounttodayTrjn.action")


def test_form_error_pages() -> None:
    with pytest.raises(SchoolPageError, match="请按步骤查询"):
        parse_form(page("error_steps.html"), "accounthisTrjn3.action")
    # The school's "date illegal" page is about our request, not the school's health.
    with pytest.raises(QueryRejected, match="查询日期不合法"):
        parse_form(page("error_bad_date.html"), "accounthisTrjn3.action")


def test_selected_option_wins() -> None:
    text = gbk_text("today_form.html").replace(
        "</select>", '<option value="999999" selected>999999[副卡]</option></select>'
    )
    assert parse_account_form(text.encode("gbk"), "accounttodayTrjn.action") == "999999"


# --- result pages ------------------------------------------------------------


def test_today_result() -> None:
    rows, page_no, pages, total = parse_result_page(page("today_result.html"), OFFSET, GBK_TYPE)
    assert (page_no, pages, total) == (1, 1, 3)
    assert len(rows) == 3
    first = rows[0]
    # Card center time 11:47:05 is 55 minutes slow.
    assert first.time == datetime(2013, 8, 24, 12, 42, 5, tzinfo=CST)
    assert first.time.utcoffset() == timedelta(hours=8)
    assert first.way == "持卡人消费"
    assert first.position == "第一饭堂"
    assert first.amount == Decimal("-5.50")
    assert first.balance_after == Decimal("117.95")
    assert rows[2].way == "存款"
    assert rows[2].amount == Decimal("100.00")
    assert [r.time for r in rows] == sorted((r.time for r in rows), reverse=True)


def test_clock_offset_is_configurable() -> None:
    rows, *_ = parse_result_page(page("today_result.html"), timedelta(0))
    assert rows[0].time == datetime(2013, 8, 24, 11, 47, 5, tzinfo=CST)


def test_history_pages() -> None:
    rows1, p1, n1, t1 = parse_result_page(page("history_page1.html"), OFFSET)
    rows2, p2, n2, t2 = parse_result_page(page("history_page2.html"), OFFSET)
    assert (p1, n1, t1) == (1, 2, 12)
    assert (p2, n2, t2) == (2, 2, 12)
    assert len(rows1) == 10
    assert len(rows2) == 2
    rows = rows1 + rows2
    assert rows[3].way == "补助"
    assert rows[3].position == "学生处"
    assert rows[3].amount == Decimal("50.00")
    # Crossing midnight with the offset: 23:44:17 on the 21st is 00:39:17 on the 22nd.
    assert rows[6].time == datetime(2013, 8, 22, 0, 39, 17, tzinfo=CST)
    for newer, older in itertools.pairwise(rows):
        assert newer.balance_after == older.balance_after + newer.amount


def test_empty_result() -> None:
    assert parse_result_page(page("empty_result.html"), OFFSET) == ([], 1, 1, 0)


def test_login_page_instead_of_data_is_session_expired() -> None:
    with pytest.raises(SessionExpired):
        parse_result_page(page("expired_login.html"), OFFSET)


def test_truncated_result_is_a_page_error() -> None:
    with pytest.raises(SchoolPageError, match="truncated"):
        parse_result_page(page("truncated_result.html"), OFFSET)


def test_result_with_end_but_no_pager_is_a_page_error() -> None:
    text = gbk_text("history_page1.html")
    start = text.index('<div id="pager">')
    text = text[:start] + text[text.index("</div>", start) + 6 :]
    with pytest.raises(SchoolPageError, match="pager"):
        parse_result_page(text.encode("gbk"), OFFSET)


def test_error_pages_are_page_errors() -> None:
    with pytest.raises(SchoolPageError, match="error page"):
        parse_result_page(page("error_steps.html"), OFFSET)


def test_date_error_page_is_a_rejected_query_not_a_page_error() -> None:
    with pytest.raises(QueryRejected) as caught:
        parse_result_page(page("error_bad_date.html"), OFFSET)
    assert not isinstance(caught.value, SchoolPageError)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('<td align="center">正常</td>', ""),  # a row with 7 cells
        ("-5.50", "-5.5O"),  # letter O in the amount
        ("117.95", ""),  # empty balance
        ("2013/08/24 11:47:05", "2013/08/24 25:47:05"),  # impossible hour
        ("2013/08/24 11:47:05", "昨天"),
        ("当前第1页/共1页", "当前第2页/共1页"),  # page beyond the last
        ("共3条记录", "共2条记录"),  # more rows than the total
    ],
)
def test_broken_result_pages_are_never_half_parsed(old: str, new: str) -> None:
    text = gbk_text("today_result.html")
    assert old in text
    with pytest.raises(SchoolPageError):
        parse_result_page(text.replace(old, new, 1).encode("gbk"), OFFSET)


# --- money and time edge cases -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12.50", Decimal("12.50")),
        ("-5.50", Decimal("-5.50")),
        ("1234.00", Decimal("1234.00")),
        (" 0.00 ", Decimal("0.00")),
        ("-0.01", Decimal("-0.01")),
        ("+3.00", Decimal("3.00")),
        ("7", Decimal("7")),
    ],
)
def test_money(text: str, value: Decimal) -> None:
    parsed = parse_money(text)
    assert parsed == value
    assert isinstance(parsed, Decimal)


def test_money_keeps_cents_exactly() -> None:
    assert parse_money("0.10") + parse_money("0.20") == Decimal("0.30")
    assert str(parse_money("12.50")) == "12.50"


@pytest.mark.parametrize(
    "text", ["", "-", "12.5.0", "1,234.00", "12.50元", "NaN", "Infinity", "1e3", "１２.５０", "--1"]
)
def test_bad_money(text: str) -> None:
    with pytest.raises(SchoolPageError):
        parse_money(text)


def test_time_edges() -> None:
    # New year's eve across the offset: the card center's 23:30 is 00:25 next year.
    assert parse_time("2013/12/31 23:30:00", OFFSET) == datetime(2014, 1, 1, 0, 25, tzinfo=CST)
    assert parse_time("2013-08-24 11:47:05", OFFSET) == datetime(2013, 8, 24, 12, 42, 5, tzinfo=CST)
    assert parse_time(" 2013/08/24  11:47:05 ", OFFSET).minute == 42
    assert parse_time("2012/02/29 00:00:00", timedelta(0)).day == 29


@pytest.mark.parametrize(
    "text", ["2013/02/29 10:00:00", "2013/08/24", "11:47:05", "2013/13/01 00:00:00", ""]
)
def test_bad_time(text: str) -> None:
    with pytest.raises(SchoolPageError):
        parse_time(text, OFFSET)
