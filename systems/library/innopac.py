"""Async client of the main library's catalogue (INNOPAC / Millennium WebPAC, UTF-8).

Searches are one GET each, by the URL scheme the 2013 client used (evidence:
`/{availlim/}search~S1*chx?/X(q)&SORT=D/X(q)&SORT=D&SUBKEY=(q)/<first>,40,40,B/browse`,
twelve rows a page); record pages by their permanent link (`/record=b1234567~S1*chx`,
evidence from other III sites). No session, no cookies kept. See
docs/library-protocol.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import httpx

from school.errors import SchoolPageError
from school.web import Browser, CookieJar, Reply
from systems.library.config import MainCatalogueConfig
from systems.library.innopac_pages import (
    RECORD_ID,
    RECORD_KIND,
    SEARCH_KIND,
    is_record_page,
    parse_record,
    parse_search,
    read,
    record_url,
    year_of,
)
from systems.library.models import BookBrief, BookRecord, RecordPage, SearchPage, normalise_query

# Evidence (2013): twelve results a page, asked by the first one's position.
PER_PAGE = 12
# Longest query sent (guess: the catalogue's own search box takes far less).
MAX_QUERY = 200
# Deepest page asked (a page past the results is empty anyway; bounds the position).
MAX_PAGE = 1000
SYSTEM = "library"
# Path labels of metrics: the search and record paths, whatever the query.
_METRIC_PATH = re.compile(r"(?:/[A-Za-z0-9_-]{1,20})?/(?:availlim/)?(?:search~S1\*chx|record=b\w+)")
# Characters that would end WebPAC's X(...) term early (guess): sent as spaces.
_TERM_BREAKERS = str.maketrans({"(": " ", ")": " "})


def checked_query(query: str) -> str:
    """The normalised query; ValueError if it is empty or too long."""
    text = normalise_query(query)
    if not text:
        raise ValueError("the query is empty")
    if len(text) > MAX_QUERY:
        raise ValueError(f"the query is longer than {MAX_QUERY} characters")
    return text


def checked_page(page: int, deepest: int = MAX_PAGE) -> int:
    """The page number; ValueError outside 1..deepest."""
    if not 1 <= page <= deepest:
        raise ValueError(f"page must be in 1..{deepest}")
    return page


class RecordUrls:
    """Which URLs are record links of one catalogue: exact scheme, host and port of its
    base URL, its path, and the record path pattern; nothing else (no user info, no
    query, no percent-encoding, no fragment)."""

    def __init__(
        self,
        base_url: str,
        record_path: re.Pattern[str],
        make_id: Callable[[re.Match[str]], str] = lambda found: found.group(1),
    ) -> None:
        parts = urlsplit(base_url)
        self._scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        default = 443 if self._scheme == "https" else 80
        port = parts.port or default
        self._netlocs = {f"{host}:{port}"} | ({host} if port == default else set())
        self._base_path = parts.path.rstrip("/")
        self._record_path = record_path
        self._make_id = make_id

    def record_id(self, url: str) -> str | None:
        """The record id a URL names, or None if it is not one of this catalogue's."""
        if not isinstance(url, str) or len(url) > 300 or not url.isascii():
            return None
        if any(c.isspace() or ord(c) < 0x21 or c in "\\%@#" for c in url):
            return None
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() != self._scheme:
            return None
        netloc, slash, path_query = rest.partition("/")
        if not slash or netloc.lower() not in self._netlocs:
            return None
        path = "/" + path_query
        if not path.startswith(self._base_path + "/"):
            return None
        found = self._record_path.fullmatch(path[len(self._base_path) :])
        return self._make_id(found) if found else None


# Evidence (III): /record=b1234567 (a check digit or x may follow), ~S1 scope, *chx language.
_INNOPAC_RECORD_PATH = re.compile(r"/record=(b\d{7}[\dx]?)(?:~S\d{1,3})?(?:\*chx)?")


