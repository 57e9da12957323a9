"""Every route of handlers.routes(), described: the one source of `/openapi.json`.

ROUTES has one `Route` per pattern of handlers/__init__.py, in the same order;
EXCLUDED names the patterns left out on purpose. The helpers below give each API
family its usual parameters, credentials and errors, so that describing a new
route of a family takes a few lines (see api/__init__.py).
"""

from __future__ import annotations

import functools
from typing import Any

from api import errors as e
from api.contract import (
    Answer,
    Body,
    Method,
    Operation,
    Param,
    PathParam,
    Route,
    Tag,
    document,
)
from api.schemas import (
    BOOK,
    BOOK_ISBN,
    BOOK_PAGE_EXAMPLE,
    BOOK_URL_TOKEN,
    PICTURE,
    STUDENT,
    TOKEN,
    Schema,
)

TITLE = "jnufm"
DESCRIPTION = (
    "A campus API server: the 2013 jnu.fm endpoints for old clients, and a clean `/v1/` "
    "API, answered from the school's legacy systems (the card center, the academic "
    "office, the library's catalogues and cover service) through one protection pipeline "
    "(cache, coalescing, budget, breaker, the credential gate). Every error is JSON, "
    '`{"error": {"code", "message"}}` (on the 2013 endpoints with `"data": null` beside '
    "it). A 502, 503 or 504 says the school "
    "failed, was too busy or too slow, with `Retry-After`; it is a documented answer, "
    "not a fault of the server. The bundled simulator's students (every `20[01]NNNNNNN`) "
    "have password = the last 6 digits of the student number."
)

TAGS = (
    Tag("2013", "2013 接口", "The 2013 endpoints, same URLs and JSON for old clients"),
    Tag("card", "校园卡", "The card center: balance, transactions, profile"),
    Tag("academic", "教务处", "The academic office: timetable, exams, grades"),
    Tag(
        "sessions", "令牌", "Students' session tokens: a token instead of a password on every call"
    ),
    Tag("calendar", "日历订阅", "iCalendar feeds of the timetable and exams"),
    Tag(
        "library",
        "图书馆",
        "The library: catalogue searches, book records and covers (no credentials)",
    ),
    Tag(
        "accounts",
        "账户（2013 接口）",
        "The 2013 account API: accounts, login tokens, profiles, pictures, and the academic "
        "office bound to an account (`version: 1.0` and 2013's `status` values)",
    ),
    Tag("operations", "运维", "Health, readiness, metrics, the dashboard and this contract"),
)

# Patterns of handlers.routes() that have no entry here, and why.
EXCLUDED: dict[str, str] = {
    r"/()": "the index page (a static file)",
    r"/(favicon\.ico)": "a static file",
    r"/static/(.*)": "static files (the page's script, style and assets)",
    r"/index\.html": "a redirect to /",
    r"/debug/block": "test only, routed only when debug.block_route is on",
}

# --- parameters -----------------------------------------------------------------------------

CARD_PASSWORD: Schema = {"type": "string", "pattern": "^[0-9]{6}$"}
OFFICE_PASSWORD: Schema = {"type": "string", "pattern": "^[\\x20-\\x7e]{1,32}$"}
STUDENT_ID: Schema = {"type": "string", "pattern": "^[0-9]{6,16}$"}
YEAR: Schema = {"type": "string", "pattern": "^[0-9]{4}$"}
TERM: Schema = {"type": "string", "enum": ["1", "2"]}
DATE: Schema = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
FEED: Schema = {"type": "string", "enum": ["all", "timetable", "exams"]}

FRESH = Param(
    "fresh",
    "query",
    "`1`, `true` or `yes` asks the school again (an answer younger than "
    "`cache.fresh_min_interval_s` is still served)",
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
        "year", "query", "the academic year's first year (2026 = 2026-2027)", YEAR, False, "2026"
    ),
    Param("term", "query", "1 or 2; without year and term, the current term", TERM, False, "1"),
)
DATE_PARAMS = (
    Param("start", "query", "first day, YYYY-MM-DD (default today)", DATE, False, "2026-11-20"),
    Param("end", "query", "last day, YYYY-MM-DD (default today)", DATE, False, "2026-11-27"),
)


