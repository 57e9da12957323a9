"""Pure parsers of card center pages (GBK HTML): no I/O, typed results or SchoolError."""

from __future__ import annotations

import codecs
import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import (
    InvalidCredentials,
    QueryRejected,
    SchoolPageError,
    SchoolServerError,
    SessionExpired,
)
from school.models import AccountInfo, Transaction

Page = bytes | str

CHINA_TZ = timezone(timedelta(hours=8), "CST")
DEFAULT_CHARSET = "gbk"
RESULT_CELLS = 8

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_HTML_END = re.compile(r"</html\s*>\s*$", re.IGNORECASE)
# [0-9], not \d: \d also matches full-width and other scripts' digits.
_MONEY = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_BALANCE = re.compile(r"\s*([+-]?[0-9]+(?:\.[0-9]+)?)\s*元")
_PAGER = re.compile(r"共\s*([0-9]+)\s*条记录\s*当前第\s*([0-9]+)\s*页\s*/\s*共\s*([0-9]+)\s*页")
_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S")
_OVERLOAD_MARKS = ("HTTP Status 5", "Service Temporarily Unavailable", "Service Unavailable")
# Error messages the card center shows about the query we sent, not about itself.
_INPUT_ERRORS = ("日期不合法", "日期非法", "日期格式")

_ACCOUNT_LABELS = {
    "姓名": "name",
    "学工号": "student_id",
    "卡号": "card_number",
    "身份类型": "identity",
    "所属部门": "department",
    "卡状态": "status",
    "余额": "balance",
}


@dataclass(frozen=True, slots=True)
class ResultPage:
    """One parsed result page: its rows and its pager."""

    rows: tuple[Transaction, ...]
    page: int
    pages: int
    total: int


# --- decoding ---------------------------------------------------------------


def page_charset(body: bytes, content_type: str | None = None) -> str:
    """The declared charset: the Content-Type header first, then the meta tag, else GBK."""
    if content_type:
        found = _HEADER_CHARSET.search(content_type)
        if found:
            return found.group(1).lower()
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        return meta.group(1).decode("ascii").lower()
    return DEFAULT_CHARSET


def decode_page(page: Page, content_type: str | None = None) -> str:
    """The page as text, decoded by its declared charset; SchoolPageError if it does not decode."""
    if isinstance(page, str):
        return page
    charset = page_charset(page, content_type)
    try:
        codec = codecs.lookup(charset).name
    except LookupError as exc:
        raise SchoolPageError(f"page declares an unknown charset {charset!r}") from exc
    # Browsers (WHATWG) decode pages labelled GBK/GB2312 with the GB18030 decoder,
    # a superset; old Java servers send such characters under the GBK label.
    if codec in ("gbk", "gb2312"):
        codec = "gb18030"
    try:
        return page.decode(codec)
    except UnicodeDecodeError as exc:
        raise SchoolPageError(f"page does not decode as {charset}") from exc


def _tree(page: Page, content_type: str | None) -> tuple[str, LexborHTMLParser]:
    text = decode_page(page, content_type)
    return text, LexborHTMLParser(text)


def _text(node: LexborNode | None) -> str:
    if node is None:
        return ""
    return node.text(deep=True, separator="", strip=False).strip()


def _check_overload(tree: LexborHTMLParser) -> None:
    for h1 in tree.css("h1"):
        title = _text(h1)
        if any(mark in title for mark in _OVERLOAD_MARKS):
            raise SchoolServerError(f"card center overloaded: {title[:80]}")


def _check_complete(text: str) -> None:
    if not _HTML_END.search(text):
        raise SchoolPageError("page is truncated (no </html>)")


def _error_info(tree: LexborHTMLParser) -> str:
    return _text(tree.css_first("#errorInfo"))


def _login_form(tree: LexborHTMLParser) -> LexborNode | None:
    for form in tree.css("form"):
        action = (form.attributes.get("action") or "").strip()
        if action.split("?", 1)[0].endswith("loginstudent.action"):
            return form
    return None


