"""Reading a copy's status as catalogues show it: on the shelf or not, and its due date."""

from __future__ import annotations

import re
from datetime import date

from systems.library.models import Holding

# Evidence: 2013 counted a book as borrowable when a copy showed 在架上; III's English
# defaults are AVAILABLE / CHECK SHELVES, and a III site shows NOT CHCKD OUT.
# ILAS (guess): 在馆 / 可借.
_ON_SHELF = ("在架上", "在架", "在馆", "可借", "AVAILABLE", "CHECK SHELVES", "NOT CHCKD OUT")
# Words that deny it even next to an on-shelf word (guess): "不在架", "不可借".
_DENIED = ("不在", "不可", "NOT AVAILABLE")
# Due dates: "到期 2013-05-01" (the brief of this project; Chinese III sites), "到期 13-05-01"
# (guess), III's English default "DUE 05-01-13" (month first).
_DUE_YMD = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})")
_DUE_SHORT = re.compile(r"到期\s*(\d{2})[-/.](\d{1,2})[-/.](\d{1,2})(?!\d)")
_DUE_US = re.compile(r"DUE\s+(\d{1,2})-(\d{1,2})-(\d{2}|\d{4})(?!\d)", re.IGNORECASE)


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def due_date(text: str) -> date | None:
    """The due date written in a status or due-date cell; None if none can be read."""
    found = _DUE_YMD.search(text)
    if found:
        return _date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
    found = _DUE_SHORT.search(text)
    if found:
        return _date(2000 + int(found.group(1)), int(found.group(2)), int(found.group(3)))
    found = _DUE_US.search(text)
    if found:
        year = int(found.group(3))
        return _date(year + 2000 if year < 100 else year, int(found.group(1)), int(found.group(2)))
    return None


def on_shelf(status: str) -> bool:
    """Whether a status says the copy can be taken from the shelf now."""
    upper = status.upper()
    if any(word in upper for word in _DENIED):
        return False
    return any(upper.startswith(word) for word in _ON_SHELF)


def holding(location: str, call_number: str, status: str, due_text: str = "") -> Holding:
    """A copy from its cells (due date from its own cell, else from the status)."""
    due = due_date(due_text) if due_text else None
    if due is None and not on_shelf(status):
        due = due_date(status)
    return Holding(location, call_number, status, on_shelf(status), due)