def as_json(schema: Schema) -> Schema:
    """A body field as JSON may send it: the text, a number (read as its digits), or null
    (as if absent)."""
    return {"anyOf": [schema, {"type": "integer", "minimum": 0}, {"type": "null"}]}


def body(description: str, fields: dict[str, Schema], example: dict[str, Any]) -> Body:
    """The same fields as a JSON object or a form."""
    return Body(
        description,
        json={"type": "object", "properties": {k: as_json(v) for k, v in fields.items()}},
        form={"type": "object", "properties": fields},
        example=example,
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
        example={"user": STUDENT, "password": "052690", "year": "2026", "term": "1"},
    )
    return tuple(
        Operation(
            method,
            summary,
            summary_zh,
            "2013",
            answer,
            "The academic office password. Without year and term: the current term.",
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
    failures: tuple[e.Failure, ...] = (),
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

QUERY: Schema = {"type": "string", "minLength": 1, "maxLength": 200}
PAGE: Schema = {"type": "integer", "minimum": 1, "maximum": 50}
FLAG: Schema = {"type": "string", "enum": ["0", "1", "true", "false"]}
CAMPUS: Schema = {"type": "string", "enum": ["main", "zhuhai"]}
BOOK_URL: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]+={0,2}$", "maxLength": 600}

LIBRARY_SEARCH_FAILURES = (
    e.BAD_REQUEST,
    e.MISSING_QUERY,
    e.INVALID_QUERY,
    e.INVALID_PAGE,
    e.INVALID_AVAILABLE,
    e.INVALID_CAMPUS,
    e.NOT_CONFIGURED,
    *e.SHARED_SCHOOL,
    *e.EVERY_ROUTE,
)
SEARCH_ABOUT = (
    "No credentials: one search serves every student from the cache "
    "(`cache.fresh_s.search`); the per-address limit on school requests applies only to "
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
        "`1` or `true`: only books with a copy on the shelf (the main library's catalogue; "
        "Zhuhai's has no such filter and ignores it)",
        FLAG,
    ),
)
LEGACY_SEARCH_PARAMS = (
    Param(
        "query",
        "query",
        "the search words (without it, the path's last part, as in 2013)",
        QUERY,
        False,
        "数据结构",
    ),
    *SEARCH_PAGE,
    Param(
        "iszh",
        "query",
        "`1`: the Zhuhai campus catalogue (default 0: the main library's)",
        {"type": "string", "enum": ["0", "1"]},
    ),
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
            LIBRARY_SEARCH_FAILURES,
            legacy_errors=True,
        )
        for method in ("get", "post")
    )


# --- the 2013 account API -------------------------------------------------------------------

USERNAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"}
ACCOUNT_PASSWORD: Schema = {"type": "string", "minLength": 6, "maxLength": 128}
LOGIN_TOKEN: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"}
ACCOUNT_NAME_EXAMPLE = "beordle"
ACCOUNT_PASSWORD_EXAMPLE = "jnu.fm-2013"  # noqa: S105 - an example

