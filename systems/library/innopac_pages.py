"""Pure parsers of the main library's INNOPAC / Millennium WebPAC pages (UTF-8 HTML).

Every rule says what it rests on (docs/library-protocol.md): "evidence" is the 2013
jnu.fm client or public clients of other WebPAC sites, "guess" is ours. Pages are
judged by their content, not by how they are written: classes in any case, labels in
any element, the charset from the header, else the meta tag, else UTF-8; a page is
complete when its tables are closed, whether or not it ends in `</html>`. A page that
cannot be read raises SchoolPageError (kind `search` or `record`), never a partial or
wrong answer.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode

from school.errors import QueryRejected, SchoolPageError, SchoolServerError
from school.html import Page, body_text, squeezed, text_of
from systems.library.holdings import holding
from systems.library.isbn import find_isbn, normalise_isbn
from systems.library.markup import first_with_class, read_page, tables_closed, with_class
from systems.library.models import BookBrief, Holding, RecordPage

# Evidence (reference): the catalogue's pages are UTF-8; a page that declares nothing
# is taken as such.
USUAL_CHARSET = "utf-8"
SEARCH_KIND = "search"
RECORD_KIND = "record"
_OVERLOAD_MARKS = ("HTTP Status 5", "Service Temporarily Unavailable", "Service Unavailable")
# Evidence: "关键词 (1-12 共 345)" (a Chinese WebPAC, HUST), "(1-12 of 345)" (English
# sites); "de" on a Spanish one.
_RANGE = re.compile(r"\(\s*(\d+)\s*-\s*(\d+)\s*(?:共|of|de|/)\s*(\d+)\s*\)")
# Evidence (2013's saved row, HUST): a row's td.briefcitEntryNum ends with its position.
_ENTRY_NUMBER = re.compile(r"(\d{1,7})\s*$")
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
# Labels are compared without regard to case ("ISBN", "Isbn", "TITLE").
_FOLDED_LABELS = {label.lower(): key for label, key in _LABELS.items()}


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


def read(page: Page, content_type: str | None, kind: str) -> tuple[str, LexborHTMLParser]:
    """The page's text and tree (charset: header, else meta, else UTF-8)."""
    return read_page(page, content_type, USUAL_CHARSET, kind)


def _checked(page: Page, content_type: str | None, kind: str) -> tuple[str, LexborHTMLParser]:
    text, tree = read(page, content_type, kind)
    for node in tree.css("title, h1"):
        title = text_of(node)
        if any(mark in title for mark in _OVERLOAD_MARKS):
            raise SchoolServerError(f"catalogue overloaded: {title[:80]}")
    return text, tree


