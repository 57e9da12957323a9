"""Every route of handlers.routes(), described: the one source of `/openapi.json`.

ROUTES has one `Route` per pattern of handlers/__init__.py, in the same order: each
school system's routes come from its description (systems/<name>/api.py, gathered
from the registry as handlers/__init__.py gathers its routes), the rest are here.
EXCLUDED names the patterns left out on purpose. api/families.py gives each API family
its usual parameters, credentials and errors, so that describing a new route of a
family takes a few lines (see api/__init__.py).
"""

from __future__ import annotations

import functools
from typing import Any

from api import errors as e
from api.contract import (
    SIMULATOR_NOTE,
    Answer,
    Body,
    Operation,
    Param,
    PathParam,
    Route,
    Tag,
    document,
    production,
)
from api.families import (
    CACHED,
    CARD_PASSWORD,
    FRESHNESS,
    OFFICE_PASSWORD,
    REQUEST_ID,
    SESSION_FAILURES,
    STUDENT_ID,
    SYSTEM,
    SYSTEM_PARAM,
    TERM_PARAMS,
    body,
)
from api.schemas import (
    PICTURE,
    STUDENT,
    TOKEN,
    Schema,
)
from services.codes import ErrorCode
from systems import SYSTEMS
from systems.plugin import ROUTE_GROUPS

TITLE = "jnufm"
DESCRIPTION = (
    "A campus API server: the 2013 jnu.fm endpoints for old clients, and a clean `/v1/` "
    "API, answered from the school's legacy systems (the card center, the academic "
    "office, the library's catalogues and cover service) through one protection pipeline "
    "(cache, coalescing, budget, breaker, the credential gate). Every error is JSON, "
    '`{"error": {"code", "message"}}` (on the 2013 endpoints with `"data": null` beside '
    "it). A 502, 503 or 504 says the school "
    "failed, was too busy or too slow, with `Retry-After`; it is a documented answer, "
    "not a fault of the server." + SIMULATOR_NOTE
)

TAGS = (
    Tag("2013", "2013 接口", "The 2013 endpoints, same URLs and JSON for old clients"),
    Tag("card", "校园卡", "The card center: balance, transactions, profile"),
    Tag("academic", "教务处", "The academic office: timetable, exams, grades"),
    Tag(
        "sessions", "令牌", "Students' session tokens: a token instead of a password on every call"
    ),
    Tag(
        "watches",
        "提醒",
        "Students' watches: told of a new transaction, a low balance, a grade, an exam "
        "soon or a timetable change, by webhook or e-mail",
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
    r"/wechat": "WeChat's callback URL (its XML message protocol, for WeChat's servers: "
    "README, WeChat official account)",
    r"/wechat/([a-z][a-z0-9_-]{0,31})": "the callback URL of each WeChat account, by name",
}

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
        "the academic office password; without it (or empty), the one bound by /auth_jwc",
        {"type": "string", "pattern": "^[\\x20-\\x7e]{0,32}$"},
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
ACCOUNT_SECRET = (e.MISSING_ACCOUNT_PASSWORD, e.INVALID_ACCOUNT_PASSWORD)
BAD_TOKEN = (e.LOGIN_TOKEN_REFUSED,)
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
    failures: tuple[ErrorCode, ...],
    description: str = "",
    extra: tuple[Param, ...] = (),
) -> tuple[Operation, ...]:
    """A 2013 account route: its fields in the query (as 2013 read `request.args`), or on a
    POST in a form body (required: the fields a GET requires are required in it; the
    query may still carry them, as 2013's `request.values` read both); GET or POST."""
    form = Body(
        "the same fields as a form, instead of the query",
        form={
            "type": "object",
            "properties": {f: ACCOUNT_FIELDS[f][1] for f in fields},
            "required": [f for f in fields if f not in ACCOUNT_OPTIONAL],
        },
        example={f: ACCOUNT_FIELDS[f][2] for f in fields if ACCOUNT_FIELDS[f][2] is not None},
        required=True,
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
                        f not in ACCOUNT_OPTIONAL,
                        ACCOUNT_FIELDS[f][2],
                    )
                    for f in fields
                    if method == "get"
                ),
                *extra,
            ),
            form if method == "post" else None,
            (*failures, *ACCOUNT_BASE, *e.EVERY_ROUTE),
            error_schema="AccountError",
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
                    # Nothing else: another part is refused (400 `bad_request`).
                    "additionalProperties": False,
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
            error_schema="AccountError",
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
                legacy_errors=True,
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
    failures: tuple[ErrorCode, ...] = OPS_FAILURES,
    **more: Any,
) -> tuple[Operation, ...]:
    return (Operation("get", summary, summary_zh, "operations", answer, failures=failures, **more),)


# --- the routes -------------------------------------------------------------------------------


def _system_routes() -> dict[str, list[Route]]:
    """Every registered school system's described routes, by group, in the registry's
    order: the same groups and order as handlers.routes()."""
    by_group: dict[str, list[Route]] = {group: [] for group in ROUTE_GROUPS}
    for system in SYSTEMS:
        for group, routes in system.api().ROUTES.items():
            by_group[group].extend(routes)
    return by_group


SYSTEM_ROUTES = _system_routes()

