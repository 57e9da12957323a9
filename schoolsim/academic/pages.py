"""The simulated academic office's HTML (ASP.NET WebForms markup, served as GBK).

Evidence (docs/academic-office-protocol.md): `<form name="Form1" method="post"
action="X.aspx" id="Form1">` with hidden `__VIEWSTATE` (`/wEP...`) and
`__EVENTVALIDATION`; the stylesheet `../../css/EduAdmXT.css`; DataGrid rows
`tr.DGItemStyle` / `tr.DGAlternatingItemStyle`; GridView `tr.GVHeaderStyle_NoWrap`
(`th scope="col"`) and `tr.GVRowStyle_NoWrap`; the grade list's columns; the
field and button names of the login, timetable and exam forms; exams behind an
iframe and a frameset, in `DIV.r11` blocks. Everything else (header texts,
messages, layout, the grade page) is a guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from schoolsim.academic.dataset import SimCourse, SimExam, SimGrade

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


def _page(title: str, body: str, depth: int = 0) -> str:
    css = "../" * depth + "css/EduAdmXT.css"
    return (
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml"><head>'
        '<meta http-equiv="Content-Type" content="text/html; charset=gbk" />'
        f'<title>{escape(title)}</title><link href="{css}" rel="stylesheet" type="text/css" />'
        f"</head><body>{body}</body></html>"
    )


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


def login_page(viewstate: str, validation: str, message: str = "") -> str:
    alert = f"<script language='javascript'>alert('{escape(message)}');</script>" if message else ""
    inner = (
        '<table class="login"><tr><td>用户名：</td><td>'
        '<input name="txtYHBS" type="text" id="txtYHBS" /></td></tr>'
        '<tr><td>密　码：</td><td><input name="txtYHMM" type="password" id="txtYHMM" /></td></tr>'
        '<tr><td>验证码：</td><td><input name="txtFJM" type="text" id="txtFJM" maxlength="4" />'
        '<img src="ValidateCode.aspx" alt="" /></td></tr>'
        '<tr><td colspan="2"><input type="submit" name="btnLogin" value="登 录" id="btnLogin" />'
        '<input type="submit" name="btnReset" value="重 置" id="btnReset" /></td></tr></table>'
        f'<span id="lblMsg" style="color:Red;">{escape(message)}</span>'
    )
    return _page(
        "暨南大学综合教务管理系统", _form("login.aspx", viewstate, validation, inner) + alert
    )


def home_page() -> str:
    """What a login leads to (guess): a frame set of the office's menu and main page."""
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk" />'
        "<title>暨南大学综合教务管理系统</title></head>"
        '<frameset rows="80,*" frameborder="0"><frame src="top.aspx" name="top" />'
        '<frame src="main.aspx" name="main" /></frameset></html>'
    )


def menu_page() -> str:
    return _page(
        "教务管理系统", '<div>欢迎使用综合教务管理系统 <a href="../login.aspx">注销</a></div>', 1
    )


def _select(name: str, options: Sequence[str], chosen: str) -> str:
    mark = ' selected="selected"'
    items = "".join(
        f'<option{mark if o == chosen else ""} value="{escape(o)}">{escape(o)}</option>'
        for o in options
    )
    return f'<select name="{name}" id="{name}">{items}</select>'


def term_selects(years: Sequence[str], year: str, term: str) -> str:
    return (
        "<div class='query'>学年："
        + _select("dlstXndZ", years, year)
        + " 学期："
        + _select("dlstNdxq", TERM_NAMES, term)
        + " "
        + _select("dlstXndZ0", years, year)
        + _select("dlstNdxq0", TERM_NAMES, term)
        + "</div>"
    )


