"""The simulated main library catalogue: INNOPAC / Millennium WebPAC pages, UTF-8.

Markup as the evidence shows it (docs/library-protocol.md): the 2013 search URL
scheme, twelve `td.briefCitRow` rows a page under a `td.browseHeaderData` count
line, `span.briefcitTitle` links, the author / publication / physical lines
after the title (the year in a commented-out div), `tr.bibItemsEntry` copies
with III's field comments, a cover image whose src carries the ISBN first;
record pages of `td.bibInfoLabel` / `td.bibInfoData` rows with a permanent
link `a#recordnum`; a search with one hit answers with the record itself.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any
from urllib.parse import quote, unquote

from schoolsim.library.dataset import Book, Copy
from schoolsim.library.state import CatalogueState, calibrated, truth_routes
from schoolsim.overload import Mount, OverloadHandler, Rule, SystemState
from schoolsim.profiles import SimSettings

NAME = "opac"
PREFIX = "/opac/"
PER_PAGE = 12
BOOKS = 3000
_SEARCH = re.compile(
    r"/X\((?P<q>[^()]*)\)&SORT=D/X\([^()]*\)&SORT=D&SUBKEY=\([^()]*\)"
    r"/(?P<first>\d{1,7})(?:,|%2C)\d{1,7}(?:,|%2C)\d{1,7}(?:,|%2C)B"
    r"/(?P<mode>browse|frameset&FF=.*?&(?P<hit>\d{1,7})%2C\d{1,7}%2C)"
)
# Page latency multipliers: a record page costs less than a search.
_RECORD_FACTOR = 0.5


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">\n'
        '<html lang="zh">\n<head>\n'
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
        f"<title>{escape(title)}</title>\n</head>\n<body>\n"
        f'<div class="pageContent">\n{body}\n</div>\n</body>\n</html>\n'
    )


def _status(copy: Copy) -> str:
    if copy.state == "shelf":
        return "在架上"
    if copy.state == "loan" and copy.due is not None:
        return f"到期 {copy.due.isoformat()}"
    return "馆内阅览" if copy.state == "reading" else "处理中"


def _items(book: Book, prefix: str) -> str:
    rows = [
        '<table width="100%" border="0" cellspacing="1" cellpadding="2" class="bibItems">',
        '<tr class="bibItemsHeader">\n<th width="38%" class="bibItemsHeader">馆藏地</th>\n'
        '<th width="38%" class="bibItemsHeader">索书号</th>\n'
        '<th width="24%" class="bibItemsHeader">状态</th>\n</tr>',
    ]
    call = escape(book.call_number)
    for copy in book.copies:
        rows.append(
            '<tr  class="bibItemsEntry">\n'
            f'<td width="38%" ><!-- field 1 -->&nbsp;<a href="{prefix}screens/location.html">'
            f"{escape(copy.location)}</a> \n</td>\n"
            f'<td width="38%" ><!-- field C -->&nbsp;<a href="{prefix}search~S1*chx?/c'
            f'{quote(book.call_number)}/c{quote(book.call_number.lower())}/-3,-1,,B/browse">'
            f"{call}</a> <!-- field v --><!-- field # --></td>\n"
            f'<td width="24%" ><!-- field % -->&nbsp;{escape(_status(copy))} </td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _row(book: Book, n: int, total: int, term: str, prefix: str) -> str:
    frameset = (
        f"{prefix}search~S1*chx?/X({term})&amp;SORT=D/X({term})&amp;SORT=D&amp;SUBKEY=({term})"
        f"/{n}%2C{total}%2C{total}%2CB/frameset&amp;FF=X({term})&amp;SORT=D&amp;{n}%2C{n}%2C"
    )
    status = "可借" if book.available else "已全部借出"
    return (
        '<tr><td class="briefCitRow" colspan="3">\n'
        '<table width="100%" border="0" cellspacing="0" cellpadding="0"><tr>\n'
        f'<td align="center" class="briefcitEntryNum"><input type="checkbox" name="save" '
        f'value="{book.record_id}" id="{book.record_id}"><br />{n}</td>\n'
        '<td align="left" class="briefcitDetail">\n<!--{nohitmsg}-->\n'
        f'<span class="briefcitTitle">\n<a href="{frameset}">{escape(book.title)}</a>\n</span>\n'
        f"<br />\n / {escape(book.author)}&nbsp; &nbsp;\n"
        f"{escape(book.publication)}&nbsp; &nbsp;\n"
        f"{escape(book.physical)}<!--\n<div>\n{book.year}</div>\n-->\n<br />\n"
        f'<span class="briefcitStatus">{status}</span>\n'
        f'<div class="briefcitItems">\n{_items(book, prefix)}\n</div>\n'
        f'<div class="briefcitItems">{escape(book.notes)}</div>\n'
        "</td>\n"
        f'<td align="center" class="briefcitExtras"><img src="{prefix}bookjacket?isbn='
        f'{book.isbn}&amp;size=0" alt="封面" border="0"></td>\n'
        "</tr></table>\n</td></tr>"
    )


def results_page(books: list[Book], first: int, query: str, prefix: str) -> str:
    """A result page from position `first` (1-based)."""
    total = len(books)
    shown = books[first - 1 : first - 1 + PER_PAGE]
    last = first + len(shown) - 1
    term = quote(query, safe="")
    rows = "\n".join(_row(b, first + i, total, term, prefix) for i, b in enumerate(shown))
    body = (
        '<table class="browseScreen" width="100%">\n'
        '<tr><td class="browseHeader"><table width="100%"><tr>\n'
        f'<td class="browseHeaderData">关键词 ({first}-{last} 共 {total})</td>\n'
        "</tr></table></td></tr>\n"
        f'<tr><td><table width="100%" class="browseList">\n{rows}\n</table></td></tr>\n'
        "</table>"
    )
    return _page(f"暨南大学图书馆 书目检索 /关键词 {query}", body)


def no_hits_page(query: str) -> str:
    body = (
        '<table class="browseScreen" width="100%"><tr><td class="browseSearchtoolMessage">'
        f"<h2>没有找到匹配的记录; 附近的 关键词 是:</h2> {escape(query)}</td></tr></table>"
    )
    return _page("暨南大学图书馆 书目检索 /关键词", body)


def record_page(book: Book, prefix: str) -> str:
    """A record page (its fields, copies and permanent link)."""
    fields = [
        ("题名", f"<strong>{escape(book.title)} / {escape(book.author)}</strong>"),
        ("主要责任者", f'<a href="{prefix}search~S1*chx?/a">{escape(book.author)}</a>'),
        ("出版资料", escape(book.publication)),
        ("载体形态", escape(book.physical)),
        ("标准号", f"ISBN {escape(book.isbn_shown)} : {escape(book.price)}"),
        ("附注", escape(book.notes)),
        # Evidence (III): a field's further value comes in a row with an empty label.
        ("", "中文图书" if book.language == "zh" else "外文图书"),
    ]
    rows = "\n".join(
        f'<tr><td valign="top" width="20%" class="bibInfoLabel">{label}</td>'
        f'<td class="bibInfoData">{value}</td></tr>'
        for label, value in fields
    )
    body = (
        '<div class="pageContentColumn">\n'
        '<table width="100%" class="bibDetail"><tr><td>\n'
        f'<table width="100%" border="0" cellspacing="0" cellpadding="0">\n{rows}\n</table>\n'
        "</td></tr></table>\n"
        f"{_items(book, prefix)}\n"
        f'<a id="recordnum" href="{prefix}record={book.record_id}~S1*chx">永久链接</a>\n'
        "</div>"
    )
    return _page(f"暨南大学图书馆 /{book.title}", body)


def no_record_page() -> str:
    return _page("暨南大学图书馆", "<h2>No Such Record 无此记录</h2>")


class OpacHandler(OverloadHandler):
    """Base of the catalogue's pages: the overload layer, UTF-8 pages."""

    state: CatalogueState

    def set_default_headers(self) -> None:
        self.set_header("Server", "III 100")

    def html(self, text: str, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(text.encode("utf-8"))


class SearchHandler(OpacHandler):
    """GET /opac/{availlim/}search~S1*chx?/X(q)&SORT=D/.../<first>,40,40,B/browse."""

    def get(self, limit: str | None = None) -> None:
        found = _SEARCH.fullmatch(self.request.query)
        if found is None:
            self.html(_page("暨南大学图书馆", "<h2>无法识别的检索</h2>"), 404)
            return
        try:
            query = unquote(found.group("q"), encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            query = ""
        self.state.count("searches")
        prefix = self.state.prefix
        books = self.state.catalogue.search(query, False, bool(limit))
        if found.group("hit"):
            hit = int(found.group("hit"))
            if 1 <= hit <= len(books):
                self.html(record_page(books[hit - 1], prefix))
            else:
                self.html(no_record_page())
            return
        first = max(1, int(found.group("first")))
        if not books:
            self.html(no_hits_page(query))
        elif len(books) == 1 and first == 1:
            self.html(record_page(books[0], prefix))
        else:
            self.html(results_page(books, first, query, prefix))


class RecordHandler(OpacHandler):
    """GET /opac/record=b1234567~S1*chx."""

    def latency_factor(self) -> float:
        return _RECORD_FACTOR

    def get(self, record_id: str) -> None:
        self.state.count("records")
        book = self.state.catalogue.by_id.get(record_id[:8])
        if book is None:
            self.html(no_record_page())
            return
        self.html(record_page(book, self.state.prefix))


class NotFoundHandler(OpacHandler):
    def get(self, *args: str) -> None:
        self.html(_page("暨南大学图书馆", "<h2>404 Not Found</h2>"), 404)

    post = get


def routes(prefix: str, state: SystemState) -> list[Rule]:
    assert isinstance(state, CatalogueState)
    s: dict[str, Any] = {"state": state}
    p = re.escape(prefix)
    return [
        *truth_routes(NAME, state),
        (rf"{p}(availlim/)?search~S1\*chx", SearchHandler, s),
        (rf"{p}record=(b\d{{7}}[\dx]?)(?:~S\d{{1,3}})?(?:\*chx)?", RecordHandler, s),
        (rf"{p}.*", NotFoundHandler, s),
    ]


def mount(profile: str, settings: SimSettings) -> Mount:
    """The main catalogue under /opac/, with its own overload layer."""
    state = CatalogueState(
        NAME, profile, calibrated(NAME, profile, settings), PREFIX, "main", BOOKS
    )
    return Mount(NAME, PREFIX, state, routes)
