"""What a route is made of (parameters, body, answer, errors, security) and how a list
of routes becomes one OpenAPI 3.1 document (`document`).

A Route is keyed by its Tornado pattern, exactly as handlers/__init__.py writes it;
its OpenAPI path comes from the pattern (`openapi_path`): each group becomes a
`{name}` whose schema is the group's own regex.

What HTTP's rules add to every route is written here once, not per route: each GET is
documented as HEAD too (its status and headers, no body), a route whose answers pages
of other sites may read (`Route.cross_origin`) has its CORS preflight (OPTIONS), and
each operation that reads a body may answer 415 `unsupported_media_type`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from api import params
from api.errors import EVERY_ROUTE, NO_SUCH_PATH
from api.schemas import COMPONENTS, EXAMPLES, Schema, ref
from services.codes import RATE_LIMITED, UNSUPPORTED_MEDIA_TYPE, ErrorCode
from version import version

OPENAPI_VERSION = "3.1.1"

Where = Literal["query", "header", "path"]
Method = Literal["get", "post", "delete", "options"]


@dataclass(frozen=True, slots=True)
class Param:
    """A query, header or path parameter."""

    name: str
    where: Where
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    example: Any = None


@dataclass(frozen=True, slots=True)
class Body:
    """A request body, as JSON and/or as a form (one schema per media type)."""

    description: str
    json: Schema | None = None
    form: Schema | None = None
    # A multipart form (a file upload).
    multipart: Schema | None = None
    example: dict[str, Any] | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A non-error answer: status, body (a component schema by name, or none) and headers."""

    status: int
    description: str
    schema: str | None = None
    media_type: str = "application/json"
    # Headers beyond X-Request-Id and Server-Timing, e.g. ("Age", "Cache-Status").
    headers: tuple[str, ...] = ()
    example: Any = None
    # Not every answer of this status has the headers (e.g. /readyz's 503 is a body).
    timing: bool = True
    # Other media types the same answer may have (a cover: image/png or image/gif
    # beside image/jpeg). An `image/*` answer is raw bytes: a binary string.
    more_media: tuple[str, ...] = ()
    # Headers only some of these answers carry (e.g. a cover's `X-Cover`).
    optional_headers: tuple[str, ...] = ()
    # OpenAPI links: what a client (or schemathesis' stateful phase) may do next with what
    # this answer made, e.g. delete the new token: (name, operationId, {parameter:
    # runtime expression}).
    links: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Operation:
    """One method of a route."""

    method: Method
    summary: str
    summary_zh: str
    tag: str
    answer: Answer
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Body | None = None
    failures: tuple[ErrorCode, ...] = ()
    # Security schemes, any one of which is accepted; `anonymous`: none needed either.
    security: tuple[str, ...] = ()
    anonymous: bool = True
    # Errors carry `"data": null` beside `error` (the 2013 endpoints).
    legacy_errors: bool = False
    # The error body's component when it is neither `Error` nor `LegacyError` (the 2013
    # account API's `AccountError`, with 2013's `version` and a refused token's `status`).
    error_schema: str | None = None
    # Other answers, e.g. /readyz's 503 with the readiness body.
    others: tuple[Answer, ...] = ()


@dataclass(frozen=True, slots=True)
class PathParam:
    """A pattern group's name and meaning; its schema is the group's regex."""

    name: str
    description: str
    example: str


@dataclass(frozen=True, slots=True)
class Route:
    """A route of handlers.routes(), by its exact pattern, and its operations."""

    pattern: str
    operations: tuple[Operation, ...]
    path_params: tuple[PathParam, ...] = ()
    # No password or token in a header: pages of `api.cors_origins` may read its
    # answers (Access-Control-Allow-Origin), after an OPTIONS preflight.
    cross_origin: bool = False

    @property
    def path(self) -> str:
        return openapi_path(self.pattern, [p.name for p in self.path_params])[0]


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    name_zh: str
    description: str


# --- patterns to paths ----------------------------------------------------------------


