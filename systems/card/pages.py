"""Pure parsers of card center pages (GBK HTML): no I/O, typed results or SchoolError.

Every rule here says what it rests on: "evidence" is the 2013 jnu.fm client or
a public client of the same platform at another school (see
docs/card-center-protocol.md), "guess" is ours. The parsers lean on the
evidence and read everything else leniently: forms are taken as the page
gives them, transaction columns are found by their header text, the pager may
be either known one or absent, labels may be padded or missing.

They judge a page by what it says, not by how it is written: the same page in
upper-case tags with its end tags left out, with labels in <font>, <span> or
bare cells, text as character references, without </html> or without a
declared charset reads the same (docs/card-center-protocol.md, "Markup
variants"). Every SchoolPageError names the kind of page it could not read
(`login`, `balance`, `today`, `history`, `wait`, `result`, `form`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import (
    CredentialsReason,
    InvalidCredentials,
    QueryRejected,
    SchoolPageError,
    SchoolServerError,
    SessionExpired,
)
from school.html import (
    Form,
    Page,
    body_text,
    forms_of,
    squeezed,
    text_of,
    tree_of,
)
from systems.card.models import AccountInfo, Transaction

CHINA_TZ = timezone(timedelta(hours=8), "CST")

_HTML_END = re.compile(r"</html\s*>\s*$", re.IGNORECASE)
# Elements HTML lets no page leave open: a page without </html> is complete only
# if each of these it opens is closed (a page cut short ends inside one).
_MUST_CLOSE = ("table", "form", "select")
_OVERLOAD_MARKS = ("HTTP Status 5", "Service Temporarily Unavailable", "Service Unavailable")
# Login refusals: the later platform's words are "登陆失败，密码错误" and
# "登陆失败，无此用户名称！" (evidence); the parts matched here also cover 2013's.
_WRONG_PASSWORD = "密码错误"  # noqa: S105 - an error message, not a secret
_UNKNOWN_STUDENT = ("无此用户", "用户不存在")
# A refusal without the login form must say the login failed (the later
# platform's words begin so; 登录 is the other common spelling: guess).
_LOGIN_FAILED = ("登陆失败", "登录失败")
# Error messages the card center shows about the query we sent, not about itself (guess).
_INPUT_ERRORS = ("日期不合法", "日期非法", "日期格式", "日期错误")
# Where error messages sit: #errorInfo (guess), p.biaotou (evidence: a later
# platform's result page puts its message there).
_MESSAGE_SELECTORS = ("#errorInfo", ".biaotou")

# Money like -5.50, 1,234.00, +100 (evidence: two decimals, expenses negative;
# thousands separators: a later client strips them).
_MONEY = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
# The account balance: the amount before the first 元 (evidence: 2013 and later clients).
_BALANCE = re.compile(r"^\s*([+-]?[0-9][0-9,]*(?:\.[0-9]+)?)\s*元")
# Card center times (evidence: `2013/08/24 11:47:05`; 2013 parsed them leniently,
# so also -, ., 年月日 separators, single digits, no seconds, fractions of a second).
_TIME = re.compile(
    r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:\s*T?\s*(\d{1,2})\s*[:：时]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2})(?:\.\d+)?)?)?"
)
_COMPACT_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})\s*(\d{2}):?(\d{2}):?(\d{2})")
# Pagers: "共N页&nbsp;&nbsp;当前第M页" (evidence, later platform) and
# "共T条记录 当前第M页/共N页" (guess, kept readable); pages may be 0 for no rows.
_PAGES = re.compile(r"共\s*([0-9]+)\s*页")
_CURRENT = re.compile(r"当前\s*第\s*([0-9]+)\s*页")
_TOTAL = re.compile(r"共\s*([0-9]+)\s*条")

# Account page labels (text without spaces and colon) -> AccountInfo field.
# Evidence: 学工号, 帐号, 身份类型, 卡状态, 余额, 部门名称 (later platform);
# the others: guess.
_ACCOUNT_LABELS = {
    "姓名": "name",
    "学工号": "student_id",
    "学号": "student_id",
    "工号": "student_id",
    "卡号": "card_number",
    "帐号": "card_number",
    "账号": "card_number",
    "卡帐号": "card_number",
    "卡账号": "card_number",
    "身份类型": "identity",
    "身份": "identity",
    "所属部门": "department",
    "部门名称": "department",
    "部门": "department",
    "院系": "department",
    "卡状态": "status",
    "状态": "status",
}

# Transaction columns by header text (guess: the evidence gives positions and
# the names clients give the columns, not the header cells themselves). Tried
# in this order, so 现有余额 is a balance before 额 could make it an amount.
_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("balance", ("余额",)),
    ("amount", ("交易额", "交易金额", "金额", "发生额")),
    ("time", ("时间", "日期")),
    ("way", ("交易类型", "交易名称", "类型", "交易方式")),
    ("position", ("子系统", "商户", "地点", "位置", "终端", "营业")),
)
# Without a recognisable header: the 2013 client's positions (evidence).
COLUMNS_2013 = {"time": 0, "way": 1, "position": 2, "amount": 3, "balance": 4}


@dataclass(frozen=True, slots=True)
class ResultPage:
    """One parsed result page: its rows, what its pager says (None: no pager), its forms."""

    rows: tuple[Transaction, ...]
    page: int | None
    pages: int | None
    total: int | None
    forms: tuple[Form, ...] = ()


def _of_kind(exc: SchoolPageError, kind: str) -> SchoolPageError:
    """The error, naming the page kind if it named none."""
    if exc.kind is None:
        exc.kind = kind
    return exc


def _tree(page: Page, content_type: str | None, kind: str) -> tuple[str, LexborHTMLParser]:
    try:
        return tree_of(page, content_type)
    except SchoolPageError as exc:
        raise _of_kind(exc, kind) from None


def _check_overload(tree: LexborHTMLParser) -> None:
    for node in tree.css("title, h1"):
        title = text_of(node)
        if any(mark in title for mark in _OVERLOAD_MARKS):
            raise SchoolServerError(f"card center overloaded: {title[:80]}")


def _check_complete(text: str, kind: str) -> None:
    """SchoolPageError unless the page is whole.

    Whole: it ends with </html>; or, without it (HTML lets a page leave out
    </body></html>, and older servers did), it ends outside a tag and closes
    every table, form and select it opens, whose end tags HTML never lets a
    page leave out. What the page must hold (rows, a balance, a form) each
    parser checks after.
    """
    if _HTML_END.search(text):
        return
    tail = text.rstrip()
    left_open = [
        tag
        for tag in _MUST_CLOSE
        if len(re.findall(rf"</{tag}\s*>", text, re.IGNORECASE))
        < len(re.findall(rf"<{tag}[\s>]", text, re.IGNORECASE))
    ]
    if left_open or tail.rfind("<") > tail.rfind(">"):
        what = ", ".join(left_open) or "a tag"
        raise SchoolPageError(f"page is truncated (no </html>, {what} left open)", kind=kind)


def _message(tree: LexborHTMLParser) -> str:
    for selector in _MESSAGE_SELECTORS:
        found = " ".join(t for t in (text_of(n) for n in tree.css(selector)) if t)
        if found:
            return found
    return ""


# --- forms --------------------------------------------------------------------


def parse_forms(
    page: Page, content_type: str | None = None, kind: str = "form"
) -> tuple[Form, ...]:
    """Every form of a data page, as a browser would submit it; SchoolError for error pages."""
    return forms_of(_data_tree(page, content_type, kind))


def _is_login_form(form: Form) -> bool:
    # Evidence: the login form posts to loginstudent.action with `passwd`.
    path = form.action.split("?", 1)[0]
    return path.endswith("loginstudent.action") or "passwd" in form.names()


def _login_form(tree: LexborHTMLParser) -> Form | None:
    return next((f for f in forms_of(tree) if _is_login_form(f)), None)


def _data_tree(page: Page, content_type: str | None, kind: str) -> LexborHTMLParser:
    """A complete data page's tree, or the SchoolError its content means."""
    text, tree = _tree(page, content_type, kind)
    _check_overload(tree)
    if _login_form(tree) is not None:
        raise SessionExpired("card center returned its login page: session not logged in")
    _check_complete(text, kind)
    message = _message(tree)
    # A page without forms and rows may hold its message anywhere (guess).
    bare = not tree.css("form") and not _data_rows(tree)
    text = message or (body_text(tree) if bare else "")
    if any(mark in text for mark in _INPUT_ERRORS):
        raise QueryRejected(f"card center refused the query: {text[:80]}")
    if bare and message and _pager(tree)[1] is None and not _header(tree, []):
        raise SchoolPageError(f"card center error page: {message[:80]}", kind=kind)
    return tree


