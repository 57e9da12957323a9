"""The simulated academic office's HTML (ASP.NET WebForms markup, served as GBK).

Evidence (docs/academic-office-protocol.md): `<form name="Form1" method="post"
action="X.aspx" id="Form1">` with hidden `__VIEWSTATE` (`/wEP...`) and
`__EVENTVALIDATION`; the stylesheet `../../css/EduAdmXT.css`; DataGrid rows
`tr.DGItemStyle` / `tr.DGAlternatingItemStyle`; GridView `tr.GVHeaderStyle_NoWrap`
(`th scope="col"`) and `tr.GVRowStyle_NoWrap`; the grade list's columns; the
field and button names of the login, timetable and exam forms; exams behind an
iframe and a frameset, in `DIV.r11` blocks; the sizes of the login answers
(2013 told them apart by Content-Length: 1325 logged in, 7819 wrong password,
8792 wrong captcha). Everything else (header texts, messages, layout, the grade
page) is a guess.

Every page is written in one of the markup variants of schoolsim/variants.py;
`plain` is the rendering the simulator always had. What each variant changes
here, and on what it rests:

- `legacy` (guess, as an older IIS/ASP.NET 1.x site writes): upper-case tags,
  end tags left open, simple attribute values unquoted, field labels and
  messages in `<font>`, an HTML 4 doctype, the charset only in the `<meta>`.
- `modern` (guess, as a later WebForms site writes): labels and messages in
  asp:Label `<span id="lbl...">`, each message also in an `alert()` startup
  script, the charset in the header and a `<meta charset>`, a banner and
  scripts around the content, cell values on their own indented lines. The
  login answers padded to the evidence's sizes (7819 bytes for a wrong
  password, 8792 for a wrong captcha: evidence; the same 7819 for the form
  without a message and for an unknown student, 1325 for the frame set a login
  leads to: guesses).
- `bare` (guess): labels and messages in `<td>`, some CJK text as numeric
  character references, empty cells as `&nbsp;`, no charset declared anywhere
  (the bytes stay GBK), no closing `</html>`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape

from schoolsim.academic.dataset import SimCourse, SimExam, SimGrade
from schoolsim.variants import Variant, char_refs, open_tags, padding, upper_tags, without_html_end

TERM_NAMES = ("第一学期", "第二学期")
WRONG_CAPTCHA = "验证码错误，请重新输入！"
WRONG_PASSWORD = "密码错误，请重新输入！"  # noqa: S105 - a message, not a secret
NO_USER = "用户不存在！"
TIMETABLE_HEADERS = (
    "班号",
    "课程编号",
    "课程名称",
    "学分",
    "学时",
    "课程类别",
    "时间安排",
    "任课教师",
    "上课地点",
    "备注",
    "阶段",
    "考试时间",
)
GRADE_HEADERS = ("课程代码", "课程名称", "课程类别", "成绩", "学分", "学分绩点", "备注")
# Evidence: the Content-Length of the login answers 2013 saw (bytes).
LOGIN_SIZE_WRONG_PASSWORD = 7819
LOGIN_SIZE_WRONG_CAPTCHA = 8792
LOGIN_SIZE_OK = 1325

_SIMPLE_VALUE = re.compile(r'(\s[a-zA-Z-]+)="([A-Za-z0-9_.-]+)"')


def charset_declared_in_header(variant: Variant) -> bool:
    """Whether the HTTP header names the charset (legacy and bare pages do not)."""
    return variant in ("plain", "modern")


def _finish(html: str, variant: Variant) -> str:
    """The variant's whole-page traits."""
    if variant == "legacy":
        return upper_tags(open_tags(_SIMPLE_VALUE.sub(r"\1=\2", html)))
    if variant == "bare":
        return without_html_end(html)
    return html


def _head(title: str, variant: Variant, extra: str = "") -> str:
    if variant == "legacy":
        return (
            '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN">\n<html><head>'
            '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
            f"<title>{escape(title)}</title>{extra}</head>"
        )
    if variant == "modern":
        return (
            "<!DOCTYPE html>\n<html>\n<head>\n"
            '<meta charset="gbk" />\n<meta http-equiv="X-UA-Compatible" content="IE=edge" />\n'
            f"<title>\n\t{escape(title)}\n</title>\n{extra}</head>\n"
        )
    return f"<html><head><title>{escape(title)}</title>{extra}</head>"


