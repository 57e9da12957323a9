"""A worker's own memory: what the master loads before the fork, and glibc's allocator knobs.

The figures (USS and RSS per worker after the full benchmark) are in
docs/benchmarks.md; these tests hold the properties those figures rest on.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import Proc, jnufm_server
from runtime import memory
from settings import ConfigError, load_settings

STUDENT, PASSWORD = "2012052690", "052690"
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", re.MULTILINE)


@pytest.fixture
def traced_server(tmp_path: Path, sim: Proc, db_url: str) -> Iterator[Proc]:
    """Two workers whose every import is written to the log (`python -X importtime`)."""
    with jnufm_server(
        tmp_path,
        db_url,
        sim.url,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
        log={"level": "INFO"},
    ) as proc:
        yield proc


def _all_serving(proc: Proc, timeout: float = 20) -> int:
    """Wait for the master's "workers serving" line; the log's length at that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = proc.log()
        if "2 workers serving" in text:
            return len(text)
        time.sleep(0.05)
    raise AssertionError("the workers did not all start:\n" + proc.log()[-2000:])


def test_a_request_of_every_kind_imports_nothing_in_the_workers(traced_server: Proc) -> None:
    """Everything a worker needs was imported by the master before the fork (shared pages):
    a module first imported in a worker costs every worker its own copy."""
    mark = _all_serving(traced_server)
    legacy = {"stuid": STUDENT, "password": PASSWORD}
    office = {"user": STUDENT, "password": PASSWORD, "year": "2012", "term": "1"}
    with httpx.Client(base_url=traced_server.url, timeout=30) as client:
        # New connections, so that both workers are asked (fair accepting alternates).
        for _ in range(2):
            headers = {"Connection": "close"}
            asked = [
                client.get("/card/rest", params=legacy, headers=headers),
                client.get("/card/today", params=legacy, headers=headers),
                client.get("/card/personalinfo", params=legacy, headers=headers),
                client.get("/class/get", params=office, headers=headers),
                client.get("/v1/grades", params=office, auth=(STUDENT, PASSWORD), headers=headers),
                client.get("/v1/timetable.ics", auth=(STUDENT, PASSWORD), headers=headers),
                client.get("/book/search/engine", params={"query": "Python"}, headers=headers),
                client.get(
                    "/book/search/engine", params={"query": "Python", "iszh": "1"}, headers=headers
                ),
                client.get("/v1/library/search", params={"q": "history"}, headers=headers),
                client.get("/metrics", headers=headers),
                client.get("/no/such/path", headers=headers),
            ]
            assert [r.status_code for r in asked] == [200] * 10 + [404], [
                (str(r.url), r.status_code, r.text[:200]) for r in asked if r.status_code >= 400
            ]
            isbns = [b["isbn"] for b in asked[6].json()["data"] if b.get("isbn")]
            assert isbns, "the simulated catalogue lists books with ISBNs"
            cover = client.get(f"/isbn/image/{isbns[0]}", headers=headers)
            assert cover.status_code == 200
    time.sleep(0.3)
    late = IMPORT_LINE.findall(traced_server.log()[mark:])
    assert late == [], f"imported in a worker after the fork: {sorted(set(late))}"


def test_the_master_builds_the_openapi_document_before_the_fork(tmp_path: Path) -> None:
    """Every worker's application serves the OpenAPI document from a per-process cache:
    built in the master, the workers share it (built in each, ~8 MB of each one's own)."""
    from handlers import docs
    from runtime.wiring import preload

    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}\n")
    docs.openapi_gzipped.cache_clear()
    docs.openapi_body.cache_clear()
    preload(load_settings(config))
    built = docs.openapi_gzipped.cache_info()
    # What make_app asks for at each worker's start, and the document handler after it.
    made, served = docs.openapi_gzipped(), docs.openapi_gzipped(False)
    assert docs.openapi_gzipped.cache_info().hits == built.hits + 2
    assert docs.openapi_gzipped.cache_info().misses == built.misses
    assert gzip.decompress(made) == gzip.decompress(served) == docs.openapi_body(False)


def test_the_allocator_knobs_take_on_glibc() -> None:
    assert memory.available(), "these servers run on glibc"
    assert memory.limit_arenas(2) is True
    assert memory.limit_arenas(0) is False  # 0 = leave the C library's default
    assert isinstance(memory.trim(), bool)
    junk = [bytearray(4096) for _ in range(4096)]
    del junk[::2]
    memory.trim()  # walks the heap with holes in it; must not disturb what is still held
    assert all(len(b) == 4096 for b in junk)


def test_memory_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("memory:\n  malloc_arenas: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"memory\.malloc_arenas"):
        load_settings(config)
    config.write_text("memory:\n  trim_interval_s: never\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"memory\.trim_interval_s"):
        load_settings(config)
    config.write_text("memory:\n  trim_interval_s: 0.01\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"memory\.trim_interval_s: .*at least 0\.5 s"):
        load_settings(config)
    config.write_text("memory:\n  malloc_arenas: 0\n  trim_interval_s: 0\n", encoding="utf-8")
    settings = load_settings(config)
    assert (settings.memory.malloc_arenas, settings.memory.trim_interval_s) == (0, 0)
