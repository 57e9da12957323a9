"""leanweb answers as tornado.web does, except where DIFFERENCES says otherwise and why.

The same handler is written twice, once on tornado.web.RequestHandler (in a
tornado.web.Application) and once on leanweb.LeanHandler (in a
leanweb.LeanApplication), and both are served in process over real HTTP. Every
request in REQUESTS goes byte for byte to both (odd methods, bad percent-encodings,
raw non-UTF-8 bytes, huge headers, a body on GET, HEAD, errors, a missing route,
gzip), and the answers are compared: status, the headers that matter, the body.
Whatever differs must be in DIFFERENCES, with the reason; a difference listed
there that no request shows fails too. So a Tornado upgrade that changes what
clients see shows up here, one way or the other.

A second pair of handlers writes its errors with jnufm's JsonErrors (the one
`write_error` of the API and of the static files): its errors are the same JSON on
both bases.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import tornado
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, GZipContentEncoding, HTTPError, RequestHandler

from handlers.base import JsonErrors
from leanweb import Compression, LeanApplication, LeanHandler

BIG = "large text answer " * 200  # over tornado.web's gzip threshold (1,024 bytes)


def answer(handler: RequestHandler | LeanHandler, name: str) -> None:
    """The one handler both bases run: what a small API handler does."""
    if name == "boom":
        raise RuntimeError("the handler failed")
    if name == "teapot":
        raise HTTPError(418)
    if name == "empty":
        handler.set_status(204)
        return
    if name == "must":
        handler.finish(f"q={handler.get_argument('q')}")
        return
    handler.set_header("Content-Type", "text/plain; charset=UTF-8")
    if name == "big":
        handler.finish(BIG)
        return
    handler.finish(f"{name} q={handler.get_argument('q', '-')} x={handler.get_argument('x', '-')}")


class WebThing(RequestHandler):
    def get(self, name: str) -> None:
        answer(self, name)

    def head(self, name: str) -> None:
        answer(self, name)

    def post(self, name: str) -> None:
        answer(self, name)


class LeanThing(LeanHandler):
    # What tornado.web's `compress_response` does: gzip at level 6 from 1,024 bytes.
    compression = Compression(GZipContentEncoding.MIN_LENGTH, GZipContentEncoding.GZIP_LEVEL)

    def get(self, name: str) -> None:
        answer(self, name)

    def head(self, name: str) -> None:
        answer(self, name)

    def post(self, name: str) -> None:
        answer(self, name)


class WebJson(JsonErrors, RequestHandler):
    def get(self, name: str) -> None:
        answer(self, name)


class LeanJson(JsonErrors, LeanHandler):
    def get(self, name: str) -> None:
        answer(self, name)


@dataclass(frozen=True)
class Seen:
    """What a client sees of one answer (None: the connection closed without one)."""

    status: int
    headers: dict[str, str]  # the headers that matter, by lower-case name
    body: bytes  # decompressed if it came gzip-compressed


# The headers compared (Date is the time; X-Content-Type-Options is jnufm's, not here).
COMPARED = (
    "allow",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "etag",
    "location",
    "server",
    "transfer-encoding",
    "vary",
)


def request(
    method: str, target: bytes, headers: tuple[tuple[str, str], ...] = (), body: bytes = b""
) -> bytes:
    """One HTTP/1.1 request, byte for byte (the connection closed after its answer)."""
    lines = [f"{method} ".encode() + target + b" HTTP/1.1", b"Host: parity", b"Connection: close"]
    lines += [f"{name}: {value}".encode("latin1") for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


FORM = (("Content-Type", "application/x-www-form-urlencoded"),)

# name -> the raw request.
REQUESTS: dict[str, bytes] = {
    "get": request("GET", b"/thing/name?q=1"),
    "get, the last of repeated arguments": request("GET", b"/thing/name?q=1&q=2"),
    "get, control characters in an argument": request("GET", b"/thing/name?q=%01a%7Fb%09"),
    "get, percent-encoded UTF-8 path": request("GET", b"/thing/%E6%95%B0%E6%8D%AE"),
    "get, HTTP/1.0": b"GET /thing/old HTTP/1.0\r\nHost: parity\r\n\r\n",
    "head": request("HEAD", b"/thing/name?q=1"),
    "post a form": request("POST", b"/thing/name", FORM, b"x=posted"),
    "get with a form body": request("GET", b"/thing/name", FORM, b"x=from-the-body"),
    "get with a body that is no form": request("GET", b"/thing/name", (), b"\x00\xff raw"),
    "post a bad multipart body": request(
        "POST", b"/thing/name", (("Content-Type", "multipart/form-data; boundary=zz"),), b"--x"
    ),
    "PROPFIND": request("PROPFIND", b"/thing/name"),
    "TRACE": request("TRACE", b"/thing/name"),
    "an invented method": request("BREW", b"/thing/name"),
    "DELETE, which the route does not allow": request("DELETE", b"/thing/name"),
    "OPTIONS, which the route does not allow": request("OPTIONS", b"/thing/name"),
    "a bad percent-encoding in the path": request("GET", b"/thing/%ff%fe"),
    "a percent sign that encodes nothing": request("GET", b"/thing/%zz"),
    "raw non-UTF-8 bytes in the path": request("GET", b"/thing/\xff\xfe"),
    "a bad percent-encoding in the query": request("GET", b"/thing/name?q=%ff"),
    "raw non-UTF-8 bytes in the query": request("GET", b"/thing/name?q=\xe9t\xe9"),
    "a missing argument": request("GET", b"/thing/must"),
    "a header of 60,000 bytes": request("GET", b"/thing/name", (("X-Big", "a" * 60_000),)),
    "headers over Tornado's 64 KiB": request("GET", b"/thing/name", (("X-Big", "a" * 70_000),)),
    "an error raised in the handler": request("GET", b"/thing/boom"),
    "an HTTPError of an unusual status": request("GET", b"/thing/teapot"),
    "no content (204)": request("GET", b"/thing/empty"),
    "a missing route": request("GET", b"/nowhere"),
    "HEAD on a missing route": request("HEAD", b"/nowhere"),
    "POST with a body to a missing route": request("POST", b"/nowhere", FORM, b"x=1"),
    "gzip accepted": request("GET", b"/thing/big", (("Accept-Encoding", "gzip, deflate"),)),
    "gzip refused by q=0": request("GET", b"/thing/big", (("Accept-Encoding", "gzip;q=0"),)),
    "gzip not asked for": request("GET", b"/thing/big"),
    "gzip accepted, a small answer": request("GET", b"/thing/name", (("Accept-Encoding", "gzip"),)),
    "If-None-Match": request("GET", b"/thing/name?q=1", (("If-None-Match", "*"),)),
    "JSON errors: an error raised in the handler": request("GET", b"/json/boom"),
    "JSON errors: a missing argument": request("GET", b"/json/must"),
    "JSON errors: a bad percent-encoding": request("GET", b"/json/%ff"),
    "JSON errors: a method the route does not allow": request("PROPFIND", b"/json/name"),
    "JSON errors: an HTTPError of an unusual status": request("GET", b"/json/teapot"),
}

ANY = "(any value)"
ANSWERED = frozenset(name for name in REQUESTS if name != "headers over Tornado's 64 KiB")
# The 200 answers to GET or HEAD (those tornado.web gives an ETag).
OK_GET = frozenset(
    {
        "get",
        "get, the last of repeated arguments",
        "get, control characters in an argument",
        "get, percent-encoded UTF-8 path",
        "get, HTTP/1.0",
        "head",
        "get with a form body",
        "get with a body that is no form",
        "a percent sign that encodes nothing",
        "raw non-UTF-8 bytes in the path",
        "a header of 60,000 bytes",
        "gzip accepted",
        "gzip refused by q=0",
        "gzip not asked for",
        "gzip accepted, a small answer",
    }
)
# The answers leanweb may compress (200, text, at least min_bytes): Vary on both.
COMPRESSIBLE = frozenset({"gzip accepted", "gzip refused by q=0", "gzip not asked for"})


@dataclass(frozen=True)
class Difference:
    """Where leanweb's answer differs from tornado.web's on purpose."""

    part: str  # "status", "body", or a header's lower-case name
    cases: frozenset[str]  # the requests whose answers show it
    tornado: str | None  # tornado.web's value (ANY: any value; None: absent)
    lean: str | None  # leanweb's
    why: str


DIFFERENCES = (
    Difference(
        "server",
        ANSWERED,
        f"TornadoServer/{tornado.version}",
        None,
        "no Server header: it tells an attacker the framework and its version",
    ),
    Difference(
        "etag",
        OK_GET - {"If-None-Match"},
        ANY,
        None,
        "no ETag unless the handler asks for one (`etagged`): most API answers are "
        "`no-store`, so no client revalidates them, and hashing each answer costs time on "
        "every request",
    ),
    Difference(
        "status",
        frozenset({"If-None-Match"}),
        "304",
        "200",
        "no ETag, so nothing to match: the whole answer again",
    ),
    Difference(
        "etag",
        frozenset({"If-None-Match"}),
        ANY,
        None,
        "no ETag (above)",
    ),
    Difference(
        "content-type",
        frozenset({"If-None-Match"}),
        None,
        "text/plain; charset=UTF-8",
        "the whole answer (a 304 has no representation headers)",
    ),
    Difference(
        "content-length",
        frozenset({"If-None-Match"}),
        None,
        ANY,
        "the whole answer (above)",
    ),
    Difference(
        "body",
        frozenset({"If-None-Match"}),
        "",
        ANY,
        "the whole answer (above)",
    ),
    Difference(
        "allow",
        frozenset(
            {
                "PROPFIND",
                "TRACE",
                "an invented method",
                "DELETE, which the route does not allow",
                "OPTIONS, which the route does not allow",
            }
        ),
        None,
        "GET, HEAD, POST",
        "a 405 says `Allow` (RFC 9110 15.5.6): the methods the handler defines",
    ),
    Difference(
        "allow",
        frozenset({"JSON errors: a method the route does not allow"}),
        "GET",
        "GET, HEAD",
        "JsonErrors says `Allow` on both; leanweb answers HEAD wherever GET is, "
        "tornado.web only where the handler defines `head`",
    ),
    Difference(
        "vary",
        ANSWERED - COMPRESSIBLE,
        "Accept-Encoding",
        None,
        "Vary: Accept-Encoding only on answers that could be compressed (tornado.web puts "
        "it on every answer, errors and answers too small to compress included)",
    ),
    Difference(
        "content-encoding",
        frozenset({"gzip refused by q=0"}),
        "gzip",
        None,
        "`gzip;q=0` refuses gzip (RFC 9110 12.5.3); tornado.web looks for the word `gzip`",
    ),
    Difference(
        "content-length",
        frozenset({"gzip refused by q=0"}),
        ANY,
        str(len(BIG)),
        "not compressed (above)",
    ),
)


async def serve(app: Application | LeanApplication) -> tuple[HTTPServer, int]:
    server = HTTPServer(app)
    sockets = bind_sockets(0, "127.0.0.1")
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


@pytest.fixture
async def ports() -> AsyncIterator[tuple[int, int]]:
    """tornado.web's app and leanweb's, each on its own port."""
    web = Application(
        [(r"/thing/([^/]*)", WebThing), (r"/json/([^/]*)", WebJson)], compress_response=True
    )
    lean = LeanApplication([(r"/thing/([^/]*)", LeanThing, {}), (r"/json/([^/]*)", LeanJson, {})])
    (web_server, web_port), (lean_server, lean_port) = await serve(web), await serve(lean)
    yield web_port, lean_port
    for server in (web_server, lean_server):
        server.stop()
        await server.close_all_connections()


async def send(port: int, raw: bytes) -> Seen | None:
    """Sends raw and reads the answer until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        data = await reader.read()
    except ConnectionResetError:  # closed while the request was still being sent
        data = b""
    finally:
        writer.close()
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name in COMPARED:
            headers[name] = ", ".join(filter(None, (headers.get(name), value.strip())))
    if headers.get("content-encoding") == "gzip":
        body = gzip.decompress(body)
    return Seen(int(status_line.split()[1]), headers, body)


