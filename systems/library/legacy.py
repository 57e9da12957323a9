"""The 2013 library endpoints: `/book/search/<anything>`, `/web/book` and `/isbn/image/<isbn>`.

`/book/search/<x>` (2013 clients used `/book/search/engine`), GET or POST:
`query` (else the path's last part, as in 2013), `page` (default 1),
`available` (0/1: copies on the shelf only), `iszh` (1: the Zhuhai campus
catalogue). Answer as 2013 wrote it, `{"data": [{"title", "url", "status",
"detail", "author", "publish", "size", "year", "position": [...], "checkout":
0/1, "lookup": 0/1, "isbn", "image", "douban"}], "version": 1.0}`; `image` is
our own `/isbn/image/<isbn>` (2013 linked an outside cover site).

`/web/book?url=<URL-safe base64 of a record URL>`: the book's page, in HTML
from our template (everything that came from the catalogue is escaped). Only
record URLs of the configured catalogues are accepted: any other URL is a 400
and is never fetched.

`/isbn/image/<isbn>`: the cover from the cover service, or our placeholder
image when it has none.
"""

from __future__ import annotations

from pathlib import Path

from tornado.template import Loader

from api.answers.common import LEGACY_VERSION
from api.answers.library import LegacyBook, LegacyBookSearch
from handlers.base import CrossOriginReads
from handlers.legacy import LegacyHandler
from services import codes
from services.errors import BadInput, NotConfigured
from systems.library.models import BookBrief, BookRecord, Holding
from systems.library.service import (
    LibraryService,
    campus_of,
    decode_book_url,
    encode_book_url,
    flag,
    page_number,
    search_query,
)

TEMPLATES = Loader(str(Path(__file__).resolve().parent / "templates"))
PLACEHOLDER = (
    Path(__file__).resolve().parent.parent.parent / "static" / "cover-placeholder.png"
).read_bytes()


def holding_text(holding: Holding) -> str:
    """One copy as 2013 listed it: location, call number and status in one string."""
    return " ".join(
        part for part in (holding.location, holding.call_number, holding.status) if part
    )


def legacy_book(book: BookBrief, image_base: str) -> LegacyBook:
    on_shelf = any(h.available for h in book.holdings)
    return LegacyBook(
        title=book.title,
        url=book.record_url,
        status=book.status,
        detail=" ".join(holding_text(h) for h in book.holdings),
        author=book.author,
        publish=book.publisher,
        size=book.pages,
        year=book.year,
        position=[holding_text(h) for h in book.holdings],
        checkout=1 if on_shelf else 0,
        lookup=1 if book.holdings else 0,
        isbn=book.cover_isbn or book.isbn,
        image=f"{image_base}/isbn/image/{book.cover_isbn}" if book.cover_isbn else "",
        douban=f"http://book.douban.com/isbn/{book.cover_isbn}/" if book.cover_isbn else "",
    )


# One reader's answer is every reader's (no credentials): any cache may keep it, and
# revalidate it by its ETag.
SHARED_ANSWER = "public, no-cache"


class LegacyLibraryHandler(CrossOriginReads, LegacyHandler):
    etagged = True

    def library(self) -> LibraryService:
        if self.deps.library is None:
            raise NotConfigured("the library is not configured here")
        return self.deps.library

    def own_base(self) -> str:
        """Where clients reach this server (`api.public_url`; never the Host header,
        which is the client's to write)."""
        return self.deps.public_url


class BookSearchHandler(LegacyLibraryHandler):
    async def get(self, name: str) -> None:
        library = self.library()
        asked = self.get_argument("query", None)
        if asked:
            query = search_query(asked)
        else:
            # The path's last part stands for the words: one that cannot be searched names
            # no search (as a path of another shape names no route).
            try:
                query = search_query(name)
            except BadInput:
                raise BadInput(codes.NOT_FOUND, "no search words, in `query` or the path") from None
        page = page_number(self.get_argument("page", None))
        available = flag(self.get_argument("available", None), "available")
        campus = campus_of(None, self.get_argument("iszh", None) or "0")
        answer = await library.search(
            campus, query, page, available, self.caller(), self.wants_fresh()
        )
        base = self.own_base()
        books = [legacy_book(b, base) for b in answer.value.books]
        self.set_header("Cache-Control", SHARED_ANSWER)
        self.write_answer(answer, LegacyBookSearch(data=books, version=LEGACY_VERSION))

    post = get


class BookPageHandler(LegacyLibraryHandler):
    """An HTML page of one book (errors stay JSON, like every error of the API)."""

    async def get(self) -> None:
        library = self.library()
        url = decode_book_url(self.get_argument("url", ""))
        found = library.record_of_url(url) if url is not None else None
        if found is None:
            raise BadInput(
                codes.INVALID_URL, "url must be a record URL of the library's catalogues"
            )
        campus, record_id = found
        answer = await library.book(campus, record_id, self.caller(), self.wants_fresh())
        self.mark_answer(answer)
        self.set_header("Cache-Control", SHARED_ANSWER)
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.finish(book_page(answer.value))


def book_page(record: BookRecord) -> bytes:
    return TEMPLATES.load("book.html").generate(
        record=record,
        campus="珠海校区图书馆" if record.catalogue == "zhuhai" else "暨南大学图书馆",
        cover=f"/isbn/image/{record.isbn}" if record.isbn else "",
        link=f"/web/book?url={encode_book_url(record.record_url)}",
    )


class CoverHandler(CrossOriginReads):
    """A cover image; the placeholder when the cover service has none."""

    etagged = True

    async def get(self, isbn: str) -> None:
        if self.deps.library is None:
            raise NotConfigured("the library is not configured here")
        answer = await self.deps.library.cover(isbn, self.caller())
        self.mark_answer(answer)
        found = answer.value.cover
        self.set_header("Cache-Control", "public, max-age=86400")
        self.set_header("X-Content-Type-Options", "nosniff")
        if found is None:
            self.set_header("Content-Type", "image/png")
            self.set_header("X-Cover", "placeholder")
            self.finish(PLACEHOLDER)
            return
        self.set_header("Content-Type", found.content_type)
        self.finish(found.image)