def _group_end(pattern: str, start: int) -> int:
    """The index just past the `)` that closes the group opened at `start`."""
    depth, i, in_class = 0, start, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError(f"unbalanced group in route pattern {pattern!r}")


def openapi_path(pattern: str, names: Sequence[str]) -> tuple[str, list[str]]:
    r"""A Tornado route pattern as an OpenAPI path, and the regex of each group.

    `/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics` with names ["token"] ->
    ("/v1/calendar/{token}.ics", ["[A-Za-z0-9_-]{20,64}"]). Raises ValueError when
    the names do not match the groups, or the pattern has syntax outside groups
    that a path cannot hold.
    """
    out: list[str] = []
    groups: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i + 1])
            i += 2
        elif ch == "(":
            end = _group_end(pattern, i)
            if len(groups) >= len(names):
                raise ValueError(f"{pattern!r} has more groups than names {list(names)}")
            groups.append(pattern[i + 1 : end - 1])
            out.append("{" + names[len(groups) - 1] + "}")
            i = end
        elif ch in "^$":
            i += 1
        elif ch in "[]{}*+?|.":
            raise ValueError(f"{pattern!r}: {ch!r} outside a group cannot be a path")
        else:
            out.append(ch)
            i += 1
    if len(groups) != len(names):
        raise ValueError(f"{pattern!r} has {len(groups)} groups, names {list(names)}")
    return "".join(out), groups


# --- the document -------------------------------------------------------------------------

_HEADERS: dict[str, tuple[str, Schema]] = {
    "X-Request-Id": (
        "the client's own X-Request-Id if it sent a sane one, else a new one; in every log "
        "line of the request",
        {"type": "string"},
    ),
    "Server-Timing": (
        "where the time went, in ms: `cache;dur=…, db;dur=…, school;dur=…, total;dur=…`; "
        "successful answers only (a refused caller learns nothing from it)",
        {"type": "string", "pattern": "total;dur="},
    ),
    "Age": (
        "seconds since the school produced the data",
        {"type": "string", "pattern": "^[0-9]+$"},
    ),
    "Cache-Status": (
        "RFC 9211: `jnufm; hit; ttl=42`, `jnufm; fwd=miss; stored`, `jnufm; fwd=miss; "
        'collapsed` or `jnufm; fwd=stale; fwd-status=502; ttl=-30; detail="stale-if-error"`',
        {"type": "string", "pattern": "^jnufm; "},
    ),
    "Retry-After": (
        "seconds to wait before trying again",
        {"type": "string", "pattern": "^[0-9]+$"},
    ),
    "WWW-Authenticate": (
        '`Basic realm="jnufm"` when credentials are missing (never for a wrong password)',
        {"type": "string"},
    ),
    "Location": ("the new feed's path", {"type": "string"}),
    "ETag": (
        "the answer's version: sent back in `If-None-Match`, it gets 304 while unchanged",
        {"type": "string"},
    ),
    "Cache-Control": ("how long the reader's own cache may keep the answer", {"type": "string"}),
    "Allow": ("the methods the route answers", {"type": "string"}),
    "Access-Control-Allow-Origin": (
        "the page's `Origin`, when `api.cors_origins` lists it (or `*` when it lists `*`)",
        {"type": "string"},
    ),
    "Access-Control-Allow-Methods": ("`GET, HEAD`", {"type": "string"}),
    "Access-Control-Allow-Headers": (
        "the request headers a page may send: `Cache-Control, If-None-Match, X-Request-Id`",
        {"type": "string"},
    ),
    "Access-Control-Max-Age": (
        "seconds a browser may keep this answer (`api.cors_max_age_s`)",
        {"type": "string", "pattern": "^[0-9]+$"},
    ),
    "X-Cover": (
        "`placeholder` when the cover service has no cover for this ISBN: the body is our "
        "placeholder PNG",
        {"type": "string", "enum": ["placeholder"]},
    ),
}

# Said of the bundled simulator where credentials are described: not in production, where
# the school is real (see production()).
SIMULATOR_NOTE = (
    " The bundled simulator's students (every `20[01]NNNNNNN`) have password = the last 6 "
    "digits of the student number."
)

