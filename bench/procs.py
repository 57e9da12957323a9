"""The servers a benchmark run starts and stops: school, jnufm, the baselines, nginx.

Every server is a child process of the harness on a free loopback port, with
its logs and files in the run's temporary directory; `stop()` ends it (and
its workers) and waits for it, so a run leaves nothing behind.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.processes import (
    ROOT,
    Proc,
    free_port,
    http_json,
    school_urls,
    spawn,
    start_schoolsim,
    wait_for_http,
)

CONFIGS = Path(__file__).resolve().parent / "configs"
SINGLE_STUDENT = "2012052690"
REPLICA_INSTANCES = 5


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port."""
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def children(pid: int) -> list[int]:
    """Direct child pids of pid (Linux /proc)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_mb(pid: int) -> float | None:
    """Resident set size of pid in MiB, None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def memory_mb(pid: int) -> dict[str, float] | None:
    """RSS, PSS and USS of pid in MiB (from /proc/<pid>/smaps_rollup), None if it is gone.

    USS (private pages) is what one more worker really costs; RSS also counts every
    page shared with the master and the other workers, PSS a fair share of them.
    """
    try:
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0])
    except (OSError, ValueError):
        return None
    if "Rss" not in fields:
        return None
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return {
        "rss": round(fields["Rss"] / 1024.0, 1),
        "pss": round(fields.get("Pss", 0) / 1024.0, 1),
        "uss": round(uss / 1024.0, 1),
    }


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# --- the school ---------------------------------------------------------------


# The simulator's systems the benchmarks use: the card center (at /, side endpoints
# /__sim/...) and the systems mounted beside it (side endpoints /__sim/<name>/...).
CARD = "card"


def system_settings(system: str, name: str) -> dict[str, Any]:
    """A simulated system's settings for a named profile, as the simulator computes them
    at start (the card center's profile; a mounted system's own calibration over it)."""
    from schoolsim.profiles import profile

    if system == CARD:
        return profile(name).as_dict()
    from schoolsim.systems import mounted_profile

    settings = mounted_profile(system, name)
    try:
        from schoolsim.library.state import CALIBRATION, calibrated
    except ImportError:  # pragma: no cover - the library systems are part of schoolsim
        return settings.as_dict()
    if system in CALIBRATION:
        settings = calibrated(system, name, settings)
    return settings.as_dict()


@dataclass
class School:
    """The simulator (`python -m schoolsim`): the card center and the systems mounted
    beside it, each with its own profile, counters and side endpoints."""

    child: Proc
    url: str
    profile: str
    profiles: dict[str, str] = field(default_factory=dict)  # mounted system -> profile

    def side(self, system: str = CARD) -> str:
        return self.url + ("/__sim" if system == CARD else f"/__sim/{system}")

    def stats(self, system: str = CARD) -> dict[str, Any]:
        return http_json(self.side(system) + "/stats")

    def reset(self, system: str = CARD) -> None:
        http_json(self.side(system) + "/reset", {"sessions": True})

    def use_profile(self, name: str, system: str = CARD) -> None:
        """Switch one simulated system to a named profile's settings (seed kept)."""
        settings = system_settings(system, name)
        settings.pop("seed")
        http_json(self.side(system) + "/control", settings)
        if system == CARD:
            self.profile = name
        else:
            self.profiles[system] = name

    def profile_of(self, system: str = CARD) -> str:
        """The profile a simulated system runs (a mounted one: asked once, then tracked)."""
        if system == CARD:
            return self.profile
        if system not in self.profiles:
            self.profiles[system] = str(self.stats(system)["profile"])
        return self.profiles[system]

    def wait_idle(self, timeout: float = 40, systems: tuple[str, ...] = (CARD,)) -> None:
        """Wait until no request is in flight at these systems (cut-off load may still be
        queued there)."""
        deadline = time.monotonic() + timeout
        for system in systems:
            while time.monotonic() < deadline and self.stats(system)["in_flight"]:
                time.sleep(0.2)

    def memory(self) -> dict[str, float] | None:
        """RSS, PSS and USS of the simulator's process in MiB, None if it is gone."""
        return memory_mb(self.child.pid)

    def stop(self) -> None:
        self.child.stop()


