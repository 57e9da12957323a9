"""`server.py` as a real process: pre-forked workers, restarts, signals, config errors, secrets."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from db.revision import head_revision
from harness.processes import ROOT, Proc, free_port, sim_json, wait_for_http

TEST_SECRET = "test-secret-key-0123456789abcdef"


def write_config(tmp: Path, **sections: Any) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    return path


def run_server(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with (config.parent / "server.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "server.py"), "--config", str(config), *args],
            cwd=config.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )


@pytest.fixture
def server(tmp_path: Path, sim: Proc, db_url: str) -> Iterator[Proc]:
    """server.py with 2 workers on a free port, the test's database and the shared simulator."""
    port = free_port()
    config = write_config(
        tmp_path,
        listen={"host": "127.0.0.1", "port": port},
        processes=2,
        shutdown_grace_s=5,
        database={"url": db_url},
        school={"card": {"base_url": sim.url}},
        simulator={"enabled": False},
        log={"level": "DEBUG"},
        limits={"requests_per_s": 100000, "burst": 100000},
    )
    popen = run_server(config, env={"JNUFM_SECRET_KEY": TEST_SECRET})
    proc = Proc(popen, tmp_path / "server.log", f"http://127.0.0.1:{port}")
    try:
        wait_for_http(proc.url + "/healthz", popen, timeout=30)
        yield proc
    finally:
        proc.stop()


def workers_seen(url: str, want: int, attempts: int = 400) -> dict[int, int]:
    """Send requests on new connections until `want` workers answered; pid by worker index."""
    seen: dict[int, int] = {}
    for _ in range(attempts):
        body = httpx.get(url + "/healthz", headers={"Connection": "close"}, timeout=5).json()
        seen[body["worker"]] = body["pid"]
        if len(seen) >= want:
            break
    return seen


