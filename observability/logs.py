"""Logging set-up shared by the master and the workers.

Lines go to stderr (journald under systemd) or to `log.file`, as text or as
JSON objects, one per line (`log.format`). Every line written while a request
is handled carries its request id. A file is reopened on SIGUSR1
(`reopen_log_files`), so logrotate can move it away first.

Every record, Tornado's and asyncio's included, passes three filters on the
way out (on the handler, so records of every logger go through them):

    RepeatFilter     the same message template from the same logger at most once
                     per interval; the next one says how many were left out
    RedactFilter     no password, Authorization or cookie value, nor a header
                     value Tornado found malformed, in the message, the
                     traceback or the access fields
    RequestIdFilter  the id of the request being handled

Access lines (one per answered request) are the exception: `access_line` formats
them itself, in the same text or JSON form, and writes them to the configured
stream once per event loop iteration (or 64 KiB), not one write(2) per request.
They need none of the filters: repeats are wanted, every part is ours or
redacted by the caller, and the request id is passed in. While any other
handler listens (a test's capture, a handler added at run time), or for a line
whose parts are not all redacted, the line goes through `logging` as before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from observability.timing import current_request_id
from settings import LogSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

# Attributes an access line passes with `extra=`; JSON lines carry them as fields.
ACCESS_FIELDS = ("method", "uri", "route", "status", "duration_ms", "cache", "worker")

NOISY_LOGGERS = ("httpx", "httpcore", "asyncio", "alembic")


# Loggers whose every line is wanted: one access line per answered request
# (bounded by the request rate limits), and the master's supervision events
# (bounded by the crash-loop limit), which operators count.
REPEAT_EXEMPT_LOGGERS = frozenset({"jnufm.access", "jnufm.master", "jnufm.decisions"})

# Message templates tracked at once; the oldest is forgotten beyond this.
REPEAT_TABLE_SIZE = 1024


class RepeatFilter(logging.Filter):
    """Lets the same template from the same logger through at most once per interval.

    Clients choose how often a warning such as "Malformed HTTP message" or
    "Timeout reading body" recurs; without this, a flood of bad requests is a
    flood of log lines. The first line after an interval carries the count of
    the ones left out during it.
    """

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        # (logger, template) -> (when the last line was written, lines left out since)
        self._seen: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if self._interval_s <= 0 or record.name in REPEAT_EXEMPT_LOGGERS:
            return True
        key = (record.name, str(record.msg)[:200])
        now = self._clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self._interval_s:
                self._seen[key] = (seen[0], seen[1] + 1)
                return False
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            if len(self._seen) > REPEAT_TABLE_SIZE:
                self._seen.popitem(last=False)
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} [{seen[1]} more like this in the last {now - seen[0]:.0f}s]"
        return True


_SECRET_NAME = "|".join(
    # Each letter also percent-encoded (pass%77ord), as a server would decode it.
    "".join(f"(?:{c}|%{ord(c):02x})" for c in name)
    for name in ("password", "passwd", "pwd")
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # password=052690 in a query string, form body or message (up to the next "&": a
    # server reads "x;y" as the whole value; "mypassword=" is another name)
    (re.compile(rf"(?<![A-Za-z0-9_])((?:{_SECRET_NAME})=)[^&\s'\"]*", re.I), r"\1***"),
    # "password": "052690" (JSON) or 'password': '052690' (a Python repr)
    (
        re.compile(rf"""((?:{_SECRET_NAME})['"]?\s*:\s*)(?:'[^']*'|"[^"]*"|[^\s,}}]+)""", re.I),
        r"\1***",
    ),
    # Authorization / Proxy-Authorization header values, whatever the scheme
    (
        re.compile(r"""(authorization['"]?\s*[:=]\s*['"]?)[^'"\r\n,}]*""", re.IGNORECASE),
        r"\1***",
    ),
    # A credential token wherever it appears, even without its header's name
    (re.compile(r"\b(Basic|Bearer|Digest)(\s+)[^\s'\",;]+", re.IGNORECASE), r"\1\2***"),
    # Cookie and Set-Cookie header values
    (re.compile(r"""((?:set-)?cookie['"]?\s*[:=]\s*['"]?)[^'"\r\n}]*""", re.IGNORECASE), r"\1***"),
    # Tornado repeats a header it cannot parse, not saying which: any may be a secret.
    (re.compile(r"(Invalid header (?:name|value)):? .*", re.IGNORECASE), r"\1 ***"),
)


# Text that none of the patterns above can match is left alone at the cost of one search.
_MAYBE_SECRET = re.compile(r"p(?:ass|wd)|%|auth|basic|bearer|digest|cookie|invalid header", re.I)


def may_hold_secret(text: str) -> bool:
    """Whether redact() might change text (one cheap search)."""
    return _MAYBE_SECRET.search(text) is not None