def start_school(
    tmp: Path, profile: str = "jnu-2013", seed: int = 2013, overrides: list[str] | None = None
) -> School:
    """`python -m schoolsim` on a free port; overrides are `key=value` settings."""
    proc = start_schoolsim(tmp, profile, overrides or [], seed, log_name="schoolsim.log")
    return School(proc, proc.url, profile)


# --- systems under test -------------------------------------------------------


@dataclass
class System:
    """A running server under test: its URL, its workers and how to count their work."""

    key: str
    url: str
    children: list[Proc]
    worker_pids: Callable[[], list[int]]
    served: Callable[[], collections.Counter[int]]
    uses_school: bool
    extra: dict[str, Any] = field(default_factory=dict)
    # Answers so far by HTTP status (from the access logs; empty where none is kept).
    statuses: Callable[[], collections.Counter[str]] = collections.Counter
    # The process that forked the workers (jnufm's master), None where there is none.
    master_pid: int | None = None

    def rss(self) -> dict[int, float]:
        result = {}
        for pid in self.worker_pids():
            mb = rss_mb(pid)
            if mb is not None:
                result[pid] = round(mb, 1)
        return result

    def memory(self) -> dict[int, dict[str, float]]:
        """RSS, PSS and USS of each worker, in MiB."""
        result = {}
        for pid in self.worker_pids():
            found = memory_mb(pid)
            if found is not None:
                result[pid] = found
        return result

    def master_memory(self) -> dict[str, float] | None:
        """RSS, PSS and USS of the master in MiB, None without one (or if it is gone)."""
        return memory_mb(self.master_pid) if self.master_pid is not None else None

    def all_pids(self) -> list[int]:
        pids = [c.pid for c in self.children]
        for c in self.children:
            pids += children(c.pid)
        return pids

    def stop(self) -> None:
        for c in reversed(self.children):
            c.stop()


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """base with over merged in, recursively for mappings."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def count_lines(path: Path, pattern: re.Pattern[str]) -> collections.Counter[int]:
    """Matches of pattern's first group (a pid) per pid in the file."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return collections.Counter(int(p) for p in pattern.findall(text))


JNUFM_ACCESS = re.compile(r"\[(\d+)\] jnufm\.access: \d{3} ")
JNUFM_STATUS = re.compile(r"\[\d+\] jnufm\.access: (\d{3}) ")


def count_statuses(paths: list[Path], pattern: re.Pattern[str]) -> collections.Counter[str]:
    """Matches of pattern's first group (an HTTP status) over the files."""
    found: collections.Counter[str] = collections.Counter()
    for path in paths:
        if path.exists():
            found.update(pattern.findall(path.read_text(errors="replace")))
    return found


# The interpreter jnufm runs under in the benchmarks: a virtualenv holding
# requirements.lock alone, as README's run command installs it. The benchmarks' own
# packages are not in it, and some would change what the server loads: with click,
# rich and pygments installed (Flask for the replica brings click, the test tools
# rich), `import httpx` also imports its command-line tool, ~10 MB in every worker.
# JNUFM_BENCH_PYTHON names another interpreter.
SERVER_VENV = ROOT / "var" / "bench-server-venv"