class InnopacClient:
    """The main library's WebPAC; one per worker process, shared by every query."""

    def __init__(self, settings: MainCatalogueConfig, http: httpx.AsyncClient) -> None:
        """Use the caller's httpx client; no cookies are kept between requests."""
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        self._browser = Browser(SYSTEM, settings, http, _METRIC_PATH)
        self._records = RecordUrls(settings.base_url, _INNOPAC_RECORD_PATH)

    @property
    def requests_sent(self) -> int:
        return self._browser.requests_sent

    def search_url(self, query: str, page: int, available_only: bool) -> str:
        """The URL of one result page (evidence: the 2013 client's; the term UTF-8
        percent-encoded, every reserved character included)."""
        term = quote(" ".join(query.translate(_TERM_BREAKERS).split()), safe="", encoding="utf-8")
        first = 1 + (page - 1) * PER_PAGE
        limit = "availlim/" if available_only else ""
        return (
            f"{self._base}/{limit}search~S1*chx?/X({term})&SORT=D/X({term})&SORT=D"
            f"&SUBKEY=({term})/{first},40,40,B/browse"
        )

    async def _get(self, url: str) -> Reply:
        return await self._browser.send(
            "GET", self._browser.url(url), CookieJar(), self._base + "/"
        )

    async def search(self, query: str, page: int, available_only: bool) -> SearchPage:
        """One page of a keyword search (title, author, ...), optionally only books with
        a copy on the shelf."""
        text = checked_query(query)
        checked_page(page)
        if not text.translate(_TERM_BREAKERS).strip():
            raise ValueError("the query has no searchable characters")
        reply = await self._get(self.search_url(text, page, available_only))
        _, tree = read(reply.body, reply.content_type, SEARCH_KIND)
        if is_record_page(tree):
            # Evidence (III): a search with a single hit answers with that record.
            books = (self._as_brief(parse_record(reply.body, reply.content_type)),)
            return SearchPage("main", text, page, 1, PER_PAGE, books if page == 1 else ())
        found = parse_search(reply.body, self._base, reply.content_type)
        first = 1 + (page - 1) * PER_PAGE
        if found.books and found.first is not None and found.first != first:
            raise SchoolPageError(
                f"asked for results from {first}, got from {found.first}", SEARCH_KIND
            )
        total = found.total
        if total is None and len(found.books) < PER_PAGE:
            # No count line (guess: a later skin leaves it out): a page short of twelve
            # rows is the last, so the total is known all the same.
            total = first - 1 + len(found.books)
        return SearchPage("main", text, page, total, PER_PAGE, found.books)

    def _as_brief(self, record: RecordPage) -> BookBrief:
        if not record.record_id:
            raise SchoolPageError("a single-hit record page without its record number", SEARCH_KIND)
        return BookBrief(
            record_id=record.record_id,
            record_url=record_url(self._base, record.record_id),
            title=record.title,
            author=record.author,
            publisher=record.publisher,
            pages=record.description,
            year=year_of(record.publisher),
            isbn=record.isbn,
            status="",
            holdings=record.holdings,
            cover_isbn=record.isbn,
        )

    async def record(self, record_id: str) -> BookRecord:
        """A record page by its number ("b1234567")."""
        if not RECORD_ID.fullmatch(record_id):
            raise ValueError("record_id must look like b1234567")
        url = record_url(self._base, record_id)
        reply = await self._get(url)
        page = parse_record(reply.body, reply.content_type)
        if page.record_id and page.record_id[:8] != record_id[:8]:
            raise SchoolPageError(
                f"asked for record {record_id}, got {page.record_id}", RECORD_KIND
            )
        return page.book_record("main", record_id, url)

    def record_id_from_url(self, url: str) -> str | None:
        """The record number of one of this catalogue's record links; None for any other
        URL (other host, port, scheme or path, user info, encoded characters)."""
        return self._records.record_id(url)
