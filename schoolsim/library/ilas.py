"""The simulated Zhuhai campus library catalogue: ILAS CGI pages, GBK.

Markup as the evidence shows it (docs/library-protocol.md): `POST
/cgi-bin/IlaswebBib` with `v_index`, `v_value` (GBK), `v_pagenum`; a result table
(`bgcolor="#008080"`) in a div, a header row whose first cell is 题名, rows of
title, author, publisher, pages, price, call number and a `DispBibDetail?v_recno=
...&v_curdbno=0` link; the next page by the `nextpage` form and a
`javascript:document.nextpage.submit()` link (absent on the last page); detail
pages of label rows (题　名, 作　者, 出版项, ISBN with `input[name=ISBN]`, 索取号,
附注信息) and the copies in `div[name=holding]`. The count line and the
no-hit and no-record messages are guesses.

Every page is written in the variant the `variant` setting picks
(schoolsim/variants.py; `mixed`: by the query, or the record number): `plain` as
above; `legacy`, `modern` and `bare` say the same facts otherwise. Which of their
traits rest on evidence: `_page`, `_label` below and docs/library-protocol.md
("Markup variants").
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

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

NAME = "ilas"
PREFIX = "/ilas/"
BOOKS = 1200
MAX_PAGENUM = 100
_DETAIL_FACTOR = 0.4
_DIGITS = re.compile(r"\d{1,6}")
_CELL = 'align=left height=25 bgcolor="#FFFFFF"'
# Guess (no page of this catalogue was kept): a later front end's page size.
_MODERN_SIZE = 16_000
_CELL_OPEN = re.compile(r"(<td\b[^>]*>)")
_CELL_CLOSE = re.compile(r"(</td>)")
# The header of each variant. Plain: the charset only in the meta tag (guess, as old
# CGI pages did); modern: in the header too (guess); legacy and bare: not in the header.
CONTENT_TYPES: dict[Variant, str] = {
    "plain": "text/html",
    "legacy": "text/html",
    "modern": "text/html; charset=GBK",
    "bare": "text/html",
}


def _label(text: str, variant: Variant) -> str:
    """A label or message as each variant writes it (guess all): in `<font>` (legacy), in
    `<span>` (modern), as it is (plain); in `bare` with character references and its
    full-width spaces written `&nbsp;` (题&nbsp;名)."""
    if variant == "legacy":
        return f'<font color="#000080">{escape(text)}</font>'
    if variant == "modern":
        return f'<span class="label">{escape(text)}</span>'
    if variant == "bare":
        return escaped(text, variant).replace("\u3000", "&nbsp;")
    return escape(text)


def _page(title: str, body: str, variant: Variant = "plain") -> str:
    if variant == "legacy":
        # Guess: tag names in upper case, optional end tags left out (no </html>), the
        # charset only in the meta tag.
        return upper_tags(open_tags(_plain_page(title, body)))
    if variant == "modern":
        # Guess: charset in the header and a <meta charset>, banners and scripts
        # around the content, cells on lines of their own.
        spaced = _CELL_CLOSE.sub(r"\n    \1", _CELL_OPEN.sub("\\1\n      ", body))
        return (
            '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="gbk">\n'
            f"<title>{escape(title)}</title>\n"
            '<script type="text/javascript" src="/ilasweb/js/common.js"></script>\n'
            "</head>\n<body>\n"
            f"{padding(_MODERN_SIZE - len(body))}"
            f'<div id="content">\n{spaced}\n</div>\n'
            '<div class="footer">暨南大学珠海校区图书馆</div>\n</body>\n</html>\n'
        )
    if variant == "bare":
        # Guess: no charset declared anywhere (the bytes GBK all the same), no end.
        return f"<html><head><title>{escape(title)}</title></head><body>\n{body}\n"
    return _plain_page(title, body)


def _plain_page(title: str, body: str) -> str:
    return (
        "<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">\n'
        f"<title>{escape(title)}</title>\n</head>\n"
        f'<body bgcolor="#FFFFFF">\n{body}\n</body>\n</html>\n'
    )


def _number(text: str, default: int, lowest: int, highest: int) -> int:
    return min(max(int(text), lowest), highest) if _DIGITS.fullmatch(text) else default


def results_page(
    books: list[Book], form: dict[str, str], screen: int, per_page: int, variant: Variant = "plain"
) -> str:
    """Screen `screen` (1-based) of a search, with the nextpage form unless it is the last."""
    shown = books[(screen - 1) * per_page : screen * per_page]
    heads = ("题名", "责任者", "出版者", "页码", "价格", "索取号", "详细")
    rows = [
        '<tr bgcolor="#CCCCCC">'
        + "".join(f"<td>{_label(h, variant)}</td>" for h in heads)
        + "</tr>"
    ]
    for book in shown:
        cells = (
            book.title,
            book.author,
            f"{book.publisher} {book.year}",
            f"{book.pages}页" if book.language == "zh" else f"{book.pages}p",
            book.price,
            book.call_number,
        )
        rows.append(
            "<tr>"
            + "".join(f"<td {_CELL}>{escaped(c, variant)}</td>" for c in cells)
            + f'<td align=center bgcolor="#FFFFFF"><a href="DispBibDetail?v_recno='
            f'{book.record_id}&v_curdbno=0" target="_blank">详细</a></td></tr>'
        )
    more = screen * per_page < len(books)
    hidden = {**form, "v_curscr": str(screen + 1), "v_count": str(len(books))}
    inputs = "\n".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden.items()
    )
    pages = (len(books) + per_page - 1) // per_page
    count = f"<p>{_label(f'共检索到 {len(books)} 条记录 第 {screen}/{pages} 页', variant)}</p>\n"
    if variant == "modern" and not more:
        # Guess: a later front end shows no count line on the last screen (no next
        # page: the rows end the result).
        count = ""
    body = (
        count + '<div align="center">\n'
        '<table width="98%" border="0" cellspacing="1" cellpadding="2" bgcolor="#008080">\n'
        + "\n".join(rows)
        + "\n</table>\n</div>\n"
        + (
            f'<form name="nextpage" method="post" action="IlaswebBib">\n{inputs}\n</form>\n'
            '<a href="javascript:document.nextpage.submit()">下一页</a>'
            if more
            else ""
        )
    )
    return _page("书目检索结果", body, variant)


def no_hits_page(query: str, variant: Variant = "plain") -> str:
    message = _label(f"没有检索到与“{query}”相关的记录", variant)
    return _page("书目检索结果", f"<p>{message}</p>", variant)


def no_record_page(variant: Variant = "plain") -> str:
    return _page("书目详细信息", f"<p>{_label('无此记录', variant)}</p>", variant)


def _status(copy: Copy) -> tuple[str, str]:
    if copy.state == "shelf":
        return "在馆", ""
    if copy.state == "loan" and copy.due is not None:
        return "借出", copy.due.isoformat()
    return ("阅览", "") if copy.state == "reading" else ("编目中", "")


def detail_page(book: Book, variant: Variant = "plain") -> str:
    """A detail page: label rows, the ISBN input, the copies."""

    def t(text: str) -> str:
        return escaped(text, variant)

    fields = (
        ("题　名", f"{t(book.title)} / {t(book.author)}"),
        ("作　者", t(book.author)),
        ("出版项", t(book.publication)),
        (
            "ISBN",
            f'{escape(book.isbn_shown)} <input type="hidden" name="ISBN" '
            f'value="{escape(book.isbn_shown)}">',
        ),
        ("载体形态", t(book.physical)),
        ("索取号", t(book.call_number)),
        ("附注信息", t(book.notes)),
    )
    # Bare (guess): the label cells without attributes.
    label_cell = "<td>" if variant == "bare" else '<td width="15%" bgcolor="#EEEEEE">'
    rows = "\n".join(
        f"<tr>{label_cell}{_label(label, variant)}</td><td>{value}</td></tr>"
        for label, value in fields
    )
    kind = "中文图书" if book.language == "zh" else "外文图书"
    copies = "\n".join(
        f"<tr><td>{c.barcode}</td><td>{t(c.location)}</td><td>{t(kind)}</td>"
        f"<td>{t(_status(c)[0])}</td><td>{_status(c)[1]}</td><td></td></tr>"
        for c in book.copies
    )
    heads = ("条码号", "馆藏地点", "流通类型", "状态", "应还日期", "卷册说明")
    body = (
        f'<div align="center">\n<table width="95%" border="0">\n{rows}\n</table>\n</div>\n'
        '<div name="holding">\n<table width="95%" border="1">\n'
        "<tr>" + "".join(f"<td>{_label(h, variant)}</td>" for h in heads) + "</tr>\n"
        f"{copies}\n"
        f'<tr><td colspan="6">共 {len(book.copies)} 册</td></tr>\n</table>\n</div>'
    )
    return _page("书目详细信息", body, variant)


class IlasHandler(OverloadHandler):
    """Base of the ILAS pages: the overload layer, GBK pages and forms."""

    state: CatalogueState

    def set_default_headers(self) -> None:
        self.set_header("Server", "Microsoft-IIS/5.0")

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Form values arrive in GBK, as the pages are."""
        return value.decode("gb18030", errors="replace")

    def variant(self, key: str) -> Variant:
        """The variant of the page for a query or record number (`mixed`: by that key)."""
        return variant_for(self.state.settings.variant, key)

    def html(self, text: str, status: int = 200, variant: Variant = "plain") -> None:
        self.set_status(status)
        self.set_header("Content-Type", CONTENT_TYPES[variant])
        self.finish(text.encode("gbk", errors="replace"))


