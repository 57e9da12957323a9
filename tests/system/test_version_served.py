"""The version and the start time as the pre-forked server exposes them: every worker's
/healthz, and /metrics merged over the processes (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import Proc, jnufm_server
from tests.system.test_server_process import workers_seen
from version import version


def test_every_worker_says_the_version_and_metrics_say_build_and_start(
    tmp_path: Path, sim: Proc, db_url: str
) -> None:
    before = time.time()
    with jnufm_server(tmp_path, db_url, sim.url, processes=2) as server:
        workers_seen(server.url, 2)
        versions = {
            httpx.get(server.url + "/healthz", headers={"Connection": "close"}).json()["version"]
            for _ in range(10)
        }
        assert versions == {version()}
        resp = httpx.get(server.url + "/metrics", headers={"Connection": "close"}, timeout=10)
    assert resp.status_code == 200
    samples = [s for f in text_string_to_metric_families(resp.text) for s in f.samples]
    builds = [s for s in samples if s.name == "jnufm_build_info"]
    assert [(s.labels, s.value) for s in builds] == [
        ({"version": version(), "python": platform.python_version()}, 1)
    ]
    # One series, the oldest live process's (the master's): the server's uptime.
    starts = [s for s in samples if s.name == "process_start_time_seconds"]
    assert len(starts) == 1 and starts[0].labels == {}
    assert before - 60 < starts[0].value <= time.time()
    if shutil.which("promtool"):
        out = subprocess.run(
            ["promtool", "check", "metrics"],
            input=resp.text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
