"""Catalogue pages in every markup variant (schoolsim/variants.py): each page the
simulator writes reads to the same facts as its `plain` rendering, and a page cut short
is refused (SchoolPageError with the page's kind), never read in part. A difference
means the client depends on how the simulator writes a page, not on what it says."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from school.errors import QueryRejected, SchoolPageError
from schoolsim.library import ilas as sim_ilas
from schoolsim.library import opac as sim_opac
from schoolsim.library.dataset import Book, Catalogue
from schoolsim.variants import VARIANTS, Variant
from systems.library.ilas_pages import IlasResults, parse_detail, parse_results
from systems.library.innopac_pages import BriefPage, parse_record, parse_search
from systems.library.models import RecordPage

BASE = "http://202.116.13.244"
PREFIX = "/opac/"
TODAY = date(2026, 12, 1)
MAIN = Catalogue(7, "main", 400, TODAY)
ZHUHAI = Catalogue(7, "zhuhai", 300, TODAY)
# Queries with a few to a few dozen hits: title words of the catalogues.
QUERIES = sorted({w for b in MAIN.books[:60] for w in b.title.split() if len(w) >= 2})
ZH_QUERIES = ["数据", "管理", "中国", "历史", "系统", "研究"]
NOT_PLAIN = [v for v in VARIANTS if v != "plain"]
_TABLE_END = re.compile(r"</table\s*>", re.IGNORECASE)


def innopac_search(books: list[Book], first: int, query: str, variant: Variant) -> BriefPage:
    page = sim_opac.results_page(books, first, query, PREFIX, variant)
    return parse_search(page.encode("utf-8"), BASE, sim_opac.CONTENT_TYPES[variant])


def innopac_record(book: Book, variant: Variant) -> RecordPage:
    page = sim_opac.record_page(book, PREFIX, variant)
    return parse_record(page.encode("utf-8"), sim_opac.CONTENT_TYPES[variant])


def ilas_form(query: str) -> dict[str, str]:
    return {"v_index": "TITLE", "v_value": query, "v_pagenum": "10"}


def ilas_search(books: list[Book], query: str, screen: int, variant: Variant) -> IlasResults:
    page = sim_ilas.results_page(books, ilas_form(query), screen, 10, variant)
    return parse_results(page.encode("gbk"), sim_ilas.CONTENT_TYPES[variant])


def ilas_detail(book: Book, variant: Variant) -> RecordPage:
    page = sim_ilas.detail_page(book, variant)
    return parse_detail(page.encode("gbk"), sim_ilas.CONTENT_TYPES[variant])


def content_end(text: str, encoding: str) -> int:
    """The byte offset just after the page's last `</table>`: its content ends there."""
    ends = list(_TABLE_END.finditer(text))
    assert ends, "a page with content has tables"
    return len(text[: ends[-1].end()].encode(encoding))


# --- the same facts in every variant ------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(query=st.sampled_from(QUERIES), page=st.integers(1, 4), available=st.booleans())
def test_innopac_results_read_the_same_in_every_variant(
    query: str, page: int, available: bool
) -> None:
    books = MAIN.search(query, False, available)
    first = 1 + (page - 1) * sim_opac.PER_PAGE
    if len(books) < 2 or first > len(books):
        return
    plain = innopac_search(books, first, query, "plain")
    shown = books[first - 1 : first - 1 + sim_opac.PER_PAGE]
    assert [b.title for b in plain.books] == [b.title for b in shown]
    assert [b.record_id for b in plain.books] == [b.record_id for b in shown]
    assert plain.total == len(books)
    for variant in NOT_PLAIN:
        found = innopac_search(books, first, query, variant)
        assert found.books == plain.books, variant
        assert (found.first, found.last) == (plain.first, plain.last), variant
        if found.total is None:
            # Only where the page says it all the same: a last page short of twelve rows.
            assert variant == "modern" and len(found.books) < sim_opac.PER_PAGE
            assert first - 1 + len(found.books) == plain.total
        else:
            assert found.total == plain.total, variant


