"""The second round of fault drills: reloads in a database outage, a hanging school,
kills while holding a school slot, a database that dies again and again, oversized
covers, secrets sent in every shape. Each returns its figures and the claims it
checks (`checks`: held or not); bench/drills.py runs them with the first round and
prints the verdicts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from bench.drills import (
    BUDGETS,
    DEADLINE_S,
    DEFAULT_OVERLAY,
    Load,
    OwnMariaDB,
    ask,
    check,
    jnufm_on,
    no_500,
    school_within_budget,
    steady,
    students,
    warm_up,
)
from bench.procs import CARD, School, System, start_jnufm, start_school
from bench.slow_body import drill_slow_body
from bench.storage_growth import drill_storage_growth
from harness.processes import http_json

HANG_MS = 15000  # every school request takes this long in the hang drills


def _hang(school: School, system: str, ms: float = HANG_MS) -> None:
    """Every request to one simulated system takes `ms` from now on."""
    http_json(
        school.side(system) + "/control",
        {"latency_ms_median": ms, "latency_ms_min": ms, "latency_ms_max": ms, "latency_sigma": 0},
    )


async def _request(
    client: httpx.AsyncClient,
    url: str,
    load: Load,
    *,
    params: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    method: str = "GET",
) -> int:
    """One request, recorded in `load` with its status and error code."""
    began = time.monotonic()
    try:
        reply = await client.request(method, url, params=params, auth=auth, timeout=60)
        status = reply.status_code
        source = reply.headers.get("Cache-Status", "")
        if status >= 400:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                load.codes[f"{status} {reply.json()['error']['code']}"] += 1
            if status in (503, 504) and "Retry-After" not in reply.headers:
                load.codes[f"{status} without Retry-After"] += 1
    except httpx.HTTPError:
        status, source = 599, "cut"
    load.add(began, status, source)
    return status


def random_isbn(rng: random.Random) -> str:
    """A valid ISBN-13 (978 prefix, right check digit) the cover service may know."""
    body = f"978{rng.randrange(10**9):09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


# --- a reload and a worker replaced while the database is away ---------------------


async def drill_db_reload(tmp: Path, seconds: float) -> dict[str, Any]:
    """MariaDB killed; 3 s later a reload (SIGHUP: every worker replaced), 3 s after that
    a worker SIGKILLed; the warm answers must go on."""
    db = OwnMariaDB(tmp)
    db.start()
    school = start_school(tmp, "fast")
    system = jnufm_on(db, tmp, school, "db-reload")
    master = system.children[0]
    try:
        warm = [f"201020{i:04d}" for i in range(50)]
        await warm_up(system.url, warm)
        load = Load()
        outage_s = max(15.0, seconds / 2)
        running = asyncio.ensure_future(
            steady(system.url, warm, students("201021"), outage_s + 6, load, cold_share=0.0)
        )
        await asyncio.sleep(3)
        db.kill()
        killed = time.monotonic()
        await asyncio.sleep(3)
        before = set(system.worker_pids())
        master.popen.send_signal(signal.SIGHUP)
        await asyncio.sleep(3)
        replaced = sorted(set(system.worker_pids()) - before)
        if replaced:
            os.kill(replaced[0], signal.SIGKILL)
        await asyncio.sleep(max(0.0, outage_s - (time.monotonic() - killed)))
        db.start()
        restored = time.monotonic()
        await running
        outage = [
            r for r in load.replies if killed - load.started <= r[0] < restored - load.started
        ]
        ok = sum(1 for r in outage if r[2] == 200)
        share = ok / len(outage) if outage else 0.0
        return {
            **load.summary(),
            "during_outage": {"requests": len(outage), "answered_200": ok},
            "workers_replaced_by_reload": len(replaced),
            "checks": [
                check(
                    "warm answers kept through a reload and a worker kill in a database outage",
                    share >= 0.99 and bool(outage),
                    f"{ok}/{len(outage)} ({100 * share:.1f}%; goal >= 99%)",
                ),
                no_500(load),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()
        db.stop()


# --- every system hangs -----------------------------------------------------------


def _cold_asks(system: str, n: int) -> tuple[str, dict[str, str], tuple[str, str] | None]:
    """The n-th never-asked question to one system: (path, query, basic auth)."""
    student = f"2010{30 + list(BUDGETS).index(system):02d}{n:04d}"
    if system == CARD:
        return "/card/rest", {"stuid": student, "password": student[-6:]}, None
    if system == "academic":
        return "/v1/timetable", {"year": "2026", "term": "1"}, (student, student[-6:])
    if system in ("opac", "ilas"):
        campus = "main" if system == "opac" else "zhuhai"
        return (
            "/v1/library/search",
            {"q": f"drill {n} {random.random():.6f}", "campus": campus},
            None,
        )
    return f"/isbn/image/{random_isbn(random.Random())}", {}, None


async def drill_school_hang(tmp: Path, seconds: float) -> dict[str, Any]:
    """Every request to every school system takes 15 s from one moment on: each system's
    breaker must open within 2 x the deadline, and the school stay within its budget."""
    school = start_school(tmp, "fast")
    system = start_jnufm(tmp, "school-hang", DEFAULT_OVERLAY, school.url, 2)
    limit_s = 2 * DEADLINE_S
    try:
        loads = {name: Load() for name in BUDGETS}
        first_503: dict[str, float] = {}
        run_s = max(seconds, limit_s + 10)
        async with httpx.AsyncClient() as client:
            # A few good answers first: the breakers' windows hold successes when the
            # hang begins, as in production.
            for name in BUDGETS:
                for n in range(4):
                    path, params, auth = _cold_asks(name, n)
                    await _request(client, system.url + path, Load(), params=params, auth=auth)
            for name in BUDGETS:
                _hang(school, name)
            began = time.monotonic()
            stop_at = began + run_s
            counters = {name: iter(range(100, 10**6)) for name in BUDGETS}

            async def loop(name: str) -> None:
                while time.monotonic() < stop_at:
                    path, params, auth = _cold_asks(name, next(counters[name]))
                    load = loads[name]
                    status = await _request(
                        client, system.url + path, load, params=params, auth=auth
                    )
                    if status == 503 and load.codes.get("503 school_unavailable"):
                        first_503.setdefault(name, round(time.monotonic() - began, 2))
                    await asyncio.sleep(0.05)

            await asyncio.gather(*(loop(name) for name in BUDGETS for _ in range(3)))
        all_load = Load()
        for load in loads.values():
            all_load.replies.extend(load.replies)
            all_load.codes.update(load.codes)
        checks = [
            check(
                f"{name}: the breaker opens within 2 x deadline ({limit_s:.0f} s) of a hang",
                first_503.get(name, float("inf")) <= limit_s,
                f"first 503 school_unavailable after {first_503.get(name, 'never')} s",
            )
            for name in BUDGETS
        ]
        return {
            **all_load.summary(),
            "per_system": {
                name: {**load.summary(), "first_503_after_s": first_503.get(name)}
                for name, load in loads.items()
            },
            "checks": [*checks, no_500(all_load), school_within_budget(school, tuple(BUDGETS))],
        }
    finally:
        system.stop()
        school.stop()


# --- a worker killed while it holds a school slot -----------------------------------


def slot_holders(system: System, school_system: str = "card") -> list[int]:
    """Pids of the workers holding a budget slot of one system now (from the leases)."""
    path = str(system.extra["config"]["database"]["url"]).split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(path, timeout=5)) as db:
        rows = db.execute(
            "SELECT holder FROM leases WHERE name LIKE ?", (f"budget:{school_system}:%",)
        ).fetchall()
    pids = {
        int(h.split(":")[1]) for (h,) in rows if h.count(":") >= 2 and h.split(":")[1].isdigit()
    }
    return sorted(pids & set(system.worker_pids()))


async def drill_budget_kill(tmp: Path, seconds: float) -> dict[str, Any]:
    """School requests take 15 s; the worker holding a card slot is SIGKILLed every few
    seconds, under cold load: the school must never see more than the budget in flight."""
    school = start_school(tmp, "fast")
    system = start_jnufm(tmp, "budget-kill", DEFAULT_OVERLAY, school.url, 2)
    master = system.children[0]
    try:
        _hang(school, CARD)
        load = Load()
        run_s = max(seconds, 40.0)
        running = asyncio.ensure_future(
            steady(system.url, [], students("201040"), run_s, load, clients=12)
        )
        kills = 0
        stop_at = time.monotonic() + run_s - 4
        while time.monotonic() < stop_at and master.popen.poll() is None:
            await asyncio.sleep(1)
            holders = await asyncio.to_thread(slot_holders, system)
            if holders:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(holders[0], signal.SIGKILL)
                    kills += 1
                await asyncio.sleep(5)
        await running
        return {
            **load.summary(),
            "workers_killed": kills,
            "school_peak_in_flight": school.stats()["peak_in_flight"],
            "checks": [
                check("workers holding a slot were killed", kills > 0, f"{kills}"),
                school_within_budget(school),
                no_500(load),
            ],
        }
    finally:
        system.stop()
        school.stop()


# --- the database dies in the middle of requests, again and again ------------------


async def drill_db_flap(tmp: Path, seconds: float) -> dict[str, Any]:
    """MariaDB SIGKILLed and restarted (up to 15 times) at random moments under mixed load (warm,
    cold, sessions, library): never a 500, every 503 with Retry-After."""
    db = OwnMariaDB(tmp)
    db.start()
    school = start_school(tmp, "fast")
    system = jnufm_on(db, tmp, school, "db-flap")
    try:
        warm = [f"201050{i:04d}" for i in range(30)]
        await warm_up(system.url, warm)
        load = Load()
        stop_at = time.monotonic() + seconds
        cold = students("201051")
        async with httpx.AsyncClient() as client:

            async def loop(kind: int) -> None:
                rng = random.Random(kind)
                while time.monotonic() < stop_at:
                    student = rng.choice(warm)
                    if kind % 4 == 0:
                        await ask(client, system.url, student, load)
                    elif kind % 4 == 1:
                        await ask(client, system.url, next(cold), load)
                    elif kind % 4 == 2:
                        await _request(
                            client, system.url + "/v1/sessions", load, method="POST",
                            auth=(student, student[-6:]),
                        )  # fmt: skip
                    else:
                        await _request(
                            client, system.url + "/v1/library/search", load,
                            params={"q": f"flap {rng.randrange(50)}"},
                        )  # fmt: skip
                    await asyncio.sleep(0.01)

            async def flap() -> int:
                cycles = 0
                while time.monotonic() < stop_at - 4 and cycles < 15:
                    await asyncio.sleep(random.uniform(0.5, 2.0))
                    db.kill()
                    await asyncio.sleep(random.uniform(0.5, 2.0))
                    await asyncio.to_thread(db.start)
                    cycles += 1
                return cycles

            flapping = asyncio.ensure_future(flap())
            await asyncio.gather(*(loop(k) for k in range(12)))
            cycles = await flapping
        missing_retry = sum(n for code, n in load.codes.items() if "without Retry-After" in code)
        return {
            **load.summary(),
            "database_kills": cycles,
            "checks": [
                check("the database was killed mid-request", cycles > 0, f"{cycles} kills"),
                no_500(load),
                check("every 503/504 carries Retry-After", missing_retry == 0, f"{missing_retry}"),
                school_within_budget(school),
            ],
        }
    finally:
        system.stop()
        school.stop()
        db.stop()


# --- one request's failure is not the system's -----------------------------------


def _covered_isbns(school: School, n: int) -> list[str]:
    """ISBNs the simulated cover service has a cover for."""
    found: list[str] = []
    rng = random.Random(7)
    while len(found) < n:
        isbn = random_isbn(rng)
        if http_json(school.side("covers") + f"/isbn/{isbn}")["cover"]:
            found.append(isbn)
    return found


async def drill_covers_oversize(tmp: Path, seconds: float) -> dict[str, Any]:
    """Covers larger than school.covers.max_bytes for a while, asked from many ISBNs:
    refused one by one (the placeholder), never opening the cover breaker for all."""
    school = start_school(tmp, "fast")
    system = start_jnufm(tmp, "covers-oversize", DEFAULT_OVERLAY, school.url, 2)
    try:
        isbns = _covered_isbns(school, 40)
        load = Load()
        async with httpx.AsyncClient() as client:
            http_json(school.side("covers") + "/drill", {"answer": "oversize"})
            for isbn in isbns[:20]:
                await _request(client, f"{system.url}/isbn/image/{isbn}", load)
            http_json(school.side("covers") + "/drill", {"answer": "image"})
            after = Load()
            for isbn in isbns[20:]:
                await _request(client, f"{system.url}/isbn/image/{isbn}", after)
        refused = sum(1 for r in load.replies + after.replies if r[2] == 503)
        images = sum(1 for r in after.replies if r[2] == 200)
        both = Load()
        both.replies = load.replies + after.replies
        return {
            "oversize": load.summary(),
            "after": after.summary(),
            "checks": [
                check(
                    "oversized covers never open the cover breaker (no 503)",
                    refused == 0,
                    f"{refused} x 503 of {len(both.replies)}",
                ),
                check(
                    "other covers are served after them",
                    images == len(after.replies),
                    f"{images}/{len(after.replies)} images",
                ),
                no_500(both),
            ],
        }
    finally:
        system.stop()
        school.stop()


# --- secrets in every shape never reach the log ------------------------------------

SECRET = "Zq7-drill-secret-913"  # noqa: S105 - the bait the log must never show


def _raw_request(port: int, request_line: str, headers: dict[str, str]) -> None:
    """Send one raw HTTP/1.1 request (shapes a client library would normalise away)."""
    head = request_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall((head + "Connection: close\r\n\r\n").encode())
        with contextlib.suppress(OSError):
            while sock.recv(65536):
                pass


def _secret_shapes(token: str) -> Iterator[tuple[str, str]]:
    """(request line, what it hides) pairs: passwords and tokens in every shape seen."""
    s = SECRET
    yield f"GET /card/rest?stuid=2010600001&password={s} HTTP/1.1", "password in the query"
    yield f"GET /card/rest%3Fpassword={s} HTTP/1.1", "%3Fpassword= in the path"
    yield f"GET /card/rest?stuid=1&password[]={s} HTTP/1.1", "password[]="
    yield f"GET /card/rest?stuid=1&pass%77ord={s} HTTP/1.1", "percent-encoded key"
    yield f"GET /card/rest?stuid=1&pin={s} HTTP/1.1", "pin="
    yield f"GET /card/rest;password={s} HTTP/1.1", ";password="
    yield f"GET /card/rest/{s} HTTP/1.1", "a path segment"
    yield f"GET http://127.0.0.1/card/rest?password={s} HTTP/1.1", "absolute URI"
    yield f"GET http://127.0.0.1/v1/calendar/{token}.ics HTTP/1.1", "feed token, absolute URI"
    yield f"GET /v1/calendar/{token}.ics HTTP/1.1", "feed token"


def _logged(request_line: str, log_text: str) -> bool:
    """Whether the secret of this request line appears in the log next to its path."""
    path = request_line.split(" ")[1].split(SECRET)[0][-12:]
    return any(SECRET in line and path in line for line in log_text.splitlines())


async def drill_log_leak(tmp: Path, seconds: float) -> dict[str, Any]:
    """Passwords and a live feed token sent in every shape an attacker tried: none may
    appear in the server's log."""
    school = start_school(tmp, "fast")
    system = start_jnufm(tmp, "log-leak", DEFAULT_OVERLAY, school.url, 2)
    try:
        student = "2010600001"
        async with httpx.AsyncClient() as client:
            reply = await client.post(
                system.url + "/v1/calendar/tokens",
                data={"feed": "all"},
                auth=(student, student[-6:]),
                timeout=30,
            )
        token = str(reply.json().get("token", "")) if reply.status_code == 201 else ""
        port = int(system.url.rsplit(":", 1)[1])
        shapes = list(_secret_shapes(token or "missing-token-xxxxxxxxxxxx"))
        for line, _ in shapes:
            await asyncio.to_thread(_raw_request, port, line, {"Host": "127.0.0.1"})
        await asyncio.sleep(1.0)
        log_text = await asyncio.to_thread(
            Path(system.extra["log_path"]).read_text, errors="replace"
        )
        leaked = [what for line, what in shapes if SECRET in line and _logged(line, log_text)]
        token_leaked = bool(token) and token in log_text
        return {
            "shapes": len(shapes),
            "feed_token_made": bool(token),
            "checks": [
                check("a feed token could be made", bool(token), f"status {reply.status_code}"),
                check(
                    "no password shape reaches the log",
                    SECRET not in log_text,
                    "none" if SECRET not in log_text else ", ".join(leaked),
                ),
                check("no feed token reaches the log", not token_leaked, str(token_leaked)),
            ],
        }
    finally:
        system.stop()
        school.stop()


DRILLS: dict[str, Callable[[Path, float], Any]] = {
    "db-reload": drill_db_reload,
    "school-hang": drill_school_hang,
    "budget-kill": drill_budget_kill,
    "db-flap": drill_db_flap,
    "covers-oversize": drill_covers_oversize,
    "log-leak": drill_log_leak,
    "slow-body": drill_slow_body,
    "storage-growth": drill_storage_growth,
}
