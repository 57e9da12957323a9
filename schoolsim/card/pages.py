"""The card center's HTML pages, in two markups: the 2013 card center and the later platform.

What each page rests on is said beside it: "evidence" names what the 2013
jnu.fm client or a public client of the same platform at another school shows
(docs/card-center-protocol.md lists them), "guess" is ours. Where the evidence
says nothing (page titles, most layout), the markup is plain and a client must
not depend on it.

Every page is written in each markup variant of schoolsim/variants.py (the
`variant` argument): the facts stay, only the markup changes. Each variant's
traits are marked evidence or guess where they are written (`_page`, `_label`,
`content_type`); docs/card-center-protocol.md tabulates them.
"""

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from html import escape
from typing import Literal

from schoolsim.card.dataset import Row, Student, money
from schoolsim.variants import Variant, char_refs, open_tags, padding, upper_tags

Markup = Literal["2013", "platform"]

_HEAD = (
    "<html><head>"
    '<meta http-equiv="Content-Type" content="text/html; charset=gbk">\n'
    "<title>{title}</title></head><body>\n"
)
_TAIL = "</body></html>\n"

# Error texts. The two login failures are the later platform's own words
# (evidence: clients at other schools match them); the others are guesses.
STEP_ERROR = "请按步骤查询"
DATE_ERROR = "查询日期不合法"
EXPIRED_ERROR = "验证码已过期，请刷新页面"
WRONG_PASSWORD = "登陆失败，密码错误"  # noqa: S105 - an error message, not a secret
NO_USER = "登陆失败，无此用户名称！"

# The query-kind select (evidence: a 2015 client reads the first option "all" of
# the second select; the other values are those it lists).
_KINDS = (
    ("all", "查询全部"),
    ("13", "存款"),
    ("14", "取款"),
    ("15", "消费"),
    ("16", "转帐"),
    ("17", "补助"),
    ("18", "扣款"),
)
# The submit button every query form has (evidence: clients post
# `Submit=+%C8%B7+%B6%A8+`, " 确 定 " in GBK).
_SUBMIT = '<input type="submit" name="Submit" value=" 确 定 ">'


# Guess: how large a later server's page is with its banners and scripts (no
# evidence records the card center's page sizes); modern pages are padded to it.
_MODERN_SIZE = 9000
_MODERN_HEAD = (
    '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="gbk">\n'
    '<meta http-equiv="X-UA-Compatible" content="IE=edge">\n'
    '<link rel="stylesheet" type="text/css" href="css/style.css">\n'
    "<title>{title}</title>\n</head>\n<body>\n"
)
_MODERN_FOOT = (
    '<div class="footer">版权所有 &copy; 暨南大学 校园卡管理中心</div>\n'
    '<script type="text/javascript" src="js/common.js"></script>\n'
)
_BARE_HEAD = "<html><head><title>{title}</title></head><body>\n"
# Attribute values HTML lets a page leave unquoted (no spaces, quotes, = < > ` or /).
_QUOTED = re.compile(r'(\s[a-zA-Z-]+)="([A-Za-z0-9_.#%-]+)"')
_CELL_OPEN = re.compile(r"(<td\b[^>]*>)")


def content_type(variant: Variant = "plain") -> str:
    """The HTTP Content-Type of a page in this variant.

    plain, modern: the charset in the header (evidence: pages are GBK, declared
    in the header). legacy: only in the page's <meta>; bare: nowhere, the bytes
    stay GBK (both guesses: servers that say less than the evidence shows).
    """
    if variant in ("legacy", "bare"):
        return "text/html"
    return "text/html;charset=GBK"


def _label(text: str, variant: Variant) -> str:
    """A label or a message (already escaped), as the variant writes it.

    All guesses (the evidence says nothing of the elements around labels):
    legacy in <font>, modern in <span>, bare as bare text with some characters
    as character references and spaces as &nbsp;.
    """
    if variant == "legacy":
        return f'<font color="#333333">{text}</font>'
    if variant == "modern":
        return f'<span class="label">{text}</span>'
    if variant == "bare":
        return char_refs(text).replace("\u3000", "&nbsp;").replace(" ", "&nbsp;")
    return text


