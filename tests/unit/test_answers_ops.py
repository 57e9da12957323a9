"""The operations answer models: the published examples are answers they accept, they write
them back unchanged, and they refuse what the schema refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from api.answers import ANSWERS
from api.answers.ops import MODELS, Dashboard, Health, OpenApiDocument, Readiness
from api.routes import openapi
from api.schemas import COMPONENTS, EXAMPLES

EXAMPLED: list[type[BaseModel]] = [Health, Readiness, Dashboard]


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda m: m.__name__)
def test_each_example_validates_and_is_written_back_unchanged(model: type[BaseModel]) -> None:
    example = EXAMPLES[model.__name__]
    answer = model.model_validate(example)
    assert json.loads(answer.model_dump_json()) == example


def test_the_dashboard_writes_the_database_s_instants_as_read() -> None:
    answer = Dashboard.model_validate(EXAMPLES["Dashboard"])
    written = json.loads(answer.json_text())
    assert written["lockouts"][0]["until"] == "2026-11-27T00:40:29+00:00"
    assert written["unreadable_pages"][0]["last_seen"] == "2026-11-27T00:41:02+00:00"
    unknown = {**EXAMPLES["Dashboard"], "lockouts": None, "unreadable_pages": None}
    assert Dashboard.model_validate(unknown).lockouts is None


def test_the_openapi_document_is_an_open_object() -> None:
    for model in MODELS:
        assert model in ANSWERS
    schema = COMPONENTS["OpenApiDocument"]
    assert schema["required"] == ["openapi", "info", "paths"]
    assert schema["additionalProperties"] is True
    assert schema["description"] == "an OpenAPI 3.1 document"
    document = OpenApiDocument.model_validate(openapi())
    assert document.openapi.startswith("3.1")
    assert "components" in json.loads(document.json_text())
    # Only the document is open: every other answer refuses unknown keys.
    assert COMPONENTS["Health"]["additionalProperties"] is False
    assert COMPONENTS["Dashboard"]["additionalProperties"] is False


def test_the_models_refuse_what_the_schema_refuses() -> None:
    health: dict[str, Any] = EXAMPLES["Health"]
    with pytest.raises(ValidationError):
        Health.model_validate({**health, "status": "fine"})
    with pytest.raises(ValidationError):
        Health.model_validate({**health, "mode": "staging"})
    readiness: dict[str, Any] = EXAMPLES["Readiness"]
    with pytest.raises(ValidationError):
        Readiness.model_validate({**readiness, "school": {"card": "broken"}})
    with pytest.raises(ValidationError):
        Readiness.model_validate({**readiness, "deferred_writes": -1})
    dashboard: dict[str, Any] = EXAMPLES["Dashboard"]
    with pytest.raises(ValidationError):
        Dashboard.model_validate({**dashboard, "cache_hit_ratio": 1.5})
    with pytest.raises(ValidationError):
        Dashboard.model_validate({**dashboard, "requests_per_s": -0.1})
    with pytest.raises(ValidationError):
        OpenApiDocument.model_validate({"openapi": "3.1.0", "info": {}})