def server_python() -> str:
    """The server's interpreter (made on first use, again when requirements.lock changes)."""
    override = os.environ.get("JNUFM_BENCH_PYTHON")
    if override:
        return override
    python = SERVER_VENV / "bin" / "python"
    stamp = SERVER_VENV / "requirements.lock"
    wanted = (ROOT / "requirements.lock").read_text()
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print("bench: making the server's virtualenv (requirements.lock only)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(SERVER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        lock = str(ROOT / "requirements.lock")
        subprocess.run([*pip, "--require-hashes", "-r", lock], check=True)
        stamp.write_text(wanted)
    return str(python)


def start_jnufm(
    tmp: Path,
    key: str,
    overlay: Path,
    school_url: str,
    processes: int,
    database_url: str | None = None,
    extra_config: dict[str, Any] | None = None,
) -> System:
    """jnufm as `python server.py --config <generated yaml>` with an overlay merged over it."""
    port = free_port()
    workdir = tmp / key
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "listen": {"host": "127.0.0.1", "port": port},
        "processes": processes,
        "shutdown_grace_s": 2,
        "database": {"url": database_url or f"sqlite+aiosqlite:///{workdir / 'jnufm.sqlite3'}"},
        "simulator": {"enabled": False},
        "school": school_urls(school_url),
        "log": {"level": "INFO"},
    }
    config = deep_merge(config, yaml.safe_load(overlay.read_text()) or {})
    config = deep_merge(config, extra_config or {})
    config_path = workdir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    log = workdir / "server.log"
    child = spawn([server_python(), "server.py", "--config", str(config_path)], log)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/healthz", child.popen, 30, log=log)
    master = child.pid

    def workers() -> list[int]:
        return children(master) if processes != 1 else [master]

    # Wait until every worker is up, so the counts and RSS see them all.
    deadline = time.monotonic() + 20
    while len(workers()) < processes and time.monotonic() < deadline:
        time.sleep(0.05)
    return System(
        key,
        url,
        [child],
        workers,
        lambda: count_lines(log, JNUFM_ACCESS),
        uses_school=True,
        # The paths are for the harness (clients commands, access lines), never the results.
        extra={
            "config": config,
            "overlay": overlay.name,
            "config_path": config_path,
            "log_path": log,
        },
        statuses=lambda: count_statuses([log], JNUFM_STATUS),
        master_pid=master if processes != 1 else None,
    )


