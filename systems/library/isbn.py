"""ISBNs: validation of ISBN-10 and ISBN-13 by their check digits, and finding one in text."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u00ad]+")
_PREFIX = re.compile(r"^ISBN(?:-1[03])?:?", re.IGNORECASE)
# A run that may be an ISBN inside a longer text ("ISBN 978-7-111-12345-6 : CNY45.00").
_CANDIDATE = re.compile(r"(?<![0-9Xx])[0-9][0-9\- ]{8,16}[0-9Xx](?![0-9Xx])")
_LONGEST = 17


def _check10(digits: str) -> bool:
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(digits))
    return total % 11 == 0


def _check13(digits: str) -> bool:
    total = sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(digits))
    return total % 10 == 0


def normalise_isbn(text: str) -> str | None:
    """The ISBN without hyphens or spaces (ISBN-10 with an upper-case X), if `text` is
    one valid ISBN-10 or ISBN-13 (an "ISBN" prefix allowed); None otherwise."""
    if len(text) > 40:
        return None
    raw = _SEPARATORS.sub("", _PREFIX.sub("", text.strip())).upper()
    if len(raw) == 13 and raw.isascii() and raw.isdigit():
        return raw if raw.startswith(("978", "979")) and _check13(raw) else None
    if (
        len(raw) == 10
        and raw.isascii()
        and raw[:9].isdigit()
        and (raw[9].isdigit() or raw[9] == "X")
    ):
        return raw if _check10(raw) else None
    return None


def find_isbn(text: str) -> str | None:
    """The first valid ISBN written in a longer text (normalised), if any."""
    for found in _CANDIDATE.finditer(text):
        candidate = found.group(0)
        if len(candidate) <= _LONGEST:
            isbn = normalise_isbn(candidate)
            if isbn is not None:
                return isbn
    return None


def isbn13(isbn: str) -> str:
    """The ISBN-13 of a normalised ISBN (an ISBN-10 gets the 978 prefix)."""
    if len(isbn) == 13:
        return isbn
    body = "978" + isbn[:9]
    check = (10 - sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(body)) % 10) % 10
    return body + str(check)
