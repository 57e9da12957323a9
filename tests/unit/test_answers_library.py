"""The library's answer models: the published examples are answers they accept, they write
them back unchanged, and they refuse what the schema refuses."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.answers import ANSWERS
from api.answers.common import CAMPUS_ZONE
from api.answers.library import (
    MODELS,
    BookLinks,
    Holding,
    LegacyBook,
    LegacyBookSearch,
    LibraryBook,
    LibraryRecord,
    LibrarySearch,
)
from api.schemas import COMPONENTS, EXAMPLES

EXAMPLED: list[type[BaseModel]] = [LegacyBookSearch, LibrarySearch, LibraryRecord]


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda m: m.__name__)
def test_each_example_validates_and_is_written_back_unchanged(model: type[BaseModel]) -> None:
    example = EXAMPLES[model.__name__]
    answer = model.model_validate(example)
    assert json.loads(answer.model_dump_json()) == example


def test_the_nested_examples_validate_with_their_own_models() -> None:
    search = EXAMPLES["LibrarySearch"]
    for book in search["books"]:
        parsed = LibraryBook.model_validate(book)
        assert parsed.links.self_ == book["links"]["self"]
        for holding in book["holdings"]:
            Holding.model_validate(holding)
    loaned = LibraryBook.model_validate(search["books"][1])
    assert loaned.holdings[0].due == date(2026, 12, 10)
    for book in EXAMPLES["LegacyBookSearch"]["data"]:
        assert LegacyBook.model_validate(book).checkout in (0, 1)


def test_the_models_are_registered_and_their_components_generated() -> None:
    for model in MODELS:
        assert model in ANSWERS
    for name in ("LegacyBook", "LibraryBook", "Holding", "BookLinks", "SearchLinks"):
        assert COMPONENTS[name]["additionalProperties"] is False
    # No student_id: a library answer is every reader's.
    for name in ("LibrarySearch", "LibraryRecord"):
        assert "student_id" not in COMPONENTS[name]["properties"]
        assert {"as_of", "source", "stale"} <= set(COMPONENTS[name]["required"])
    assert set(COMPONENTS["BookLinks"]["required"]) == {"self", "cover"}


def record(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["LibraryRecord"], **changes}


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "b1007429/../x"},  # not a book id
        {"id": None},  # a record always has its number
        {"campus": "guangzhou"},
        {"source": "guess"},
        {"holdings": [{**EXAMPLES["LibraryRecord"]["holdings"][0], "due": "soon"}]},
        {"fields": [{"label": "题名"}]},
        {"isbn": None},
        {"extra": 1},
    ],
)
def test_a_record_refuses_what_its_schema_refuses(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LibraryRecord.model_validate(record(**changes))


@pytest.mark.parametrize(
    "changes",
    [{"page": 0}, {"page": 51}, {"per_page": 0}, {"total": -1}, {"pages": 0}],
)
def test_a_search_refuses_out_of_range_numbers(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LibrarySearch.model_validate({**EXAMPLES["LibrarySearch"], **changes})


def test_a_legacy_book_takes_only_0_or_1_flags() -> None:
    book = EXAMPLES["LegacyBookSearch"]["data"][0]
    with pytest.raises(ValidationError):
        LegacyBook.model_validate({**book, "checkout": 2})
    with pytest.raises(ValidationError):
        LegacyBook.model_validate({**book, "lookup": None})
    # 2013 wrote the flags as numbers: a flag given as a boolean is written as 0/1.
    written = json.loads(LegacyBook.model_validate({**book, "lookup": False}).model_dump_json())
    assert written["lookup"] == 0 and type(written["lookup"]) is int


def test_a_book_without_a_number_has_null_id_and_self_link() -> None:
    book = {**EXAMPLES["LibrarySearch"]["books"][0], "id": None}
    book["links"] = {"self": None, "cover": None}
    parsed = LibraryBook.model_validate(book)
    written = json.loads(parsed.model_dump_json())
    assert written["id"] is None
    assert written["links"] == {"self": None, "cover": None}
    assert BookLinks(self_="/v1/library/books/b1", cover=None).model_dump() == {
        "self": "/v1/library/books/b1",
        "cover": None,
    }


def test_moments_are_written_at_the_campus_offset() -> None:
    example = EXAMPLES["LibraryRecord"]
    moment = datetime(2026, 11, 27, 0, 12, 3, tzinfo=CAMPUS_ZONE).astimezone(UTC)
    answer = LibraryRecord.model_validate({**example, "as_of": moment})
    assert json.loads(answer.model_dump_json())["as_of"] == "2026-11-27T00:12:03+08:00"
