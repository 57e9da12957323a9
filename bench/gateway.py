"""The gateway workload: one address asking for many students, as a WeChat server, an app's
backend or a campus NAT does (`python -m bench run --workloads gateway`).

The plan (fixed by seed): `students` distinct student numbers drawn from the
simulator's `20[01]NNNNNNN`, each asking its balance through the 2013 URL
(`GET /card/rest?stuid=&password=`, the right password: its last 6 digits)
once, plus `repeats` more asks drawn Zipf over the students' popularity
ranks, all shuffled together; 5% of the students mistype once: their first
ask is preceded by a wrong 6-digit password. A student waits for its answer
before asking again (a person does not ask twice at once), so a mistyper's
right password goes out once its wrong one is answered.

The load generator is ours (asyncio, keep-alive connections, one request in
flight per connection, like wrk's), because wrk cannot tell which request an
answer belongs to: every answer is classified by the request it answers
(right or wrong password; a student answered before or not yet), its status
and its error code. It stops taking new asks at the time cap; asks already sent
are answered (each within the server's own deadline) and counted.

Cases: jnufm with the server's defaults (`bench/configs/gateway.yaml`: no
limit lifted) on a fresh database, (1) the address registered as a client
with `python server.py clients add wechat-2013 --address 127.0.0.1 --no-key`
before the load, as the 2013 bot would be, (2) unregistered (a campus NAT);
and the 2013 replica, which knows no clients (one run).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import random
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import load, procs
from bench.procs import CARD, CONFIGS, School, System
from harness.processes import ROOT

SEED = 2013
ZIPF_S = 1.1  # as the search workload's words: a few students ask very often
MISTYPE_SHARE = 0.05
CLIENT_NAME = "wechat-2013"
CLIENT_ADDRESS = "127.0.0.1"
OVERLAY = CONFIGS / "gateway.yaml"
# 429 codes that refuse a password for a lockout or a limit (student_busy is counted
# apart: it refuses a student's extra queries while one is fetched).
LIMIT_CODES = ("too_many_failed_logins", "rate_limited", "client_slowed")
# A request refused before anything (costs nothing): it shows which client a worker
# takes the address for, in the access line.
PROBE_PATH = "/card/rest?stuid=probe&password=0"


@dataclass(frozen=True)
class Case:
    """One way the load reaches a system: as a registered client or as an anonymous
    address; `own` = on a freshly started server (its own database)."""

    key: str
    label: str
    registered: bool
    own: bool


CLIENT = Case("client", f"registered client ({CLIENT_NAME}, by address, no key)", True, True)
ANONYMOUS = Case("anonymous", "unregistered address (defaults)", False, True)
REPLICA = Case("anonymous", "one address (2013 knew no clients)", False, False)


def cases(system_key: str) -> list[Case]:
    """The cases run on a system: jnufm both, the replica one (nothing to register)."""
    return [REPLICA] if system_key == "replica" else [CLIENT, ANONYMOUS]


@dataclass(frozen=True)
class Ask:
    """One request of the plan: a student's balance, with the right or a wrong password."""

    student: int  # index into Plan.students
    wrong: bool = False
    first: bool = False  # the student's first ask with the right password


@dataclass(frozen=True)
class Plan:
    """The students, who mistypes, and the order of the asks."""

    students: list[str]
    wrong_passwords: dict[int, str]
    asks: list[Ask]

    def path(self, ask: Ask) -> str:
        stuid = self.students[ask.student]
        if ask.wrong:
            return f"/card/rest?stuid={stuid}&password={self.wrong_passwords[ask.student]}"
        return load.balance_path(stuid)

    def facts(self) -> dict[str, Any]:
        right = [a for a in self.asks if not a.wrong]
        counts = collections.Counter(a.student for a in right)
        top = counts.most_common(1)[0][1] if counts else 0
        return {
            "students": len(self.students),
            "mistypers": len(self.wrong_passwords),
            "asks": len(self.asks),
            "right_password_asks": len(right),
            "wrong_password_asks": len(self.asks) - len(right),
            "zipf_s": ZIPF_S,
            "seed": SEED,
            "top_student_share": round(top / len(right), 3) if right else 0.0,
            "students_asking_once": sum(1 for n in counts.values() if n == 1),
        }