@settings(max_examples=30, deadline=None)
@given(index=st.integers(0, len(MAIN.books) - 1))
def test_innopac_record_reads_the_same_in_every_variant(index: int) -> None:
    book = MAIN.books[index]
    plain = innopac_record(book, "plain")
    assert (plain.record_id, plain.title, plain.author) == (book.record_id, book.title, book.author)
    assert len(plain.holdings) == len(book.copies)
    for variant in NOT_PLAIN:
        assert innopac_record(book, variant) == plain, variant


@settings(max_examples=20, deadline=None)
@given(query=st.sampled_from(ZH_QUERIES), screen=st.integers(1, 3))
def test_ilas_results_read_the_same_in_every_variant(query: str, screen: int) -> None:
    books = ZHUHAI.search(query, True, False)
    if (screen - 1) * 10 >= max(len(books), 1):
        return
    plain = ilas_search(books, query, screen, "plain")
    assert [r.recno for r in plain.rows] == [b.record_id for b in books[(screen - 1) * 10 :][:10]]
    assert plain.total == len(books)
    for variant in NOT_PLAIN:
        found = ilas_search(books, query, screen, variant)
        assert found.rows == plain.rows, variant
        assert found.next_form == plain.next_form, variant
        if found.total is None:
            # Only on the last screen (no next page): its rows end the result.
            assert variant == "modern" and found.next_form is None
            assert (screen - 1) * 10 + len(found.rows) == plain.total
        else:
            assert found.total == plain.total, variant


@settings(max_examples=30, deadline=None)
@given(index=st.integers(0, len(ZHUHAI.books) - 1))
def test_ilas_detail_reads_the_same_in_every_variant(index: int) -> None:
    book = ZHUHAI.books[index]
    plain = ilas_detail(book, "plain")
    assert (plain.title, plain.author, plain.call_number) == (
        book.title,
        book.author,
        book.call_number,
    )
    assert len(plain.holdings) == len(book.copies)
    for variant in NOT_PLAIN:
        assert ilas_detail(book, variant) == plain, variant


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_hit_and_no_record_pages_in_every_variant(variant: Variant) -> None:
    opac_type, ilas_type = sim_opac.CONTENT_TYPES[variant], sim_ilas.CONTENT_TYPES[variant]
    none = parse_search(sim_opac.no_hits_page("zzz", variant).encode(), BASE, opac_type)
    assert (none.total, none.books) == (0, ())
    zh_none = parse_results(sim_ilas.no_hits_page("zzz", variant).encode("gbk"), ilas_type)
    assert (zh_none.total, zh_none.rows, zh_none.next_form) == (0, (), None)
    with pytest.raises(QueryRejected):
        parse_record(sim_opac.no_record_page(variant).encode(), opac_type)
    with pytest.raises(QueryRejected):
        parse_detail(sim_ilas.no_record_page(variant).encode("gbk"), ilas_type)


def test_variants_differ_in_markup() -> None:
    """The variants are not the same page: each has the traits it is named for."""
    book = MAIN.books[0]
    pages = {v: sim_opac.record_page(book, PREFIX, v) for v in VARIANTS}
    assert "<TD" in pages["legacy"] and "</html>" not in pages["legacy"].lower()
    assert "bibinfolabel" in pages["legacy"] and "<FONT" in pages["legacy"]
    assert '<meta charset="UTF-8">' in pages["modern"] and "<span" in pages["modern"]
    assert len(pages["modern"]) > 2 * len(pages["plain"])
    assert "&#" in pages["bare"] and "charset" not in pages["bare"].lower()
    assert "</html>" not in pages["bare"]
    assert sim_opac.CONTENT_TYPES["bare"] == "text/html"
    detail = sim_ilas.detail_page(ZHUHAI.books[0], "bare")
    assert "&nbsp;" in detail and "charset" not in detail.lower()