def timetable_page(
    viewstate: str,
    validation: str,
    years: Sequence[str],
    year: str,
    term: str,
    courses: Sequence[SimCourse] | None,
) -> str:
    """The timetable query page; with courses (after a query): the DataGrid, first table."""
    grid = ""
    if courses is not None:
        head = "".join(f"<td>{h}</td>" for h in TIMETABLE_HEADERS)
        rows = []
        for i, c in enumerate(courses):
            cls = "DGItemStyle" if i % 2 == 0 else "DGAlternatingItemStyle"
            cells = (
                c.class_id, c.course_id, c.name, c.credits, c.hours, c.category, c.schedule,
                c.teacher, c.place, c.remarks, c.stage, c.exam_time,
            )  # fmt: skip
            tds = "".join(f"<td>{escape(v) if v else '&nbsp;'}</td>" for v in cells)
            rows.append(f'<tr class="{cls}">{tds}</tr>')
        grid = (
            '<table class="DGStyle" cellspacing="0" rules="all" border="1" id="dgrdKb">'
            f'<tr class="DGHeaderStyle">{head}</tr>{"".join(rows)}</table>'
        )
    inner = (
        grid
        + term_selects(years, year, term)
        + '<input type="submit" name="bthSearch" value="查 询" id="bthSearch" />'
        + '<input type="submit" name="btnPrint" value="打 印" id="btnPrint" />'
    )
    return _page("选课结果查询", _form("wfrm_XK_MainCX.aspx", viewstate, validation, inner), 2)


def exams_form_page(
    viewstate: str, validation: str, years: Sequence[str], year: str, term: str, frame: str = ""
) -> str:
    """The student timetable page with its exam button; after it, the report iframe."""
    inner = (
        term_selects(years, year, term)
        + '<input type="submit" name="btnSearch" value="查询课表" id="btnSearch" />'
        + '<input type="submit" name="btnExpKsb" value="导出或打印考试安排表" id="btnExpKsb" />'
    )
    if frame:
        inner += f'<iframe src="{escape(frame)}" width="100%" height="600"></iframe>'
    return _page("学生课表", _form("wfrm_xk_StudentKcb.aspx", viewstate, validation, inner), 2)


def report_frameset(toolbar: str, content: str) -> str:
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gbk" />'
        '<title>考试安排表</title></head><frameset rows="40,*">'
        f'<frame src="{escape(toolbar)}" name="toolbar" />'
        f'<frame src="{escape(content)}" name="report" /></frameset></html>'
    )


def report_toolbar() -> str:
    return _page("工具栏", "<div class='toolbar'>打印 导出</div>", 1)


def report_content(year: str, term: str, exams: Sequence[SimExam]) -> str:
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


def grades_page(
    viewstate: str,
    validation: str,
    years: Sequence[str],
    year: str,
    term: str,
    grades: Sequence[SimGrade] | None,
) -> str:
    grid = ""
    if grades:
        head = "".join(f'<th scope="col">{h}</th>' for h in GRADE_HEADERS)
        rows = "".join(
            '<tr class="GVRowStyle_NoWrap">'
            + "".join(
                f"<td>{escape(v) if v else '&nbsp;'}</td>"
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
        grid = '<span id="lblMsg">没有查询到成绩记录</span>'
    inner = (
        term_selects(years, year, term)
        + '<input type="submit" name="btnSearch" value="查 询" id="btnSearch" />'
        + grid
    )
    return _page("学生成绩查询", _form("Cjgl_Cjcx_XsCjcx.aspx", viewstate, validation, inner), 2)


def profile_page() -> str:
    """The student-profile page: a client must never ask for it (its fields stay empty here)."""
    return _page("学籍信息", "<div>学籍信息（身份证号、家庭住址）</div>", 2)


def aspnet_error(title: str, detail: str) -> str:
    """ASP.NET's error page (the "yellow screen")."""
    return (
        f"<html><head><title>{escape(title)}</title></head><body bgcolor='white'>"
        f"<span><H1>Server Error in '/' Application.<hr width=100% size=1 color=silver></H1>"
        f"<h2> <i>{escape(title)}</i> </h2></span>"
        f"<b> Description: </b>{escape(detail)}<br><br></body></html>"
    )


def not_found() -> str:
    return aspnet_error("The resource cannot be found.", "HTTP 404.")


def server_busy(status: int) -> str:
    """IIS / ASP.NET answers of an overloaded or stopped server."""
    if status == 503:
        return (
            "<html><head><title>Service Unavailable</title></head>"
            "<body><h1>Service Unavailable</h1></body></html>"
        )
    return aspnet_error("Server Too Busy", f"HTTP {status}.")