def make_plan(students: int, repeats: int, seed: int = SEED) -> Plan:
    """`students` distinct students, `repeats` more asks drawn Zipf over them, shuffled;
    MISTYPE_SHARE of the students send a wrong password before their first ask."""
    rng = random.Random(seed)
    numbers = [str(n) for n in rng.sample(range(2000000000, 2020000000), students)]
    popularity = list(range(students))
    rng.shuffle(popularity)  # popularity rank k -> student popularity[k]
    drawn = load.zipf_sequence(students, repeats, ZIPF_S, seed) if repeats else []
    order = list(range(students)) + [popularity[k] for k in drawn]
    rng.shuffle(order)
    mistypers = rng.sample(range(students), round(students * MISTYPE_SHARE))
    wrong: dict[int, str] = {}
    for i in mistypers:
        while True:
            password = f"{rng.randrange(10**6):06d}"
            if password != numbers[i][-6:]:
                wrong[i] = password
                break
    asks: list[Ask] = []
    seen: set[int] = set()
    for i in order:
        first = i not in seen
        seen.add(i)
        if first and i in wrong:
            asks.append(Ask(i, wrong=True))
        asks.append(Ask(i, first=first))
    return Plan(numbers, wrong, asks)


# --- the load generator ----------------------------------------------------------


@dataclass
class Answer:
    """What one request got: status 0 = no answer (connection failed or timed out)."""

    ask: Ask
    cold: bool  # sent before the student had an answer with data (none cached yet)
    status: int
    code: str  # the error code of the body; "" for an answer with data, "-" if unreadable
    ms: float


class Scheduler:
    """Hands out the plan's asks in order, holding back a student's ask while that
    student waits for an answer; none after the time cap."""

    def __init__(self, asks: Sequence[Ask], stop_at: float) -> None:
        self._asks = asks
        self._next = 0
        self._held: list[int] = []
        self._busy: set[int] = set()
        self._stop_at = stop_at
        self._changed = asyncio.Condition()
        self.capped = False

    def _take(self) -> int | None:
        for j, index in enumerate(self._held):
            if self._asks[index].student not in self._busy:
                del self._held[j]
                return index
        while self._next < len(self._asks):
            index = self._next
            self._next += 1
            if self._asks[index].student in self._busy:
                self._held.append(index)
                continue
            return index
        return None

    @property
    def sent_all(self) -> bool:
        return self._next >= len(self._asks) and not self._held

    async def next(self) -> int | None:
        """The next ask's index, or None when the plan is done or the cap reached."""
        async with self._changed:
            while True:
                if time.monotonic() >= self._stop_at:
                    self.capped = not self.sent_all
                    return None
                index = self._take()
                if index is not None:
                    self._busy.add(self._asks[index].student)
                    return index
                if self.sent_all:
                    return None
                timeout = self._stop_at - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), max(0.0, timeout))

    async def done(self, index: int) -> None:
        async with self._changed:
            self._busy.discard(self._asks[index].student)
            self._changed.notify_all()


class _Closed(Exception):
    """The server closed the connection before any byte of the answer."""


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """GET path; a connection the server had closed while idle is opened again once."""
        reused = self._writer is not None
        try:
            return await self._get(path)
        except _Closed:
            self.close()
            if not reused:
                raise
            return await self._get(path)

    async def _get(self, path: str) -> tuple[int, bytes]:
        reader, writer = await self._open()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n\r\n".encode())
        await writer.drain()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _Closed from None
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(p[:-2] for p in parts)
        else:
            body = await reader.read()
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body


