"""The benchmark harness starts and stops every server cleanly (not a benchmark).

Starts the school, the 2013 replica (5 instances + nginx), jnufm with the
bench overlay, the Tornado hello-world and the fixed-body nginx; asks each one
balance query (and the replica and jnufm one timetable and one library
search, the queries of the term-start and search workloads) and runs the load
generators for a moment (the gateway workload's too: a few students through
the replica, and through jnufm with the address registered as a client); then
checks that every process is gone and every port is free again. The wechat
workload runs tiny on a server of its own: a few followers bound, a few
questions, every one answered. The watch workload too: a few watches made in the
server's database, a purchase for two of them, each told once by a signed webhook.

It needs what only the benchmarks need (bench/requirements.txt, nginx, ab and
wrk) and is skipped, saying what is missing, where they are not installed;
CI (.ci/run) installs them and fails if this test was skipped.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from bench import feeds, gateway, load, prefetch, procs, watch, wechat
from bench.procs import CONFIGS, SINGLE_STUDENT


def _missing() -> list[str]:
    """The benchmark-only packages and programs that are not installed here."""
    missing = [m for m in ("flask", "gevent", "requests") if importlib.util.find_spec(m) is None]
    try:
        procs.nginx_binary()
    except RuntimeError:
        missing.append("nginx")
    missing += [tool for tool in ("ab", "wrk") if shutil.which(tool) is None]
    return missing


MISSING = _missing()
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"benchmark tools not installed: {', '.join(MISSING)} "
    "(pip install -r bench/requirements.txt; apt-get install nginx-light apache2-utils wrk)",
)


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=15) as resp:
        return resp.status, resp.read()


def _ports(system: procs.System) -> list[int]:
    return [int(system.url.rsplit(":", 1)[1])]


def _gone(pids: list[int], ports: list[int]) -> None:
    """Every process of the run has exited and every port it held is free (within 10 s)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        any(procs.alive(p) for p in pids) or not all(procs.port_is_free(p) for p in ports)
    ):
        time.sleep(0.1)
    assert [p for p in pids if procs.alive(p)] == []
    assert [p for p in ports if not procs.port_is_free(p)] == []


