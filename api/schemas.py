"""The answers' schemas, as /openapi.json publishes them under `components.schemas`, and
their examples.

The schemas are generated from the answer models (api/answers/): the models the handlers
build are the one source of what an answer holds. An operation refers to its answer by
`ref("Name")`. Examples are real answers of the bundled simulator; each validates with
its model (tests/unit/test_answers_*.py).
"""

from __future__ import annotations

import base64
from typing import Any

from api.answers import ANSWERS
from api.answers.schema import Schema as Schema
from api.answers.schema import components


def ref(name: str) -> Schema:
    """A reference to the component schema `name`."""
    return {"$ref": f"#/components/schemas/{name}"}


COMPONENTS: dict[str, Schema] = components(ANSWERS)

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
        "wechat": [],
    },
    "Revoked": {"student_id": STUDENT, "system": "card", "revoked": [7, 8], "wechat": []},
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