ACCOUNT_FIELDS: dict[str, tuple[str, Schema, Any]] = {
    "username": ("the user name (compared without case)", USERNAME, ACCOUNT_NAME_EXAMPLE),
    "password": ("the account password", ACCOUNT_PASSWORD, ACCOUNT_PASSWORD_EXAMPLE),
    "oldpassword": ("the account's current password", ACCOUNT_PASSWORD, "not-the-password"),
    "token": ("the login token of /signup or /login", LOGIN_TOKEN, TOKEN),
    "jwc_username": ("the student number", STUDENT_ID, STUDENT),
    "jwc_password": ("the academic office password", OFFICE_PASSWORD, "052690"),
    "jwcpw": (
        "the academic office password; without it, the one bound by /auth_jwc",
        OFFICE_PASSWORD,
        None,
    ),
    "nickname": ("the nickname", {"type": "string", "maxLength": 64}, "beordle"),
    "realname": ("the real name", {"type": "string", "maxLength": 64}, "张三"),
    "sex": ("as the user writes it", {"type": "string", "maxLength": 16}, "男"),
    "signature": ("a signature", {"type": "string", "maxLength": 256}, "jnu.fm"),
}
# Optional on every method.
ACCOUNT_OPTIONAL = frozenset({"jwcpw", "nickname", "realname", "sex", "signature"})
ACCOUNT_BASE = (e.BAD_REQUEST, e.RATE_LIMITED, e.ACCOUNTS_DISABLED, e.STORAGE_UNAVAILABLE)
ACCOUNT_NAME = (e.MISSING_USERNAME, e.INVALID_USERNAME)
ACCOUNT_SECRET = (e.MISSING_PASSWORD, e.INVALID_ACCOUNT_PASSWORD)
BAD_TOKEN = (e.INVALID_TOKEN,)
OFFICE_QUERY = (
    *BAD_TOKEN,
    *e.OFFICE_BINDING_ENDED,
    e.NOT_BOUND,
    e.INVALID_PASSWORD,
    *e.TERM,
    *e.SCHOOL,
)


def account_op(
    fields: tuple[str, ...],
    summary: str,
    summary_zh: str,
    answer: Answer,
    failures: tuple[e.Failure, ...],
    description: str = "",
    extra: tuple[Param, ...] = (),
) -> tuple[Operation, ...]:
    """A 2013 account route: its fields in the query (as 2013 read `request.args`), or on a
    POST in a form body; GET or POST."""
    form = Body(
        "the same fields as a form, instead of the query",
        form={"type": "object", "properties": {f: ACCOUNT_FIELDS[f][1] for f in fields}},
        example={f: ACCOUNT_FIELDS[f][2] for f in fields if ACCOUNT_FIELDS[f][2] is not None},
    )
    return tuple(
        Operation(
            method,
            summary,
            summary_zh,
            "accounts",
            answer,
            description,
            (
                *(
                    Param(
                        f,
                        "query",
                        ACCOUNT_FIELDS[f][0],
                        ACCOUNT_FIELDS[f][1],
                        method == "get" and f not in ACCOUNT_OPTIONAL,
                        ACCOUNT_FIELDS[f][2],
                    )
                    for f in fields
                ),
                *extra,
            ),
            form if method == "post" else None,
            (*failures, *ACCOUNT_BASE, *e.EVERY_ROUTE),
        )
        for method in ("get", "post")
    )


def account_picture(kind: str, kind_zh: str) -> tuple[Operation, ...]:
    """/set_avatar, /set_background: the token in the query, the picture as multipart `file`."""
    return (
        Operation(
            "post",
            f"Set the account's {kind} (2013)",
            f"设置{kind_zh}（2013 接口）",
            "accounts",
            Answer(200, "the picture's URL", "AccountPicture"),
            "A PNG, JPEG or GIF picture, each side at most `accounts.max_image_side` pixels and "
            "the body at most `accounts.max_upload_bytes`; kept re-encoded as PNG (no metadata "
            "survives) under a new URL.",
            (Param("token", "query", ACCOUNT_FIELDS["token"][0], LOGIN_TOKEN, True, TOKEN),),
            Body(
                "the picture",
                multipart={
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                },
                required=True,
            ),
            (
                *BAD_TOKEN,
                e.MISSING_FILE,
                e.INVALID_IMAGE,
                e.IMAGE_TOO_LARGE,
                e.UPLOAD_TOO_LARGE,
                *ACCOUNT_BASE,
                *(failure for failure in e.EVERY_ROUTE if failure is not e.PAYLOAD_TOO_LARGE),
            ),
        ),
    )


