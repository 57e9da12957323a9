"""The library endpoints over real HTTP against the simulated catalogues and cover
service: the 2013 shapes (/book/search/<x>, /web/book, /isbn/image/<isbn>) and the
clean API (/v1/library/search, /v1/library/books/<id>); shared answers, a catalogue
down (stale, then 503), and /web/book refusing any URL but the catalogues' records;
on SQLite and MySQL."""

from __future__ import annotations

import asyncio
import base64
import io
import urllib.parse
from typing import Any

import httpx
import pytest
from PIL import Image

from harness.processes import Proc, sim_json
from tests.conftest import make_settings, serve_app

QUERY = "数据结构"


def truth(sim: Proc, q: str, system: str = "opac", **flags: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"q": q, **flags})
    return sim_json(sim.url, f"/__sim/{system}/search?{query}")


def book(sim: Proc, record_id: str, system: str = "opac") -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/{system}/books/{record_id}")


def requests_to(sim: Proc, system: str) -> int:
    count = sim_json(sim.url, f"/__sim/{system}/stats")["requests"]
    assert isinstance(count, int)
    return count


def b64(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


@pytest.fixture(autouse=True)
def catalogues_up(sim: Proc) -> None:
    for system in ("opac", "ilas", "covers"):
        sim_json(sim.url, f"/__sim/{system}/reset", {})


# The 2013 shapes ----------------------------------------------------------------------------


async def test_book_search_in_chinese_is_2013_shaped(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    expected = truth(sim, QUERY)
    resp = await http_client.get("/book/search/engine", params={"query": QUERY})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == 1.0
    rows = body["data"]
    assert len(rows) == min(12, expected["total"])
    first = rows[0]
    assert set(first) >= {
        "title",
        "url",
        "status",
        "detail",
        "author",
        "publish",
        "size",
        "year",
        "position",
        "checkout",
        "isbn",
        "image",
        "douban",
    }
    truth_book = book(sim, expected["ids"][0])
    assert first["title"] == truth_book["title"]
    assert first["author"] == truth_book["author"]
    assert first["isbn"] == truth_book["isbn"]
    assert first["checkout"] in (0, 1)
    assert isinstance(first["position"], list) and len(first["position"]) == len(
        truth_book["copies"]
    )
    assert first["image"].endswith(f"/isbn/image/{truth_book['isbn']}")


async def test_search_is_shared_and_normalised(http_client: httpx.AsyncClient, sim: Proc) -> None:
    first = await http_client.get("/book/search/engine", params={"query": "Python"})
    assert first.status_code == 200
    before = requests_to(sim, "opac")
    # Another student, full-width letters and extra spaces: the same question, from the cache.
    again = await http_client.get(
        "/v1/library/search", params={"q": "  Ｐｙｔｈｏｎ ", "page": "1"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["source"] == "cache"
    assert requests_to(sim, "opac") == before


async def test_v1_search_pages_and_links(http_client: httpx.AsyncClient, sim: Proc) -> None:
    expected = truth(sim, QUERY)
    total = expected["total"]
    last = -(-total // 12)
    resp = await http_client.get("/v1/library/search", params={"q": QUERY, "page": last})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["total"], body["pages"], body["page"], body["per_page"]) == (
        total,
        last,
        last,
        12,
    )
    assert [b["id"] for b in body["books"]] == expected["ids"][(last - 1) * 12 :]
    assert body["links"]["next"] is None
    assert body["links"]["prev"] is not None and f"page={last - 1}" in body["links"]["prev"]
    first = (await http_client.get("/v1/library/search", params={"q": QUERY})).json()
    assert first["links"]["next"] is not None and "page=2" in first["links"]["next"]


async def test_v1_search_empty_result(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/v1/library/search", params={"q": "zzqqxxyy"})
    assert resp.status_code == 200
    body = resp.json()
    assert (body["total"], body["books"], body["links"]["next"]) == (0, [], None)


async def test_v1_search_available_only(http_client: httpx.AsyncClient, sim: Proc) -> None:
    expected = truth(sim, "Python", available="1")
    resp = await http_client.get("/v1/library/search", params={"q": "Python", "available": "1"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["total"] == expected["total"]
    assert all(b["available"] for b in body["books"])


async def test_v1_book_with_holdings(http_client: httpx.AsyncClient, sim: Proc) -> None:
    record_id = truth(sim, QUERY)["ids"][0]
    expected = book(sim, record_id)
    resp = await http_client.get(f"/v1/library/books/{record_id}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["id"], body["campus"], body["title"]) == (record_id, "main", expected["title"])
    assert len(body["holdings"]) == len(expected["copies"])
    for holding in body["holdings"]:
        assert set(holding) == {"location", "call_number", "status", "available", "due"}
    missing = await http_client.get("/v1/library/books/b9999999")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_book"


async def test_zhuhai_catalogue_in_gbk(http_client: httpx.AsyncClient, sim: Proc) -> None:
    word = "三国" if truth(sim, "三国", "ilas")["total"] else "中国"
    expected = truth(sim, word, "ilas")
    assert expected["total"] > 0
    legacy = await http_client.get("/book/search/engine", params={"query": word, "iszh": "1"})
    assert legacy.status_code == 200, legacy.text
    titles = [row["title"] for row in legacy.json()["data"]]
    assert titles and all(word in t or t for t in titles)
    v1 = await http_client.get("/v1/library/search", params={"q": word, "campus": "zhuhai"})
    assert v1.status_code == 200
    first = v1.json()["books"][0]
    assert first["id"].startswith("zh-")
    record = await http_client.get(f"/v1/library/books/{first['id']}")
    assert record.status_code == 200, record.text
    assert record.json()["campus"] == "zhuhai"


async def test_web_book_is_escaped_html(http_client: httpx.AsyncClient, sim: Proc) -> None:
    found = (await http_client.get("/book/search/engine", params={"query": QUERY})).json()
    url = found["data"][0]["url"]
    resp = await http_client.get("/web/book", params={"url": b64(url)})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "Content-Security-Policy" in resp.headers
    assert found["data"][0]["title"].split()[0] in resp.text
    assert "<script" not in resp.text.lower()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/record=b1000004~S1*chx",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/",
        "http://evil.example@127.0.0.1/opac/record=b1000004",
        "not a url at all",
    ],
)
async def test_web_book_refuses_other_urls(http_client: httpx.AsyncClient, url: str) -> None:
    resp = await http_client.get("/web/book", params={"url": b64(url)})
    # Names no record of the catalogues: no such book page (never fetched).
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "invalid_url"


async def test_web_book_refuses_a_lookalike_of_the_catalogue(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    port = urllib.parse.urlsplit(sim.url).port
    assert port is not None
    for url in (
        f"http://127.0.0.1:{port}/opac/../__sim/opac/stats",
        f"http://127.0.0.1:{port}/__sim/control",
        f"http://127.0.0.1:{port}/opac/record=b1000004%2F..",
        f"http://127.0.0.1:{port + 1}/opac/record=b1000004",
    ):
        resp = await http_client.get("/web/book", params={"url": b64(url)})
        assert resp.status_code == 404, url
    garbage = await http_client.get("/web/book", params={"url": "%%%"})
    assert garbage.status_code == 404


async def test_cover_and_placeholder(http_client: httpx.AsyncClient, sim: Proc) -> None:
    isbn = book(sim, truth(sim, QUERY)["ids"][0])["isbn"]
    cover = await http_client.get(f"/isbn/image/{isbn}")
    assert cover.status_code == 200
    assert cover.headers["Content-Type"] in ("image/jpeg", "image/png", "image/gif")
    Image.open(io.BytesIO(cover.content)).verify()
    before = requests_to(sim, "covers")
    again = await http_client.get(f"/isbn/image/{isbn}")
    assert again.content == cover.content
    assert requests_to(sim, "covers") == before, "a cover is cached"
    # A valid ISBN the service has no cover for: our placeholder.
    candidates = (f"978000000{n:03d}" for n in range(1000))
    valid = (
        c + str((10 - sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(c)) % 10) % 10)
        for c in candidates
    )
    coverless = next(i for i in valid if not sim_json(sim.url, f"/__sim/covers/isbn/{i}")["cover"])
    none = await http_client.get(f"/isbn/image/{coverless}")
    assert none.status_code == 200
    assert none.headers["Content-Type"] == "image/png"
    assert none.headers.get("X-Cover") == "placeholder"
    bad = await http_client.get("/isbn/image/9780000000003")
    assert bad.status_code == 404
    assert bad.json()["error"]["code"] == "invalid_isbn"


async def test_bad_library_input_is_400(http_client: httpx.AsyncClient) -> None:
    cases = [
        ("/v1/library/search", {}, "missing_query"),
        ("/v1/library/search", {"q": "x" * 300}, "invalid_query"),
        ("/v1/library/search", {"q": "a", "page": "0"}, "invalid_page"),
        ("/v1/library/search", {"q": "a", "page": "abc"}, "invalid_page"),
        ("/v1/library/search", {"q": "a", "campus": "mars"}, "invalid_campus"),
        ("/v1/library/search", {"q": "a", "available": "maybe"}, "invalid_available"),
        ("/book/search/engine", {"query": "a", "iszh": "2"}, "invalid_campus"),
    ]
    for path, params, code in cases:
        resp = await http_client.get(path, params=params)
        assert resp.status_code == 400, (path, params, resp.text)
        assert resp.json()["error"]["code"] == code


async def test_a_catalogue_down_gives_stale_then_503(db_url: str, sim: Proc) -> None:
    settings = make_settings(db_url, sim.url, **{"cache.fresh_s.search": 0.5})
    async with serve_app(settings) as (client, _):
        ok = await client.get("/v1/library/search", params={"q": "Java"})
        assert ok.status_code == 200
        sim_json(sim.url, "/__sim/opac/control", {"down": True, "down_mode": "error"})
        try:
            await asyncio.sleep(0.6)
            # An answer seen before: served stale, marked as such.
            stale = await client.get("/v1/library/search", params={"q": "Java"})
            assert stale.status_code == 200, stale.text
            assert stale.json()["stale"] is True
            assert "fwd=stale; fwd-status=502" in stale.headers["Cache-Status"]
            # Questions never answered: a 502 each, until the breaker opens: then 503
            # at once, and the catalogue is not asked.
            statuses = []
            for word in ("Kotlin", "Rust", "Haskell", "Scala", "Erlang", "Fortran"):
                resp = await client.get("/v1/library/search", params={"q": word})
                assert "Retry-After" in resp.headers
                statuses.append(resp.status_code)
                if resp.status_code == 503:
                    assert resp.json()["error"]["code"] == "school_unavailable"
                    break
            assert statuses[-1] == 503 and set(statuses[:-1]) <= {502}, statuses
            before = requests_to(sim, "opac")
            again = await client.get("/v1/library/search", params={"q": "Pascal"})
            assert again.status_code == 503
            assert requests_to(sim, "opac") == before
        finally:
            sim_json(sim.url, "/__sim/opac/control", {"down": False})
