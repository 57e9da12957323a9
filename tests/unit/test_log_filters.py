"""The filters on every log handler: recurring lines rate-limited, credentials redacted."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from observability.logs import RedactFilter, RepeatFilter, configure_logging, redact
from settings import LogSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(name: str, msg: str, *args: object, level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_the_same_template_passes_once_per_interval_then_counts_the_rest() -> None:
    clock = Clock()
    repeat = RepeatFilter(60, clock)
    passed = [
        repeat.filter(record("tornado.general", "Malformed HTTP message from %s: %s", ip, "x"))
        for ip in range(100)
    ]
    assert passed == [True] + [False] * 99
    clock.now += 59
    assert not repeat.filter(record("tornado.general", "Malformed HTTP message from %s: %s", 1, 2))
    clock.now += 1
    later = record("tornado.general", "Malformed HTTP message from %s: %s", "1.2.3.4", "y")
    assert repeat.filter(later)
    assert later.getMessage() == (
        "Malformed HTTP message from 1.2.3.4: y [100 more like this in the last 60s]"
    )
    clock.now += 60
    quiet = record("tornado.general", "Malformed HTTP message from %s: %s", 1, 2)
    assert repeat.filter(quiet)
    assert "more like this" not in quiet.getMessage()


def test_templates_and_loggers_are_counted_apart_and_access_lines_never_dropped() -> None:
    repeat = RepeatFilter(60, Clock())
    assert repeat.filter(record("tornado.general", "Timeout reading body from %s", 1))
    assert repeat.filter(record("tornado.general", "Malformed HTTP message from %s: %s", 1, 2))
    assert repeat.filter(record("tornado.application", "Timeout reading body from %s", 1))
    assert not repeat.filter(record("tornado.application", "Timeout reading body from %s", 2))
    for status in range(50):
        assert repeat.filter(record("jnufm.access", "%d GET %s", 200 + status, "/healthz"))
    assert RepeatFilter(0, Clock()).filter(record("tornado.application", "Timeout reading body"))


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("GET /card/rest?stuid=2012052690&password=052690 (127.0.0.1)", "052690 "),
        ("/x?pass%77ord=052691&a=1", "052691"),
        ("/x?PWD=052692;passwd=052693", "05269"),
        ('{"student_id": "2012052690", "password": "052694"}', "052694"),
        ("{'password': '052695', 'x': 1}", "052695"),
        ("Authorization: Basic MjAxMjA1MjY5MDowNTI2OTA=", "MjAxMjA1"),
        ("HTTPHeaders({'Authorization': 'Bearer tok-123', 'Host': 'h'})", "tok-123"),
        ("Invalid header value 'Basic MjAxMjA1MjY5MDowNTI2OTA=\\x01'", "MjAxMjA1"),
        ("Invalid header value 'sid=SESSION42\\x7f'", "SESSION42"),
        ("Invalid header name 'token SESSION43'", "SESSION43"),
        ("Cookie: sid=SESSION44; lang=zh", "SESSION44"),
        ("Set-Cookie: JSESSIONID=SESSION45; Path=/", "SESSION45"),
        ("X-Api-Key: key-SESSION46", "SESSION46"),
        ("HTTPHeaders({'X-Api-Key': 'SESSION47', 'Host': 'h'})", "SESSION47"),
        ("X-Auth-Token: SESSION48", "SESSION48"),
        ("Credentials(student_id='2012052690', password='052698')", "052698"),
        ("school error at /login.action;jsessionid=SESSION49?x=1", "SESSION49"),
        ("Uncaught exception GET /card/rest%3Fpassword=052699 (::1)", "052699"),
        ("GET http://alice:SESSION50@127.0.0.1/x", "SESSION50"),
        ("GET /v1/calendar/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdE.ics", "AbCdEfGhIj"),
        ("bad value ｐａｓｓｗｏｒｄ=052700", "052700"),
    ],
)
def test_credentials_are_redacted(text: str, secret: str) -> None:
    assert secret not in redact(text).replace("2012052690", "")


@pytest.mark.parametrize(
    "line",
    [
        "200 GET /healthz 0.4ms route=/healthz cache=-",
        "secret_key: production mode refuses a weak key (a repeated pattern)",
        'File "/srv/jnufm/services/pipeline.py", line 412, in answer',
        "card account for everyone: stale answer (BreakerOpen)",
        "worker 3 (pid 4242) exited with code 1; restarting in 0.1s",
    ],
)
def test_plain_lines_are_left_alone(line: str) -> None:
    assert redact(line) == line


def test_redaction_covers_arguments_tracebacks_and_access_fields() -> None:
    try:
        raise ValueError("bad body {'password': '052696'}")
    except ValueError:
        exc_info = sys.exc_info()
    rec = logging.LogRecord(
        "jnufm.error", logging.ERROR, __file__, 1, "%s failed", ("/x?password=052697",), exc_info
    )
    setattr(rec, "uri", "/x?password=052698")  # noqa: B010 - as `extra=` sets it
    assert RedactFilter().filter(rec)
    text = logging.Formatter().format(rec) + getattr(rec, "uri")  # noqa: B009
    for secret in ("052696", "052697", "052698"):
        assert secret not in text


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_root_logger")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_tornado_loggers_go_through_both_filters(tmp_path: Path, log_format: str) -> None:
    path = tmp_path / "server.log"
    settings = LogSettings.model_validate({"file": str(path), "format": log_format})
    configure_logging(settings, repeat_interval_s=60)
    general = logging.getLogger("tornado.general")
    for n in range(500):
        general.info("Malformed HTTP message from %s: %s", f"10.0.0.{n % 250}", "bad")
    logging.getLogger("tornado.access").warning("400 GET /x?password=052699 (::1) 0.5ms")
    logging.getLogger("tornado.application").error(
        "Uncaught exception GET /static/x?password=052690 (::1) %r",
        "HTTPServerRequest(uri='/static/x?password=052690')",
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 3, lines
    assert "052699" not in "\n".join(lines)
    assert "052690" not in "\n".join(lines)
