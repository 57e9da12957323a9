"""The simulated main library catalogue: INNOPAC / Millennium WebPAC pages, UTF-8.

Markup as the evidence shows it (docs/library-protocol.md): the 2013 search URL
scheme, twelve `td.briefCitRow` rows a page under a `td.browseHeaderData` count
line, `span.briefcitTitle` links, the author / publication / physical lines
after the title (the year in a commented-out div), `tr.bibItemsEntry` copies
with III's field comments, a cover image whose src carries the ISBN first;
record pages of `td.bibInfoLabel` / `td.bibInfoData` rows with a permanent
link `a#recordnum`; a search with one hit answers with the record itself.

Every page is written in the variant the `variant` setting picks
(schoolsim/variants.py; `mixed`: by the query, or the record id): `plain` as
above; `legacy`, `modern` and `bare` say the same facts otherwise. Which of their
traits rest on evidence: `_legacy`, `_modern`, `_bare` below and
docs/library-protocol.md ("Markup variants").
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
from schoolsim.variants import (
    Variant,
    escaped,
    open_tags,
    padding,
    upper_tags,
    variant_for,
)

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
# Guess (no page of this catalogue was kept): the size of a later skin's page, banners
# and scripts included.
_MODERN_SIZE = 24_000
_CLASS = re.compile(r'class="([^"]*)"')
_SIMPLE_VALUE = re.compile(r'="([A-Za-z0-9#%._-]+)"')
_CELL_OPEN = re.compile(r"(<td\b[^>]*>)")
_CELL_CLOSE = re.compile(r"(</td>)")
# The header of each variant (guess for all but plain: see the README of variants).
CONTENT_TYPES: dict[Variant, str] = {
    "plain": "text/html; charset=UTF-8",
    # Guess: an older server declared nothing in the header, only in the meta tag.
    "legacy": "text/html",
    "modern": "text/html; charset=UTF-8",
    # Guess: nothing declared anywhere; the bytes are UTF-8 all the same.
    "bare": "text/html",
}


def _label(text: str, variant: Variant) -> str:
    """A label or message as each variant wraps it: `<font>` (legacy), `<span>` (modern),
    bare text (plain, bare). Guess: III's own skins use none of these consistently."""
    if variant == "legacy":
        return f'<font color="#333333">{text}</font>'
    if variant == "modern":
        return f'<span class="label">{text}</span>'
    return text


def _legacy(html: str) -> str:
    """Guesses all: class names in lower case (the markup's case differs between III
    releases), simple attribute values unquoted, tag names in upper case, the end tags
    HTML lets a page leave out left out (no `</td>`, `</tr>`, `</body>`, `</html>`)."""
    html = _CLASS.sub(lambda m: f'class="{m.group(1).lower()}"', html)
    return upper_tags(open_tags(_SIMPLE_VALUE.sub(r"=\1", html)))


def _spaced(body: str) -> str:
    """Guess (template engines indent): cells opened and closed on lines of their own."""
    return _CELL_CLOSE.sub(r"\n      \1", _CELL_OPEN.sub("\\1\n        ", body))


def _page(title: str, body: str, variant: Variant = "plain") -> str:
    if variant == "legacy":
        return _legacy(_plain_page(title, body))
    if variant == "modern":
        # Guess: charset in the header and a <meta charset>; banners and scripts around
        # the content, up to a later skin's size.
        return (
            '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="UTF-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{escape(title)}</title>\n"
            '<link rel="stylesheet" type="text/css" href="/screens/styles.css">\n'
            "</head>\n<body>\n"
            f"{padding(_MODERN_SIZE - len(body))}"
            f'<div class="pageContent" id="main">\n{_spaced(body)}\n</div>\n'
            '<div class="footer">暨南大学图书馆 &copy; 版权所有</div>\n'
            '<script type="text/javascript" src="/scripts/webpac.js"></script>\n'
            "</body>\n</html>\n"
        )
    if variant == "bare":
        # Guess: the smallest page that says the same: no doctype, no charset, no end.
        return f"<html><head><title>{escape(title)}</title></head><body>\n{body}\n"
    return _plain_page(title, body)


def _plain_page(title: str, body: str) -> str:
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


def _items(book: Book, prefix: str, variant: Variant = "plain") -> str:
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
            f"{escaped(copy.location, variant)}</a> \n</td>\n"
            f'<td width="38%" ><!-- field C -->&nbsp;<a href="{prefix}search~S1*chx?/c'
            f'{quote(book.call_number)}/c{quote(book.call_number.lower())}/-3,-1,,B/browse">'
            f"{call}</a> <!-- field v --><!-- field # --></td>\n"
            f'<td width="24%" ><!-- field % -->&nbsp;{escaped(_status(copy), variant)} </td></tr>'
        )
    rows.append("</table>")
    return "\n".join(rows)


def _row(book: Book, n: int, total: int, term: str, prefix: str, variant: Variant) -> str:
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
        f'<span class="briefcitTitle">\n<a href="{frameset}">{escaped(book.title, variant)}</a>\n'
        f"</span>\n<br />\n / {escaped(book.author, variant)}&nbsp; &nbsp;\n"
        f"{escaped(book.publication, variant)}&nbsp; &nbsp;\n"
        f"{escaped(book.physical, variant)}<!--\n<div>\n{book.year}</div>\n-->\n<br />\n"
        f'<span class="briefcitStatus">{_label(escaped(status, variant), variant)}</span>\n'
        f'<div class="briefcitItems">\n{_items(book, prefix, variant)}\n</div>\n'
        f'<div class="briefcitItems">{escaped(book.notes, variant)}</div>\n'
        "</td>\n"
        f'<td align="center" class="briefcitExtras"><img src="{prefix}bookjacket?isbn='
        f'{book.isbn}&amp;size=0" alt="封面" border="0"></td>\n'
        "</tr></table>\n</td></tr>"
    )


