"""Pure parsers of the Zhuhai campus library's ILAS pages (GBK HTML).

"Evidence" is the 2013 jnu.fm client or public clients of ILAS at other schools
(docs/library-protocol.md); "guess" is ours. A page that cannot be read raises
SchoolPageError, never a partial or wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import QueryRejected, SchoolPageError, SchoolServerError
from school.html import Form, Page, body_text, forms_of, squeezed, text_of, tree_of
from systems.library.holdings import holding
from systems.library.isbn import find_isbn, normalise_isbn
from systems.library.models import Holding, RecordPage

_HTML_END = re.compile(r"</html\s*>\s*$", re.IGNORECASE)
_OVERLOAD_MARKS = ("HTTP Status 5", "Service Temporarily Unavailable", "Service Unavailable")
# Guess: the count line of a result page, "共检索到 123 条记录".
_TOTAL = re.compile(r"共\s*(?:检索到|命中)?\s*(\d+)\s*条")
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


def _checked(page: Page, content_type: str | None) -> tuple[str, LexborHTMLParser]:
    text, tree = tree_of(page, content_type)
    for node in tree.css("title, h1"):
        title = text_of(node)
        if any(mark in title for mark in _OVERLOAD_MARKS):
            raise SchoolServerError(f"catalogue overloaded: {title[:80]}")
    if not _HTML_END.search(text):
        raise SchoolPageError("page is truncated (no </html>)")
    return text, tree


def _detail_link(cell: LexborNode) -> tuple[str, str]:
    link = cell.css_first("a")
    href = (link.attributes.get("href") or "") if link is not None else ""
    query = parse_qs(urlsplit(href).query)
    recno = (query.get("v_recno") or [""])[0]
    dbno = (query.get("v_curdbno") or ["0"])[0]
    if not RECORD_ID.fullmatch(recno) or not dbno.isdigit():
        raise SchoolPageError("a result row has no detail link (v_recno)")
    return recno, dbno


def _next_form(tree: LexborHTMLParser, text: str) -> Form | None:
    if _NEXT_LINK not in text:
        return None
    nodes = tree.css("form")
    forms = forms_of(tree)
    for node, form in zip(nodes, forms, strict=True):
        if (node.attributes.get("name") or "") == "nextpage":
            return form
    raise SchoolPageError("a next-page link without the nextpage form")


def parse_results(page: Page, content_type: str | None = None) -> IlasResults:
    """A result page: rows after the header row whose first cell is 题名 (evidence)."""
    text, tree = _checked(page, content_type)
    header = None
    for row in tree.css("tr"):
        first = row.css_first("td, th")
        if first is not None and squeezed(text_of(first)) == "题名":
            header = row
            break
    total_found = _TOTAL.search(body_text(tree))
    total = int(total_found.group(1)) if total_found else None
    if header is None:
        if any(mark in body_text(tree) for mark in _NO_HITS):
            return IlasResults((), 0, None)
        raise SchoolPageError("neither a result table (题名) nor a no-hit message")
    rows = []
    sibling = header.next
    while sibling is not None:
        if sibling.tag == "tr":
            cells = sibling.css("td")
            if len(cells) >= 7:
                recno, dbno = _detail_link(cells[6])
                values = [text_of(c) for c in cells[:6]]
                if not values[0]:
                    raise SchoolPageError("a result row without a title")
                title, author, publisher, pages, price, call_number = values
                rows.append(
                    IlasRow(title, author, publisher, pages, price, call_number, recno, dbno)
                )
            elif len(cells) > 1:
                raise SchoolPageError(f"a result row has {len(cells)} cells, expected 7")
        sibling = sibling.next
    return IlasResults(tuple(rows), total, _next_form(tree, text))


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
        raise SchoolPageError("holdings without 馆藏地点 and 状态 columns")
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
    """A detail page: label rows (题　名 ...), the ISBN input, the copies."""
    _, tree = _checked(page, content_type)
    fields: list[tuple[str, str]] = []
    named: dict[str, str] = {}
    for row in tree.css("tr"):
        cells = row.css("td, th")
        if len(cells) != 2:
            continue
        label = text_of(cells[0])
        key = _LABELS.get(squeezed(label).rstrip(":："))
        if key is None:
            continue
        value = text_of(cells[1])
        fields.append((label, value))
        named.setdefault(key, value)
    title = named.get("title", "")
    if not title:
        if any(mark in body_text(tree) for mark in _NO_RECORD):
            raise QueryRejected("no such record")
        raise SchoolPageError("detail page without 题名")
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
