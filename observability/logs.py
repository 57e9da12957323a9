"""Logging set-up shared by the master and the workers.

Lines go to stderr (journald under systemd) or to `log.file`, as text or as
JSON objects, one per line (`log.format`). Every line written while a request
is handled carries its request id. A file is reopened on SIGUSR1
(`reopen_log_files`), so logrotate can move it away first.

Every record, Tornado's and asyncio's included, passes three filters on the
way out (on the handler, so records of every logger go through them):

    RepeatFilter     the same message template from the same logger at most once
                     per interval; the next one says how many were left out
    RedactFilter     no secret in the message, the traceback or the access
                     fields: redact(), the same rule as every access line's URI
                     (redacted_uri: secret parameters in any encoding, secret path
                     segments, absolute URIs) plus header values (Authorization,
                     Cookie, X-Api-Key, a header Tornado found malformed)
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
import functools
import json
import logging
import os
import re
import sys
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

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


# --- One redaction rule for every URI and header that reaches a log line ---------------
#
# redacted_uri() for a request's URI (access lines, error lines naming a request) and
# redact() for any other text (Tornado's own lines, warnings, tracebacks), which runs
# redacted_uri() over every URI-like word in it: one judgement of what is a secret.

# Words of a parameter name that make its value a secret. A name is judged after
# percent-decoding (repeatedly, "+" as a space), NFKC folding and lowercasing, split
# into words at anything but a letter or digit (password[], user[password], api_key,
# X-Api-Key), each word without its trailing digits (password2).
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "passcode",
        "pin",
        "otp",
        "secret",
        "token",
        "key",
        "apikey",
        "sig",
        "signature",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "session",
        "sessionid",
        "sid",
        # The 2013 account API's office password (handlers/legacy/accounts.py).
        "jwcpw",
        # A WeChat follower's id, in the callback URL's query (handlers/wechat.py): it
        # names a person, and the database keeps it only as a keyed hash.
        "openid",
    }
)
# ...and the words that end with one of these (oldpassword, accesstoken, clientsecret).
SECRET_ENDINGS = ("password", "passwd", "pwd", "secret", "token", "key", "sessionid", "auth")

# Routes with a secret in the path (handlers/__init__.py), as (prefix, what may follow
# it in plain sight): a calendar feed's token, a session's id, an uploaded picture's
# unguessable name. Whatever else follows the prefix is hidden up to a file extension,
# in mistyped URLs too (tests/unit/test_redaction.py checks every route against this).
SECRET_PATHS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("v1/calendar", ("tokens",)),
    ("v1/sessions", ()),
    ("uploads", ()),
)

REDACTED = "***"
# Percent-decoding rounds after which a text that still decodes is hidden whole.
MAX_DECODE_ROUNDS = 16
# A path segment holding a run this long of token characters, with lower- and
# upper-case letters and digits among them, is taken for a token pasted into a URL
# (a session token is 43 such characters; a word or a file name has no such run).
TOKEN_RUN = 40
# Names judged once and remembered (attackers choose names: long ones are not kept).
_NAME_MEMORY = 4096
_NAME_MEMORY_MAX_CHARS = 64

_NAME_WORDS = re.compile(r"[^a-z0-9]+")
# A name and its "=": the name runs back to the previous separator of any kind.
_ASSIGNMENT = re.compile(r"([^?&;#/\s=]*)=")
# A query pair that needs no decoding and holds no separator but "=" (the common case).
_PLAIN_PAIR = re.compile(r"[A-Za-z0-9_.\-]*(?:=[A-Za-z0-9_.\-*~!$'(),/?@]*)?")
# A path that needs no decoding and holds no separator but "/".
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_.\-/]*")
_PATH_HINT = re.compile(
    "|".join(
        [*(f"/+{p.replace('/', '/+')}/" for p, _ in SECRET_PATHS), f"[A-Za-z0-9_-]{{{TOKEN_RUN}}}"]
    ),
    re.IGNORECASE,
)
_SECRET_PATH_RULES = tuple(
    re.compile(
        rf"(/+{prefix.replace('/', '/+')}/+)"
        + (rf"(?!(?:{'|'.join(plain)})/*\Z)" if plain else "")
        + r"(.+?)((?:\.[A-Za-z0-9]{1,5})?/*)\Z",
        re.IGNORECASE | re.DOTALL,
    )
    for prefix, plain in SECRET_PATHS
)
_TOKEN_SEGMENT = re.compile(rf"[^/]*[A-Za-z0-9_-]{{{TOKEN_RUN},}}[^/]*")
_TOKEN_CHARS = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_RUN},}}")
# An absolute URI's scheme and authority (GET http://host/path HTTP/1.1).
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")
# Characters a redacted path or query pair shows as they are; the rest is
# percent-encoded (no line break or other control character reaches the log, and a
# "?" that was encoded does not look like the start of the query).
_SHOWN_IN_PATH = "/;=:@!$'()*,~[]&"
_SHOWN_IN_PAIR = "/?;=:@!$'()*,~[]"


def is_secret_name(name: str) -> bool:
    """Whether a parameter or header of this (decoded) name holds a secret."""
    if len(name) > _NAME_MEMORY_MAX_CHARS:
        return _judge_name(name)
    return _judge_remembered(name)


def _judge_name(name: str) -> bool:
    if not name.isascii():
        name = unicodedata.normalize("NFKC", name)
    for word in _NAME_WORDS.split(name.lower()):
        word = word.rstrip("0123456789")
        if word and (
            word in SECRET_WORDS or word.endswith(SECRET_ENDINGS) or word.startswith("passw")
        ):
            return True
    return False


_judge_remembered = functools.lru_cache(maxsize=_NAME_MEMORY)(_judge_name)


def fully_decoded(text: str) -> str | None:
    """text percent-decoded until nothing changes ("+" as a space), or None if it still
    changes after MAX_DECODE_ROUNDS."""
    for _ in range(MAX_DECODE_ROUNDS):
        if "%" not in text and "+" not in text:
            return text
        decoded = unquote_plus(text)
        if decoded == text:
            return text
        text = decoded
    return text if unquote_plus(text) == text else None


def _secret_value_at(text: str) -> int:
    """Where the value of the first secret parameter in (decoded) text starts, or -1."""
    for match in _ASSIGNMENT.finditer(text):
        if is_secret_name(match.group(1)):
            return match.end()
    return -1


def redacted_uri(uri: str, path_words: frozenset[str] | None = None) -> str:
    """A request URI as logs may show it: the values of secret parameters (any name
    is_secret_name accepts, in any encoding, after any separator: & ; # or one encoded
    in the path), secret path segments (SECRET_PATHS, token-like runs), an absolute
    URI's user information replaced by ***.

    path_words: for a request no route took, the path words the routes know; every
    other segment (and an absolute URI's host) is hidden, for it may be anything a
    client typed, a password included.
    """
    path, sep, query = uri.partition("?")
    clean_path, secret_in_path = _redacted_path(path, path_words)
    if not sep:
        return clean_path
    if secret_in_path:
        # A value in the path may run on past the "?": the query goes with it.
        return f"{clean_path}?{REDACTED}"
    return f"{clean_path}?{_redacted_query(query)}"


def _redacted_path(path: str, words: frozenset[str] | None) -> tuple[str, bool]:
    """The path for the log, and whether it held a secret parameter's value."""
    if words is None and _PLAIN_PATH.fullmatch(path) and _PATH_HINT.search(path) is None:
        return path, False
    prefix = ""
    authority = _AUTHORITY.match(path)
    if authority is not None:
        prefix = _redacted_authority(authority.group(), words is not None)
        path = path[authority.end() :]
    text = fully_decoded(path)
    if text is None:
        return f"{prefix}/{REDACTED}", True
    start = _secret_value_at(text)
    clean = text if start < 0 else text[:start] + REDACTED
    for rule in _SECRET_PATH_RULES:
        clean = rule.sub(rf"\1{REDACTED}\3", clean)
    clean = _TOKEN_SEGMENT.sub(_token_segment, clean)
    if words is not None:
        clean = "/".join(s if not s or s in words else REDACTED for s in clean.split("/"))
    clean = _redact_phrases(clean)
    if clean == text:
        return prefix + path, False
    return prefix + quote(clean, safe=_SHOWN_IN_PATH), start >= 0


def _redacted_authority(text: str, hide_host: bool) -> str:
    scheme, _, rest = text.partition("//")
    decoded = fully_decoded(rest)
    if hide_host or decoded is None or _secret_value_at(decoded) >= 0:
        return f"{scheme}//{REDACTED}"
    if "@" in rest:
        return f"{scheme}//{REDACTED}@{rest.rpartition('@')[2]}"
    return text


def _token_segment(match: re.Match[str]) -> str:
    segment = match.group()
    for run in _TOKEN_CHARS.findall(segment):
        if run.lower() != run and run.upper() != run and any(c.isdigit() for c in run):
            return REDACTED
    return segment


def _redacted_query(query: str) -> str:
    # Pairs split where the server splits them ("&": a ";" belongs to the value), so
    # that a secret value is hidden whole; names are found after any separator.
    pairs = query.split("&")
    changed = False
    for i, pair in enumerate(pairs):
        clean = _redacted_pair(pair)
        if clean != pair:
            pairs[i], changed = clean, True
    return "&".join(pairs) if changed else query


def _redacted_pair(pair: str) -> str:
    if _PLAIN_PAIR.fullmatch(pair) is not None:
        name, eq, _ = pair.partition("=")
        return f"{name}={REDACTED}" if eq and is_secret_name(name) else pair
    text = fully_decoded(pair)
    if text is None:
        return REDACTED
    start = _secret_value_at(text)
    if start >= 0:
        return quote_plus(text[:start], safe=_SHOWN_IN_PAIR) + REDACTED
    clean = _redact_phrases(text)
    return pair if clean == text else quote_plus(clean, safe=_SHOWN_IN_PAIR)


def _quoted_name(match: re.Match[str]) -> str:
    """A quoted name and its value ('password': '052690', "x-api-key": "k")."""
    if not is_secret_name(match.group(2)):
        return match.group()
    return f"{match.group(1)}{match.group(2)}{match.group(1)}{match.group(3)}{REDACTED}"


def _assigned_quoted(match: re.Match[str]) -> str:
    """A name and a quoted value (password='052690', as a Python repr shows it)."""
    if not is_secret_name(match.group(1)):
        return match.group()
    return f"{match.group(1)}{match.group(2)}{REDACTED}"


_PHRASES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    # Authorization / Proxy-Authorization header values, whatever the scheme
    (
        re.compile(r"""(authorization['"]?\s*[:=]\s*['"]?)[^'"\r\n,}]*""", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    # A credential token wherever it appears, even without its header's name
    (re.compile(r"\b(Basic|Bearer|Digest)(\s+)[^\s'\",;]+", re.IGNORECASE), rf"\1\2{REDACTED}"),
    # Cookie and Set-Cookie header values
    (
        re.compile(r"""((?:set-)?cookie['"]?\s*[:=]\s*['"]?)[^'"\r\n}]*""", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
    # X-Api-Key, X-Auth-Token and the like
    (
        re.compile(
            r"""((?<![A-Za-z0-9_-])(?:x-[a-z0-9-]*|api-?)(?:key|token|secret|auth|signature)"""
            r"""['"]?\s*[:=]\s*['"]?)[^'"\r\n,}]*""",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    # Tornado repeats a header it cannot parse, not saying which: any may be a secret.
    (re.compile(r"(Invalid header (?:name|value)):? .*", re.IGNORECASE), rf"\1 {REDACTED}"),
    # "password": "052690" (JSON), 'x-api-key': 'k' (a Python repr): any secret name
    (re.compile(r"""(['"])([^'"\r\n]{1,64})\1(\s*:\s*)('[^']*'|"[^"]*"|[^\s,}]+)"""), _quoted_name),
    # password='052690', token="x" (a repr: the quoted value is not a URI word)
    (re.compile(r"""([A-Za-z0-9_.\-\[\]]+)(\s*=\s*)('[^']*'|"[^"]*")"""), _assigned_quoted),
    # password: 052690, unquoted (words of the password family only: "secret_key: ..."
    # in a configuration error names the key, it does not hold it)
    (
        re.compile(r"((?<![A-Za-z0-9_])(?:password|passwd|pwd)\s*:\s*)[^\s,}]+", re.IGNORECASE),
        rf"\1{REDACTED}",
    ),
)

# A word that may be a URI (or a name=value pair): redacted_uri() judges it.
_URI_WORD = re.compile(r"[^\s'\"]*[=/%][^\s'\"]*")

# Text that none of the rules can change is left alone at the cost of one search.
_MAYBE_SECRET = re.compile(
    r"%|pass|pw|pin|otp|secret|token|key|sig|auth|cookie|session|sid|credential"
    r"|basic|bearer|digest|invalid header|calendar|uploads|//[^\s/]*@"
    rf"|[A-Za-z0-9_-]{{{TOKEN_RUN}}}",
    re.IGNORECASE,
)


def may_hold_secret(text: str) -> bool:
    """Whether redact() might change text (one cheap search)."""
    return not text.isascii() or _MAYBE_SECRET.search(text) is not None


def _redact_phrases(text: str) -> str:
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    return text


def redact(text: str) -> str:
    """text without secrets: header values (Authorization, Cookie, X-Api-Key...), named
    values in JSON or repr form, and every URI-like word as redacted_uri() shows it."""
    if not may_hold_secret(text):
        return text
    return _URI_WORD.sub(lambda m: redacted_uri(m.group()), _redact_phrases(text))


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
