"""What every request passes whatever its route (handlers/guards.py, runtime/worker.py):
the body size limit, slow-header and slow-body timeouts, and security headers."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from handlers.base import AppDeps
from harness.processes import Proc
from tests.conftest import make_settings, serve_app

LIMIT = 4096
ROUTES = [
    "/v1/card/balance",
    "/card/rest",
    "/healthz",
    "/metrics",
    "/",
    "/static/style.css",
    "/index.html",
    "/no/such/thing",
]


@pytest.fixture
async def served(tmp_path: Path, sim: Proc) -> AsyncIterator[tuple[httpx.AsyncClient, AppDeps]]:
    """The app with a 4 KiB body limit and half-second header and body timeouts."""
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        sim.url,
        **{"http.max_body_bytes": LIMIT, "http.header_timeout_s": 0.5, "http.body_timeout_s": 0.5},
    )
    async with serve_app(settings) as pair:
        yield pair


async def exchange(client: httpx.AsyncClient, *parts: bytes) -> bytes:
    """Send parts over one raw connection, then read until the server closes it."""
    url = client.base_url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
        async with asyncio.timeout(15):
            return await reader.read()
    finally:
        writer.close()


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("path", ROUTES)
async def test_a_declared_oversize_body_is_refused_before_it_is_sent(
    served: tuple[httpx.AsyncClient, AppDeps], path: str
) -> None:
    client, _ = served
    # Only the headers are sent: an answer proves the server did not wait for the body.
    answer = await exchange(
        client,
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000000000\r\n\r\n".encode(),
    )
    status, headers, body = parse(answer)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"
    assert str(LIMIT) in json.loads(body)["error"]["message"]
    assert headers["connection"] == "close"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "length",
    [
        "8Z_X/E&",  # what a fuzzer sent: Tornado answered a bare 400, no JSON
        "12, 13",  # unequal copies
        "-1",
        "\u00b2",  # a digit to str.isdigit, not to int()
        "1e3",
        "",
        "99999999999999999999999999",
        "5\r\nTransfer-Encoding: chunked",  # both: where the body ends is ambiguous
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_body_length_that_cannot_be_read_gets_a_json_400(
    served: tuple[httpx.AsyncClient, AppDeps], length: str, method: str
) -> None:
    client, _ = served
    answer = await exchange(
        client,
        f"{method} /v1/timetable?year=2026&term=1 HTTP/1.1\r\nHost: t\r\n"
        f"Authorization: Basic MjAxMjA1MjY5MDowNTI2OTA=\r\nContent-Length: {length}\r\n\r\n"
        "abcde".encode(),
    )
    status, headers, body = parse(answer)
    assert status == 400, answer[:300]
    error = json.loads(body)["error"]
    assert error["code"] == "bad_request"
    assert "Content-Length" in error["message"]
    assert headers["content-type"].startswith("application/json")
    assert headers["x-request-id"]
    assert headers["connection"] == "close"
    # The server goes on serving.
    assert (await client.get("/healthz")).status_code == 200


async def test_a_chunked_body_is_cut_off_at_the_limit(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    chunk = b"x" * 1000
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    # One byte over the limit, and the body never ends: the server answers anyway.
    answer = await exchange(
        client,
        b"POST /v1/card/balance HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        framed * (LIMIT // len(chunk)),
        b"%x\r\n%s\r\n" % (LIMIT % len(chunk) + 1, b"y" * (LIMIT % len(chunk) + 1)),
    )
    status, _, body = parse(answer)
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


async def test_bodies_within_the_limit_are_served(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    padded = {"student_id": "2012052690", "password": "052690", "pad": "p" * (LIMIT - 100)}
    assert len(json.dumps(padded)) <= LIMIT
    resp = await client.post("/v1/card/balance", json=padded)
    assert resp.status_code == 200, resp.text

    async def pieces() -> AsyncIterator[bytes]:
        yield json.dumps(padded).encode()

    chunked = await client.post(
        "/v1/card/balance",
        content=pieces(),  # no length: sent chunked
        headers={"Content-Type": "application/json"},
    )
    assert chunked.request.headers["Transfer-Encoding"] == "chunked"
    assert chunked.status_code == 200, chunked.text
    form = await client.post(
        "/v1/card/balance", data={"student_id": "2012052690", "password": "052690"}
    )
    assert form.status_code == 200, form.text


async def test_slow_headers_and_slow_bodies_are_cut(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    # Headers that never end, a body that never comes: closed without an answer.
    assert await exchange(client, b"GET /healthz HTTP/1.1\r\nHost: t\r\n") == b""
    assert await exchange(client, b"") == b""
    slow_body = await exchange(
        client,
        b"POST /v1/card/balance HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{",
    )
    assert slow_body == b""
    assert (await client.get("/healthz")).status_code == 200


async def test_every_answer_says_nosniff(served: tuple[httpx.AsyncClient, AppDeps]) -> None:
    client, _ = served
    answers = [
        await client.get("/healthz"),
        await client.get("/v1/card/balance"),
        await client.get("/v1/card/transactions", params={"start": "not a date"}),
        await client.get("/no/such/thing"),
        await client.request("FOOBAR", "/healthz"),
        await client.get("/static/style.css"),
        await client.get("/static/nothing.css"),
        await client.get("/favicon.ico"),
        await client.get("/index.html"),
        await client.get("/metrics"),
    ]
    assert [r.status_code for r in answers] == [200, 401, 400, 404, 405, 200, 404, 200, 301, 200]
    for resp in answers:
        assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.url


async def test_the_index_page_has_a_strict_policy_and_renders_under_it(
    served: tuple[httpx.AsyncClient, AppDeps],
) -> None:
    client, _ = served
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    policy = {
        part.split()[0]: part.split()[1:]
        for part in page.headers["Content-Security-Policy"].split(";")
    }
    assert policy["default-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    html = page.text
    # Nothing inline: the policy would block it (scripts only by src, with no body).
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html, re.I)
    assert not re.search(r"<script(?![^>]*\ssrc=\"/[^\"]*\"[^>]*>\s*</script>)", html, re.I)
    # Everything it loads comes from this server, with a type that matches its use.
    loaded = re.findall(r"<(?:link|script)[^>]*(?:href|src)=\"([^\"]+)\"", html)
    assert "/static/style.css" in loaded
    for href in loaded:
        assert href.startswith("/") and not href.startswith("//"), href
        resp = await client.get(href)
        assert resp.status_code == 200, href
    css = await client.get("/static/style.css")
    assert css.headers["Content-Type"].startswith("text/css")
    assert "font" in css.text
