"""Start real processes: the simulated school, jnufm itself, and any other server, each
on a free loopback port with its output captured to a file.

Both the tests and the benchmark harness start their processes here. Parallel test
workers each take ports from a range of their own (`use_port_range`), below the
kernel's ephemeral ports: a port one worker found free cannot be handed to another
worker before the first one's server binds it.
"""

from __future__ import annotations

import contextlib
import itertools
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Where free_port looks: None (the kernel picks) or the ports of this process's own range.
_port_range: Iterator[int] | None = None
_range_size = 0


def use_port_range(first: int, last: int) -> None:
    """Take every later free_port() from first..last (inclusive), round robin."""
    global _port_range, _range_size
    _port_range = itertools.cycle(range(first, last + 1))
    _range_size = last + 1 - first


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (from this process's
    range if it has one)."""
    if _port_range is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    for port in itertools.islice(_port_range, _range_size):
        if _bindable(port):
            return port
    raise RuntimeError("no free port left in this process's range")


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


def http_json(url: str, body: object | None = None, timeout: float = 10) -> dict[str, Any]:
    """GET url, or POST body as JSON, and decode the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def sim_json(sim_url: str, path: str, body: object | None = None) -> dict[str, Any]:
    """GET (or POST a JSON body to) a schoolsim side endpoint."""
    return http_json(sim_url + path, body)


@dataclass
class Proc:
    """A child process (serving HTTP at url, if it serves), its output captured to a file."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int | None = None, timeout: float = 20) -> int:
        """Signal it (stop_signal unless sig), wait, kill it if it outlives timeout."""
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal if sig is None else sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


def spawn(
    args: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    open_files: int | None = None,
    url: str = "",
) -> Proc:
    """Start args from the project root, stdout and stderr into log_path.

    env: added to this process's environment; open_files caps the child's file
    descriptors (soft and hard limit).
    """
    full_env = dict(os.environ)
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})

    def limit_files() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            preexec_fn=limit_files if open_files is not None else None,
        )
    return Proc(popen, log_path, url)


# --- the simulated school -------------------------------------------------------------


def start_schoolsim(
    tmp: Path,
    profile: str = "fast",
    settings: Iterable[str] = (),
    seed: int | None = None,
    port: int | None = None,
    log_name: str | None = None,
) -> Proc:
    """`python -m schoolsim` on a free port (or the given one), once it answers;
    settings are `key=value` overrides."""
    port = free_port() if port is None else port
    args = [sys.executable, "-m", "schoolsim", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--profile", profile]
    if seed is not None:
        args += ["--seed", str(seed)]
    for s in settings:
        args += ["--set", s]
    log_path = tmp / (log_name or f"schoolsim-{port}.log")
    proc = spawn(args, log_path, url=f"http://127.0.0.1:{port}")
    try:
        wait_for_http(proc.url + "/__sim/stats", proc.popen, 30, log=log_path)
    except BaseException:
        proc.stop()
        raise
    return proc


@contextlib.contextmanager
def schoolsim(tmp: Path, profile: str = "fast", *settings: str) -> Iterator[Proc]:
    """The simulator for a with block; settings are `key=value` overrides."""
    proc = start_schoolsim(tmp, profile, settings)
    try:
        yield proc
    finally:
        proc.stop()


def school_urls(sim_url: str) -> dict[str, dict[str, Any]]:
    """The `school` config section pointing every school system at one simulator."""
    return {
        "card": {"base_url": sim_url},
        "academic": {"base_url": f"{sim_url}/jwc/"},
        "library": {"base_url": f"{sim_url}/opac"},
        "library_zhuhai": {"base_url": f"{sim_url}/ilas"},
        "covers": {"base_url": f"{sim_url}/covers"},
    }


# --- jnufm ----------------------------------------------------------------------------


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
        "school": school_urls(sim_url),
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
    args = [sys.executable, str(ROOT / "server.py"), "--config", str(path)]
    proc = spawn(args, log_path, env, open_files, url=f"http://127.0.0.1:{port}")
    try:
        wait_for_http(proc.url + "/healthz", proc.popen, timeout=30)
        yield proc
    finally:
        proc.stop()
