"""The version, as /healthz, /openapi.json, /metrics and the WeChat chat show it (the app
over real HTTP, in this process)."""

from __future__ import annotations

import platform
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from version import version


async def test_healthz_and_openapi_say_the_version(http_client: httpx.AsyncClient) -> None:
    health = (await http_client.get("/healthz")).json()
    assert health["version"] == version()
    spec = (await http_client.get("/openapi.json")).json()
    assert spec["info"]["version"] == version()
    assert "version" in spec["components"]["schemas"]["Health"]["required"]


async def test_metrics_carry_build_info_and_the_start_time(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/metrics")
    assert resp.status_code == 200
    samples = {
        s.name: s for family in text_string_to_metric_families(resp.text) for s in family.samples
    }
    build = samples["jnufm_build_info"]
    assert build.value == 1
    assert build.labels == {"version": version(), "python": platform.python_version()}
    assert 0 < samples["process_start_time_seconds"].value <= time.time()
