"""JSON schemas (2020-12, as OpenAPI 3.1 has them) of every answer, and their examples.

COMPONENTS are published under `components.schemas`; an answer refers to one by
`ref("Name")`. Examples are real answers of the bundled simulator.
"""

from __future__ import annotations

import base64
from typing import Any

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], optional: tuple[str, ...] = ()) -> Schema:
    """An object with these properties, all required but the optional ones."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
    }


def text(description: str = "", **more: Any) -> Schema:
    schema: Schema = {"type": "string", **more}
    if description:
        schema["description"] = description
    return schema


def nullable(schema: Schema) -> Schema:
    """The schema, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


MONEY = text("a decimal amount with two decimals", pattern=r"^-?[0-9]+\.[0-9]{2}$")
DECIMAL = text("a decimal number as text", pattern=r"^-?[0-9]+(\.[0-9]+)?$")
DATE = text("a date, YYYY-MM-DD", format="date")
MOMENT = text("ISO 8601 with the +08:00 offset", format="date-time")
CLOCK = text("HH:MM, campus time", pattern=r"^[0-2][0-9]:[0-5][0-9]$")
LEGACY_TIME = text(
    "the card center's time, corrected by `school.card.clock_offset_minutes`",
    pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$",
)
STUDENT_ID = text("the student number", pattern=r"^[0-9]{6,16}$")

# --- errors -----------------------------------------------------------------------------

ERROR_BODY = obj(
    {
        "code": text("stable and machine-readable (README's error table)"),
        "message": text("for people; never repeats a password"),
    }
)

# --- the 2013 endpoints -------------------------------------------------------------------

LEGACY_ROW = obj(
    {
        "time": LEGACY_TIME,
        "way": text("the kind of transaction, as the card center names it"),
        "position": text("where"),
        "price": MONEY,
        "rest": MONEY,
    }
)
LEGACY_COURSE = obj(
    {
        "class": text("the class (teaching group) id"),
        "id": text("the course id"),
        "name": text(),
        "score": text('credits, as text ("" when unknown)'),
        "type": text("category"),
        "teacher": text(),
        "position": text("place"),
        "more": text("remarks"),
        "time": {
            "type": "array",
            "items": obj(
                {
                    "week": text("weeks 1-16, one 0/1 character each", pattern="^[01]{16}$"),
                    "weekday": {"type": "integer", "minimum": 1, "maximum": 7},
                    "node": text('the class periods, e.g. "3,4"'),
                    "position": text(),
                }
            ),
        },
    }
)
LEGACY_EXAM = obj(
    {
        "date": DATE,
        "time": text("HH:MM-HH:MM"),
        "place": text(),
        "name": text("course name"),
        "id": text("course id"),
        "socre": {"type": "integer", "const": 0, "description": "2013's spelling, always 0"},
        "time-start": CLOCK,
        "time-end": CLOCK,
    }
)
# Always 1.0; typed as a number (a const becomes `Literal[1.0]` in generated clients).
LEGACY_VERSION = {"type": "number", "description": "always 1.0"}

# --- /v1/ ----------------------------------------------------------------------------------

ENVELOPE: dict[str, Schema] = {
    "student_id": STUDENT_ID,
    "as_of": {**MOMENT, "description": "when the school produced the data"},
    "source": {
        "type": "string",
        "enum": ["school", "cache"],
        "description": "fetched for this request, or from the cache",
    },
    "stale": {
        "type": "boolean",
        "description": "true when the school failed and an older answer stands in",
    },
}


def envelope(body: dict[str, Schema]) -> Schema:
    """A /v1/ answer about a student: the body between student_id and as_of."""
    tail = {name: schema for name, schema in ENVELOPE.items() if name != "student_id"}
    return obj({"student_id": STUDENT_ID, **body, **tail})


TERM: dict[str, Schema] = {
    "year": {"type": "integer", "description": "the academic year's first year"},
    "term": {"type": "integer", "minimum": 1, "maximum": 2},
    "term_name": text('e.g. "2026-2027 term 1"'),
    "term_starts": nullable({**DATE, "description": "Monday of week 1 (campus.terms)"}),
}
V1_ROW = obj(
    {
        "time": MOMENT,
        "kind": text("the kind of transaction"),
        "place": text(),
        "amount": MONEY,
        "balance_after": MONEY,
    }
)
MEETING = obj(
    {
        "weeks": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "weekday": {"type": "integer", "minimum": 1, "maximum": 7, "description": "1 = Monday"},
        "periods": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "starts": nullable(CLOCK),
        "ends": nullable(CLOCK),
        "place": text(),
        "text": text("the schedule segment as the office wrote it"),
    }
)
COURSE = obj(
    {
        "id": text(),
        "name": text(),
        "class": text(),
        "credits": nullable(DECIMAL),
        "category": text(),
        "teacher": text(),
        "meetings": {"type": "array", "items": ref("Meeting")},
        "unparsed": {
            "type": "array",
            "items": text(),
            "description": "schedule text that could not be read: kept, never dropped",
        },
        "schedule": text(),
        "place": text(),
        "remarks": text(),
    }
)
EXAM = obj(
    {
        "course_id": text(),
        "course_name": text(),
        "date": DATE,
        "starts": CLOCK,
        "ends": CLOCK,
        "starts_at": MOMENT,
        "ends_at": MOMENT,
        "place": text(),
    }
)
GRADE = obj(
    {
        "course_id": text(),
        "course_name": text(),
        "category": text(),
        "score": text("as written: 95, 优秀"),
        "score_value": nullable(DECIMAL),
        "credits": text(),
        "grade_points": nullable(DECIMAL),
        "remarks": text(),
    }
)
FEED_TOKEN = obj(
    {
        "student_id": STUDENT_ID,
        **TERM,
        "feed": {"type": "string", "enum": ["all", "timetable", "exams"]},
        "token": text("256 random bits, base64url", pattern="^[A-Za-z0-9_-]{20,64}$"),
        "path": text(),
        "url": text(format="uri"),
    }
)

