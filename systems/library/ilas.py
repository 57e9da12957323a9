"""Async client of the Zhuhai campus library's catalogue (ILAS, GBK CGI pages).

A search is the form post the 2013 client sent (evidence: `POST
/cgi-bin/IlaswebBib`, `v_index=TITLE`, `v_value` in GBK, `v_pagenum=10`), with the
other fields ILAS's own search form sends (evidence: clients at other schools).
Further pages are reached as a browser does, by submitting each page's
`nextpage` form (evidence: other schools' clients); whether a page can be asked
for directly is not known, so page N costs N requests (capped by `max_pages`).
ILAS has no availability filter (2013 ignored `available` for Zhuhai), so
`available_only` is ignored: its result rows carry no status at all (status "",
no holdings) unless `isbn_lookups` reads the first rows' detail pages.
See docs/library-protocol.md.
"""

from __future__ import annotations

import re

import httpx

from school.errors import SchoolPageError
from school.web import Browser, CookieJar, Reply
from systems.library.config import ZhuhaiCatalogueConfig
from systems.library.ilas_pages import (
    RECORD_ID,
    SEARCH_KIND,
    IlasRow,
    parse_detail,
    parse_results,
    record_id_of,
    split_record_id,
)
from systems.library.innopac import (
    RecordUrls,
    checked_page,
    checked_query,
)
from systems.library.innopac_pages import year_of
from systems.library.models import BookBrief, BookRecord, RecordPage, SearchPage

# Evidence (2013): ten rows a page.
PER_PAGE = 10
SEARCH_PATH = "cgi-bin/IlaswebBib"
DETAIL_PATH = "cgi-bin/DispBibDetail"
SYSTEM = "library_zhuhai"
_METRIC_PATH = re.compile(r"(?:/[A-Za-z0-9_-]{1,20})?/cgi-bin/(?:IlaswebBib|DispBibDetail)")
# Evidence: DispBibDetail?v_recno=<n>&v_curdbno=<n> (relative to /cgi-bin/).
_RECORD_PATH = re.compile(
    r"/cgi-bin/DispBibDetail\?v_recno=([0-9A-Za-z]{1,20})&v_curdbno=(\d{1,3})"
)
# The search form's other fields (evidence: ILAS clients at other schools).
_FORM_REST = (
    ("FLD_DAT_BEG", ""),
    ("FLD_DAT_END", ""),
    ("v_pagenum", str(PER_PAGE)),
    ("v_seldatabase", "0"),
    ("v_LogicSrch", "0"),
    ("submit", "查 询"),
)


class IlasClient:
    """The Zhuhai campus library's ILAS; one per worker process."""

    def __init__(
        self,
        settings: ZhuhaiCatalogueConfig,
        http: httpx.AsyncClient,
    ) -> None:
        """`settings.max_pages`: deepest page asked (each costs one more request);
        `settings.isbn_lookups`: how many rows of a page get their detail page read for
        ISBN and copies (2013 read five: each is one more request to a fragile CGI)."""
        self.settings = settings
        self.max_pages = settings.max_pages
        self.isbn_lookups = settings.isbn_lookups
        self._base = settings.base_url.rstrip("/")
        self._browser = Browser(SYSTEM, settings, http, _METRIC_PATH)
        self._records = RecordUrls(
            settings.base_url, _RECORD_PATH, lambda found: record_id_of(*found.groups())
        )

    @property
    def requests_sent(self) -> int:
        return self._browser.requests_sent

    def detail_url(self, record_id: str) -> str:
        recno, dbno = split_record_id(record_id)
        return f"{self._base}/{DETAIL_PATH}?v_recno={recno}&v_curdbno={dbno}"

    async def search(self, query: str, page: int, available_only: bool = False) -> SearchPage:
        """One page of a title search; `available_only` is ignored (ILAS has no such filter)."""
        text = checked_query(query)
        checked_page(page, self.max_pages)
        try:
            text.encode("gbk")
        except UnicodeEncodeError:
            # The catalogue is GBK: no record holds a character outside it, none matches.
            return SearchPage("zhuhai", text, page, 0, PER_PAGE, ())
        jar = CookieJar()
        fields = (("v_index", "TITLE"), ("v_value", text), *_FORM_REST)
        url = self._browser.url(f"{self._base}/{SEARCH_PATH}")
        reply = await self._browser.send("POST", url, jar, self._base + "/", fields, "gbk")
        found = parse_results(reply.body, reply.content_type)
        total = found.total
        seen = {row.recno for row in found.rows}
        for number in range(2, page + 1):
            if found.next_form is None:
                # Past the last page.
                return SearchPage("zhuhai", text, page, total, PER_PAGE, ())
            reply = await self._browser.submit(found.next_form, reply, jar)
            found = parse_results(reply.body, reply.content_type)
            if any(row.recno in seen for row in found.rows):
                raise SchoolPageError(f"page {number} repeats rows of an earlier page", SEARCH_KIND)
            seen |= {row.recno for row in found.rows}
        if len(found.rows) > PER_PAGE:
            raise SchoolPageError(
                f"a page of {len(found.rows)} rows, asked for {PER_PAGE}", SEARCH_KIND
            )
        if total is None and found.next_form is None and (page == 1 or found.rows):
            # No count line (guess: it may be left out): the last screen tells the total.
            total = (page - 1) * PER_PAGE + len(found.rows)
        books = []
        for index, row in enumerate(found.rows):
            detail = await self._detail(row) if index < self.isbn_lookups else None
            books.append(self._brief(row, detail))
        return SearchPage("zhuhai", text, page, total, PER_PAGE, tuple(books))

    async def _detail(self, row: IlasRow) -> RecordPage:
        reply = await self._get(self.detail_url(record_id_of(row.recno, row.dbno)))
        return parse_detail(reply.body, reply.content_type)

    async def _get(self, url: str) -> Reply:
        return await self._browser.send(
            "GET", self._browser.url(url), CookieJar(), self._base + "/"
        )

    def _brief(self, row: IlasRow, detail: RecordPage | None) -> BookBrief:
        record_id = record_id_of(row.recno, row.dbno)
        return BookBrief(
            record_id=record_id,
            record_url=self.detail_url(record_id),
            title=row.title,
            author=row.author,
            publisher=row.publisher,
            pages=row.pages,
            year=year_of(row.publisher),
            isbn=detail.isbn if detail else "",
            status="",
            holdings=detail.holdings if detail else (),
            cover_isbn=detail.isbn if detail else "",
        )

    async def record(self, record_id: str) -> BookRecord:
        """A detail page by its record id (v_recno, ".<v_curdbno>" unless 0)."""
        if not RECORD_ID.fullmatch(record_id):
            raise ValueError("not a Zhuhai record id")
        url = self.detail_url(record_id)
        reply = await self._get(url)
        page = parse_detail(reply.body, reply.content_type)
        return page.book_record("zhuhai", record_id, url)

    def record_id_from_url(self, url: str) -> str | None:
        """The record id of one of this catalogue's detail links; None for any other URL."""
        return self._records.record_id(url)
