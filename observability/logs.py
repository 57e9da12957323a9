"""Logging set-up shared by the master and the workers.

Lines go to stderr (journald under systemd) or to `log.file`, as text or as
JSON objects, one per line (`log.format`). Every line written while a request
is handled carries its request id. A file is reopened on SIGUSR1
(`reopen_log_files`), so logrotate can move it away first.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from observability.timing import current_request_id
from settings import LogSettings

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"

# Attributes an access line passes with `extra=`; JSON lines carry them as fields.
ACCESS_FIELDS = ("method", "uri", "route", "status", "duration_ms", "cache", "worker")

NOISY_LOGGERS = ("httpx", "httpcore", "asyncio", "alembic")


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
            entry["exception"] = self.formatException(record.exc_info)
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


def configure_logging(settings: LogSettings) -> None:
    """Replace the root logger's handlers according to the `log:` settings."""
    handler: logging.Handler
    if settings.file:
        handler = ReopenableFileHandler(settings.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(settings.level)
    # The HTTP client logs every request URL at INFO; the school's URLs are ours to log.
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def reopen_log_files() -> None:
    """Reopen every log file of this process (SIGUSR1)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
