"""Pure parsers of the Zhuhai campus library's ILAS pages (GBK HTML).

"Evidence" is the 2013 jnu.fm client or public clients of ILAS at other schools
(docs/library-protocol.md); "guess" is ours. Pages are judged by their content, not
by how they are written: tags in any case, labels in any element and spaced with
full-width or no-break spaces, the charset from the header, else the meta tag, else
GBK; a page is complete when its tables are closed, whether or not it ends in
`</html>`. A page that cannot be read raises SchoolPageError (kind `ilas_search` or
`ilas_detail`), never a partial or wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import QueryRejected, SchoolPageError, SchoolServerError
from school.html import Form, Page, body_text, forms_of, squeezed, text_of
from systems.library.holdings import holding
from systems.library.isbn import find_isbn, normalise_isbn
from systems.library.markup import read_page, tables_closed
from systems.library.models import Holding, RecordPage

# Evidence (2013 decoded GBK): a page that declares nothing is GBK.
USUAL_CHARSET = "gbk"
SEARCH_KIND = "ilas_search"
DETAIL_KIND = "ilas_detail"
_OVERLOAD_MARKS = ("HTTP Status 5", "Service Temporarily Unavailable", "Service Unavailable")
# Guess: the count line of a result page, "共检索到 123 条记录".
_TOTAL = re.compile(r"共\s*(?:检索到|命中)?\s*(\d+)\s*条")
# Guess: the screen and the number of screens on the count line, "第 1/3 页".
_SCREENS = re.compile(r"第\s*(\d+)\s*/\s*(\d+)\s*页")
_NEXT_FORM_OPEN = re.compile(r"<form\b[^>]*\bname\s*=\s*[\"']?nextpage\b", re.IGNORECASE)
_FORM_CLOSE = re.compile(r"</form\s*>", re.IGNORECASE)
# Guess: a search without hits.
_NO_HITS = ("没有检索到", "没有找到", "检索结果为空", "无检索结果", "未检索到")
# Evidence (other ILAS sites): the next page is the form `nextpage`, submitted by a
# `javascript:document.nextpage.submit()` link that the last page does not show.
_NEXT_LINK = "document.nextpage.submit()"
# Guess: a detail page of a record number that does not exist.
_NO_RECORD = ("无此记录", "没有此记录", "记录不存在")
RECORD_ID = re.compile(r"[0-9A-Za-z]{1,20}(?:\.[0-9]{1,3})?")

# Detail labels (spaces removed) -> field. Evidence: 题　名, 作　者, 出版项, ISBN,
# 索取号, 附注信息; the others: guess.
_LABELS: dict[str, str] = {
    "题名": "title",
    "正题名": "title",
    "作者": "author",
    "责任者": "author",
    "出版项": "publisher",
    "出版发行": "publisher",
    "ISBN": "isbn",
    "ISBN/ISSN": "isbn",
    "标准编号": "isbn",
    "索取号": "call_number",
    "索书号": "call_number",
    "载体形态": "description",
    "稽核项": "description",
    "页码": "description",
    "附注信息": "notes",
    "附注": "notes",
    "提要": "notes",
}
# Labels are compared without regard to case ("ISBN", "Isbn", "TITLE").
_FOLDED_LABELS = {label.lower(): key for label, key in _LABELS.items()}
# Holding columns by header text (evidence, another ILAS site: 条码号, 馆藏地点,
# 流通类型, 状态, 应还日期, 卷册说明).
_HOLDING_COLUMNS = {"location": "馆藏地点", "status": "状态", "due": "应还日期", "kind": "流通类型"}


@dataclass(frozen=True, slots=True)
class IlasRow:
    """One result row (evidence, 2013: title, author, publisher, pages, price, call
    number, link to the detail page)."""

    title: str
    author: str
    publisher: str
    pages: str
    price: str
    call_number: str
    recno: str
    dbno: str


@dataclass(frozen=True, slots=True)
class IlasResults:
    rows: tuple[IlasRow, ...]
    total: int | None
    next_form: Form | None


def record_id_of(recno: str, dbno: str) -> str:
    """The record id: v_recno, with the database number after a dot unless it is 0."""
    return recno if dbno in ("", "0") else f"{recno}.{dbno}"


def split_record_id(record_id: str) -> tuple[str, str]:
    recno, _, dbno = record_id.partition(".")
    return recno, dbno or "0"


def _checked(page: Page, content_type: str | None, kind: str) -> tuple[str, LexborHTMLParser]:
    text, tree = read_page(page, content_type, USUAL_CHARSET, kind)
    for node in tree.css("title, h1"):
        title = text_of(node)
        if any(mark in title for mark in _OVERLOAD_MARKS):
            raise SchoolServerError(f"catalogue overloaded: {title[:80]}")
    return text, tree


def _complete(text: str, kind: str) -> None:
    if not tables_closed(text):
        raise SchoolPageError("page is truncated (a table is not closed)", kind)


def _detail_link(cell: LexborNode) -> tuple[str, str]:
    link = cell.css_first("a")
    href = (link.attributes.get("href") or "") if link is not None else ""
    query = parse_qs(urlsplit(href).query)
    recno = (query.get("v_recno") or [""])[0]
    dbno = (query.get("v_curdbno") or ["0"])[0]
    if not RECORD_ID.fullmatch(recno) or not dbno.isdigit():
        raise SchoolPageError("a result row has no detail link (v_recno)", SEARCH_KIND)
    return recno, dbno


def _next_form(tree: LexborHTMLParser, text: str) -> Form | None:
    opened = _NEXT_FORM_OPEN.search(text)
    if opened is not None and not _FORM_CLOSE.search(text, opened.end()):
        raise SchoolPageError("page is truncated (inside the nextpage form)", SEARCH_KIND)
    if _NEXT_LINK not in text:
        return None
    nodes = tree.css("form")
    forms = forms_of(tree)
    for node, form in zip(nodes, forms, strict=True):
        if (node.attributes.get("name") or "") == "nextpage":
            return form
    raise SchoolPageError("a next-page link without the nextpage form", SEARCH_KIND)


def parse_results(page: Page, content_type: str | None = None) -> IlasResults:
    """A result page: rows after the header row whose first cell is 题名 (evidence).

    Complete: the result table closed (a page cut inside a row is refused), and when
    the count line says more screens follow (guess: "第 1/3 页"), the nextpage form
    there. SchoolPageError(kind="ilas_search") otherwise."""
    text, tree = _checked(page, content_type, SEARCH_KIND)
    header = None
    for row in tree.css("tr"):
        first = row.css_first("td, th")
        if first is not None and squeezed(text_of(first)) == "题名":
            header = row
            break
    shown = body_text(tree)
    total_found = _TOTAL.search(shown)
    total = int(total_found.group(1)) if total_found else None
    if header is None:
        if any(mark in shown for mark in _NO_HITS):
            return IlasResults((), 0, None)
        raise SchoolPageError("neither a result table (题名) nor a no-hit message", SEARCH_KIND)
    _complete(text, SEARCH_KIND)
    rows = []
    sibling = header.next
    while sibling is not None:
        if sibling.tag == "tr":
            cells = sibling.css("td")
            if len(cells) >= 7:
                recno, dbno = _detail_link(cells[6])
                values = [text_of(c) for c in cells[:6]]
                if not values[0]:
                    raise SchoolPageError("a result row without a title", SEARCH_KIND)
                title, author, publisher, pages, price, call_number = values
                rows.append(
                    IlasRow(title, author, publisher, pages, price, call_number, recno, dbno)
                )
            elif len(cells) > 1:
                raise SchoolPageError(
                    f"a result row has {len(cells)} cells, expected 7", SEARCH_KIND
                )
        sibling = sibling.next
    if total is not None and len(rows) > total:
        raise SchoolPageError(f"{len(rows)} rows, the page counts {total}", SEARCH_KIND)
    next_form = _next_form(tree, text)
    screens = _SCREENS.search(shown)
    if screens and int(screens.group(1)) < int(screens.group(2)) and next_form is None:
        raise SchoolPageError("more screens follow but the page has no nextpage form", SEARCH_KIND)
    return IlasResults(tuple(rows), total, next_form)


def _holdings(tree: LexborHTMLParser, call_number: str) -> tuple[Holding, ...]:
    """Copies from div[name=holding] (evidence, another ILAS site), columns by header."""
    scope = tree.css_first("div[name=holding]")
    if scope is None:
        return ()
    rows = scope.css("tr")
    if not rows:
        return ()
    header = [squeezed(text_of(c)) for c in rows[0].css("td, th")]
    where = {}
    for key, label in _HOLDING_COLUMNS.items():
        if label in header:
            where[key] = header.index(label)
    if "location" not in where or "status" not in where:
        raise SchoolPageError("holdings without 馆藏地点 and 状态 columns", DETAIL_KIND)
    copies = []
    for row in rows[1:]:
        cells = [text_of(c) for c in row.css("td")]
        if len(cells) != len(header):
            # Evidence: a last row that is not a copy (a footer).
            continue
        due = cells[where["due"]] if "due" in where else ""
        copies.append(holding(cells[where["location"]], call_number, cells[where["status"]], due))
    return tuple(copies)


def parse_detail(page: Page, content_type: str | None = None) -> RecordPage:
    """A detail page: label rows (题　名 ...), the ISBN input, the copies.

    Complete: every table closed and the copies (div[name=holding]) shown; else
    SchoolPageError(kind="ilas_detail")."""
    text, tree = _checked(page, content_type, DETAIL_KIND)
    fields: list[tuple[str, str]] = []
    named: dict[str, str] = {}
    for row in tree.css("tr"):
        cells = row.css("td, th")
        if len(cells) != 2:
            continue
        label = text_of(cells[0])
        key = _FOLDED_LABELS.get(squeezed(label).rstrip(":：").lower())
        if key is None:
            continue
        value = text_of(cells[1])
        fields.append((label, value))
        named.setdefault(key, value)
    title = named.get("title", "")
    if not title:
        if any(mark in body_text(tree) for mark in _NO_RECORD):
            raise QueryRejected("no such record")
        raise SchoolPageError("detail page without 题名", DETAIL_KIND)
    _complete(text, DETAIL_KIND)
    if tree.css_first("div[name=holding] table") is None:
        # Guess: every detail page shows its copies (the table, even empty), after the
        # fields; without it (or with the section but not yet its table) the page was
        # cut short.
        raise SchoolPageError("page is truncated (no copies table)", DETAIL_KIND)
    author = named.get("author", "")
    if " / " in title:
        title, _, by = title.partition(" / ")
        author = author or by.strip()
    isbn = ""
    box = tree.css_first("input[name=ISBN]")
    if box is not None:
        isbn = normalise_isbn(box.attributes.get("value") or "") or ""
    isbn = isbn or find_isbn(named.get("isbn", "")) or ""
    call_number = named.get("call_number", "")
    return RecordPage(
        record_id="",
        title=title.strip(),
        author=author,
        publisher=named.get("publisher", ""),
        isbn=isbn,
        call_number=call_number,
        description=named.get("description", ""),
        notes=named.get("notes", ""),
        fields=tuple(fields),
        holdings=_holdings(tree, call_number),
    )
