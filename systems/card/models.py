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
    """The account page of one student; cells are its td.neiwen text cells in order.

    Only the balance is sure to be on the page: a field whose label the page
    does not show is "".
    """

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
    """A logged-in card center session.

    `cookie` is the JSESSIONID value when that is the only cookie the card
    center set (the usual case), else every cookie as a Cookie header value
    (`JSESSIONID=...; other=...`): one string either way, so it can be stored.
    """

    student_id: str
    # The cookie is as good as the password while the session lives: keep it out of logs.
    cookie: str = field(repr=False)
    # The account page read to confirm the login, and when (time.monotonic()):
    # an account query right after the login need not ask for it again.
    account: AccountInfo | None = field(default=None, repr=False, compare=False)
    account_read_at: float = field(default=0.0, repr=False, compare=False)
