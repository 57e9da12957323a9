"""The card center parsers read every markup variant of every page as they read the plain one.

The pages are the simulator's own (schoolsim/card/pages.py), written in each variant of
schoolsim/variants.py and sent as the simulator sends them (GBK bytes, the variant's
Content-Type). Whatever the variant, a page must give the same values as the plain page,
and a login answer the same outcome: the client judges pages by what they say.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from school.errors import InvalidCredentials, QueryRejected, SchoolPageError, SessionExpired
from schoolsim.card import pages as sim
from schoolsim.card.dataset import Dataset, Student, money
from schoolsim.variants import VARIANTS, Variant
from systems.card.pages import (
    ResultPage,
    is_result_page,
    parse_account,
    parse_forms,
    parse_login_account,
    parse_login_answer,
    parse_result,
)

OFFSET = timedelta(minutes=55)
CHINA = timezone(timedelta(hours=8))
TODAY = date(2026, 11, 30)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=CHINA)
DATASET = Dataset(7, TODAY)
STUDENTS = ("2010204060", "2012052690", "2015123456", "2019000001")
MARKUPS: tuple[sim.Markup, ...] = ("2013", "platform")
OTHER_VARIANTS = [v for v in VARIANTS if v != "plain"]

variants = st.sampled_from(OTHER_VARIANTS)
markups = st.sampled_from(MARKUPS)
students = st.sampled_from(STUDENTS)
quick = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sent(html: str, variant: Variant) -> tuple[bytes, str]:
    """A page as the simulator sends it: GBK bytes and the variant's Content-Type."""
    return html.encode("gbk"), sim.content_type(variant)


def student(stuid: str) -> Student:
    found = DATASET.student(stuid)
    assert found is not None
    return found


def test_plain_declares_its_charset_in_the_header_and_others_as_their_variant_says() -> None:
    st_ = student(STUDENTS[0])
    for variant in VARIANTS:
        body, ctype = sent(sim.account_page(sim.Account(st_, "1.00"), "2013", variant), variant)
        declared = b"charset" in body.lower()
        assert ("charset" in ctype.lower()) == (variant in ("plain", "modern"))
        assert declared == (variant != "bare")
        assert body.rstrip().lower().endswith(b"</html>") == (variant in ("plain", "modern"))


# --- login answers ----------------------------------------------------------------


@quick
@given(variant=variants)
def test_login_refusals_mean_the_same_in_every_variant(variant: Variant) -> None:
    for error, reason in ((sim.WRONG_PASSWORD, "wrong_password"), (sim.NO_USER, "unknown_student")):
        with pytest.raises(InvalidCredentials) as caught:
            parse_login_answer(*sent(sim.login_page(error, variant), variant))
        assert caught.value.reason == reason


@quick
@given(variant=st.sampled_from(VARIANTS))
def test_the_login_form_back_without_a_refusal_is_an_unknown_outcome(variant: Variant) -> None:
    for error in ("", sim.EXPIRED_ERROR):
        with pytest.raises(SchoolPageError) as caught:
            parse_login_answer(*sent(sim.login_page(error, variant), variant))
        assert caught.value.kind == "login"
        assert not isinstance(caught.value, InvalidCredentials)


@quick
@given(variant=st.sampled_from(VARIANTS), markup=markups, stuid=students)
def test_a_login_is_proved_by_account_data_alone(
    variant: Variant, markup: sim.Markup, stuid: str
) -> None:
    st_ = student(stuid)
    frame = sent(sim.frame_page(st_.name, markup, variant), variant)
    parse_login_answer(*frame)  # refuses nothing; not success either
    with pytest.raises(SchoolPageError) as caught:
        parse_login_account(frame[0], stuid, frame[1])
    assert caught.value.kind == "login"
    account = sent(sim.account_page(sim.Account(st_, "12.30"), markup, variant), variant)
    assert str(parse_login_account(account[0], stuid, account[1]).balance) == "12.30"


UNKNOWN_ANSWERS = [
    "",
    "<html><body><p>系统维护中，请稍后再试</p></body></html>",
    "<HTML><BODY><P>密码错误次数过多的账户将被冻结<P>请联系管理员",
    "<html><head><title>Apache Tomcat/6.0.20 - Error report</title></head><body>"
    "<h1>HTTP Status 404</h1></body></html>",
    "<html><body><form action='other.action'><input name='q'></form></body></html>",
    "<html><body><p class='biaotou'>查询日期不合法</p></body></html>",
]


@pytest.mark.parametrize("answer", UNKNOWN_ANSWERS)
def test_an_unknown_login_answer_is_a_login_page_error_never_bad_credentials(answer: str) -> None:
    """Neither the login form nor account data: the outcome is unknown, whatever else it says."""
    body = answer.encode("gbk")
    parse_login_answer(body)  # no refusal to read in it
    with pytest.raises(SchoolPageError) as caught:
        parse_login_account(body, STUDENTS[0])
    assert caught.value.kind == "login"


@quick
@given(variant=st.sampled_from(VARIANTS), text=st.text(max_size=60))
def test_no_text_without_refusal_words_is_ever_bad_credentials(variant: Variant, text: str) -> None:
    assume(not any(word in text for word in ("密码错误", "无此用户", "用户不存在")))
    page = sim.error_page(text, variant).encode("gbk", errors="replace")
    parse_login_answer(page, sim.content_type(variant))  # neither refused nor a login form
    with pytest.raises(SchoolPageError) as caught:
        parse_login_account(page, STUDENTS[0], sim.content_type(variant))
    assert caught.value.kind == "login"


