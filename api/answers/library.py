"""The library's answers: 2013's search and /v1/library/ (search and one record).

A library answer is the same for every reader: the /v1/ answers carry the envelope's
freshness (as_of, source, stale) but no student_id. The covers are images, not models.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from api.answers.common import AnswerModel, Day, LegacyVersion, Moment

Campus = Annotated[
    Literal["main", "zhuhai"],
    Field(description="main: the main library's catalogue; zhuhai: the Zhuhai campus's"),
]
BookId = Annotated[
    str,
    Field(
        pattern=r"^(?:zh-)?[0-9A-Za-z.]{1,24}$",
        description=(
            "the book's id in this API: the catalogue's record number, `zh-` before a Zhuhai one"
        ),
    ),
]
Flag = Literal[0, 1]

# --- 2013 ------------------------------------------------------------------------------------


class LegacyBook(AnswerModel):
    title: str
    url: str = Field(
        description="the record's URL in its catalogue (for `/web/book?url=`, in base64)"
    )
    status: str = Field(description='as the catalogue shows it, e.g. "可借" ("" at Zhuhai)')
    detail: str = Field(description="every copy's location, call number and status, in one line")
    author: str
    publish: str = Field(description="publisher and date")
    size: str = Field(description="pages and size")
    year: str = Field(description='"" when unknown')
    position: list[str] = Field(description="each copy: `<location> <call number> <status>`")
    checkout: Flag = Field(description="1: a copy is on the shelf")
    lookup: Flag = Field(description="1: the copies are listed")
    isbn: str = Field(description='"" when the catalogue shows none')
    image: str = Field(description='our `/isbn/image/<isbn>` (absolute), or "" without an ISBN')
    douban: str = Field(description='the book on douban.com, or "" without an ISBN')


class LegacyBookSearch(AnswerModel):
    data: list[LegacyBook]
    version: LegacyVersion


# --- /v1/library/ ----------------------------------------------------------------------------


class LibraryAnswer(AnswerModel):
    """A /v1/ answer shared by every reader: the envelope's tail, how fresh it is."""

    as_of: Moment = Field(description="when the school produced the data")
    source: Literal["school", "cache"] = Field(
        description="fetched for this request, or from the cache"
    )
    stale: bool = Field(description="true when the school failed and an older answer stands in")


class Holding(AnswerModel):
    location: str
    call_number: str
    status: str = Field(
        description='as the catalogue shows it: "在架上", "到期 2026-12-10", "馆内阅览"...'
    )
    available: bool = Field(description="on the shelf: can be borrowed now")
    due: Day | None = Field(description="when a copy on loan is due back")


class BookLinks(AnswerModel):
    self_: str | None = Field(alias="self")
    cover: str | None


class LibraryBook(AnswerModel):
    id: BookId | None = Field(description="null when the catalogue shows no number")
    title: str
    author: str
    publisher: str = Field(description="publisher and date")
    pages: str = Field(description="pages and size")
    year: str = Field(description='"" when unknown')
    isbn: str = Field(description='"" when the catalogue shows none')
    status: str = Field(description='as the catalogue shows it ("" at Zhuhai)')
    available: bool = Field(description="a copy is on the shelf")
    holdings: list[Holding] = Field(description="the copies (at Zhuhai, only with `isbn_lookups`)")
    links: BookLinks


class SearchLinks(AnswerModel):
    self_: str = Field(alias="self")
    next: str | None
    prev: str | None


class LibrarySearch(LibraryAnswer):
    campus: Campus
    query: str = Field(description="the query as normalised (NFKC, one space between words)")
    page: int = Field(ge=1, le=50)
    per_page: int = Field(ge=1)
    total: int | None = Field(ge=0, description="hits in all")
    pages: int | None = Field(ge=1)
    available_only: bool
    books: list[LibraryBook]
    links: SearchLinks


class RecordField(AnswerModel):
    label: str
    value: str


class LibraryRecord(LibraryAnswer):
    id: BookId
    campus: Campus
    title: str
    author: str
    publisher: str
    isbn: str
    call_number: str
    description: str = Field(description="pages and size")
    notes: str
    fields: list[RecordField] = Field(description="every labelled field, as the catalogue shows it")
    holdings: list[Holding]
    available: bool = Field(description="a copy is on the shelf")


MODELS = (
    LegacyBookSearch,
    LibrarySearch,
    LibraryRecord,
)
