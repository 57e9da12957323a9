"""The card center's HTML pages, exactly as docs/card-center-protocol.md shows them."""

from datetime import date
from html import escape

from schoolsim.dataset import Row, Student, money

_HEAD = (
    "<html><head>"
    '<meta http-equiv="Content-Type" content="text/html; charset=gbk">\n'
    "<title>{title}</title></head><body>\n"
)
_TAIL = "</body></html>\n"

STEP_ERROR = "请按步骤查询"
DATE_ERROR = "查询日期不合法"
EXPIRED_ERROR = "验证码已过期，请刷新页面"
WRONG_PASSWORD = "密码错误"  # noqa: S105 - an error message, not a secret
NO_USER = "无此用户"

_HEADERS = (
    "交易发生时间",
    "交易类型",
    "子系统名称",
    "电子账户",
    "交易额",
    "现有余额",
    "次数",
    "状态",
)


def _page(title: str, body: str) -> str:
    return _HEAD.format(title=title) + body + _TAIL


def login_page(error: str = "") -> str:
    """The home/login page, with an optional error message."""
    return _page(
        "校园卡用户服务中心",
        '<form name="form1" method="post" action="/loginstudent.action">\n'
        '  <input type="text" name="name"> <input type="password" name="passwd" readonly>\n'
        '  <img id="imgpasswd" src="/getpasswdPhoto.action">\n'
        '  <input type="text" name="rand"> <img src="/getCheckpic.action?rand=8000">\n'
        '  <input type="hidden" name="loginType" value="2">\n'
        '  <input type="hidden" name="userType" value="1">\n'
        "</form>\n"
        f'<p id="errorInfo">{escape(error)}</p>\n',
    )


def welcome_page(name: str) -> str:
    """The frame page after a successful login."""
    return _page(
        "校园卡用户服务中心",
        '<div id="top"><div id="welcome">欢迎您，'
        f'<span class="name">{escape(name)}</span></div></div>\n'
        '<div id="menu"><ul>\n'
        '<li><a href="/accountcardUser.action">账户信息</a></li>\n'
        '<li><a href="/accounttodayTrjn.action">当日流水</a></li>\n'
        '<li><a href="/accounthisTrjn.action">历史流水</a></li>\n'
        "</ul></div>\n"
        '<iframe name="mainFrame" src="/accountcardUser.action"></iframe>\n',
    )


def account_page(st: Student, balance: str) -> str:
    """The account info table (two label/value pairs per row, like the original)."""
    cells = [
        ("姓　　名：", escape(st.name)),
        ("学 工 号：", st.stuid),
        ("卡　　号：", st.card_number),
        ("身份类型：", st.identity),
        ("所属部门：", st.department),
        ("卡状态：", "正常"),
    ]
    rows = []
    for i in range(0, len(cells), 2):
        pairs = "".join(
            f'<td class="neiwen" align="right">{label}</td><td class="neiwen">{value}</td>'
            for label, value in cells[i : i + 2]
        )
        rows.append(f"<tr>{pairs}</tr>\n")
    rows.append(
        '<tr><td class="neiwen" align="right">余　　额：</td>'
        f'<td class="neiwen" colspan="3">{balance}元（卡余额）0.00元(当前过渡余额)'
        "0.00元(上次过渡余额)</td></tr>\n"
    )
    return _page(
        "账户信息",
        '<table class="neiwen" width="100%" border="0" cellspacing="1">\n'
        + "".join(rows)
        + "</table>\n",
    )


def account_form(action: str, card_number: str) -> str:
    """The account-choice form that starts the today and history chains."""
    return _page(
        "流水查询",
        f'<form id="accounthisTrjn" name="form1" action="{action}" method="post">\n'
        '<select name="account">'
        f'<option value="{card_number}">{card_number}[主卡]</option></select>\n'
        '<input type="hidden" name="inputObject" value="all">\n'
        '<input type="submit" value="查询">\n'
        "</form>\n",
    )


def date_form(start: date, end: date) -> str:
    """The history date-range form with its defaults."""
    return _page(
        "历史流水查询",
        '<form name="form1" action="/accounthisTrjn2.action" method="post">\n'
        f'起始日期：<input name="inputStartDate" value="{start:%Y%m%d}">\n'
        f'结束日期：<input name="inputEndDate" value="{end:%Y%m%d}">\n'
        '<input type="submit" value="查询">\n'
        "</form>\n",
    )


def wait_page() -> str:
    """The "please wait" page that submits itself to accounthisTrjn3."""
    return _page(
        "历史流水查询",
        "<p>正在查询，请稍候...</p>\n"
        '<form id="form1" action="/accounthisTrjn3.action" method="post"></form>\n'
        '<script type="text/javascript">document.getElementById("form1").submit();</script>\n',
    )


def error_page(message: str) -> str:
    """A card center error page (no login form)."""
    return _page("错误", f'<p id="errorInfo">{escape(message)}</p>\n')


def _row(row: Row, css: str) -> str:
    cells = (
        f"{row.time:%Y/%m/%d %H:%M:%S}",
        row.way,
        escape(row.position),
        "1",
        money(row.amount),
        money(row.balance_after),
        str(row.count),
        "正常",
    )
    return f'<tr class="{css}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>\n"


def result_page(rows: list[Row], page: int, page_size: int) -> str:
    """Page `page` (1-based, already clamped) of a query's rows, with the pager."""
    total = len(rows)
    pages = page_count(total, page_size)
    chunk = rows[(page - 1) * page_size : page * page_size]
    body = [
        '<table class="dgrid" width="100%" border="0" cellspacing="1">\n',
        '<tr class="dgrid_header">' + "".join(f"<td>{h}</td>" for h in _HEADERS) + "</tr>\n",
    ]
    body += [_row(r, "listbg" if i % 2 == 0 else "listbg2") for i, r in enumerate(chunk)]
    body.append("</table>\n")
    body.append(f'<div id="pager">共{total}条记录&nbsp;&nbsp;当前第{page}页/共{pages}页</div>\n')
    return _page("流水查询结果", "".join(body))


def page_count(total: int, page_size: int) -> int:
    """Number of result pages for total rows (at least 1)."""
    return max(1, -(-total // page_size))


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
