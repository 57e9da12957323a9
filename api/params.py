"""Each declared parameter's refusal, and the check that holds a request to the
parameters its operation declares (api/routes.py): the server refuses what the contract
forbids, with the parameter's own error code, before a handler reads anything.

A parameter is checked wherever it is sent: in the query, and (on a POST) in a form or
JSON body, even where the handler would take it from the other place; an empty value is
checked too (it is refused where the schema forbids it). Values are checked against the
subset of JSON Schema the contract uses (type, enum, pattern, minLength, maxLength,
minimum, maximum, anyOf); a parameter that is absent is the handler's to ask for.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from services import codes
from services.codes import ErrorCode

if TYPE_CHECKING:
    from api.contract import Operation


@dataclass(frozen=True, slots=True)
class Refusal:
    """A parameter's errors: for an empty value, and for any other value outside its
    schema; and what the message tells beyond the schema, if anything."""

    empty: ErrorCode
    invalid: ErrorCode
    hint: str = ""


def _same(code: ErrorCode) -> Refusal:
    return Refusal(code, code)


STUDENT_ID = Refusal(codes.MISSING_STUDENT_ID, codes.INVALID_STUDENT_ID)
STUDENT_PASSWORD = Refusal(codes.MISSING_PASSWORD, codes.INVALID_PASSWORD)
ACCOUNT_PASSWORD = Refusal(codes.MISSING_ACCOUNT_PASSWORD, codes.INVALID_ACCOUNT_PASSWORD)

# By the parameter's name (query, form or JSON field); headers and path parameters are
# not here (a path that is not of its shape is no route).
REFUSALS: dict[str, Refusal] = {
    "stuid": STUDENT_ID,
    "user": STUDENT_ID,
    "student_id": STUDENT_ID,
    "jwc_username": STUDENT_ID,
    "password": STUDENT_PASSWORD,
    "jwc_password": STUDENT_PASSWORD,
    "jwcpw": STUDENT_PASSWORD,
    "academic_password": STUDENT_PASSWORD,
    "year": _same(codes.INVALID_YEAR),
    "term": _same(codes.INVALID_TERM),
    "start": _same(codes.INVALID_DATE),
    "end": _same(codes.INVALID_DATE),
    "fresh": _same(codes.INVALID_FRESH),
    "feed": _same(codes.INVALID_FEED),
    "system": _same(codes.INVALID_SYSTEM),
    "label": _same(codes.INVALID_LABEL),
    "query": Refusal(codes.MISSING_QUERY, codes.INVALID_QUERY),
    "q": Refusal(codes.MISSING_QUERY, codes.INVALID_QUERY),
    "page": _same(codes.INVALID_PAGE),
    "available": _same(codes.INVALID_AVAILABLE),
    "iszh": _same(codes.INVALID_CAMPUS),
    "campus": _same(codes.INVALID_CAMPUS),
    "url": _same(codes.INVALID_URL),
    "username": Refusal(codes.MISSING_USERNAME, codes.INVALID_USERNAME),
    "oldpassword": ACCOUNT_PASSWORD,
    "nickname": _same(codes.INVALID_PROFILE),
    "realname": _same(codes.INVALID_PROFILE),
    "sex": _same(codes.INVALID_PROFILE),
    "signature": _same(codes.INVALID_PROFILE),
    "kind": _same(codes.INVALID_WATCH_KIND),
    "channel": Refusal(
        codes.INVALID_CHANNEL,
        codes.INVALID_CHANNEL,
        "a WeChat watch is made in the chat with the official account (send 提醒), not here",
    ),
    "target": _same(codes.INVALID_TARGET),
    "param": _same(codes.INVALID_WATCH_PARAM),
    "ticket": _same(codes.WECHAT_TICKET_INVALID),
}
# The 2013 account routes' `password` is the account's own (a new one on /signup).
ACCOUNT_REFUSALS: dict[str, Refusal] = {"password": ACCOUNT_PASSWORD}
# Not checked here: an uploaded file; a 2013 login token (the handler refuses every value
# but a live token, with 2013's `status`).
NOT_CHECKED = frozenset({"file", "token"})


def refusal(op: Operation, name: str) -> Refusal:
    """The errors of an operation's parameter. Raises KeyError for one without any."""
    if op.tag == "accounts" and name in ACCOUNT_REFUSALS:
        return ACCOUNT_REFUSALS[name]
    return REFUSALS[name]


# Each operation's checked fields, worked out on its first request, not on every one. By
# the operation's identity (an Operation holds schemas, dicts, so it cannot be a key); the
# operation is kept beside them, so an id reused by another object is never taken for it.
_QUERY: dict[int, tuple[Operation, dict[str, Any]]] = {}
_BODY: dict[tuple[int, str], tuple[Operation, dict[str, Any]]] = {}


def query_schemas(op: Operation) -> dict[str, Any]:
    """The declared query parameters of an operation that are checked, by name."""
    kept = _QUERY.get(id(op))
    if kept is None or kept[0] is not op:
        names = {p.name: p.schema for p in op.params if p.where == "query"}
        kept = _QUERY[id(op)] = (op, {n: s for n, s in names.items() if n not in NOT_CHECKED})
    return kept[1]