def error_code(status: int, body: bytes) -> str:
    """ "" for an answer with data; else the body's error code ("null" for a 2013-style
    `{"data": null}` without one; "-" for a body that is not the API's JSON)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "-"
    if not isinstance(doc, dict):
        return "-"
    error = doc.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        return str(error["code"])
    if 200 <= status < 300 and doc.get("data") is not None:
        return ""
    return "null"


async def _drive(
    url: str, plan: Plan, concurrency: int, seconds: float, timeout_s: float
) -> tuple[list[Answer], float, bool]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    started = time.monotonic()
    scheduler = Scheduler(plan.asks, started + seconds)
    answers: list[Answer] = []
    answered: set[int] = set()  # students that got an answer with data

    async def connection() -> None:
        conn = Connection(host, port)
        try:
            while True:
                index = await scheduler.next()
                if index is None:
                    return
                ask = plan.asks[index]
                cold = ask.student not in answered
                t0 = time.monotonic()
                try:
                    status, body = await asyncio.wait_for(conn.get(plan.path(ask)), timeout_s)
                    code = error_code(status, body)
                except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, _Closed):
                    conn.close()
                    status, code = 0, "no_answer"
                ms = 1000.0 * (time.monotonic() - t0)
                if code == "" and not ask.wrong:
                    answered.add(ask.student)
                answers.append(Answer(ask, cold, status, code, ms))
                await scheduler.done(index)
        finally:
            conn.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return answers, time.monotonic() - started, scheduler.capped


def drive(
    url: str, plan: Plan, concurrency: int, seconds: float, timeout_s: float = 30
) -> tuple[list[Answer], float, bool]:
    """Send the plan's asks over `concurrency` connections for at most `seconds` (then the
    asks in flight are answered); every answer, the seconds taken, and whether the cap
    cut the plan short."""
    return asyncio.run(_drive(url, plan, concurrency, seconds, timeout_s))


# --- figures -------------------------------------------------------------------


def percentile(sorted_ms: Sequence[float], q: float) -> float | None:
    """The q-quantile (nearest rank) of sorted values, rounded to 0.01 ms."""
    if not sorted_ms:
        return None
    k = min(len(sorted_ms) - 1, max(0, math.ceil(q * len(sorted_ms)) - 1))
    return round(sorted_ms[k], 2)


def _status_code(a: Answer) -> str:
    if a.status == 0:
        return "no answer"
    if a.code == "-":
        return f"{a.status} (not JSON)"
    return f"{a.status} {a.code}" if a.code else str(a.status)


def figures(plan: Plan, answers: Sequence[Answer], seconds: float) -> dict[str, Any]:
    """The client's side of a run: answers by status and code, for right and wrong
    passwords, refusals, the students reached, latency."""
    right = [a for a in answers if not a.ask.wrong]
    wrong = [a for a in answers if a.ask.wrong]
    good = [a for a in right if 200 <= a.status < 300 and a.code == ""]
    refused = collections.Counter(a.code for a in right if a.status == 429)
    ms = sorted(a.ms for a in answers)
    cold = sorted(a.ms for a in right if a.cold)
    warm = sorted(a.ms for a in right if not a.cold)
    answered_students = {a.ask.student for a in good}
    mistyped = {a.ask.student for a in wrong}
    out: dict[str, Any] = {
        "completed": len(answers),
        "seconds": round(seconds, 3),
        "answers": len(good),
        "answers_per_s": round(len(good) / seconds, 2) if seconds else None,
        "rps": round(len(answers) / seconds, 2) if seconds else 0.0,
        "by_status_code": dict(collections.Counter(_status_code(a) for a in answers).most_common()),
        "right": dict(collections.Counter(_status_code(a) for a in right).most_common()),
        "wrong": dict(collections.Counter(_status_code(a) for a in wrong).most_common()),
        "right_sent": len(right),
        "wrong_sent": len(wrong),
        "wrong_answered_401": sum(1 for a in wrong if a.status == 401),
        "right_refused_429": dict(refused.most_common()),
        "right_refused_by_limits": sum(refused[c] for c in LIMIT_CODES),
        "students_asked": len({a.ask.student for a in answers}),
        "students_answered": len(answered_students),
        "mistypers_reached": len(mistyped),
        "mistypers_answered": len(mistyped & answered_students),
        "first_asks": sum(1 for a in right if a.ask.first),
        "cold_asks": len(cold),
        "warm_asks": len(warm),
        "p50_ms": percentile(ms, 0.5),
        "p99_ms": percentile(ms, 0.99),
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else None,
        "max_ms": round(ms[-1], 2) if ms else None,
        # Right passwords of students not answered yet (the school must be asked) and of
        # students answered before (the cache, or a refresh of an answer over fresh_s).
        "cold_p50_ms": percentile(cold, 0.5),
        "cold_p99_ms": percentile(cold, 0.99),
        "warm_p50_ms": percentile(warm, 0.5),
        "warm_p99_ms": percentile(warm, 0.99),
    }
    out["ok"] = sum(1 for a in answers if 200 <= a.status < 300)
    out["non_2xx"] = sum(1 for a in answers if a.status and not 200 <= a.status < 300)
    out["socket_errors"] = sum(1 for a in answers if a.status == 0)
    out["failed"] = out["non_2xx"] + out["socket_errors"]
    out["empty"] = out["ok"] - len([a for a in answers if 200 <= a.status < 300 and not a.code])
    return out


# --- the systems -----------------------------------------------------------------


def start_jnufm(
    tmp: Path, case: Case, school: School, processes: int, database_url: str | None
) -> System:
    """jnufm on the server's defaults (bench/configs/gateway.yaml), its own database."""
    return procs.start_jnufm(
        tmp, f"gateway-{case.key}", OVERLAY, school.url, processes, database_url
    )


