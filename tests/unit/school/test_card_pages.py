"""The card center page parsers against saved GBK pages of both markups, and ugly ones.

`*.html` are pages of the 2013 markup, `*_platform.html` of the later
platform, saved from the simulator; the others are written by hand to be
awkward (other encodings, other headers and column orders, lenient times,
pagers of either kind, truncated or error pages).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from school.errors import (
    InvalidCredentials,
    QueryRejected,
    SchoolPageError,
    SchoolServerError,
    SessionExpired,
)
from school.html import Form, decode_page, page_charset
from systems.card.pages import (
    is_result_page,
    parse_account,
    parse_forms,
    parse_login_answer,
    parse_money,
    parse_result,
    parse_time,
)

PAGES = Path(__file__).resolve().parents[2] / "fixtures" / "card_pages"
OFFSET = timedelta(minutes=55)
CST = timezone(timedelta(hours=8))
GBK_TYPE = "text/html;charset=GBK"
STUDENT = "2012052690"
MARKUPS = ["", "_platform"]


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def gbk_text(name: str) -> str:
    return page(name).decode("gbk")


# --- decoding ---------------------------------------------------------------


def test_fixtures_are_really_gbk() -> None:
    raw = page("account.html")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert "余额" in raw.decode("gbk")


def test_charset_header_first_then_meta_then_gbk() -> None:
    assert page_charset(b"<html>", "text/html; charset=UTF-8") == "utf-8"
    assert page_charset(page("account.html"), "text/html") == "gbk"
    assert page_charset(page("account_utf8.html"), None) == "utf-8"
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


@pytest.mark.parametrize("charset", ["rot13", "hex", "base64"])
def test_a_charset_that_is_no_text_encoding_is_a_page_error(charset: str) -> None:
    with pytest.raises(SchoolPageError, match="decode"):
        decode_page(b"<html></html>", f"text/html; charset={charset}")


# --- login -------------------------------------------------------------------


@pytest.mark.parametrize("markup", MARKUPS)
def test_a_login_page_where_data_was_asked_means_the_session_is_lost(markup: str) -> None:
    with pytest.raises(SessionExpired):
        parse_account(page(f"login{markup}.html"), STUDENT, GBK_TYPE)
    with pytest.raises(SchoolPageError) as caught:
        parse_account(page(f"frame{markup}.html"), STUDENT)
    assert not isinstance(caught.value, SessionExpired)
    assert parse_account(page(f"account{markup}.html"), STUDENT).balance is not None


@pytest.mark.parametrize("markup", MARKUPS)
def test_frame_after_login_refuses_nothing(markup: str) -> None:
    # Not proof of success either: the client reads the account page next.
    parse_login_answer(page(f"frame{markup}.html"), GBK_TYPE)


@pytest.mark.parametrize("markup", MARKUPS)
def test_wrong_password(markup: str) -> None:
    with pytest.raises(InvalidCredentials) as info:
        parse_login_answer(page(f"login_wrong_password{markup}.html"))
    assert info.value.reason == "wrong_password"


@pytest.mark.parametrize("markup", MARKUPS)
def test_unknown_student(markup: str) -> None:
    with pytest.raises(InvalidCredentials) as info:
        parse_login_answer(page(f"login_unknown_student{markup}.html"))
    assert info.value.reason == "unknown_student"


def test_refusal_words_count_wherever_they_are() -> None:
    bare = "<html><body><center>登陆失败，密码错误</center></body></html>".encode("gbk")
    with pytest.raises(InvalidCredentials):
        parse_login_answer(bare)


def test_captcha_expired_is_a_page_error_not_bad_credentials() -> None:
    with pytest.raises(SchoolPageError, match="验证码已过期"):
        parse_login_answer(page("login_captcha_expired.html"))


def test_plain_login_page_after_login_is_never_success() -> None:
    with pytest.raises(SchoolPageError, match="no reason"):
        parse_login_answer(page("login.html"))


def test_overload_page_is_a_server_error() -> None:
    with pytest.raises(SchoolServerError):
        parse_login_answer(page("server_busy.html"))
    with pytest.raises(SchoolServerError):
        parse_result(page("server_busy.html"), OFFSET)
    with pytest.raises(SchoolServerError):
        parse_account(page("server_busy.html"), STUDENT)


# --- forms --------------------------------------------------------------------


@pytest.mark.parametrize("markup", MARKUPS)
def test_query_form_is_taken_as_the_page_gives_it(markup: str) -> None:
    (form,) = parse_forms(page(f"today_form{markup}.html"), GBK_TYPE)
    want = "/accounttodayTrjn.action" if not markup else "/accounttodatTrjnObject.action"
    assert form.action == want
    assert form.method == "POST"
    fields = dict(form.fields)
    # The first option of each select, the button that is clicked.
    assert fields["inputObject"] == "all"
    assert fields["account"].isdigit()
    assert fields["Submit"] == " 确 定 "


def test_history_chain_forms() -> None:
    (first,) = parse_forms(page("history_form_platform.html"))
    assert first.action.startswith("/accounthisTrjn.action?__continue=")
    (dates,) = parse_forms(page("history_dates_platform.html"))
    assert {"inputStartDate", "inputEndDate"} <= dates.names()
    (wait,) = parse_forms(page("history_wait_platform.html"))
    assert wait.action.startswith("?__continue=")
    assert (wait.method, wait.fields) == ("POST", ())


def test_form_fields_as_a_browser_sends_them() -> None:
    html = """<html><body><form action="x.action">
      <input name="a" value="1"><input type="checkbox" name="b" value="on">
      <input type="checkbox" name="c" value="yes" checked><input type="radio" name="r" value="1">
      <input type="radio" name="r" value="2" checked><input name="d" disabled value="x">
      <select name="s"><option>first</option><option selected value="2">second</option></select>
      <select name="t"><option value="v1">one</option></select>
      <textarea name="u">text</textarea><input type="reset" name="reset" value="r">
      <input type="submit" name="go" value="ok"><input type="submit" name="other" value="no">
      <input type="image" name="img" src="x.gif"><input value="nameless">
    </form></body></html>"""
    (form,) = parse_forms(html)
    assert form.method == "GET"  # HTML's default
    assert form.fields == (
        ("a", "1"),
        ("c", "yes"),
        ("r", "2"),
        ("s", "2"),
        ("t", "v1"),
        ("u", "text"),
        ("go", "ok"),
    )


def test_form_values_replace_or_add() -> None:
    form = Form("x", "POST", (("a", "1"), ("pageNum", "1")))
    assert form.with_values({"pageNum": "3", "b": "2"}).fields == (
        ("a", "1"),
        ("pageNum", "3"),
        ("b", "2"),
    )


# --- account ------------------------------------------------------------------


def test_account_2013_markup() -> None:
    info = parse_account(page("account.html"), STUDENT, GBK_TYPE)
    assert info.balance == Decimal("129.68")
    assert info.student_id == STUDENT
    assert (info.name, info.card_number) == ("邓华敏", "337776")
    assert (info.identity, info.department, info.status) == ("本科生", "药学院", "正常")
    # Every td.neiwen cell in order; 2013 answered the value cells (without ：).
    values = [c for c in info.cells if "：" not in c]
    assert values[:3] == ["邓华敏", "337776", STUDENT]
    assert values[-1].startswith("129.68元（卡余额）")


def test_account_platform_markup() -> None:
    info = parse_account(page("account_platform.html"), STUDENT, GBK_TYPE)
    assert info.balance == Decimal("129.68")
    assert (info.name, info.card_number, info.department) == ("邓华敏", "337776", "药学院")
    assert (info.identity, info.status) == ("本科生", "正常")
    assert len(info.cells) == 30


def test_account_with_only_the_balance() -> None:
    info = parse_account(page("account_minimal.html"), STUDENT)
    assert info.balance == Decimal("7.05")
    assert (info.name, info.card_number, info.status) == ("", "", "")
    assert info.student_id == STUDENT


def test_account_utf8_padded_labels_and_thousands() -> None:
    info = parse_account(page("account_utf8.html"), "2013012345")
    assert info.name == "李四·欧阳"
    assert info.department == "暨南大学华文学院"
    assert info.status == "挂失"
    assert info.balance == Decimal("1234.50")


def test_account_without_neiwen_cells() -> None:
    info = parse_account(page("account_no_neiwen.html"), STUDENT)
    assert (info.name, info.card_number, info.balance) == ("王五", "100001", Decimal("0.50"))


def test_account_without_balance_is_no_account_data() -> None:
    with pytest.raises(SchoolPageError, match="no balance"):
        parse_account(page("account_no_balance.html"), STUDENT)


def test_account_of_another_student_is_refused() -> None:
    with pytest.raises(SchoolPageError, match="another student"):
        parse_account(page("account_other_student.html"), STUDENT)


@pytest.mark.parametrize("markup", MARKUPS)
def test_login_page_instead_of_data_is_expired(markup: str) -> None:
    with pytest.raises(SessionExpired):
        parse_account(page(f"login{markup}.html"), STUDENT)
    with pytest.raises(SessionExpired):
        parse_result(page(f"login{markup}.html"), OFFSET)


# --- results ------------------------------------------------------------------


def test_today_2013_markup_has_no_pager() -> None:
    result = parse_result(page("today_result.html"), OFFSET, GBK_TYPE)
    assert (result.page, result.pages, result.total) == (None, None, None)
    assert len(result.rows) == 4
    first = result.rows[0]
    assert first.time == datetime(2026, 11, 27, 22, 27, 1, tzinfo=CST)
    assert (first.way, first.position) == ("持卡人消费", "第一饭堂")
    assert (first.amount, first.balance_after) == (Decimal("-5.50"), Decimal("124.18"))
    (paging,) = result.forms
    assert dict(paging.fields) == {"pageNum": "1"}


def test_today_platform_markup_reads_ten_columns_and_the_pager() -> None:
    result = parse_result(page("today_result_platform.html"), OFFSET, GBK_TYPE)
    assert (result.page, result.pages, result.total) == (1, 1, None)
    first = result.rows[0]
    # Amount and balance are td[5] and td[6] here, found by their header text.
    assert (first.amount, first.balance_after) == (Decimal("-5.50"), Decimal("124.18"))
    assert (first.way, first.position) == ("持卡人消费", "第一饭堂")
    (paging,) = result.forms
    assert "pageVo.pageNum" in paging.names()


def test_history_pages_of_both_markups() -> None:
    old = parse_result(page("history_page1.html"), OFFSET)
    new = parse_result(page("history_page1_platform.html"), OFFSET)
    assert len(old.rows) == len(new.rows) == 10
    assert old.pages is None
    assert (new.page, new.pages) == (1, 4)
    second = parse_result(page("history_page2_platform.html"), OFFSET)
    assert (second.page, second.pages) == (2, 4)
    assert second.rows[0].time < new.rows[-1].time


@pytest.mark.parametrize("markup", MARKUPS)
def test_empty_results(markup: str) -> None:
    result = parse_result(page(f"empty_result{markup}.html"), OFFSET)
    assert result.rows == ()
    assert is_result_page(page(f"empty_result{markup}.html"))


def test_pager_of_zero_pages_is_one_empty_page() -> None:
    result = parse_result(page("result_pager_zero.html"), OFFSET)
    assert (result.rows, result.page, result.pages) == ((), 1, 1)


def test_old_style_pager_with_row_total() -> None:
    result = parse_result(page("result_old_pager.html"), OFFSET)
    assert (result.page, result.pages, result.total) == (1, 2, 12)
    assert result.rows[1].amount == Decimal("-1.20")
    assert result.rows[1].balance_after == Decimal("256.50")


def test_ugly_result_other_headers_order_and_formats() -> None:
    result = parse_result(page("result_ugly.html"), OFFSET)
    first, second, third = result.rows
    assert first.time == datetime(2013, 8, 4, 10, 0, 0, tzinfo=CST)
    assert (first.amount, first.balance_after) == (Decimal("-1234.00"), Decimal("5.5"))
    assert (first.position, first.way) == ("第一饭堂", "持卡人消费")
    assert second.time == datetime(2013, 8, 3, 20, 0, 1, tzinfo=CST)
    assert second.amount == Decimal("100.00")
    assert third.time == datetime(2013, 8, 3, 8, 25, 0, tzinfo=CST)


def test_rows_without_a_header_use_the_2013_positions() -> None:
    result = parse_result(page("result_no_header.html"), OFFSET)
    assert [(r.position, r.amount, r.balance_after) for r in result.rows] == [
        ("第一饭堂", Decimal("-5.50"), Decimal("117.95")),
        ("超市", Decimal("-3.00"), Decimal("123.45")),
    ]


def test_unreadable_money_fails_the_whole_page() -> None:
    with pytest.raises(SchoolPageError, match="money"):
        parse_result(page("result_bad_money.html"), OFFSET)


def test_truncated_result_is_a_page_error() -> None:
    with pytest.raises(SchoolPageError, match="truncated"):
        parse_result(page("truncated_result.html"), OFFSET)


@pytest.mark.parametrize("name", ["today_form.html", "history_wait.html", "wait_relative.html"])
def test_forms_are_not_result_pages(name: str) -> None:
    assert not is_result_page(page(name))
    with pytest.raises(SchoolPageError, match="not a result page"):
        parse_result(page(name), OFFSET)


@pytest.mark.parametrize("markup", MARKUPS)
def test_bad_date_page_is_a_rejected_query(markup: str) -> None:
    with pytest.raises(QueryRejected, match="日期不合法") as info:
        parse_result(page(f"error_bad_date{markup}.html"), OFFSET)
    assert not isinstance(info.value, SchoolPageError)


def test_bad_date_without_a_message_box() -> None:
    with pytest.raises(QueryRejected, match="日期不合法"):
        parse_forms(page("error_bad_date_plain.html"))


def test_steps_error_page() -> None:
    with pytest.raises(SchoolPageError, match="请按步骤查询"):
        parse_result(page("error_steps.html"), OFFSET)


def test_unknown_error_page_is_no_result() -> None:
    with pytest.raises(SchoolPageError):
        parse_result(page("error_plain.html"), OFFSET)


# --- values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("-5.50", "-5.50"),
        (" 12.5 ", "12.5"),
        ("+100.00", "100.00"),
        ("1,234.00", "1234.00"),
        ("0", "0"),
        ("3.20元", "3.20"),
        ("－2.00", "-2.00"),
    ],
)
def test_parse_money(text: str, value: str) -> None:
    assert parse_money(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "--1", "１２.００", "NaN", "1e5"])
def test_parse_money_rejects(text: str) -> None:
    with pytest.raises(SchoolPageError, match="money"):
        parse_money(text)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("2013/08/24 11:47:05", datetime(2013, 8, 24, 11, 47, 5)),
        ("2013-08-24 11:47:05", datetime(2013, 8, 24, 11, 47, 5)),
        ("2013/8/4 9:05:01", datetime(2013, 8, 4, 9, 5, 1)),
        ("2013/08/24 11:47", datetime(2013, 8, 24, 11, 47)),
        ("2013-08-24 11:47:05.0", datetime(2013, 8, 24, 11, 47, 5)),
        ("2013.08.24 11:47:05", datetime(2013, 8, 24, 11, 47, 5)),
        ("2013年8月24日 11:47:05", datetime(2013, 8, 24, 11, 47, 5)),
        ("20130824 114705", datetime(2013, 8, 24, 11, 47, 5)),
        ("  2013/08/24   11:47:05 ", datetime(2013, 8, 24, 11, 47, 5)),
    ],
)
def test_parse_time_is_lenient_and_adds_the_offset(text: str, shown: datetime) -> None:
    assert parse_time(text, OFFSET) == shown.replace(tzinfo=CST) + OFFSET


@pytest.mark.parametrize(
    "text",
    ["", "yesterday", "2013/13/01 10:00:00", "2013/02/30 10:00:00", "２０１３/08/24 11:47:05"],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(SchoolPageError, match="time"):
        parse_time(text, OFFSET)


def test_day_boundary_crossed_by_the_offset() -> None:
    assert parse_time("2013/08/24 23:30:00", OFFSET) == datetime(2013, 8, 25, 0, 25, tzinfo=CST)
