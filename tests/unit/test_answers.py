"""One source for the answers and the contract: every schema /openapi.json publishes is
generated from an answer model (api/answers/), every answer an operation documents is one
of them, and every example is an answer the model writes back unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.answers import ANSWERS
from api.answers.card import Balance
from api.answers.schema import components
from api.routes import openapi
from api.schemas import COMPONENTS, EXAMPLES


def models_by_name() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}

    def visit(model: type[BaseModel]) -> None:
        if model.__name__ in found:
            return
        found[model.__name__] = model
        for field in model.model_fields.values():
            for inner in _models_in(field.annotation):
                visit(inner)

    for model in ANSWERS:
        visit(model)
    return found


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def test_every_published_schema_is_generated_from_a_model() -> None:
    published = openapi()["components"]["schemas"]
    assert published == COMPONENTS == components(ANSWERS)
    assert set(published) == set(models_by_name())


SCHEMAS = "#/components/schemas/"


def referenced(node: Any) -> set[str]:
    """The component schemas a part of the document refers to."""
    if isinstance(node, dict):
        target = str(node.get("$ref", ""))
        names = {target.removeprefix(SCHEMAS)} if target.startswith(SCHEMAS) else set()
        return names.union(*(referenced(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(referenced(v) for v in node))
    return set()


def test_every_answer_the_operations_document_is_a_model() -> None:
    schemas = referenced(openapi()["paths"])
    assert schemas, "the operations refer to no schema"
    assert schemas <= set(models_by_name())
    # Every error answer is one of the three error models.
    errors = {
        content["schema"]["$ref"].rsplit("/", 1)[1]
        for item in openapi()["paths"].values()
        for op in item.values()
        for status, response in op["responses"].items()
        if status.startswith(("4", "5"))
        for content in response.get("content", {}).values()
        if "$ref" in content.get("schema", {})
    }
    assert errors <= {"Error", "LegacyError", "AccountError", "Readiness"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_example_is_what_its_model_writes(name: str) -> None:
    models = models_by_name()
    example = EXAMPLES[name]
    if name not in models:
        # Examples of non-JSON answers (a calendar, a page, the metrics) are text.
        assert isinstance(example, str | bytes), name
        return
    answer = models[name].model_validate(example)
    assert answer.model_dump(mode="json") == example


def test_a_handler_cannot_write_an_answer_that_breaks_its_schema() -> None:
    good = {
        "student_id": "2012052690",
        "as_of": "2026-11-27T08:12:03+08:00",
        "source": "cache",
        "stale": False,
        "balance": {"amount": "12.30", "currency": "CNY"},
    }
    assert Balance.model_validate(good).json_text().startswith('{"student_id":"2012052690"')
    for wrong in (
        {**good, "balance": {"amount": "12.3", "currency": "CNY"}},  # money has two decimals
        {**good, "source": "guess"},
        {**good, "as_of": "2026-11-27T08:12:03"},  # a moment without its offset
        {**good, "extra": 1},
    ):
        with pytest.raises(ValidationError):
            Balance.model_validate(wrong)
