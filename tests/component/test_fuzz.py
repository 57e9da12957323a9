"""Property-based fuzzing of every route, over real HTTP, against the real app, simulator
and SQLite: whatever a client sends, the answer is never a 5xx other than the school's
documented 502/503/504, every error is JSON with `error.code` and `error.message`,
every answer says `nosniff`, and no refusal carries Server-Timing.

Requests mix every parameter the handlers read (query, JSON and form bodies, Basic
auth, X-Request-Id, Cache-Control, X-Forwarded-For, Range and conditional headers
for static files), valid values and hostile ones, known and invented methods, and
paths generated from the route patterns themselves. Runs are derandomized (the same
examples every run); JNUFM_FUZZ_EXAMPLES=2000 JNUFM_FUZZ_RANDOM=1 explores further.

Wrong passwords lock a student out (429): expected, not a failure.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from handlers import routes
from handlers.base import AppDeps
from harness.processes import Proc
from tests.conftest import make_settings, serve_app

STUDENT, PASSWORD = "2012052690", "052690"
SCHOOL_ERRORS = {
    502: {"school_unavailable", "school_page_unreadable", "school_session_lost"},
    503: {"school_busy", "school_unavailable", "storage_unavailable"},
    504: {"school_timeout"},
}
EXAMPLES = int(os.environ.get("JNUFM_FUZZ_EXAMPLES", "500"))

# --- strategies -------------------------------------------------------------------
# Weights are set with repeated entries of sampled_from: one_of gives each branch an
# equal share, which would spend half the run on invented methods.


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn in proportion to its weight."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


# What a header value may hold on the wire (no CR, LF, NUL or other controls).
header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
).map(str.strip)
short_text = st.text(max_size=30)
digits = st.from_regex(r"[0-9]{0,20}", fullmatch=True)
student_ids = weighted(
    (3, st.just(STUDENT)), (2, st.from_regex(r"20[01][0-9]{7}", fullmatch=True)), (1, digits)
)
passwords = weighted(
    (3, st.just(PASSWORD)), (2, st.from_regex(r"[0-9]{6}", fullmatch=True)), (1, short_text)
)
dates = weighted(
    (2, st.dates().map(lambda d: d.isoformat())),
    (2, st.sampled_from(["", "2026-11-27", "2013-02-30", "yesterday", "20130801", "x" * 100])),
    (1, short_text),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | short_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(short_text, inner, max_size=3),
    max_leaves=8,
)
PARAMS = ["stuid", "password", "student_id", "start", "end", "fresh", "seconds", "passwd"]
query_values = weighted(
    (2, student_ids), (2, passwords), (2, dates), (1, st.sampled_from(["1", "yes", "0"]))
)

ODD_PATHS = [
    "//",
    "/..",
    "/static/",
    "/static/..%2f..%2fconfig.yaml",
    "/static/../../config.yaml",
    "/static/%00",
    "/static/a%00b",
    "/static/style.css%00",
    "/static/style.css",
    "/favicon.ico",
    "/card/rest/",
    "/v1/card/balance/../balance",
    "/%ff%fe",
    "/static/" + "a" * 300,
    "/favicon.ico/",
    "/v1//card/balance",
]


def paths(patterns: list[str]) -> st.SearchStrategy[str]:
    """A path from a route pattern (its groups filled in at random), or an odd one."""
    # The card routes, where the parameters are read, three times as often as the others.
    weighted_patterns = patterns + [p for p in patterns if "card" in p] * 2
    from_route = st.sampled_from(weighted_patterns).flatmap(
        lambda p: st.from_regex(re.compile(p + r"\Z"), fullmatch=True)
    )
    anything = st.text(max_size=40).map(lambda t: "/" + t)
    return weighted(
        (12, from_route.map(lambda t: quote(t, safe="/%"))),
        (3, st.sampled_from(ODD_PATHS)),
        (1, anything.map(lambda t: quote(t, safe="/%"))),
    )


@st.composite
def queries(draw: st.DrawFn) -> str:
    names = weighted((4, st.sampled_from(PARAMS)), (1, short_text))
    pairs = []
    if draw(st.booleans()):  # the 2013 API's credentials
        pairs += [("stuid", draw(student_ids)), ("password", draw(passwords))]
    text = urlencode(pairs + draw(st.lists(st.tuples(names, query_values), max_size=3)))
    extra = ["", "", "", "", "&password=%ff", "&stuid=%", "&=&&", "&fresh", "&start=%00"]
    return text + draw(st.sampled_from(extra))


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def latin1(text: str) -> bytes:
    return text.encode("latin-1")


authorizations = weighted(
    (4, st.builds(basic, student_ids, passwords)),
    (1, st.builds(basic, short_text, short_text)),
    (1, header_text.map(lambda t: b"Basic " + latin1(t))),
    (1, header_text.map(latin1)),
    (
        2,
        st.sampled_from(
            [
                b"Bearer token",
                b"Basic",
                b"Basic ",
                b"basic " + basic(STUDENT, PASSWORD)[6:],
                b"Basic \xe9\xe9\xe9\xe9",
                b"Basic " + "学生:密码".encode(),
                basic(STUDENT, PASSWORD) + b"\xff",
            ]
        ),
    ),
)
forwarded = weighted(
    (3, st.lists(st.ip_addresses().map(str), min_size=1, max_size=3).map(", ".join)),
    (1, header_text),
)


@st.composite
def headers(draw: st.DrawFn) -> dict[bytes, bytes]:
    optional: dict[str, st.SearchStrategy[bytes]] = {
        "Authorization": authorizations,
        "X-Request-Id": header_text.map(latin1),
        "Cache-Control": weighted(
            (2, st.sampled_from(["no-cache", "max-age=0"])), (1, header_text)
        ).map(latin1),
        "X-Forwarded-For": forwarded.map(latin1),
        "Range": weighted(
            (2, st.sampled_from(["bytes=0-", "bytes=-1", "bytes=5-1", "bytes=99999-", "bytes=-0"])),
            (1, header_text),
        ).map(latin1),
        "If-Modified-Since": weighted(
            (2, st.sampled_from(["Thu, 01 Jan 2099 00:00:00 GMT", "Thu, 01 Jan 1970 GMT"])),
            (1, header_text),
        ).map(latin1),
        "If-None-Match": weighted((1, st.just("*")), (1, header_text)).map(latin1),
    }
    # (HTTP clients cannot send a value that starts or ends with white space.)
    return {
        name.encode(): draw(values).strip(b" \t")
        for name, values in optional.items()
        if draw(st.booleans())
    }


JSON = b"application/json"
FORM = b"application/x-www-form-urlencoded"
credentials = st.fixed_dictionaries(
    {},
    optional={
        "student_id": weighted((4, student_ids), (1, json_values)),
        "password": weighted((4, passwords), (1, json_values)),
        "start": dates,
        "end": dates,
    },
)
deep = st.sampled_from([10, 999, 1001, 5000, 30000]).flatmap(
    lambda depth: st.sampled_from([b"[" * depth, b"[" * depth + b"]" * depth, b'{"a":' * depth])
)
form = st.lists(st.tuples(st.sampled_from(PARAMS), query_values), max_size=4).map(
    lambda pairs: urlencode(pairs).encode()
)
# (Content-Type, body): mostly what the handlers read, sometimes hostile or mismatched.
bodies: st.SearchStrategy[tuple[bytes | None, bytes | None]] = weighted(
    (2, st.just((None, None))),
    (4, st.tuples(st.just(JSON), credentials.map(lambda d: json.dumps(d).encode()))),
    (1, st.tuples(st.just(JSON), json_values.map(lambda v: json.dumps(v).encode()))),
    (2, st.tuples(st.just(JSON), deep)),
    (2, st.tuples(st.just(FORM), form)),
    (1, st.tuples(st.just(FORM), st.sampled_from([b"password=%ff", b"%", b"a=1&" * 2000]))),
    (1, st.tuples(st.just(b"multipart/form-data; boundary=x"), st.binary(max_size=100))),
    (1, st.tuples(header_text.map(latin1), st.binary(max_size=300))),
)
methods = weighted(
    (8, st.just("GET")),
    (8, st.just("POST")),
    (3, st.sampled_from(["HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"])),
    (1, st.from_regex(r"[A-Z]{1,12}", fullmatch=True)),
)


@dataclass
class Call:
    method: str
    path: str
    query: str
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: tuple[bytes | None, bytes | None] = (None, None)


# --- the property -----------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path, sim: Proc) -> AsyncIterator[tuple[httpx.AsyncClient, AppDeps]]:
    """The app behind a trusted proxy on loopback, so X-Forwarded-For picks the client."""
    app_settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        sim.url,
        **{"limits.trusted_proxies": ["127.0.0.1/32", "::1/128"]},
    )
    async with serve_app(app_settings) as pair:
        yield pair


def route_patterns() -> list[str]:
    ops_deps = AppDeps(card=None, retry_after_s=1)  # type: ignore[arg-type]
    return [rule[0] for rule in routes(ops_deps)]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("JNUFM_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    call=st.builds(
        Call,
        method=methods,
        path=paths(route_patterns()),
        query=queries(),
        headers=headers(),
        body=bodies,
    )
)
async def test_no_input_gets_a_5xx_or_a_non_json_error(
    served: tuple[httpx.AsyncClient, AppDeps], call: Call
) -> None:
    client, _ = served
    raw_path = call.path.encode("ascii") + (
        b"?" + call.query.encode("ascii") if call.query else b""
    )
    url = client.base_url.copy_with(raw_path=raw_path)
    content_type, body = call.body
    headers = call.headers | ({b"Content-Type": content_type} if content_type is not None else {})
    resp = await client.request(call.method, url, headers=headers, content=body)
    status = resp.status_code
    event(f"{call.method if call.method in ('GET', 'POST') else 'other'} {status}")
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", (status, resp.headers)
    if status < 400:
        return
    assert "Server-Timing" not in resp.headers
    if call.method == "HEAD":
        assert resp.content == b""
        return
    assert resp.headers["Content-Type"].startswith("application/json"), (status, resp.text)
    error = resp.json()["error"]
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    if status >= 500:
        assert error["code"] in SCHOOL_ERRORS.get(status, set()), (status, error)