# --- values -------------------------------------------------------------------


def parse_money(text: str, kind: str | None = None) -> Decimal:
    """A money cell like `-5.50` or `1,234.00元` as a Decimal; SchoolPageError if it is not one."""
    cleaned = squeezed(text).replace(",", "").replace("，", "").replace("－", "-")
    cleaned = cleaned.removesuffix("元").lstrip("¥￥")
    if not _MONEY.fullmatch(cleaned):
        raise SchoolPageError(f"not an amount of money: {text.strip()[:40]!r}", kind=kind)
    try:
        return Decimal(cleaned)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise SchoolPageError(f"not an amount of money: {text.strip()[:40]!r}", kind=kind) from exc


def parse_time(text: str, clock_offset: timedelta) -> datetime:
    """A card center time such as `2013/08/24 11:47:05`, aware (+08:00) and clock-corrected."""
    cleaned = " ".join(text.split())
    # [0-9] semantics: the card center writes ASCII digits, \d would take others too.
    found = _TIME.fullmatch(cleaned) if cleaned.isascii() or "年" in cleaned else None
    if found is None and cleaned.isascii():
        found = _COMPACT_TIME.fullmatch(cleaned)
    if found is None or not all(g is None or g.isascii() for g in found.groups()):
        raise SchoolPageError(f"not a card center time: {cleaned[:40]!r}")
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in found.groups())
    try:
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise SchoolPageError(f"not a card center time: {cleaned[:40]!r}") from exc
    return naive.replace(tzinfo=CHINA_TZ) + clock_offset