def _page(title: str, body: str, variant: Variant = "plain") -> str:
    """The whole page around a body, as the variant writes it (plain: as always)."""
    if variant == "legacy":
        # Guess, each trait: tag names in upper case, attribute values unquoted,
        # optional end tags left out (also </body></html>), the charset only in
        # the <meta> (content_type).
        page = _QUOTED.sub(r"\1=\2", _HEAD.format(title=title) + body + _TAIL)
        return open_tags(upper_tags(page))
    if variant == "modern":
        # Guess, each trait: <meta charset> beside the header's charset, line
        # breaks and indentation inside cells, banners and scripts around the
        # content, padded to a later server's page size.
        spread = _CELL_OPEN.sub("\\1\n\t\t\t", body).replace("</td>", "\n\t\t</td>")
        main = f'<div id="main">\n{spread}</div>\n'
        core = _MODERN_HEAD.format(title=title) + main + _MODERN_FOOT + _TAIL
        return (
            _MODERN_HEAD.format(title=title)
            + padding(_MODERN_SIZE - len(core))
            + main
            + _MODERN_FOOT
            + _TAIL
        )
    if variant == "bare":
        # Guess: no charset declared anywhere (content_type), no </body></html>.
        return _BARE_HEAD.format(title=title) + body
    return _HEAD.format(title=title) + body + _TAIL


def login_page(error: str = "", variant: Variant = "plain") -> str:
    """The login page (the home page, and every data URL of a session not logged in).

    Fields: evidence (2013 posted name, passwd, rand, loginType=2, userType=1;
    later clients also post the image button's imageField.x/.y). Layout: guess.
    """
    v = variant
    message = f'<p class="biaotou">{_label(escape(error), v)}</p>\n' if error else ""
    return _page(
        "校园卡用户服务中心",
        '<form name="form1" method="post" action="loginstudent.action">\n'
        f'<table class="login"><tr><td>{_label("学（工）号：", v)}</td>'
        '<td><input type="text" name="name" size="18"></td></tr>\n'
        f"<tr><td>{_label('查询密码：', v)}</td>"
        '<td><input type="password" name="passwd" size="18" readonly>'
        '<img id="imgpasswd" src="getpasswdPhoto.action" alt="密码小键盘"></td></tr>\n'
        f'<tr><td>{_label("验 证 码：", v)}</td><td><input type="text" name="rand" size="6">'
        '<img src="getCheckpic.action?rand=8000"></td></tr>\n'
        '<tr><td colspan="2"><input type="hidden" name="loginType" value="2">'
        '<input type="hidden" name="userType" value="1">'
        '<input type="image" name="imageField" src="images/login.gif"></td></tr>\n'
        "</table></form>\n" + message,
        v,
    )


def frame_page(name: str, markup: Markup, variant: Variant = "plain") -> str:
    """What a successful login answers: the logged-in frame (guess: no client reads it).

    A later client judged success by "持卡人" in it, so it says so.
    """
    main = "accountcardUser.action"
    if markup == "platform":
        main = "pages/card/cardMain.jsp"
    return _page(
        "校园卡用户服务中心",
        f'<div class="top">{_label("持卡人：", variant)}{escape(name)}</div>\n'
        '<ul class="menu">\n'
        '<li><a href="accountcardUser.action" target="mainFrame">账户信息</a></li>\n'
        '<li><a href="accounttodayTrjn.action" target="mainFrame">当日流水</a></li>\n'
        '<li><a href="accounthisTrjn.action" target="mainFrame">历史流水</a></li>\n'
        "</ul>\n"
        f'<iframe name="mainFrame" src="{main}"></iframe>\n',
        variant,
    )


@dataclass(frozen=True)
class Account:
    """What the account page shows of one student."""

    student: Student
    balance: str


def _balance_text(balance: str, variant: Variant) -> str:
    # Evidence: the 2013 reference sample and a later client's comment. Bare:
    # some of it as character references (guess).
    text = f"{balance}元（卡余额）0.00元(当前过渡余额)0.00元(上次过渡余额)"
    return char_refs(text, every=2) if variant == "bare" else text


