"""The simulated library systems as a client sees them on the wire (real process)."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import Proc, schoolsim, sim_json

SEARCH = "/opac/search~S1*chx?/X({q})&SORT=D/X({q})&SORT=D&SUBKEY=({q})/{first},40,40,B/browse"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    with schoolsim(tmp_path_factory.mktemp("sim"), "fast") as proc:
        yield proc


def fetch(url: str, data: bytes | None = None) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def search_url(sim: Proc, query: str, first: int = 1) -> str:
    return sim.url + SEARCH.format(q=urllib.parse.quote(query, safe=""), first=first)


def test_webpac_result_page_markup(sim: Proc) -> None:
    total = sim_json(sim.url, "/__sim/opac/search?q=Python")["total"]
    assert isinstance(total, int) and total > 24
    status, kind, body = fetch(search_url(sim, "Python", 13))
    text = body.decode("utf-8")
    assert status == 200 and "charset=UTF-8" in kind
    assert f'<td class="browseHeaderData">关键词 (13-24 共 {total})</td>' in text
    assert text.count('<td class="briefCitRow"') == 12
    assert text.count('<span class="briefcitTitle">') == 12
    # 2013's own reading: the commented-out year and the ISBN in the image's first parameter.
    assert re.search(r"<!--\n<div>\n\d{4}</div>\n-->", text)
    assert re.search(r'<img src="/opac/bookjacket\?isbn=[0-9X]{10,13}&amp;size=0"', text)
    assert "<!-- field % -->&nbsp;" in text


def test_webpac_available_only_and_counts(sim: Proc) -> None:
    sim_json(sim.url, "/__sim/opac/reset", {})
    url = search_url(sim, "Python").replace("/opac/search", "/opac/availlim/search")
    text = fetch(url)[2].decode()
    available = sim_json(sim.url, "/__sim/opac/search?q=Python&available=1")["total"]
    assert f"共 {available})" in text
    assert "在架上" in text
    status, _, body = fetch(sim.url + "/opac/record=b1000004~S1*chx")
    assert status == 200 and 'id="recordnum" href="/opac/record=b1000004~S1*chx"' in body.decode()
    assert "No Such Record" in fetch(sim.url + "/opac/record=b9999999~S1*chx")[2].decode()
    stats = sim_json(sim.url, "/__sim/opac/stats")
    assert (stats["searches"], stats["records"], stats["requests"]) == (1, 2, 3)
    assert stats["peak_in_flight"] == 1
    assert fetch(sim.url + "/opac/nothing")[0] == 404
    sim_json(sim.url, "/__sim/opac/reset", {})
    assert sim_json(sim.url, "/__sim/opac/stats")["searches"] == 0


def test_webpac_frameset_link_opens_the_hit(sim: Proc) -> None:
    text = fetch(search_url(sim, "Python"))[2].decode()
    link = re.search(r'<span class="briefcitTitle">\n<a href="([^"]+)"', text)
    assert link is not None
    first_id = sim_json(sim.url, "/__sim/opac/search?q=Python")["ids"]
    assert isinstance(first_id, list)
    record = fetch(sim.url + link.group(1).replace("&amp;", "&"))[2].decode()
    assert f"record={first_id[0]}~S1*chx" in record


def test_ilas_gbk_post_and_next_page(sim: Proc) -> None:
    truth = sim_json(sim.url, "/__sim/ilas/search?q=%E7%BA%A2%E6%A5%BC%E6%A2%A6&title_only=1")
    total = truth["total"]
    assert isinstance(total, int) and total > 10
    form = urllib.parse.urlencode(
        {"v_index": "TITLE", "v_value": "红楼梦", "v_pagenum": "10"}, encoding="gbk"
    ).encode()
    status, kind, body = fetch(sim.url + "/ilas/cgi-bin/IlaswebBib", form)
    assert status == 200 and kind == "text/html"
    text = body.decode("gbk")
    assert 'charset=gb2312"' in text
    assert '<tr bgcolor="#CCCCCC"><td>题名</td>' in text
    assert text.count("DispBibDetail?v_recno=") == 10
    assert "javascript:document.nextpage.submit()" in text
    assert '<input type="hidden" name="v_value" value="红楼梦">' in text
    last = (total + 9) // 10
    form_last = urllib.parse.urlencode(
        {"v_index": "TITLE", "v_value": "红楼梦", "v_pagenum": "10", "v_curscr": str(last)},
        encoding="gbk",
    ).encode()
    text = fetch(sim.url + "/ilas/cgi-bin/IlaswebBib", form_last)[2].decode("gbk")
    assert text.count("DispBibDetail?v_recno=") == total - (last - 1) * 10
    assert "nextpage" not in text


def test_ilas_detail_page(sim: Proc) -> None:
    expected = sim_json(sim.url, "/__sim/ilas/books/300002")
    text = fetch(sim.url + "/ilas/cgi-bin/DispBibDetail?v_recno=300002&v_curdbno=0")[2]
    page = text.decode("gbk")
    assert f'<input type="hidden" name="ISBN" value="{expected["isbn_shown"]}">' in page
    for label in ("题　名", "作　者", "出版项", "索取号", "附注信息", 'div name="holding"'):
        assert label in page


def test_covers(sim: Proc) -> None:
    sim_json(sim.url, "/__sim/covers/reset", {})
    books = [sim_json(sim.url, f"/__sim/opac/books/b{1000001 + 3 * n}") for n in range(50)]
    cover = {
        str(b["isbn"]): sim_json(sim.url, f"/__sim/covers/isbn/{b['isbn']}")["cover"] for b in books
    }
    isbn = next(i for i, has in cover.items() if has)
    none = next(i for i, has in cover.items() if not has)
    status, kind, body = fetch(f"{sim.url}/covers/index.php?client=libcode&isbn={isbn}/cover")
    assert (status, kind) == (200, "image/jpeg") and body.startswith(b"\xff\xd8")
    assert fetch(f"{sim.url}/covers/{isbn}.jpg")[2] == body
    assert fetch(f"{sim.url}/covers/index.php?client=libcode&isbn={none}/cover")[0] == 404
    with pytest.raises(urllib.error.HTTPError):
        sim_json(sim.url, "/__sim/covers/drill", {"answer": "gif"})
    stats = sim_json(sim.url, "/__sim/covers/stats")
    assert (stats["covers"], stats["covers_missing"]) == (2, 1)


def test_dataset_is_the_seeds(sim: Proc, tmp_path: Path) -> None:
    first = sim_json(sim.url, "/__sim/opac/books/b1000001")
    with schoolsim(tmp_path, "fast", "opac.seed=7") as other:
        assert sim_json(other.url, "/__sim/opac/books/b1000001") != first
        assert sim_json(other.url, "/__sim/ilas/books/300001") == sim_json(
            sim.url, "/__sim/ilas/books/300001"
        )


def test_jnu_2013_calibration_keeps_overrides(tmp_path: Path) -> None:
    with schoolsim(tmp_path, "jnu-2013", "opac.capacity=9", "capacity=5") as proc:
        opac = sim_json(proc.url, "/__sim/opac/stats")["settings"]
        ilas = sim_json(proc.url, "/__sim/ilas/stats")["settings"]
        card = sim_json(proc.url, "/__sim/stats")["settings"]
        assert isinstance(opac, dict) and isinstance(ilas, dict) and isinstance(card, dict)
        assert (opac["capacity"], opac["latency_ms_median"]) == (9, 150.0)
        assert (ilas["capacity"], ilas["failure_rate"]) == (3, 0.04)
        assert card["capacity"] == 5
