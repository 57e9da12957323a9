"""The term-start-prefetched workload: term start on jnufm after `python server.py
prefetch timetable` filled the cache, against the plain term start
(`python -m bench run --workloads term-start-prefetched`).

jnufm (c) on a server of its own (`bench/configs/default.yaml`), a fresh database, the
academic office on `jnu-2013`. The term asked is the one the prefetch fetches: the
campus calendar's term under way today (the server's config, `campus.terms`; 2026
term 1 on the defaults in the autumn of 2026, the term of the term-start workload).

1. plain: the term-start load (wrk -c C on the 2013 URL `/class/get?user=...&password=
   <last 6 digits>`, each request a new student, `PLAIN_BASE` + i), nothing prefetched:
   the term-start workload on this server.
2. Set-up (not timed as load; its time is recorded): the other students
   (`PREFETCHED_BASE` + i, as many as the load will ask) get an academic office session
   token each, written with the server's own store code (services/tokens.py
   TokenStore.create_session, the password sealed by the server's vault), as the watch
   workload makes its tokens. They stand for tokens students made through their apps
   earlier (`POST /v1/sessions?system=academic`), whose answers have aged out by term
   start: a token made through the API now would fetch today's timetable itself, and
   leave the prefetch nothing to do.
3. The operator's step: `python server.py prefetch timetable --config <prefetch.yaml>`,
   a process beside the running server. It fetches, one student at a time, the current
   term's timetable of every student with a live academic office token
   (runtime/prefetch.py). Its pace is the watches' ceiling, `watches.school_requests_per_min`
   (60 by default: 30 students a minute, 2 school requests charged each, in a bucket of
   the prefetch's own); for a quiet-hours run the operator gives the prefetch a copy of
   the server's config with that key raised (`prefetch.yaml` beside it,
   `PREFETCH_CEILING_PER_MIN`, recorded): the running server keeps its own. Its duration,
   exit code, summary line and the school's requests during it are recorded; it is
   stopped at `Size.prefetch_s`.
4. prefetched: the same load on the prefetched students.

Figures per phase: requests/s, answers/s, p50/p99, failed, the server's answers by
status, the school's requests (per answer), peak in flight, errors, logins and captchas.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from bench import load, procs
from bench.procs import CARD, CONFIGS, School, System
from bench.report import fmt
from db.engine import make_engine, make_sessionmaker
from harness.processes import ROOT
from services.campus import CampusCalendar, Term, campus_today
from services.credentials import Credentials, make_verifier
from services.gate import ATTEMPT_CHARS
from services.pipeline import utc_now
from services.tokens import TokenStore
from services.vault import SessionVault
from settings import Settings, load_settings

KEY: Final = "term-start-prefetched"
ACADEMIC: Final = "academic"
# The plain phase's students are the term-start workload's; the prefetched ones others.
PLAIN_BASE: Final = load.TERM_START_BASE
PREFETCHED_BASE: Final = load.TERM_START_BASE + 500000
# The prefetch's ceiling (school requests a minute) in the copy of the server's config it
# reads: a quiet-hours run. The server's own (its default) is 60.
PREFETCH_CEILING_PER_MIN: Final = 1200.0
CLIENT: Final = "bench-prefetch"
SETUP_LANES: Final = 8
# The school's own counters of a phase (academic office).
COUNTS: Final = ("logins_ok", "logins_failed", "captcha_fetches", "captcha_wrong")


@dataclass(frozen=True)
class Size:
    """How big one run is: each phase asks `requests` answers at `connections`, within
    `seconds`; the prefetch may take `prefetch_s`."""

    requests: int
    connections: int
    seconds: float

    @property
    def students(self) -> int:
        return self.requests + self.connections

    @property
    def prefetch_s(self) -> float:
        """The prefetch's time cap: a minute, and two seconds a student."""
        return 60.0 + 2.0 * self.students


QUICK: Final = Size(30, 10, 15)
FULL: Final = Size(300, 20, 120)


def start_jnufm(tmp: Path, school: School, processes: int, database_url: str | None) -> System:
    """jnufm as system (c), a database of its own."""
    overlay = CONFIGS / "default.yaml"
    return procs.start_jnufm(tmp, KEY, overlay, school.url, processes, database_url)


def prefetch_config(system: System) -> Path:
    """The prefetch's config: the server's, with the quiet-hours ceiling."""
    server = Path(system.extra["config_path"])
    config = yaml.safe_load(server.read_text()) or {}
    ceiling = {"watches": {"school_requests_per_min": PREFETCH_CEILING_PER_MIN}}
    path = server.with_name("prefetch.yaml")
    path.write_text(yaml.safe_dump(procs.deep_merge(config, ceiling), sort_keys=False))
    return path


