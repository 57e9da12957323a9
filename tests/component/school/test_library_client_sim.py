"""The library clients against the real simulated catalogues (`python -m schoolsim`)."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from harness.processes import Proc, schoolsim, sim_json
from school.errors import QueryRejected, SchoolConnectionError, SchoolPageError, SchoolServerError
from systems.library.config import (
    CoverServiceConfig,
    MainCatalogueConfig,
    ZhuhaiCatalogueConfig,
)
from systems.library.covers import CoverClient
from systems.library.ilas import IlasClient
from systems.library.innopac import InnopacClient
from systems.library.isbn import normalise_isbn
from systems.library.models import BookRecord, SearchPage


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def settings(sim: Proc, path: str) -> MainCatalogueConfig:
    return MainCatalogueConfig(**config(sim, path))


def config(sim: Proc, path: str, **more: object) -> dict[str, object]:
    """A catalogue section's keys for the simulator at `path`."""
    keys = {"connect_timeout_s": 2.0, "total_timeout_s": 10.0, "user_agent": "jnufm-test"}
    return {"base_url": sim.url + path, **keys, **more}


def zhuhai(sim: Proc, **more: object) -> ZhuhaiCatalogueConfig:
    return ZhuhaiCatalogueConfig(**config(sim, "/ilas", **more))


def covers(sim: Proc) -> CoverServiceConfig:
    return CoverServiceConfig(**config(sim, "/covers"))


def truth_search(sim: Proc, system: str, q: str, **flags: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"q": q, **flags})
    return sim_json(sim.url, f"/__sim/{system}/search?{query}")


def book(sim: Proc, system: str, record_id: str) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/{system}/books/{record_id}")


def counts(sim: Proc, system: str) -> dict[str, Any]:
    return sim_json(sim.url, f"/__sim/{system}/stats")


# --- main catalogue (INNOPAC) -----------------------------------------------------------