# A registered client's key: optional beside any other requirement (the client's own
# limits instead of its address's); not for the metrics endpoints.
CLIENT_KEY = "clientKey"
BINARY: Schema = {"type": "string", "format": "binary"}

SECURITY_SCHEMES: dict[str, Schema] = {
    "studentBasic": {
        "type": "http",
        "scheme": "basic",
        "description": "student number : the school system's password (the card password for "
        "/v1/card/, the academic office password for the timetable, exams and grades). A "
        "POST body with `student_id` and `password` may carry them instead." + SIMULATOR_NOTE,
    },
    "studentToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "a student's session token (`POST /v1/sessions`): stands for the "
        "student number and the password of one school system",
    },
    CLIENT_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-Api-Key",
        "description": "a registered client's key (`clients:` in config.yaml): its own limits "
        "on school requests instead of its address's; optional, an unknown key counts as none",
    },
    "metricsToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "`metrics.bearer_token` (`JNUFM_METRICS_TOKEN`); clients in "
        "`metrics.allow_networks` (loopback by default) need none",
    },
}


OPTIONAL = ".optional"


def header_components() -> dict[str, Schema]:
    """`components.headers`: each header, required and (`<name>.optional`) not."""
    out: dict[str, Schema] = {}
    for name, (description, schema) in _HEADERS.items():
        out[name] = {"description": description, "required": True, "schema": schema}
        out[name + OPTIONAL] = {"description": description, "required": False, "schema": schema}
    return out


def _header(name: str, required: bool) -> Schema:
    return {"$ref": f"#/components/headers/{name}{'' if required else OPTIONAL}"}


def _required(header: Schema) -> bool:
    return not str(header["$ref"]).endswith(OPTIONAL)


def _success(answer: Answer) -> Schema:
    headers = {"X-Request-Id": _header("X-Request-Id", True)}
    if answer.timing:
        headers["Server-Timing"] = _header("Server-Timing", True)
    for name in answer.headers:
        headers[name] = _header(name, True)
    for name in answer.optional_headers:
        headers[name] = _header(name, False)
    response: Schema = {"description": answer.description, "headers": headers}
    if answer.links:
        response["links"] = {
            name: {"operationId": operation, "parameters": dict(parameters)}
            for name, operation, parameters in answer.links
        }
    if answer.schema is not None or answer.media_type != "application/json":
        response["content"] = {
            media_type: _media(answer, media_type)
            for media_type in (answer.media_type, *answer.more_media)
        }
    return response


def _media(answer: Answer, media_type: str) -> Schema:
    """One media type of a success: its schema and example; raw bytes for an image."""
    if media_type.startswith("image/"):
        return {"schema": BINARY}
    schema = ref(answer.schema) if answer.schema is not None else {"type": "string"}
    media: Schema = {"schema": schema}
    example = answer.example
    if example is None and answer.schema is not None:
        example = EXAMPLES.get(answer.schema)
    if example is not None:
        media["example"] = example
    return media


def _errors(
    status: int, failures: list[ErrorCode], legacy: bool, schema_name: str | None = None
) -> Schema:
    codes = [f.code for f in failures]
    # One shared schema for every error (a generated client has one error type); the codes
    # this status may carry are listed beside it, not narrowed into a schema of its own.
    name = schema_name or ("LegacyError" if legacy else "Error")
    schema = ref(name)
    headers = {
        # The over-capacity 503 is written before any handler runs: no request id.
        "X-Request-Id": _header("X-Request-Id", status != 503),
    }
    if status in (429, 502, 503, 504):
        headers["Retry-After"] = _header("Retry-After", True)
    if status == 401 and {"missing_credentials", "invalid_authorization"} & set(codes):
        headers["WWW-Authenticate"] = _header("WWW-Authenticate", False)
    body: dict[str, Any] = {"error": {"code": codes[0], "message": failures[0].when}}
    if name == "AccountError":
        body = {"version": 1.0, "data": None, **body}
    elif legacy:
        body = {"data": None, **body}
    return {
        # The codes' meanings are listed once, in the document's `x-errors`.
        "description": ", ".join(f"`{code}`" for code in codes),
        "headers": headers,
        "content": {"application/json": {"schema": schema, "example": body}},
        "x-error-codes": codes,
    }