def _page(title: str, body: str, depth: int = 0, variant: Variant = "plain") -> str:
    css = "../" * depth + "css/EduAdmXT.css"
    if variant == "plain":
        return (
            '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
            '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
            '<meta http-equiv="Content-Type" content="text/html; charset=gbk" />'
            f'<title>{escape(title)}</title><link href="{css}" rel="stylesheet" type="text/css" />'
            f"</head><body>{body}</body></html>"
        )
    link = f'<link href="{css}" rel="stylesheet" type="text/css" />'
    if variant == "modern":
        body = f'\n{padding(1)}<div id="main">\n{body}\n</div>\n{_FOOTER}'
    return _finish(_head(title, variant, link) + f"<body>{body}</body></html>", variant)


# Guess: what a later site puts after its content.
_FOOTER = (
    '<div class="footer">暨南大学教务处 版权所有</div>\n'
    '<script type="text/javascript" src="../js/jquery.min.js"></script>\n'
)


def _label(text: str, variant: Variant, name: str = "") -> str:
    """A field label or a caption: where each variant writes it."""
    if variant == "legacy":
        return f'<font face="宋体" size="2">{escape(text)}</font>'
    if variant == "modern":
        return (
            f'<span id="lbl{name}">{escape(text)}</span>'
            if name
            else f"<span>{escape(text)}</span>"
        )
    if variant == "bare":
        return char_refs(escape(text))
    return escape(text)


def _message(message: str, variant: Variant) -> str:
    """A message of the office (a refusal, "no records"): where each variant writes it."""
    if not message:
        return ""
    if variant == "legacy":
        return f'<font color="red">{escape(message)}</font>'
    if variant == "modern":
        # Guess: as WebForms sites often do, an asp:Label and a startup alert().
        return (
            f'<span id="lblMsg" style="color:Red;">{escape(message)}</span>\n'
            f"<script type=\"text/javascript\">\n//<![CDATA[\nalert('{escape(message)}');"
            "\n//]]>\n</script>\n"
        )
    if variant == "bare":
        return f'<table><tr><td colspan="2">{char_refs(escape(message))}</td></tr></table>'
    return f'<span id="lblMsg">{escape(message)}</span>'


def _cell(value: str, variant: Variant, tag: str = "td", attrs: str = "") -> str:
    """One grid cell; an empty value is `&nbsp;` (evidence: ASP.NET grids)."""
    text = escape(value) if value else "&nbsp;"
    if variant == "modern":
        return f"<{tag}{attrs}>\n\t\t\t\t{text}\n\t\t\t</{tag}>"
    if variant == "bare" and value:
        text = char_refs(text)
    return f"<{tag}{attrs}>{text}</{tag}>"


def _pad_to(html: str, size: int, before: str, markup: bool = True) -> str:
    """The page padded (before the last `before`) to `size` bytes in GBK, where it is smaller:
    with a banner and scripts (`markup`), else (a frame set's head) with a comment only."""
    at = html.rfind(before)
    if at < 0:
        at = len(html)
    head, tail = html[:at], html[at:]

    def length(pad: str) -> int:
        return len((head + pad + tail).encode("gbk"))

    missing = size - length("")
    if missing < 8:
        return html
    pad = padding(missing) if markup else ""
    while pad and length(pad) > size - 8:
        cut = pad.rstrip("\n").rfind("\n")
        pad = pad[: cut + 1] if cut > 0 else ""
    left = size - length(pad)
    if left >= 7:
        pad += "<!--" + " " * (left - 7) + "-->"
    return head + pad + tail


def _form(action: str, viewstate: str, validation: str, inner: str) -> str:
    return (
        f'<form name="Form1" method="post" action="{escape(action)}" id="Form1">'
        '<div><input type="hidden" name="__EVENTTARGET" id="__EVENTTARGET" value="" />'
        '<input type="hidden" name="__EVENTARGUMENT" id="__EVENTARGUMENT" value="" />'
        f'<input type="hidden" name="__VIEWSTATE" id="__VIEWSTATE" value="{viewstate}" /></div>'
        f"{inner}"
        '<div><input type="hidden" name="__EVENTVALIDATION" id="__EVENTVALIDATION" '
        f'value="{validation}" /></div></form>'
    )