def _data_tree(page: Page, content_type: str | None) -> LexborHTMLParser:
    """A complete data page's tree, or the SchoolError its content means."""
    text, tree = _tree(page, content_type)
    _check_overload(tree)
    if _login_form(tree) is not None:
        raise SessionExpired("card center returned its login page: session not logged in")
    error = _error_info(tree)
    if any(mark in error for mark in _INPUT_ERRORS):
        raise QueryRejected(f"card center refused the query: {error[:80]}")
    if error:
        raise SchoolPageError(f"card center error page: {error[:80]}")
    _check_complete(text)
    return tree


# --- values -------------------------------------------------------------------


def parse_money(text: str) -> Decimal:
    """A money cell like `-5.50` as a Decimal; SchoolPageError if it is not one."""
    cleaned = text.strip()
    if not _MONEY.fullmatch(cleaned):
        raise SchoolPageError(f"not an amount of money: {cleaned[:40]!r}")
    try:
        return Decimal(cleaned)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise SchoolPageError(f"not an amount of money: {cleaned[:40]!r}") from exc


def parse_time(text: str, clock_offset: timedelta) -> datetime:
    """A card center time `2013/08/24 11:47:05` as an aware +08:00 datetime, clock-corrected."""
    cleaned = " ".join(text.split())
    # strptime would also take full-width digits; the card center writes ASCII.
    for fmt in _TIME_FORMATS if cleaned.isascii() else ():
        try:
            naive = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        return naive.replace(tzinfo=CHINA_TZ) + clock_offset
    raise SchoolPageError(f"not a card center time: {cleaned[:40]!r}")


# --- pages --------------------------------------------------------------------


def is_login_page(page: Page, content_type: str | None = None) -> bool:
    """Whether the page holds the login form (action ending in loginstudent.action)."""
    _, tree = _tree(page, content_type)
    return _login_form(tree) is not None


def check_login_page(page: Page, content_type: str | None = None) -> None:
    """Accept the home page only if it is the login form; SchoolServerError if overloaded."""
    _, tree = _tree(page, content_type)
    _check_overload(tree)
    if _login_form(tree) is None:
        raise SchoolPageError("home page is not the login page")


def parse_login_result(page: Page, content_type: str | None = None) -> str:
    """The student's name from the welcome page; InvalidCredentials or SchoolPageError otherwise."""
    text, tree = _tree(page, content_type)
    _check_overload(tree)
    if _login_form(tree) is not None:
        error = _error_info(tree)
        if "密码错误" in error:
            raise InvalidCredentials("wrong_password", "card center: wrong password")
        if "无此用户" in error:
            raise InvalidCredentials("unknown_student", "card center: no such student")
        if error:
            raise SchoolPageError(f"login refused: {error[:80]}")
        raise SchoolPageError("login page returned without a reason")
    _check_complete(text)
    welcome = tree.css_first("#welcome")
    if welcome is None:
        raise SchoolPageError("login answer has no welcome block")
    name = _text(welcome.css_first(".name"))
    if not name:
        raise SchoolPageError("welcome block has no student name")
    return name


def parse_form(page: Page, action_suffix: str, content_type: str | None = None) -> dict[str, str]:
    """The fields of the form whose action ends with action_suffix (inputs and selects)."""
    tree = _data_tree(page, content_type)
    for form in tree.css("form"):
        action = (form.attributes.get("action") or "").strip().split("?", 1)[0]
        if action.endswith(action_suffix):
            return _form_fields(form)
    raise SchoolPageError(f"expected a form posting to {action_suffix}")


