"""Typed values the card center client returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Transaction:
    """One card transaction; time is aware (+08:00) and already clock-corrected."""

    time: datetime
    way: str
    position: str
    amount: Decimal
    balance_after: Decimal


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """The account page of one student; cells are the table's text cells in order."""

    student_id: str
    name: str
    card_number: str
    identity: str
    department: str
    status: str
    balance: Decimal
    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CardSession:
    """A logged-in card center session (the JSESSIONID value)."""

    student_id: str
    # The cookie is as good as the password while the session lives: keep it out of logs.
    cookie: str = field(repr=False)