def login_page(
    viewstate: str, validation: str, message: str = "", variant: Variant = "plain"
) -> str:
    if variant == "plain":
        alert = (
            f"<script language='javascript'>alert('{escape(message)}');</script>" if message else ""
        )
        inner = (
            '<table class="login"><tr><td>用户名：</td><td>'
            '<input name="txtYHBS" type="text" id="txtYHBS" /></td></tr>'
            '<tr><td>密　码：</td><td><input name="txtYHMM" type="password" id="txtYHMM" />'
            "</td></tr>"
            '<tr><td>验证码：</td><td><input name="txtFJM" type="text" id="txtFJM" maxlength="4" />'
            '<img src="ValidateCode.aspx" alt="" /></td></tr>'
            '<tr><td colspan="2">'
            '<input type="submit" name="btnLogin" value="登 录" id="btnLogin" />'
            '<input type="submit" name="btnReset" value="重 置" id="btnReset" /></td></tr></table>'
            f'<span id="lblMsg" style="color:Red;">{escape(message)}</span>'
        )
        return _page(
            "暨南大学综合教务管理系统", _form("login.aspx", viewstate, validation, inner) + alert
        )
    inner = (
        f'<table class="login"><tr><td>{_label("用户名：", variant, "YHBS")}</td><td>'
        '<input name="txtYHBS" type="text" id="txtYHBS" /></td></tr>'
        f"<tr><td>{_label('密　码：', variant, 'YHMM')}</td><td>"
        '<input name="txtYHMM" type="password" id="txtYHMM" /></td></tr>'
        f"<tr><td>{_label('验证码：', variant, 'FJM')}</td><td>"
        '<input name="txtFJM" type="text" id="txtFJM" maxlength="4" />'
        '<img src="ValidateCode.aspx" alt="看不清，换一张" /></td></tr>'
        '<tr><td colspan="2"><input type="submit" name="btnLogin" value="登 录" id="btnLogin" />'
        '<input type="submit" name="btnReset" value="重 置" id="btnReset" /></td></tr></table>'
        f"{_message(message, variant)}"
    )
    page = _page(
        "暨南大学综合教务管理系统", _form("login.aspx", viewstate, validation, inner), 0, variant
    )
    if variant == "modern":
        size = LOGIN_SIZE_WRONG_CAPTCHA if message == WRONG_CAPTCHA else LOGIN_SIZE_WRONG_PASSWORD
        page = _pad_to(page, size, "</body>")
    return page


def home_page(variant: Variant = "plain") -> str:
    """What a login leads to (guess): a frame set of the office's menu and main page."""
    frames = (
        '<frameset rows="80,*" frameborder="0"><frame src="top.aspx" name="top" />'
        '<frame src="main.aspx" name="main" /></frameset>'
    )
    if variant == "plain":
        return (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk" />'
            f"<title>暨南大学综合教务管理系统</title></head>{frames}</html>"
        )
    page = _finish(_head("暨南大学综合教务管理系统", variant) + frames + "</html>", variant)
    if variant == "modern":
        page = _pad_to(page, LOGIN_SIZE_OK, "</head>", markup=False)
    return page


def menu_page(variant: Variant = "plain") -> str:
    text = (
        _label("欢迎使用综合教务管理系统", variant)
        if variant != "plain"
        else "欢迎使用综合教务管理系统"
    )
    return _page("教务管理系统", f'<div>{text} <a href="../login.aspx">注销</a></div>', 1, variant)


def _select(name: str, options: Sequence[str], chosen: str) -> str:
    mark = ' selected="selected"'
    items = "".join(
        f'<option{mark if o == chosen else ""} value="{escape(o)}">{escape(o)}</option>'
        for o in options
    )
    return f'<select name="{name}" id="{name}">{items}</select>'


def term_selects(years: Sequence[str], year: str, term: str, variant: Variant = "plain") -> str:
    if variant == "plain":
        year_label, term_label = "学年：", " 学期："
    else:
        year_label = _label("学年：", variant, "Xn")
        term_label = " " + _label("学期：", variant, "Xq")
    return (
        f"<div class='query'>{year_label}"
        + _select("dlstXndZ", years, year)
        + term_label
        + _select("dlstNdxq", TERM_NAMES, term)
        + " "
        + _select("dlstXndZ0", years, year)
        + _select("dlstNdxq0", TERM_NAMES, term)
        + "</div>"
    )