def account_page(account: Account, markup: Markup, variant: Variant = "plain") -> str:
    """The account page: label and value cells, two pairs a row, the balance last."""
    st = account.student
    if markup == "2013":
        # Evidence: every cell is td.neiwen, labels hold a full-width colon, the
        # balance cell holds 余额 and the amount before the first 元. Labels and
        # their order: guess.
        pairs = [
            ("姓　　名：", escape(st.name)),
            ("帐　　号：", st.card_number),
            ("学 工 号：", st.stuid),
            ("身份类型：", st.identity),
            ("所属部门：", st.department),
            ("卡 状 态：", "正常"),
        ]
        cells = [
            f'<td class="neiwen" align="right">{_label(label, variant)}</td>'
            f'<td class="neiwen">{value}</td>'
            for label, value in pairs
        ]
        balance = (
            f'<td class="neiwen" align="right">{_label("余　　额：", variant)}</td>'
            f'<td class="neiwen" colspan="3">{_balance_text(account.balance, variant)}</td>'
        )
    else:
        # Evidence (later platform, several schools): values sit in
        # <div align="left"> inside td.neiwen (name first, the account number
        # second, the student number fourth, identity tenth, department
        # fourteenth), labels are padded with spaces ("卡  状  态：", "余    额："),
        # the balance is the bare text of its td.neiwen. The other labels: guess.
        pairs = [
            ("姓    名：", escape(st.name)),
            ("帐    号：", st.card_number),
            ("性    别：", "男" if int(st.stuid[-1]) % 2 else "女"),
            ("学 工 号：", st.stuid),
            ("卡 类 型：", "学生卡"),
            ("卡  状  态：", "正常"),
            ("冻结状态：", "正常"),
            ("挂失状态：", "正常卡"),
            ("检查状态：", "正常"),
            ("身份类型：", st.identity),
            ("开户日期：", f"20{st.stuid[2:4]}0901"),
            ("有效日期：", f"20{int(st.stuid[2:4]) + 6:02d}0731"),
            ("银行卡号：", f"6216*********{st.card_number[-4:]}"),
            ("部门名称：", st.department),
        ]
        cells = [
            f'<td class="neiwen"><div align="right">{_label(label, variant)}</div></td>'
            f'<td class="neiwen"><div align="left">{value}</div></td>'
            for label, value in pairs
        ]
        balance = (
            f'<td class="neiwen"><div align="right">{_label("余    额：", variant)}</div></td>'
            f'<td class="neiwen" colspan="3">{_balance_text(account.balance, variant)}</td>'
        )
    rows = ["<tr>" + "".join(cells[i : i + 2]) + "</tr>\n" for i in range(0, len(cells), 2)]
    rows.append(f"<tr>{balance}</tr>\n")
    return _page(
        "账户信息",
        '<table width="100%" border="0" cellpadding="2" cellspacing="1">\n'
        + "".join(rows)
        + "</table>\n",
        variant,
    )


def account_form(
    action: str, card_number: str, title: str = "流水查询", variant: Variant = "plain"
) -> str:
    """The account-choice form that starts the today and history queries.

    Evidence: a select `account` (2013 submitted its first option), a select
    `inputObject` whose first option is `all`, the " 确 定 " button, method post.
    """
    kinds = "".join(f'<option value="{value}">{text}</option>' for value, text in _KINDS)
    return _page(
        title,
        f'<form id="accounthisTrjn" name="form1" action="{escape(action)}" method="post">\n'
        f'<table><tr><td>{_label("请选择帐号：", variant)}</td><td><select name="account">'
        f'<option value="{card_number}">{card_number}[主卡]</option></select></td></tr>\n'
        f'<tr><td>{_label("查询类型：", variant)}</td><td><select name="inputObject">'
        f"{kinds}</select></td></tr>\n"
        f'<tr><td colspan="2">{_SUBMIT}</td></tr></table>\n'
        "</form>\n",
        variant,
    )


def date_form(action: str, start: date, end: date, variant: Variant = "plain") -> str:
    """The history date-range form with its defaults (evidence: the two field names, YYYYMMDD)."""
    return _page(
        "历史流水查询",
        f'<form name="form1" action="{escape(action)}" method="post">\n'
        f"{_label('起始日期：', variant)}"
        f'<input type="text" name="inputStartDate" value="{start:%Y%m%d}">\n'
        f"{_label('结束日期：', variant)}"
        f'<input type="text" name="inputEndDate" value="{end:%Y%m%d}">\n'
        f"{_SUBMIT}\n"
        "</form>\n",
        variant,
    )


def wait_page(action: str, form_id: str = "form1", variant: Variant = "plain") -> str:
    """The "please wait" page whose form submits itself (evidence: 2013 followed it).

    The later platform's form carries its continuation in id and action
    (evidence: clients at other schools cut it out of either).
    """
    return _page(
        "历史流水查询",
        f'<p align="center">{_label("正在查询，请稍候...", variant)}</p>\n'
        f'<form id="{escape(form_id)}" name="form1" action="{escape(action)}" method="post">'
        "</form>\n"
        '<script type="text/javascript">document.form1.submit();</script>\n',
        variant,
    )


def error_page(message: str, variant: Variant = "plain") -> str:
    """A card center error page (guess: its markup; the client reads the text)."""
    return _page(
        "校园卡用户服务中心",
        f'<p class="biaotou">{_label(escape(message), variant)}</p>\n'
        '<a href="javascript:history.back()">返回</a>\n',
        variant,
    )


# Column headers. 2013 (evidence: time, kind, place, amount, balance in
# td[0..4]; header texts and the columns after them: guess). Later platform
# (evidence: ten columns at one school, amount in td[5], balance in td[6]; the
# header texts: guess, after the names clients give the columns).
_HEADERS_2013 = ("交易发生时间", "交易类型", "子系统名称", "交易额", "现有余额", "次数", "状态")
_HEADERS_PLATFORM = (
    "交易发生时间",
    "学工号",
    "姓名",
    "交易类型",
    "子系统名称",
    "交易额",
    "现有余额",
    "次数",
    "状态",
    "说明",
)


