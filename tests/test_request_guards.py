"""What every request passes whatever its route (handlers/guards.py, runtime/worker.py):
the body size limit and slow-header and slow-body timeouts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from handlers.base import AppDeps
from tests.conftest import make_settings, serve_app
from tests.procs import Proc

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
