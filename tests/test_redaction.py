"""Passwords never reach the log, however the query string spells them, and whatever
Tornado itself writes about a malformed request."""

from __future__ import annotations

import base64
import socket
from pathlib import Path

import pytest

from handlers.base import redacted_uri
from tests.procs import Proc, jnufm_server


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        ("/card/rest?stuid=2012052690&password=052690", "/card/rest?stuid=2012052690&password=***"),
        ("/card/rest?PASSWORD=052690&stuid=1", "/card/rest?PASSWORD=***&stuid=1"),
        ("/x?passwd=1&pwd=2&keep=3", "/x?passwd=***&pwd=***&keep=3"),
        ("/x?password=", "/x?password=***"),
        ("/x?mypassword=5", "/x?mypassword=5"),
        ("/x?pass%77ord=052690&stuid=1", "/x?password=***&stuid=1"),
        ("/x?password=05%2690&a=b", "/x?password=***&a=b"),
        ("/card/rest", "/card/rest"),
        # The server splits only on "&": the whole "x;y" is the password.
        ("/card/rest?a=1&password=052690;y", "/card/rest?a=1&password=***"),
        # Credentials where no parameter is expected: the log filter's rules.
        ("/v1/card/balance&password=052690", "/v1/card/balance&password=***"),
        ("/v1/x;password=052690", "/v1/x;password=***"),
        ("/card/rest?+password=052690", "/card/rest?+password=***"),
        ("/x?Authorization=Basic%20MDUyNjkw", "/x?Authorization=***"),
        ("/x?t=Bearer%20052690", "/x?t=Bearer+***"),
        # The 2013 account API's passwords and login token.
        (
            "/password/reset?username=u&oldpassword=052690&password=052690",
            "/password/reset?username=u&oldpassword=***&password=***",
        ),
        ("/auth_jwc?token=052690&jwc_password=052690", "/auth_jwc?token=***&jwc_password=***"),
        (
            "/class/auth?token=052690&jwcpw=052690&year=2012",
            "/class/auth?token=***&jwcpw=***&year=2012",
        ),
    ],
)
def test_secret_values_are_replaced(uri: str, logged: str) -> None:
    assert redacted_uri(uri) == logged
    assert "052690" not in redacted_uri(uri).replace("2012052690", "")


FEED = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdE"


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        (f"/v1/calendar/{FEED}.ics", "/v1/calendar/***.ics"),
        (f"/v1/calendar/{FEED}.ics?x=1", "/v1/calendar/***.ics?x=1"),
        # Mistyped feed URLs (no route matches them) hide the token as well.
        (f"/v1/calendar/{FEED}.ics/", "/v1/calendar/***.ics/"),
        (f"/v1/calendar/{FEED}", "/v1/calendar/***"),
        (f"/v1/calendar/{FEED[:20]}%2F{FEED[20:]}.ics", "/v1/calendar/***.ics"),
        (f"/v1/calendar/{FEED}/x.ics", "/v1/calendar/***.ics"),
        ("/v1/calendar/tokens", "/v1/calendar/tokens"),
        ("/v1/calendar/tokens/", "/v1/calendar/tokens/"),
    ],
)
def test_feed_tokens_are_replaced(uri: str, logged: str) -> None:
    assert redacted_uri(uri) == logged
    assert FEED[:10] not in redacted_uri(uri)


TOKEN = base64.b64encode(b"2012052690:052690").decode()

# Requests written by hand, malformed on purpose, each carrying a credential where
# Tornado's own log lines or the static file handler's could repeat it.
MALFORMED = [
    # A control character in the header: "Invalid header value 'Basic ...'"
    f"GET /v1/card/balance HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {TOKEN}\x01\r\n\r\n",
    f"GET /v1/card/balance HTTP/1.1\r\nHost: t\r\nProxy-Authorization: Bearer {TOKEN}\x7f\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: t\r\nCookie: sid=COOKIESECRET1\x01\r\n\r\n",
    f"GET / HTTP/1.1\r\nHost: t\r\nBasic {TOKEN}\x01x: 1\r\n\r\n",
    # Static paths Tornado cannot serve, with a password in the query string.
    "GET /static/a%00b?stuid=2012052690&password=052690 HTTP/1.1\r\nHost: t\r\n"
    "Connection: close\r\n\r\n",
    "GET /static/../../../etc/hostname?password=052690 HTTP/1.1\r\nHost: t\r\n"
    "Connection: close\r\n\r\n",
    "GET /static/..%2f..%2fconfig.yaml?passwd=052690 HTTP/1.1\r\nHost: t\r\n"
    "Connection: close\r\n\r\n",
    # The 2013 API, a password in the query of a request cut short by a bad header.
    "GET /card/rest?stuid=2012052690&password=052690 HTTP/1.1\r\nHost: t\r\nX-Y: \x01\r\n\r\n",
]


def send_raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_malformed_requests_leave_no_credential_in_the_server_log(
    tmp_path: Path, sim: Proc, db_url: str
) -> None:
    # Every line is written (no rate limit), so that each request's line can be checked.
    with jnufm_server(
        tmp_path, db_url, sim.url, processes=1, http={"log_repeat_interval_s": 0}
    ) as server:
        answers = [send_raw(server.url, request.encode("latin-1")) for request in MALFORMED]
        log = server.log()
    assert all(answer.startswith(b"HTTP/1.1 4") for answer in answers), answers
    assert log.count("Malformed HTTP message") >= 5, log
    assert "Invalid header value ***" in log
    assert "/static/a%00b?stuid=2012052690&password=***" in log
    # (The start-up banner's example curl shows the simulator's demo credentials.)
    lines = [line for line in log.splitlines() if not line.startswith("try: curl")]
    cleaned = "\n".join(lines).replace("2012052690", "")
    for secret in ("052690", TOKEN, TOKEN[:12], "COOKIESECRET1"):
        assert secret not in cleaned, secret
