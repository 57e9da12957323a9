"""The API families' building blocks: the usual parameters, credentials, answers and
errors of the 2013 endpoints, the /v1/ API and the library, so that describing a route
of a family takes a few lines. Every system's description (systems/<name>/api.py) and
the rest of api/routes.py build on these."""

from __future__ import annotations

from typing import Any

from api import errors as e
from api.contract import (
    Answer,
    Body,
    Method,
    Operation,
    Param,
)
from api.schemas import (
    STUDENT,
    Schema,
)
from services.codes import ErrorCode

# --- parameters -----------------------------------------------------------------------------

CARD_PASSWORD: Schema = {"type": "string", "pattern": "^[0-9]{6}$"}
OFFICE_PASSWORD: Schema = {"type": "string", "pattern": "^[\\x20-\\x7e]{1,32}$"}
STUDENT_ID: Schema = {"type": "string", "pattern": "^[0-9]{6,16}$"}
# Numbers and flags are typed as what they are (a generated client passes `term=1`, not
# `"1"`); on the wire they are the same digits and `true`/`false`.
YEAR: Schema = {"type": "integer", "minimum": 2000, "maximum": 2100}
TERM: Schema = {"type": "integer", "minimum": 1, "maximum": 2}
DATE: Schema = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
FEED: Schema = {"type": "string", "enum": ["all", "timetable", "exams"]}

FRESH = Param(
    "fresh",
    "query",
    "`true` (or `1`, `yes`) asks the school again (an answer younger than "
    "`cache.fresh_min_interval_s` is still served); `false`, `0`, `no`: the default",
    # A boolean (a generated client passes `fresh=True`), or the short forms 2013's
    # clients and README examples use.
    {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["1", "0", "yes", "no"]}]},
)
CACHE_CONTROL = Param("Cache-Control", "header", "`no-cache` asks the school again, as `fresh=1`")
REQUEST_ID = Param(
    "X-Request-Id",
    "header",
    "your own request id: kept when it is 1-128 of `A-Za-z0-9._:@/+=-` (starting with a "
    "letter or digit), else replaced by a new one (never refused)",
)
FRESHNESS = (FRESH, CACHE_CONTROL, REQUEST_ID)
IF_NONE_MATCH = Param(
    "If-None-Match", "header", "the feed's `ETag` a calendar app has: 304 while it is unchanged"
)
SYSTEM: Schema = {"type": "string", "enum": ["card", "academic"]}
# /v1/sessions: the credentials (or a token) of one system, proven at its school.
SESSION_FAILURES = (
    e.BAD_REQUEST,
    *e.V1_CREDENTIALS,
    *e.SESSION_INPUT,
    *e.SCHOOL,
    e.NOT_CONFIGURED,
    *e.EVERY_ROUTE,
)
SYSTEM_PARAM = Param(
    "system", "query", "the school system: card (default) or academic", SYSTEM, False, "card"
)


def legacy_credentials(id_name: str, password: Schema, required: bool) -> tuple[Param, ...]:
    return (
        Param(id_name, "query", "the student number", STUDENT_ID, required, STUDENT),
        Param("password", "query", "the password", password, required, "052690"),
    )


TERM_PARAMS = (
    Param(
        "year",
        "query",
        "the academic year's first year (2026 = 2026-2027); without it, the current term's",
        YEAR,
        False,
        2026,
    ),
    Param("term", "query", "1 or 2; without it, the current term's", TERM, False, 1),
)
DATE_PARAMS = (
    Param(
        "start",
        "query",
        "first day, YYYY-MM-DD (default: the last day, if that is before today; else today)",
        DATE,
        False,
        "2026-11-20",
    ),
    Param("end", "query", "last day, YYYY-MM-DD (default today)", DATE, False, "2026-11-27"),
)


def as_json(schema: Schema) -> Schema:
    """A body field as JSON may send it: its type (a number for a numeric field, text for
    the others), or null (as if absent)."""
    return {"anyOf": [schema, {"type": "null"}]}


def body(
    description: str, fields: dict[str, Schema], example: dict[str, Any], required: bool = False
) -> Body:
    """The same fields as a JSON object or a form (required: the operation needs one)."""
    return Body(
        description,
        json={"type": "object", "properties": {k: as_json(v) for k, v in fields.items()}},
        form={"type": "object", "properties": fields},
        example=example,
        required=required,
    )