def server_settings(system: System) -> Settings:
    return load_settings(Path(system.extra["config_path"]), env={})


def current_term(settings: Settings) -> Term:
    """The term the prefetch fetches: the calendar's term under way today."""
    term = CampusCalendar(settings.campus).current(campus_today(utc_now()))
    if term is None:
        raise RuntimeError("prefetch: no term of campus.terms has started")
    return term


def students(base: int, size: Size) -> list[str]:
    """One distinct student per request, and one per connection (those in flight when
    the count is reached), as the term-start workload asks."""
    return [str(base + i) for i in range(size.students)]


async def _make_tokens(settings: Settings, who: Sequence[str]) -> None:
    key = settings.secret_key.encode()
    engine = make_engine(settings.database)
    tokens = TokenStore(make_sessionmaker(engine), settings.tokens, SessionVault(key), utc_now)
    todo = iter(who)

    async def lane() -> None:
        for student in todo:
            # The simulated school's password: the student number's last six digits.
            creds = Credentials(student, student[-6:], proven=True)
            attempt = make_verifier(key, ACADEMIC, creds)[:ATTEMPT_CHARS]
            await tokens.create_session(creds, ACADEMIC, attempt, client=CLIENT)

    try:
        await asyncio.gather(*(lane() for _ in range(SETUP_LANES)))
    finally:
        await tokens.aclose()
        await engine.dispose()


def _school(school: School) -> dict[str, Any]:
    stats = school.stats(ACADEMIC)
    return {
        "school_requests": stats["requests"],
        "school_peak_in_flight": stats["peak_in_flight"],
        "school_errors": stats["errors"],
        "school_by_status": stats.get("by_status"),
        "school_counts": {k: stats[k] for k in COUNTS if k in stats},
    }


def _quiet(school: School) -> None:
    school.wait_idle(systems=(CARD, ACADEMIC))
    school.reset(ACADEMIC)
    school.reset(CARD)


def phase(
    system: System,
    school: School,
    size: Size,
    tmp: Path,
    name: str,
    who: Sequence[str],
    term: Term,
) -> dict[str, Any]:
    """The term-start load on these students; its figures."""
    _quiet(school)
    before = system.statuses()
    paths = [load.timetable_path(s, term.year, term.term) for s in who]
    r = load.wrk_paths(
        system.url, size.connections, size.seconds, tmp, f"{KEY}-{name}", paths, limit=size.requests
    )
    out: dict[str, Any] = {**r.as_dict(), **_school(school)}
    time.sleep(0.2)
    out["statuses"] = dict(sorted((system.statuses() - before).items()))
    out["answers_per_s"] = round(r.answers / r.seconds, 2) if r.seconds else None
    out["school_requests_per_answer"] = (
        round(out["school_requests"] / r.answers, 2) if r.answers else None
    )
    out["capped"] = r.completed < size.requests
    return out


def run_prefetch(system: System, school: School, size: Size) -> dict[str, Any]:
    """`python server.py prefetch timetable --config <prefetch.yaml>`; its figures."""
    _quiet(school)
    cmd = [
        procs.server_python(),
        "server.py",
        "prefetch",
        "timetable",
        "--config",
        str(prefetch_config(system)),
    ]
    t0 = time.monotonic()
    timed_out = False
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=size.prefetch_s
        )
        code: int | None = proc.returncode
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        timed_out, code = True, None
        output = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
    seconds = time.monotonic() - t0
    school.wait_idle(systems=(ACADEMIC,))
    summary = next(
        (line for line in reversed(output.splitlines()) if line.startswith("prefetch")), ""
    )
    return {
        "command": "python server.py prefetch timetable --config prefetch.yaml",
        "config": "the server's, watches.school_requests_per_min changed",
        "seconds": round(seconds, 1),
        "exit_code": code,
        "timed_out": timed_out,
        "summary": summary,
        "ceiling_per_min": PREFETCH_CEILING_PER_MIN,
        **_school(school),
    }