ACCOUNT_ROUTES = (
    Route(
        r"/signup",
        account_op(
            ("username", "password"),
            "Make an account (2013)",
            "注册账户（2013 接口）",
            Answer(200, "status 0 and a token, or 1 (the name is taken)", "AccountSignup"),
            (*ACCOUNT_NAME, *ACCOUNT_SECRET),
            "The password is kept as an argon2id hash only.",
        ),
    ),
    Route(
        r"/login",
        account_op(
            ("username", "password"),
            "Log in (2013)",
            "登录（2013 接口）",
            Answer(
                200,
                "status 0 and a token; 1 no such user, 2 wrong password",
                "AccountLogin",
            ),
            (*ACCOUNT_NAME, *ACCOUNT_SECRET, e.ACCOUNT_LOCKED_OUT),
            "Wrong passwords are limited per user name and per address "
            "(`limits.failed_logins_*`): then every password gets 429, the right one too.",
        ),
    ),
    Route(
        r"/password/reset",
        account_op(
            ("username", "oldpassword", "password"),
            "Change the account password (2013)",
            "修改账户密码（2013 接口）",
            Answer(200, "whether it was changed", "AccountPasswordReset"),
            (*ACCOUNT_NAME, *ACCOUNT_SECRET, e.ACCOUNT_LOCKED_OUT),
            "A wrong `oldpassword` counts as a wrong password, as at /login. A change ends "
            "every login token of the account.",
        ),
    ),
    Route(
        r"/auth_jwc",
        account_op(
            ("token", "jwc_username", "jwc_password"),
            "Bind the academic office to the account (2013)",
            "绑定教务处账号（2013 接口）",
            Answer(200, "status 0 bound, 1 the office refused the password", "AccountBinding"),
            (
                *BAD_TOKEN,
                *e.CREDENTIAL_SHAPE,
                e.TERM[0],
                *(f for f in e.SCHOOL if f is not e.INVALID_CREDENTIALS),
            ),
            "The password is tried at the office first (through the credential gate), then "
            "kept only sealed in a session token of the student's (listed and revocable at "
            "/v1/sessions); a password change at the school ends it.",
        ),
    ),
    Route(
        r"/get_username",
        account_op(
            ("token",),
            "The token's user name (2013)",
            "令牌对应的用户名（2013 接口）",
            Answer(200, "the user name", "AccountUsername"),
            BAD_TOKEN,
        ),
    ),
    Route(
        r"/get_info",
        account_op(
            ("token", "username"),
            "An account's public profile (2013)",
            "用户公开资料（2013 接口）",
            Answer(200, "status 0 and the profile, or 4 (no such user)", "AccountProfile"),
            (*BAD_TOKEN, *ACCOUNT_NAME),
            "Any account's, for any logged-in user: the public fields only, never a student "
            "number.",
        ),
    ),
    Route(
        r"/set_info",
        account_op(
            ("token", "nickname", "realname", "sex", "signature"),
            "Set the account's profile (2013)",
            "修改资料（2013 接口）",
            Answer(200, "status 0", "AccountDone"),
            (*BAD_TOKEN, e.INVALID_PROFILE),
            "Only the fields sent change.",
        ),
    ),
    Route(r"/set_avatar", account_picture("avatar", "头像")),
    Route(r"/set_background", account_picture("background", "背景图")),
    Route(
        r"/sync",
        account_op(
            ("token",),
            "The account's stored data (2013)",
            "账户数据（2013 接口）",
            Answer(200, "the profile, user name and bound student number", "AccountSync"),
            BAD_TOKEN,
            "Never a password (2013 answered both of them, and more).",
        ),
    ),
    Route(
        r"/class/auth",
        account_op(
            ("token", "jwcpw"),
            "The bound student's timetable (2013)",
            "绑定学生的课表（2013 接口）",
            Answer(200, "as /class/get", "LegacyTimetable", headers=CACHED),
            OFFICE_QUERY,
            "A bad token: 401 with `status: AuthNotPass`, as 2013.",
            (*TERM_PARAMS, *FRESHNESS),
        ),
    ),
    Route(
        r"/kaoshi/auth",
        account_op(
            ("token", "jwcpw"),
            "The bound student's exams (2013)",
            "绑定学生的考试安排（2013 接口）",
            Answer(200, "as /kaoshi/get", "LegacyExams", headers=CACHED),
            OFFICE_QUERY,
            "A bad token: 401 with `status: AuthNotPass`, as 2013.",
            (*TERM_PARAMS, *FRESHNESS),
        ),
    ),
    Route(
        r"/version",
        (
            Operation(
                "get",
                "The API version (2013)",
                "接口版本（2013 接口）",
                "accounts",
                Answer(200, "always 1", "Version2013"),
                failures=(e.RATE_LIMITED, *e.EVERY_ROUTE),
            ),
        ),
    ),
    Route(
        r"/uploads/([A-Za-z0-9_-]{32})\.png",
        (
            Operation(
                "get",
                "An account's picture",
                "账户图片",
                "accounts",
                Answer(
                    200,
                    "the picture, as PNG (cached for good: a new one gets a new URL)",
                    None,
                    "image/png",
                ),
                "The `avatar`, `background` and `url` of the account routes.",
                (REQUEST_ID,),
                failures=(
                    e.UNKNOWN_UPLOAD,
                    e.NO_SUCH_PATH,
                    e.ACCOUNTS_DISABLED,
                    e.RATE_LIMITED,
                    e.STORAGE_UNAVAILABLE,
                    *e.EVERY_ROUTE,
                ),
            ),
        ),
        (PathParam("picture", "the picture's name", PICTURE),),
    ),
)


