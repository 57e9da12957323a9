"""Load generators: ApacheBench (`ab`, apache2-utils) and `wrk`, and their output parsed.

Every run is bounded by a request count and a time limit and stops by itself.
"""

from __future__ import annotations

import bisect
import collections
import random
import re
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Student numbers (all exist in the simulator; password = last 6 digits).
COLD_BASE = 2013000000  # the cold run: COLD_BASE + i, i = 0, 1, 2, ...
MIXED_REPEAT_BASE = 2011000000  # the mixed run's returning students: + 0..MIXED_POOL-1
MIXED_POOL = 100
MIXED_NEW_BASE = 2014000000  # the mixed run's new students: + 0, 1, 2, ...
# The term-start run's students (academic office; password = last 6 digits): + 0, 1, ...
TERM_START_BASE = 2016000000
TERM_START_YEAR, TERM_START_TERM = 2026, 1
# The search run: Zipf-distributed title words of the simulated main catalogue.
SEARCH_SEED = 2013  # the query sequence's seed
SEARCH_ZIPF_S = 1.1
SEARCH_VOCABULARY = 500


def balance_path(stuid: str) -> str:
    """The 2013 balance query URL path for one student (default password)."""
    return f"/card/rest?stuid={stuid}&password={stuid[-6:]}"


def timetable_path(stuid: str, year: int = TERM_START_YEAR, term: int = TERM_START_TERM) -> str:
    """The 2013 timetable query URL path (academic office; default password)."""
    return f"/class/get?user={stuid}&password={stuid[-6:]}&year={year}&term={term}"


def search_path(query: str) -> str:
    """The 2013 library search URL path (main catalogue, first page)."""
    return f"/book/search/engine?query={urllib.parse.quote(query, safe='')}&page=1"


# Title words that make no query of their own (English function words).
_NOT_QUERIES = {"and", "the", "for", "with"}


def search_vocabulary(seed: int = 2013, size: int = SEARCH_VOCABULARY) -> list[str]:
    """The `size` most common title words of the simulated main catalogue (seed `seed`).

    A word is a run of letters (CJK included: a Chinese title is one word) in a
    title, NFKC and case-folded as the catalogue compares; words with digits,
    English ones under 3 letters and a few function words are left out. Ranked
    by the number of titles holding the word, then alphabetically: rank 1 is
    the most asked in the Zipf sequence. Every word finds at least its books.
    """
    from datetime import date

    from schoolsim.library.dataset import Catalogue, fold
    from schoolsim.library.opac import BOOKS

    counts: collections.Counter[str] = collections.Counter()
    for book in Catalogue(seed, "main", BOOKS, date.today()).books:
        words = set(re.findall(r"\w+", fold(book.title)))
        for word in words:
            if any(c.isdigit() for c in word) or word in _NOT_QUERIES:
                continue
            if word.isascii() and len(word) < 3:
                continue
            counts[word] += 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [word for word, _ in ranked[:size]]


def zipf_sequence(
    n: int, count: int, s: float = SEARCH_ZIPF_S, seed: int = SEARCH_SEED
) -> list[int]:
    """`count` ranks in 0..n-1 drawn with P(rank k) ~ 1 / (k + 1) ** s, the same for a seed."""
    rng = random.Random(seed)
    cumulative = []
    total = 0.0
    for k in range(1, n + 1):
        total += 1.0 / k**s
        cumulative.append(total)
    return [min(n - 1, bisect.bisect_left(cumulative, rng.random() * total)) for _ in range(count)]


@dataclass
class LoadResult:
    """What one load run measured (times in ms)."""

    tool: str
    command: list[str]
    completed: int = 0
    failed: int = 0
    non_2xx: int = 0
    socket_errors: int = 0
    empty: int = 0  # 2xx answers without data (counted by wrk_paths only)
    rps: float = 0.0
    seconds: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    mean_ms: float | None = None
    max_ms: float | None = None
    raw: str = field(default="", repr=False)

    @property
    def ok(self) -> int:
        """Answers with a 2xx status."""
        return max(0, self.completed - self.non_2xx)

    @property
    def answers(self) -> int:
        """2xx answers that carry data."""
        return max(0, self.ok - self.empty)

    @property
    def bad(self) -> int:
        """Failed requests: non-2xx answers plus requests that got no answer."""
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "command": " ".join(self.command),
            "completed": self.completed,
            "ok": self.ok,
            "failed": self.bad,
            "non_2xx": self.non_2xx,
            "socket_errors": self.socket_errors,
            "empty": self.empty,
            "answers": self.answers,
            "ab_failed": self.failed if self.tool == "ab" else None,
            "rps": round(self.rps, 2),
            "seconds": round(self.seconds, 4),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "max_ms": self.max_ms,
        }