SESSION_TOKEN = obj(
    {
        "id": {"type": "integer", "minimum": 1},
        "kind": {"type": "string", "enum": ["session", "feed"]},
        "system": {"type": "string", "enum": ["card", "academic"]},
        "label": text("what its student called it"),
        "client": nullable(text("the registered client it was made through")),
        "created_at": MOMENT,
        "last_used_at": MOMENT,
        "current": {
            "type": "boolean",
            "description": "the token this request was made with",
        },
        "feed": obj(
            {
                "feed": {"type": "string", "enum": ["all", "timetable", "exams"]},
                "year": {"type": "integer"},
                "term": {"type": "integer", "minimum": 1, "maximum": 2},
            }
        ),
    },
    optional=("feed",),
)
NEW_SESSION = obj(
    {
        "token": text(
            "256 random bits, base64url: shown this once (only its SHA-256 is stored)",
            pattern="^[A-Za-z0-9_-]{43}$",
        ),
        "student_id": STUDENT_ID,
        **SESSION_TOKEN["properties"],
    },
    optional=("feed",),
)
WECHAT_BINDING = obj(
    {
        "id": {"type": "integer", "minimum": 1},
        "account": text("the official account's name (`wechat.accounts`)"),
        "created_at": MOMENT,
    }
)
SESSIONS = obj(
    {
        "student_id": STUDENT_ID,
        "system": {"type": "string", "enum": ["card", "academic"]},
        "tokens": {"type": "array", "items": ref("SessionToken")},
        "wechat": {
            "type": "array",
            "items": ref("WeChatBinding"),
            "description": "WeChat followers bound with a live token of this system",
        },
    }
)
REVOKED = obj(
    {
        "student_id": STUDENT_ID,
        "system": {"type": "string", "enum": ["card", "academic"]},
        "revoked": {"type": "array", "items": {"type": "integer"}},
        "wechat": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "the WeChat bindings ended (no live token left)",
        },
    }
)
WATCH = obj(
    {
        "id": {"type": "integer", "minimum": 1},
        "kind": {
            "type": "string",
            "enum": ["card_transaction", "low_balance", "grade", "exam_soon", "timetable_change"],
        },
        "system": {"type": "string", "enum": ["card", "academic"]},
        "param": nullable(text("low_balance: the threshold in yuan; exam_soon: hours before")),
        "channel": {"type": "string", "enum": ["webhook", "email", "wechat"]},
        "target": text("the webhook URL or the e-mail address"),
        "created_at": MOMENT,
        "last_polled_at": nullable(MOMENT),
        "failures": {
            "type": "integer",
            "minimum": 0,
            "description": "messages given up on",
        },
        "messages": {
            "type": "array",
            "description": "its latest messages, newest first",
            "items": obj(
                {
                    "status": {"type": "string", "enum": ["delivered", "pending", "given_up"]},
                    "created_at": MOMENT,
                    "attempts": {"type": "integer", "minimum": 0},
                }
            ),
        },
    }
)
NEW_WATCH = obj(
    {
        "student_id": STUDENT_ID,
        "watch": ref("Watch"),
        "secret": text(
            "a webhook's signing secret, shown this once (the deliveries are signed with it)"
        ),
    },
    optional=("secret",),
)
WATCHES = obj(
    {
        "student_id": STUDENT_ID,
        "system": {"type": "string", "enum": ["card", "academic"]},
        "watches": {"type": "array", "items": ref("Watch")},
    }
)
WECHAT_BOUND = obj(
    {
        "student_id": STUDENT_ID,
        "bound": obj({"card": {"type": "boolean"}, "academic": {"type": "boolean"}}),
        "account": text("the official account's name (`wechat.accounts`)"),
    }
)

# --- the library ------------------------------------------------------------------------------