# --- operations -----------------------------------------------------------------------------

OPS_FAILURES = (e.RATE_LIMITED, *e.EVERY_ROUTE)
METRICS_FAILURES = (e.FORBIDDEN, e.METRICS_DISABLED, *OPS_FAILURES)


def ops(
    summary: str,
    summary_zh: str,
    answer: Answer,
    failures: tuple[e.Failure, ...] = OPS_FAILURES,
    **more: Any,
) -> tuple[Operation, ...]:
    return (Operation("get", summary, summary_zh, "operations", answer, failures=failures, **more),)


# --- the routes -------------------------------------------------------------------------------

ROUTES: tuple[Route, ...] = (
    Route(
        r"/card/rest",
        legacy_card(
            ("get", "post"),
            "Card balance (2013)",
            "校园卡余额（2013 接口）",
            "LegacyBalance",
            '`{"data": "123.45"}`',
        ),
    ),
    Route(
        r"/card/today",
        legacy_card(
            ("get",),
            "Today's card transactions (2013)",
            "今日消费记录（2013 接口）",
            "LegacyTransactions",
            "Times are China time, corrected for the card center's slow clock.",
        ),
    ),
    Route(
        r"/card/month",
        legacy_card(
            ("get", "post"),
            "Card transactions of today and the 7 days before (2013)",
            "今天及之前 7 天的消费记录（2013 接口）",
            "LegacyTransactions",
            '2013\'s "month" asked today-7 .. today.',
        ),
    ),
    Route(
        r"/card/personalinfo",
        legacy_card(
            ("get",),
            "The card account page's value cells (2013)",
            "校园卡账户信息（2013 接口）",
            "LegacyPersonalInfo",
            "As 2013 listed them; /v1/card/profile has named fields.",
        ),
    ),
    Route(r"/class/get", legacy_office("Timetable (2013)", "课表（2013 接口）", "LegacyTimetable")),
    Route(r"/kaoshi/get", legacy_office("Exams (2013)", "考试安排（2013 接口）", "LegacyExams")),
    Route(
        r"/book/search/([^/]+)",
        legacy_search(),
        (
            PathParam(
                "name",
                "anything (2013 clients sent `engine`); the search words when there is no `query`",
                "engine",
            ),
        ),
    ),
    Route(
        r"/web/book",
        (
            Operation(
                "get",
                "A book's page (2013)",
                "图书详情页（2013 接口）",
                "2013",
                Answer(
                    200,
                    "the book's page in HTML, from our template (everything that came from "
                    "the catalogue escaped)",
                    None,
                    "text/html",
                    CACHED,
                    BOOK_PAGE_EXAMPLE,
                ),
                "Only record URLs of the configured catalogues are accepted (the `url` of a "
                "search's answer); any other URL is a 400 and is never fetched. The "
                "example is a record of the bundled simulator as the default configuration "
                "runs it (port 8100): with another catalogue, take `url` from a search. "
                "Errors are JSON, like every error of the API.",
                (
                    Param(
                        "url",
                        "query",
                        "the record URL in URL-safe base64 (padding optional)",
                        BOOK_URL,
                        True,
                        BOOK_URL_TOKEN,
                    ),
                    *FRESHNESS,
                ),
                failures=(
                    e.BAD_REQUEST,
                    e.INVALID_URL,
                    e.UNKNOWN_BOOK,
                    e.NOT_CONFIGURED,
                    *e.SHARED_SCHOOL,
                    *e.EVERY_ROUTE,
                ),
                legacy_errors=True,
            ),
        ),
    ),
    Route(
        r"/isbn/image/([0-9Xx-]{10,17})",
        (
            Operation(
                "get",
                "A book's cover",
                "图书封面",
                "library",
                Answer(
                    200,
                    "the cover as the cover service has it (JPEG, PNG or GIF, checked before "
                    "it is passed on), or our placeholder PNG with `X-Cover: placeholder`",
                    None,
                    "image/jpeg",
                    CACHED,
                    more_media=("image/png", "image/gif"),
                    optional_headers=("X-Cover",),
                ),
                "2013's cover URL (`image` of a search). Cached a week "
                "(`cache.fresh_s.cover`), a missing cover too; `Cache-Control: public, "
                "max-age=86400`. An ISBN whose check digit is wrong is a 400, never asked.",
                (REQUEST_ID,),
                failures=(
                    e.INVALID_ISBN,
                    e.NO_SUCH_PATH,
                    e.NOT_CONFIGURED,
                    *e.SHARED_SCHOOL,
                    *e.EVERY_ROUTE,
                ),
            ),
        ),
        (PathParam("isbn", "an ISBN-10 or ISBN-13, hyphens allowed", BOOK_ISBN),),
    ),
    *ACCOUNT_ROUTES,
    Route(r"/v1/card/balance", card("Card balance", "校园卡余额", "Balance")),
    Route(
        r"/v1/card/transactions",
        card(
            "Card transactions in a date range",
            "一段日期内的消费记录",
            "Transactions",
            params=DATE_PARAMS,
            failures=(*e.DATES, e.QUERY_REJECTED),
            description="Both dates default to today; at most `api.history_max_days` days.",
        ),
    ),
    Route(r"/v1/card/profile", card("Card holder's profile", "持卡人信息", "Profile")),
    Route(
        r"/v1/timetable",
        office(
            "The term's timetable",
            "本学期课表",
            Answer(200, "the term and its courses", "Timetable", headers=CACHED),
        ),
    ),
    Route(
        r"/v1/timetable\.ics",
        office(
            "The term's timetable as an iCalendar feed",
            "课表（iCalendar 日历）",
            Answer(200, "RFC 5545, one event per class meeting", None, ICS_MEDIA, CACHED),
            tag="calendar",
        ),
    ),
    Route(
        r"/v1/exams",
        office(
            "The term's exams",
            "本学期考试安排",
            Answer(200, "the term and its exams", "Exams", headers=CACHED),
        ),
    ),
    Route(
        r"/v1/exams\.ics",
        office(
            "The term's exams as an iCalendar feed",
            "考试安排（iCalendar 日历）",
            Answer(200, "RFC 5545, one event per exam", None, ICS_MEDIA, CACHED),
            tag="calendar",
        ),
    ),
    Route(
        r"/v1/grades",
        office(
            "The term's grades and GPA",
            "本学期成绩与绩点",
            Answer(200, "the term, its grades and the GPA", "Grades", headers=CACHED),
        ),
    ),
    Route(
        r"/v1/library/search",
        (
            Operation(
                "get",
                "Search the library's catalogues",
                "馆藏检索",
                "library",
                Answer(
                    200,
                    "one page of results, with links to the others",
                    "LibrarySearch",
                    headers=CACHED,
                ),
                SEARCH_ABOUT,
                (
                    Param("q", "query", "the search words", QUERY, True, "数据结构"),
                    *SEARCH_PAGE,
                    Param(
                        "campus",
                        "query",
                        "`main` (the main library's catalogue, the default) or `zhuhai`",
                        CAMPUS,
                        False,
                        "main",
                    ),
                    *FRESHNESS,
                ),
                failures=LIBRARY_SEARCH_FAILURES,
            ),
        ),
    ),
    Route(
        r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})",
        (
            Operation(
                "get",
                "A book's record and its copies",
                "图书详情与馆藏",
                "library",
                Answer(
                    200,
                    "the record: its labelled fields and its copies",
                    "LibraryRecord",
                    headers=CACHED,
                ),
                "No credentials: one answer serves every student from the cache "
                "(`cache.fresh_s.book`).",
                FRESHNESS,
                failures=(
                    e.BAD_REQUEST,
                    e.INVALID_BOOK_ID,
                    e.UNKNOWN_BOOK,
                    e.NO_SUCH_PATH,
                    e.NOT_CONFIGURED,
                    *e.SHARED_SCHOOL,
                    *e.EVERY_ROUTE,
                ),
            ),
        ),
        (
            PathParam(
                "id",
                "a main library record number (`b1234567`), or `zh-` and a Zhuhai one "
                "(`zh-300001`): `id` of a search's book",
                BOOK,
            ),
        ),
    ),
    Route(
        r"/v1/sessions",
        (
            Operation(
                "post",
                "A student's session token",
                "创建学生会话令牌",
                "sessions",
                Answer(201, "the new token, shown this once", "NewSession", headers=("Location",)),
                "Proves the password once (answered from the cache when it matches the one "
                "the school last accepted, else judged by the school), then returns a token "
                "that every /v1/ route of that system accepts as `Authorization: Bearer`: 256 "
                "random bits, stored as its SHA-256, the password kept sealed. It ends when "
                "unused for `tokens.idle_s`, at `tokens.max_age_s`, when revoked, or when the "
                "password changes at the school. No failed-login limit applies to it.",
                (
                    SYSTEM_PARAM,
                    Param(
                        "label",
                        "query",
                        "a name for it (at most 64 characters)",
                        {"type": "string", "maxLength": 64},
                        False,
                        "my phone",
                    ),
                    REQUEST_ID,
                ),
                body(
                    "the credentials (and system, label) as JSON or a form",
                    {
                        "student_id": STUDENT_ID,
                        "password": CARD_PASSWORD,
                        "system": SYSTEM,
                        "label": {"type": "string", "maxLength": 64},
                    },
                    {"student_id": STUDENT, "password": "052690", "system": "card"},
                ),
                SESSION_FAILURES,
                security=("studentBasic", "studentToken"),
                anonymous=True,
            ),
            Operation(
                "get",
                "A student's tokens",
                "学生的令牌",
                "sessions",
                Answer(200, "the student's live tokens and feeds of that system", "Sessions"),
                "With the password or one of the student's tokens of the same system: a card "
                "password never lists the academic office's tokens.",
                (SYSTEM_PARAM, REQUEST_ID),
                failures=SESSION_FAILURES,
                security=("studentBasic", "studentToken"),
            ),
            Operation(
                "delete",
                "Revoke all of a student's tokens",
                "撤销学生的全部令牌",
                "sessions",
                Answer(200, "the ids revoked", "Revoked"),
                "Every live token and feed of the student at that system.",
                (SYSTEM_PARAM, REQUEST_ID),
                failures=SESSION_FAILURES,
                security=("studentBasic", "studentToken"),
            ),
        ),
    ),
    Route(
        r"/v1/sessions/([0-9]{1,18})",
        (
            Operation(
                "delete",
                "Revoke one token",
                "撤销一个令牌",
                "sessions",
                Answer(204, "revoked"),
                "One of the student's live tokens or feeds, by its id (from `GET /v1/sessions`).",
                (SYSTEM_PARAM, REQUEST_ID),
                failures=(*SESSION_FAILURES, e.UNKNOWN_TOKEN, e.NO_SUCH_PATH),
                security=("studentBasic", "studentToken"),
            ),
        ),
        (PathParam("id", "the token's id (from GET /v1/sessions)", "7"),),
    ),
    Route(
        r"/v1/calendar/tokens",
        v1(
            "calendar",
            "A feed URL for calendar apps",
            "创建日历订阅链接",
            Answer(201, "the new feed", "FeedToken", headers=("Location",)),
            OFFICE_PASSWORD,
            (
                *TERM_PARAMS,
                Param("feed", "query", "all (default), timetable or exams", FEED, False, "all"),
            ),
            (*e.TERM, e.INVALID_FEED, e.NOT_CONFIGURED),
            methods=("post",),
            description="Calendar apps cannot send Basic auth: the feed's URL holds a "
            "revocable token instead (256 random bits, stored only as its SHA-256), listed and "
            "revoked with the student's tokens (`GET /v1/sessions?system=academic`), ended by "
            "a password change at the school.",
        ),
    ),
    Route(
        r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics",
        (
            Operation(
                "get",
                "A calendar feed, by its token",
                "按令牌读取日历订阅",
                "calendar",
                Answer(200, "the feed, from stored answers only", None, ICS_MEDIA, CACHED),
                "Served from stored answers only: a calendar app's polling never reaches "
                "the school. With its `ETag`: `If-None-Match` gets 304 while it is unchanged.",
                (REQUEST_ID, IF_NONE_MATCH),
                failures=(
                    e.UNKNOWN_TOKEN,
                    *e.FEED_GONE,
                    e.NO_SUCH_PATH,
                    e.NOT_CONFIGURED,
                    e.RATE_LIMITED,
                    e.SHUTTING_DOWN,
                    *e.EVERY_ROUTE,
                    e.STORAGE_UNAVAILABLE,
                ),
            ),
            Operation(
                "delete",
                "Revoke a calendar feed",
                "撤销日历订阅",
                "calendar",
                Answer(204, "revoked"),
                params=(REQUEST_ID,),
                failures=(
                    e.UNKNOWN_TOKEN,
                    e.NO_SUCH_PATH,
                    e.NOT_CONFIGURED,
                    e.RATE_LIMITED,
                    *e.EVERY_ROUTE,
                    e.STORAGE_UNAVAILABLE,
                ),
            ),
        ),
        (PathParam("token", "the feed's token", TOKEN),),
    ),
    Route(
        r"/healthz",
        ops(
            "Liveness",
            "存活检查",
            Answer(200, "the process serves; names the worker that answered", "Health"),
            e.EVERY_ROUTE,
        ),
    ),
    Route(
        r"/readyz",
        ops(
            "Readiness",
            "就绪检查",
            Answer(200, "ready: database reachable, migrations current, not stopping", "Readiness"),
            others=(Answer(503, "not ready", "Readiness", timing=False),),
        ),
    ),
    Route(
        r"/metrics",
        ops(
            "Prometheus metrics of every worker",
            "Prometheus 指标",
            Answer(200, "the exposition text", None, "text/plain"),
            METRICS_FAILURES,
            security=("metricsToken",),
            description="For `metrics.allow_networks` (loopback by default), or anyone "
            "with the bearer token.",
        ),
    ),
    Route(
        r"/openapi\.json",
        ops(
            "This contract (OpenAPI 3.1)",
            "本接口说明（OpenAPI 3.1）",
            Answer(200, "the OpenAPI document", "OpenApiDocument"),
        ),
    ),
    Route(
        r"/ops/dashboard\.json",
        ops(
            "The operator dashboard's figures",
            "运维面板数据",
            Answer(200, "rates over the last seconds, from the metrics of /metrics", "Dashboard"),
            METRICS_FAILURES,
            security=("metricsToken",),
            description="The same access rule as /metrics. Rates and latency cover the "
            "`window_s` seconds before the answer (null until the answering worker has an "
            "earlier reading).",
        ),
    ),
)


@functools.cache
def openapi() -> dict[str, Any]:
    """The OpenAPI document of ROUTES (built once per process; do not modify it)."""
    return document(ROUTES, TAGS, TITLE, DESCRIPTION)
