"""Pure parsers of academic office pages (ASP.NET WebForms, GBK): no I/O, typed results
or SchoolError.

Every rule says what it rests on (docs/academic-office-protocol.md): "evidence" is
the 2013 client, its saved pages and samples; "guess" is ours. Grids are found by
their header text where the page has one, and read by the 2013 column order where
it has not; a page that is neither what was asked nor the login page is a
SchoolPageError, never an empty answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal, InvalidOperation

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import InvalidCredentials, SchoolPageError, SchoolServerError, SessionExpired
from school.html import Page, body_text, squeezed, text_of, tree_of
from systems.academic.models import Course, Exam, Grade
from systems.academic.schedule import parse_schedule

log = logging.getLogger("jnufm.school")

# Evidence: the login form's fields (2013 posted txtYHBS, txtYHMM, txtFJM).
LOGIN_FIELDS = ("txtYHBS", "txtYHMM")
# Login refusals by what the message means (guess: 2013 told them apart by the
# page's length only). A message is one run of text of the page (see
# `_texts`) or an alert() argument; it is about the captcha or the password when it
# names one *and* says it is wrong: the field labels (验证码：, 密　码：) name them
# without refusing anything. 附加码 is what the field name txtFJM abbreviates.
_CAPTCHA_WORDS = ("验证码", "附加码", "校验码")
_UNKNOWN_WORDS = (
    "用户不存在",
    "无此用户",
    "用户名不存在",
    "没有此用户",
    "学号不存在",
    "用户名无效",
    "帐号不存在",
    "账号不存在",
)
_PASSWORD_WORDS = ("密码", "口令")
_REFUSAL_WORDS = (
    "错误",
    "不正确",
    "有误",
    "不对",
    "无效",
    "过期",
    "失效",
    "不符",
    "不一致",
    "不匹配",
    "输入正确",
)
# Elements whose text is not a message: scripts are read for their alert() only.
_NOT_TEXT = frozenset(("script", "style", "title", "head", "select", "option", "textarea"))
# Inline formatting: text inside it belongs to the run around it ("<b>密码</b>错误").
_INLINE = frozenset(("b", "i", "u", "em", "strong", "small", "big", "nobr", "tt", "sup", "sub"))
_ALERT = re.compile(r"""alert\(\s*(["'])(.*?)\1\s*\)""", re.DOTALL)
# A logged-in page (guess): a frame set, a path under /Secure/, or a way out.
_LOGGED_IN_WORDS = ("注销", "退出", "安全退出", "欢迎")
# IIS / ASP.NET pages of an overloaded or broken server that come with HTTP 200 (guess).
_SERVER_TROUBLE = ("Server Application Unavailable", "Service Unavailable", "Runtime Error")

_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?$")
_DATE = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_TIMES = re.compile(r"(\d{1,2})\s*[:：]\s*(\d{2})\s*[-~～至到－]+\s*(\d{1,2})\s*[:：]\s*(\d{2})")
_LABEL = re.compile(r"^([^\d\s:：()（）]{1,8})[：:](.*)$")
_COURSE = re.compile(r"^(.*)\(([^()]*)\)$")


@dataclass(frozen=True, slots=True)
class AspForm:
    """An ASP.NET form: where it posts, its fields (no buttons), its buttons, its selects."""

    action: str
    fields: tuple[tuple[str, str], ...]
    buttons: tuple[tuple[str, str], ...]
    # Select name -> its option values (and texts), to choose a term by what is offered.
    options: dict[str, tuple[str, ...]]

    def post(self, values: dict[str, str], button: str | None) -> list[tuple[str, str]]:
        """The fields to post: these values set, and one button: `button` (its value from
        `values`, else the page's), or the page's first when None."""
        left = dict(values)
        out = [(n, left.pop(n) if n in left else v) for n, v in self.fields]
        shown = dict(self.buttons)
        if button is None and self.buttons:
            button = self.buttons[0][0]
        if button is not None:
            out.append((button, left.pop(button, shown.get(button, ""))))
        out.extend(left.items())
        return out

    def button(self, name: str) -> bool:
        return any(b[0] == name for b in self.buttons)


def _check_trouble(tree: LexborHTMLParser) -> None:
    for node in tree.css("title, h1, h2"):
        title = text_of(node)
        if any(mark in title for mark in _SERVER_TROUBLE):
            raise SchoolServerError(f"the academic office answered {title[:60]!r}")


def is_login_page(tree: LexborHTMLParser) -> bool:
    """The login form (evidence: its fields txtYHBS and txtYHMM)."""
    names = {n.attributes.get("name") for n in tree.css("input")}
    return all(field in names for field in LOGIN_FIELDS)


def _tree(page: Page, content_type: str | None, kind: str) -> LexborHTMLParser:
    """The page's tree; a page that does not decode is a SchoolPageError of this kind."""
    try:
        _, tree = tree_of(page, content_type)
    except SchoolPageError as exc:
        raise SchoolPageError(str(exc), kind=kind) from exc
    return tree


def read(page: Page, content_type: str | None, kind: str) -> LexborHTMLParser:
    """A data page's tree; SessionExpired if it is the login page. `kind` names the page
    (`timetable`, `exams`, `grades`) in errors."""
    tree = _tree(page, content_type, kind)
    _check_trouble(tree)
    if is_login_page(tree):
        raise SessionExpired(f"the academic office showed its login page for the {kind}")
    return tree


def asp_form(tree: LexborHTMLParser, kind: str) -> AspForm:
    """The page's form as a browser submits it (evidence: 2013 kept __VIEWSTATE,
    __EVENTVALIDATION and the button; the rest as browsers send it)."""
    forms = tree.css("form")
    form = next((f for f in forms if f.css_first("input[name=__VIEWSTATE]") is not None), None)
    if form is None:
        form = forms[0] if forms else None
    if form is None:
        raise SchoolPageError(f"{kind}: no form", kind=kind)
    fields: list[tuple[str, str]] = []
    buttons: list[tuple[str, str]] = []
    options: dict[str, tuple[str, ...]] = {}
    for node in form.css("input, select, textarea"):
        attrs = node.attributes
        name = attrs.get("name")
        if not name or "disabled" in attrs:
            continue
        if node.tag == "select":
            opts = node.css("option")
            values = tuple(_option_value(o) for o in opts)
            options[name] = values
            chosen = [o for o in opts if "selected" in o.attributes] or opts[:1]
            fields.append((name, _option_value(chosen[0]) if chosen else ""))
            continue
        if node.tag == "textarea":
            fields.append((name, node.text(deep=True)))
            continue
        kind = (attrs.get("type") or "text").strip().lower()
        value = attrs.get("value") or ""
        if kind == "submit":
            buttons.append((name, value))
        elif kind in ("checkbox", "radio"):
            if "checked" in attrs:
                fields.append((name, value))
        elif kind not in ("reset", "button", "file", "image"):
            fields.append((name, value))
    return AspForm(
        (form.attributes.get("action") or "").strip(), tuple(fields), tuple(buttons), options
    )


def _option_value(option: LexborNode) -> str:
    value = option.attributes.get("value")
    return (value if value is not None else text_of(option)).strip()


def selected(tree: LexborHTMLParser, name: str) -> str | None:
    """The selected option of a select (None: no such select)."""
    node = tree.css_first(f"select[name={name}]")
    if node is None:
        return None
    opts = node.css("option")
    chosen = [o for o in opts if "selected" in o.attributes] or opts[:1]
    return _option_value(chosen[0]) if chosen else ""


# --- login ------------------------------------------------------------------------------


class CaptchaRefused(SchoolPageError):
    """The office refused the captcha we read; another one may be tried."""


def login_page(page: Page, content_type: str | None) -> AspForm:
    """The login page's form; SchoolPageError if the page is not the login page."""
    tree = _tree(page, content_type, "login")
    _check_trouble(tree)
    if not is_login_page(tree):
        raise SchoolPageError("login.aspx did not show the login form", kind="login")
    return asp_form(tree, "login")


def parse_login_answer(
    page: Page, content_type: str | None, url: str, shown_before: frozenset[str] = frozenset()
) -> AspForm | None:
    """None if the answer shows a logged-in page; raises on a refusal.

    `shown_before`: the texts of the login form as first fetched (`login_texts`);
    the same texts on the answer are the page's own (hints such as "密码错误五次将锁定",
    guess), not a message about this login.

    CaptchaRefused (the login form again, with a message that the captcha was
    wrong), InvalidCredentials (the form again, with a message that the password
    was wrong or the student unknown), or SchoolPageError(kind="login") for any
    other answer: the form without a message, with a message we do not know, or
    with messages that disagree; never taken as a wrong password nor retried.
    Evidence: 2013 judged by the page's length; we judge by what the page says.
    """
    tree = _tree(page, content_type, "login")
    _check_trouble(tree)
    if is_login_page(tree):
        messages = [m for m in login_messages(tree) if m not in shown_before]
        refusals = {r for r in map(_refusal, messages) if r is not None}
        if len(refusals) > 1:
            raise SchoolPageError(
                f"login refused with messages that disagree ({', '.join(sorted(refusals))})",
                kind="login",
            )
        if refusals == {"captcha"}:
            raise CaptchaRefused("the academic office refused the captcha", kind="login")
        if refusals == {"unknown_student"}:
            raise InvalidCredentials("unknown_student")
        if refusals == {"wrong_password"}:
            raise InvalidCredentials("wrong_password")
        raise SchoolPageError("the login form came back without a message we know", kind="login")
    path = url.lower().split("?", 1)[0]
    text = body_text(tree)
    if (
        "/secure/" in path
        or tree.css_first("frameset, frame, iframe") is not None
        or any(word in text for word in _LOGGED_IN_WORDS)
    ):
        return None
    raise SchoolPageError(
        "the login answer is neither the login form nor a logged-in page", kind="login"
    )


def _refusal(message: str) -> str | None:
    """What a message refuses: `captcha`, `unknown_student`, `wrong_password`, or None."""
    text = squeezed(message)
    if any(word in text for word in _UNKNOWN_WORDS):
        return "unknown_student"
    refuses = any(word in text for word in _REFUSAL_WORDS)
    if refuses and any(word in text for word in _CAPTCHA_WORDS):
        return "captcha"
    if refuses and any(word in text for word in _PASSWORD_WORDS):
        return "wrong_password"
    return None


def login_texts(page: Page, content_type: str | None) -> frozenset[str]:
    """The texts a login page shows (see `login_messages`)."""
    return frozenset(login_messages(_tree(page, content_type, "login")))


def login_messages(tree: LexborHTMLParser) -> list[str]:
    """Every text a login page shows: each run of text wherever it is (span, font, td,
    div, the body itself) and each alert() of its scripts."""
    texts: list[str] = []
    root = tree.body if tree.body is not None else tree.root
    if root is not None:
        _texts(root, texts)
    for script in tree.css("script"):
        texts.extend(found[2] for found in _ALERT.finditer(script.text(deep=True)))
    return [t for t in (squeezed(t) for t in texts) if t]


def _texts(node: LexborNode, out: list[str]) -> None:
    """The runs of text under a node: text nodes and inline formatting form one run,
    any other element (a field, a cell, a span, a line break) ends it and has its own.
    Walked with a stack, not recursion: however deep a page nests, it is read."""
    stack: list[tuple[Iterator[LexborNode], list[str]]] = [(node.iter(include_text=True), [])]
    while stack:
        children, run = stack[-1]
        child = next(children, None)
        if child is None:
            out.append("".join(run))
            stack.pop()
        elif child.tag == "-text":
            run.append(child.text_content or "")
        elif child.tag in _INLINE:
            run.append(child.text(deep=True))
        else:
            out.append("".join(run))
            run.clear()
            if child.tag not in _NOT_TEXT:
                stack.append((child.iter(include_text=True), []))


# --- grids ------------------------------------------------------------------------------

Rule = tuple[str, tuple[str, ...]]

# Timetable headers (guess: the evidence gives the column order and meanings, not
# the header texts). Tried in order, so 考试时间 is an exam time before 时间
# makes it a schedule, and 课程类别 a category before 课程 makes it a name.
TIMETABLE_RULES: tuple[Rule, ...] = (
    ("exam_time", ("考试",)),
    ("schedule", ("时间安排", "上课时间", "时间")),
    ("class_id", ("班号", "教学班", "班级", "班")),
    ("course_id", ("课程编号", "课程代码", "课程号", "课号", "编号", "代码")),
    ("credits", ("学分",)),
    ("category", ("类别", "性质", "类型")),
    ("name", ("课程名称", "课程名", "名称", "课程")),
    ("teacher", ("教师", "老师")),
    ("place", ("地点", "教室", "场地")),
    ("remarks", ("备注",)),
    ("stage", ("阶段",)),
)
# Evidence: the 12 columns of the 2013 client, in order (index 4 unknown).
TIMETABLE_2013 = {
    "class_id": 0,
    "course_id": 1,
    "name": 2,
    "credits": 3,
    "category": 5,
    "schedule": 6,
    "teacher": 7,
    "place": 8,
    "remarks": 9,
    "stage": 10,
    "exam_time": 11,
}
# Grade list headers (evidence: 课程代码, 课程名称, 课程类别, 成绩, 学分, 学分绩点, 备注).
GRADE_RULES: tuple[Rule, ...] = (
    ("grade_points", ("绩点",)),
    ("credits", ("学分",)),
    ("category", ("类别", "性质", "类型")),
    ("code", ("课程代码", "课程编号", "课程号", "课号", "代码", "编号")),
    ("name", ("课程名称", "课程名", "名称")),
    ("score", ("成绩", "分数", "总评")),
    ("remarks", ("备注",)),
)
# Evidence: DataGrid and GridView item rows.
_ITEM_CLASSES = (
    "DGItemStyle",
    "DGAlternatingItemStyle",
    "GVRowStyle_NoWrap",
    "GVAlternatingRowStyle_NoWrap",
    "GVRowStyle",
    "GVAlternatingRowStyle",
)


def _cells(row: LexborNode) -> list[str]:
    return [text_of(c) for c in row.iter() if c.tag in ("td", "th")]


def _header_map(cells: Sequence[str], rules: Sequence[Rule]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, cell in enumerate(cells):
        label = squeezed(cell)
        if not label:
            continue
        for name, words in rules:
            if name not in found and any(word in label for word in words):
                found[name] = index
                break
    return found


@dataclass(frozen=True, slots=True)
class Grid:
    columns: dict[str, int]
    rows: tuple[tuple[str, ...], ...]


def _rows_of(table: LexborNode) -> list[LexborNode]:
    # Rows of this table only, not of tables nested in its cells.
    return [r for r in table.css("tr") if _owner_id(r) == table.mem_id]


def _owner_id(row: LexborNode) -> int | None:
    node = row.parent
    while node is not None and node.tag != "table":
        node = node.parent
    return None if node is None else int(node.mem_id)


def find_grid(tree: LexborHTMLParser, rules: Sequence[Rule], required: set[str]) -> Grid | None:
    """The first table whose header row names the `required` columns, with its data rows."""
    for table in tree.css("table"):
        rows = _rows_of(table)
        for index, row in enumerate(rows[:3]):
            columns = _header_map(_cells(row), rules)
            if required <= set(columns):
                width = len(_cells(row))
                data = [tuple(_cells(r)) for r in rows[index + 1 :]]
                # Pager and footer rows have another number of cells: not data.
                return Grid(columns, tuple(d for d in data if len(d) == width))
    return None


def item_rows(tree: LexborHTMLParser) -> list[tuple[str, ...]] | None:
    """Evidence (2013): the DataGrid item rows of the page's first table that has any."""
    for table in tree.css("table"):
        rows = [
            r
            for r in _rows_of(table)
            if any(c in (r.attributes.get("class") or "").split() for c in _ITEM_CLASSES)
        ]
        if rows:
            return [tuple(_cells(r)) for r in rows]
    return None


def _cell(row: Sequence[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    if index is None or index >= len(row):
        return ""
    return row[index].strip()


def _decimal(text: str) -> Decimal | None:
    text = text.strip()
    if not _NUMBER.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits numbers only
        return None


def check_term(tree: LexborHTMLParser, year_text: str, term_text: str, what: str) -> None:
    """The answer shows the term we asked (where its selects say which): else SchoolPageError."""
    for name, wanted in (("dlstXndZ", year_text), ("dlstNdxq", term_text)):
        shown = selected(tree, name)
        if shown is not None and shown != wanted:
            raise SchoolPageError(f"{what}: the office answered for {name}={shown!r}", kind=what)


def parse_timetable(
    page: Page,
    content_type: str | None,
    year_text: str,
    term_text: str,
    term_weeks: int,
) -> tuple[Course, ...]:
    """The courses of a timetable answer; SessionExpired or SchoolPageError."""
    tree = read(page, content_type, "timetable")
    check_term(tree, year_text, term_text, "timetable")
    grid = find_grid(tree, TIMETABLE_RULES, {"course_id", "name", "schedule"})
    if grid is not None:
        columns, rows = grid.columns, list(grid.rows)
    else:
        found = item_rows(tree)
        if found is None:
            if selected(tree, "dlstXndZ") == year_text and tree.css_first("[name=bthSearch]"):
                # The query form answered for our term with no grid: no courses (guess).
                return ()
            raise SchoolPageError(
                "timetable: neither a course grid nor the query form", kind="timetable"
            )
        if any(len(r) != len(TIMETABLE_2013) + 1 for r in found):
            raise SchoolPageError(
                "timetable: rows without headers and not of 12 cells", kind="timetable"
            )
        columns, rows = TIMETABLE_2013, found
    courses = []
    for row in rows:
        course_id = _cell(row, columns, "course_id")
        name = _cell(row, columns, "name")
        if not course_id and not name:
            continue
        schedule = _cell(row, columns, "schedule")
        place = _cell(row, columns, "place")
        read_schedule = parse_schedule(schedule, place, term_weeks, course_id)
        courses.append(
            Course(
                course_id=course_id,
                name=name,
                class_id=_cell(row, columns, "class_id"),
                credits=_decimal(_cell(row, columns, "credits")),
                category=_cell(row, columns, "category"),
                teacher=_cell(row, columns, "teacher"),
                schedule=schedule,
                place=place,
                meetings=read_schedule.meetings,
                unparsed=read_schedule.unparsed,
                remarks=_cell(row, columns, "remarks"),
                stage=_cell(row, columns, "stage"),
                exam_time=_cell(row, columns, "exam_time"),
            )
        )
    return tuple(courses)


def parse_grades(
    page: Page, content_type: str | None, year_text: str, term_text: str
) -> list[Grade]:
    """The rows of a grade list answer; SessionExpired or SchoolPageError."""
    tree = read(page, content_type, "grades")
    check_term(tree, year_text, term_text, "grades")
    grid = find_grid(tree, GRADE_RULES, {"name", "score"})
    if grid is None:
        if selected(tree, "dlstXndZ") == year_text:
            # The query form answered for our term with no grid: no grades (guess).
            return []
        raise SchoolPageError("grades: neither a grade grid nor the query form", kind="grades")
    grades = []
    for row in grid.rows:
        name = _cell(row, grid.columns, "name")
        code = _cell(row, grid.columns, "code")
        if not name and not code:
            continue
        score_text = _cell(row, grid.columns, "score")
        grades.append(
            Grade(
                code=code,
                name=name,
                category=_cell(row, grid.columns, "category"),
                score_text=score_text,
                score=_decimal(score_text),
                credits=_decimal(_cell(row, grid.columns, "credits")),
                grade_points=_decimal(_cell(row, grid.columns, "grade_points")),
                remarks=_cell(row, grid.columns, "remarks"),
            )
        )
    return grades


# --- exams ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExamPage:
    """What an exam answer page holds: the exams, or the next frame to open."""

    exams: list[Exam] | None
    next_url: str | None


def parse_exam_page(page: Page, content_type: str | None) -> ExamPage:
    """One page of the exam chain (evidence: answer -> iframe -> frameset, the data in its
    second frame, `DIV.r11` blocks)."""
    tree = read(page, content_type, "exams")
    blocks = [n for n in tree.css("div") if "r11" in (n.attributes.get("class") or "").split()]
    if blocks:
        return ExamPage(_exams_of(blocks), None)
    frames = [f.attributes.get("src") or "" for f in tree.css("frame")]
    frames = [f.strip() for f in frames if f.strip()]
    if frames:
        # Evidence: the data is in the second frame; with one frame, that one (guess).
        return ExamPage(None, frames[1] if len(frames) > 1 else frames[0])
    iframe = tree.css_first("iframe")
    src = (iframe.attributes.get("src") or "").strip() if iframe is not None else ""
    if src:
        return ExamPage(None, src)
    raise SchoolPageError("exams: no exam blocks, frame or iframe", kind="exams")


def _exams_of(blocks: Sequence[LexborNode]) -> list[Exam]:
    exams = []
    for block in blocks:
        text = block.text(deep=True, separator=" ")
        if "课程" not in text:
            continue
        # Evidence: items follow each 考试; the text before the first is a heading.
        for item in text.split("考试")[1:]:
            exam = _exam_item(item)
            if exam is not None:
                exams.append(exam)
    return exams


def _exam_item(item: str) -> Exam | None:
    parts: dict[str, str] = {}
    loose: list[str] = []
    for token in item.replace("（", "(").replace("）", ")").split():
        found = _LABEL.match(token)
        label, value = (found[1], found[2].strip()) if found else ("", token)
        kind = _kind_by_label(label) or _kind_by_value(value)
        if kind is not None and kind not in parts:
            parts[kind] = value
        elif value:
            loose.append(value)
    if not parts and not loose:
        return None
    if "place" not in parts and loose:
        parts["place"] = " ".join(loose)
    day = _date(parts.get("date", ""))
    times = _TIMES.search(parts.get("time", ""))
    course = parts.get("course", "")
    name, course_id = course, ""
    found_course = _COURSE.match(course)
    if found_course:
        name, course_id = found_course[1].strip(), found_course[2].strip()
    if day is None or times is None:
        # The model needs a date and times; an entry without them is not scheduled yet.
        log.warning("academic exams: entry %r has no readable date or time, left out", item[:80])
        return None
    try:
        start = time(int(times[1]), int(times[2]))
        end = time(int(times[3]), int(times[4]))
    except ValueError:
        log.warning("academic exams: entry %r has impossible times, left out", item[:80])
        return None
    return Exam(day, start, end, parts.get("place", ""), name, course_id)


def _kind_by_label(label: str) -> str | None:
    if not label:
        return None
    if "日期" in label:
        return "date"
    if "时间" in label:
        return "time"
    if any(w in label for w in ("地点", "考场", "教室", "地址")):
        return "place"
    if any(w in label for w in ("课程", "科目", "名称")):
        return "course"
    return None


def _kind_by_value(value: str) -> str | None:
    if _TIMES.search(value):
        return "time"
    if _DATE.search(value):
        return "date"
    if _COURSE.match(value):
        return "course"
    return None


def _date(text: str) -> date | None:
    found = _DATE.search(text)
    if found is None:
        return None
    try:
        return date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return None