CAMPUS = {
    "type": "string",
    "enum": ["main", "zhuhai"],
    "description": "main: the main library's catalogue; zhuhai: the Zhuhai campus's",
}
BOOK_ID = text(
    "the book's id in this API: the catalogue's record number, `zh-` before a Zhuhai one",
    pattern=r"^(?:zh-)?[0-9A-Za-z.]{1,24}$",
)
LEGACY_BOOK = obj(
    {
        "title": text(),
        "url": text("the record's URL in its catalogue (for `/web/book?url=`, in base64)"),
        "status": text('as the catalogue shows it, e.g. "可借" ("" at Zhuhai)'),
        "detail": text("every copy's location, call number and status, in one line"),
        "author": text(),
        "publish": text("publisher and date"),
        "size": text("pages and size"),
        "year": text('"" when unknown'),
        "position": {
            "type": "array",
            "items": text(),
            "description": "each copy: `<location> <call number> <status>`",
        },
        "checkout": {"type": "integer", "enum": [0, 1], "description": "1: a copy is on the shelf"},
        "lookup": {"type": "integer", "enum": [0, 1], "description": "1: the copies are listed"},
        "isbn": text('"" when the catalogue shows none'),
        "image": text('our `/isbn/image/<isbn>` (absolute), or "" without an ISBN'),
        "douban": text('the book on douban.com, or "" without an ISBN'),
    }
)
HOLDING = obj(
    {
        "location": text(),
        "call_number": text(),
        "status": text('as the catalogue shows it: "在架上", "到期 2026-12-10", "馆内阅览"...'),
        "available": {"type": "boolean", "description": "on the shelf: can be borrowed now"},
        "due": nullable({**DATE, "description": "when a copy on loan is due back"}),
    }
)
LIBRARY_BOOK = obj(
    {
        "id": nullable({**BOOK_ID, "description": "null when the catalogue shows no number"}),
        "title": text(),
        "author": text(),
        "publisher": text("publisher and date"),
        "pages": text("pages and size"),
        "year": text('"" when unknown'),
        "isbn": text('"" when the catalogue shows none'),
        "status": text('as the catalogue shows it ("" at Zhuhai)'),
        "available": {"type": "boolean", "description": "a copy is on the shelf"},
        "holdings": {
            "type": "array",
            "items": ref("Holding"),
            "description": "the copies (at Zhuhai, only with `isbn_lookups`)",
        },
        "links": obj({"self": nullable(text()), "cover": nullable(text())}),
    }
)
LIBRARY_TAIL = {name: schema for name, schema in ENVELOPE.items() if name != "student_id"}
LIBRARY_SEARCH = obj(
    {
        "campus": CAMPUS,
        "query": text("the query as normalised (NFKC, one space between words)"),
        "page": {"type": "integer", "minimum": 1, "maximum": 50},
        "per_page": {"type": "integer", "minimum": 1},
        "total": nullable({"type": "integer", "minimum": 0, "description": "hits in all"}),
        "pages": nullable({"type": "integer", "minimum": 1}),
        "available_only": {"type": "boolean"},
        "books": {"type": "array", "items": ref("LibraryBook")},
        "links": obj({"self": text(), "next": nullable(text()), "prev": nullable(text())}),
        **LIBRARY_TAIL,
    }
)
LIBRARY_RECORD = obj(
    {
        "id": BOOK_ID,
        "campus": CAMPUS,
        "title": text(),
        "author": text(),
        "publisher": text(),
        "isbn": text(),
        "call_number": text(),
        "description": text("pages and size"),
        "notes": text(),
        "fields": {
            "type": "array",
            "items": obj({"label": text(), "value": text()}),
            "description": "every labelled field, as the catalogue shows it",
        },
        "holdings": {"type": "array", "items": ref("Holding")},
        "available": {"type": "boolean", "description": "a copy is on the shelf"},
        **LIBRARY_TAIL,
    }
)

# --- the 2013 account API -------------------------------------------------------------------

LOGIN_TOKEN = text(
    'the login token (43 characters), or "none" when there is none',
    pattern=r"^([A-Za-z0-9_-]{43}|none)$",
)
PICTURE_URL = text(
    'a picture\'s URL on this server, "" for none', pattern=r"^(/uploads/[A-Za-z0-9_-]{32}\.png)?$"
)
PUBLIC_PROFILE: dict[str, Schema] = {
    "nickname": text(),
    "realname": text(),
    "sex": text(),
    "signature": text(),
    "avatar": PICTURE_URL,
    "background": PICTURE_URL,
}


def account_status(*values: int) -> Schema:
    return {"type": "integer", "enum": list(values)}


# --- operations -------------------------------------------------------------------------------