def _cells(row: Row, st: Student, markup: Markup) -> tuple[str, ...]:
    shown = f"{row.time:%Y/%m/%d %H:%M:%S}"
    if markup == "2013":
        return (
            shown,
            row.way,
            escape(row.position),
            money(row.amount),
            money(row.balance_after),
            str(row.count),
            "正常",
        )
    return (
        shown,
        st.stuid,
        escape(st.name),
        row.way,
        escape(row.position),
        money(row.amount),
        money(row.balance_after),
        str(row.count),
        "正常",
        "",
    )


@dataclass(frozen=True)
class Paging:
    """Where the next page of a result is asked for: the form the result page carries."""

    action: str
    # The page number's field name: `pageNum` (2013, history) or `pageVo.pageNum`.
    field: str
    hidden: tuple[tuple[str, str], ...] = ()


def page_count(total: int, page_size: int) -> int:
    """Number of result pages for total rows (at least 1)."""
    return max(1, -(-total // page_size))


def result_page(
    rows: list[Row],
    st: Student,
    page: int,
    page_size: int,
    markup: Markup,
    paging: Paging,
    summary: str = "总交易额为",
    variant: Variant = "plain",
) -> str:
    """Page `page` (1-based, already clamped) of a query's rows, newest first."""
    total = len(rows)
    pages = page_count(total, page_size)
    chunk = rows[(page - 1) * page_size : page * page_size]
    fields = "".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in paging.hidden
    )
    # Evidence: a form on the result page (2013 submitted "the form of the
    # previous page" once more after the history result); what it holds: guess.
    form = (
        f'<form name="pageForm" action="{escape(paging.action)}" method="post">{fields}'
        f'<input type="hidden" name="{escape(paging.field)}" value="{page}"></form>\n'
    )
    if markup == "2013":
        # Evidence: rows tr.listbg / tr.listbg2. No pager: 2013 read only the
        # first page, so nothing shows how (or whether) its pages were counted.
        body = ['<table width="100%" border="0" cellpadding="2" cellspacing="1">\n']
        body.append(
            "<tr>" + "".join(f"<td>{_label(h, variant)}</td>" for h in _HEADERS_2013) + "</tr>\n"
        )
        for i, row in enumerate(chunk):
            css = "listbg" if i % 2 == 0 else "listbg2"
            cells = "".join(f"<td>{c}</td>" for c in _cells(row, st, markup))
            body.append(f'<tr class="{css}">{cells}</tr>\n')
        body.append("</table>\n")
        return _page("流水查询结果", "".join(body) + form, variant)
    # Evidence (later platform): table#tables, the header first and the pager
    # last (clients take rows [1:-1]), the pager row tr.bl > td > div[align=center]
    # with "共N页&nbsp;&nbsp;当前第M页", a total "总交易额为:X（元）" in the last tr.bl.
    columns = len(_HEADERS_PLATFORM)
    cost = sum((r.amount for r in rows if r.amount < 0), Decimal(0))
    body = ['<table id="tables" width="100%" border="0" cellpadding="2" cellspacing="1">\n']
    body.append(
        '<tr class="bl">'
        + "".join(f'<td align="center">{_label(h, variant)}</td>' for h in _HEADERS_PLATFORM)
        + "</tr>\n"
    )
    for i, row in enumerate(chunk):
        css = "listbg" if i % 2 == 0 else "listbg2"
        cells = "".join(
            f'<td align="{"right" if j in (5, 6) else "center"}">{c}</td>'
            for j, c in enumerate(_cells(row, st, markup))
        )
        body.append(f'<tr class="{css}">{cells}</tr>\n')
    pager = (
        f"{summary}:{money(cost)}（元）&nbsp;&nbsp;"
        f"共{pages}页&nbsp;&nbsp;当前第{page}页&nbsp;&nbsp;"
    )
    body.append(
        f'<tr class="bl"><td colspan="{columns}"><div align="center">'
        f"{_label(pager, variant)}"
        '<a href="javascript:gotoPage(1)">首页</a></div></td></tr>\n'
    )
    body.append("</table>\n")
    return _page("流水查询结果", "".join(body) + form, variant)


def tomcat_error(status: int) -> str:
    """A Tomcat-style error report page for an HTTP status."""
    return (
        f"<html><head><title>Apache Tomcat/6.0.20 - Error report</title></head><body>"
        f'<h1>HTTP Status {status}</h1><hr size="1" noshade="noshade">'
        f"<p><b>type</b> Status report</p><h3>Apache Tomcat/6.0.20</h3></body></html>\n"
    )


def unavailable_page() -> str:
    """An Apache-style 503 page, as a dead backend behind the front proxy gives."""
    return (
        "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
        "<h1>Service Temporarily Unavailable</h1>"
        "<p>The server is temporarily unable to service your request.</p></body></html>\n"
    )
