"""The pipeline's decisions about cached answers, apart from any I/O: is the cached
answer good enough, may a stale one stand in for the school's, and what Cache-Status
(RFC 9211) each answer carries.

Every function here is pure: it gets the times, the cache's state, the school's
failure and the gate's verdict (whether the password matches the verifier), and
returns the decision. The pipeline (services/pipeline/engine.py) reads the cache,
asks the school and calls these; tests/unit/test_pipeline_decisions.py holds their
table of cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from math import inf

from school.errors import (
    DeadlinePassed,
    SchoolPageError,
    SchoolTimeout,
    SchoolUnavailable,
    SessionExpired,
)
from services.breaker import BreakerOpen
from services.budget import BudgetExhausted
from services.errors import StorageUnavailable

# Failures after which a stale answer may stand in for a fresh one (stale-if-error).
# Anything else (a wrong password, a refused query, a limit) is the client's answer.
STALE_IF = (
    SchoolUnavailable,
    SchoolPageError,
    SessionExpired,
    DeadlinePassed,
    BudgetExhausted,
    BreakerOpen,
    StorageUnavailable,
)

SWR = "stale-while-revalidate"
SIE = "stale-if-error"


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """The cache settings the decisions need (`cache.*`)."""

    enabled: bool
    fresh_min_interval_s: float  # a client's `fresh` is honoured at most this often
    stale_wait_s: float  # with a stale answer at hand, wait for the school this long
    max_stale_s: float  # no answer older than this stands in


def cache_usable(policy: CachePolicy, matches: bool) -> bool:
    """Whether this request may be answered from the cache at all: the cache is on and the
    password (if the system has any) matches the verifier, the one the school last
    accepted. Any other password is judged by the school first."""
    return policy.enabled and matches


def hit_status(
    policy: CachePolicy, age_s: float | None, max_age_s: float, fresh: bool
) -> str | None:
    """The Cache-Status of the cached answer if it is good enough to answer with, else
    None (fetch it). `age_s`: the cached answer's age, None if there is none.

    Good enough: no older than the question allows, and if the client asked for fresh
    data, younger than `fresh_min_interval_s` (fresh on demand, but not more often).
    """
    if age_s is None or age_s > max_age_s:
        return None
    if fresh and age_s >= policy.fresh_min_interval_s:
        return None
    return f"jnufm; hit; ttl={int(max_age_s - age_s)}"


def not_before(started: datetime, max_age_s: float, fresh: bool) -> datetime:
    """The oldest result another process stored that answers this question: any fetched
    after the question was asked if fresh data was asked for, else any young enough."""
    return started if fresh else started - timedelta(seconds=max_age_s)


def may_stand_in(policy: CachePolicy, matches: bool, age_s: float | None) -> bool:
    """Whether an old answer (of age `age_s`, None: none) may stand in for the school's:
    the cache is on, the password matches the verifier, and it is at most `max_stale_s`
    old."""
    return age_s is not None and cache_usable(policy, matches) and age_s <= policy.max_stale_s


def stale_deadline(policy: CachePolicy, now: float, stale_ready: bool) -> float:
    """When to stop waiting for the school and answer stale (time.monotonic()): after
    `stale_wait_s` if a stale answer is at hand (stale-while-revalidate), else never
    (only the query's deadline ends the wait)."""
    return now + policy.stale_wait_s if stale_ready else inf


def stands_in_for(failure: BaseException) -> bool:
    """Whether a stale answer may stand in after this failure (stale-if-error): the school
    or our storage could not answer, not a verdict on the question or the password."""
    return isinstance(failure, STALE_IF)


def forwarded_status(failure: BaseException) -> int:
    """The status the school's failure would have had (Cache-Status `fwd-status`)."""
    if isinstance(failure, SchoolTimeout | DeadlinePassed):
        return 504
    if isinstance(failure, BudgetExhausted | BreakerOpen | StorageUnavailable):
        return 503
    return 502


def stale_status(
    policy: CachePolicy,
    matches: bool,
    age_s: float | None,
    max_age_s: float,
    failure: BaseException | None,
) -> str | None:
    """The Cache-Status of a stale answer standing in, or None if none may.

    `failure` None: the school is still working past `stale_wait_s`
    (stale-while-revalidate); else what it failed with (stale-if-error, for the
    failures of `stands_in_for` only).
    """
    if failure is not None and not stands_in_for(failure):
        return None
    if not may_stand_in(policy, matches, age_s):
        return None
    assert age_s is not None
    ttl = int(max_age_s - age_s)
    if failure is None:
        return f'jnufm; fwd=stale; ttl={ttl}; detail="{SWR}"'
    return f'jnufm; fwd=stale; fwd-status={forwarded_status(failure)}; ttl={ttl}; detail="{SIE}"'


def fetched_status(fresh: bool, had_cached: bool, collapsed: bool) -> str:
    """The Cache-Status of an answer fetched for this request (or shared with an identical
    one's fetch: `collapsed`): why it was forwarded to the school."""
    if fresh and had_cached:
        fwd = "request"
    elif had_cached:
        fwd = "stale"
    else:
        fwd = "miss"
    return f"jnufm; fwd={fwd}" + ("; collapsed" if collapsed else "; stored")