# --- login ----------------------------------------------------------------------


def _refusal(text: str) -> CredentialsReason | None:
    """What a login refusal text says: a wrong password or an unknown student (not both)."""
    wrong = _WRONG_PASSWORD in text
    unknown = any(mark in text for mark in _UNKNOWN_STUDENT)
    if wrong == unknown:
        return None
    return "wrong_password" if wrong else "unknown_student"


def parse_login_answer(page: Page, content_type: str | None = None) -> None:
    """Return if the login answer refused nothing; raise what a refusal means.

    Judged by meaning, not by markup. InvalidCredentials only for a refusal
    the page states: a text saying wrong password or unknown student, with
    the login form given back, or, without the form, saying the login failed
    (登陆失败). The login form back for another or no reason is an unknown
    outcome: SchoolPageError(kind="login"), never InvalidCredentials.
    Returning is not success: only the account data that follows proves it
    (parse_login_account).
    """
    _, tree = _tree(page, content_type, "login")
    _check_overload(tree)
    text = body_text(tree)
    form = _login_form(tree)
    reason = _refusal(text)
    if reason is not None and (form is not None or any(m in text for m in _LOGIN_FAILED)):
        if reason == "wrong_password":
            raise InvalidCredentials(reason, "card center: wrong password")
        raise InvalidCredentials(reason, "card center: no such student")
    if form is not None:
        said = _message(tree)
        raise SchoolPageError(f"login refused: {said[:80] or 'no reason given'}", kind="login")


