"""/v1/library/search and /v1/library/books/<id>: the catalogues, typed.

No credentials: a library answer is the same for every student and is shared
through the cache. `campus` is `main` (the main library's INNOPAC catalogue,
the default) or `zhuhai` (the Zhuhai campus's ILAS catalogue).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from api.answers.library import (
    BookLinks,
    Holding,
    LibraryBook,
    LibraryRecord,
    LibrarySearch,
    RecordField,
    SearchLinks,
)
from handlers.base import CrossOriginReads
from services.errors import NotConfigured
from services.pipeline import Answer
from systems.library import models
from systems.library.legacy import SHARED_ANSWER
from systems.library.service import (
    Campus,
    LibraryService,
    campus_of,
    flag,
    page_number,
    search_query,
)


def v1_holding(holding: models.Holding) -> Holding:
    return Holding(
        location=holding.location,
        call_number=holding.call_number,
        status=holding.status,
        available=holding.available,
        due=holding.due,
    )


def book_id(campus: str, record_id: str) -> str | None:
    """A book's id in this API: the catalogue's record number, prefixed for Zhuhai."""
    if not record_id:
        return None
    return record_id if campus == "main" else f"zh-{record_id}"


def v1_brief(campus: str, book: models.BookBrief) -> LibraryBook:
    bid = book_id(campus, book.record_id)
    return LibraryBook(
        id=bid,
        title=book.title,
        author=book.author,
        publisher=book.publisher,
        pages=book.pages,
        year=book.year,
        isbn=book.cover_isbn or book.isbn,
        status=book.status,
        available=any(h.available for h in book.holdings),
        holdings=[v1_holding(h) for h in book.holdings],
        links=BookLinks(
            self_=None if bid is None else f"/v1/library/books/{bid}",
            cover=f"/isbn/image/{book.cover_isbn}" if book.cover_isbn else None,
        ),
    )


def freshness(answer: Answer[Any]) -> dict[str, Any]:
    """A library answer's envelope tail (no student_id: it is every reader's)."""
    return {"as_of": answer.as_of, "source": answer.source, "stale": answer.stale}


def v1_record(answer: Answer[models.BookRecord]) -> LibraryRecord:
    record = answer.value
    return LibraryRecord(
        **freshness(answer),
        id=book_id(record.catalogue, record.record_id),
        campus=record.catalogue,
        title=record.title,
        author=record.author,
        publisher=record.publisher,
        isbn=record.isbn,
        call_number=record.call_number,
        description=record.description,
        notes=record.notes,
        fields=[RecordField(label=label, value=value) for label, value in record.fields],
        holdings=[v1_holding(h) for h in record.holdings],
        available=any(h.available for h in record.holdings),
    )


class V1LibraryHandler(CrossOriginReads):
    """No credentials: one reader's answer is every reader's, so any cache may keep it
    and revalidate it by its ETag, and pages of `api.cors_origins` may read it."""

    etagged = True

    def library(self) -> LibraryService:
        if self.deps.library is None:
            raise NotConfigured("the library is not configured here")
        return self.deps.library


class LibrarySearchHandler(V1LibraryHandler):
    async def get(self) -> None:
        library = self.library()
        query = search_query(self.get_query_argument("q", None))
        page = page_number(self.get_query_argument("page", None))
        available = flag(self.get_query_argument("available", None), "available")
        campus = campus_of(self.get_query_argument("campus", None))
        answer = await library.search(
            campus, query, page, available, self.caller(), self.wants_fresh()
        )
        found = answer.value
        pages = None
        if found.total is not None:
            pages = max(1, -(-found.total // found.per_page))

        def link(n: int) -> str:
            args = {"q": query, "page": n, "campus": campus}
            if available:
                args["available"] = 1
            return "/v1/library/search?" + urlencode(args)

        more = len(found.books) >= found.per_page if pages is None else page < pages
        body = LibrarySearch(
            **freshness(answer),
            campus=campus,
            query=query,
            page=page,
            per_page=found.per_page,
            total=found.total,
            pages=pages,
            available_only=available,
            books=[v1_brief(campus, b) for b in found.books],
            links=SearchLinks(
                self_=link(page),
                next=link(page + 1) if more else None,
                prev=link(page - 1) if page > 1 else None,
            ),
        )
        self.set_header("Cache-Control", SHARED_ANSWER)
        self.write_answer(answer, body)


class LibraryBookHandler(V1LibraryHandler):
    async def get(self, bid: str) -> None:
        library = self.library()
        zhuhai = bid.startswith("zh-")
        campus: Campus = "zhuhai" if zhuhai else "main"
        record_id = bid[3:] if zhuhai else bid
        answer = await library.book(campus, record_id, self.caller(), self.wants_fresh())
        body = v1_record(answer)
        self.set_header("Cache-Control", SHARED_ANSWER)
        self.write_answer(answer, body)