def parts(seen: Seen | None) -> dict[str, str | None]:
    if seen is None:
        return {"status": None}
    found: dict[str, str | None] = {name: seen.headers.get(name) for name in COMPARED}
    return {"status": str(seen.status), "body": seen.body.decode("latin1"), **found}


def matches(value: str | None, expected: str | None) -> bool:
    return value is not None if expected == ANY else value == expected


async def test_the_same_requests_get_the_same_answers_but_for_the_listed_differences(
    ports: tuple[int, int],
) -> None:
    web_port, lean_port = ports
    shown: set[tuple[str, str]] = set()
    unexplained = []
    for name, raw in REQUESTS.items():
        web, lean = parts(await send(web_port, raw)), parts(await send(lean_port, raw))
        for part in sorted(web.keys() | lean.keys()):
            listed = [d for d in DIFFERENCES if d.part == part and name in d.cases]
            if listed:
                difference = listed[0]
                assert matches(web.get(part), difference.tornado), (name, part, web.get(part))
                assert matches(lean.get(part), difference.lean), (name, part, lean.get(part))
                shown.add((part, name))
            elif web.get(part) != lean.get(part):
                unexplained.append((name, part, web.get(part), lean.get(part)))
    assert unexplained == [], "differences DIFFERENCES does not list"
    listed_anywhere = {(d.part, case) for d in DIFFERENCES for case in d.cases}
    assert listed_anywhere - shown == set(), "listed differences no request showed"