def test_both_workers_serve_and_a_killed_worker_is_replaced(server: Proc) -> None:
    seen = workers_seen(server.url, 2)
    assert sorted(seen) == [0, 1], f"only workers {sorted(seen)} answered"
    assert server.popen.pid not in seen.values()
    victim = seen[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    replaced: dict[int, int] = {}
    while time.monotonic() < deadline:
        replaced = workers_seen(server.url, 2, attempts=50)
        if replaced.get(0, victim) != victim:
            break
    assert replaced.get(0) not in (None, victim), "worker 0 was not replaced"
    assert replaced.get(1) == seen[1], "the other worker must be left alone"
    assert "worker 0 died with signal SIGKILL" in server.log()


def test_balance_through_the_preforked_server(server: Proc, sim: Proc) -> None:
    resp = httpx.get(
        server.url + "/card/rest", params={"stuid": "2012052690", "password": "052690"}, timeout=30
    )
    assert resp.status_code == 200
    assert resp.json()["data"] == sim_json(sim.url, "/__sim/students/2012052690")["balance"]


def test_sigterm_stops_master_and_workers(server: Proc) -> None:
    pids = list(workers_seen(server.url, 2).values())
    code = server.stop(signal.SIGTERM, timeout=20)
    assert code == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_no_password_in_logs_or_database(server: Proc, sim: Proc, db_url: str) -> None:
    student, secret = "2013123456", "734091"
    sim_json(sim.url, f"/__sim/students/{student}/password", {"password": secret})
    try:
        for path in ("/card/rest", "/card/today", "/card/personalinfo", "/card/month"):
            ok = httpx.get(
                server.url + path, params={"stuid": student, "password": secret}, timeout=30
            )
            assert ok.status_code == 200, ok.text
        bad = httpx.get(
            server.url + "/card/rest", params={"stuid": student, "password": "734090"}, timeout=30
        )
        assert bad.status_code == 401
        v1 = httpx.get(server.url + "/v1/card/balance", auth=(student, secret), timeout=30)
        assert v1.status_code == 200
    finally:
        sim_json(sim.url, f"/__sim/students/{student}/password", {"password": student[-6:]})
    server.stop()
    log = server.log()
    assert "/card/rest?stuid=2013123456&password=***" in log, (
        "the access log shows the redacted query"
    )
    assert secret not in log and "734090" not in log
    assert_not_in_database(db_url, secret)


def assert_not_in_database(db_url: str, secret: str) -> None:
    if db_url.startswith("sqlite"):
        path = Path(db_url.split("///", 1)[1])
        con = sqlite3.connect(path)
        dump = "\n".join(con.iterdump())
        con.close()
        assert "2013123456" in dump, "the student was recorded"
        assert secret not in dump
        for file in path.parent.glob(path.name + "*"):
            assert secret.encode() not in file.read_bytes(), file.name
        return
    from tests.conftest import mysql_connection

    conn = mysql_connection(db_url)
    try:
        with conn.cursor() as cur:
            rows: list[str] = []
            cur.execute("SHOW TABLES")
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT * FROM `{table}`")
                rows += [repr(r) for r in cur.fetchall()]
        dump = "\n".join(rows)
        assert "2013123456" in dump
        assert secret not in dump
    finally:
        conn.close()


def test_embedded_default_starts_the_simulator_and_answers(tmp_path: Path) -> None:
    """The shipped config.yaml, on free ports: SQLite file beside the config, bundled simulator."""
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    port, sim_port = free_port(), free_port()
    shipped["listen"]["port"] = port
    shipped["simulator"]["port"] = sim_port
    shipped["processes"] = 2
    config = write_config(tmp_path, **shipped)
    popen = run_server(config)
    proc = Proc(popen, tmp_path / "server.log", f"http://127.0.0.1:{port}")
    try:
        wait_for_http(proc.url + "/healthz", popen, timeout=30)
        resp = httpx.get(
            proc.url + "/card/rest",
            params={"stuid": "2012052690", "password": "052690"},
            timeout=30,
        )
        assert resp.status_code == 200
        assert (
            resp.json()["data"]
            == sim_json(f"http://127.0.0.1:{sim_port}", "/__sim/students/2012052690")["balance"]
        )
        assert (tmp_path / "var" / "jnufm.sqlite3").exists()
        assert f"jnufm listening on http://127.0.0.1:{port}" in proc.log()
        assert "curl 'http://127.0.0.1:" in proc.log()
    finally:
        assert proc.stop() == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{sim_port}/__sim/stats", timeout=2)


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        ({"listen": {"prot": 80}}, {}, "jnufm: listen.prot: unknown key"),
        ({"processes": "many"}, {}, "jnufm: processes: Input should be a valid integer"),
        (
            {"database": {"url": "postgres://x"}},
            {},
            "jnufm: database.url: Value error, must start with",
        ),
        ({"mode": "production"}, {}, "jnufm: secret_key: production mode refuses the default key"),
        (
            {"mode": "production"},
            {"JNUFM_SECRET_KEY": "0123456789abcdef" * 2},
            "jnufm: secret_key: production mode refuses a weak key (a repeated pattern)",
        ),
        (
            {},
            {"JNUFM_DATABASE_URL": "mysql+aiomysql://root:hunter2@127.0.0.1:1/x"},
            "jnufm: database: cannot use",
        ),
    ],
)
def test_bad_config_ends_with_one_clear_line(
    tmp_path: Path, config: dict[str, Any], env: dict[str, str], message: str
) -> None:
    path = write_config(tmp_path, **{"simulator": {"enabled": False}, **config})
    popen = run_server(path, env=env)
    assert popen.wait(60) == 2
    output = (tmp_path / "server.log").read_text()
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith(message)
    assert "Traceback" not in output
    assert "hunter2" not in output


def test_not_yaml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("listen: [unclosed\n", encoding="utf-8")
    popen = run_server(path)
    assert popen.wait(30) == 2
    assert "is not valid YAML" in (tmp_path / "server.log").read_text()


def test_migrate_subcommand(tmp_path: Path) -> None:
    path = write_config(tmp_path, database={"url": "sqlite+aiosqlite:///data/x.sqlite3"})
    out = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "migrate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"database at revision {head_revision()}" in out.stdout
    con = sqlite3.connect(tmp_path / "data" / "x.sqlite3")
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    con.close()
    assert {"students", "results", "login_failures", "alembic_version"} <= tables