async def test_chinese_search_pages_match_the_catalogue(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    truth = truth_search(sim, "opac", "数据结构")
    assert truth["total"] > 24
    first = await client.search("数据结构", 1, False)
    second = await client.search(" 数据结构 ", 2, False)
    assert (first.catalogue, first.query, first.per_page) == ("main", "数据结构", 12)
    assert first.total == second.total == truth["total"]
    assert [b.record_id for b in first.books] == truth["ids"][:12]
    assert [b.record_id for b in second.books] == truth["ids"][12:24]
    shown = first.books[0]
    expected = book(sim, "opac", shown.record_id)
    assert (shown.title, shown.author) == (expected["title"], expected["author"])
    assert shown.publisher == expected["publication"]
    assert shown.year == expected["year"]
    assert shown.cover_isbn == expected["isbn"]
    assert len(shown.holdings) == len(expected["copies"])
    assert client.record_id_from_url(shown.record_url) == shown.record_id


async def test_english_full_width_query(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    page = await client.search("Ｐｙｔｈｏｎ　Ｐｒｏｇｒａｍｍｉｎｇ", 1, False)
    truth = truth_search(sim, "opac", "Python Programming")
    assert page.query == "Python Programming"
    assert page.total == truth["total"] > 0
    assert all("python programming" in b.title.lower() for b in page.books)


async def test_available_only(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    every = await client.search("Python", 1, False)
    page = await client.search("Python", 1, True)
    truth = truth_search(sim, "opac", "Python", available="1")
    assert page.total == truth["total"]
    assert every.total is not None and page.total is not None and page.total < every.total
    assert [b.record_id for b in page.books] == truth["ids"][:12]
    assert all(any(h.available for h in b.holdings) for b in page.books)


async def test_no_hits_and_past_the_end(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    none = await client.search("zzqqxxyy", 1, False)
    assert (none.total, none.books) == (0, ())
    truth = truth_search(sim, "opac", "红楼梦")
    beyond = truth["total"] // 12 + 3
    past = await client.search("红楼梦", beyond, False)
    assert (past.total, past.books) == (truth["total"], ())


async def test_single_hit_answers_with_the_record(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    for n in range(1, 200):
        record_id = f"b{1000001 + 3 * n:07d}"
        expected = book(sim, "opac", record_id)
        query = f"{expected['title']} {expected['author']}"
        if truth_search(sim, "opac", query)["total"] == 1:
            break
    else:
        pytest.fail("no book with a unique title and author in the first 200")
    page = await client.search(query, 1, False)
    assert page.total == 1
    (only,) = page.books
    assert (only.record_id, only.title) == (record_id, expected["title"])
    assert only.cover_isbn == expected["isbn"]


async def test_record_with_holdings(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    record = await client.record("b1000004")
    expected = book(sim, "opac", "b1000004")
    assert (record.catalogue, record.record_id) == ("main", "b1000004")
    assert (record.title, record.author) == (expected["title"], expected["author"])
    assert record.isbn == expected["isbn"]
    assert record.call_number == expected["call_number"]
    assert record.publisher == expected["publication"]
    assert [h.location for h in record.holdings] == [c["location"] for c in expected["copies"]]
    for shown, copy in zip(record.holdings, expected["copies"], strict=True):
        assert shown.available == (copy["state"] == "shelf")
        due = date.fromisoformat(copy["due"]) if copy["due"] else None
        assert shown.due == due
    # What the pipeline stores comes back equal.
    adapter: TypeAdapter[BookRecord] = TypeAdapter(BookRecord)
    assert adapter.validate_json(adapter.dump_json(record)) == record
    assert client.record_id_from_url(record.record_url) == "b1000004"


async def test_missing_record_is_the_requests_fault(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    with pytest.raises(QueryRejected):
        await client.record("b9999999")
    with pytest.raises(ValueError, match="b1234567"):
        await client.record("../../etc")


async def test_bad_queries_are_not_sent(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    for query in ("", "\u3000 ", "x" * 201, "()"):
        with pytest.raises(ValueError, match="query"):
            await client.search(query, 1, False)
    with pytest.raises(ValueError, match="page"):
        await client.search("Python", 0, False)
    assert client.requests_sent == 0


async def test_catalogue_down_or_failing(sim: Proc, http: httpx.AsyncClient) -> None:
    client = InnopacClient(settings(sim, "/opac"), http)
    try:
        sim_json(sim.url, "/__sim/opac/control", {"down": True, "down_mode": "error"})
        with pytest.raises(SchoolServerError):
            await client.search("Python", 1, False)
        sim_json(sim.url, "/__sim/opac/control", {"down_mode": "reset"})
        with pytest.raises(SchoolConnectionError):
            await client.record("b1000004")
    finally:
        sim_json(sim.url, "/__sim/opac/control", {"down": False})
    # Only the catalogue was down: the Zhuhai one answered all along.
    assert (await IlasClient(zhuhai(sim), http).search("Python", 1)).books


# --- Zhuhai catalogue (ILAS) -----------------------------------------------------------


async def test_ilas_gbk_search_and_paging(sim: Proc, http: httpx.AsyncClient) -> None:
    client = IlasClient(zhuhai(sim), http)
    truth = truth_search(sim, "ilas", "红楼梦", title_only="1")
    assert truth["total"] > 20
    before = counts(sim, "ilas")["searches"]
    first = await client.search("红楼梦", 1, False)
    third = await client.search("红楼梦", 3, True)
    assert counts(sim, "ilas")["searches"] - before == 1 + 3
    assert (first.catalogue, first.per_page, first.total) == ("zhuhai", 10, truth["total"])
    assert [b.record_id for b in first.books] == truth["ids"][:10]
    assert [b.record_id for b in third.books] == truth["ids"][20:30]
    assert all(b.status == "" and b.holdings == () for b in first.books)
    shown = first.books[0]
    assert shown.title == book(sim, "ilas", shown.record_id)["title"]
    assert client.record_id_from_url(shown.record_url) == shown.record_id


async def test_ilas_detail_isbn_and_copies(sim: Proc, http: httpx.AsyncClient) -> None:
    client = IlasClient(zhuhai(sim), http)
    record = await client.record("300007")
    expected = book(sim, "ilas", "300007")
    assert (record.catalogue, record.title, record.author) == (
        "zhuhai",
        expected["title"],
        expected["author"],
    )
    assert record.isbn == expected["isbn"] == normalise_isbn(expected["isbn_shown"])
    assert record.call_number == expected["call_number"]
    assert len(record.holdings) == len(expected["copies"])
    assert [h.available for h in record.holdings] == [
        c["state"] == "shelf" for c in expected["copies"]
    ]
    with pytest.raises(QueryRejected):
        await client.record("999999")


async def test_ilas_isbn_lookups_and_past_the_end(sim: Proc, http: httpx.AsyncClient) -> None:
    client = IlasClient(zhuhai(sim, isbn_lookups=2), http)
    page = await client.search("Python", 1)
    looked, plain = page.books[:2], page.books[2:]
    for shown in looked:
        assert shown.cover_isbn == book(sim, "ilas", shown.record_id)["isbn"]
        assert shown.holdings
    assert all(b.cover_isbn == "" for b in plain)
    for n in range(200):
        title = book(sim, "ilas", str(300001 + n))["title"]
        truth = truth_search(sim, "ilas", title, title_only="1")
        if truth["total"] <= 10:
            break
    else:
        pytest.fail("no title with at most 10 books in the first 200")
    past = await IlasClient(zhuhai(sim), http).search(title, 2)
    assert (past.total, past.books) == (truth["total"], ())
    stored: TypeAdapter[SearchPage] = TypeAdapter(SearchPage)
    assert stored.validate_json(stored.dump_json(page)) == page


async def test_ilas_asks_nothing_it_cannot_carry(sim: Proc, http: httpx.AsyncClient) -> None:
    client = IlasClient(zhuhai(sim), http)
    # The catalogue is GBK: a query outside it matches no record, so no request is sent.
    nothing = await client.search("Python \U0001f600", 1)
    assert (nothing.total, nothing.books) == (0, ())
    with pytest.raises(ValueError, match="page"):
        await client.search("Python", 11)
    assert client.requests_sent == 0


# --- covers ---------------------------------------------------------------------------


def isbns(sim: Proc, with_cover: bool) -> str:
    for n in range(100):
        isbn = book(sim, "opac", f"b{1000001 + 3 * n:07d}")["isbn"]
        if sim_json(sim.url, f"/__sim/covers/isbn/{isbn}")["cover"] is with_cover:
            return str(isbn)
    raise AssertionError("no such ISBN in the first 100 books")


async def test_cover_found_and_none(sim: Proc, http: httpx.AsyncClient) -> None:
    sim_json(sim.url, "/__sim/covers/reset", {})
    client = CoverClient(covers(sim), http)
    found = await client.cover(isbns(sim, True))
    assert found is not None
    image, kind = found
    assert kind == "image/jpeg" and image.startswith(b"\xff\xd8\xff")
    assert await client.cover(isbns(sim, False)) is None
    with pytest.raises(ValueError, match="ISBN"):
        await client.cover("97871-15230271")
    assert counts(sim, "covers")["covers"] == 1


@pytest.mark.parametrize("answer", ["html", "mislabelled", "oversize"])
async def test_cover_that_is_not_an_image_is_refused(
    sim: Proc, http: httpx.AsyncClient, answer: str
) -> None:
    client = CoverClient(covers(sim), http)
    isbn = isbns(sim, True)
    try:
        sim_json(sim.url, "/__sim/covers/drill", {"answer": answer})
        with pytest.raises(SchoolPageError):
            await client.cover(isbn)
    finally:
        sim_json(sim.url, "/__sim/covers/reset", {})
    assert await client.cover(isbn) is not None