# --- a page cut short is refused ---------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    query=st.sampled_from(QUERIES),
    variant=st.sampled_from(VARIANTS),
    cut=st.floats(0.0, 1.0, exclude_max=True),
)
def test_innopac_results_cut_short_are_refused(query: str, variant: Variant, cut: float) -> None:
    books = MAIN.search(query, False, False)
    if len(books) < 2:
        return
    text = sim_opac.results_page(books, 1, query, PREFIX, variant)
    body = text.encode("utf-8")
    # Cut at a character: a cut inside one is a page that does not decode.
    at = len(text[: int(cut * len(text))].encode("utf-8"))
    kind = sim_opac.CONTENT_TYPES[variant]
    if at < content_end(text, "utf-8"):
        with pytest.raises(SchoolPageError) as refused:
            parse_search(body[:at], BASE, kind)
        assert refused.value.kind == "search"
    else:
        # Cut in the banners and footers after the content: every fact is there.
        assert parse_search(body[:at], BASE, kind) == parse_search(body, BASE, kind)


@settings(max_examples=30, deadline=None)
@given(
    index=st.integers(0, len(MAIN.books) - 1),
    variant=st.sampled_from(VARIANTS),
    cut=st.floats(0.0, 1.0, exclude_max=True),
)
def test_innopac_record_cut_short_is_refused(index: int, variant: Variant, cut: float) -> None:
    text = sim_opac.record_page(MAIN.books[index], PREFIX, variant)
    body = text.encode("utf-8")
    # Cut at a character: a cut inside one is a page that does not decode.
    at = len(text[: int(cut * len(text))].encode("utf-8"))
    kind = sim_opac.CONTENT_TYPES[variant]
    if at < content_end(text, "utf-8"):
        with pytest.raises(SchoolPageError) as refused:
            parse_record(body[:at], kind)
        assert refused.value.kind == "record"
    else:
        whole = parse_record(body, kind)
        cut_page = parse_record(body[:at], kind)
        # The permanent link follows the copies: a page cut before it reads without
        # its record number (the client then uses the number it asked for).
        assert cut_page.record_id in ("", whole.record_id)
        assert cut_page.fields == whole.fields and cut_page.holdings == whole.holdings


@settings(max_examples=40, deadline=None)
@given(
    query=st.sampled_from(ZH_QUERIES),
    variant=st.sampled_from(VARIANTS),
    cut=st.floats(0.0, 1.0, exclude_max=True),
)
def test_ilas_results_cut_short_are_refused(query: str, variant: Variant, cut: float) -> None:
    books = ZHUHAI.search(query, True, False)
    if not books:
        return
    text = sim_ilas.results_page(books, ilas_form(query), 1, 10, variant)
    body = text.encode("gbk")
    # Cut at a character: a cut inside one is a page that does not decode.
    at = len(text[: int(cut * len(text))].encode("gbk"))
    kind = sim_ilas.CONTENT_TYPES[variant]
    whole = parse_results(body, kind)
    if at < content_end(text, "gbk"):
        with pytest.raises(SchoolPageError) as refused:
            parse_results(body[:at], kind)
        assert refused.value.kind == "ilas_search"
        return
    # After the table come the next-page form and link: cut before the link ends, the
    # page is refused when more screens follow (the count line says so), else read whole.
    link = text.find("document.nextpage.submit()")
    link_end = len(text[: link + len("document.nextpage.submit()")].encode("gbk"))
    if whole.next_form is None or at >= link_end:
        assert parse_results(body[:at], kind) == whole
    else:
        with pytest.raises(SchoolPageError) as refused:
            parse_results(body[:at], kind)
        assert refused.value.kind == "ilas_search"


