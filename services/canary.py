"""The canary: a test account's school pages read in the background, so that a page the
school redesigned shows in the metrics before students report it.

Off by default (config.yaml `canary:`). Each worker runs the loop; a system's round is
run by whoever takes its lease (`canary:<system>`, services/leases.py), which is kept
for `canary.interval_s`: one process of all hosts reads a system about once per
interval. A round asks the system's service what a student would (card: the balance and
today's transactions; academic: a term's timetable, exams and grades; library: a search
and its first record), each as a fresh question (`Cache-Control: no-cache`), through
the canary's own pipelines: the same budget slots, breakers, credential gate and quota
as the students', but with no cached answer taken and none standing in for a failure
(a stale answer would hide the very failure looked for). Questions go one at a time,
and a round gives way when students of this worker wait for the system's budget.

What a round says (jnufm_canary_*, one log line per round and system):

    ok             every page read parsed
    unreadable     a page did not parse (SchoolPageError): its gauge goes to 0
    skipped        the school busy, failing or away, or storage away: nothing learned
    refused_login  the school refused the test account's password

A refused password is never tried again until the account's student number or password
changes, or `canary.refused_backoff_s` has passed: the refusal is a lease
(`canary:<system>:refused:<its verifier>`) every process sees, held by no process (a
restarted worker does not free it), so the test account gets one wrong login, not one
per round. Within a round a password is judged once: the first question logs in and
the others use the session it opened (a password the school has just accepted may log
in again, when a page failed before its session was kept or the school dropped it).
The password is read at each round from the environment or its file; it never reaches
a log line or a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeVar

from observability import metrics
from school.errors import SchoolPageError
from secret_key import key_file_problem, read_key_file
from services.callers import Caller
from services.credentials import Credentials, make_verifier
from services.errors import (
    BadInput,
    InvalidPassword,
    PasswordChanged,
    QueryRefused,
    SchoolPageUnreadable,
    ServiceError,
    StorageUnavailable,
)
from services.leases import LeaseStore, new_holder_id
from settings import CanaryAccountSettings, Settings
from systems.academic.service import AcademicService
from systems.card.service import CardService
from systems.library.service import LibraryService, search_query

log = logging.getLogger("jnufm.canary")

T = TypeVar("T")

Outcome = Literal["ok", "unreadable", "skipped", "refused_login"]

# Who the canary is to the limits, the gate and the budget's fair share: an address of
# its own (never a client's), so its queries count against nobody else's.
CALLER: Final = Caller(ip="127.0.0.1", address="canary")

# The pages each system's round reads (the values of the metric's `page` label). A page
# a parser names otherwise counts as the page of the question it answered, but the
# login page, which every question of a system with passwords depends on.
PAGES: Final[dict[str, tuple[str, ...]]] = {
    "card": ("login", "account", "today"),
    "academic": ("login", "timetable", "exams", "grades"),
    "library": ("search", "book"),
}
LOGIN: Final = "login"

# The holder of a refusal's lease: no process's (never freed as a dead worker's lease).
REFUSED_HOLDER: Final = "canary:refused"

# Each worker looks this many times per interval (jittered); the lease decides.
LOOKS_PER_INTERVAL: Final = 4


@dataclass(frozen=True, slots=True)
class CanaryTargets:
    """The services the canary asks (built on the canary's own pipelines: see the module
    docstring), and whether students of this worker wait for a system's budget."""

    card: CardService | None
    academic: AcademicService | None
    library: LibraryService | None
    students_waiting: Callable[[str], bool] = lambda system: False


@dataclass(slots=True)
class SystemRound:
    """What one round learned of one system."""

    system: str
    outcome: Outcome = "ok"
    pages: dict[str, bool] = field(default_factory=dict)
    detail: str = ""