def _form_fields(form: LexborNode) -> dict[str, str]:
    fields: dict[str, str] = {}
    for node in form.css("input, select"):
        name = node.attributes.get("name")
        if not name:
            continue
        if node.tag != "select":
            fields[name] = (node.attributes.get("value") or "").strip()
            continue
        options = node.css("option")
        chosen = [o for o in options if "selected" in o.attributes] or options[:1]
        if not chosen:
            fields[name] = ""
            continue
        # As a browser does: an option without a value attribute submits its text.
        value = chosen[0].attributes.get("value")
        fields[name] = (value if value is not None else _text(chosen[0])).strip()
    return fields


def parse_account_form(page: Page, action_suffix: str, content_type: str | None = None) -> str:
    """The card account number offered by the account form (today or history step 1)."""
    fields = parse_form(page, action_suffix, content_type)
    account = fields.get("account", "").strip()
    if not account:
        raise SchoolPageError("account form offers no card account")
    return account


def parse_account(page: Page, student_id: str, content_type: str | None = None) -> AccountInfo:
    """The account page (table.neiwen of label/value pairs) of student_id."""
    tree = _data_tree(page, content_type)
    table = tree.css_first("table.neiwen")
    if table is None:
        raise SchoolPageError("account page has no table.neiwen")
    cells = tuple(_text(td) for td in table.css("td"))
    values: dict[str, str] = {}
    for label, value in itertools.pairwise(cells):
        if not label.endswith(("：", ":")):
            continue
        key = _ACCOUNT_LABELS.get("".join(label[:-1].split()))
        if key is not None and key not in values:
            values[key] = value
    missing = [label for label, key in _ACCOUNT_LABELS.items() if key not in values]
    if missing:
        raise SchoolPageError(f"account page lacks {', '.join(missing)}")
    if values["student_id"] != student_id:
        # Another student's page would leak their data: refuse it outright.
        raise SchoolPageError("account page belongs to another student")
    # The card balance comes first; the transitional balances after it must not stand in.
    balance = _BALANCE.match(values["balance"])
    if balance is None:
        raise SchoolPageError("account page balance is unreadable")
    return AccountInfo(
        student_id=values["student_id"],
        name=values["name"],
        card_number=values["card_number"],
        identity=values["identity"],
        department=values["department"],
        status=values["status"],
        balance=parse_money(balance.group(1)),
        cells=cells,
    )


def parse_result(
    page: Page, clock_offset: timedelta, content_type: str | None = None
) -> ResultPage:
    """A transaction result page (table.dgrid plus pager), all or nothing."""
    tree = _data_tree(page, content_type)
    table = tree.css_first("table.dgrid")
    pager = tree.css_first("#pager")
    if table is None or pager is None:
        raise SchoolPageError("result page lacks its table or pager (truncated?)")
    found = _PAGER.search(_text(pager))
    if found is None:
        raise SchoolPageError(f"unreadable pager: {_text(pager)[:80]!r}")
    total, page_no, pages = (int(g) for g in found.groups())
    if not 1 <= page_no <= pages:
        raise SchoolPageError(f"pager says page {page_no} of {pages}")
    rows: list[Transaction] = []
    for tr in table.css("tr.listbg, tr.listbg2"):
        cells = [_text(td) for td in tr.css("td")]
        if len(cells) != RESULT_CELLS:
            raise SchoolPageError(f"result row has {len(cells)} cells, expected {RESULT_CELLS}")
        rows.append(
            Transaction(
                time=parse_time(cells[0], clock_offset),
                way=cells[1],
                position=cells[2],
                amount=parse_money(cells[4]),
                balance_after=parse_money(cells[5]),
            )
        )
    if len(rows) > total:
        raise SchoolPageError(f"page holds {len(rows)} rows but the pager says {total} in all")
    return ResultPage(rows=tuple(rows), page=page_no, pages=pages, total=total)


def parse_result_page(
    page: Page, clock_offset: timedelta, content_type: str | None = None
) -> tuple[list[Transaction], int, int, int]:
    """A result page as (rows, page, pages, total); see parse_result."""
    result = parse_result(page, clock_offset, content_type)
    return list(result.rows), result.page, result.pages, result.total