BREAKER_STATE = {"type": "string", "enum": ["closed", "half_open", "open"]}
HEALTH = obj(
    {
        "status": {"type": "string", "const": "ok"},
        "worker": {"type": "integer", "description": "index of the worker that answered"},
        "pid": {"type": "integer"},
        "generation": {"type": "integer", "description": "configuration generation"},
        "version": text("jnufm's version (pyproject.toml; /openapi.json's info.version)"),
        "mode": {
            "type": "string",
            "enum": ["development", "production"],
            "description": "the server's mode (`mode` in config.yaml); the page offers no "
            "simulator credentials in production",
        },
    }
)
READINESS = obj(
    {
        "ready": {"type": "boolean"},
        "degraded": {"type": "boolean"},
        "database": text("ok, or why not"),
        "migrations": text("current, or at which revision"),
        "writes": {"type": "string", "enum": ["ok", "failing"]},
        "deferred_writes": {"type": "integer", "minimum": 0},
        "school": {"type": "object", "additionalProperties": BREAKER_STATE},
        "draining": {"type": "boolean"},
        "worker": {"type": "integer"},
    }
)
RATE = nullable({"type": "number", "minimum": 0})
DASHBOARD = obj(
    {
        "window_s": nullable({"type": "number", "description": "seconds the rates cover"}),
        "requests_per_s": RATE,
        "requests_total": {"type": "number", "minimum": 0},
        "in_flight": {"type": "number", "minimum": 0},
        "cache_hit_ratio": nullable({"type": "number", "minimum": 0, "maximum": 1}),
        "latency_ms": obj({"p50": RATE, "p99": RATE}),
        "school": {
            "type": "array",
            "items": obj(
                {
                    "system": text(),
                    "requests_per_s": RATE,
                    "failures_per_s": RATE,
                    "in_flight": {
                        **RATE,
                        "description": "school requests in flight, averaged over the window",
                    },
                    "budget": nullable({"type": "integer", "minimum": 0}),
                    "waiting": {"type": "number", "minimum": 0},
                    "breaker": BREAKER_STATE,
                }
            ),
        },
        "workers": obj(
            {
                "count": {"type": "number", "minimum": 0},
                "live": {
                    "type": "array",
                    "items": obj(
                        {
                            "worker": {"type": "integer"},
                            "pid": nullable({"type": "integer"}),
                            "generation": {"type": "integer"},
                        }
                    ),
                },
            }
        ),
        "clients": {
            "type": "array",
            "description": "clients by the school requests made for them (a registered "
            "client's name, or anonymous: every unregistered address)",
            "items": obj(
                {
                    "client": text(),
                    "school_requests": {"type": "number", "minimum": 0},
                    "school_requests_per_s": RATE,
                }
            ),
        },
        "watches": obj(
            {
                "live": nullable(
                    {"type": "number", "minimum": 0, "description": "watches not ended"}
                ),
                "polls_per_min": {
                    **RATE,
                    "description": "polls of the school by students' watches, a minute",
                },
                "outbox_depth": nullable(
                    {
                        "type": "number",
                        "minimum": 0,
                        "description": "messages waiting to be delivered",
                    }
                ),
                "given_up": nullable(
                    {
                        "type": "number",
                        "minimum": 0,
                        "description": "messages given up on, still kept (watches.keep_s)",
                    }
                ),
                "delivered_per_min": RATE,
                "retries_per_min": {**RATE, "description": "delivery attempts failed, retried"},
                "failures_per_min": {**RATE, "description": "messages given up on"},
            }
        ),
        "lockouts": nullable(
            {
                "type": "array",
                "description": "students and addresses locked out, and registered clients "
                "slowed down, now (null: the database cannot say)",
                "items": obj(
                    {
                        "scope": {
                            "type": "string",
                            "enum": ["student", "ip", "client", "account"],
                        },
                        "who": text("a student's system and pseudonym, an address, a client"),
                        "wrong": {"type": "integer", "minimum": 0},
                        "allowed": {"type": "integer", "minimum": 1},
                        "until": text(format="date-time"),
                    }
                ),
            }
        ),
        "unreadable_pages": nullable(
            {
                "type": "array",
                "description": "the last school pages no client could read, kept redacted "
                "(python server.py pages show ID); null: the database cannot say",
                "items": obj(
                    {
                        "id": {"type": "integer"},
                        "system": text(),
                        "page": text("the page kind (login, balance, timetable, search...)"),
                        "last_seen": text(format="date-time"),
                        "seen": {"type": "integer", "minimum": 1},
                        "reason": text(),
                    }
                ),
            }
        ),
        "answered_by": obj({"worker": {"type": "integer"}, "generation": {"type": "integer"}}),
    }
)