@pytest.mark.long
def test_harness_starts_and_stops_everything(tmp_path: Path) -> None:
    school = procs.start_school(tmp_path, "fast")
    pids: list[int] = [school.child.pid]
    ports: list[int] = [int(school.url.rsplit(":", 1)[1])]
    systems: list[procs.System] = []
    try:
        systems.append(procs.start_replica(tmp_path, school.url))
        # Workers read the registered clients every 0.5 s instead of 5: the gateway's
        # registration below is seen sooner.
        fast_refresh = {"clients": {"refresh_s": 0.5}}
        systems.append(
            procs.start_jnufm(
                tmp_path, "default", CONFIGS / "default.yaml", school.url, 2, None, fast_refresh
            )
        )
        systems.append(procs.start_hello(tmp_path, 2))
        systems.append(procs.start_nginx_fixed(tmp_path, 2))
        path = load.balance_path(SINGLE_STUDENT)
        for system in systems:
            pids += system.all_pids()
            ports += _ports(system)
            status, body = _get(system.url + path)
            assert status == 200, system.key
            assert json.loads(body)["data"], system.key
            assert system.worker_pids(), system.key
            assert all(mb > 0 for mb in system.rss().values()), system.key
        assert len(systems[0].worker_pids()) == procs.REPLICA_INSTANCES
        # Each server counted the query above in its per-worker counts.
        for system in systems:
            assert sum(system.served().values()) >= 1, system.key
        # The replica logs in as 2013 did (home, captcha, keypad, login, account page);
        # jnufm skips the home page.
        assert school.stats()["requests"] == 5 + 4
        # The academic office and the main catalogue, through the replica and jnufm.
        words = load.search_vocabulary()
        assert len(words) == load.SEARCH_VOCABULARY
        for system in systems[:2]:
            status, body = _get(system.url + load.timetable_path("2016000001"))
            assert status == 200, system.key
            assert json.loads(body)["data"], system.key
            status, body = _get(system.url + load.search_path(words[0]))
            assert status == 200, system.key
            assert json.loads(body)["data"], system.key
        # The replica: a login page, a captcha and a login POST per try (2013's reader
        # misses some), the page the login leads to, the timetable form and its answer.
        academic = school.stats("academic")
        assert academic["logins_ok"] == 2, academic
        assert academic["requests"] >= 6 + 4, academic
        assert school.stats("opac")["searches"] >= 2
        nginx = systems[-1]
        r = load.ab(nginx.url + path, 2, 20, 10)
        assert (r.completed, r.bad) == (20, 0)
        assert r.rps > 0 and r.p99_ms is not None
        w = load.wrk(nginx.url, 2, 1, tmp_path, "cold", load.COLD_BASE, limit=30)
        assert w.completed >= 30 and w.bad == 0
        paths = [load.search_path(word) for word in words[:3]]
        w = load.wrk_paths(nginx.url, 2, 1, tmp_path, "paths", paths, [0, 1, 2, 0], limit=20)
        assert w.completed >= 20 and w.bad == 0 and w.empty == 0
        counts = nginx.served()
        assert sum(counts.values()) >= 71
        # The gateway's load generator: 20 students, one of them mistyping once.
        plan = gateway.make_plan(20, 10)
        assert len(plan.wrong_passwords) == 1 and len(plan.asks) == 31
        answers, _, capped = gateway.drive(systems[0].url, plan, 4, 30)
        assert not capped and len(answers) == 31
        got = gateway.figures(plan, answers, 1.0)
        assert got["wrong"] == {"500 (not JSON)": 1}, got  # 2013 failed on a wrong password
        jnufm = systems[1]
        assert gateway.register(jnufm).startswith(f"registered {gateway.CLIENT_NAME}")
        start = jnufm.extra["log_path"].stat().st_size
        answers, _, capped = gateway.drive(jnufm.url, plan, 4, 30)
        assert not capped and len(answers) == 31
        got = gateway.figures(plan, answers, 1.0)
        assert got["right"] == {"200": 30} and got["wrong"] == {"401 invalid_credentials": 1}
        assert got["students_answered"] == 20 and got["right_refused_by_limits"] == 0
        time.sleep(0.5)  # access lines are written once per loop iteration
        assert gateway.access_clients(jnufm.extra["log_path"], start) == {gateway.CLIENT_NAME: 31}
        gateway.unregister(jnufm)
    finally:
        for system in systems:
            system.stop()
        school.stop()
    _gone(pids, ports)


@pytest.mark.long
def test_wechat_workload_runs_tiny(tmp_path: Path) -> None:
    school = procs.start_school(tmp_path, "fast")
    pids: list[int] = [school.child.pid]
    ports: list[int] = [int(school.url.rsplit(":", 1)[1])]
    try:
        system = wechat.start_jnufm(tmp_path, school, 2, None)
        pids += system.all_pids()
        ports += _ports(system)
        try:
            # Generous cap: the plan ends long before it (a follower waits 3 s between
            # questions); nothing here is timed.
            size = wechat.Size(followers=4, questions=12, seconds=300, lanes=3)
            got = wechat.measure(system, school, size, lambda _: None, "fast")
        finally:
            system.stop()
    finally:
        school.stop()
    assert got["bind"]["bound"] == 4, got["bind"]
    lunch = got["lunch"]
    assert not got["capped"] and lunch["asked"] == 12, got["notes"]
    outcomes = lunch["outcomes"]
    answered = outcomes["passive_first"] + outcomes["passive_retry"] + outcomes["customer"]
    assert answered == 12, (outcomes, lunch["errors"])
    assert got["plan"]["cold"] > 0 and lunch["cold"]["asked"] == got["plan"]["cold"]
    # The server counted the deliveries; the school was asked for the cold questions.
    assert sum(got["server"]["jnufm_wechat_messages"].values()) >= 12
    assert got["school_requests"] > 0
    assert "passive, 1st delivery" in wechat.table({"results": [got]})
    _gone(pids, ports)


