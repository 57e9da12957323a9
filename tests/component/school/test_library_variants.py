"""Both catalogues in every markup variant (schoolsim/variants.py), through our real
server over HTTP against the real simulator process: a search with results (first and
last page), no hits, copies on the shelf only, a single hit (the record page), a book
page, and the Zhuhai catalogue (iszh=1: results, the next page, a book), each through
the 2013 URLs and the v1 routes, answer the same JSON as under the `plain` pages. One
simulator for the module; the variant is switched through its control endpoint, and
every question is asked fresh (`Cache-Control: no-cache`), so the cache never hides a
variant."""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from schoolsim.variants import VARIANTS
from tests.conftest import make_settings, serve_app

QUERY = "数据结构"
ZH_QUERY = "数据"
NO_HITS = "zzqqxxyy"
# What changes from one asking to the next, whatever the page: when, and from where.
_MOMENT = ("as_of", "source", "stale")


@pytest.fixture(scope="module")
def catalogues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


def switch(sim: Proc, variant: str) -> None:
    for system in ("opac", "ilas"):
        answer = sim_json(sim.url, f"/__sim/{system}/control", {"variant": variant})
        assert answer["settings"]["variant"] == variant


def truth(sim: Proc, system: str, q: str, **flags: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"q": q, **flags})
    return sim_json(sim.url, f"/__sim/{system}/search?{query}")


def pages_read(sim: Proc) -> int:
    return sum(
        int(sim_json(sim.url, f"/__sim/{system}/stats")["requests"]) for system in ("opac", "ilas")
    )


def single_hit_query(sim: Proc, ids: list[str]) -> str:
    """A query the main catalogue answers with one book (its record page)."""
    for record_id in ids:
        shown = sim_json(sim.url, f"/__sim/opac/books/{record_id}")
        query = f"{shown['title']} {shown['author']}"
        if truth(sim, "opac", query)["total"] == 1:
            return query
    raise AssertionError("no query with a single hit among the first results")


def questions(sim: Proc) -> list[tuple[str, dict[str, str]]]:
    """Every question of the matrix: (path, parameters)."""
    main = truth(sim, "opac", QUERY)
    shelf = truth(sim, "opac", QUERY, available="1")
    zhuhai = truth(sim, "ilas", ZH_QUERY, title_only="1")
    assert main["total"] > 24 and 0 < shelf["total"] < main["total"]
    assert zhuhai["total"] > 10
    last = str(-(-main["total"] // 12))
    record = main["ids"][0]
    record_url = f"{sim.url}/opac/record={record}~S1*chx"
    encoded = base64.urlsafe_b64encode(record_url.encode()).decode().rstrip("=")
    single = single_hit_query(sim, main["ids"])
    legacy = "/book/search/engine"
    return [
        (legacy, {"query": QUERY}),
        (legacy, {"query": QUERY, "page": last}),
        (legacy, {"query": NO_HITS}),
        (legacy, {"query": QUERY, "available": "1"}),
        (legacy, {"query": single}),
        (legacy, {"query": ZH_QUERY, "iszh": "1"}),
        ("/web/book", {"url": encoded}),
        ("/v1/library/search", {"q": QUERY}),
        ("/v1/library/search", {"q": QUERY, "page": last}),
        ("/v1/library/search", {"q": NO_HITS}),
        ("/v1/library/search", {"q": QUERY, "available": "1"}),
        ("/v1/library/search", {"q": single}),
        ("/v1/library/search", {"q": ZH_QUERY, "campus": "zhuhai"}),
        ("/v1/library/search", {"q": ZH_QUERY, "campus": "zhuhai", "page": "2"}),
        (f"/v1/library/books/{record}", {}),
        (f"/v1/library/books/zh-{zhuhai['ids'][0]}", {}),
    ]


async def answers(
    client: httpx.AsyncClient, sim: Proc, asked: list[tuple[str, dict[str, str]]]
) -> list[Any]:
    """Each question's answer, from the catalogues (never from our cache)."""
    got: list[Any] = []
    for path, params in asked:
        before = pages_read(sim)
        resp = await client.get(path, params=params, headers={"Cache-Control": "no-cache"})
        assert resp.status_code == 200, (path, params, resp.text)
        assert pages_read(sim) > before, (path, params)
        if path == "/web/book":
            got.append(resp.text)
            continue
        body = resp.json()
        if path.startswith("/v1/"):
            assert body["source"] == "school", (path, params)
            body = {k: v for k, v in body.items() if k not in _MOMENT}
        got.append(body)
    return got


async def test_every_library_answer_in_each_variant(catalogues: Proc, tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}",
        catalogues.url,
        **{"cache.fresh_min_interval_s": 0},
    )
    asked = questions(catalogues)
    got: dict[str, list[Any]] = {}
    async with serve_app(settings) as (client, _):
        try:
            for variant in (*VARIANTS, "mixed"):
                switch(catalogues, variant)
                got[variant] = await answers(client, catalogues, asked)
        finally:
            switch(catalogues, "plain")
    plain = got["plain"]
    # The plain answers hold what the matrix is about.
    assert len(plain[0]["data"]) == 12 and plain[2]["data"] == []
    assert len(plain[4]["data"]) == 1 and len(plain[5]["data"]) == 10
    assert plain[8]["total"] is not None and plain[8]["links"]["next"] is None
    assert plain[13]["books"] and plain[13]["books"][0]["id"].startswith("zh-")
    for variant, answered in got.items():
        for question, mine, theirs in zip(asked, answered, plain, strict=True):
            assert mine == theirs, (variant, question)


def test_the_simulator_writes_the_variant_asked(catalogues: Proc) -> None:
    """The switch reaches the pages: each variant's header and markup, from the process."""
    record = truth(catalogues, "opac", QUERY)["ids"][0]
    zh_record = truth(catalogues, "ilas", ZH_QUERY, title_only="1")["ids"][0]
    seen: dict[str, tuple[str, bytes, str, bytes]] = {}
    try:
        for variant in VARIANTS:
            switch(catalogues, variant)
            main = httpx.get(f"{catalogues.url}/opac/record={record}~S1*chx", trust_env=False)
            zhuhai = httpx.get(
                f"{catalogues.url}/ilas/cgi-bin/DispBibDetail",
                params={"v_recno": zh_record, "v_curdbno": "0"},
                trust_env=False,
            )
            assert main.status_code == zhuhai.status_code == 200
            seen[variant] = (
                main.headers["content-type"],
                main.content,
                zhuhai.headers["content-type"],
                zhuhai.content,
            )
    finally:
        switch(catalogues, "plain")
    assert seen["plain"][0] == "text/html; charset=UTF-8" and seen["plain"][1].endswith(
        b"</html>\n"
    )
    assert seen["legacy"][0] == "text/html" and b"<TD" in seen["legacy"][1]
    assert b"</html>" not in seen["legacy"][1].lower()
    assert seen["modern"][2] == "text/html; charset=GBK" and b"<span" in seen["modern"][3]
    bare_type, bare_page, bare_zh_type, bare_zh = seen["bare"]
    assert bare_type == bare_zh_type == "text/html"
    assert b"charset" not in bare_page.lower() and b"charset" not in bare_zh.lower()
    assert b"&#" in bare_page and b"&nbsp;" in bare_zh
    # The bytes stay in each catalogue's own charset.
    bare_page.decode("utf-8")
    bare_zh.decode("gbk")