COMPONENTS: dict[str, Schema] = {
    "Error": obj({"error": ERROR_BODY}),
    "LegacyError": obj({"data": {"type": "null"}, "error": ERROR_BODY}),
    "LegacyBalance": obj({"data": MONEY}),
    "LegacyTransactions": obj({"data": {"type": "array", "items": ref("LegacyTransaction")}}),
    "LegacyTransaction": LEGACY_ROW,
    "LegacyPersonalInfo": obj(
        {"data": {"type": "array", "items": text(), "description": "the account page's cells"}}
    ),
    "LegacyTimetable": obj(
        {
            "data": {
                "type": "object",
                "additionalProperties": ref("LegacyCourse"),
                "description": "courses by course id",
            },
            "version": LEGACY_VERSION,
        }
    ),
    "LegacyCourse": LEGACY_COURSE,
    "LegacyExams": obj(
        {"data": {"type": "array", "items": ref("LegacyExam")}, "version": LEGACY_VERSION}
    ),
    "LegacyExam": LEGACY_EXAM,
    "Balance": envelope(
        {"balance": obj({"amount": MONEY, "currency": {"type": "string", "const": "CNY"}})}
    ),
    "Transactions": envelope(
        {
            "start": DATE,
            "end": DATE,
            "currency": {"type": "string", "const": "CNY"},
            "count": {"type": "integer", "minimum": 0},
            "transactions": {"type": "array", "items": ref("Transaction")},
        }
    ),
    "Transaction": V1_ROW,
    "Profile": envelope(
        {
            "name": text(),
            "card_number": text(),
            "identity": text(),
            "department": text(),
            "status": text(),
        }
    ),
    "Timetable": envelope({**TERM, "courses": {"type": "array", "items": ref("Course")}}),
    "Course": COURSE,
    "Meeting": MEETING,
    "Exams": envelope({**TERM, "exams": {"type": "array", "items": ref("Exam")}}),
    "Exam": EXAM,
    "Grades": envelope(
        {
            **TERM,
            "grades": {"type": "array", "items": ref("Grade")},
            "gpa": nullable({**DECIMAL, "description": "by the rule of school.academic.gpa"}),
        }
    ),
    "Grade": GRADE,
    "FeedToken": FEED_TOKEN,
    "NewSession": NEW_SESSION,
    "SessionToken": SESSION_TOKEN,
    "Sessions": SESSIONS,
    "Revoked": REVOKED,
    "WeChatBinding": WECHAT_BINDING,
    "WeChatBound": WECHAT_BOUND,
    "Watch": WATCH,
    "NewWatch": NEW_WATCH,
    "Watches": WATCHES,
    "LegacyBookSearch": obj(
        {"data": {"type": "array", "items": ref("LegacyBook")}, "version": LEGACY_VERSION}
    ),
    "LegacyBook": LEGACY_BOOK,
    "LibrarySearch": LIBRARY_SEARCH,
    "LibraryBook": LIBRARY_BOOK,
    "LibraryRecord": LIBRARY_RECORD,
    "Holding": HOLDING,
    "AccountSignup": obj(
        {
            "version": LEGACY_VERSION,
            "status": {**account_status(0, 1), "description": "0 created, 1 the name is taken"},
            "token": LOGIN_TOKEN,
        }
    ),
    "AccountLogin": obj(
        {
            "version": LEGACY_VERSION,
            "status": {
                **account_status(0, 1, 2),
                "description": "0 logged in, 1 no such user, 2 wrong password",
            },
            "token": LOGIN_TOKEN,
        }
    ),
    "AccountPasswordReset": obj(
        {
            "version": LEGACY_VERSION,
            "status": {"type": "string", "enum": ["Password reset success", "Password not match"]},
        }
    ),
    "AccountBinding": obj(
        {
            "version": LEGACY_VERSION,
            "status": {
                **account_status(0, 1),
                "description": "0 bound, 1 the academic office refused the password",
            },
        }
    ),
    "AccountDone": obj({"version": LEGACY_VERSION, "status": account_status(0)}),
    "AccountUsername": obj(
        {"version": LEGACY_VERSION, "status": account_status(0), "username": text()}
    ),
    "AccountProfile": obj(
        {
            "version": LEGACY_VERSION,
            "status": {**account_status(0, 4), "description": "0 found, 4 no such user"},
            **PUBLIC_PROFILE,
        },
        optional=tuple(PUBLIC_PROFILE),
    ),
    "AccountPicture": obj(
        {"version": LEGACY_VERSION, "status": account_status(0), "url": PICTURE_URL}
    ),
    "AccountSync": obj(
        {
            "version": LEGACY_VERSION,
            "status": account_status(0),
            "data": obj(
                {
                    "username": text(),
                    "jwcid": nullable(
                        {**STUDENT_ID, "description": "the bound student number, or null"}
                    ),
                    **PUBLIC_PROFILE,
                }
            ),
        }
    ),
    "Version2013": obj({"version": {"type": "integer", "const": 1}}),
    "Health": HEALTH,
    "Readiness": READINESS,
    "Dashboard": DASHBOARD,
    "OpenApiDocument": {
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "description": "an OpenAPI 3.1 document",
    },
}

# --- examples (answers of the bundled simulator) ----------------------------------------------