def redact(text: str) -> str:
    """text without password, Authorization, cookie or malformed header values."""
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class RedactFilter(logging.Filter):
    """Removes credentials from a record's message, traceback and access fields."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "redacted", False) and not record.exc_info:
            # An access line built from redacted parts (handlers/base.py log_request:
            # the URI through redacted_uri, the rest our own words): nothing to find.
            return True
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the template: keep the template
            record.msg, record.args = redact(str(record.msg)), None
            message = record.msg
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, redact(value))
        return True


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being handled ("" outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or ""
        return True


class TextFormatter(logging.Formatter):
    """The classic one-line format, with ` rid=<id>` when a request is being handled."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", "")
        if not rid:
            return line
        first, sep, rest = line.partition("\n")
        return f"{first} rid={rid}{sep}{rest}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, pid, logger, message, request id, access fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}"
            + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", "")
        if rid:
            entry["request_id"] = rid
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class ReopenableFileHandler(logging.FileHandler):
    """A file handler that can close and reopen its file (after logrotate moved it)."""

    def reopen(self) -> None:
        self.acquire()
        try:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
        finally:
            self.release()


def configure_logging(settings: LogSettings, repeat_interval_s: float) -> None:
    """Replace the root logger's handlers according to the `log:` settings.

    repeat_interval_s: the RepeatFilter's interval (`http.log_repeat_interval_s`).
    """
    handler: logging.Handler
    if settings.file:
        handler = ReopenableFileHandler(settings.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(RepeatFilter(repeat_interval_s))
    handler.addFilter(RedactFilter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.level)
    access_lines.configure(handler, settings.format == "json")
    # The HTTP client logs every request URL at INFO; the school's URLs are ours to log.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


class AccessLines:
    """Access lines of this process, buffered and written once per loop iteration."""

    # Flush at once past this many buffered characters.
    MAX_BUFFER = 64 * 1024

    def __init__(self) -> None:
        self._handler: logging.StreamHandler[Any] | None = None
        self._json = False
        self._buffer: list[str] = []
        self._size = 0
        self._scheduled = False
        self._second = -1
        self._stamp = ""
        self._pid = 0

    def configure(self, handler: logging.StreamHandler[Any] | None, json_format: bool) -> None:
        """Write to handler's stream (None: every line through logging)."""
        self.flush()
        self._handler, self._json = handler, json_format
        self._second = -1  # the pid and time stamp again (a new worker after the fork)

    def write(
        self,
        level: int,
        message: str,
        request_id: str,
        fields: dict[str, Any],
    ) -> bool:
        """Buffer one access line; False if it must go through logging instead."""
        handler = self._handler
        root = logging.root
        if (
            handler is None
            or len(root.handlers) != 1
            or root.handlers[0] is not handler
            or ACCESS_LOGGER.handlers
        ):
            return False
        if not ACCESS_LOGGER.isEnabledFor(level):
            return True
        now = time.time()
        line = (
            self._json_line(now, level, message, request_id, fields)
            if self._json
            else self._text_line(now, level, message, request_id)
        )
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= self.MAX_BUFFER:
            self.flush()
        elif not self._scheduled:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
                self._scheduled = True
            except RuntimeError:  # no loop: write now
                self.flush()
        return True

    def flush(self) -> None:
        """Write what is buffered (at the end of the loop iteration, and before exit)."""
        self._scheduled = False
        if not self._buffer or self._handler is None:
            self._buffer, self._size = [], 0
            return
        text = "".join(self._buffer)
        self._buffer, self._size = [], 0
        handler = self._handler
        handler.acquire()
        try:
            stream = handler.stream
            if stream is None and isinstance(handler, ReopenableFileHandler):
                stream = handler.stream = handler._open()
            stream.write(text)
            stream.flush()
        except Exception as exc:  # a closed or full stream: say so where it can be seen
            sys.stderr.write(f"jnufm: access lines lost: {type(exc).__name__}\n")
        finally:
            handler.release()

    def _clock(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
            self._pid = os.getpid()
        return self._stamp

    def _text_line(self, now: float, level: int, message: str, request_id: str) -> str:
        stamp = self._clock(now)
        millis = int((now - int(now)) * 1000)
        rid = f" rid={request_id}" if request_id else ""
        name = logging.getLevelName(level)
        return f"{stamp},{millis:03d} {name} [{self._pid}] jnufm.access: {message}{rid}\n"

    def _json_line(
        self, now: float, level: int, message: str, request_id: str, fields: dict[str, Any]
    ) -> str:
        self._clock(now)
        local = time.localtime(now)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", local)
            + f".{int((now - int(now)) * 1000):03d}"
            + time.strftime("%z", local),
            "level": logging.getLevelName(level),
            "pid": self._pid,
            "logger": ACCESS_LOGGER.name,
            "message": message,
        }
        if request_id:
            entry["request_id"] = request_id
        for name in ACCESS_FIELDS:
            if name in fields:
                entry[name] = fields[name]
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


ACCESS_LOGGER = logging.getLogger("jnufm.access")
access_lines = AccessLines()


def reopen_log_files() -> None:
    """Reopen every log file of this process (SIGUSR1)."""
    access_lines.flush()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