# --- the 2013 endpoints ---------------------------------------------------------------------

LEGACY_CARD_FAILURES = (
    e.BAD_REQUEST,
    *e.CREDENTIAL_SHAPE,
    e.QUERY_REJECTED,
    *e.SCHOOL,
    *e.EVERY_ROUTE,
)
LEGACY_OFFICE_FAILURES = (
    e.BAD_REQUEST,
    *e.CREDENTIAL_SHAPE,
    *e.TERM,
    e.NOT_CONFIGURED,
    *e.SCHOOL,
    *e.EVERY_ROUTE,
)
CACHED = ("Age", "Cache-Status")


def legacy_card(
    methods: tuple[Method, ...], summary: str, summary_zh: str, schema: str, description: str
) -> tuple[Operation, ...]:
    """A 2013 card endpoint: `stuid` and `password` in the query, or a POST form."""
    answer = Answer(200, summary, schema, headers=CACHED)
    form = Body(
        "the credentials as a form, instead of the query",
        form={
            "type": "object",
            "properties": {"stuid": STUDENT_ID, "password": CARD_PASSWORD},
        },
        example={"stuid": STUDENT, "password": "052690"},
    )
    ops = []
    for method in methods:
        post = method == "post"
        ops.append(
            Operation(
                method,
                summary,
                summary_zh,
                "2013",
                answer,
                description,
                (*legacy_credentials("stuid", CARD_PASSWORD, not post), *FRESHNESS),
                form if post else None,
                LEGACY_CARD_FAILURES,
                legacy_errors=True,
            )
        )
    return tuple(ops)


def legacy_office(summary: str, summary_zh: str, schema: str) -> tuple[Operation, ...]:
    """A 2013 academic office endpoint: `user`, `password`, `year`, `term`; GET or POST."""
    answer = Answer(200, summary, schema, headers=CACHED)
    properties = {"user": STUDENT_ID, "password": OFFICE_PASSWORD, "year": YEAR, "term": TERM}
    form = Body(
        "the same fields as a form, instead of the query",
        form={"type": "object", "properties": properties},
        example={"user": STUDENT, "password": "052690", "year": 2026, "term": 1},
    )
    return tuple(
        Operation(
            method,
            summary,
            summary_zh,
            "2013",
            answer,
            "The academic office password. Year and term not given are the current term's.",
            (
                *legacy_credentials("user", OFFICE_PASSWORD, method == "get"),
                *TERM_PARAMS,
                *FRESHNESS,
            ),
            form if method == "post" else None,
            LEGACY_OFFICE_FAILURES,
            legacy_errors=True,
        )
        for method in ("get", "post")
    )


# --- /v1/ -------------------------------------------------------------------------------------


def v1(
    tag: str,
    summary: str,
    summary_zh: str,
    answer: Answer,
    password: Schema,
    params: tuple[Param, ...] = (),
    failures: tuple[ErrorCode, ...] = (),
    methods: tuple[Method, ...] = ("get", "post"),
    description: str = "",
) -> tuple[Operation, ...]:
    """A /v1/ query: Basic auth, or (POST) a JSON or form body with the credentials and
    the same parameters."""
    fields: dict[str, Schema] = {"student_id": STUDENT_ID, "password": password}
    fields.update({p.name: p.schema for p in params})
    example: dict[str, Any] = {"student_id": STUDENT, "password": "052690"}
    example.update({p.name: p.example for p in params if p.example is not None})
    every = (
        e.BAD_REQUEST,
        *e.V1_CREDENTIALS,
        *failures,
        *e.SCHOOL,
        *e.EVERY_ROUTE,
    )
    return tuple(
        Operation(
            method,
            summary,
            summary_zh,
            tag,
            answer,
            description,
            (*params, *FRESHNESS),
            body("the credentials (and parameters) as JSON or a form", fields, example)
            if method == "post"
            else None,
            every,
            security=("studentBasic", "studentToken"),
            # A POST body may carry the credentials instead.
            anonymous=method == "post",
        )
        for method in methods
    )


def card(summary: str, summary_zh: str, schema: str, **more: Any) -> tuple[Operation, ...]:
    return v1(
        "card",
        summary,
        summary_zh,
        Answer(200, summary, schema, headers=CACHED),
        CARD_PASSWORD,
        **more,
    )


