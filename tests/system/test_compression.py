"""Large JSON answers go gzip-compressed to clients that accept it: the OpenAPI document
(compressed once per worker), and large answers as they are made."""

from __future__ import annotations

import gzip
import http.client
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tornado.httputil import HTTPHeaders

from harness.processes import Proc, jnufm_server
from leanweb import accepts_gzip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sim: Proc) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("compression")
    with jnufm_server(tmp, f"sqlite+aiosqlite:///{tmp / 'jnufm.sqlite3'}", sim.url, 1) as proc:
        yield proc


def fetch(
    server: Proc, path: str, encoding: str | None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, the body's bytes as sent): no client-side decoding."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {} if encoding is None else {"Accept-Encoding": encoding}
        connection.request(method, path, headers=headers)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def test_the_openapi_document_is_sent_compressed_when_accepted(server: Proc) -> None:
    status, plain_headers, plain = fetch(server, "/openapi.json", "identity")
    assert status == 200
    assert "content-encoding" not in plain_headers
    assert int(plain_headers["content-length"]) == len(plain) > 200_000
    assert "Accept-Encoding" in plain_headers["vary"]

    status, headers, packed = fetch(server, "/openapi.json", "gzip, deflate, br")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in headers["vary"]
    assert int(headers["content-length"]) == len(packed)
    assert len(packed) * 5 < len(plain)
    assert gzip.decompress(packed) == plain
    # The same bytes every time: compressed once per worker, not per answer.
    assert fetch(server, "/openapi.json", "gzip")[2] == packed


@pytest.mark.parametrize(
    ("encoding", "compressed"),
    [
        (None, False),
        ("identity", False),
        ("gzip;q=0", False),
        ("br, gzip;q=0, *;q=1", False),
        ("*", True),
        ("br;q=1.0, gzip;q=0.5", True),
        ("GZIP", True),
        ("x-gzip", True),
    ],
)
def test_accept_encoding_is_read_as_rfc_9110_says(
    server: Proc, encoding: str | None, compressed: bool
) -> None:
    status, headers, body = fetch(server, "/openapi.json", encoding)
    assert status == 200
    assert (headers.get("content-encoding") == "gzip") is compressed
    assert body.startswith(b"\x1f\x8b") is compressed


def test_a_large_answer_is_compressed_as_it_is_made(server: Proc) -> None:
    path = "/book/search/engine?query=Python"
    status, plain_headers, plain = fetch(server, path, None)
    assert status == 200
    assert len(plain) > 1024
    assert "content-encoding" not in plain_headers
    status, headers, packed = fetch(server, path, "gzip")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert len(packed) < len(plain)
    assert gzip.decompress(packed) == plain


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",  # too small to gain
        "/v1/card/balance",  # an error (401): small, and never compressed
        "/isbn/image/9787111213826",  # an image
    ],
)
def test_small_errors_and_images_are_sent_as_they_are(server: Proc, path: str) -> None:
    _, headers, body = fetch(server, path, "gzip")
    assert "content-encoding" not in headers
    assert not body.startswith(b"\x1f\x8b")


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("gzip", True),
        ("deflate, gzip", True),
        ("gzip;q=0.001", True),
        ("gzip; q=0", False),
        ("gzip;q=0.0", False),
        ("gzip;q=nonsense", False),
        ("*;q=0", False),
        ("deflate", False),
        ("", False),
    ],
)
def test_accepts_gzip(value: str, accepted: bool) -> None:
    assert accepts_gzip(HTTPHeaders({"Accept-Encoding": value})) is accepted


def test_the_threshold_and_level_are_configured(tmp_path: Path, sim: Proc) -> None:
    """api.gzip_min_bytes: 0 turns compression off."""
    db = f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}"
    with jnufm_server(tmp_path, db, sim.url, 1, api={"gzip_min_bytes": 0}) as proc:
        _, headers, body = fetch(proc, "/openapi.json", "gzip")
    assert "content-encoding" not in headers
    assert len(body) > 200_000


def test_a_calendar_feed_keeps_its_etag_meaning(server: Proc) -> None:
    """A compressed feed's ETag turns weak (other bytes than the strong tag named), and
    still answers 304 to a calendar app that sends it back."""
    made = httpx.post(
        server.url + "/v1/calendar/tokens",
        params={"year": 2026, "term": 1},
        auth=("2012052690", "052690"),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    path = made.json()["path"]
    _, plain_headers, plain = fetch(server, path, None)
    assert len(plain) > 1024
    assert not plain_headers["etag"].startswith("W/")
    status, headers, packed = fetch(server, path, "gzip")
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["etag"] == "W/" + plain_headers["etag"]
    assert gzip.decompress(packed) == plain
    again = httpx.get(
        server.url + path,
        headers={"If-None-Match": headers["etag"], "Accept-Encoding": "gzip"},
        timeout=30,
    )
    assert again.status_code == 304