def _merge(first: Schema, second: Schema) -> Schema:
    """Two kinds of answer at one status: either body, only the headers both always have."""
    headers: dict[str, Schema] = {}
    for name in [*first["headers"], *second["headers"]]:
        one, other = first["headers"].get(name), second["headers"].get(name)
        both = one is not None and other is not None and _required(one) and _required(other)
        headers[name] = _header(name, both)
    content: dict[str, Any] = {}
    for media, value in [*first["content"].items(), *second["content"].items()]:
        if media in content:
            content[media] = {"schema": {"anyOf": [content[media]["schema"], value["schema"]]}}
        else:
            content[media] = value
    merged = {**first, "description": f"{first['description']}; or {second['description']}"}
    merged.update(headers=headers, content=content)
    return merged


def failures_of(op: Operation) -> tuple[ErrorCode, ...]:
    """The errors an operation may answer: its own, its parameters' refusals (api/params.py)
    and 415 where it reads a body."""
    out = list(op.failures)
    more = [*params.failures(op), *((UNSUPPORTED_MEDIA_TYPE,) if op.body is not None else ())]
    for failure in more:
        if all((f.status, f.code) != (failure.status, failure.code) for f in out):
            out.append(failure)
    return tuple(out)


def _responses(op: Operation) -> Schema:
    responses: Schema = {str(op.answer.status): _success(op.answer)}
    by_status: dict[int, list[ErrorCode]] = {}
    for failure in failures_of(op):
        listed = by_status.setdefault(failure.status, [])
        if failure not in listed:
            listed.append(failure)
    for status in sorted(by_status):
        responses[str(status)] = _errors(
            status, by_status[status], op.legacy_errors, op.error_schema
        )
    for other in op.others:
        key, response = str(other.status), _success(other)
        responses[key] = _merge(response, responses[key]) if key in responses else response
    return dict(sorted(responses.items()))


def _parameter(param: Param) -> Schema:
    out: Schema = {
        "name": param.name,
        "in": param.where,
        "description": param.description,
        "required": param.required or param.where == "path",
        "schema": param.schema,
    }
    if param.example is not None:
        out["example"] = param.example
    return out


def _body(body: Body) -> Schema:
    content: Schema = {}
    for media, schema in (
        ("application/json", body.json),
        ("application/x-www-form-urlencoded", body.form),
        ("multipart/form-data", body.multipart),
    ):
        if schema is not None:
            entry: Schema = {"schema": schema}
            if body.example is not None:
                entry["example"] = body.example
            content[media] = entry
    return {"description": body.description, "required": body.required, "content": content}


def operation_id(method: str, path: str) -> str:
    """`get` `/v1/calendar/{token}.ics` -> `get_v1_calendar_token_ics`."""
    return "_".join([method, *re.findall(r"[A-Za-z0-9]+", path)])


def _operation(route: Route, op: Operation, path_params: list[Schema]) -> Schema:
    out: Schema = {
        "operationId": operation_id(op.method, route.path),
        "summary": op.summary,
        "x-summary-zh": op.summary_zh,
        "tags": [op.tag],
    }
    if op.description:
        out["description"] = op.description
    params = path_params + [_parameter(p) for p in op.params]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = _body(op.body)
    out["security"] = _security(op)
    out["responses"] = _responses(op)
    return out


def _security(op: Operation) -> list[Schema]:
    """Any one of the operation's schemes, each with or without the client key; the client
    key alone and nothing at all (`{}`) where no credentials are needed (or they may come
    in the body)."""
    requirements: list[Schema] = [{name: []} for name in op.security]
    if "metricsToken" in op.security:
        return [*requirements, {}] if op.anonymous else requirements
    requirements += [{name: [], CLIENT_KEY: []} for name in op.security]
    if op.anonymous or not op.security:
        requirements += [{CLIENT_KEY: []}, {}]
    return requirements