@settings(max_examples=30, deadline=None)
@given(
    index=st.integers(0, len(ZHUHAI.books) - 1),
    variant=st.sampled_from(VARIANTS),
    cut=st.floats(0.0, 1.0, exclude_max=True),
)
def test_ilas_detail_cut_short_is_refused(index: int, variant: Variant, cut: float) -> None:
    text = sim_ilas.detail_page(ZHUHAI.books[index], variant)
    body = text.encode("gbk")
    # Cut at a character: a cut inside one is a page that does not decode.
    at = len(text[: int(cut * len(text))].encode("gbk"))
    kind = sim_ilas.CONTENT_TYPES[variant]
    if at < content_end(text, "gbk"):
        with pytest.raises(SchoolPageError) as refused:
            parse_detail(body[:at], kind)
        assert refused.value.kind == "ilas_detail"
    else:
        assert parse_detail(body[:at], kind) == parse_detail(body, kind)


# --- reading by content -------------------------------------------------------------------


def test_innopac_results_without_a_count_line() -> None:
    """A full page without the count line: rows and their positions read, total unknown."""
    text = sim_opac.results_page(list(MAIN.books[:30]), 13, "x", PREFIX)
    without = re.sub(
        r'<tr><td class="browseHeader">.*?</tr></table></td></tr>\n',
        "",
        text,
        count=1,
        flags=re.S,
    )
    assert "browseHeaderData" not in without
    found = parse_search(without.encode(), BASE, "text/html")
    assert (found.first, found.last, found.total) == (13, 24, None)
    assert found.books == parse_search(text.encode(), BASE, "text/html").books
    # Positions that do not follow each other are refused.
    broken = without.replace("<br />14</td>", "<br />15</td>")
    with pytest.raises(SchoolPageError) as refused:
        parse_search(broken.encode(), BASE, "text/html")
    assert refused.value.kind == "search"


def test_count_line_without_rows_is_refused() -> None:
    books = list(MAIN.books[:30])
    text = sim_opac.results_page(books, 1, "x", PREFIX)
    cut = text[: text.index('class="briefCitRow"')]
    with pytest.raises(SchoolPageError) as refused:
        parse_search(cut.encode(), BASE, "text/html")
    assert refused.value.kind == "search"


def test_charset_from_header_then_meta_then_usual() -> None:
    book = ZHUHAI.books[0]
    page = sim_ilas.detail_page(book, "bare")
    # No declaration: GBK, the catalogue's usual one.
    assert parse_detail(page.encode("gbk"), "text/html").title == book.title
    # The header wins over the meta tag and the usual charset.
    assert parse_detail(page.encode("utf-8"), "text/html; charset=utf-8").title == book.title
    with_meta = page.replace("<head>", '<head><meta charset="utf-8">')
    assert parse_detail(with_meta.encode("utf-8"), "text/html").title == book.title
    main_book = MAIN.books[0]
    bare = sim_opac.record_page(main_book, PREFIX, "bare")
    # No declaration at the WebPAC: UTF-8, its usual one (not GBK).
    assert parse_record(bare.encode("utf-8"), "text/html").title == main_book.title
    with pytest.raises(SchoolPageError) as refused:
        parse_record(bare.encode("utf-8"), "text/html; charset=x-unknown")
    assert refused.value.kind == "record"


def test_labels_in_any_element_and_spacing() -> None:
    book = ZHUHAI.books[1]
    page = sim_ilas.detail_page(book)
    for label in ("题　名", "作　者"):
        page = page.replace(f">{label}<", f"><b>{label[0]}&nbsp;&nbsp;{label[-1]}：</b><", 1)
    found = parse_detail(page.encode("gbk"), "text/html")
    assert (found.title, found.author) == (book.title, book.author)
    # Labels compared without regard to case, in whatever element holds them.
    main_book = MAIN.books[2]
    record = sim_opac.record_page(main_book, PREFIX).replace(
        'class="bibInfoLabel">题名<', 'class="BIBINFOLABEL"><em>TITLE:</em><', 1
    )
    assert parse_record(record.encode(), "text/html").title == main_book.title