class SearchHandler(IlasHandler):
    """POST (or GET) /ilas/cgi-bin/IlaswebBib."""

    def post(self) -> None:
        arg = self.get_argument
        form = {
            "v_index": arg("v_index", "TITLE"),
            "v_value": arg("v_value", "").strip(),
            "FLD_DAT_BEG": arg("FLD_DAT_BEG", ""),
            "FLD_DAT_END": arg("FLD_DAT_END", ""),
            "v_pagenum": str(_number(arg("v_pagenum", "10"), 10, 1, MAX_PAGENUM)),
            "v_seldatabase": arg("v_seldatabase", "0"),
            "v_LogicSrch": arg("v_LogicSrch", "0"),
        }
        screen = _number(arg("v_curscr", "1"), 1, 1, 100_000)
        self.state.count("searches")
        # Guess: TITLE searches titles; AUTHOR (not used by the client) titles and authors.
        title_only = form["v_index"].upper() != "AUTHOR"
        books = self.state.catalogue.search(form["v_value"], title_only, False)
        v = self.variant(form["v_value"])
        if not books:
            self.html(no_hits_page(form["v_value"], v), variant=v)
            return
        self.html(results_page(books, form, screen, int(form["v_pagenum"]), v), variant=v)

    get = post


class DetailHandler(IlasHandler):
    """GET /ilas/cgi-bin/DispBibDetail?v_recno=N&v_curdbno=0."""

    def latency_factor(self) -> float:
        return _DETAIL_FACTOR

    def get(self) -> None:
        self.state.count("records")
        recno = self.get_argument("v_recno", "")
        book = self.state.catalogue.by_id.get(recno)
        v = self.variant(recno)
        if book is None or self.get_argument("v_curdbno", "0") != "0":
            self.html(no_record_page(v), variant=v)
            return
        self.html(detail_page(book, v), variant=v)


class NotFoundHandler(IlasHandler):
    def get(self, *args: str) -> None:
        self.html(_page("404", "<h1>404 Not Found</h1>"), 404)

    post = get


def routes(prefix: str, state: SystemState) -> list[Rule]:
    assert isinstance(state, CatalogueState)
    s: dict[str, Any] = {"state": state}
    p = re.escape(prefix)
    return [
        *truth_routes(NAME, state),
        (rf"{p}cgi-bin/IlaswebBib", SearchHandler, s),
        (rf"{p}cgi-bin/DispBibDetail", DetailHandler, s),
        (rf"{p}.*", NotFoundHandler, s),
    ]


def mount(profile: str, settings: SimSettings) -> Mount:
    """The Zhuhai catalogue under /ilas/, with its own overload layer."""
    state = CatalogueState(
        NAME, profile, calibrated(NAME, profile, settings), PREFIX, "zhuhai", BOOKS
    )
    return Mount(NAME, PREFIX, state, routes)