def _path_item(route: Route) -> Schema:
    _, groups = openapi_path(route.pattern, [p.name for p in route.path_params])
    path_params = [
        {
            "name": p.name,
            "in": "path",
            "required": True,
            "description": p.description,
            "schema": {"type": "string", "pattern": f"^{group}$"},
            "example": p.example,
        }
        for p, group in zip(route.path_params, groups, strict=True)
    ]
    item: Schema = {op.method: _operation(route, op, path_params) for op in route.operations}
    if "get" in item:
        item["head"] = _head(item["get"], route.path)
    if route.cross_origin:
        item["options"] = _operation(route, preflight(route), path_params)
    return item


def _head(get: Schema, path: str) -> Schema:
    """HEAD, answered wherever GET is: GET's status and headers, without the body."""
    responses = {
        status: {key: value for key, value in response.items() if key != "content"}
        for status, response in get["responses"].items()
    }
    return {
        **get,
        "operationId": operation_id("head", path),
        "summary": f"{get['summary']}: the headers only",
        "x-summary-zh": f"{get['x-summary-zh']}（仅响应头）",
        "description": "GET's status and headers (Content-Length of GET's body), no body.",
        "responses": responses,
    }


def preflight(route: Route) -> Operation:
    """The CORS preflight (OPTIONS) of a route that pages of other sites may read."""
    first = route.operations[0]
    return Operation(
        "options",
        "CORS preflight: which methods and headers a page may use",
        "CORS 预检：网页可用的方法和请求头",
        first.tag,
        Answer(
            204,
            "`Allow` always; for an `Origin` that `api.cors_origins` lists, "
            "`Access-Control-Allow-Origin`, `-Methods` (GET, HEAD), `-Headers` and `-Max-Age`",
            headers=("Allow",),
            optional_headers=(
                "Access-Control-Allow-Origin",
                "Access-Control-Allow-Methods",
                "Access-Control-Allow-Headers",
                "Access-Control-Max-Age",
            ),
        ),
        failures=(*((NO_SUCH_PATH,) if route.path_params else ()), RATE_LIMITED, *EVERY_ROUTE),
        legacy_errors=first.legacy_errors,
        error_schema=first.error_schema,
    )


def document(
    routes: Sequence[Route], tags: Sequence[Tag], title: str, description: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these routes. Raises ValueError on two routes with one
    path, or a pattern that cannot be a path."""
    paths: dict[str, Any] = {}
    failures: list[ErrorCode] = []
    for route in routes:
        for op in route.operations:
            failures += [f for f in failures_of(op) if f not in failures]
        if route.path in paths:
            raise ValueError(f"two routes describe {route.path}")
        paths[route.path] = _path_item(route)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version(), "description": description},
        "servers": [{"url": "/"}],
        "tags": [
            {"name": t.name, "description": t.description, "x-name-zh": t.name_zh} for t in tags
        ],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "headers": header_components(),
            "securitySchemes": SECURITY_SCHEMES,
        },
        # Every error code the routes may answer, once: status, code and when (English, Chinese).
        "x-errors": [
            {"status": f.status, "code": f.code, "when": f.when, "when_zh": f.when_zh}
            for f in failures
        ],
    }


def production(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as a production server serves it: nothing about the simulator's
    passwords (its rule is not stated, and no example holds a password), so a reference
    renderer's try-it pre-fills none."""
    shown: dict[str, Any] = _without_passwords(doc)
    return shown


def _is_password(name: object) -> bool:
    return isinstance(name, str) and "password" in name


def _without_passwords(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace(SIMULATOR_NOTE, "")
    if isinstance(node, list):
        return [_without_passwords(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    password_param = node.get("in") in ("query", "path", "header") and _is_password(
        node.get("name")
    )
    for key, value in node.items():
        if key in ("example", "examples") and password_param:
            continue
        if key == "example" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if not _is_password(k)}
        out[key] = _without_passwords(value)
    return out
