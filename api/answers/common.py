"""What every answer shares: the base model, the value types and the /v1/ envelope.

A type carries its JSON Schema (pattern, format, description) with it, so the document
says exactly what the model checks and writes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

# The campus offset every moment is written in (services/campus.py's CHINA).
CAMPUS_ZONE = timezone(timedelta(hours=8))


class AnswerModel(BaseModel):
    """An answer's body: built by its handler, checked on construction (an answer that breaks
    its own schema is a bug of ours, raised before a byte is written), and the source of its
    part of /openapi.json. Fields are written in declaration order, by their alias."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
        validate_by_name=True,
        validate_by_alias=True,
        json_schema_serialization_defaults_required=True,
    )

    def json_text(self) -> str:
        """The answer as compact JSON, UTF-8 characters as they are."""
        return self.model_dump_json()


def _moment(value: datetime) -> str:
    if value.utcoffset() is None:
        raise ValueError("a moment needs its offset")
    return value.astimezone(CAMPUS_ZONE).isoformat(timespec="seconds")


def _absent(value: object) -> bool:
    return value is None


def _present_only(schema: dict[str, Any]) -> None:
    """An optional property's schema: the value's own, without the null of its absence."""
    schema.pop("default", None)
    kept = [one for one in schema.pop("anyOf", []) if one != {"type": "null"}]
    if len(kept) == 1:
        schema.update(kept[0])
    elif kept:
        schema["anyOf"] = kept


def optional(description: str | None = None) -> Any:
    """A property absent (not null) when there is no value: left out of `required`."""
    return Field(
        default=None,
        exclude_if=_absent,
        json_schema_extra=_present_only,
        description=description,
    )


Money = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+\.[0-9]{2}$",
        description="a decimal amount with two decimals",
    ),
]
DecimalText = Annotated[
    str, Field(pattern=r"^-?[0-9]+(\.[0-9]+)?$", description="a decimal number as text")
]
Day = Annotated[date, Field(description="a date, YYYY-MM-DD")]
Moment = Annotated[
    AwareDatetime,
    PlainSerializer(_moment, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with the +08:00 offset",
        }
    ),
]
Clock = Annotated[str, Field(pattern=r"^[0-2][0-9]:[0-5][0-9]$", description="HH:MM, campus time")]
StudentId = Annotated[str, Field(pattern=r"^[0-9]{6,16}$", description="the student number")]
System = Literal["card", "academic"]
# 2013's `version`: always 1.0, typed as a number (a const becomes `Literal[1.0]` in
# generated clients).
LegacyVersion = Annotated[float, Field(description="always 1.0")]
LEGACY_VERSION = 1.0


class StudentAnswer(AnswerModel):
    """A /v1/ answer about a student: who, and how fresh."""

    student_id: StudentId
    as_of: Moment = Field(description="when the school produced the data")
    source: Literal["school", "cache"] = Field(
        description="fetched for this request, or from the cache"
    )
    stale: bool = Field(description="true when the school failed and an older answer stands in")


class ErrorBody(AnswerModel):
    code: str = Field(description="stable and machine-readable (README's error table)")
    message: str = Field(description="for people; never repeats a password")


class Error(AnswerModel):
    """Every error answer of the API."""

    error: ErrorBody


class LegacyError(AnswerModel):
    """An error of a 2013 endpoint: 2013's `data`, always null, beside the error."""

    data: None
    error: ErrorBody
