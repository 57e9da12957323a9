"""The credential gate's attempt decisions over a table of cases: the failures counted so
far for the student and the caller (gate state), the limits and the time -> allowed,
counted, refused for which scope, and the lockouts an attempt completes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from db.queries import FailureGroup
from services import attempts
from services.attempts import AttemptVerdict, HostCount
from services.lockout import EMPTY, IP, PENDING_RETRY_S, STUDENT, HostRecord

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
MINE = "a" * 32


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def wrong(n: int, refused: bool = False, settled: bool = True) -> list[FailureGroup]:
    """n distinct wrong passwords, the newest one minute ago, one a minute before each."""
    return [FailureGroup(f"{i:032x}", ago(i + 1), refused, settled) for i in range(n)]


def ts(at: datetime) -> float:
    return at.timestamp()


@dataclass(frozen=True)
class Case:
    why: str
    student: list[FailureGroup] = field(default_factory=list)
    caller: list[FailureGroup] = field(default_factory=list)
    mismatched: bool = False
    registered: bool = False
    verdict: AttemptVerdict = field(default_factory=AttemptVerdict)


STUDENT_LIMIT = 5
CALLER_ALLOWED = 30

CASES = [
    Case("a first attempt is counted", verdict=AttemptVerdict(student_failures=1)),
    Case(
        "a student below the limit: counted",
        student=wrong(3),
        verdict=AttemptVerdict(student_failures=4),
    ),
    Case(
        "a repeated wrong password counts once",
        student=[FailureGroup(MINE, ago(1), False, True), *wrong(3)],
        verdict=AttemptVerdict(student_failures=4),
    ),
    Case(
        "the fifth, waiting for the school: a lockout held only while it is judged",
        student=wrong(4),
        verdict=AttemptVerdict(
            formed={STUDENT: (ts(NOW) + PENDING_RETRY_S, 5)}, student_failures=5
        ),
    ),
    Case(
        "the fifth, judged wrong by the verifier: the lockout lasts the window",
        student=wrong(4),
        caller=wrong(2),
        mismatched=True,
        verdict=AttemptVerdict(formed={STUDENT: (ts(ago(4) + WINDOW), 5)}, student_failures=5),
    ),
    Case(
        "a student at the limit: refused until the oldest counted password leaves the window",
        student=wrong(5),
        verdict=AttemptVerdict(refused={STUDENT: ts(ago(5) + WINDOW)}),
    ),
    Case(
        "a student at the limit with passwords still pending: refused a moment only",
        student=wrong(5, settled=False),
        verdict=AttemptVerdict(refused={STUDENT: ts(NOW) + PENDING_RETRY_S}),
    ),
    Case(
        "an anonymous address at its allowance: refused",
        caller=wrong(30),
        verdict=AttemptVerdict(refused={IP: ts(ago(30) + WINDOW)}, student_failures=1),
    ),
    Case(
        "a registered client at its allowance is never refused here",
        caller=wrong(30),
        registered=True,
        verdict=AttemptVerdict(student_failures=1),
    ),
    Case(
        "student and address both locked: both refuse, the student's named",
        student=wrong(5),
        caller=wrong(30),
        verdict=AttemptVerdict(refused={STUDENT: ts(ago(5) + WINDOW), IP: ts(ago(30) + WINDOW)}),
    ),
    Case(
        "a password the school already refused to this caller: known wrong",
        caller=[FailureGroup(MINE, ago(1), True, True)],
        verdict=AttemptVerdict(known_wrong=True, student_failures=1),
    ),
    Case(
        "the caller's wrong password completes its allowance when the verifier judged it",
        caller=wrong(29),
        mismatched=True,
        verdict=AttemptVerdict(formed={IP: (ts(ago(29) + WINDOW), 30)}, student_failures=1),
    ),
    Case(
        "a password nothing judged yet does not count against the caller",
        caller=wrong(29),
        verdict=AttemptVerdict(student_failures=1),
    ),
    Case(
        "a registered client's slow-down forms like an address's lockout",
        caller=wrong(30),
        mismatched=True,
        registered=True,
        verdict=AttemptVerdict(formed={IP: (ts(ago(29) + WINDOW), 31)}, student_failures=1),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_an_attempt_is_counted_or_refused(case: Case) -> None:
    verdict = attempts.judge_attempt(
        MINE,
        NOW,
        WINDOW,
        case.student,
        STUDENT_LIMIT,
        case.caller,
        CALLER_ALLOWED,
        case.mismatched,
        case.registered,
    )
    assert verdict == case.verdict
    assert verdict.admitted is (not case.verdict.refused and not case.verdict.known_wrong)


def test_the_student_lockout_is_named_first() -> None:
    both = AttemptVerdict(refused={STUDENT: 2.0, IP: 1.0})
    assert both.refused_scope == STUDENT
    assert AttemptVerdict(refused={IP: 1.0}).refused_scope == IP


def locked(until: float) -> HostRecord:
    return HostRecord(0.0, EMPTY.verifier, 1.0, until, 0, 0)


T = 1000.0

# (student's record, caller's record, registered) -> (scope, seconds left) or None
LOCKED = [
    (EMPTY, EMPTY, False, None),
    (locked(T + 60), EMPTY, False, (STUDENT, 60.0)),
    (EMPTY, locked(T + 30), False, (IP, 30.0)),
    (EMPTY, locked(T + 30), True, None),  # a registered client is slowed, never locked
    (locked(T + 60), locked(T + 30), False, (STUDENT, 60.0)),
    (locked(T), EMPTY, False, None),  # ended just now
    (locked(T - 1), locked(T - 1), False, None),
]


@pytest.mark.parametrize(("student", "caller", "registered", "found"), LOCKED)
def test_a_lockout_this_host_knows_refuses_at_admission(
    student: HostRecord,
    caller: HostRecord,
    registered: bool,
    found: tuple[str, float] | None,
) -> None:
    assert attempts.locked_scope(student, caller, registered, T) == found


@pytest.mark.parametrize(
    ("until", "registered", "decision"),
    [
        (0.0, False, "go"),
        (T, False, "go"),
        (T + 5, False, "locked"),
        (T + 5, True, "slowed"),
        (0.0, True, "go"),
    ],
)
def test_before_a_login_the_caller_is_checked_again(
    until: float, registered: bool, decision: str
) -> None:
    assert attempts.before_login(until, registered, T) == decision


# (distinct wrong passwords per scope, without this one; registered) -> HostCount
HOST = [
    ({STUDENT: 0, IP: 0}, False, HostCount(None, ())),
    ({STUDENT: 4, IP: 0}, False, HostCount(None, (STUDENT,))),
    ({STUDENT: 5, IP: 0}, False, HostCount(STUDENT)),
    ({STUDENT: 0, IP: 29}, False, HostCount(None, (IP,))),
    ({STUDENT: 0, IP: 30}, False, HostCount(IP)),
    ({STUDENT: 0, IP: 30}, True, HostCount(None, (IP,))),  # slowed, not refused
    ({STUDENT: 5, IP: 30}, False, HostCount(STUDENT)),
    ({STUDENT: 4, IP: 29}, False, HostCount(None, (STUDENT, IP))),
]


@pytest.mark.parametrize(("wrong_so_far", "registered", "counted"), HOST)
def test_while_the_database_is_away_the_host_counts(
    wrong_so_far: dict[str, int], registered: bool, counted: HostCount
) -> None:
    limits = {STUDENT: STUDENT_LIMIT, IP: CALLER_ALLOWED}
    assert attempts.count_on_host(wrong_so_far, limits, registered) == counted
