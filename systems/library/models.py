"""Typed values the library catalogue clients return, and the normal form of a query."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Literal

Catalogue = Literal["main", "zhuhai"]

_SPACES = re.compile(r"\s+")


def normalise_query(text: str) -> str:
    """The query as sent and as cached: NFKC (full-width to half-width), one space
    between words, no spaces around."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


@dataclass(frozen=True, slots=True)
class Holding:
    """One copy: where it is, its call number, the status as shown, and whether it can
    be borrowed now (on the shelf); `due` is the due date of a copy on loan."""

    location: str
    call_number: str
    status: str
    available: bool
    due: date | None


@dataclass(frozen=True, slots=True)
class BookBrief:
    """One result row of a search; a field the catalogue does not show is "".

    `record_id` is "" when the row shows no stable record number (then
    `record_url` is the row's own link). `isbn` is as the catalogue shows it,
    `cover_isbn` the same ISBN validated and without hyphens ("" if none).
    """

    record_id: str
    record_url: str
    title: str
    author: str
    publisher: str
    pages: str
    year: str
    isbn: str
    status: str
    holdings: tuple[Holding, ...]
    cover_isbn: str


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a search: `total` is the number of hits the catalogue reports
    (None when it shows none)."""

    catalogue: Catalogue
    query: str
    page: int
    total: int | None
    per_page: int
    books: tuple[BookBrief, ...]


@dataclass(frozen=True, slots=True)
class BookRecord:
    """A record page: the usual fields by name ("" if not shown), every labelled field
    as shown (label, value), and the copies."""

    catalogue: Catalogue
    record_id: str
    record_url: str
    title: str
    author: str
    publisher: str
    isbn: str
    call_number: str
    description: str
    notes: str
    fields: tuple[tuple[str, str], ...]
    holdings: tuple[Holding, ...]


@dataclass(frozen=True, slots=True)
class RecordPage:
    """A record page as either catalogue shows it; `record_id` is the record number the
    page itself shows ("" if none)."""

    record_id: str
    title: str
    author: str
    publisher: str
    isbn: str
    call_number: str
    description: str
    notes: str
    fields: tuple[tuple[str, str], ...]
    holdings: tuple[Holding, ...]

    def book_record(self, catalogue: Catalogue, record_id: str, record_url: str) -> BookRecord:
        """The record as answered, under the id and URL it was asked by."""
        return BookRecord(
            catalogue=catalogue,
            record_id=record_id,
            record_url=record_url,
            title=self.title,
            author=self.author,
            publisher=self.publisher,
            isbn=self.isbn,
            call_number=self.call_number,
            description=self.description,
            notes=self.notes,
            fields=self.fields,
            holdings=self.holdings,
        )
