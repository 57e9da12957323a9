"""Redacting an unreadable school page (school/capture.py): the markup stays, what the
page says about anyone does not."""

from __future__ import annotations

import string

from hypothesis import assume, given
from hypothesis import strategies as st

from school.capture import PageTrail, following, note, redact, redact_url
from school.errors import SchoolPageError
from services.captures import page_kind

ACCOUNT_PAGE = (
    '<HTML><HEAD><META http-equiv="Content-Type" content="text/html; charset=GBK">'
    "<TITLE>校园卡</TITLE></HEAD><BODY><TABLE class=main>"
    "<TR><TD class=neiwen>姓名：<TD class=neiwen>{name}"
    "<TR><TD class=neiwen>学号：<TD class=neiwen>{number}"
    "<TR><TD class=neiwen>余额：<TD class=neiwen>{balance}元（卡余额）"
    '<TR><TD><input type="hidden" name="__VIEWSTATE" value="{token}">'
    '<input type=password name=passwd value="{password}">'
    '<input type="submit" value="查询">'
    '<a href="accounthisTrjn.action?account={number}&amp;date=20261207">下一页</a>'
    "<script>alert('密码错误，请重新输入！');</script>"
    "<!-- {email} --></TABLE></BODY></HTML>"
)

names = st.text(alphabet="张王李赵刘陈杨黄周吴小明华丽军伟芳娜", min_size=2, max_size=4)
numbers = st.text(alphabet=string.digits, min_size=6, max_size=12).filter(lambda s: s.strip("0"))
tokens = st.text(alphabet=string.ascii_letters + string.digits + "+/", min_size=16, max_size=80)
passwords = st.text(alphabet=string.printable.strip(), min_size=6, max_size=20)


balances = st.decimals(0, 9999, places=2).filter(lambda d: str(d).strip("0."))


@given(names, numbers, balances, tokens, passwords)
def test_nothing_said_about_the_student_survives(
    name: str, number: str, balance: object, token: str, password: str
) -> None:
    assume(any(c.isdigit() for c in token) and any(c.isalpha() for c in token))
    page = ACCOUNT_PAGE.format(
        name=name,
        number=number,
        balance=balance,
        token=token,
        password=password.replace('"', "").replace("&", ""),
        email=f"{number}@stu.example.edu.cn",
    )
    out, cut = redact(page, 100_000)
    assert not cut
    # The secrets are not in what surrounds them in the kept copy, so their absence
    # means they were taken out, not that a template word hid them.
    for secret in (name, number, str(balance), token, f"{number}@stu.example.edu.cn"):
        assume(secret not in redact(ACCOUNT_PAGE, 100_000)[0])
        assert secret not in out, secret
    if len(password.replace('"', "").replace("&", "")) >= 6:
        assert f'value="{password}"' not in out


def test_the_markup_and_the_words_a_client_looks_for_stay() -> None:
    page = ACCOUNT_PAGE.format(
        name="张小明",
        number="2010204060",
        balance="36.50",
        token="Zm9vYmFyYmF6MTIzNDU2Nzg5",
        password="052690",
        email="zxm@example.edu.cn",
    )
    out, _ = redact(page, 100_000)
    assert out.count("<TR>") == page.count("<TR>")
    assert 'class="neiwen"' in out and 'name="__VIEWSTATE"' in out and 'name="passwd"' in out
    assert "余额：" in out and "姓名：" in out and "元（卡余额）" in out
    assert "alert('密码错误，请重新输入！')" in out
    assert 'value="查询"' in out
    # Field values: the length of a hidden one, nothing of the password.
    assert 'value="[24 chars]"' in out and "052690" not in out
    assert 'href="accounthisTrjn.action?account=&date="' in out
    assert "张小明" not in out and "＊＊＊" in out


def test_a_long_page_is_cut_and_says_so() -> None:
    out, cut = redact("<p>余额</p>" * 10_000, 2048)
    assert cut and len(out) == 2048


def test_urls_keep_their_query_names_only() -> None:
    assert (
        redact_url("http://card.example/accountcardUser.action?name=2010204060&passwd=520675")
        == "http://card.example/accountcardUser.action?name=&passwd="
    )


def test_a_trail_keeps_the_last_answer_and_the_field_names_only() -> None:
    note("GET", "http://x/outside", None, 200, None, b"ignored")  # no trail: nothing
    with following() as trail:
        note("GET", "http://x/a", None, 200, "text/html", b"<p>a</p>")
        note("POST", "http://x/b", [("name", "2010"), ("passwd", "520675")], 200, None, b"b")
    assert isinstance(trail, PageTrail) and trail.received == 2
    assert trail.last is not None
    assert trail.last.form_names == ("name", "passwd")
    assert "520675" not in repr(trail.last)
    assert trail.paths == ["GET /a", "POST /b"]


def test_page_kinds_are_bounded_labels() -> None:
    assert page_kind(SchoolPageError("x", kind="balance")) == "balance"
    assert page_kind(SchoolPageError("x")) == "other"
    assert page_kind(SchoolPageError("x", kind="Bad Kind/../")) == "other"
    assert page_kind(SchoolPageError("x", kind="a" * 40)) == "other"
