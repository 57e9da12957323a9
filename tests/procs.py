"""Start real processes for tests: the simulated school and jnufm itself."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_http(
    url: str,
    proc: subprocess.Popen[bytes] | None = None,
    timeout: float = 20,
    log: Path | None = None,
) -> None:
    """Poll url until it answers (any HTTP status); fail if proc exits first.

    The failure shows the process's output: its log file if given, else its stdout pipe.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            if log is not None:
                out = log.read_text(errors="replace")
            else:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(
                f"{proc.args!r} exited with {proc.returncode} before serving {url}:\n{out}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@dataclass
class Proc:
    """A child process serving HTTP at url, with its output captured to a file."""

    popen: subprocess.Popen[bytes]
    url: str
    log_path: Path
    extra: dict[str, object] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def _spawn(
    args: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    open_files: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `python args...` with its output in log_path; open_files caps its file descriptors."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONUNBUFFERED"] = "1"

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            preexec_fn=limit_files if open_files is not None else None,
        )


@contextlib.contextmanager
def schoolsim(tmp: Path, profile: str = "fast", *settings: str) -> Iterator[Proc]:
    """Run `python -m schoolsim` on a free port; settings are `key=value` overrides."""
    port = free_port()
    args = ["-m", "schoolsim", "--host", "127.0.0.1", "--port", str(port), "--profile", profile]
    for s in settings:
        args += ["--set", s]
    log_path = tmp / f"schoolsim-{port}.log"
    popen = _spawn(args, log_path)
    proc = Proc(popen, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for_http(proc.url + "/__sim/stats", popen)
        yield proc
    finally:
        proc.stop()


def sim_json(sim_url: str, path: str, body: object | None = None) -> dict[str, object]:
    """GET (or POST a JSON body to) a schoolsim side endpoint."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        sim_url + path, data=data, method="GET" if body is None else "POST"
    )
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        result: dict[str, object] = json.loads(resp.read())
        return result


@contextlib.contextmanager
def jnufm_server(
    tmp: Path,
    db_url: str,
    sim_url: str,
    processes: int = 2,
    default_limits: bool = False,
    open_files: int | None = None,
    env: dict[str, str] | None = None,
    **sections: object,
) -> Iterator[Proc]:
    """Run `server.py` with its own config file on a free port, against db_url and sim_url.

    Tests send bursts from one address, so the per-address limits are lifted
    unless `default_limits` (a `limits` section given merges over either).
    open_files: the server's limit of open file descriptors (soft and hard), if given.
    env: added to the server's environment.
    """
    import yaml

    port = free_port()
    folder = tmp / f"server-{port}"
    folder.mkdir()
    config: dict[str, object] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "processes": processes,
        "shutdown_grace_s": 5,
        "database": {"url": db_url},
        "school": {
            "card": {"base_url": sim_url},
            "academic": {"base_url": f"{sim_url}/jwc/"},
            "library": {"base_url": f"{sim_url}/opac"},
            "library_zhuhai": {"base_url": f"{sim_url}/ilas"},
            "covers": {"base_url": f"{sim_url}/covers"},
        },
        "simulator": {"enabled": False},
        "secret_key": "test-secret-key-0123456789abcdef",
        "limits": {}
        if default_limits
        else {
            "requests_per_s": 100000,
            "burst": 100000,
            "school_requests_per_s": 100000,
            "school_burst": 100000,
            "failed_logins_ip_max": 100000,
        },
    }
    for name, value in sections.items():
        # A section given merges into the one set here (e.g. listen.reuse_port keeps the port).
        current = config.get(name)
        if isinstance(current, dict) and isinstance(value, dict):
            config[name] = {**current, **value}
        else:
            config[name] = value
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    log_path = folder / "server.log"
    popen = _spawn([str(ROOT / "server.py"), "--config", str(path)], log_path, env, open_files)
    proc = Proc(popen, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for_http(proc.url + "/healthz", popen, timeout=30)
        yield proc
    finally:
        proc.stop()