AS_OF = "2026-11-27T08:12:03+08:00"
EXAMPLE_ROW = {
    "time": "2026-11-27 12:42:05",
    "way": "持卡人消费",
    "position": "第一饭堂",
    "price": "-5.50",
    "rest": "117.95",
}
EXAMPLE_COURSE = {
    "id": "0801003",
    "name": "概率论与数理统计",
    "class": "080100302",
    "credits": "3.0",
    "category": "必修",
    "teacher": "李秀英",
    "meetings": [
        {
            "weeks": [1, 3, 5, 7, 9, 11, 13, 15],
            "weekday": 5,
            "periods": [1, 2],
            "starts": "08:00",
            "ends": "09:35",
            "place": "理工楼605",
            "text": "单周周五 - 1,2节",
        }
    ],
    "unparsed": [],
    "schedule": "①单周周五 - 1,2节",
    "place": "理工楼605",
    "remarks": "",
}
EXAMPLE_TERM = {
    "year": 2026,
    "term": 1,
    "term_name": "2026-2027 term 1",
    "term_starts": "2026-09-07",
}
EXAMPLE_TAIL = {"as_of": AS_OF, "source": "school", "stale": False}
STUDENT = "2012052690"
# The library examples: `python -m schoolsim` (seed 2013) behind the default config, which
# runs it on port 8100; `数据结构` (data structures) finds 109 books at the main library.
BOOK = "b1007429"
BOOK_ISBN = "9787115692412"
BOOK_RECORD_URL = f"http://127.0.0.1:8100/opac/record={BOOK}~S1*chx"
# `/web/book?url=`: the record URL in URL-safe base64, without padding.
BOOK_URL_TOKEN = base64.urlsafe_b64encode(BOOK_RECORD_URL.encode()).decode().rstrip("=")
SHELF = {
    "location": "过刊阅览室",
    "call_number": "TP311.12/421",
    "status": "在架上",
    "available": True,
    "due": None,
}
EXAMPLE_BOOK = {
    "id": BOOK,
    "title": "实用数据结构概论",
    "author": "何晓明主编",
    "publisher": "北京 : 人民邮电出版社, 2013.01",
    "pages": "844页 : 图 ; 21cm",
    "year": "2013",
    "isbn": BOOK_ISBN,
    "status": "可借",
    "available": True,
    "holdings": [SHELF, SHELF],
    "links": {"self": f"/v1/library/books/{BOOK}", "cover": f"/isbn/image/{BOOK_ISBN}"},
}
EXAMPLE_LOANED = {
    "id": "b1006988",
    "title": "现代数据结构入门",
    "author": "吴华编著",
    "publisher": "北京 : 中华书局, 2012.08",
    "pages": "835页 : 图 ; 26cm",
    "year": "2012",
    "isbn": "9787101830439",
    "status": "可借",
    "available": True,
    "holdings": [
        {
            "location": "中文图书借阅区(三楼)",
            "call_number": "TP311.12/897",
            "status": "到期 2026-12-10",
            "available": False,
            "due": "2026-12-10",
        },
        {
            "location": "中文图书借阅区(四楼)",
            "call_number": "TP311.12/897",
            "status": "在架上",
            "available": True,
            "due": None,
        },
    ],
    "links": {"self": "/v1/library/books/b1006988", "cover": "/isbn/image/9787101830439"},
}
TOKEN = "7Ux8LJWfR6F0hwIRDLHk9D1Jn1xbMwd3xL-UlCtyztA"  # noqa: S105 - an example
PICTURE = "q0Hc2cV1kGJ5rXWm8bTzL3dN6yPaE4sF"

