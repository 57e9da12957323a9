"""Running as a production service, with real processes and real signals: graceful stop,
rolling reload under load, replaced and blocked workers, the master's death, crash loops,
systemd notify, /metrics over all workers, /readyz while draining, log reopening, scaling,
and the systemd unit."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import ROOT, Proc, free_port, schoolsim, sim_json, wait_for_http
from observability import metrics
from tests.system.test_server_process import TEST_SECRET, run_server, workers_seen, write_config

STUDENT = {"stuid": "2012052690", "password": "052690"}


def wait_until(condition: Callable[[], object], timeout: float = 15, what: str = "") -> Any:
    """Poll condition until it returns something truthy; fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def refuses(url: str) -> bool:
    """Nothing listens at url's port any more."""
    port = int(url.rsplit(":", 1)[1])
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return True
    return False


def base_config(db_url: str, sim_url: str, port: int, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "processes": 2,
        "shutdown_grace_s": 5,
        "database": {"url": db_url},
        "school": {"card": {"base_url": sim_url}},
        "simulator": {"enabled": False},
        "log": {"level": "INFO"},
        "supervisor": {"heartbeat_interval_s": 0.1, "heartbeat_timeout_s": 1.0},
        # Load from one address would trip the per-address rate limit.
        "limits": {"enabled": False},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


class Server:
    """server.py started with a config of the test's own; stopped (SIGTERM) at the end."""

    def __init__(self, tmp: Path, config: dict[str, Any], env: dict[str, str] | None = None):
        self.tmp = tmp
        self.port = config["listen"]["port"]
        self.config = config
        self.path = write_config(tmp, **config)
        self.popen = run_server(self.path, env={"JNUFM_SECRET_KEY": TEST_SECRET, **(env or {})})
        self.proc = Proc(self.popen, tmp / "server.log", f"http://127.0.0.1:{self.port}")
        self.url = self.proc.url

    def wait_serving(self) -> None:
        wait_for_http(self.url + "/healthz", self.popen, timeout=30)

    def log(self) -> str:
        return self.proc.log()

    def rewrite(self, **sections: Any) -> None:
        config = dict(self.config)
        config.update(sections)
        self.config = config
        write_config(self.tmp, **config)

    def stop(self) -> int:
        return self.proc.stop()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def starter(config: dict[str, Any], env: dict[str, str] | None = None) -> Server:
        server = Server(tmp_path, config, env)
        servers.append(server)
        server.wait_serving()
        return server

    yield starter
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def slow_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school that takes 300 ms per request: a balance query takes 5 of them."""
    with schoolsim(
        tmp_path_factory.mktemp("slow-sim"),
        "fast",
        "latency_ms_median=300",
        "latency_ms_min=300",
        "latency_ms_max=300",
        "latency_sigma=0",
    ) as proc:
        yield proc


def school_requests(sim_url: str) -> int:
    count = sim_json(sim_url, "/__sim/stats")["requests"]
    assert isinstance(count, int)
    return count


def test_sigterm_lets_slow_requests_finish(
    start: Callable[..., Server], slow_sim: Proc, db_url: str
) -> None:
    server = start(base_config(db_url, slow_sim.url, free_port()))
    results: list[int | str] = []

    def slow_request() -> None:
        try:
            resp = httpx.get(server.url + "/card/rest", params=STUDENT, timeout=30)
            results.append(resp.status_code)
        except httpx.HTTPError as exc:
            results.append(repr(exc))

    before = school_requests(slow_sim.url)
    threads = [threading.Thread(target=slow_request) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: school_requests(slow_sim.url) >= before + 4, what="requests in flight")
    server.popen.send_signal(signal.SIGTERM)
    wait_until(lambda: refuses(server.url), what="the port to stop listening")
    for t in threads:
        t.join(30)
    assert results == [200, 200, 200, 200]
    # Drained before the grace ended (nothing cut), then it exits by itself.
    assert server.popen.wait(timeout=60) == 0
    assert "requests cut" not in server.log()


def test_readyz_turns_false_while_draining(
    start: Callable[..., Server], slow_sim: Proc, db_url: str
) -> None:
    server = start(base_config(db_url, slow_sim.url, free_port()))
    # Keep-alive connections, grouped by the worker that accepted them.
    by_worker: dict[int, list[http.client.HTTPConnection]] = {}
    conns = []
    for _ in range(6):
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        pid = json.loads(resp.read())["pid"]
        by_worker.setdefault(pid, []).append(conn)
        conns.append(conn)
    busy, probe = next(group for group in by_worker.values() if len(group) >= 2)[:2]
    before = school_requests(slow_sim.url)
    busy.request("GET", "/card/rest?stuid=2012052690&password=052690")
    wait_until(lambda: school_requests(slow_sim.url) > before, what="the slow request to start")

    server.popen.send_signal(signal.SIGTERM)
    wait_until(lambda: refuses(server.url), timeout=2, what="the port to stop listening")
    probe.request("GET", "/readyz")
    answer = probe.getresponse()
    body = json.loads(answer.read())
    assert answer.status == 503
    assert body["ready"] is False and body["draining"] is True
    assert answer.getheader("Connection") == "close"

    slow = busy.getresponse()
    assert slow.status == 200
    assert slow.getheader("Connection") == "close", "answered, then the connection is closed"
    for conn in conns:
        conn.close()
    assert server.popen.wait(timeout=15) == 0


def test_sighup_reloads_under_steady_load_without_a_failure(
    start: Callable[..., Server], sim: Proc, db_url: str
) -> None:
    server = start(base_config(db_url, sim.url, free_port()))
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def load(keep_alive: bool) -> None:
        headers = {} if keep_alive else {"Connection": "close"}
        with httpx.Client(base_url=server.url, timeout=10, headers=headers) as client:
            deadline = time.monotonic() + 60  # bounded even if the test fails early
            while not stop.is_set() and time.monotonic() < deadline:
                for path in ("/healthz", "/card/rest"):
                    try:
                        resp = client.get(path, params=STUDENT if path == "/card/rest" else None)
                        if resp.status_code != 200:
                            failures.append(f"{path}: {resp.status_code} {resp.text}")
                        answered[0] += 1
                    except httpx.HTTPError as exc:
                        failures.append(f"{path}: {exc!r}")

    threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: answered[0] > 100, what="load to run")
        # A broken file first: refused, the running configuration stays.
        server.path.write_text("listen: [unclosed\n", encoding="utf-8")
        server.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in server.log(), what="the refusal")
        assert httpx.get(server.url + "/healthz").json()["generation"] == 1

        # Then a good one: new workers log JSON lines.
        server.rewrite(log={"level": "INFO", "format": "json"})
        server.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload done: generation 2" in server.log(), what="the reload")
        wait_until(
            lambda: server.log().count("stopped with exit code 0") >= 2,
            what="the old workers to exit",
        )
        settled = answered[0]
        wait_until(lambda: answered[0] > settled + 100, what="load after the reload")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    seen = workers_seen(server.url, 2)
    assert len(seen) == 2
    generations = {
        httpx.get(server.url + "/healthz", headers={"Connection": "close"}).json()["generation"]
        for _ in range(10)
    }
    assert generations == {2}
    json_access = [
        json.loads(line)
        for line in server.log().splitlines()
        if line.startswith("{") and '"jnufm.access"' in line
    ]
    assert json_access, "the new workers log access lines as JSON"
    assert {"request_id", "route", "status", "duration_ms", "cache"} <= set(json_access[-1])


def test_blocked_worker_is_killed_and_replaced(
    start: Callable[..., Server], sim: Proc, db_url: str
) -> None:
    server = start(base_config(db_url, sim.url, free_port(), debug={"block_route": True}))
    seen = workers_seen(server.url, 2)
    assert len(seen) == 2

    def block() -> None:
        with contextlib.suppress(httpx.HTTPError):  # its worker is killed under it
            httpx.get(server.url + "/debug/block", params={"seconds": 30}, timeout=40)

    blocker = threading.Thread(target=block)
    blocker.start()
    wait_until(lambda: "event loop blocked" in server.log(), what="the watchdog")
    blocker.join(40)
    after = wait_until(
        lambda: (lambda s: s if len(s) == 2 and s != seen else None)(workers_seen(server.url, 2)),
        what="a replacement worker",
    )
    replaced = [index for index in seen if after[index] != seen[index]]
    assert len(replaced) == 1, "only the blocked worker is replaced"
    assert not alive(seen[replaced[0]])
    assert "SIGKILL" in server.log()


def test_master_killed_with_sigkill_takes_workers_and_simulator_along(
    start: Callable[..., Server], db_url: str
) -> None:
    sim_port = free_port()
    server = start(
        base_config(
            db_url,
            "http://127.0.0.1:1",
            free_port(),
            simulator={"enabled": True, "port": sim_port},
        )
    )
    pids = list(workers_seen(server.url, 2).values())
    assert len(pids) == 2
    server.popen.send_signal(signal.SIGKILL)
    server.popen.wait(5)
    wait_until(lambda: not any(alive(p) for p in pids), timeout=10, what="workers to exit")
    wait_until(lambda: refuses(f"http://127.0.0.1:{sim_port}"), timeout=10, what="the simulator")


def test_crash_loop_stops_the_master_with_a_clear_message(
    start: Callable[..., Server], sim: Proc, db_url: str
) -> None:
    # Deaths within boot_window_s of serving count as failures to start.
    server = start(
        base_config(
            db_url,
            sim.url,
            free_port(),
            supervisor={"crash_loop_deaths": 3, "crash_loop_window_s": 60, "boot_window_s": 60},
        )
    )
    killed: set[int] = set()
    for _ in range(3):
        pid = wait_until(
            lambda: next((p for p in workers_seen(server.url, 2).values() if p not in killed), 0),
            what="a worker to kill",
        )
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
        if len(killed) < 3:
            wait_until(lambda: server.log().count("starting a new one") >= len(killed))
    assert server.popen.wait(15) == 1
    assert "crash loop: 3 workers died before serving (or within 60s of it) within 60s" in (
        server.log()
    )


def test_workers_killed_after_serving_are_replaced_forever(
    start: Callable[..., Server], sim: Proc, db_url: str
) -> None:
    # The OOM killer or a bad input killing served workers again and again: not a crash
    # loop, however many; each is replaced (with a growing delay).
    server = start(
        base_config(
            db_url,
            sim.url,
            free_port(),
            supervisor={
                "crash_loop_deaths": 2,
                "boot_window_s": 0.2,
                "backoff_initial_s": 0.05,
                "backoff_max_s": 0.2,
            },
        )
    )
    killed: set[int] = set()
    for _ in range(4):
        pid = wait_until(
            lambda: next((p for p in workers_seen(server.url, 2).values() if p not in killed), 0),
            what="a worker that served",
        )
        time.sleep(0.3)  # let it serve past boot_window_s
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
        wait_until(lambda: server.log().count("after serving (pid") >= len(killed))
    assert server.popen.poll() is None, "still running"
    assert len(workers_seen(server.url, 2)) == 2
    assert "crash loop" not in server.log()


def test_systemd_notify_protocol(tmp_path: Path, sim: Proc, db_url: str) -> None:
    address = f"@jnufm-test-{secrets.token_hex(6)}"  # abstract namespace
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind("\0" + address[1:])
    listener.setblocking(False)
    messages: list[str] = []

    def received(field: str) -> bool:
        try:
            while True:
                messages.append(listener.recv(4096).decode())
        except BlockingIOError:
            pass
        return any(field in m.split("\n") for m in messages)

    server = Server(
        tmp_path,
        base_config(db_url, sim.url, free_port()),
        env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"},
    )
    try:
        wait_until(lambda: received("READY=1"), timeout=30, what="READY=1")
        assert httpx.get(server.url + "/healthz").status_code == 200, "READY means serving"
        wait_until(lambda: received("WATCHDOG=1"), what="watchdog pings")
        messages.clear()
        server.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: received("RELOADING=1"), what="RELOADING=1")
        reloading = next(m for m in messages if "RELOADING=1" in m.split("\n"))
        assert any(f.startswith("MONOTONIC_USEC=") for f in reloading.split("\n"))
        wait_until(lambda: received("READY=1"), what="READY=1 after the reload")
        server.popen.send_signal(signal.SIGTERM)
        wait_until(lambda: received("STOPPING=1"), what="STOPPING=1")
        assert server.popen.wait(15) == 0
    finally:
        server.stop()
        listener.close()


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """/metrics, once every worker has published what it counted so far (each does every
    metrics.PUBLISH_S; the one answering publishes first)."""
    time.sleep(2 * metrics.PUBLISH_S)
    resp = httpx.get(url + "/metrics", headers={"Connection": "close"}, timeout=10)
    assert resp.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    return resp.text, samples


HEALTHZ_200 = (
    "jnufm_http_requests_total",
    (("method", "GET"), ("route", "/healthz"), ("status", "200")),
)
UNMATCHED_404 = (
    "jnufm_http_requests_total",
    (("method", "GET"), ("route", "unmatched"), ("status", "404")),
)


def test_metrics_add_up_over_workers_and_survive_a_dead_worker(
    start: Callable[..., Server], sim: Proc, db_url: str, tmp_path: Path
) -> None:
    server = start(base_config(db_url, sim.url, free_port()))
    seen = workers_seen(server.url, 2)
    _, before = scrape(server.url)
    for _ in range(20):
        httpx.get(server.url + "/healthz", headers={"Connection": "close"})
    for _ in range(3):
        httpx.get(server.url + "/nope", headers={"Connection": "close"})
    httpx.get(server.url + "/card/rest", params=STUDENT, timeout=30)
    text, after = scrape(server.url)
    assert after[HEALTHZ_200] - before.get(HEALTHZ_200, 0) == 20
    assert after[UNMATCHED_404] - before.get(UNMATCHED_404, 0) == 3
    ok_school = sum(
        v
        for (name, labels), v in after.items()
        if name == "jnufm_school_requests_total" and ("outcome", "ok") in labels
    )
    assert ok_school >= 4, "captcha, keypad, login and the account page"
    if shutil.which("promtool"):
        out = subprocess.run(
            ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stdout + out.stderr

    os.kill(seen[0], signal.SIGKILL)
    wait_until(
        lambda: workers_seen(server.url, 2).get(0) not in (None, seen[0]), what="a new worker 0"
    )
    _, later = scrape(server.url)
    assert later[HEALTHZ_200] >= after[HEALTHZ_200], "a dead worker's counts are kept"
    assert later[("jnufm_worker_restarts_total", (("reason", "killed"),))] == 1
    assert later[("jnufm_workers", ())] == 2


def test_sigusr1_reopens_the_log_file_and_ttin_ttou_scale(
    start: Callable[..., Server], sim: Proc, db_url: str
) -> None:
    server = start(
        base_config(db_url, sim.url, free_port(), log={"level": "INFO", "file": "jnufm.log"})
    )
    log_file = server.tmp / "jnufm.log"
    rotated = server.tmp / "jnufm.log.1"
    wait_until(lambda: log_file.exists() and "jnufm.access" in log_file.read_text())
    log_file.rename(rotated)
    server.popen.send_signal(signal.SIGUSR1)
    wait_until(lambda: log_file.exists(), what="the master to reopen its log")

    def logged_by_workers() -> bool:
        httpx.get(server.url + "/healthz", headers={"Connection": "close"})
        return log_file.exists() and log_file.read_text().count("jnufm.access") >= 4

    wait_until(logged_by_workers, what="the workers to reopen theirs")
    assert "received SIGUSR1" in rotated.read_text() + log_file.read_text()

    server.popen.send_signal(signal.SIGTTIN)
    assert sorted(workers_seen(server.url, 3)) == [0, 1, 2]
    server.popen.send_signal(signal.SIGTTOU)
    wait_until(lambda: "worker 2 stopped with exit code 0" in log_file.read_text())
    assert sorted(workers_seen(server.url, 2)) == [0, 1]


def test_systemd_unit_is_rendered_verified_and_installed(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mode: development\n", encoding="utf-8")
    command = [sys.executable, str(ROOT / "server.py"), "systemd-unit", "--config", str(config)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"ExecStart={sys.executable} {ROOT / 'server.py'} serve --config {config}" in out
    assert "Type=notify" in out and "ExecReload=/bin/kill -HUP $MAINPID" in out
    assert "/opt/jnufm" not in out
    unit_dir = tmp_path / "units"
    installed = subprocess.run(
        [*command, "--install", "--unit-dir", str(unit_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert (unit_dir / "jnufm.service").read_text() == out
    assert "systemctl daemon-reload" in installed.stdout
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit_dir / "jnufm.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stderr.strip() == "", verify.stderr