def parse_login_account(
    page: Page, student_id: str, content_type: str | None = None
) -> AccountInfo:
    """The account data proving a login the card center did not refuse.

    Anything but account data (the login form again, a page without a balance,
    another student's page) leaves the login's outcome unknown:
    SchoolPageError(kind="login"), never InvalidCredentials.
    """
    try:
        return parse_account(page, student_id, content_type)
    except SessionExpired as exc:
        raise SchoolPageError(
            "login not refused, but the account page is the login page", kind="login"
        ) from exc
    except QueryRejected as exc:  # an error about a query where none was asked
        raise SchoolPageError(f"login outcome unknown: {exc}", kind="login") from exc
    except SchoolPageError as exc:
        raise SchoolPageError(f"login outcome unknown: {exc}", kind="login") from exc


# --- account --------------------------------------------------------------------


def _inline(text: str) -> tuple[str | None, str]:
    """A known label and its value sharing one cell ("余额：36.50元"), else (None, "")."""
    head, colon, value = squeezed(text).partition("：")
    if not colon:
        head, colon, value = squeezed(text).partition(":")
    if colon and value and ("余额" in head or head in _ACCOUNT_LABELS):
        return head, text.split(colon, 1)[1].strip()
    return None, ""


def _label(text: str) -> str | None:
    """The label a cell holds ("卡  状  态：" -> "卡状态"), or None for a value cell."""
    label = squeezed(text)
    if label.endswith(("：", ":")) and 0 < len(label) <= 12:
        return label[:-1]
    return None


def parse_account(page: Page, student_id: str, content_type: str | None = None) -> AccountInfo:
    """The account page of student_id: its labelled values; only the balance is required.

    Evidence: every cell is td.neiwen, labels end with a full-width colon, the
    balance cell holds 余额 and the amount before the first 元. SchoolPageError
    when the page shows no balance or another student's number.
    """
    tree = _data_tree(page, content_type, "balance")
    nodes = tree.css("td.neiwen") or tree.css("td")
    cells = tuple(text_of(node) for node in nodes)
    values: dict[str, str] = {}
    balance_text: str | None = None
    for i, cell in enumerate(cells):
        label = _label(cell)
        if label is None:
            label, value = _inline(cell)
            if label is None:
                continue
        else:
            following = cells[i + 1] if i + 1 < len(cells) else ""
            value = following if _label(following) is None else ""
        if "余额" in label and balance_text is None:
            balance_text = value
        key = _ACCOUNT_LABELS.get(label)
        if key is not None and key not in values:
            values[key] = value
    if balance_text is None:
        # 2013's rule: the first value cell holding 余额.
        balance_text = next((c for c in cells if _label(c) is None and "余额" in c), None)
    found = _BALANCE.match(balance_text or "")
    if found is None:
        raise SchoolPageError("account page shows no balance", kind="balance")
    shown_id = values.get("student_id", "")
    if shown_id and shown_id != student_id:
        # Another student's page would leak their data: refuse it outright.
        raise SchoolPageError("account page belongs to another student", kind="balance")
    return AccountInfo(
        student_id=student_id,
        name=values.get("name", ""),
        card_number=values.get("card_number", ""),
        identity=values.get("identity", ""),
        department=values.get("department", ""),
        status=values.get("status", ""),
        balance=parse_money(found.group(1), "balance"),
        cells=cells,
    )


# --- results --------------------------------------------------------------------


def _data_rows(tree: LexborHTMLParser) -> list[LexborNode]:
    # Evidence: tr.listbg / tr.listbg2 (clients match class^=listbg).
    return [
        tr
        for tr in tree.css("tr")
        if any(c.startswith("listbg") for c in (tr.attributes.get("class") or "").split())
    ]


