"""The OpenAPI components generated from the answer models.

pydantic writes each model's JSON Schema (2020-12, as OpenAPI 3.1 has it); nested models
become components of their own, referred to by name. Titles pydantic derives from field
names are dropped: a generated client names things by the property, and the document
reads cleaner without them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

Schema = dict[str, Any]
REF_TEMPLATE = "#/components/schemas/{model}"


class OpenApiJsonSchema(GenerateJsonSchema):
    """pydantic's generator, without the titles it derives from names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _untitled(schema: Any) -> Any:
    """The schema without the `title` keywords of models (a property named `title` stays)."""
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: Schema = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: _untitled(sub) for name, sub in value.items()}
        else:
            out[key] = _untitled(value)
    return out


def components(models: Iterable[type[BaseModel]]) -> dict[str, Schema]:
    """Every model's schema and those of the models it holds, by class name."""
    chosen = [(model, "serialization") for model in models]
    _, top = models_json_schema(
        chosen,  # type: ignore[arg-type]
        ref_template=REF_TEMPLATE,
        schema_generator=OpenApiJsonSchema,
    )
    defs: dict[str, Schema] = top.get("$defs", {})
    return {name: _untitled(schema) for name, schema in defs.items()}