def results_page(
    books: list[Book], first: int, query: str, prefix: str, variant: Variant = "plain"
) -> str:
    """A result page from position `first` (1-based)."""
    total = len(books)
    shown = books[first - 1 : first - 1 + PER_PAGE]
    last = first + len(shown) - 1
    term = quote(query, safe="")
    rows = "\n".join(_row(b, first + i, total, term, prefix, variant) for i, b in enumerate(shown))
    count = f"关键词 ({first}-{last} 共 {total})"
    header = (
        '<tr><td class="browseHeader"><table width="100%"><tr>\n'
        f'<td class="browseHeaderData">{_label(escaped(count, variant), variant)}</td>\n'
        "</tr></table></td></tr>\n"
    )
    if variant == "modern" and last == total and len(shown) < PER_PAGE:
        # Guess: a later skin shows no count line on a last page that is not full (the
        # rows' own positions still say the range, and a short page is the last).
        header = ""
    body = (
        '<table class="browseScreen" width="100%">\n'
        f"{header}"
        f'<tr><td><table width="100%" class="browseList">\n{rows}\n</table></td></tr>\n'
        "</table>"
    )
    return _page(f"暨南大学图书馆 书目检索 /关键词 {query}", body, variant)


def no_hits_page(query: str, variant: Variant = "plain") -> str:
    message = _label(escaped("没有找到匹配的记录; 附近的 关键词 是:", variant), variant)
    body = (
        '<table class="browseScreen" width="100%"><tr><td class="browseSearchtoolMessage">'
        f"<h2>{message}</h2> {escape(query)}</td></tr></table>"
    )
    return _page("暨南大学图书馆 书目检索 /关键词", body, variant)


def record_page(book: Book, prefix: str, variant: Variant = "plain") -> str:
    """A record page (its fields, copies and permanent link)."""

    def t(text: str) -> str:
        return escaped(text, variant)

    fields = [
        ("题名", f"<strong>{t(book.title)} / {t(book.author)}</strong>"),
        ("主要责任者", f'<a href="{prefix}search~S1*chx?/a">{t(book.author)}</a>'),
        ("出版资料", t(book.publication)),
        ("载体形态", t(book.physical)),
        ("标准号", f"ISBN {escape(book.isbn_shown)} : {escape(book.price)}"),
        ("附注", t(book.notes)),
        # Evidence (III): a field's further value comes in a row with an empty label.
        ("", t("中文图书" if book.language == "zh" else "外文图书")),
    ]
    rows = "\n".join(
        f'<tr><td valign="top" width="20%" class="bibInfoLabel">'
        f"{_label(t(label), variant) if label else label}</td>"
        f'<td class="bibInfoData">{value}</td></tr>'
        for label, value in fields
    )
    body = (
        '<div class="pageContentColumn">\n'
        '<table width="100%" class="bibDetail"><tr><td>\n'
        f'<table width="100%" border="0" cellspacing="0" cellpadding="0">\n{rows}\n</table>\n'
        "</td></tr></table>\n"
        f"{_items(book, prefix, variant)}\n"
        f'<a id="recordnum" href="{prefix}record={book.record_id}~S1*chx">永久链接</a>\n'
        "</div>"
    )
    return _page(f"暨南大学图书馆 /{book.title}", body, variant)


def no_record_page(variant: Variant = "plain") -> str:
    message = _label(escaped("No Such Record 无此记录", variant), variant)
    return _page("暨南大学图书馆", f"<h2>{message}</h2>", variant)


class OpacHandler(OverloadHandler):
    """Base of the catalogue's pages: the overload layer, UTF-8 pages."""

    state: CatalogueState

    def set_default_headers(self) -> None:
        self.set_header("Server", "III 100")

    def variant(self, key: str) -> Variant:
        """The variant of the page for a query or record id (`mixed`: by that key)."""
        return variant_for(self.state.settings.variant, key)

    def html(self, text: str, status: int = 200, variant: Variant = "plain") -> None:
        self.set_status(status)
        self.set_header("Content-Type", CONTENT_TYPES[variant])
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
        v = self.variant(query)
        if found.group("hit"):
            hit = int(found.group("hit"))
            if 1 <= hit <= len(books):
                self.html(record_page(books[hit - 1], prefix, v), variant=v)
            else:
                self.html(no_record_page(v), variant=v)
            return
        first = max(1, int(found.group("first")))
        if not books:
            self.html(no_hits_page(query, v), variant=v)
        elif len(books) == 1 and first == 1:
            self.html(record_page(books[0], prefix, v), variant=v)
        else:
            self.html(results_page(books, first, query, prefix, v), variant=v)


class RecordHandler(OpacHandler):
    """GET /opac/record=b1234567~S1*chx."""

    def latency_factor(self) -> float:
        return _RECORD_FACTOR

    def get(self, record_id: str) -> None:
        self.state.count("records")
        book = self.state.catalogue.by_id.get(record_id[:8])
        v = self.variant(record_id[:8])
        if book is None:
            self.html(no_record_page(v), variant=v)
            return
        self.html(record_page(book, self.state.prefix, v), variant=v)


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