# --- data pages -------------------------------------------------------------------


@quick
@given(variant=variants, markup=markups, stuid=students)
def test_account_page_reads_the_same(variant: Variant, markup: sim.Markup, stuid: str) -> None:
    st_ = student(stuid)
    account = sim.Account(st_, money(DATASET.balance(st_, NOW)))
    plain = parse_account(*_with_id(sent(sim.account_page(account, markup), "plain"), stuid))
    other = parse_account(
        *_with_id(sent(sim.account_page(account, markup, variant), variant), stuid)
    )
    assert other == plain
    assert plain.name == st_.name and plain.card_number == st_.card_number


def _with_id(page: tuple[bytes, str], stuid: str) -> tuple[bytes, str, str]:
    return page[0], stuid, page[1]


@quick
@given(variant=variants, markup=markups)
def test_query_forms_read_the_same(variant: Variant, markup: sim.Markup) -> None:
    card = student(STUDENTS[0]).card_number
    start, end = TODAY - timedelta(days=8), TODAY - timedelta(days=1)

    def written(kind: str, v: Variant) -> tuple[bytes, str]:
        if kind == "today":
            return sent(sim.account_form("/accounttodatTrjnObject.action", card, "当日", v), v)
        if kind == "history":
            return sent(sim.date_form("/accounthisTrjn2.action", start, end, v), v)
        return sent(sim.wait_page("?__continue=ab12", "?__continue=ab12", v), v)

    for kind in ("today", "history", "wait"):
        plain = parse_forms(*written(kind, "plain"), kind)
        assert plain and plain == parse_forms(*written(kind, variant), kind)
        assert not is_result_page(*written(kind, variant))


@quick
@given(variant=variants)
def test_error_pages_mean_the_same(variant: Variant) -> None:
    with pytest.raises(QueryRejected):
        parse_result(*_offset(sent(sim.error_page(sim.DATE_ERROR, variant), variant)))
    with pytest.raises(SchoolPageError) as caught:
        parse_result(*_offset(sent(sim.error_page(sim.STEP_ERROR, variant), variant)))
    assert caught.value.kind == "result"
    with pytest.raises(SessionExpired):
        parse_account(*_with_id(sent(sim.login_page(variant=variant), variant), STUDENTS[0]))


def _offset(page: tuple[bytes, str]) -> tuple[bytes, timedelta, str]:
    return page[0], OFFSET, page[1]


def _result(
    variant: Variant, markup: sim.Markup, stuid: str, days: int, page: int, history: bool
) -> ResultPage:
    st_ = student(stuid)
    rows = DATASET.rows(st_, NOW, -55, TODAY - timedelta(days=days), TODAY)
    paging = (
        sim.Paging("/accountconsubBrows.action", "pageNum", (("inputStartDate", "20261101"),))
        if history
        else sim.Paging("/accounttodatTrjnObject.action", "pageVo.pageNum", (("account", "1"),))
    )
    size = 10
    page = min(page, sim.page_count(len(rows), size))
    html = sim.result_page(rows, st_, page, size, markup, paging, "总计交易额为", variant)
    return parse_result(*_offset(sent(html, variant)))


@quick
@given(
    variant=variants,
    markup=markups,
    stuid=students,
    days=st.integers(0, 12),
    page=st.integers(1, 4),
    history=st.booleans(),
)
def test_result_pages_read_the_same(
    variant: Variant, markup: sim.Markup, stuid: str, days: int, page: int, history: bool
) -> None:
    plain = _result("plain", markup, stuid, days, page, history)
    assert _result(variant, markup, stuid, days, page, history) == plain
    assert plain.forms  # the paging form is read too


@quick
@given(variant=st.sampled_from(["legacy", "bare"]), markup=markups, data=st.data())
def test_a_result_page_cut_before_its_table_ends_is_truncated(
    variant: Variant, markup: sim.Markup, data: st.DataObject
) -> None:
    """Pages without </html> are whole only when their tables and forms are closed."""
    st_ = student(STUDENTS[1])
    rows = DATASET.rows(st_, NOW, -55, TODAY - timedelta(days=6), TODAY)
    html = sim.result_page(rows, st_, 1, 10, markup, sim.Paging("/p", "pageNum"), "", variant)
    body, ctype = sent(html, variant)
    table_end = body.lower().rindex(b"</table>") + len(b"</table>")
    cut = data.draw(st.integers(0, table_end - 1))
    with pytest.raises(SchoolPageError) as caught:
        parse_result(body[:cut], OFFSET, ctype)
    assert caught.value.kind == "result"


def test_labels_are_read_by_their_text_whatever_holds_them() -> None:
    """Half-width colons, &nbsp; padding, any element in the cell, a label sharing its cell."""
    page = (
        "<TABLE><TR><TD><SPAN>姓&nbsp;&nbsp;名 :</SPAN><TD>张三"
        "<TR><TD><FONT>学&#24037;号:</FONT><TD>\n 2012052690 \n"
        "<TR><TD><b>帐　号：</b></TD><TD><div>123456</div></TD>"
        "<TR><TD colspan=2>余额：1,234.50元（卡余额）</TABLE>"
    ).encode("gbk")
    info = parse_account(page, "2012052690")
    assert (info.name, info.student_id, info.card_number) == ("张三", "2012052690", "123456")
    assert str(info.balance) == "1234.50"
