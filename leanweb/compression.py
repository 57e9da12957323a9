"""Which answers go gzip-compressed, and whether a client accepts gzip.

tornado.web compresses through an output transform (`compress_response`), which
never sees a LeanHandler's answer: LeanHandler.finish compresses by these rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from tornado import httputil

from leanweb.request import header

# Answers worth compressing: text. An image or a compressed file gains nothing.
COMPRESSIBLE = ("application/json", "text/", "application/javascript")


@dataclass(frozen=True, slots=True)
class Compression:
    """Successful (200) text answers of at least min_bytes are gzip-compressed at this
    level for a client that accepts gzip. Whether that is safe (BREACH) depends on what
    the answers hold: the application that sets it says why."""

    min_bytes: int
    level: int


def accepts_gzip(headers: httputil.HTTPHeaders) -> bool:
    """Whether the request's Accept-Encoding allows gzip (RFC 9110 12.5.3: `q=0`
    refuses it; `*` stands for it when it is not named)."""
    value = header(headers, "Accept-Encoding")
    if not value:
        return False
    anything = False
    for item in value.split(","):
        coding, _, params = item.partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, number = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(number.strip())
                except ValueError:
                    weight = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return weight > 0
        if coding == "*":
            anything = weight > 0
    return anything