@pytest.mark.long
def test_watch_workload_runs_tiny(tmp_path: Path) -> None:
    school = procs.start_school(tmp_path, "fast")
    pids: list[int] = [school.child.pid]
    ports: list[int] = [int(school.url.rsplit(":", 1)[1])]
    try:
        # The harness is checked here, not the watches' ceiling: one that lets every
        # poll through at once.
        ceiling = {"watches": {"school_requests_per_min": 6000}}
        system = watch.start_jnufm(tmp_path, school, 2, None, ceiling)
        pids += system.all_pids()
        ports += _ports(system)
        try:
            # Generous waits: each step waits for what the one before caused.
            size = watch.Size(watched=6, sample=2, phase_s=3, deliver_s=120)
            got = watch.measure(
                system, school, size, tmp_path, lambda _: None, "fast", baseline_wait_s=120
            )
        finally:
            system.stop()
    finally:
        school.stop()
    assert got["setup"]["watches"] == 6 and got["setup"]["sample_baselines"] == 2
    # No watch was due in the phase without watches.
    assert got["phases"]["without"]["watch_polls"] == 0
    # Each purchase told once, signed, with its amount; no other watch told anything.
    assert got["purchases_ok"] == 2
    assert got["delivered_once"] == 2 and got["amounts_match"] == 2, got["purchases"]
    assert got["duplicates"] == 0 and got["other_deliveries"] == 0
    assert got["bad_signatures"] == 0
    assert "purchase to webhook" in watch.table({"results": [got]})
    _gone(pids, ports)


@pytest.mark.long
def test_feeds_workload_runs_tiny(tmp_path: Path) -> None:
    school = procs.start_school(tmp_path, "fast")
    pids: list[int] = [school.child.pid]
    ports: list[int] = [int(school.url.rsplit(":", 1)[1])]
    try:
        system = procs.start_jnufm(
            tmp_path, "default", CONFIGS / "default.yaml", school.url, 2, None
        )
        pids += system.all_pids()
        ports += _ports(system)
        try:
            got = feeds.measure(system, school, feeds.Size(2, 1, 4), tmp_path, lambda _: None)
        finally:
            system.stop()
    finally:
        school.stop()
    assert got["setup"]["feeds"] == 2
    # Plain GETs get the feed; with its ETag, 304 and nothing else; never the school.
    plain, conditional = got["by_status"], got["conditional"]["by_status"]
    assert plain["200"] > 0 and plain["304"] == 0 and plain["other"] == 0, plain
    assert conditional["304"] > 0 and conditional["200"] == 0, conditional
    assert conditional["other"] == 0 and got["school_requests"] == 0
    text = feeds.table({"results": [feeds.no_equivalent("replica"), got]})
    assert "no equivalent" in text and "(c) default" in text
    _gone(pids, ports)


@pytest.mark.long
def test_term_start_prefetched_runs_tiny(tmp_path: Path) -> None:
    school = procs.start_school(tmp_path, "fast")
    pids: list[int] = [school.child.pid]
    ports: list[int] = [int(school.url.rsplit(":", 1)[1])]
    try:
        system = prefetch.start_jnufm(tmp_path, school, 2, None)
        pids += system.all_pids()
        ports += _ports(system)
        try:
            size = prefetch.Size(requests=4, connections=2, seconds=10)
            got = prefetch.measure(system, school, size, tmp_path, lambda _: None, "fast")
        finally:
            system.stop()
    finally:
        school.stop()
    # The prefetch fetched every token's timetable; the load on those students then
    # never reached the school, while the plain one did.
    run = got["prefetch"]
    assert run["exit_code"] == 0 and "6 students: 6 fetched, 0 failed" in run["summary"], run
    assert run["school_requests"] > 0
    assert got["plain"]["failed"] == 0 and got["plain"]["school_requests"] > 0
    assert got["prefetched"]["failed"] == 0 and got["prefetched"]["completed"] >= 4
    assert got["prefetched"]["school_requests"] == 0
    assert "the prefetch (6 tokens" in prefetch.table({"results": [got]})
    _gone(pids, ports)
