"""Pure parsers of the main library's INNOPAC / Millennium WebPAC pages (UTF-8 HTML).

Every rule says what it rests on (docs/library-protocol.md): "evidence" is the 2013
jnu.fm client or public clients of other WebPAC sites, "guess" is ours. A page that
cannot be read raises SchoolPageError, never a partial or wrong answer.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import QueryRejected, SchoolPageError, SchoolServerError
from school.html import Page, body_text, squeezed, text_of, tree_of
from systems.library.holdings import holding
from systems.library.isbn import find_isbn, normalise_isbn
from systems.library.models import BookBrief, Holding, RecordPage

_HTML_END = re.compile(r"</html\s*>\s*$", re.IGNORECASE)
_OVERLOAD_MARKS = ("HTTP Status 5", "Service Temporarily Unavailable", "Service Unavailable")
# Evidence: "关键词 (1-12 共 345)" (a Chinese WebPAC, HUST), "(1-12 of 345)" (English
# sites); "de" on a Spanish one.
_RANGE = re.compile(r"\(\s*(\d+)\s*-\s*(\d+)\s*(?:共|of|de|/)\s*(\d+)\s*\)")
# Guess (the English text is III's): a search without hits.
_NO_HITS = ("No matches found", "NO ENTRIES FOUND", "没有找到", "沒有找到", "无匹配", "未找到")
# Guess (III's English words): a record number that does not exist.
_NO_RECORD = ("No Such Record", "无此记录", "記錄不存在")
# Evidence: permanent record links "/record=b1864633~S4" (III sites); the brief row's
# save box carries the record number (guess for this catalogue).
RECORD_ID = re.compile(r"b\d{7}[\dx]?")
_RECORD_IN_URL = re.compile(r"record=(b\d{7}[\dx]?)")
_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_YEAR_DIV = re.compile(r"<div>\s*(\d{4})\s*</div>", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(1[5-9]\d\d|20\d\d)(?!\d)")
# Evidence (2013): the cover image's src carries the ISBN as its first parameter.
_IMG_ISBN = re.compile(r"[?&]isbn=([0-9Xx\-]{10,17})", re.IGNORECASE)

# Record page labels (spaces removed) -> field. Evidence: 题名, 主要责任者, 出版资料,
# 标准号, 载体形态 (the reference); 題名/作者 (a Taiwanese WebPAC); the others: guess.
_LABELS: dict[str, str] = {
    "题名": "title",
    "題名": "title",
    "题名/作者": "title",
    "題名/作者": "title",
    "正题名": "title",
    "Title": "title",
    "主要责任者": "author",
    "责任者": "author",
    "作者": "author",
    "著者": "author",
    "Author": "author",
    "出版资料": "publisher",
    "出版发行": "publisher",
    "出版项": "publisher",
    "出版者": "publisher",
    "Publisher": "publisher",
    "Imprint": "publisher",
    "标准号": "isbn",
    "ISBN": "isbn",
    "载体形态": "description",
    "稽核项": "description",
    "Description": "description",
    "附注": "notes",
    "一般附注": "notes",
    "提要": "notes",
    "内容提要": "notes",
    "摘要": "notes",
    "Note": "notes",
    "Summary": "notes",
    "索书号": "call_number",
    "索取号": "call_number",
    "CallNumber": "call_number",
}


@dataclass(frozen=True, slots=True)
class BriefPage:
    """A result page: the range it shows (None without a header) and its rows."""

    first: int | None
    last: int | None
    total: int | None
    books: tuple[BookBrief, ...]


def record_url(base_url: str, record_id: str) -> str:
    """The permanent link of a record (evidence: /record=b1234567~S1 on III sites, with
    this catalogue's *chx language suffix)."""
    return f"{base_url.rstrip('/')}/record={record_id}~S1*chx"


def _checked(page: Page, content_type: str | None) -> LexborHTMLParser:
    text, tree = tree_of(page, content_type)
    for node in tree.css("title, h1"):
        title = text_of(node)
        if any(mark in title for mark in _OVERLOAD_MARKS):
            raise SchoolServerError(f"catalogue overloaded: {title[:80]}")
    if not _HTML_END.search(text):
        raise SchoolPageError("page is truncated (no </html>)")
    return tree


def _lines(fragment: str) -> list[str]:
    """The text lines of an HTML fragment: comments dropped, <br> as line ends."""
    fragment = _COMMENT.sub("\n", fragment)
    fragment = _TAG.sub("", _BR.sub("\n", fragment))
    text = html.unescape(fragment).replace("\xa0", " ").replace("\u3000", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


def _detail_lines(detail: LexborNode) -> tuple[str, str, str, str]:
    """Author, publisher, pages and year: the lines after the title (evidence, 2013:
    " / author", "place : publisher, year", "pages ; size", then the year in a
    commented-out <div>)."""
    raw = detail.html or ""
    start = raw.find("briefcitTitle")
    start = raw.find("</span>", start) if start >= 0 else -1
    if start < 0:
        return "", "", "", ""
    chunk = raw[start + len("</span>") :]
    ends = [
        i
        for i in (
            chunk.find('class="briefcitStatus"'),
            chunk.find('class="briefcitItems"'),
            chunk.find("<table"),
        )
        if i >= 0
    ]
    if ends:
        chunk = chunk[: chunk.rfind("<", 0, min(ends)) if min(ends) > 0 else 0]
    year = ""
    for comment in _COMMENT.findall(chunk):
        found = _YEAR_DIV.search(comment)
        if found:
            year = found.group(1)
    author = ""
    rest: list[str] = []
    for line in _lines(chunk):
        if not author and line.startswith("/"):
            author = line.lstrip("/ ").strip()
        else:
            rest.append(line)
    publisher = rest[0] if rest else ""
    pages = rest[1] if len(rest) > 1 else ""
    return author, publisher, pages, year or year_of(publisher)


def year_of(publisher: str) -> str:
    """The last year written in a publication line ("北京 : 机械工业出版社, 2012.01")."""
    years = _YEAR.findall(publisher)
    return years[-1] if years else ""


def parse_holdings(scope: LexborNode | LexborHTMLParser) -> tuple[Holding, ...]:
    """Copies from tr.bibItemsEntry rows: location, call number, status (evidence: III's
    `<!-- field 1 -->`, `<!-- field C -->`, `<!-- field % -->` cells in this order)."""
    copies = []
    for row in scope.css("tr.bibItemsEntry"):
        cells = [text_of(td) for td in row.css("td")]
        if len(cells) < 3:
            raise SchoolPageError(f"a holdings row has {len(cells)} cells, expected 3")
        copies.append(holding(cells[0], cells[1], cells[2]))
    return tuple(copies)


def _cover_isbn(row: LexborNode) -> str:
    """The ISBN in a cover image's src (evidence, 2013: the first parameter of the src of
    the image in the row's second centred cell; also td.briefcitExtras img, HUST)."""
    for img in row.css("img"):
        src = img.attributes.get("src") or ""
        found = _IMG_ISBN.search(unquote(src))
        if found:
            return found.group(1)
    return ""


def _record_id(row: LexborNode, href: str) -> str:
    for box in row.css("input[name=save]"):
        value = (box.attributes.get("value") or "").strip()
        if RECORD_ID.fullmatch(value):
            return value
    found = _RECORD_IN_URL.search(href)
    return found.group(1) if found else ""


def _brief(row: LexborNode, base_url: str) -> BookBrief:
    link = row.css_first("span.briefcitTitle a")
    if link is None:
        raise SchoolPageError("a result row has no title link (span.briefcitTitle a)")
    title = text_of(link)
    href = (link.attributes.get("href") or "").strip()
    if not title or not href:
        raise SchoolPageError("a result row has an empty title or link")
    detail = row.css_first("td.briefcitDetail")
    author, publisher, pages, year = _detail_lines(detail) if detail is not None else ("",) * 4
    record_id = _record_id(row, href)
    if record_id:
        url = record_url(base_url, record_id)
    else:
        # No stable number shown: the row's own link (a search position, not permanent).
        url = base_url.rstrip("/") + "/" + href.lstrip("/")
    isbn = _cover_isbn(row)
    return BookBrief(
        record_id=record_id,
        record_url=url,
        title=title,
        author=author,
        publisher=publisher,
        pages=pages,
        year=year,
        isbn=isbn,
        status=text_of(row.css_first("span.briefcitStatus")),
        holdings=parse_holdings(row),
        cover_isbn=normalise_isbn(isbn) or "",
    )


def is_record_page(tree: LexborHTMLParser) -> bool:
    """A record page (a search with one hit shows the record itself: evidence, III)."""
    return bool(tree.css("td.bibInfoLabel")) and not tree.css("td.briefCitRow")


def parse_search(page: Page, base_url: str, content_type: str | None = None) -> BriefPage:
    """A result page; SchoolPageError if it is neither results nor a no-hit page."""
    tree = _checked(page, content_type)
    rows = tree.css("td.briefCitRow")
    header = tree.css_first("td.browseHeaderData")
    first = last = total = None
    if header is not None:
        found = _RANGE.search(text_of(header))
        if found:
            first, last, total = (int(g) for g in found.groups())
    books = tuple(_brief(row, base_url) for row in rows)
    if not rows:
        if total is not None or any(mark in body_text(tree) for mark in _NO_HITS):
            return BriefPage(first, last, total or 0, ())
        raise SchoolPageError("neither result rows nor a no-hit message")
    if total is None:
        raise SchoolPageError("result rows without a count header (td.browseHeaderData)")
    assert first is not None and last is not None
    if last - first + 1 != len(books) or last > total:
        raise SchoolPageError(
            f"header says {first}-{last} of {total} but the page has {len(books)} rows"
        )
    return BriefPage(first, last, total, books)


def _value(cell: LexborNode) -> str:
    return text_of(cell)


def parse_record(page: Page, content_type: str | None = None) -> RecordPage:
    """A record page: labelled fields, the permanent record number, the copies."""
    tree = _checked(page, content_type)
    if not is_record_page(tree):
        if any(mark in body_text(tree) for mark in _NO_RECORD):
            raise QueryRejected("no such record")
        raise SchoolPageError("not a record page (no td.bibInfoLabel)")
    scope: LexborNode | LexborHTMLParser = tree.css_first("div.pageContentColumn") or tree
    fields: list[tuple[str, str]] = []
    label = ""
    for data in scope.css("td.bibInfoData"):
        row = data.parent
        label_cell = row.css_first("td.bibInfoLabel") if row is not None else None
        shown = text_of(label_cell)
        # Evidence (III): a field's further values come in rows with an empty label.
        label = shown or label
        value = _value(data)
        if label and value:
            fields.append((label, value))
    named: dict[str, str] = {}
    for shown, value in fields:
        key = _LABELS.get(squeezed(shown).rstrip(":："))
        if key and key not in named:
            named[key] = value
    title = named.get("title", "")
    author = named.get("author", "")
    if " / " in title:
        title, _, by = title.partition(" / ")
        author = author or by.strip()
    if not title:
        raise SchoolPageError("record page without a title")
    link = tree.css_first("a#recordnum")
    found = _RECORD_IN_URL.search(link.attributes.get("href") or "") if link else None
    copies = parse_holdings(scope)
    isbn_text = named.get("isbn", "")
    call_number = named.get("call_number", "") or next(
        (c.call_number for c in copies if c.call_number), ""
    )
    return RecordPage(
        record_id=found.group(1) if found else "",
        title=title.strip(),
        author=author,
        publisher=named.get("publisher", ""),
        isbn=find_isbn(isbn_text) or "",
        call_number=call_number,
        description=named.get("description", ""),
        notes=named.get("notes", ""),
        fields=tuple(fields),
        holdings=copies,
    )
