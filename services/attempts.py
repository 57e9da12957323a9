"""The credential gate's decisions about one password attempt, apart from any I/O: is it
allowed, counted, or refused, and for which scope (the student, an anonymous address,
a registered client); which lockouts it completes, and until when.

Every function here is pure: it gets the failures counted so far (from the
database, or this host's memory while the database is away), the limits and the
time, and returns the decision. The gate (services/gate.py) reads and writes the
counts and acts on it; tests/unit/test_gate_decisions.py holds the table of cases.
The rules are in services/gate.py's docstring and docs/protection.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from db.queries import FailureGroup
from services.lockout import IP, STUDENT, HostRecord, lock_end

# What a caller whose wrong passwords reached its limit gets before a login: an
# anonymous address is locked out; a registered client is slowed down.
BeforeLogin = Literal["go", "locked", "slowed"]


@dataclass(frozen=True, slots=True)
class AttemptVerdict:
    """What the gate decides about an attempt counted in the database.

    Scopes are STUDENT and IP (IP stands for the caller: an address, or a registered
    client, which is never refused, only slowed down at its logins).
    """

    # Scopes whose lockout refuses the attempt now (429), and until when (timestamps).
    refused: Mapping[str, float] = field(default_factory=dict)
    # The school already refused this password to this caller (401 without asking it).
    known_wrong: bool = False
    # Lockouts this attempt completes: scope -> (until, distinct wrong passwords).
    formed: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    # The student's distinct wrong passwords with this one (None: the student is locked).
    student_failures: int | None = None

    @property
    def admitted(self) -> bool:
        return not self.refused and not self.known_wrong

    @property
    def refused_scope(self) -> str:
        """The scope named in the 429: the student's lockout first."""
        return STUDENT if STUDENT in self.refused else IP


def _with(groups: Sequence[FailureGroup], mine: FailureGroup) -> list[FailureGroup]:
    """The groups with this attempt's own (replacing an older one of it), newest first."""
    kept = [g for g in groups if g.attempt != mine.attempt]
    return sorted([*kept, mine], key=lambda g: g.latest, reverse=True)


def judge_attempt(
    attempt: str,
    now: datetime,
    window: timedelta,
    student_groups: Sequence[FailureGroup],
    student_limit: int,
    caller_groups: Sequence[FailureGroup],
    caller_allowed: int,
    mismatched: bool,
    registered: bool,
) -> AttemptVerdict:
    """Decide an attempt whose rows were just committed, from the distinct wrong (or
    pending) passwords of the student and of the caller within the window, other than
    this attempt's own rows (newest first).

    - refused for the student if the others already reach `student_limit`; for an
      anonymous caller if its wrong passwords reach `caller_allowed` (a registered
      client is never refused here);
    - known wrong if the school already refused this very password to this caller;
    - else admitted, and it completes a lockout where counting it reaches the limit:
      the student's always (it counts while it waits for the school), the caller's
      only if the verifier already judged it wrong (`mismatched`).
    """
    refused: dict[str, float] = {}
    formed: dict[str, tuple[float, int]] = {}
    failures: int | None = None
    end = lock_end(student_groups, student_limit, window, now)
    if end is not None:
        refused[STUDENT] = end.timestamp()
    else:
        with_mine = _with(student_groups, FailureGroup(attempt, now, False, mismatched))
        end = lock_end(with_mine, student_limit, window, now)
        if end is not None:
            formed[STUDENT] = (end.timestamp(), len(with_mine))
        failures = len(with_mine)
    mine = [g for g in caller_groups if g.attempt == attempt]
    known_wrong = bool(mine) and mine[0].refused
    cend = lock_end(caller_groups, caller_allowed, window, now)
    if cend is not None and not registered:
        refused[IP] = cend.timestamp()
    elif mismatched and not mine:
        with_mine = _with(caller_groups, FailureGroup(attempt, now, False, True))
        cend = lock_end(with_mine, caller_allowed, window, now)
        if cend is not None:
            formed[IP] = (cend.timestamp(), len(with_mine))
    return AttemptVerdict(refused, known_wrong, formed, failures)


def locked_scope(
    student: HostRecord, caller: HostRecord, registered: bool, t: float
) -> tuple[str, float] | None:
    """Whether this host knows the student, or an anonymous caller, to be locked out at
    `t`: (scope, seconds left), the student's first; None if neither is. A registered
    client is never locked (it is slowed down at its logins instead)."""
    if student.locked_until > t:
        return STUDENT, student.locked_until - t
    if not registered and caller.locked_until > t:
        return IP, caller.locked_until - t
    return None


def before_login(caller_locked_until: float, registered: bool, t: float) -> BeforeLogin:
    """A password the verifier did not prove is about to be judged by the school: "go",
    or the caller reached its limit since admission: an anonymous address is "locked",
    a registered client "slowed" (its logins pass at the slowed rate)."""
    if caller_locked_until <= t:
        return "go"
    return "slowed" if registered else "locked"


@dataclass(frozen=True, slots=True)
class HostCount:
    """A password the verifier judged wrong, counted in this host's memory while the
    database is away: refused for a scope, or counted (and which scopes it locks)."""

    refused: str | None  # the scope whose limit refuses it (STUDENT first), or None
    locks: tuple[str, ...] = ()  # scopes whose limit this attempt reaches


def count_on_host(
    wrong: Mapping[str, int], limits: Mapping[str, int], registered: bool
) -> HostCount:
    """`wrong`: per scope (STUDENT, IP), the distinct wrong passwords other than this
    one (what the database last said and what this host counted since); `limits`: each
    scope's limit. Refused where the others reach the limit (a registered client's
    scope never refuses); else counted, locking each scope it brings to its limit."""
    for scope in (STUDENT, IP):
        if wrong[scope] >= limits[scope] and (scope == STUDENT or not registered):
            return HostCount(scope)
    return HostCount(None, tuple(s for s in (STUDENT, IP) if wrong[s] + 1 >= limits[s]))