class _Stop(Exception):
    """Ends a system's round early: nothing more can be learned this round."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def read_password(
    account: CanaryAccountSettings, env: Mapping[str, str], production: bool
) -> tuple[str | None, str]:
    """The test account's password (None if there is none to use) and, if none, why:
    from `password_file` if set (in production only a file of the server's user alone),
    else from the environment variable `password_env`. Never the password in the why."""
    if account.password_file:
        try:
            found = read_key_file(account.password_file)
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            return None, f"password_file cannot be read ({why})"
        if production:
            problem = key_file_problem(found, dict(env))
            if problem is not None:
                return None, f"password_file: {problem}"
        if not found.key:
            return None, "password_file is empty"
        return found.key, ""
    value = env.get(account.password_env, "")
    if not value:
        return None, f"no password (set {account.password_env} or password_file)"
    return value, ""


class Canary:
    """The background reading of every configured system (see the module docstring)."""

    def __init__(
        self,
        targets: CanaryTargets,
        leases: LeaseStore,
        settings: Settings,
        env: Mapping[str, str] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets = targets
        self._leases = leases
        self._settings = settings
        self._config = settings.canary
        self._env = os.environ if env is None else env
        self._wall_clock = wall_clock
        self._secret = settings.secret_key.encode()
        self._said: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # What to read -------------------------------------------------------------------------

    def _credentials(self, system: str) -> tuple[Credentials | None, str]:
        """The test account of a system with passwords, or None and why it is skipped."""
        account: CanaryAccountSettings = getattr(self._config, system)
        if not account.student_id:
            return None, "no test account configured (student_id)"
        password, why = read_password(account, self._env, self._settings.mode == "production")
        if password is None:
            return None, why
        try:
            return Credentials.parse(account.student_id, password, system), ""
        except BadInput as exc:
            return None, exc.message  # names the rule, never the password

    def _skip_reason(self, system: str) -> str:
        """Why a system is not read at all ("" if it is)."""
        if system == "card" and self._targets.card is None:
            return "not served"
        if system == "academic" and self._targets.academic is None:
            return "not served"
        if system == "library":
            if self._targets.library is None:
                return "not served"
            if not self._config.library.query.strip():
                return "no search query configured (canary.library.query)"
        return ""

    def _say_once(self, system: str, why: str) -> None:
        if (system, why) not in self._said:
            self._said.add((system, why))
            log.info("canary %s: skipped, %s", system, why)

    # One question ---------------------------------------------------------------------------

    async def _read(
        self, done: SystemRound, page: str, ask: Callable[[], Awaitable[T]]
    ) -> T | None:
        """Ask one question and record whether its page parsed. Raises _Stop when the
        round cannot go on; None when the page did not parse."""
        if self._targets.students_waiting(done.system):
            raise _Stop("skipped", "students wait for the school budget; giving way")
        try:
            answer = await ask()
        except (InvalidPassword, PasswordChanged):
            raise _Stop("refused_login", "the school refused the test account's password") from None
        except SchoolPageUnreadable as exc:
            cause = exc.__cause__
            kind = cause.kind if isinstance(cause, SchoolPageError) else None
            failed = LOGIN if kind == LOGIN and LOGIN in PAGES[done.system] else page
            done.pages[failed] = False
            why = str(cause)[:120] if cause is not None else exc.message
            done.detail = f"{failed}: {why}"
            if failed == LOGIN:
                raise _Stop("unreadable", done.detail) from None
            return None
        except QueryRefused:
            # The school answered, and we read its answer: a refusal of the question.
            done.pages[page] = True
            return None
        except ServiceError as exc:
            # Busy, failing, away, locked out, storage away, a term the calendar lacks.
            raise _Stop("skipped", exc.message) from None
        done.pages[page] = True
        if LOGIN in PAGES[done.system]:
            done.pages[LOGIN] = True  # a login or a session it opened worked
        return answer

    # The rounds of each system --------------------------------------------------------------

    async def _card(self, done: SystemRound, creds: Credentials) -> None:
        card = self._targets.card
        assert card is not None
        await self._read(done, "account", lambda: card.balance(creds, CALLER, fresh=True))
        await self._read(done, "today", lambda: card.today_transactions(creds, CALLER, fresh=True))

    async def _academic(self, done: SystemRound, creds: Credentials) -> None:
        academic = self._targets.academic
        assert academic is not None
        c = self._config.academic
        try:
            term = academic.term(
                str(c.year) if c.year is not None else None,
                str(c.term) if c.term is not None else None,
            )
        except BadInput as exc:
            raise _Stop("skipped", exc.message) from None
        await self._read(
            done, "timetable", lambda: academic.timetable(creds, term, CALLER, fresh=True)
        )
        await self._read(done, "exams", lambda: academic.exams(creds, term, CALLER, fresh=True))
        if c.grades:
            await self._read(
                done, "grades", lambda: academic.grades(creds, term, CALLER, fresh=True)
            )

    async def _library(self, done: SystemRound) -> None:
        library = self._targets.library
        assert library is not None
        try:
            query = search_query(self._config.library.query)
        except BadInput as exc:
            raise _Stop("skipped", f"canary.library.query: {exc.message}") from None
        found = await self._read(
            done, "search", lambda: library.search("main", query, 1, False, CALLER, fresh=True)
        )
        if not self._config.library.record or found is None:
            return
        record = next((b.record_id for b in found.value.books if b.record_id), "")
        if record:
            await self._read(done, "book", lambda: library.book("main", record, CALLER, fresh=True))

    # A round ------------------------------------------------------------------------------------

    async def run_system(self, system: str) -> SystemRound | None:
        """One round of one system, if it is configured and this process takes its lease
        (None otherwise). Never raises but for cancellation."""
        why = self._skip_reason(system)
        creds: Credentials | None = None
        if not why and system in ("card", "academic"):
            creds, why = self._credentials(system)
        if why:
            self._say_once(system, why)
            return None
        done = SystemRound(system)
        started = time.monotonic()
        try:
            if not await self._leases.try_acquire(
                f"canary:{system}", new_holder_id(), self._config.interval_s
            ):
                return None  # read by another process within the interval
            if creds is not None and await self._refused_before(system, creds):
                raise _Stop(
                    "refused_login",
                    "the school refused this password before; not tried again until it "
                    "changes or canary.refused_backoff_s has passed",
                )
            if system == "card":
                assert creds is not None
                await self._card(done, creds)
            elif system == "academic":
                assert creds is not None
                await self._academic(done, creds)
            else:
                await self._library(done)
            if not all(done.pages.values()):
                done.outcome = "unreadable"
        except _Stop as stop:
            # A page already found unreadable says more than a busy school after it.
            if not (stop.outcome == "skipped" and not all(done.pages.values())):
                done.outcome = stop.outcome
                done.detail = stop.detail
            else:
                done.outcome = "unreadable"
        except StorageUnavailable as exc:
            done.outcome, done.detail = "skipped", exc.message
        except Exception as exc:  # never let one system's round end the others'
            log.exception("canary %s: the round failed", system)
            done.outcome, done.detail = "skipped", type(exc).__name__
        if done.outcome == "refused_login" and creds is not None:
            await self._remember_refusal(system, creds)
        self._report(done, time.monotonic() - started)
        return done

    async def run_round(self) -> list[SystemRound]:
        """Every configured system whose lease this process takes, one after the other."""
        rounds = []
        for system in PAGES:
            done = await self.run_system(system)
            if done is not None:
                rounds.append(done)
        return rounds

    def _report(self, done: SystemRound, seconds: float) -> None:
        for page, readable in done.pages.items():
            metrics.set_canary_page(done.system, page, readable)
        metrics.record_canary_run(done.system, done.outcome, self._wall_clock())
        read = ", ".join(f"{p} {'ok' if ok else 'UNREADABLE'}" for p, ok in done.pages.items())
        line = "canary %s: %s%s%s (%.1fs)"
        args = (
            done.system,
            done.outcome,
            f" [{read}]" if read else "",
            f": {done.detail}" if done.detail else "",
            seconds,
        )
        if done.outcome in ("ok", "skipped"):
            log.info(line, *args)
        else:
            log.warning(line, *args)

    # Refusals -------------------------------------------------------------------------------------

    def _refusal_lease(self, system: str, creds: Credentials) -> str:
        # The verifier (keyed by the server's secret) names the account and password
        # without revealing either: another password is another lease, tried at once.
        return f"canary:{system}:refused:{make_verifier(self._secret, system, creds)[:32]}"

    async def _refused_before(self, system: str, creds: Credentials) -> bool:
        """Whether the school refused this very password within the backoff."""
        name = self._refusal_lease(system, creds)
        if not await self._leases.try_acquire(name, REFUSED_HOLDER, 1.0):
            return True
        await self._leases.release(name, REFUSED_HOLDER, 1.0)  # free: taken only to look
        return False

    async def _remember_refusal(self, system: str, creds: Credentials) -> None:
        backoff = self._config.refused_backoff_s
        if backoff <= 0:
            return
        with contextlib.suppress(StorageUnavailable):
            await self._leases.try_acquire(
                self._refusal_lease(system, creds), REFUSED_HOLDER, backoff
            )

    # The loop -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (nothing if `canary.enabled` is false)."""
        if self._config.enabled and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Let a round under way end (within `shutdown_grace_s`, then cancel it)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), self._settings.shutdown_grace_s)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _loop(self) -> None:
        look = self._config.interval_s / LOOKS_PER_INTERVAL
        # Workers (and hosts) started together would otherwise all look at once.
        pause = random.uniform(0, look)
        while not await self._stopped_within(pause):
            try:
                await self.run_round()
            except Exception:  # never let the loop die: the next round may do better
                log.exception("canary: a round failed")
            pause = look * random.uniform(0.5, 1.5)

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        return self._stopping.is_set()