EXAMPLES: dict[str, Any] = {
    "LegacyBalance": {"data": "123.45"},
    "LegacyTransactions": {"data": [EXAMPLE_ROW]},
    "LegacyPersonalInfo": {
        "data": ["张三", "152690", STUDENT, "本科生", "医学院", "正常", "123.45元（卡余额）"]
    },
    "LegacyTimetable": {
        "data": {
            "0801003": {
                "class": "080100302",
                "id": "0801003",
                "name": "概率论与数理统计",
                "score": "3.0",
                "type": "必修",
                "teacher": "李秀英",
                "position": "理工楼605",
                "more": "",
                "time": [
                    {
                        "week": "1010101010101010",
                        "weekday": 5,
                        "node": "1,2",
                        "position": "理工楼605",
                    }
                ],
            }
        },
        "version": 1.0,
    },
    "LegacyExams": {
        "data": [
            {
                "date": "2027-01-12",
                "time": "09:00-11:00",
                "place": "第三教学楼306",
                "name": "大学物理",
                "id": "0802012",
                "socre": 0,
                "time-start": "09:00",
                "time-end": "11:00",
            }
        ],
        "version": 1.0,
    },
    "Balance": {
        "student_id": STUDENT,
        "balance": {"amount": "123.45", "currency": "CNY"},
        **EXAMPLE_TAIL,
    },
    "Transactions": {
        "student_id": STUDENT,
        "start": "2026-11-20",
        "end": "2026-11-27",
        "currency": "CNY",
        "count": 1,
        "transactions": [
            {
                "time": "2026-11-27T12:42:05+08:00",
                "kind": "持卡人消费",
                "place": "第一饭堂",
                "amount": "-5.50",
                "balance_after": "117.95",
            }
        ],
        **EXAMPLE_TAIL,
    },
    "Profile": {
        "student_id": STUDENT,
        "name": "张三",
        "card_number": "152690",
        "identity": "本科生",
        "department": "医学院",
        "status": "正常",
        **EXAMPLE_TAIL,
    },
    "Timetable": {
        "student_id": STUDENT,
        **EXAMPLE_TERM,
        "courses": [EXAMPLE_COURSE],
        **EXAMPLE_TAIL,
    },
    "Exams": {
        "student_id": STUDENT,
        **EXAMPLE_TERM,
        "exams": [
            {
                "course_id": "0802012",
                "course_name": "大学物理",
                "date": "2027-01-12",
                "starts": "09:00",
                "ends": "11:00",
                "starts_at": "2027-01-12T09:00:00+08:00",
                "ends_at": "2027-01-12T11:00:00+08:00",
                "place": "第三教学楼306",
            }
        ],
        **EXAMPLE_TAIL,
    },
    "Grades": {
        "student_id": STUDENT,
        "year": 2025,
        "term": 2,
        "term_name": "2025-2026 term 2",
        "term_starts": "2026-03-02",
        "grades": [
            {
                "course_id": "0803103",
                "course_name": "计算机网络",
                "category": "专业必修",
                "score": "78",
                "score_value": "78",
                "credits": "3.0",
                "grade_points": "8.40",
                "remarks": "",
            }
        ],
        "gpa": "2.80",
        **EXAMPLE_TAIL,
    },
    "NewSession": {
        "token": TOKEN,
        "student_id": STUDENT,
        "id": 7,
        "kind": "session",
        "system": "card",
        "label": "my phone",
        "client": None,
        "created_at": "2026-11-27T08:12:03+08:00",
        "last_used_at": "2026-11-27T08:12:03+08:00",
        "current": True,
    },
    "Sessions": {
        "student_id": STUDENT,
        "system": "card",
        "tokens": [
            {
                "id": 7,
                "kind": "session",
                "system": "card",
                "label": "my phone",
                "client": None,
                "created_at": "2026-11-27T08:12:03+08:00",
                "last_used_at": "2026-11-28T12:40:11+08:00",
                "current": True,
            }
        ],
    },
    "Revoked": {"student_id": STUDENT, "system": "card", "revoked": [7, 8]},
    "NewWatch": {
        "student_id": STUDENT,
        "watch": {
            "id": 3,
            "kind": "low_balance",
            "system": "card",
            "param": "20.00",
            "channel": "webhook",
            "target": "https://example.com/hooks/jnufm",
            "created_at": "2026-11-27T08:12:03+08:00",
            "last_polled_at": None,
            "failures": 0,
            "messages": [],
        },
        "secret": "Zb3dQk7c2mA1x9wq0VfLr8TnYp4sHj6uEo5iGk2aBcD",
    },
    "Watches": {
        "student_id": STUDENT,
        "system": "card",
        "watches": [
            {
                "id": 3,
                "kind": "low_balance",
                "system": "card",
                "param": "20.00",
                "channel": "webhook",
                "target": "https://example.com/hooks/jnufm",
                "created_at": "2026-11-27T08:12:03+08:00",
                "last_polled_at": "2026-11-28T12:40:11+08:00",
                "failures": 0,
                "messages": [
                    {
                        "status": "delivered",
                        "created_at": "2026-11-28T12:40:11+08:00",
                        "attempts": 1,
                    }
                ],
            }
        ],
    },
    "FeedToken": {
        "student_id": STUDENT,
        **EXAMPLE_TERM,
        "feed": "all",
        "token": TOKEN,
        "path": f"/v1/calendar/{TOKEN}.ics",
        "url": f"http://127.0.0.1:8000/v1/calendar/{TOKEN}.ics",
    },
    "LegacyBookSearch": {
        "data": [
            {
                "title": "实用数据结构概论",
                "url": BOOK_RECORD_URL,
                "status": "可借",
                "detail": "过刊阅览室 TP311.12/421 在架上 过刊阅览室 TP311.12/421 在架上",
                "author": "何晓明主编",
                "publish": "北京 : 人民邮电出版社, 2013.01",
                "size": "844页 : 图 ; 21cm",
                "year": "2013",
                "position": ["过刊阅览室 TP311.12/421 在架上", "过刊阅览室 TP311.12/421 在架上"],
                "checkout": 1,
                "lookup": 1,
                "isbn": BOOK_ISBN,
                "image": f"http://127.0.0.1:8000/isbn/image/{BOOK_ISBN}",
                "douban": f"http://book.douban.com/isbn/{BOOK_ISBN}/",
            }
        ],
        "version": 1.0,
    },
    "LibrarySearch": {
        "campus": "main",
        "query": "数据结构",
        "page": 1,
        "per_page": 12,
        "total": 109,
        "pages": 10,
        "available_only": False,
        "books": [EXAMPLE_BOOK, EXAMPLE_LOANED],
        "links": {
            "self": "/v1/library/search?q=%E6%95%B0%E6%8D%AE%E7%BB%93%E6%9E%84&page=1&campus=main",
            "next": "/v1/library/search?q=%E6%95%B0%E6%8D%AE%E7%BB%93%E6%9E%84&page=2&campus=main",
            "prev": None,
        },
        **EXAMPLE_TAIL,
    },
    "LibraryRecord": {
        "id": BOOK,
        "campus": "main",
        "title": "实用数据结构概论",
        "author": "何晓明主编",
        "publisher": "北京 : 人民邮电出版社, 2013.01",
        "isbn": BOOK_ISBN,
        "call_number": "TP311.12/421",
        "description": "844页 : 图 ; 21cm",
        "notes": "本书介绍数据结构的基本概念、方法与应用。",
        "fields": [
            {"label": "题名", "value": "实用数据结构概论 / 何晓明主编"},
            {"label": "主要责任者", "value": "何晓明主编"},
            {"label": "出版资料", "value": "北京 : 人民邮电出版社, 2013.01"},
            {"label": "载体形态", "value": "844页 : 图 ; 21cm"},
            {"label": "标准号", "value": "ISBN 978-7-115-69241-2 : CNY59.00"},
            {"label": "附注", "value": "本书介绍数据结构的基本概念、方法与应用。"},
            {"label": "附注", "value": "中文图书"},
        ],
        "holdings": [SHELF, SHELF],
        "available": True,
        **EXAMPLE_TAIL,
    },
    "AccountSignup": {"version": 1.0, "status": 0, "token": TOKEN},
    "AccountLogin": {"version": 1.0, "status": 0, "token": TOKEN},
    "AccountPasswordReset": {"version": 1.0, "status": "Password reset success"},
    "AccountBinding": {"version": 1.0, "status": 0},
    "AccountDone": {"version": 1.0, "status": 0},
    "AccountUsername": {"version": 1.0, "status": 0, "username": "beordle"},
    "AccountProfile": {
        "version": 1.0,
        "status": 0,
        "nickname": "beordle",
        "realname": "张三",
        "sex": "男",
        "signature": "jnu.fm",
        "avatar": f"/uploads/{PICTURE}.png",
        "background": "",
    },
    "AccountPicture": {"version": 1.0, "status": 0, "url": f"/uploads/{PICTURE}.png"},
    "AccountSync": {
        "version": 1.0,
        "status": 0,
        "data": {
            "username": "beordle",
            "jwcid": STUDENT,
            "nickname": "beordle",
            "realname": "张三",
            "sex": "男",
            "signature": "jnu.fm",
            "avatar": f"/uploads/{PICTURE}.png",
            "background": "",
        },
    },
    "Version2013": {"version": 1},
    "Health": {
        "status": "ok",
        "worker": 0,
        "pid": 4242,
        "generation": 1,
        "version": "0.1.0",
        "mode": "production",
    },
    "Readiness": {
        "ready": True,
        "degraded": False,
        "database": "ok",
        "migrations": "current",
        "writes": "ok",
        "deferred_writes": 0,
        "school": {
            "card": "closed",
            "academic": "closed",
            "library": "closed",
            "library_zhuhai": "closed",
            "covers": "closed",
        },
        "draining": False,
        "worker": 0,
    },
    "Dashboard": {
        "window_s": 9.8,
        "requests_per_s": 12.4,
        "requests_total": 5120,
        "in_flight": 1,
        "cache_hit_ratio": 0.94,
        "latency_ms": {"p50": 0.8, "p99": 61.0},
        "school": [
            {
                "system": "card",
                "requests_per_s": 0.6,
                "failures_per_s": 0.0,
                "in_flight": 0.3,
                "budget": 2,
                "waiting": 0,
                "breaker": "closed",
            }
        ],
        "clients": [
            {"client": "wechat-bot", "school_requests": 812, "school_requests_per_s": 0.4},
            {"client": "anonymous", "school_requests": 233, "school_requests_per_s": 0.2},
        ],
        "watches": {
            "live": 1840,
            "polls_per_min": 42.0,
            "outbox_depth": 3,
            "given_up": 12,
            "delivered_per_min": 6.5,
            "retries_per_min": 0.4,
            "failures_per_min": 0.0,
        },
        "lockouts": [
            {
                "scope": "student",
                "who": "card:152b03bd8a51",
                "wrong": 5,
                "allowed": 5,
                "until": "2026-11-27T00:40:29+00:00",
            }
        ],
        "unreadable_pages": [
            {
                "id": 3,
                "system": "academic",
                "page": "login",
                "last_seen": "2026-11-27T00:41:02+00:00",
                "seen": 14,
                "reason": "the login answer is neither the login form nor a logged-in page",
            }
        ],
        "workers": {"count": 2, "live": [{"worker": 0, "pid": 4242, "generation": 1}]},
        "answered_by": {"worker": 0, "generation": 1},
    },
}
ICS_EXAMPLE = (
    "BEGIN:VCALENDAR\r\nPRODID:-//jnufm//calendar//EN\r\nVERSION:2.0\r\n"
    "X-WR-CALNAME:Classes 2026-2027 term 1\r\nBEGIN:VEVENT\r\n...\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)
BOOK_PAGE_EXAMPLE = (
    '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
    "<title>实用数据结构概论 · jnufm</title>\n"
    '<link rel="stylesheet" href="/static/style.css">\n</head>\n<body>\n<main class="book">\n'
    '<p class="where">暨南大学图书馆</p>\n<h1>实用数据结构概论</h1>\n'
    f'<img class="cover" src="/isbn/image/{BOOK_ISBN}" alt="封面 cover" width="67" height="97">\n'
    "<dl>\n<dt>题名</dt><dd>实用数据结构概论 / 何晓明主编</dd>\n...\n</dl>\n"
    "<h2>馆藏 Copies</h2>\n<table>\n...\n"
    '<tr class="available"><td>过刊阅览室</td><td>TP311.12/421</td><td>在架上</td></tr>\n'
    "...\n</table>\n</main>\n</body>\n</html>\n"
)
METRICS_EXAMPLE = (
    "# HELP jnufm_http_requests_total HTTP requests answered, by route pattern, method and "
    "status code.\n# TYPE jnufm_http_requests_total counter\n"
    'jnufm_http_requests_total{method="GET",route="/v1/card/balance",status="200"} 42.0\n'
)
