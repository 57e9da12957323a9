"""HTTP's conventions on every route, over real HTTP against the real app, simulator and
SQLite: HEAD is GET without its body, a 405 says `Allow`, a body of a type the route
does not read is a 415, the password-free routes (and only they) answer CORS for the
origins of `api.cors_origins`, and calendar feeds and library answers carry an ETag
that `If-None-Match` turns into a 304."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.routes import ROUTES
from handlers import routes
from handlers.base import AppDeps, allowed_methods
from harness.processes import Proc
from settings import ConfigError
from tests.conftest import make_settings, serve_app

STUDENT, PASSWORD = "2012052690", "052690"
ORIGIN = "https://app.example.edu"
TERM = {"year": "2026", "term": "1"}
# The concrete paths of the patterns the API description leaves out (static files,
# the redirect, WeChat's callback URLs).
EXCLUDED_PATHS = {
    r"/()": "/",
    r"/(favicon\.ico)": "/favicon.ico",
    r"/static/(.*)": "/static/style.css",
    r"/index\.html": "/index.html",
    r"/wechat": "/wechat",
    r"/wechat/([a-z][a-z0-9_-]{0,31})": "/wechat/main",
}
# Answers whose body changes from one request to the next (counters, rates).
CHANGING = {"/metrics", "/ops/dashboard.json"}


def concrete_paths() -> dict[str, str]:
    """Each route pattern's path with its parameters' examples."""
    paths = dict(EXCLUDED_PATHS)
    for route in ROUTES:
        path = route.path
        for param in route.path_params:
            path = path.replace("{" + param.name + "}", param.example)
        paths[route.pattern] = path
    return paths


def served_routes(deps: AppDeps) -> list[tuple[str, type, str]]:
    """(pattern, handler class, a concrete path) of every route the app serves."""
    paths = concrete_paths()
    out = []
    for pattern, handler, _ in routes(deps):
        path = paths[pattern]
        assert re.fullmatch(pattern, path), (pattern, path)
        out.append((pattern, handler, path))
    return out


@pytest.fixture
async def served(tmp_path: Path, sim: Proc) -> AsyncIterator[tuple[httpx.AsyncClient, AppDeps]]:
    """The app with one origin allowed to read its password-free answers."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        sim.url,
        **{"api.cors_origins": [ORIGIN], "api.cors_max_age_s": 900},
    )
    async with serve_app(settings) as pair:
        yield pair


async def feed_path(client: httpx.AsyncClient) -> str:
    """A calendar feed URL made for the simulated student."""
    made = await client.post("/v1/calendar/tokens", auth=(STUDENT, PASSWORD), params=TERM)
    assert made.status_code == 201, made.text
    path: str = made.json()["path"]
    return path


async def book_url(client: httpx.AsyncClient) -> str:
    """`/web/book`'s `url` of a record the simulated catalogue has."""
    found = await client.get("/book/search/engine", params={"query": "数据结构"})
    assert found.status_code == 200, found.text
    record = found.json()["data"][0]["url"].encode()
    return base64.urlsafe_b64encode(record).decode().rstrip("=")


def same_but_the_body(get: httpx.Response, head: httpx.Response, stable: bool = True) -> None:
    """HEAD's answer is GET's: status, header names, Content-Type and (for an answer that
    does not change between requests) Content-Length and ETag; and no body."""
    where = (str(get.request.url), get.status_code, head.status_code)
    assert head.status_code == get.status_code, where
    assert head.content == b"", where
    assert set(head.headers) == set(get.headers), (where, set(head.headers) ^ set(get.headers))
    assert head.headers.get("Content-Type") == get.headers.get("Content-Type"), where
    if stable:
        assert head.headers.get("Content-Length") == get.headers.get("Content-Length"), where
        assert head.headers.get("ETag") == get.headers.get("ETag"), where


# --- HEAD ---------------------------------------------------------------------------------