ROUTES: tuple[Route, ...] = (
    *SYSTEM_ROUTES["legacy"],
    *ACCOUNT_ROUTES,
    *SYSTEM_ROUTES["v1"],
    Route(
        r"/v1/sessions",
        (
            Operation(
                "post",
                "A student's session token",
                "创建学生会话令牌",
                "sessions",
                Answer(
                    201,
                    "the new token, shown this once",
                    "NewSession",
                    headers=("Location",),
                    links=(("revoke", "delete_v1_sessions_id", (("id", "$response.body#/id"),)),),
                ),
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
    *SYSTEM_ROUTES["token_urls"],
    Route(
        r"/v1/wechat/bind",
        (
            Operation(
                "post",
                "Bind a WeChat follower to a student",
                "绑定微信关注者与学号",
                "sessions",
                Answer(201, "bound: which systems the follower may ask", "WeChatBound"),
                "What the bind page (`/static/wechat-bind.html`, opened from the link the "
                "official account sends for 绑定) posts. The ticket comes from that link: "
                "signed, valid `wechat.bind_link_ttl_s`, used once. The passwords are proven "
                "by making the student's session tokens (the card center's; the academic "
                "office's too when its password is given), kept for the follower by id; no "
                "password is kept in clear, none reaches the chat. A wrong password leaves "
                "the ticket usable. Binding a follower again ends its previous binding's "
                "tokens; a student may bind several followers (listed by `GET /v1/sessions`).",
                (REQUEST_ID,),
                body(
                    "the ticket and the credentials as JSON or a form",
                    {
                        "ticket": {"type": "string", "maxLength": 512},
                        "student_id": STUDENT_ID,
                        "password": CARD_PASSWORD,
                        "academic_password": OFFICE_PASSWORD,
                    },
                    {
                        "ticket": "1.jnu.<follower>.<id>.<expires>.<signature>",
                        "student_id": STUDENT,
                        "password": "052690",
                    },
                ),
                (
                    e.BAD_REQUEST,
                    *e.CREDENTIAL_SHAPE,
                    e.INVALID_JSON,
                    e.INVALID_SYSTEM,
                    *e.WECHAT_TICKET,
                    *e.SCHOOL,
                    e.NOT_CONFIGURED,
                    *e.EVERY_ROUTE,
                ),
            ),
        ),
    ),
    Route(
        r"/v1/watches",
        (
            Operation(
                "post",
                "A new watch",
                "新建提醒",
                "watches",
                Answer(
                    201,
                    "the watch, and a webhook's signing secret shown this once",
                    "NewWatch",
                    headers=("Location",),
                    links=(
                        ("delete", "delete_v1_watches_id", (("id", "$response.body#/watch/id"),)),
                    ),
                ),
                "The school is asked for the change on its spare capacity only (never while "
                "students' queries wait for it), at most every `watches.poll_s.<kind>`; each "
                "change is one message, written to a persistent outbox and delivered at "
                "least once (its event key tells a second delivery). The kind's system's "
                "token (a card token for card_transaction and low_balance, the academic "
                "office's for the others) or password: with a password, a session token is "
                "made for the watch (listed and revoked by /v1/sessions). The watch ends "
                "with its token. A webhook must be https and public; a WeChat watch is made "
                "in the chat. The first poll only notes how things are.",
                (REQUEST_ID,),
                body(
                    "the watch as JSON or a form (and the credentials, without a token)",
                    {
                        "kind": {
                            "type": "string",
                            "enum": [
                                "card_transaction",
                                "low_balance",
                                "grade",
                                "exam_soon",
                                "timetable_change",
                            ],
                        },
                        "channel": {"type": "string", "enum": ["webhook", "email"]},
                        "target": {"type": "string", "maxLength": 500},
                        "param": {
                            "type": "string",
                            "description": "low_balance: a threshold in yuan; exam_soon: "
                            "hours before the exam",
                        },
                        "student_id": STUDENT_ID,
                        "password": CARD_PASSWORD,
                    },
                    {
                        "kind": "low_balance",
                        "channel": "webhook",
                        "target": "https://example.com/hooks/jnufm",
                        "param": "20",
                    },
                    required=True,
                ),
                (*SESSION_FAILURES, *e.WATCH_INPUT),
                security=("studentBasic", "studentToken"),
            ),
            Operation(
                "get",
                "A student's watches",
                "学生的提醒",
                "watches",
                Answer(200, "the student's live watches of that system", "Watches"),
                "Each with what became of its latest messages (delivered, pending, given "
                "up) and how many were given up on. The password or a token of that system.",
                (SYSTEM_PARAM, REQUEST_ID),
                failures=SESSION_FAILURES,
                security=("studentBasic", "studentToken"),
            ),
        ),
    ),
    Route(
        r"/v1/watches/([0-9]{1,18})",
        (
            Operation(
                "delete",
                "Delete a watch",
                "删除提醒",
                "watches",
                Answer(204, "deleted"),
                "One of the student's live watches of that system, by its id.",
                (SYSTEM_PARAM, REQUEST_ID),
                failures=(*SESSION_FAILURES, e.UNKNOWN_WATCH, e.NO_SUCH_PATH),
                security=("studentBasic", "studentToken"),
            ),
        ),
        (PathParam("id", "the watch's id (from GET /v1/watches)", "3"),),
    ),
    Route(
        r"/healthz",
        ops(
            "Liveness",
            "存活检查",
            Answer(200, "the process serves; names the worker that answered", "Health"),
            e.EVERY_ROUTE,
        ),
        cross_origin=True,
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
        cross_origin=True,
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
def openapi(production_mode: bool = False) -> dict[str, Any]:
    """The OpenAPI document of ROUTES (built once per process; do not modify it). In
    production mode without the simulator's passwords (api/contract.py's production())."""
    doc = document(ROUTES, TAGS, TITLE, DESCRIPTION)
    return production(doc) if production_mode else doc
