"""Academic office page parsers on saved-style pages, including the ugly ones, and the GPA."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from decimal import Decimal

import pytest

from school.errors import InvalidCredentials, SchoolPageError, SessionExpired
from systems.academic.models import Exam, GpaRule, Grade, grade_point_average
from systems.academic.pages import (
    parse_exam_page,
    parse_grades,
    parse_login_answer,
    parse_timetable,
)

HEAD = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312"></head>'
LOGIN = (
    HEAD + '<body><form name="Form1" method="post" action="login.aspx" id="Form1">'
    '<input type="hidden" name="__VIEWSTATE" value="/wEPDwUK" />'
    '<input name="txtYHBS" /><input name="txtYHMM" type="password" /><input name="txtFJM" />'
    '<input type="submit" name="btnLogin" value="登 录" />{msg}</form></body></html>'
)
ROW12 = (
    '<tr class="DGItemStyle"><td>0801001-01</td><td>0801001</td><td>高等数学</td><td>5.0</td>'
    "<td>80</td><td>必修</td><td>①周二 - 3,4节②(1-18)周四 - 1,2节</td><td>王老师</td>"
    "<td>①A101②B202</td><td>&nbsp;</td><td>考试</td><td>&nbsp;</td></tr>"
)


def gbk(text: str) -> bytes:
    return text.encode("gbk")


def test_timetable_without_headers_reads_the_2013_column_order() -> None:
    page = gbk(HEAD + f"<body><table>{ROW12}</table></body></html>")
    (course,) = parse_timetable(page, None, "2012-2013", "第一学期", 16)
    assert (course.class_id, course.course_id, course.name) == ("0801001-01", "0801001", "高等数学")
    assert course.credits == Decimal("5.0") and course.category == "必修"
    assert [m.weeks for m in course.meetings] == [tuple(range(1, 17)), tuple(range(1, 19))]
    assert [m.place for m in course.meetings] == ["A101", "B202"]
    assert course.stage == "考试" and course.remarks == ""


def test_timetable_columns_found_by_header_in_another_order() -> None:
    header = (
        "<tr><td>课程名称</td><td>上课时间</td><td>课程代码</td><td>教室</td><td>学分</td></tr>"
    )
    row = (
        "<tr><td>线性代数</td><td>单周周五 - 1,2节</td><td>0801002</td><td>C303</td><td>3</td></tr>"
    )
    page = gbk(HEAD + f"<body><table>{header}{row}</table></body></html>")
    (course,) = parse_timetable(page, None, "2012-2013", "第一学期", 16)
    assert (course.course_id, course.name, course.place) == ("0801002", "线性代数", "C303")
    assert course.meetings[0].weeks == (1, 3, 5, 7, 9, 11, 13, 15)


def test_timetable_login_page_means_the_session_expired() -> None:
    with pytest.raises(SessionExpired):
        parse_timetable(gbk(LOGIN.format(msg="")), None, "2012-2013", "第一学期", 16)


@pytest.mark.parametrize(
    "body",
    [
        "<body><p>系统维护中</p></body>",
        "<body><table><tr class='DGItemStyle'><td>only</td><td>three</td><td>cells</td></tr>"
        "</table></body>",
    ],
)
def test_timetable_unknown_pages_are_bad_pages(body: str) -> None:
    with pytest.raises(SchoolPageError):
        parse_timetable(gbk(HEAD + body + "</html>"), None, "2012-2013", "第一学期", 16)


def test_timetable_for_another_term_is_a_bad_page() -> None:
    select = (
        '<select name="dlstXndZ"><option selected value="2013-2014">2013-2014</option></select>'
    )
    page = gbk(HEAD + f"<body>{select}<table>{ROW12}</table></body></html>")
    with pytest.raises(SchoolPageError):
        parse_timetable(page, None, "2012-2013", "第一学期", 16)


def test_login_answers() -> None:
    home = gbk(HEAD + '<frameset><frame src="top.aspx"></frameset></html>')
    assert parse_login_answer(home, None, "http://x/Secure/default.aspx") is None
    wrong = gbk(LOGIN.format(msg="<span id='lblMsg'>密码错误！</span>"))
    with pytest.raises(InvalidCredentials) as caught:
        parse_login_answer(wrong, None, "http://x/login.aspx")
    assert caught.value.reason == "wrong_password"
    unknown = gbk(LOGIN.format(msg="<script>alert('用户不存在');</script>"))
    with pytest.raises(InvalidCredentials) as caught:
        parse_login_answer(unknown, None, "http://x/login.aspx")
    assert caught.value.reason == "unknown_student"
    silent = gbk(LOGIN.format(msg=""))
    with pytest.raises(SchoolPageError) as refused:
        parse_login_answer(silent, None, "http://x/login.aspx")
    assert not isinstance(refused.value, InvalidCredentials)
    with pytest.raises(SchoolPageError):
        parse_login_answer(gbk(HEAD + "<body>?</body></html>"), None, "http://x/login.aspx")


def test_exam_chain_pages() -> None:
    answer = gbk(
        HEAD + '<body><form><iframe src="../../Reports/F.aspx?k=1"></iframe></form></body>'
    )
    assert parse_exam_page(answer, None).next_url == "../../Reports/F.aspx?k=1"
    frames = gbk(HEAD + '<frameset><frame src="bar.aspx"><frame src="data.aspx?k=1"></frameset>')
    assert parse_exam_page(frames, None).next_url == "data.aspx?k=1"
    with pytest.raises(SchoolPageError):
        parse_exam_page(gbk(HEAD + "<body>nothing</body></html>"), None)


def test_exam_blocks_with_missing_pieces() -> None:
    blocks = (
        '<DIV class="r11">2012-2013学年第一学期</DIV>'
        '<DIV class="r11">课程考试安排：考试 日期：2013-01-14 时间：09:00-11:00 地点：A101 '
        "课程：大学英语(二)(0802011)<br>考试 日期：2013-01-15 时间：14:30-16:30 课程：线性代数"
        "<br>考试 日期：待定 时间：待定 地点：B1 课程：编译原理(0803201)</DIV>"
    )
    page = parse_exam_page(gbk(HEAD + f"<body>{blocks}</body></html>"), None)
    assert page.exams == [
        Exam(date(2013, 1, 14), time(9), time(11), "A101", "大学英语(二)", "0802011"),
        Exam(date(2013, 1, 15), time(14, 30), time(16, 30), "", "线性代数", ""),
    ]
    first = page.exams[0]
    assert first.starts_at == datetime(2013, 1, 14, 9, tzinfo=first.starts_at.tzinfo)
    assert first.starts_at.utcoffset() == timedelta(hours=8)


def test_exam_page_without_exams_is_empty() -> None:
    page = gbk(HEAD + '<body><DIV class="r11">本学期没有课程考试安排</DIV></body></html>')
    assert parse_exam_page(page, None).exams == []


GRID = (
    '<table id="GVList"><tr class="GVHeaderStyle_NoWrap"><th scope="col">课程代码</th>'
    '<th scope="col">课程名称</th><th scope="col">课程类别</th><th scope="col">成绩</th>'
    '<th scope="col">学分</th><th scope="col">学分绩点</th><th scope="col">备注</th></tr>'
    '<tr class="GVRowStyle_NoWrap"><td>0801001</td><td>高等数学</td><td>必修</td><td>90</td>'
    "<td>5.0</td><td>20.00</td><td>&nbsp;</td></tr>"
    '<tr class="GVRowStyle_NoWrap"><td>0806002</td><td>音乐欣赏</td><td>选修</td><td>优秀</td>'
    "<td>1.5</td><td>6.75</td><td>&nbsp;</td></tr>"
    '<tr class="GVRowStyle_NoWrap"><td>0802012</td><td>大学物理</td><td>必修</td><td>缺考</td>'
    "<td>4.0</td><td>0.00</td><td>缺考</td></tr></table>"
)


def test_grades_with_numbers_and_words() -> None:
    grades = parse_grades(gbk(HEAD + f"<body>{GRID}</body></html>"), None, "2012-2013", "第一学期")
    assert [(g.code, g.score_text, g.score) for g in grades] == [
        ("0801001", "90", Decimal(90)),
        ("0806002", "优秀", None),
        ("0802012", "缺考", None),
    ]
    assert grades[2].remarks == "缺考" and grades[2].failed
    assert grades[1].grade_points == Decimal("6.75")


def test_grades_unknown_page_is_bad_and_empty_form_is_empty() -> None:
    with pytest.raises(SchoolPageError):
        parse_grades(gbk(HEAD + "<body>??</body></html>"), None, "2012-2013", "第一学期")
    form = '<select name="dlstXndZ"><option selected value="2012-2013">2012-2013</option></select>'
    assert (
        parse_grades(gbk(HEAD + f"<body>{form}</body></html>"), None, "2012-2013", "第一学期") == []
    )


def grade(points: str | None, credits: str, score: str = "80", category: str = "必修") -> Grade:
    value = Decimal(score) if score.isdigit() else None
    return Grade(
        "c", "n", category, score, value, Decimal(credits),
        None if points is None else Decimal(points), "",
    )  # fmt: skip


def test_grade_point_average_rules() -> None:
    grades = [grade("20.00", "5"), grade("0.00", "4", "50"), grade(None, "2", "合格")]
    assert grade_point_average(grades, GpaRule()) == Decimal("2.22")
    assert grade_point_average(grades, GpaRule(count_failed=False)) == Decimal("4.00")
    assert grade_point_average(grades, GpaRule(categories=frozenset({"选修"}))) is None
    per_point = [grade("4.0", "5"), grade("3.0", "3")]
    assert grade_point_average(per_point, GpaRule(points_include_credits=False, places=3)) == (
        Decimal("3.625")
    )
    assert grade_point_average([], GpaRule()) is None