def _num(pattern: str, text: str, default: float = 0.0) -> float:
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else default


def ab(url: str, concurrency: int, requests: int, time_limit: float) -> LoadResult:
    """`ab -c C -n N URL`, stopped after time_limit seconds at the latest (`-t`)."""
    # -t first: it implies -n 50000, which the later -n overrides; ab then stops
    # at whichever comes first.
    cmd = [
        "ab",
        "-t",
        str(int(time_limit)),
        "-c",
        str(concurrency),
        "-n",
        str(requests),
        "-s",
        "60",
        "-r",
        url,
    ]
    shown = ["ab", "-c", str(concurrency), "-n", str(requests), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=time_limit + 90)
    out = proc.stdout + proc.stderr
    r = LoadResult("ab", shown, raw=out)
    r.completed = int(_num(r"^Complete requests:\s+(\d+)", out))
    r.failed = int(_num(r"^Failed requests:\s+(\d+)", out))
    r.non_2xx = int(_num(r"^Non-2xx responses:\s+(\d+)", out))
    exceptions = int(_num(r"Exceptions: (\d+)\)", out))
    connect = int(_num(r"\(Connect: (\d+),", out))
    receive = int(_num(r"Receive: (\d+),", out))
    r.socket_errors = exceptions + connect + receive
    r.rps = _num(r"^Requests per second:\s+([\d.]+)", out)
    r.seconds = _num(r"^Time taken for tests:\s+([\d.]+)", out)
    if r.completed:
        r.p50_ms = _num(r"^\s+50%\s+(\d+)", out)
        r.p99_ms = _num(r"^\s+99%\s+(\d+)", out)
        r.mean_ms = _num(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$", out)
        r.max_ms = _num(r"^\s+100%\s+(\d+)", out)
    if proc.returncode != 0 and not r.completed:
        r.raw = out
    return r


_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return 0.0
    return round(float(m.group(1)) * _UNIT[m.group(2)], 2)


LUA = r"""
-- Generated by bench/load.py. mode: single | cold | mixed.
local mode, limit, base, pool, newbase = "%(mode)s", %(limit)d, %(base)d, %(pool)d, %(newbase)d
local thread_count = %(threads)d
local threads_seen = 0
function setup(thread)
  thread:set("tid", threads_seen)
  threads_seen = threads_seen + 1
end
local i, done, new_i = 0, 0, 0
local function path(n)
  local s = string.format("%%010d", n)
  return "/card/rest?stuid=" .. s .. "&password=" .. string.sub(s, -6)
end
function init(args)
  math.randomseed(4242 + tid)
end
function request()
  local n
  if mode == "cold" then
    n = base + tid + i * thread_count
  elseif mode == "mixed" then
    if math.random() < 0.9 then
      n = base + math.random(0, pool - 1)
    else
      n = newbase + tid + new_i * thread_count
      new_i = new_i + 1
    end
  else
    n = base
  end
  i = i + 1
  return wrk.format("GET", path(n))
end
function response(status, headers, body)
  done = done + 1
  if limit > 0 and done == limit then
    io.write("LIMIT reached\n")
    io.flush()
    wrk.thread:stop()
  end
end
"""


LUA_PATHS = r"""
-- Generated by bench/load.py: request i is paths[order[i]] (order = 1, 2, 3, ...
-- when no order is given), in the order requests are sent; stops after `limit`
-- answers. Past the end of the order it starts again. A 2xx answer whose "data"
-- is an empty list or object is counted as empty (printed at the end).
local limit = __LIMIT__
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
empty = 0
local paths = {
__PATHS__
}
local order = {
__ORDER__
}
local i, answered = 0, 0
function request()
  local n
  if #order > 0 then
    n = order[(i % #order) + 1]
  else
    n = (i % #paths) + 1
  end
  i = i + 1
  return wrk.format("GET", paths[n])
end
function response(status, headers, body)
  answered = answered + 1
  if status >= 200 and status < 300 and body
      and string.find(body, '"data"%s*:%s*[%[{]%s*[%]}]') then
    empty = empty + 1
  end
  if limit > 0 and answered == limit then
    io.write("LIMIT reached\n")
    io.flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local n = 0
  for _, thread in ipairs(threads) do
    n = n + (thread:get("empty") or 0)
  end
  io.write("EMPTY " .. n .. "\n")
end
"""


def paths_script(paths: Sequence[str], order: Sequence[int], limit: int) -> str:
    """The Lua script of wrk_paths (paths are URL paths: ASCII, no quotes or backslashes)."""
    for p in paths:
        if not p.isascii() or '"' in p or "\\" in p or "\n" in p:
            raise ValueError(f"not a plain URL path: {p!r}")
    return (
        LUA_PATHS.replace("__LIMIT__", str(limit))
        .replace("__PATHS__", "\n".join(f'  "{p}",' for p in paths))
        .replace("__ORDER__", _lua_numbers([k + 1 for k in order]))
    )


def _lua_numbers(numbers: Sequence[int]) -> str:
    return "\n".join(
        "  " + ", ".join(map(str, numbers[j : j + 20])) + "," for j in range(0, len(numbers), 20)
    )


def wrk_paths(
    url: str,
    connections: int,
    seconds: float,
    tmp: Path,
    name: str,
    paths: Sequence[str],
    order: Sequence[int] = (),
    limit: int = 0,
    timeout_s: int = 30,
) -> LoadResult:
    """wrk on a list of URL paths (one thread): request i asks paths[order[i]], or paths[i]
    without an order; it stops after `limit` answers or `seconds`."""
    script = tmp / f"wrk-{name}.lua"
    script.write_text(paths_script(paths, order, limit))
    r = _run_wrk(url, connections, seconds, script, 1, timeout_s)
    r.empty = int(_num(r"^EMPTY (\d+)$", r.raw))
    return r


def wrk(
    url: str,
    connections: int,
    seconds: float,
    tmp: Path,
    mode: str = "single",
    base: int = 0,
    limit: int = 0,
    threads: int = 1,
    timeout_s: int = 30,
) -> LoadResult:
    """wrk for `seconds` at `connections`, each thread stopping after `limit` answers."""
    per_thread = -(-limit // threads) if limit else 0
    script = tmp / f"wrk-{mode}.lua"
    script.write_text(
        LUA
        % {
            "mode": mode,
            "limit": per_thread,
            "base": base,
            "pool": MIXED_POOL,
            "newbase": MIXED_NEW_BASE,
            "threads": threads,
        }
    )
    return _run_wrk(url, connections, seconds, script, threads, timeout_s)


def _run_wrk(
    url: str, connections: int, seconds: float, script: Path, threads: int, timeout_s: int
) -> LoadResult:
    """Run wrk with a Lua script whose threads print "LIMIT reached" at their count."""
    cmd = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{int(seconds)}s",
        "--timeout",
        f"{timeout_s}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    shown = [*cmd[:-3], "-s", script.name, url]
    # wrk sleeps its whole -d even when every thread has stopped at its count; on
    # SIGINT it stops at once and reports the real elapsed time, so send one
    # when every thread has said "LIMIT reached".
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reached = 0
    assert proc.stdout is not None
    deadline = time.monotonic() + seconds + timeout_s + 60
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("LIMIT reached"):
            reached += 1
            if reached >= threads:
                proc.send_signal(signal.SIGINT)
        if time.monotonic() > deadline:
            proc.kill()
            break
    proc.wait(30)
    proc.stdout.close()
    out = "".join(lines)
    r = LoadResult("wrk", shown, raw=out)
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", out)
    if m:
        r.completed = int(m.group(1))
        r.seconds = _wrk_ms(m.group(2) + m.group(3)) / 1000.0
    r.non_2xx = int(_num(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    se = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if se:
        r.socket_errors = sum(int(x) for x in se.groups())
    r.rps = _num(r"^Requests/sec:\s+([\d.]+)", out)
    lat = re.search(r"^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)", out, re.M)
    if lat:
        r.mean_ms = _wrk_ms(lat.group(1))
        r.max_ms = _wrk_ms(lat.group(3))
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if p50 and r.completed:
        r.p50_ms = _wrk_ms(p50.group(1))
    if p99 and r.completed:
        r.p99_ms = _wrk_ms(p99.group(1))
    return r
