"""The library's questions: catalogue searches, book records and covers.

Three systems on the shared pipeline (services/pipeline/), none with
credentials: the main library's INNOPAC catalogue (`library`), the Zhuhai
campus's ILAS catalogue (`library_zhuhai`) and the cover service (`covers`).
An answer carries nothing of the student who asked, so one student's search
serves every other: the cache is keyed by the normalised query, coalesced
across workers and hosts, and each system has its own budget and breaker. No
gate (there is no password); a caller's share of the school budget applies
to searches the cache cannot answer. The clients are systems/library/.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, TypeVar

from school.errors import AnswerRefused
from services import codes
from services.callers import Caller
from services.errors import BadInput, QueryRefused
from services.pipeline import Answer, Pipeline, Question
from services.storage import Codec
from settings import Settings
from systems.library import ilas_pages, innopac_pages
from systems.library.config import CoverServiceConfig, MainCatalogueConfig
from systems.library.covers import CoverClient
from systems.library.ilas import IlasClient
from systems.library.innopac import InnopacClient
from systems.library.isbn import normalise_isbn
from systems.library.models import BookRecord, SearchPage, normalise_query

Campus = Literal["main", "zhuhai"]
CAMPUSES: tuple[Campus, ...] = ("main", "zhuhai")
MAX_QUERY_CHARS = 200
MAX_PAGE = 50

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Cover:
    """A cover image as stored: its type and its bytes in base64 (answers are JSON)."""

    content_type: str
    data: str  # base64

    @property
    def image(self) -> bytes:
        return base64.b64decode(self.data)


@dataclass(frozen=True, slots=True)
class MaybeCover:
    """The cover service's answer: a cover, or none (kept too: a missing cover is not
    asked for again while fresh)."""

    cover: Cover | None


# The Cache-Status of an answer that stands in for one refused for what was asked.
REFUSED_STATUS = 'jnufm; fwd=miss; detail="refused"'

SEARCH: Codec[SearchPage] = Codec(SearchPage)
RECORD: Codec[BookRecord] = Codec(BookRecord)
COVER: Codec[MaybeCover] = Codec(MaybeCover)


def campus_of(value: str | None, zhuhai_flag: str | None = None) -> Campus:
    """`campus=main|zhuhai` (or 2013's `iszh=1`). Raises BadInput."""
    if zhuhai_flag is not None:
        if zhuhai_flag not in ("0", "1", ""):
            raise BadInput(codes.INVALID_CAMPUS, "iszh is 0 or 1")
        return "zhuhai" if zhuhai_flag == "1" else "main"
    if value in (None, ""):
        return "main"
    if value not in CAMPUSES:
        raise BadInput(codes.INVALID_CAMPUS, "campus is main or zhuhai")
    return value


def search_query(text: str | None) -> str:
    """The query as it keys the cache and goes to the catalogue. Raises BadInput."""
    if text is None or not normalise_query(text):
        raise BadInput(codes.MISSING_QUERY, "a search query (query or q) is required")
    query = normalise_query(text)
    if len(query) > MAX_QUERY_CHARS:
        raise BadInput(
            codes.INVALID_QUERY, f"the query must be at most {MAX_QUERY_CHARS} characters"
        )
    if any(ord(c) < 0x20 for c in query):
        raise BadInput(codes.INVALID_QUERY, "the query holds control characters")
    return query


def page_number(text: str | None) -> int:
    if text in (None, ""):
        return 1
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadInput(codes.INVALID_PAGE, f"page is a whole number from 1 to {MAX_PAGE}")
    return int(text)


# The error of a yes/no parameter that is neither, by the parameter's name.
FLAGS: Final = {"available": codes.INVALID_AVAILABLE}


def flag(text: str | None, name: str) -> bool:
    if text in (None, "", "0", "false"):
        return False
    if text in ("1", "true"):
        return True
    raise BadInput(FLAGS[name], f"{name} is 0 or 1")


class LibraryService:
    """Answers library queries for one worker process."""

    def __init__(
        self,
        main: InnopacClient,
        zhuhai: IlasClient,
        covers: CoverClient,
        pipelines: dict[str, Pipeline[None]],
        settings: Settings,
    ) -> None:
        self.main = main
        self.zhuhai = zhuhai
        self.covers = covers
        self._pipelines = pipelines
        self._fresh = settings.school.section("library", MainCatalogueConfig).fresh_s
        self._cover_fresh = settings.school.section("covers", CoverServiceConfig).fresh_s

    def pipeline(self, campus: Campus) -> Pipeline[None]:
        return self._pipelines["library" if campus == "main" else "library_zhuhai"]

    def pipelines(self) -> dict[str, Pipeline[None]]:
        """Each system's pipeline by its name (`library`, `library_zhuhai`, `covers`)."""
        return dict(self._pipelines)

    async def _ask(
        self,
        pipeline: Pipeline[None],
        kind: str,
        params: str,
        max_age_s: float,
        fetch: Callable[[], Awaitable[T]],
        codec: Codec[T],
        fresh: bool,
        caller: Caller,
        refused: T | None = None,
    ) -> Answer[T]:
        """`refused`: the answer when the school's is refused for what was asked
        (AnswerRefused, and no older answer stands in); None: that is an error."""

        async def school(_: None) -> T:
            try:
                return await fetch()
            except ValueError as exc:  # the client refused the input before sending it
                raise BadInput(codes.INVALID_QUERY, str(exc)) from None

        async with pipeline.query(None, caller) as q:
            try:
                return await q.answer(Question(kind, params, max_age_s, school, codec, fresh))
            except AnswerRefused:
                if refused is None:
                    raise
                # Not stored: it says nothing lasting about the book, and the next
                # request may get a cover we accept.
                return Answer(refused, datetime.now(UTC), "school", False, REFUSED_STATUS)

    async def search(
        self,
        campus: Campus,
        query: str,
        page: int,
        available: bool,
        caller: Caller,
        fresh: bool = False,
    ) -> Answer[SearchPage]:
        """One page of a title search (query already normalised by `search_query`)."""
        # ILAS has no "available only" filter: the flag does not split its cache.
        available = available and campus == "main"
        client = self.main if campus == "main" else self.zhuhai
        if campus == "zhuhai" and page > self.zhuhai.max_pages:
            raise BadInput(
                codes.PAGE_NOT_SERVED, f"Zhuhai's results go to page {self.zhuhai.max_pages}"
            )
        return await self._ask(
            self.pipeline(campus),
            "search",
            f"{int(available)}|{page}|{query}",
            self._fresh.search,
            lambda: client.search(query, page, available),
            SEARCH,
            fresh,
            caller,
        )

    async def book(
        self, campus: Campus, record_id: str, caller: Caller, fresh: bool = False
    ) -> Answer[BookRecord]:
        """A book's record with its copies. Raises BadInput 404 for an unknown record."""
        client = self.main if campus == "main" else self.zhuhai
        pattern = innopac_pages.RECORD_ID if campus == "main" else ilas_pages.RECORD_ID
        if not pattern.fullmatch(record_id):
            raise BadInput(codes.INVALID_BOOK_ID, "not a record number of this catalogue")
        try:
            return await self._ask(
                self.pipeline(campus),
                "book",
                record_id,
                self._fresh.book,
                lambda: client.record(record_id),
                RECORD,
                fresh,
                caller,
            )
        except QueryRefused:
            raise BadInput(codes.UNKNOWN_BOOK, "no such book in this catalogue") from None

    def record_of_url(self, url: str) -> tuple[Campus, str] | None:
        """The catalogue and record id of a record URL of one of the configured
        catalogues; None for any other URL (never fetched)."""
        for campus, client in (("main", self.main), ("zhuhai", self.zhuhai)):
            found = client.record_id_from_url(url)
            if found:
                return campus, found  # type: ignore[return-value]
        return None

    def record_url(self, campus: Campus, record_id: str) -> str:
        if campus == "main":
            return innopac_pages.record_url(self.main.settings.base_url, record_id)
        return self.zhuhai.detail_url(record_id)

    async def cover(self, isbn: str, caller: Caller) -> Answer[MaybeCover]:
        """A book's cover by ISBN (validated first: BadInput), or none (also when the
        service's answer is refused: too large, or not an image)."""
        valid = normalise_isbn(isbn)
        if valid is None:
            raise BadInput(codes.INVALID_ISBN, "not a valid ISBN-10 or ISBN-13")

        async def fetch() -> MaybeCover:
            found = await self.covers.cover(valid)
            if found is None:
                return MaybeCover(None)
            image, content_type = found
            return MaybeCover(Cover(content_type, base64.b64encode(image).decode("ascii")))

        return await self._ask(
            self._pipelines["covers"],
            "cover",
            valid,
            self._cover_fresh.cover,
            fetch,
            COVER,
            False,
            caller,
            # A cover too large or not an image is no cover we can pass on: the
            # placeholder, as for a book without one.
            refused=MaybeCover(None),
        )


def decode_book_url(token: str) -> str | None:
    """2013's `/web/book?url=`: a record URL in URL-safe base64 (padding optional)."""
    if not token or len(token) > 600:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return raw.decode("ascii")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def encode_book_url(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode("ascii")).decode("ascii").rstrip("=")