def office(
    summary: str, summary_zh: str, answer: Answer, tag: str = "academic", **more: Any
) -> tuple[Operation, ...]:
    return v1(
        tag,
        summary,
        summary_zh,
        answer,
        OFFICE_PASSWORD,
        TERM_PARAMS,
        (*e.TERM, e.NOT_CONFIGURED),
        **more,
    )


ICS_MEDIA = "text/calendar"

# --- the library ------------------------------------------------------------------------------

# Something to search for: no control characters, not only spaces.
QUERY: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[^\\x00-\\x1f]*[^\\s\\x00-\\x1f][^\\x00-\\x1f]*$",
}
# 2013's `query` may be empty or absent: then the path's last part is searched.
LEGACY_QUERY: Schema = {
    "type": "string",
    "maxLength": 200,
    "pattern": "^([^\\x00-\\x1f]*[^\\s\\x00-\\x1f][^\\x00-\\x1f]*)?$",
}
PAGE: Schema = {"type": "integer", "minimum": 1, "maximum": 50}
# A yes/no parameter, as the server reads it.
# A boolean, or `1` / `0`.
FLAG: Schema = {"anyOf": [{"type": "boolean"}, {"type": "string", "enum": ["1", "0"]}]}
CAMPUS: Schema = {"type": "string", "enum": ["main", "zhuhai"]}
BOOK_URL: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]+={0,2}$", "maxLength": 600}

LIBRARY_SEARCH_FAILURES = (
    e.BAD_REQUEST,
    e.MISSING_QUERY,
    e.INVALID_QUERY,
    e.INVALID_PAGE,
    e.INVALID_AVAILABLE,
    e.INVALID_CAMPUS,
    e.PAGE_NOT_SERVED,
    e.NOT_CONFIGURED,
    *e.SHARED_SCHOOL,
    *e.EVERY_ROUTE,
)
SEARCH_ABOUT = (
    "No credentials: one search serves every student from the cache "
    "(`school.library.fresh_s.search`); the per-address limit on school requests applies only to "
    "searches the cache cannot answer (429 `rate_limited`)."
)
SEARCH_PAGE = (
    Param(
        "page",
        "query",
        "the result page, 1-50 (default 1; at Zhuhai at most `school.library_zhuhai.max_pages`)",
        PAGE,
        False,
        1,
    ),
    Param(
        "available",
        "query",
        "`true` (or `1`): only books with a copy on the shelf (the main library's catalogue; "
        "Zhuhai's has no such filter and ignores it)",
        FLAG,
    ),
)
LEGACY_SEARCH_PARAMS = (
    Param(
        "query",
        "query",
        "the search words (without it, or empty, the path's last part, as in 2013)",
        LEGACY_QUERY,
        False,
        "数据结构",
    ),
    *SEARCH_PAGE,
    Param(
        "iszh",
        "query",
        "`1`: the Zhuhai campus catalogue (default 0: the main library's)",
        {"type": "integer", "minimum": 0, "maximum": 1},
    ),
)


NO_SEARCH = e.NOT_FOUND.answered(
    "no `query`, and a path whose last part is nothing to search (only spaces, control "
    "characters, over 200 characters)",
    "没有 query，且路径最后一段不是可检索的词（只有空白、含控制字符或超过 200 个字符）",
)


def legacy_search() -> tuple[Operation, ...]:
    """2013's `/book/search/<anything>`: the parameters in the query, or a POST form."""
    form = Body(
        "the same fields as a form, instead of the query",
        form={"type": "object", "properties": {p.name: p.schema for p in LEGACY_SEARCH_PARAMS}},
        example={"query": "数据结构", "page": 1},
    )
    return tuple(
        Operation(
            method,
            "Search the library's catalogues (2013)",
            "馆藏检索（2013 接口）",
            "2013",
            Answer(
                200, "one page of results, as 2013 wrote them", "LegacyBookSearch", headers=CACHED
            ),
            SEARCH_ABOUT + " 2013 clients used `/book/search/engine`.",
            (*LEGACY_SEARCH_PARAMS, *FRESHNESS),
            form if method == "post" else None,
            (*LIBRARY_SEARCH_FAILURES, NO_SEARCH),
            legacy_errors=True,
        )
        for method in ("get", "post")
    )
