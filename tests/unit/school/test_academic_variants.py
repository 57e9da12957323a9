"""Academic office pages in every markup variant (schoolsim/variants.py): each page the
simulator writes reads to the same facts as its `plain` rendering, and each login
answer to the same outcome. A difference means the client depends on how the
simulator writes a page, not on what the page says."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from school.errors import InvalidCredentials, SchoolPageError, SchoolServerError
from schoolsim.academic import pages as sim
from schoolsim.academic.dataset import Dataset
from schoolsim.variants import VARIANTS, Variant
from systems.academic.pages import (
    CaptchaRefused,
    asp_form,
    login_messages,
    login_page,
    login_texts,
    parse_exam_page,
    parse_grades,
    parse_login_answer,
    parse_timetable,
    read,
)

DATASET = Dataset(2013)
YEARS = [f"{y}-{y + 1}" for y in range(2005, 2021)]
VIEWSTATE, VALIDATION = "/wEPDwUKMTY1NDU2MTA1MmRk", "/wEWBAKx8vTqDwLyj/OQAgK1qbSRCw=="
LOGIN_URL = "http://office.test/jwc/login.aspx"
HOME_URL = "http://office.test/jwc/Secure/default.aspx"
NOT_VARIANTS = [v for v in VARIANTS if v != "plain"]

students = st.builds(
    lambda year, number: f"{year}{number:06d}",
    st.integers(2000, 2019),
    st.integers(0, 999_999),
)
terms = st.tuples(st.integers(2012, 2019), st.sampled_from((1, 2)))


def served(html: str, variant: Variant) -> tuple[bytes, str]:
    """The page as the simulator sends it: GBK bytes, and its Content-Type."""
    declared = sim.charset_declared_in_header(variant)
    return html.encode("gbk"), "text/html; charset=gbk" if declared else "text/html"


def term_texts(year: int, term: int) -> tuple[str, str]:
    return f"{year}-{year + 1}", sim.TERM_NAMES[term - 1]


def form_of(html: str, variant: Variant, kind: str) -> Any:
    return asp_form(read(*served(html, variant), kind), kind)


# --- what every variant must keep ---------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(stuid=students, asked=terms)
def test_timetable_grid_reads_the_same_in_every_variant(stuid: str, asked: tuple[int, int]) -> None:
    year_text, term_text = term_texts(*asked)
    courses = DATASET.term(stuid, *asked).courses
    read_by_variant = {
        v: parse_timetable(
            *served(
                sim.timetable_page(VIEWSTATE, VALIDATION, YEARS, year_text, term_text, courses, v),
                v,
            ),
            year_text,
            term_text,
            16,
        )
        for v in VARIANTS
    }
    plain = read_by_variant["plain"]
    assert [(c.course_id, c.name, c.schedule, c.place) for c in plain] == [
        (c.course_id, c.name, c.schedule, c.place) for c in courses
    ]
    for variant in NOT_VARIANTS:
        assert read_by_variant[variant] == plain, variant


@settings(max_examples=25, deadline=None)
@given(stuid=students, asked=terms)
def test_grades_read_the_same_in_every_variant(stuid: str, asked: tuple[int, int]) -> None:
    year_text, term_text = term_texts(*asked)
    grades = DATASET.term(stuid, *asked).grades
    read_by_variant = {
        v: parse_grades(
            *served(
                sim.grades_page(VIEWSTATE, VALIDATION, YEARS, year_text, term_text, grades, v), v
            ),
            year_text,
            term_text,
        )
        for v in VARIANTS
    }
    plain = read_by_variant["plain"]
    assert [(g.code, g.score_text) for g in plain] == [(g.code, g.score) for g in grades]
    for variant in NOT_VARIANTS:
        assert read_by_variant[variant] == plain, variant


@settings(max_examples=25, deadline=None)
@given(stuid=students, asked=terms)
def test_exam_report_reads_the_same_in_every_variant(stuid: str, asked: tuple[int, int]) -> None:
    year_text, term_text = term_texts(*asked)
    exams = DATASET.term(stuid, *asked).exams
    read_by_variant = {
        v: parse_exam_page(*served(sim.report_content(year_text, term_text, exams, v), v)).exams
        for v in VARIANTS
    }
    plain = read_by_variant["plain"]
    assert plain is not None
    assert [(e.course_id, e.date, e.place) for e in plain] == [
        (e.course_id, e.date, e.place) for e in exams
    ]
    for variant in NOT_VARIANTS:
        assert read_by_variant[variant] == plain, variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_query_forms_and_exam_frames_read_the_same(variant: Variant) -> None:
    year_text, term_text = term_texts(2012, 2)

    def forms(v: Variant) -> list[Any]:
        shown = (VIEWSTATE, VALIDATION, YEARS, "2012-2013", "第一学期")
        return [
            form_of(sim.timetable_page(*shown, None, v), v, "timetable"),
            form_of(sim.exams_form_page(*shown, variant=v), v, "exams"),
            form_of(sim.grades_page(*shown, None, v), v, "grades"),
            login_page(*served(sim.login_page(VIEWSTATE, VALIDATION, variant=v), v)),
        ]

    got = forms(variant)
    assert got == forms("plain")
    assert ("__VIEWSTATE", VIEWSTATE) in got[0].fields
    assert got[0].options["dlstNdxq"] == sim.TERM_NAMES
    assert got[3].button("btnLogin")

    asked = (VIEWSTATE, VALIDATION, YEARS, year_text, term_text)
    iframe = sim.exams_form_page(*asked, "../R/F.aspx?key=a1", variant)
    frameset = sim.report_frameset("KsbToolbar.aspx", "KsbContent.aspx?key=a1", variant)
    assert parse_exam_page(*served(iframe, variant)).next_url == "../R/F.aspx?key=a1"
    assert parse_exam_page(*served(frameset, variant)).next_url == "KsbContent.aspx?key=a1"
    # A query answered for our term without a grid: nothing that term.
    empty_timetable = sim.timetable_page(*asked, None, variant)
    empty_grades = sim.grades_page(*asked, [], variant)
    assert parse_timetable(*served(empty_timetable, variant), year_text, term_text, 16) == ()
    assert parse_grades(*served(empty_grades, variant), year_text, term_text) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_error_pages_are_never_data(variant: Variant) -> None:
    year_text, term_text = term_texts(2012, 1)
    with pytest.raises(SchoolServerError):
        parse_timetable(*served(sim.server_busy(503, variant), variant), year_text, term_text, 16)
    for page in (sim.not_found(variant), sim.aspnet_error("报表已过期", "gone", variant)):
        with pytest.raises(SchoolPageError) as caught:
            parse_timetable(*served(page, variant), year_text, term_text, 16)
        assert caught.value.kind == "timetable"
        with pytest.raises(SchoolPageError) as caught:
            parse_exam_page(*served(page, variant))
        assert caught.value.kind == "exams"


# --- login outcomes -------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_login_outcomes_in_every_variant(variant: Variant) -> None:
    def answer(message: str) -> None:
        page = sim.login_page(VIEWSTATE, VALIDATION, message, variant)
        parse_login_answer(*served(page, variant), LOGIN_URL)

    with pytest.raises(InvalidCredentials) as refused:
        answer(sim.WRONG_PASSWORD)
    assert refused.value.reason == "wrong_password"
    with pytest.raises(InvalidCredentials) as refused:
        answer(sim.NO_USER)
    assert refused.value.reason == "unknown_student"
    with pytest.raises(CaptchaRefused):
        answer(sim.WRONG_CAPTCHA)
    home = served(sim.home_page(variant), variant)
    assert parse_login_answer(*home, HOME_URL) is None
    # The frame set is a logged-in page wherever it was reached.
    assert parse_login_answer(*home, LOGIN_URL) is None


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "message",
    [
        "",
        "系统维护中，请稍后再试！",
        "您的账号已被锁定",
        "请输入验证码",
        "Object reference not set",
    ],
)
def test_login_form_without_a_known_message_is_an_unknown_outcome(
    variant: Variant, message: str
) -> None:
    page = sim.login_page(VIEWSTATE, VALIDATION, message, variant)
    with pytest.raises(SchoolPageError) as caught:
        parse_login_answer(*served(page, variant), LOGIN_URL)
    assert caught.type is SchoolPageError  # neither CaptchaRefused nor a wrong password
    assert caught.value.kind == "login"


@settings(max_examples=60, deadline=None)
@given(
    variant=st.sampled_from(VARIANTS),
    message=st.text(
        alphabet="系统维护中请稍后再试您的账号已被锁定用户名验证码：，！ ", max_size=20
    ),
)
def test_a_message_that_refuses_nothing_is_never_a_refusal(variant: Variant, message: str) -> None:
    page = sim.login_page(VIEWSTATE, VALIDATION, message, variant)
    with pytest.raises(SchoolPageError) as caught:
        parse_login_answer(*served(page, variant), LOGIN_URL)
    assert caught.type is SchoolPageError
    assert caught.value.kind == "login"


def test_field_labels_in_spans_are_not_messages() -> None:
    # As asp:Label renders them: every label a <span>, the message one more.
    page = (
        '<html><body><form name="Form1" method="post" action="login.aspx" id="Form1">'
        '<input type="hidden" name="__VIEWSTATE" value="/wEPDwUK" />'
        '<span id="Label1">用户名：</span><input name="txtYHBS" />'
        '<span id="Label2">密码：</span><input name="txtYHMM" type="password" />'
        '<span id="Label3">验证码：</span><input name="txtFJM" /><img src="ValidateCode.aspx" />'
        '<input type="submit" name="btnLogin" value="登录" />'
        '<span id="lblMsg"><font color="red">{msg}</font></span></form></body></html>'
    )
    with pytest.raises(InvalidCredentials) as refused:
        parse_login_answer(page.replace("{msg}", "<b>密码</b>不正确"), None, LOGIN_URL)
    assert refused.value.reason == "wrong_password"
    # One message for both (as many sites word it): refused credentials all the same.
    with pytest.raises(InvalidCredentials) as refused:
        parse_login_answer(page.replace("{msg}", "用户名或密码错误"), None, LOGIN_URL)
    assert refused.value.reason == "wrong_password"
    with pytest.raises(InvalidCredentials) as refused:
        parse_login_answer(page.replace("{msg}", "该用户不存在"), None, LOGIN_URL)
    assert refused.value.reason == "unknown_student"
    with pytest.raises(CaptchaRefused):
        parse_login_answer(page.replace("{msg}", "验证码输入有误"), None, LOGIN_URL)
    with pytest.raises(SchoolPageError) as caught:
        parse_login_answer(page.replace("{msg}", ""), None, LOGIN_URL)
    assert caught.type is SchoolPageError and caught.value.kind == "login"
    # Two messages that disagree: not ours to choose.
    with pytest.raises(SchoolPageError) as caught:
        parse_login_answer(
            page.replace("{msg}", "密码错误</font><font>验证码错误"), None, LOGIN_URL
        )
    assert caught.type is SchoolPageError and caught.value.kind == "login"


@pytest.mark.parametrize("variant", VARIANTS)
def test_texts_the_form_always_shows_are_not_messages(variant: Variant) -> None:
    # A hint the office might print on its form at all times (guess): it names the
    # password and an error, but says nothing about this login.
    hint = "<p>密码错误五次将锁定账号</p>"

    def page(message: str) -> tuple[bytes, str]:
        html = sim.login_page(VIEWSTATE, VALIDATION, message, variant)
        return served(html.replace("</form>", hint + "</form>", 1), variant)

    before = login_texts(*page(""))
    with pytest.raises(CaptchaRefused):
        parse_login_answer(*page(sim.WRONG_CAPTCHA), LOGIN_URL, before)
    with pytest.raises(InvalidCredentials) as refused:
        parse_login_answer(*page(sim.NO_USER), LOGIN_URL, before)
    assert refused.value.reason == "unknown_student"
    with pytest.raises(SchoolPageError) as caught:
        parse_login_answer(*page(""), LOGIN_URL, before)
    assert caught.type is SchoolPageError and caught.value.kind == "login"


def test_login_messages_are_found_wherever_they_are() -> None:
    page = sim.login_page(VIEWSTATE, VALIDATION, sim.WRONG_PASSWORD, "modern")
    tree_messages = login_messages(LexborHTMLParser(page))
    # The asp:Label and the alert() both carry it; the labels stay labels.
    assert tree_messages.count("密码错误，请重新输入！") == 2
    assert "验证码：" in tree_messages


def test_modern_login_answers_have_the_sizes_2013_saw() -> None:
    def size(message: str) -> int:
        return len(sim.login_page(VIEWSTATE, VALIDATION, message, "modern").encode("gbk"))

    assert size(sim.WRONG_PASSWORD) == sim.LOGIN_SIZE_WRONG_PASSWORD == 7819
    assert size(sim.WRONG_CAPTCHA) == sim.LOGIN_SIZE_WRONG_CAPTCHA == 8792
    assert len(sim.home_page("modern").encode("gbk")) == sim.LOGIN_SIZE_OK == 1325


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_traits_are_there(variant: Variant) -> None:
    page = sim.login_page(VIEWSTATE, VALIDATION, sim.WRONG_PASSWORD, variant)
    if variant == "legacy":
        assert "<FONT" in page and "<TD>" in page and "</html>" not in page.lower()
        assert "charset=" in page
    elif variant == "modern":
        assert '<span id="lblFJM">验证码：</span>' in page and "alert(" in page
    elif variant == "bare":
        assert "charset" not in page and "</html>" not in page and "&#" in page
    else:
        assert page.endswith("</html>")
