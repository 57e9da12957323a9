"""The pipeline's cache decisions over a table of cases: the cached answer's age and the
question (time, cache state), the school's failure (school state) and whether the
password matches the verifier (gate state) -> the decision and its Cache-Status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from school.errors import (
    AnswerRefused,
    DeadlinePassed,
    InvalidCredentials,
    QueryRejected,
    SchoolConnectionError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
    SessionExpired,
)
from services import codes
from services.breaker import BreakerOpen
from services.budget import BudgetExhausted
from services.errors import RateLimited, StorageUnavailable
from services.pipeline import decisions
from services.pipeline.decisions import CachePolicy

POLICY = CachePolicy(enabled=True, fresh_min_interval_s=10, stale_wait_s=2, max_stale_s=86400)
OFF = CachePolicy(enabled=False, fresh_min_interval_s=10, stale_wait_s=2, max_stale_s=86400)
T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


# -- is the cached answer good enough ----------------------------------------------------

# (age of the cached answer or None, the question's max age, fresh asked) -> Cache-Status
HITS = [
    (None, 60, False, None),  # nothing cached: fetch
    (0.0, 60, False, "jnufm; hit; ttl=60"),
    (59.5, 60, False, "jnufm; hit; ttl=0"),
    (60.0, 60, False, "jnufm; hit; ttl=0"),  # at its max age still good
    (60.1, 60, False, None),  # older: fetch
    (5.0, 60, True, "jnufm; hit; ttl=55"),  # fresh asked, but asked again within 10 s
    (9.9, 60, True, "jnufm; hit; ttl=50"),
    (10.0, 60, True, None),  # fresh asked, 10 s old: fetch
    (30.0, 60, True, None),
    (5.0, 3, True, None),  # fresh or not, older than the question allows
    (0.0, 0, False, "jnufm; hit; ttl=0"),
]


@pytest.mark.parametrize(("age", "max_age", "fresh", "status"), HITS)
def test_a_cached_answer_answers_when_young_enough(
    age: float | None, max_age: float, fresh: bool, status: str | None
) -> None:
    assert decisions.hit_status(POLICY, age, max_age, fresh) == status


# (cache enabled, password matches the verifier) -> may the cache be read
@pytest.mark.parametrize(
    ("policy", "matches", "usable"),
    [(POLICY, True, True), (POLICY, False, False), (OFF, True, False), (OFF, False, False)],
)
def test_only_a_verified_password_is_answered_from_an_enabled_cache(
    policy: CachePolicy, matches: bool, usable: bool
) -> None:
    assert decisions.cache_usable(policy, matches) is usable


@pytest.mark.parametrize(
    ("fresh", "not_before"),
    [(True, T0), (False, T0 - timedelta(seconds=60))],
)
def test_another_process_result_counts_if_fetched_since(fresh: bool, not_before: datetime) -> None:
    assert decisions.not_before(T0, 60, fresh) == not_before


# -- may a stale answer stand in ---------------------------------------------------------

# (policy, matches, age or None) -> may stand in
STAND_IN = [
    (POLICY, True, 100.0, True),
    (POLICY, True, 86400.0, True),
    (POLICY, True, 86400.5, False),  # older than max_stale_s
    (POLICY, True, None, False),  # nothing stored
    (POLICY, False, 100.0, False),  # a password the verifier did not prove
    (OFF, True, 100.0, False),  # cache off
]


@pytest.mark.parametrize(("policy", "matches", "age", "may"), STAND_IN)
def test_an_old_answer_stands_in_only_within_max_stale(
    policy: CachePolicy, matches: bool, age: float | None, may: bool
) -> None:
    assert decisions.may_stand_in(policy, matches, age) is may


def test_the_wait_for_the_school_is_cut_short_only_with_an_answer_at_hand() -> None:
    assert decisions.stale_deadline(POLICY, 100.0, stale_ready=True) == 102.0
    assert decisions.stale_deadline(POLICY, 100.0, stale_ready=False) == float("inf")


# (the school's failure) -> may a stale answer stand in, and the status it would have had
FAILURES: list[tuple[BaseException, bool, int]] = [
    (SchoolTimeout("slow"), True, 504),
    (DeadlinePassed("late"), True, 504),
    (SchoolConnectionError("reset"), True, 502),
    (SchoolServerError("500"), True, 502),
    (SchoolPageError("odd page"), True, 502),
    (AnswerRefused("too large"), True, 502),
    (SessionExpired("login page"), True, 502),
    (BudgetExhausted("card", 10), True, 503),
    (BreakerOpen("card", 5), True, 503),
    (StorageUnavailable("database away"), True, 503),
    # Verdicts on the request, not failures to answer: never hidden by an old answer.
    (InvalidCredentials("wrong_password"), False, 502),
    (QueryRejected("no such book"), False, 502),
    (RateLimited(codes.STUDENT_BUSY, "busy", 1), False, 502),
]


@pytest.mark.parametrize(("failure", "stands_in", "forwarded"), FAILURES)
def test_which_failures_a_stale_answer_may_hide(
    failure: BaseException, stands_in: bool, forwarded: int
) -> None:
    assert decisions.stands_in_for(failure) is stands_in
    assert decisions.forwarded_status(failure) == forwarded


# (policy, matches, age, question's max age, failure or None: still running) -> status
STALE = [
    (POLICY, True, 100.0, 60, None, 'jnufm; fwd=stale; ttl=-40; detail="stale-while-revalidate"'),
    (
        POLICY,
        True,
        30.0,
        60,
        SchoolTimeout("slow"),
        'jnufm; fwd=stale; fwd-status=504; ttl=30; detail="stale-if-error"',
    ),
    (
        POLICY,
        True,
        3600.0,
        60,
        BreakerOpen("card", 5),
        'jnufm; fwd=stale; fwd-status=503; ttl=-3540; detail="stale-if-error"',
    ),
    (
        POLICY,
        True,
        100.0,
        60,
        SchoolPageError("odd"),
        'jnufm; fwd=stale; fwd-status=502; ttl=-40; detail="stale-if-error"',
    ),
    (POLICY, True, 100.0, 60, InvalidCredentials("wrong_password"), None),  # not a failure
    (POLICY, False, 100.0, 60, SchoolTimeout("slow"), None),  # password not proven
    (POLICY, False, 100.0, 60, None, None),
    (POLICY, True, None, 60, SchoolTimeout("slow"), None),  # nothing stored
    (POLICY, True, 90000.0, 60, SchoolTimeout("slow"), None),  # too old
    (OFF, True, 100.0, 60, SchoolTimeout("slow"), None),  # cache off
]


@pytest.mark.parametrize(("policy", "matches", "age", "max_age", "failure", "status"), STALE)
def test_a_stale_answer_carries_why_it_stands_in(
    policy: CachePolicy,
    matches: bool,
    age: float | None,
    max_age: float,
    failure: BaseException | None,
    status: str | None,
) -> None:
    assert decisions.stale_status(policy, matches, age, max_age, failure) == status


# -- an answer fetched for the request ------------------------------------------------------

# (fresh asked, something was cached, shared with an identical request's fetch) -> status
FETCHED = [
    (False, False, False, "jnufm; fwd=miss; stored"),
    (False, True, False, "jnufm; fwd=stale; stored"),
    (True, True, False, "jnufm; fwd=request; stored"),
    (True, False, False, "jnufm; fwd=miss; stored"),
    (False, False, True, "jnufm; fwd=miss; collapsed"),
    (True, True, True, "jnufm; fwd=request; collapsed"),
]


@pytest.mark.parametrize(("fresh", "had_cached", "collapsed", "status"), FETCHED)
def test_a_fetched_answer_says_why_it_was_forwarded(
    fresh: bool, had_cached: bool, collapsed: bool, status: str
) -> None:
    assert decisions.fetched_status(fresh, had_cached, collapsed) == status