async def test_head_is_get_without_the_body_on_a_route_of_each_family(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    auth = (STUDENT, PASSWORD)
    feed = await feed_path(client)
    url = await book_url(client)
    samples: list[tuple[str, dict[str, Any]]] = [
        ("/card/rest", {"params": {"stuid": STUDENT, "password": PASSWORD}}),
        ("/class/get", {"params": {"user": STUDENT, "password": PASSWORD, **TERM}}),
        ("/v1/card/balance", {"auth": auth}),
        ("/v1/timetable", {"auth": auth, "params": TERM}),
        ("/v1/timetable.ics", {"auth": auth, "params": TERM}),
        (feed, {}),
        ("/v1/sessions", {"auth": auth}),
        ("/book/search/engine", {"params": {"query": "数据结构"}}),
        ("/web/book", {"params": {"url": url}}),
        ("/isbn/image/9787115692412", {}),
        ("/v1/library/search", {"params": {"q": "数据结构"}}),
        ("/version", {}),
        ("/healthz", {}),
        ("/openapi.json", {}),
        ("/", {}),
        ("/favicon.ico", {}),
        ("/static/style.css", {}),
        ("/index.html", {}),
        ("/v1/card/balance", {}),  # an error answer too: 401 without credentials
    ]
    for path, request in samples:
        # Twice first: the answer then comes from the cache, as HEAD's will.
        for _ in range(2):
            get = await client.get(path, **request)
        head = await client.head(path, **request)
        assert get.status_code < 500, (path, get.text)
        same_but_the_body(get, head)
    ok = await client.head("/v1/card/balance", auth=auth)
    assert ok.status_code == 200 and int(ok.headers["Content-Length"]) > 0


async def test_every_get_route_answers_head_as_get(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    """The property over every route of handlers.routes() that answers GET, with the
    parameters' examples and no credentials (many are refusals: the same holds)."""
    client, deps = served
    checked = 0
    for _, handler, path in served_routes(deps):
        if "GET" not in allowed_methods(handler):
            continue
        for _ in range(2):  # the second from the cache, as HEAD's will be
            get = await client.get(path)
        head = await client.head(path)
        same_but_the_body(get, head, stable=path not in CHANGING)
        checked += 1
    assert checked > 40


# --- 405 and Allow ------------------------------------------------------------------------


async def test_every_405_says_which_methods_the_route_answers(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, deps = served
    for pattern, handler, path in served_routes(deps):
        allowed = allowed_methods(handler)
        assert "HEAD" in allowed or "GET" not in allowed, pattern
        for method in ("PATCH", "PUT", "BREW"):
            if method in allowed:
                continue
            resp = await client.request(method, path)
            assert resp.status_code == 405, (pattern, method, resp.text)
            assert resp.headers["Allow"] == ", ".join(allowed), (pattern, method)
            assert resp.json()["error"]["code"] == "method_not_allowed", pattern
    # A route of the clean API: GET, HEAD and POST; the feed URL adds DELETE and OPTIONS.
    resp = await client.delete("/v1/card/balance")
    assert resp.headers["Allow"] == "GET, HEAD, POST"
    resp = await client.put("/v1/calendar/" + "a" * 43 + ".ics")
    assert resp.headers["Allow"] == "GET, HEAD, DELETE, OPTIONS"


# --- 415 ----------------------------------------------------------------------------------


async def test_a_body_of_a_type_the_route_does_not_read_is_415_on_every_post_route(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, deps = served
    checked = 0
    for pattern, handler, path in served_routes(deps):
        if "POST" not in allowed_methods(handler) or getattr(handler, "BODY_TYPES", None) is None:
            continue  # WeChat's callback reads its XML whatever the type says
        for content_type in ("text/plain", "application/xml", None):
            headers = {"Content-Type": content_type} if content_type else {}
            resp = await client.post(path, content=b"stuid=1&password=2", headers=headers)
            assert resp.status_code == 415, (pattern, content_type, resp.text)
            assert resp.json()["error"]["code"] == "unsupported_media_type", pattern
        checked += 1
    assert checked > 15
    # What the routes read still goes through: a form on a 2013 route, JSON on /v1/.
    form = {"stuid": STUDENT, "password": PASSWORD}
    assert (await client.post("/card/rest", data=form)).status_code == 200
    body = {"student_id": STUDENT, "password": PASSWORD}
    assert (await client.post("/v1/card/balance", json=body)).status_code == 200
    # A charset beside the type is the same type.
    charset = {"Content-Type": "application/json; charset=utf-8"}
    assert (await client.post("/v1/card/balance", json=body, headers=charset)).status_code == 200
    # A wrong type on a route that does not answer POST is its 405, not a 415.
    resp = await client.post("/card/today", content=b"x", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 405
    # A DELETE's body is held to the same rule.
    resp = await client.request(
        "DELETE", "/v1/sessions", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert resp.status_code == 415


# --- CORS ---------------------------------------------------------------------------------


async def test_cors_only_on_password_free_routes_and_for_a_listed_origin(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, deps = served
    listed = {"Origin": ORIGIN}
    search = await client.get("/v1/library/search", params={"q": "数据结构"}, headers=listed)
    assert search.status_code == 200
    assert search.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in search.headers.get_list("Vary", split_commas=True)
    assert "ETag" in search.headers["Access-Control-Expose-Headers"]
    # Another origin: nothing to read, and caches told the answer depends on Origin.
    other = await client.get(
        "/v1/library/search", params={"q": "数据结构"}, headers={"Origin": "https://evil.example"}
    )
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Origin" in other.headers.get_list("Vary", split_commas=True)
    # A route with a password: never, even for a listed origin and the right password.
    card = await client.get("/v1/card/balance", auth=(STUDENT, PASSWORD), headers=listed)
    assert card.status_code == 200
    assert "Access-Control-Allow-Origin" not in card.headers
    # Every route: CORS exactly where the handler is one of the password-free ones.
    free = set()
    for pattern, handler, path in served_routes(deps):
        resp = await client.get(path, headers=listed)
        answers_cors = "Access-Control-Allow-Origin" in resp.headers
        assert answers_cors == getattr(handler, "cross_origin", False), (pattern, resp.status_code)
        if answers_cors:
            free.add(pattern)
    assert free == {
        r"/book/search/([^/]+)",
        r"/web/book",
        r"/isbn/image/([0-9Xx-]{10,17})",
        r"/v1/library/search",
        r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})",
        r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics",
        r"/healthz",
        r"/openapi\.json",
    }
    # An error of a password-free route is readable too (the page can show it).
    refused = await client.get("/v1/library/search", headers=listed)
    assert refused.status_code == 400
    assert refused.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_the_preflight_names_get_and_head_for_a_listed_origin_only(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    asking = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "if-none-match",
    }
    resp = await client.options("/v1/library/search", headers=asking)
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert resp.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert resp.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    allowed_headers = resp.headers["Access-Control-Allow-Headers"].lower()
    assert "if-none-match" in allowed_headers and "authorization" not in allowed_headers
    assert resp.headers["Access-Control-Max-Age"] == "900"
    # A path argument (the feed URL's token, an ISBN) changes nothing.
    cover = await client.options("/isbn/image/9787115692412", headers=asking)
    assert cover.status_code == 204
    assert cover.headers["Access-Control-Allow-Origin"] == ORIGIN
    feed = await client.options("/v1/calendar/" + "a" * 43 + ".ics", headers=asking)
    assert feed.headers["Access-Control-Allow-Methods"] == "GET, HEAD"  # never DELETE
    # Another origin: the methods, and nothing a browser would let the page use.
    other = await client.options(
        "/v1/library/search", headers={**asking, "Origin": "https://evil.example"}
    )
    assert other.status_code == 204
    assert other.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert not [h for h in other.headers if h.lower().startswith("access-control-")]
    # A route with a password has no preflight: a page cannot send it credentials.
    card = await client.options("/v1/card/balance", headers=asking)
    assert card.status_code == 405
    assert "Access-Control-Allow-Origin" not in card.headers


async def test_no_cors_unless_configured_and_any_origin_with_a_star(
    tmp_path: Path, sim: Proc
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}"
    listed = {"Origin": ORIGIN}
    async with serve_app(make_settings(db, sim.url)) as (client, _):
        resp = await client.get("/openapi.json", headers=listed)
        assert resp.status_code == 200
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]
        assert "Origin" not in resp.headers.get_list("Vary", split_commas=True)
        preflight = await client.options("/openapi.json", headers=listed)
        assert preflight.status_code == 204
        assert "Access-Control-Allow-Origin" not in preflight.headers
    async with serve_app(make_settings(db, sim.url, **{"api.cors_origins": ["*"]})) as (
        client,
        _,
    ):
        resp = await client.get("/healthz", headers={"Origin": "https://any.example"})
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        card = await client.get("/v1/card/balance", auth=(STUDENT, PASSWORD), headers=listed)
        assert "Access-Control-Allow-Origin" not in card.headers


def test_an_origin_is_scheme_host_and_port() -> None:
    for wrong in ("app.example.edu", "https://app.example.edu/", "https://app.example.edu/x"):
        with pytest.raises(ConfigError, match="cors_origins"):
            make_settings(
                "sqlite+aiosqlite://", "http://127.0.0.1:1", **{"api.cors_origins": [wrong]}
            )


# --- ETag and 304 -------------------------------------------------------------------------


async def revalidated(
    client: httpx.AsyncClient,
    path: str,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """The answer, and the same request with its ETag answered 304 (GET and HEAD)."""
    first = await client.get(path, headers=headers, params=params)
    assert first.status_code == 200, first.text
    etag = first.headers["ETag"]
    held = {**(headers or {}), "If-None-Match": etag}
    for method in ("GET", "HEAD"):
        again = await client.request(method, path, headers=held, params=params)
        assert again.status_code == 304, (path, method, again.text)
        assert again.content == b""
        assert "Content-Length" not in again.headers and "Content-Type" not in again.headers
        assert again.headers["ETag"].removeprefix("W/") == etag.removeprefix("W/")
    other = await client.get(path, headers={**held, "If-None-Match": '"other"'}, params=params)
    assert other.status_code == 200 and other.content == first.content
    return first


async def test_calendar_feeds_are_kept_privately_and_revalidated(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    path = await feed_path(client)
    feed = await revalidated(client, path, {"Accept-Encoding": "identity"})
    assert re.fullmatch(r'"[^"]+"', feed.headers["ETag"])
    await revalidated(client, path, {"Accept-Encoding": "gzip"})
    assert re.fullmatch(r"private, max-age=[1-9][0-9]*", feed.headers["Cache-Control"])
    assert feed.headers["Content-Type"].startswith("text/calendar")


async def test_library_answers_have_an_etag_of_their_body(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    plain = {"Accept-Encoding": "identity"}
    legacy = await revalidated(client, "/book/search/engine", plain, {"query": "数据结构"})
    assert re.fullmatch(r'"[0-9a-f]{32}"', legacy.headers["ETag"])
    assert legacy.headers["Cache-Control"] == "public, no-cache"
    # /v1/'s body says where it came from: asked twice, it is the cache's from then on.
    v1 = {"q": "数据结构"}
    await client.get("/v1/library/search", params=v1)
    await revalidated(client, "/v1/library/search", plain, v1)
    # Compressed, the ETag is weak (other bytes); the client's copy still matches.
    gzip = {"Accept-Encoding": "gzip"}
    gzipped = await client.get("/v1/library/search", headers=gzip, params=v1)
    if gzipped.headers.get("Content-Encoding") == "gzip":
        assert gzipped.headers["ETag"].startswith('W/"')
    await revalidated(client, "/v1/library/search", gzip, v1)
    cover = await revalidated(client, "/isbn/image/9787115692412")
    assert cover.headers["Content-Type"].startswith("image/")
    url = await book_url(client)
    page = await revalidated(client, "/web/book", params={"url": url})
    assert page.headers["Content-Type"].startswith("text/html")
    # Answers with a student's data: no ETag, never stored.
    card = await client.get("/v1/card/balance", auth=(STUDENT, PASSWORD))
    assert "ETag" not in card.headers
    assert card.headers["Cache-Control"] == "no-store"