def clients_command(system: System, *args: str) -> str:
    """`python server.py clients ARGS --config <the running server's config>`; its output.
    Raises RuntimeError if it fails."""
    config = str(system.extra["config_path"])
    proc = subprocess.run(
        [procs.server_python(), "server.py", "clients", *args, "--config", config],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"clients {' '.join(args)}: {proc.stdout}{proc.stderr}")
    return proc.stdout.strip()


_ACCESS_CLIENT = re.compile(r"\[(\d+)\] jnufm\.access: .* client=(\S+) ")


def access_clients(log_path: Path, start: int = 0) -> collections.Counter[str]:
    """Access lines from byte `start` of the log, by the client they name ("-": none)."""
    with log_path.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    return collections.Counter(name for _, name in _ACCESS_CLIENT.findall(text))


def register(system: System) -> str:
    """Register the load's address as a client (by address, no key) and wait until every
    worker takes the address for it; `clients add`'s output."""
    out = clients_command(system, "add", CLIENT_NAME, "--address", CLIENT_ADDRESS, "--no-key")
    wait_serving(system, CLIENT_NAME)
    return out


def wait_serving(system: System, client: str | None = None, timeout_s: float = 30) -> None:
    """Probe (answered 400, costing nothing) until every worker has answered one, naming
    `client` when given. The load's connections are all opened at once and kept: a
    worker not accepting yet would get none of them for the whole run."""
    log_path = Path(system.extra["log_path"])
    start = log_path.stat().st_size
    workers = set(system.worker_pids())
    seen: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while not workers <= seen:
        if time.monotonic() > deadline:
            missing = sorted(workers - seen)
            raise RuntimeError(
                f"workers {missing} answered no probe" + (f" as {client}" if client else "")
            )
        try:
            with urllib.request.urlopen(system.url + PROBE_PATH, timeout=5):
                pass
        except urllib.error.HTTPError:
            pass
        time.sleep(0.05)
        with log_path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        seen |= {int(pid) for pid, name in _ACCESS_CLIENT.findall(text) if client in (None, name)}


def limits_in_force(system: System, case: Case, got: dict[str, Any]) -> dict[str, Any] | None:
    """The failed-login limit that applied to the load (jnufm's config over its defaults),
    and where the run left it: an unregistered address's allowance (a floor, plus so
    much per distinct student proven right, up to a ceiling) or a registered client's
    failure budget, against the wrong passwords judged (answered 401)."""
    config = system.extra.get("config")
    if config is None:
        return None
    from settings import ClientsSettings, LimitsSettings

    judged = got["wrong_answered_401"]
    if case.registered:
        clients = ClientsSettings(**config.get("clients", {}))
        return {"clients.failures_max": clients.failures_max, "wrong_judged": judged}
    limits = LimitsSettings(**config.get("limits", {}))
    floor, per = limits.failed_logins_ip_max, limits.failed_logins_ip_per_student
    ceiling = limits.failed_logins_ip_ceiling
    proven = got["students_answered"]
    return {
        "limits.failed_logins_ip_max": floor,
        "limits.failed_logins_ip_per_student": per,
        "limits.failed_logins_ip_ceiling": ceiling,
        # The students answered with their right password, as the load generator saw it.
        "students_proven": proven,
        "allowance_at_end": min(ceiling, round(floor + per * proven, 1)),
        "wrong_judged": judged,
    }


