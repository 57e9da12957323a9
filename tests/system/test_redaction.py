"""Secrets never reach a real server's log, however a request spells them: every shape
of tests/unit/test_redaction.py's ATTACKS, and whatever Tornado itself writes about a
malformed request."""

from __future__ import annotations

import base64
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.processes import Proc, jnufm_server
from tests.unit.test_redaction import ATTACKS, Attack

TOKEN = base64.b64encode(b"2012052690:052690").decode()

# Requests written by hand, malformed on purpose, each carrying a credential where
# Tornado's own log lines or the static file handler's could repeat it.
MALFORMED = [
    # A control character in the header: "Invalid header value 'Basic ...'"
    f"GET /v1/card/balance HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {TOKEN}\x01\r\n\r\n",
    f"GET /v1/card/balance HTTP/1.1\r\nHost: t\r\nProxy-Authorization: Bearer {TOKEN}\x7f\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: t\r\nCookie: sid=COOKIESECRET1\x01\r\n\r\n",
    "GET /v1/card/balance HTTP/1.1\r\nHost: t\r\nX-Api-Key: APIKEYSECRET7\x01\r\n\r\n",
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
    # A static path refused is shown by the routes' words only (it may be anything).
    assert "GET /static/***?stuid=2012052690&password=***" in log
    assert "GET /static/***/***/***/***/***?password=***" in log
    # (The start-up banner's example curl shows the simulator's demo credentials.)
    lines = [line for line in log.splitlines() if not line.startswith("try: curl")]
    cleaned = "\n".join(lines).replace("2012052690", "")
    for secret in ("052690", TOKEN, TOKEN[:12], "COOKIESECRET1", "APIKEYSECRET7"):
        assert secret not in cleaned, secret


@dataclass
class LoggedServer:
    proc: Proc
    feed_token: str
    marks: int = 0

    def send(self, line: str, headers: str = "") -> bytes:
        request = f"{line} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n"
        return send_raw(self.proc.url, request.encode("latin-1"))

    def log_after(self, line: str) -> tuple[bytes, str]:
        """Send one request, then a marker request; the log once the marker's line is in
        (one worker: the first request's line was written before it)."""
        answer = self.send(line)
        self.marks += 1
        mark = f"mark-{self.marks}-{secrets.token_hex(4)}"
        self.send("GET /healthz", f"X-Request-Id: {mark}\r\n")
        deadline = time.monotonic() + 20
        while f"rid={mark}" not in (log := self.proc.log()):
            assert time.monotonic() < deadline, "the marker's access line never came"
            time.sleep(0.05)
        return answer, log


@pytest.fixture(scope="module")
def logged_server(tmp_path_factory: pytest.TempPathFactory, sim: Proc) -> Iterator[LoggedServer]:
    tmp = tmp_path_factory.mktemp("redaction")
    with jnufm_server(
        tmp,
        f"sqlite+aiosqlite:///{tmp / 'jnufm.sqlite3'}",
        sim.url,
        processes=1,
        http={"log_repeat_interval_s": 0},
    ) as server:
        made = httpx.post(
            server.url + "/v1/calendar/tokens",
            params={"year": 2026, "term": 1},
            auth=("2012052690", "052690"),
            timeout=30,
        )
        assert made.status_code == 201, made.text
        yield LoggedServer(server, made.json()["token"])


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_no_shape_of_a_secret_reaches_the_server_log(
    logged_server: LoggedServer, attack: Attack
) -> None:
    secret = f"Sx{secrets.token_hex(6)}Q"
    token = logged_server.feed_token
    line = attack.line.format(s=secret, t=token)
    answer, log = logged_server.log_after(line)
    assert answer.startswith(b"HTTP/1.1 "), answer[:100]
    assert secret not in log
    assert token not in log
    assert token[:16] not in log
    # The request has its access line, showing what it may show.
    method = line.split(" ")[0]
    lines = [entry for entry in log.splitlines() if "jnufm.access: " in entry]
    assert any(attack.shown in entry and f" {method} " in entry for entry in lines), (
        attack.shown,
        lines[-3:],
    )


def test_the_feed_token_still_opens_its_feed(logged_server: LoggedServer) -> None:
    """The redaction hides the token from the log, not from the route."""
    feed = httpx.get(f"{logged_server.proc.url}/v1/calendar/{logged_server.feed_token}.ics")
    assert feed.status_code == 200, feed.text
    assert feed.text.startswith("BEGIN:VCALENDAR")