def _columns(texts: list[str]) -> dict[str, int]:
    """Which header cell is which column; needs at least the time and the amount."""
    found: dict[str, int] = {}
    for index, text in enumerate(squeezed(t) for t in texts):
        for column, marks in _COLUMNS:
            if column not in found and any(mark in text for mark in marks):
                found[column] = index
                break
    return found if {"time", "amount"} <= found.keys() else {}


def _header(tree: LexborHTMLParser, rows: list[LexborNode]) -> dict[str, int]:
    """The columns named by the header row of the rows' table (the last before the rows)."""
    candidates = tree.css("tr")
    if rows:
        table = rows[0].parent
        while table is not None and table.tag != "table":
            table = table.parent
        if table is not None:
            candidates = table.css("tr")
    header: dict[str, int] = {}
    for tr in candidates:
        if rows and tr == rows[0]:
            break
        columns = _columns([text_of(c) for c in tr.css("td, th")])
        if columns:
            header = columns
    return header


def _pager(tree: LexborHTMLParser) -> tuple[int | None, int | None, int | None]:
    """(page, pages, total rows) from a pager: tr.bl first (evidence), else the page's text."""
    texts = [text_of(tr) for tr in tree.css("tr.bl")]
    texts.reverse()
    texts.append(body_text(tree))
    for text in texts:
        pages = _PAGES.search(text)
        if pages is None:
            continue
        current = _CURRENT.search(text)
        total = _TOTAL.search(text)
        return (
            int(current.group(1)) if current else None,
            int(pages.group(1)),
            int(total.group(1)) if total else None,
        )
    return None, None, None


def _row(cells: list[str], columns: dict[str, int], clock_offset: timedelta) -> Transaction:
    needed = max(columns.values())
    if len(cells) <= needed:
        raise SchoolPageError(f"result row has {len(cells)} cells, expected at least {needed + 1}")

    def cell(name: str) -> str:
        return cells[columns[name]] if name in columns else ""

    return Transaction(
        time=parse_time(cell("time"), clock_offset),
        way=cell("way"),
        position=cell("position"),
        amount=parse_money(cell("amount")),
        balance_after=parse_money(cell("balance")),
    )


def parse_result(
    page: Page, clock_offset: timedelta, content_type: str | None = None
) -> ResultPage:
    """A transaction result page, all or nothing; SchoolPageError if it is not one."""
    kind = "result"
    tree = _data_tree(page, content_type, kind)
    rows = _data_rows(tree)
    header = _header(tree, rows)
    page_no, pages, total = _pager(tree)
    if not rows and not header and pages is None:
        raise SchoolPageError("not a result page: no rows, no column headers, no pager", kind=kind)
    columns = header or COLUMNS_2013
    if rows and "balance" not in columns:
        raise SchoolPageError("result table names no balance column", kind=kind)
    try:
        parsed = tuple(
            _row([text_of(td) for td in tr.css("td")], columns, clock_offset) for tr in rows
        )
    except SchoolPageError as exc:
        raise _of_kind(exc, kind) from None
    if pages is not None:
        pages = max(pages, 1)  # a later client saw 共0页 for no rows
        if page_no is not None and not 1 <= page_no <= pages:
            raise SchoolPageError(f"pager says page {page_no} of {pages}", kind=kind)
        if total is not None and len(parsed) > total:
            raise SchoolPageError(
                f"page holds {len(parsed)} rows but the pager says {total}", kind=kind
            )
    return ResultPage(rows=parsed, page=page_no, pages=pages, total=total, forms=forms_of(tree))


def is_result_page(page: Page, content_type: str | None = None) -> bool:
    """Whether a data page is a result page (rows, column headers or a pager)."""
    tree = _data_tree(page, content_type, "result")
    rows = _data_rows(tree)
    return bool(rows) or bool(_header(tree, rows)) or _pager(tree)[1] is not None