async def test_the_answers_compared_are_what_each_request_is_about(
    ports: tuple[int, int],
) -> None:
    """The comparison above could pass on two equally wrong answers: the expected ones."""
    _, lean_port = ports
    expected = {
        "get": (200, b"name q=1 x=-"),
        "get, the last of repeated arguments": (200, b"name q=2 x=-"),
        "get, control characters in an argument": (200, b"name q=a\x7fb x=-"),
        "get, percent-encoded UTF-8 path": (200, "数据 q=- x=-".encode()),
        "head": (200, b""),
        "post a form": (200, b"name q=- x=posted"),
        "get with a form body": (200, b"name q=- x=from-the-body"),
        "PROPFIND": (405, b"<html><title>405: Method Not Allowed</title>"),
        "a bad percent-encoding in the path": (400, b"<html><title>400: Bad Request</title>"),
        "raw non-UTF-8 bytes in the query": (400, b"<html><title>400: Bad Request</title>"),
        # Tornado reads the request line as Latin-1: the bytes are the characters ÿþ.
        "raw non-UTF-8 bytes in the path": (200, "ÿþ q=- x=-".encode()),
        "a header of 60,000 bytes": (200, b"name q=- x=-"),
        "an error raised in the handler": (500, b"<html><title>500: Internal Server Error"),
        "an HTTPError of an unusual status": (418, b"<html><title>418: I&#x27;m a Teapot"),
        "a missing route": (404, b"<html><title>404: Not Found</title>"),
        "gzip accepted": (200, BIG.encode()),
        "JSON errors: a missing argument": (
            400,
            b'{"error":{"code":"bad_request","message":"Missing argument q"}}',
        ),
        "JSON errors: a bad percent-encoding": (
            400,
            b'{"error":{"code":"bad_request","message":"a parameter is not valid UTF-8"}}',
        ),
    }
    for name, (status, body) in expected.items():
        seen = await send(lean_port, REQUESTS[name])
        assert seen is not None, name
        assert (seen.status, seen.body[: len(body)]) == (status, body), name
    assert await send(lean_port, REQUESTS["headers over Tornado's 64 KiB"]) is None


class Closing(LeanHandler):
    def get(self) -> None:
        self.close_connection()
        self.finish("last")


async def test_close_connection_says_so_and_closes_after_the_whole_answer() -> None:
    """What a draining server does to a keep-alive client: the answer whole, with
    `Connection: close` (as Tornado sends a client that asked), then the end of the stream."""
    server, port = await serve(LeanApplication([(r"/last", Closing, {})]))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /last HTTP/1.1\r\nHost: parity\r\n\r\n")
        # Read to the end of the stream: this returns only once the server closes it.
        data = await asyncio.wait_for(reader.read(), timeout=30)
        writer.close()
    finally:
        server.stop()
        await server.close_all_connections()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nConnection: close" in head
    assert body == b"last"