def _header_cell(text: str, variant: Variant, tag: str = "td", attrs: str = "") -> str:
    if variant == "legacy":
        return f'<{tag}{attrs}><font color="white">{escape(text)}</font></{tag}>'
    return _cell(text, variant, tag, attrs)


def timetable_page(
    viewstate: str,
    validation: str,
    years: Sequence[str],
    year: str,
    term: str,
    courses: Sequence[SimCourse] | None,
    variant: Variant = "plain",
) -> str:
    """The timetable query page; with courses (after a query): the DataGrid, first table."""
    grid = ""
    if courses is not None:
        head = "".join(
            f"<td>{h}</td>" if variant == "plain" else _header_cell(h, variant)
            for h in TIMETABLE_HEADERS
        )
        rows = []
        for i, c in enumerate(courses):
            cls = "DGItemStyle" if i % 2 == 0 else "DGAlternatingItemStyle"
            cells = (
                c.class_id, c.course_id, c.name, c.credits, c.hours, c.category, c.schedule,
                c.teacher, c.place, c.remarks, c.stage, c.exam_time,
            )  # fmt: skip
            if variant == "plain":
                tds = "".join(f"<td>{escape(v) if v else '&nbsp;'}</td>" for v in cells)
            else:
                tds = "".join(_cell(v, variant) for v in cells)
            rows.append(f'<tr class="{cls}">{tds}</tr>')
        grid = (
            '<table class="DGStyle" cellspacing="0" rules="all" border="1" id="dgrdKb">'
            f'<tr class="DGHeaderStyle">{head}</tr>{"".join(rows)}</table>'
        )
    inner = (
        grid
        + term_selects(years, year, term, variant)
        + '<input type="submit" name="bthSearch" value="查 询" id="bthSearch" />'
        + '<input type="submit" name="btnPrint" value="打 印" id="btnPrint" />'
    )
    return _page(
        "选课结果查询", _form("wfrm_XK_MainCX.aspx", viewstate, validation, inner), 2, variant
    )


def exams_form_page(
    viewstate: str,
    validation: str,
    years: Sequence[str],
    year: str,
    term: str,
    frame: str = "",
    variant: Variant = "plain",
) -> str:
    """The student timetable page with its exam button; after it, the report iframe."""
    inner = (
        term_selects(years, year, term, variant)
        + '<input type="submit" name="btnSearch" value="查询课表" id="btnSearch" />'
        + '<input type="submit" name="btnExpKsb" value="导出或打印考试安排表" id="btnExpKsb" />'
    )
    if frame:
        inner += f'<iframe src="{escape(frame)}" width="100%" height="600"></iframe>'
    return _page(
        "学生课表", _form("wfrm_xk_StudentKcb.aspx", viewstate, validation, inner), 2, variant
    )


def report_frameset(toolbar: str, content: str, variant: Variant = "plain") -> str:
    frames = (
        '<frameset rows="40,*">'
        f'<frame src="{escape(toolbar)}" name="toolbar" />'
        f'<frame src="{escape(content)}" name="report" /></frameset>'
    )
    if variant == "plain":
        return (
            '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk" />'
            f"<title>考试安排表</title></head>{frames}</html>"
        )
    return _finish(_head("考试安排表", variant) + frames + "</html>", variant)


def report_toolbar(variant: Variant = "plain") -> str:
    return _page("工具栏", "<div class='toolbar'>打印 导出</div>", 1, variant)