def measure(
    system: System,
    school: School,
    size: Size,
    tmp: Path,
    log: Callable[[str], None],
    school_profile: str = "jnu-2013",
) -> dict[str, Any]:
    """The plain phase, the set-up, the prefetch, the prefetched phase; every figure."""
    if school.profile_of(ACADEMIC) != school_profile:
        school.use_profile(school_profile, ACADEMIC)
    settings = server_settings(system)
    term = current_term(settings)
    notes: list[str] = []
    plain_students = students(PLAIN_BASE, size)
    log(f"  {KEY}: plain, {size.requests} students' timetables ({term.year} term {term.term})")
    plain = phase(system, school, size, tmp, "plain", plain_students, term)
    log("  " + _line("plain", plain))
    who = students(PREFETCHED_BASE, size)
    t0 = time.monotonic()
    asyncio.run(_make_tokens(settings, who))
    setup_s = time.monotonic() - t0
    log(f"  {KEY}: {len(who)} academic office tokens made in {setup_s:.1f} s; prefetching")
    prefetch = run_prefetch(system, school, size)
    log(
        f"  {KEY}: prefetch in {prefetch['seconds']} s, exit {prefetch['exit_code']}, "
        f"{prefetch['school_requests']} school requests: {prefetch['summary']}"
    )
    if prefetch["timed_out"]:
        notes.append(f"prefetch stopped at {size.prefetch_s:g} s")
    prefetched = phase(system, school, size, tmp, "prefetched", who, term)
    log("  " + _line("prefetched", prefetched))
    for name, p in (("plain", plain), ("prefetched", prefetched)):
        if p["capped"]:
            notes.append(
                f"{name} capped at {size.seconds:g} s: {p['completed']} of {size.requests} done"
            )
    return {
        "system": system.key,
        "workload": KEY,
        # The prefetched phase's figures on top, as other workloads' results have theirs.
        **{k: prefetched[k] for k in ("rps", "p50_ms", "p99_ms", "completed", "failed")},
        "term": f"{term.year}-{term.term}",
        "students": len(who),
        "time_limit_s": size.seconds,
        "connections": size.connections,
        "plain": plain,
        "setup": {"tokens": len(who), "seconds": round(setup_s, 1), "how": "server's store code"},
        "prefetch": prefetch,
        "prefetched": prefetched,
        "rss_mb": {str(pid): mb for pid, mb in system.rss().items()},
        "notes": notes,
    }


def _line(name: str, p: dict[str, Any]) -> str:
    return (
        f"{name:<10} {p['rps']:>8.2f} req/s  {p['answers_per_s']} answers/s  "
        f"p50 {p['p50_ms']} ms  p99 {p['p99_ms']} ms  failed {p['failed']}/{p['completed']}  "
        f"school {p['school_requests']} requests ({p['school_requests_per_answer']} per answer)"
    )


def _errors(p: dict[str, Any]) -> str:
    errors = {k: v for k, v in (p.get("school_errors") or {}).items() if v}
    return ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"


def _bad(p: dict[str, Any]) -> str:
    bad = {k: v for k, v in (p.get("statuses") or {}).items() if not k.startswith("2") and v}
    return " (" + ", ".join(f"{k}: {v}" for k, v in sorted(bad.items())) + ")" if bad else ""


def _logins(p: dict[str, Any]) -> str:
    c = p.get("school_counts") or {}
    return (
        f"logins {c.get('logins_ok', 0)} ok / {c.get('logins_failed', 0)} refused; "
        f"captchas {c.get('captcha_fetches', 0)} ({c.get('captcha_wrong', 0)} wrong)"
    )


def table(doc: dict[str, Any]) -> str:
    """The workload's table, empty without its result."""
    rows = [r for r in doc["results"] if r["workload"] == KEY]
    if not rows:
        return ""
    lines = [
        "Term start after `python server.py prefetch timetable`, jnufm (c) on a server of "
        "its own: the plain term start, the prefetch, the same load on the prefetched "
        "students (the 2013 URL, each request a new student):",
        "",
        "| phase | req/s | answers/s | p50 ms | p99 ms | failed / done | school requests "
        "(per answer) | school peak in flight | school errors | at the school | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        for name in ("plain", "prefetched"):
            p = r[name]
            lines.append(
                f"| {name} ({r['students']} students, -c {r['connections']}) "
                f"| {fmt(p['rps'])} | {fmt(p['answers_per_s'])} "
                f"| {fmt(p['p50_ms'])} | {fmt(p['p99_ms'])} "
                f"| {p['failed']}{_bad(p)} / {p['completed']} "
                f"| {p['school_requests']} ({fmt(p['school_requests_per_answer'])}) "
                f"| {fmt(p['school_peak_in_flight'])} | {_errors(p)} | {_logins(p)} "
                f"| {'capped' if p['capped'] else ''} |"
            )
        f = r["prefetch"]
        ended = "timed out" if f["timed_out"] else f"exit {f['exit_code']}"
        lines.append(
            f"| the prefetch ({r['setup']['tokens']} tokens; ceiling "
            f"{f['ceiling_per_min']:g} school requests/min) | | | | | "
            f"{ended} in {f['seconds']} s | {f['school_requests']} "
            f"| {fmt(f['school_peak_in_flight'])} "
            f"| {_errors(f)} | {_logins(f)} | {f['summary']} |"
        )
        if r["notes"]:
            lines.append("")
            lines.append(f"Term {r['term']}; " + "; ".join(r["notes"]) + ".")
    return "\n".join(lines)