def _complete(text: str, kind: str) -> None:
    """SchoolPageError unless every table of the page is closed (a page cut inside its
    rows or copies; what follows the last table is banners and footers)."""
    if not tables_closed(text):
        raise SchoolPageError("page is truncated (a table is not closed)", kind)


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
    # The serialised tree: tag names in lower case, attribute values quoted; class
    # names are compared in lower case.
    raw = detail.html or ""
    low = raw.lower()
    start = low.find("briefcittitle")
    if start < 0:
        return "", "", "", ""
    end = low.find("</span>", start)
    end = end + len("</span>") if end >= 0 else low.find("</a>", start) + len("</a>")
    if end < len("</a>"):
        return "", "", "", ""
    chunk, low = raw[end:], low[end:]
    ends = [
        i
        for i in (
            low.find('class="briefcitstatus"'),
            low.find('class="briefcititems"'),
            low.find("<table"),
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


def parse_holdings(
    scope: LexborNode | LexborHTMLParser, kind: str = RECORD_KIND
) -> tuple[Holding, ...]:
    """Copies from tr.bibItemsEntry rows: location, call number, status (evidence: III's
    `<!-- field 1 -->`, `<!-- field C -->`, `<!-- field % -->` cells in this order)."""
    copies = []
    for row in with_class(scope, "bibItemsEntry", "tr"):
        cells = [text_of(td) for td in row.css("td")]
        if len(cells) < 3:
            raise SchoolPageError(f"a holdings row has {len(cells)} cells, expected 3", kind)
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
    holder = first_with_class(row, "briefcitTitle")
    link = holder.css_first("a") if holder is not None else None
    if link is None:
        raise SchoolPageError("a result row has no title link (.briefcitTitle a)", SEARCH_KIND)
    title = text_of(link)
    href = (link.attributes.get("href") or "").strip()
    if not title or not href:
        raise SchoolPageError("a result row has an empty title or link", SEARCH_KIND)
    detail = first_with_class(row, "briefcitDetail", "td")
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
        status=text_of(first_with_class(row, "briefcitStatus")),
        holdings=parse_holdings(row, SEARCH_KIND),
        cover_isbn=normalise_isbn(isbn) or "",
    )


def is_record_page(tree: LexborHTMLParser) -> bool:
    """A record page (a search with one hit shows the record itself: evidence, III)."""
    return bool(with_class(tree, "bibInfoLabel", "td")) and not with_class(
        tree, "briefCitRow", "td"
    )


def _entry_number(row: LexborNode) -> int | None:
    cell = first_with_class(row, "briefcitEntryNum", "td")
    found = _ENTRY_NUMBER.search(text_of(cell)) if cell is not None else None
    return int(found.group(1)) if found else None


def parse_search(page: Page, base_url: str, content_type: str | None = None) -> BriefPage:
    """A result page; SchoolPageError(kind="search") if it is neither complete results
    nor a no-hit page.

    Complete results: rows, every table closed (a page cut inside a row is refused),
    and the count line, when the page shows one, agreeing with the rows. Without a
    count line the range is the rows' own positions (td.briefcitEntryNum), and the
    total unknown (None)."""
    text, tree = _checked(page, content_type, SEARCH_KIND)
    rows = with_class(tree, "briefCitRow", "td")
    header = first_with_class(tree, "browseHeaderData")
    first = last = total = None
    if header is not None:
        found = _RANGE.search(text_of(header))
        if found:
            first, last, total = (int(g) for g in found.groups())
    if not rows:
        if total is not None and total > 0 and (first is None or first <= total):
            # A count of hits this page should show, and no rows: cut before them.
            raise SchoolPageError(f"the page counts {total} hits but shows no rows", SEARCH_KIND)
        if total is not None or any(mark in body_text(tree) for mark in _NO_HITS):
            return BriefPage(first, last, total or 0, ())
        raise SchoolPageError("neither result rows nor a no-hit message", SEARCH_KIND)
    _complete(text, SEARCH_KIND)
    books = tuple(_brief(row, base_url) for row in rows)
    numbers = [_entry_number(row) for row in rows]
    if total is None:
        shown = [n for n in numbers if n is not None]
        if len(shown) == len(rows):
            first, last = shown[0], shown[-1]
    if first is not None and last is not None:
        if last - first + 1 != len(books) or (total is not None and last > total):
            raise SchoolPageError(
                f"the page says {first}-{last} of {total} but has {len(books)} rows",
                SEARCH_KIND,
            )
        if any(n is not None and n != first + i for i, n in enumerate(numbers)):
            raise SchoolPageError("the rows' positions do not follow each other", SEARCH_KIND)
    return BriefPage(first, last, total, books)


def parse_record(page: Page, content_type: str | None = None) -> RecordPage:
    """A record page: labelled fields, the permanent record number, the copies.

    SchoolPageError(kind="record") if it is no record page or is cut short."""
    text, tree = _checked(page, content_type, RECORD_KIND)
    if not is_record_page(tree):
        if any(mark in body_text(tree) for mark in _NO_RECORD):
            raise QueryRejected("no such record")
        raise SchoolPageError("not a record page (no td.bibInfoLabel)", RECORD_KIND)
    _complete(text, RECORD_KIND)
    scope: LexborNode | LexborHTMLParser = first_with_class(tree, "pageContentColumn") or tree
    fields: list[tuple[str, str]] = []
    label = ""
    for data in with_class(scope, "bibInfoData", "td"):
        row = data.parent
        label_cell = first_with_class(row, "bibInfoLabel", "td") if row is not None else None
        shown = text_of(label_cell)
        # Evidence (III): a field's further values come in rows with an empty label.
        label = shown or label
        value = text_of(data)
        if label and value:
            fields.append((label, value))
    named: dict[str, str] = {}
    for shown, value in fields:
        key = _FOLDED_LABELS.get(squeezed(shown).rstrip(":：").lower())
        if key and key not in named:
            named[key] = value
    title = named.get("title", "")
    author = named.get("author", "")
    if " / " in title:
        title, _, by = title.partition(" / ")
        author = author or by.strip()
    if not title:
        raise SchoolPageError("record page without a title", RECORD_KIND)
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
