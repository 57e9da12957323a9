"""Where a warm balance query spends its time, and asyncio vs uvloop in the workers.

    python -m bench profile [--seconds 15]   # py-spy on one jnufm worker under wrk
    python -m bench loops [--rounds 3]       # event_loop: asyncio vs uvloop, alternating
    python -m bench cpu [--rounds 4]         # CPU per warm answer vs the hello-world, alternating

Both use system (c) (bench/configs/default.yaml) with 2 workers against the
`fast` school profile, and `wrk -c 20` on one student's balance (a "warm"
query: the same student again). `profile` samples one worker with py-spy
(`--native` off, 200 Hz, idle samples excluded) and splits the time into our
code (handlers/, services/, systems/, school/, leanweb/, db/, runtime/,
settings.py), libraries, and the rest, and says the workers' CPU time per request
(user + system); `loops` runs both loops in turn `--rounds` times and compares
requests/s measured in the same run; `cpu` starts jnufm (2 workers, the warm balance)
and the pre-forked hello-world (2 processes) in turn, `wrk -c 100` on each, and says
the workers' CPU time per answered request of both and their ratio: steadier than
requests/s on a machine whose other work moves them.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import load, procs
from bench.procs import CONFIGS, SINGLE_STUDENT, System
from bench.run import RESULTS, machine_facts
from harness.processes import ROOT

OURS = (
    "handlers/",
    "services/",
    "systems/",
    "school/",
    "leanweb/",
    "db/",
    "runtime/",
    "settings.py",
    "server.py",
)
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def _where(path: str) -> str:
    """'ours', 'stdlib', or the library's top-level package name."""
    norm = path.replace("\\", "/")
    root = ROOT.as_posix() + "/"
    if norm.startswith(root):
        norm = norm[len(root) :]
    if "site-packages/" in norm:
        return norm.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if norm.startswith(OURS):
        return "ours"
    if "/lib/python3" in norm or norm.startswith("<frozen"):
        return "stdlib"
    return "other"


def _short(path: str) -> str:
    norm = path.replace("\\", "/")
    root = ROOT.as_posix() + "/"
    if norm.startswith(root):
        return norm[len(root) :]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in norm:
            tail = norm.split(marker, 1)[1]
            return tail if marker == "site-packages/" else "stdlib:" + tail.split("/", 1)[-1]
    return norm


def _anonymise(collapsed: str) -> str:
    """Stack frames relative to the project and the interpreter, not to this machine's folders."""
    for prefix, label in (
        (str(Path(__file__).resolve().parent.parent) + "/", ""),
        (sys.base_prefix + "/", "<python>/"),
        (sys.prefix + "/", "<venv>/"),
    ):
        collapsed = collapsed.replace(prefix, label)
    return collapsed