def report_content(
    year: str, term: str, exams: Sequence[SimExam], variant: Variant = "plain"
) -> str:
    def item(e: SimExam) -> str:
        tokens = (
            f"日期：{e.date:%Y-%m-%d}",
            f"时间：{e.start}-{e.end}",
            f"地点：{escape(e.place)}",
            f"课程：{escape(e.name)}({escape(e.course_id)})",
        )
        if variant == "modern":
            return "<br />\n\t\t考试\n\t\t\t" + "\n\t\t\t".join(tokens) + "\n"
        if variant == "bare":
            return "<br>" + char_refs("考试 " + " ".join(tokens))
        return "<br />考试 " + " ".join(tokens) + " "

    if variant == "plain":
        items = "".join(
            f"<br />考试 日期：{e.date:%Y-%m-%d} 时间：{e.start}-{e.end} 地点：{escape(e.place)} "
            f"课程：{escape(e.name)}({escape(e.course_id)})"
            for e in exams
        )
        body = (
            f'<DIV class="r11">{year}学年{term}</DIV>'
            f'<DIV class="r11">本学期课程考试安排如下：{items}</DIV>'
            '<DIV class="r11">请携带学生证参加考试。</DIV>'
        )
        return _page("考试安排表", body, 1)
    items = "".join(item(e) for e in exams)
    heading = _label(f"{year}学年{term}", variant)
    intro = _label("本学期课程考试安排如下：", variant)
    note = _label("请携带学生证参加考试。", variant)
    if variant == "legacy":
        # Legacy: the whole block in one <font>, so a token's label and value stay one text.
        body = (
            f'<DIV class="r11">{heading}</DIV>'
            f'<DIV class="r11"><font size="2">本学期课程考试安排如下：{items}</font></DIV>'
            f'<DIV class="r11">{note}</DIV>'
        )
    else:
        body = (
            f'<div class="r11">{heading}</div>\n'
            f'<div class="r11">{intro}{items}</div>\n'
            f'<div class="r11">{note}</div>'
        )
    return _page("考试安排表", body, 1, variant)


def grades_page(
    viewstate: str,
    validation: str,
    years: Sequence[str],
    year: str,
    term: str,
    grades: Sequence[SimGrade] | None,
    variant: Variant = "plain",
) -> str:
    grid = ""
    if grades:
        head = "".join(
            f'<th scope="col">{h}</th>'
            if variant == "plain"
            else _header_cell(h, variant, "th", ' scope="col"')
            for h in GRADE_HEADERS
        )
        rows = "".join(
            '<tr class="GVRowStyle_NoWrap">'
            + "".join(
                (
                    f"<td>{escape(v) if v else '&nbsp;'}</td>"
                    if variant == "plain"
                    else _cell(v, variant)
                )
                for v in (g.code, g.name, g.category, g.score, g.credits, g.grade_points, g.remarks)
            )
            + "</tr>"
            for g in grades
        )
        grid = (
            '<div><table class="GVStyle" cellspacing="0" rules="all" border="1" id="GVList">'
            f'<tr class="GVHeaderStyle_NoWrap">{head}</tr>{rows}</table></div>'
        )
    elif grades is not None:
        grid = _message("没有查询到成绩记录", variant)
    inner = (
        term_selects(years, year, term, variant)
        + '<input type="submit" name="btnSearch" value="查 询" id="btnSearch" />'
        + grid
    )
    return _page(
        "学生成绩查询", _form("Cjgl_Cjcx_XsCjcx.aspx", viewstate, validation, inner), 2, variant
    )


def profile_page(variant: Variant = "plain") -> str:
    """The student-profile page: a client must never ask for it (its fields stay empty here)."""
    return _page("学籍信息", "<div>学籍信息（身份证号、家庭住址）</div>", 2, variant)


def aspnet_error(title: str, detail: str, variant: Variant = "plain") -> str:
    """ASP.NET's error page (the "yellow screen")."""
    page = (
        f"<html><head><title>{escape(title)}</title></head><body bgcolor='white'>"
        f"<span><H1>Server Error in '/' Application.<hr width=100% size=1 color=silver></H1>"
        f"<h2> <i>{escape(title)}</i> </h2></span>"
        f"<b> Description: </b>{escape(detail)}<br><br></body></html>"
    )
    return _finish(page, variant)


def not_found(variant: Variant = "plain") -> str:
    return aspnet_error("The resource cannot be found.", "HTTP 404.", variant)


def server_busy(status: int, variant: Variant = "plain") -> str:
    """IIS / ASP.NET answers of an overloaded or stopped server."""
    if status == 503:
        return _finish(
            "<html><head><title>Service Unavailable</title></head>"
            "<body><h1>Service Unavailable</h1></body></html>",
            variant,
        )
    return aspnet_error("Server Too Busy", f"HTTP {status}.", variant)