@dataclass
class Setup:
    """What measure() needs besides the system: the plan, load shape and school."""

    plan: Plan
    concurrency: int
    seconds: float
    school_profile: str
    budget: int | None
    notes: list[str] = field(default_factory=list)


def measure(
    system_key: str,
    system: System,
    case: Case,
    setup: Setup,
    school: School,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Run the plan against one system in one case; every figure."""
    school.wait_idle()
    if school.profile_of(CARD) != setup.school_profile:
        school.use_profile(setup.school_profile, CARD)
    registered = ""
    if case.registered:
        registered = register(system)
    elif "log_path" in system.extra:
        wait_serving(system)
    school.wait_idle()
    school.reset()
    log_path = system.extra.get("log_path")
    log_start = Path(log_path).stat().st_size if log_path else 0
    before = system.served()
    before_status = system.statuses()
    answers, seconds, capped = drive(system.url, setup.plan, setup.concurrency, setup.seconds)
    stats = school.stats()
    time.sleep(0.2)
    out: dict[str, Any] = {
        "system": system_key,
        "workload": "gateway",
        "case": case.key,
        "case_label": case.label,
        "tool": "bench.gateway",
        "command": (
            f"{setup.concurrency} keep-alive connections, GET /card/rest?stuid=&password= "
            f"for {setup.plan.facts()['students']} students, cap {int(setup.seconds)} s"
        ),
        **figures(setup.plan, answers, seconds),
    }
    notes = list(setup.notes)
    if capped:
        sent = out["completed"]
        notes.append(f"capped at {int(setup.seconds)} s: {sent} of {len(setup.plan.asks)} asks")
    if registered:
        out["registered"] = registered.splitlines()[0]
    limits = limits_in_force(system, case, out)
    if limits is not None:
        out["failed_login_limit"] = limits
    if log_path:
        named = access_clients(Path(log_path), log_start)
        out["access_lines_by_client"] = dict(named.most_common())
    per_worker = system.served() - before
    pids = system.worker_pids()
    counts = sorted((per_worker.get(p, 0) for p in pids), reverse=True)
    out["time_limit_s"] = setup.seconds
    out["capped"] = capped
    out["per_worker"] = {str(pid): per_worker.get(pid, 0) for pid in pids}
    out["statuses"] = dict(sorted((system.statuses() - before_status).items()))
    out["busiest_over_least"] = round(counts[0] / counts[-1], 3) if counts and counts[-1] else None
    out["rss_mb"] = {str(pid): mb for pid, mb in system.rss().items()}
    out["memory_mb"] = {str(pid): mb for pid, mb in system.memory().items()}
    out["school_profile"] = setup.school_profile
    out["school"] = CARD
    out["school_requests"] = stats["requests"]
    out["school_requests_per_answer"] = (
        round(stats["requests"] / out["answers"], 2) if out["answers"] else None
    )
    out["school_peak_in_flight"] = stats["peak_in_flight"]
    out["school_errors"] = stats["errors"]
    out["school_by_status"] = stats.get("by_status")
    out["school_logins"] = {"ok": stats.get("logins_ok"), "refused": stats.get("logins_failed")}
    out["school_budget"] = setup.budget
    out["notes"] = notes
    budget = f" (budget {setup.budget})" if setup.budget is not None else ""
    log(
        f"  gateway/{case.key:<9} {out['answers_per_s']} answers/s  p50 {out['p50_ms']} ms  "
        f"p99 {out['p99_ms']} ms  {out['by_status_code']}  right refused by limits "
        f"{out['right_refused_by_limits']}  wrong 401 {out['wrong_answered_401']}/"
        f"{out['wrong_sent']}  school/answer {out['school_requests_per_answer']}  "
        f"peak {out['school_peak_in_flight']}{budget}"
        + (f"  [{'; '.join(notes)}]" if notes else "")
    )
    return out


def unregister(system: System) -> None:
    """Revoke the client again (a shared --mysql database must not keep it for later runs)."""
    clients_command(system, "revoke", CLIENT_NAME)