def summarise(collapsed: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares per function, and self time per owner (ours/library)."""
    total = 0
    self_by: collections.Counter[str] = collections.Counter()
    incl_by: collections.Counter[str] = collections.Counter()
    owner_self: collections.Counter[str] = collections.Counter()
    ours_incl: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = []
        for raw in stack.split(";"):
            m = FRAME.match(raw.strip())
            if m:
                frames.append((m.group("func"), m.group("file")))
        if not frames:
            continue
        total += count
        names = []
        for func, file in frames:
            name = f"{func} ({_short(file)})"
            if name not in names:
                names.append(name)
        for name in names:
            incl_by[name] += count
        func, file = frames[-1]
        self_by[f"{func} ({_short(file)})"] += count
        owner_self[_where(file)] += count
        # The innermost frame of our code on this stack: what of ours led here.
        for func, file in reversed(frames):
            if _where(file) == "ours":
                ours_incl[f"{func} ({_short(file)})"] += count
                break

    def pct(c: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100.0 * v / total, 1)) for k, v in c.most_common(top)] if total else []

    return {
        "samples": total,
        "self": pct(self_by),
        "inclusive": pct(incl_by),
        "owner_self": pct(owner_self),
        "ours_innermost": pct(ours_incl),
    }


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_cpu(
    system: System, connections: int, seconds: int, tmp: Path
) -> tuple[load.LoadResult, float | None]:
    """wrk on one student's balance, and the workers' CPU (user + system) per answered
    request in us (None if none was answered)."""
    pids = system.worker_pids()
    before = [cpu_s(p) for p in pids]
    r = load.wrk(system.url, connections, seconds, tmp, "single", int(SINGLE_STUDENT))
    used = sum(cpu_s(p) - b for p, b in zip(pids, before, strict=True))
    return r, (round(1e6 * used / r.completed, 1) if r.completed else None)


def _warm(url: str) -> None:
    load.ab(url + load.balance_path(SINGLE_STUDENT), 1, 1, 30)


def profile(seconds: int, rate: int = 200) -> dict[str, Any]:
    beside = Path(sys.executable).parent / "py-spy"
    pyspy = str(beside) if beside.exists() else shutil.which("py-spy")
    if pyspy is None:
        raise SystemExit("bench: py-spy not found: pip install -r bench/requirements.txt")
    with tempfile.TemporaryDirectory(prefix="jnufm-profile-") as tmp_name:
        tmp = Path(tmp_name)
        school = procs.start_school(tmp, "fast")
        try:
            system = procs.start_jnufm(tmp, "default", CONFIGS / "default.yaml", school.url, 2)
            try:
                _warm(system.url)
                pid = system.worker_pids()[0]
                out = tmp / "profile.txt"
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "--pid",
                        str(pid),
                        "--rate",
                        str(rate),
                        "--duration",
                        str(seconds),
                        "--format",
                        "raw",
                        "--output",
                        str(out),
                        "--nonblocking",
                        "--full-filenames",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                r, cpu_us = wrk_cpu(system, 20, seconds, tmp)
                spy.wait(seconds + 30)
                collapsed = _anonymise(out.read_text() if out.exists() else "")
            finally:
                system.stop()
        finally:
            school.stop()
    # The workers' CPU per answer: steadier than requests/s on a machine shared with other
    # work (the sampled worker's share includes py-spy's own cost to it).
    return {
        "load": r.as_dict(),
        "cpu_us_per_request": cpu_us,
        "profile": summarise(collapsed),
        "collapsed": collapsed,
    }


def loops(rounds: int, seconds: int) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jnufm-loops-") as tmp_name:
        tmp = Path(tmp_name)
        school = procs.start_school(tmp, "fast")
        try:
            for i in range(rounds):
                for loop in ("asyncio", "uvloop"):
                    system = procs.start_jnufm(
                        tmp,
                        f"{loop}-{i}",
                        CONFIGS / "default.yaml",
                        school.url,
                        os.cpu_count() or 1,
                        extra_config={"event_loop": loop},
                    )
                    try:
                        _warm(system.url)
                        r = load.wrk(system.url, 20, seconds, tmp, "single", int(SINGLE_STUDENT))
                        hello = procs.rss_mb(system.worker_pids()[0])
                    finally:
                        system.stop()
                    row = {"round": i, "event_loop": loop, **r.as_dict(), "rss_mb": hello}
                    runs.append(row)
                    print(
                        f"round {i} {loop:<8} {r.rps:8.1f} req/s  p50 {r.p50_ms} ms  "
                        f"p99 {r.p99_ms} ms  failed {r.bad}",
                        flush=True,
                    )
        finally:
            school.stop()
    mean = {
        loop: sum(x["rps"] for x in runs if x["event_loop"] == loop) / rounds
        for loop in ("asyncio", "uvloop")
    }
    return {"runs": runs, "mean_rps": mean, "uvloop_over_asyncio": mean["uvloop"] / mean["asyncio"]}


def cpu_rounds(rounds: int, seconds: int) -> dict[str, Any]:
    """The workers' CPU per answer, jnufm's warm balance then the hello-world, `rounds` times."""
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jnufm-cpu-") as tmp_name:
        tmp = Path(tmp_name)
        school = procs.start_school(tmp, "fast")
        try:
            for i in range(rounds):
                for name in ("jnufm", "hello"):
                    if name == "jnufm":
                        system = procs.start_jnufm(
                            tmp, f"cpu-{i}", CONFIGS / "default.yaml", school.url, 2
                        )
                        _warm(system.url)
                    else:
                        system = procs.start_hello(tmp, 2)
                    try:
                        r, cpu_us = wrk_cpu(system, 100, seconds, tmp)
                    finally:
                        system.stop()
                    runs.append({"round": i, "system": name, "cpu_us": cpu_us, **r.as_dict()})
                    print(
                        f"round {i} {name:<6} {cpu_us} us/request  {r.rps:9.1f} req/s  "
                        f"failed {r.bad}",
                        flush=True,
                    )
        finally:
            school.stop()
    mean: dict[str, float] = {}
    for name in ("jnufm", "hello"):
        figures = [x["cpu_us"] for x in runs if x["system"] == name and x["cpu_us"] is not None]
        if not figures:
            raise SystemExit(f"bench: {name} answered no request in any round")
        mean[name] = sum(figures) / len(figures)
    return {"runs": runs, "mean_cpu_us": mean, "hello_over_jnufm": mean["hello"] / mean["jnufm"]}


def _save(kind: str, doc: dict[str, Any]) -> Path:
    started = dt.datetime.now(dt.UTC)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{kind}.json"
    path.write_text(json.dumps({"kind": kind, "machine": machine_facts(), **doc}, indent=1) + "\n")
    return path


def main_profile(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench profile")
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args(argv)
    result = profile(args.seconds)
    p = result["profile"]
    print(f"load: {result['load']['rps']} req/s; {p['samples']} samples of one worker")
    print(f"workers' CPU per request: {result['cpu_us_per_request']} us (user + system)")
    print("\nself time by owner:")
    for k, v in p["owner_self"]:
        print(f"  {v:5.1f}%  {k}")
    print("\ntop self time:")
    for k, v in p["self"][:20]:
        print(f"  {v:5.1f}%  {k}")
    print("\ntop inclusive time:")
    for k, v in p["inclusive"][:25]:
        print(f"  {v:5.1f}%  {k}")
    print("\nour innermost frame (what of ours led to the time):")
    for k, v in p["ours_innermost"][:15]:
        print(f"  {v:5.1f}%  {k}")
    print(f"\nresults: {_save('profile', result)}")
    return 0


def main_cpu(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench cpu")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args(argv)
    result = cpu_rounds(args.rounds, args.seconds)
    mean = result["mean_cpu_us"]
    print(
        f"\nmean CPU per request: jnufm {mean['jnufm']:.1f} us, hello-world "
        f"{mean['hello']:.1f} us (hello/jnufm {result['hello_over_jnufm']:.3f}; the warm "
        "balance with the benchmark's lifted per-address limits, bench/configs/default.yaml)"
    )
    print(f"results: {_save('cpu', result)}")
    return 0


def main_loops(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench loops")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    result = loops(args.rounds, args.seconds)
    print(
        f"\nmean req/s: asyncio {result['mean_rps']['asyncio']:.1f}, "
        f"uvloop {result['mean_rps']['uvloop']:.1f} "
        f"(uvloop/asyncio {result['uvloop_over_asyncio']:.3f})"
    )
    print(f"results: {_save('loops', result)}")
    return 0