def start_hello(tmp: Path, processes: int) -> System:
    """The pre-forked Tornado hello-world (bench/baselines/hello.py)."""
    port = free_port()
    log = tmp / "hello.log"
    child = spawn(
        [
            sys.executable,
            "-m",
            "bench.baselines.hello",
            "--port",
            str(port),
            "--processes",
            str(processes),
        ],
        log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/", child.popen, 30, log=log)
    served_re = re.compile(r"^served (\d+) (\d+)$", re.M)

    def served() -> collections.Counter[int]:
        # Each worker prints its running total on SIGUSR1; keep the latest per pid.
        pids = children(child.pid)
        mark = len(log.read_text(errors="replace"))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        latest: dict[int, int] = {}
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")[mark:]
            latest = {int(p): int(n) for p, n in served_re.findall(text)}
            if len(latest) >= len(pids):
                break
            time.sleep(0.05)
        return collections.Counter(latest)

    deadline = time.monotonic() + 20
    while len(children(child.pid)) < processes and time.monotonic() < deadline:
        time.sleep(0.05)
    return System("hello", url, [child], lambda: children(child.pid), served, uses_school=False)


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        raise RuntimeError("nginx not found: apt-get install nginx-light (or nginx)")
    return found


NGINX_ACCESS = re.compile(r"^(\d+) ", re.M)


def _nginx_conf(prefix: Path, port: int, workers: int, body: str) -> str:
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes {workers};
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    log_format bypid '$pid $status $request_time';
    keepalive_requests 1000000;
{body}
}}
"""


def start_nginx(prefix: Path, port: int, workers: int, body: str) -> Proc:
    """nginx from the system's package, on its own config and prefix, in the foreground."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(_nginx_conf(prefix, port, workers, body))
    child = spawn(
        [nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
        prefix / "stdout.log",
    )
    child.stop_signal = signal.SIGTERM
    wait_for_http(f"http://127.0.0.1:{port}/", child.popen, 30, log=prefix / "error.log")
    return child


def start_nginx_fixed(tmp: Path, processes: int) -> System:
    """nginx answering a fixed body on every path: the machine's ceiling."""
    port = free_port()
    prefix = tmp / "nginx-fixed"
    access = prefix / "access.log"
    body = f"""    server {{
        listen 127.0.0.1:{port} backlog=1024;
        access_log {access} bypid;
        default_type application/json;
        location / {{ return 200 '{{"data": "123.45"}}'; }}
    }}"""
    child = start_nginx(prefix, port, processes, body)
    return System(
        "nginx",
        f"http://127.0.0.1:{port}",
        [child],
        lambda: children(child.pid),
        lambda: count_lines(access, NGINX_ACCESS),
        uses_school=False,
    )


# The queries the replica answers (its /healthz is not counted).
REPLICA_ACCESS = re.compile(r'"(?:GET|POST) /(?:card/rest|class/get|book/search/)')
REPLICA_STATUS = re.compile(r'"(?:GET|POST) /(?:card/rest|class/get|book/search/)[^"]*" (\d{3}) ')


def academic_login_lengths() -> dict[str, int] | None:
    """The Content-Length of the simulated academic office's three login answers (wrong
    password, logged in, wrong captcha), as 2013 knew the real office's (7819, 1325,
    8792); None when two are alike or the pages cannot be measured (the replica then
    judges by content).

    Measured as the simulator makes them: its page builders, a view state of its own
    (fixed length), GBK, as it sends them.
    """
    try:
        from schoolsim.academic import pages
        from schoolsim.academic.state import AcademicState
        from schoolsim.profiles import profile

        state = AcademicState("fast", profile("fast"))
        viewstate, validation = state.viewstate("login"), state.event_validation("login")

        def size(html: str) -> int:
            return len(html.encode("gbk", errors="replace"))

        lengths = {
            "password": size(pages.login_page(viewstate, validation, pages.WRONG_PASSWORD)),
            "ok": size(pages.home_page()),
            "captcha": size(pages.login_page(viewstate, validation, pages.WRONG_CAPTCHA)),
        }
    except (ImportError, AttributeError, TypeError):
        return None
    return lengths if len(set(lengths.values())) == len(lengths) else None


def start_replica(tmp: Path, school_url: str, instances: int = REPLICA_INSTANCES) -> System:
    """The 2013 replica: `instances` Flask+gevent processes behind nginx round-robin."""
    workdir = tmp / "replica"
    workdir.mkdir(parents=True, exist_ok=True)
    lengths = academic_login_lengths()
    judge = ["--jwc-lengths", ",".join(f"{k}={v}" for k, v in lengths.items())] if lengths else []
    backends: list[tuple[int, Proc]] = []
    started: list[Proc] = []
    try:
        for i in range(instances):
            port = free_port()
            child = spawn(
                [
                    sys.executable,
                    "-m",
                    "bench.baselines.replica2013",
                    "--port",
                    str(port),
                    "--school",
                    school_url,
                    *judge,
                ],
                workdir / f"instance-{i}.log",
            )
            started.append(child)
            backends.append((port, child))
        for port, child in backends:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", child.popen, 30, log=child.log_path)
        front = free_port()
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p, _ in backends)
        body = f"""    upstream replica {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{front} backlog=1024;
        access_log off;
        location / {{ proxy_pass http://replica; proxy_read_timeout 300s; }}
    }}"""
        nginx = start_nginx(workdir / "nginx", front, 1, body)
        started.append(nginx)
    except BaseException:
        for c in reversed(started):
            c.stop()
        raise
    by_pid = {child.pid: child for _, child in backends}

    def served() -> collections.Counter[int]:
        return collections.Counter(
            {
                pid: len(REPLICA_ACCESS.findall(c.log_path.read_text(errors="replace")))
                for pid, c in by_pid.items()
            }
        )

    return System(
        "replica",
        f"http://127.0.0.1:{front}",
        [*(c for _, c in backends), nginx],
        lambda: list(by_pid),
        served,
        uses_school=True,
        extra={
            "instances": instances,
            "front_pid": nginx.pid,
            # How the replica judges an academic office login answer (see replica2013.py).
            "jwc_login_judge": (
                "Content-Length (" + ", ".join(f"{k} {v}" for k, v in lengths.items()) + ")"
                if lengths
                else "content"
            ),
        },
        statuses=lambda: count_statuses([c.log_path for c in by_pid.values()], REPLICA_STATUS),
    )


@contextlib.contextmanager
def running(system: System) -> Iterator[System]:
    try:
        yield system
    finally:
        system.stop()