def body_schemas(op: Operation, media: str) -> dict[str, Any]:
    """The declared fields of a body of this media type (JSON, or a form)."""
    kept = _BODY.get((id(op), media))
    if kept is None or kept[0] is not op:
        kept = _BODY[(id(op), media)] = (op, _body_schemas(op, media))
    return kept[1]


def _body_schemas(op: Operation, media: str) -> dict[str, Any]:
    if op.body is None:
        return {}
    schema = {
        "application/json": op.body.json,
        "application/x-www-form-urlencoded": op.body.form,
        "multipart/form-data": op.body.multipart or op.body.form,
    }.get(media)
    if schema is None:
        return {}
    properties: dict[str, Any] = schema.get("properties", {})
    return {name: s for name, s in properties.items() if name not in NOT_CHECKED}


def failures(op: Operation) -> tuple[ErrorCode, ...]:
    """Every error the check may answer for this operation's parameters."""
    names = [*query_schemas(op)]
    if op.body is not None:
        for media in ("application/json", "application/x-www-form-urlencoded"):
            names += [n for n in body_schemas(op, media) if n not in names]
    out: list[ErrorCode] = []
    if op.body is not None and op.body.json is not None:
        out.append(codes.INVALID_JSON)
    for name in names:
        for code in (refusal(op, name).empty, refusal(op, name).invalid):
            if code not in out:
                out.append(code)
    return tuple(out)


class Refused(Exception):
    """A parameter (or body) outside its schema: the error to answer, and why."""

    def __init__(self, error: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.error = error


def check(
    op: Operation,
    query: Mapping[str, Iterable[str]],
    media: str,
    form: Mapping[str, Iterable[str]],
    body: bytes,
) -> None:
    """Hold a request's query and (for an operation with a body) its form or JSON body to
    the operation's declared parameters. `form`: the form's fields, a multipart form's
    files too. Raises Refused."""
    for name, schema in query_schemas(op).items():
        for value in query.get(name, ()):
            _hold(op, name, schema, value)
    fields = body_schemas(op, media)
    if not fields and media != "multipart/form-data":
        return
    if media == "application/json":
        try:
            data = json.loads(body or b"{}")
        except (ValueError, RecursionError):  # also UnicodeDecodeError, overlong numbers
            raise Refused(codes.INVALID_JSON, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Refused(codes.INVALID_JSON, "the body must be a JSON object")
        for name, schema in fields.items():
            given: Any = data.get(name)
            if isinstance(given, dict | list):
                raise Refused(codes.INVALID_JSON, f"{name} must be a string or a number")
            if name in data:
                _hold(op, name, schema, given, typed=True)
        return
    for name, schema in fields.items():
        for value in form.get(name, ()):
            _hold(op, name, schema, value)
    multipart = op.body.multipart if op.body is not None else None
    if media == "multipart/form-data" and multipart is not None:
        # Another part than the form's is refused, once the form's own are there (a
        # missing one is the handler's to name).
        others = set(form) - set(multipart.get("properties", {}))
        complete = set(multipart.get("required", ())) <= set(form)
        if others and complete and multipart.get("additionalProperties") is False:
            raise Refused(codes.BAD_REQUEST, "the multipart form holds no other part than `file`")


def _hold(
    op: Operation, name: str, schema: dict[str, Any], value: Any, typed: bool = False
) -> None:
    if not conforms(schema, value, typed):
        reason = refusal(op, name)
        error = reason.empty if value == "" else reason.invalid
        told = f"{name}: {error.when} (see /openapi.json)"
        if "enum" in schema:
            told = f"{name} is one of: " + ", ".join(str(v) for v in schema["enum"])
        raise Refused(error, f"{told}; {reason.hint}" if reason.hint else told)


_INTEGER = re.compile(r"-?[0-9]+")


def conforms(schema: Mapping[str, Any], value: Any, typed: bool = False) -> bool:
    """Whether a value conforms to a schema: a JSON value (`typed`), or the text of a query
    or form field, read as the schema's type (`2026` as an integer, `true` as a boolean)."""
    if "anyOf" in schema:
        return any(conforms(one, value, typed) for one in schema["anyOf"])
    kind = schema.get("type")
    if kind == "null":
        return value is None
    if kind == "integer":
        if typed:
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # JSON's 1.0 is the integer 1
            if isinstance(value, bool) or not isinstance(value, int):
                return False
        elif isinstance(value, str) and _INTEGER.fullmatch(value) and len(value) <= 20:
            value = int(value)
        else:
            return False
        low: int = schema.get("minimum", value)
        high: int = schema.get("maximum", value)
        return bool(low <= value <= high)
    if kind == "boolean":
        return bool(value in ((True, False) if typed else ("true", "false")))
    if kind == "string" and not isinstance(value, str):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, str):
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            return False
        pattern = schema.get("pattern")
        if pattern is not None and _compiled(pattern).search(value) is None:
            return False
        if schema.get("format") == "date" and not _is_date(value):
            return False
    return True


def _is_date(text: str) -> bool:
    """RFC 3339's full-date: YYYY-MM-DD, a day that exists."""
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """A schema's pattern (ECMA-262) as Python reads it: a final `$` is the very end (in
    Python it would also match before a final newline)."""
    return re.compile(re.sub(r"(?<!\\)\$$", r"\\Z", pattern))
