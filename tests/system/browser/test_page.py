"""The page in a real browser: headless Chromium (Debian's, driven by Playwright; no
browser download) against a real server process (two workers) and the simulator.

The page loads with no console error (a blocked inline script or style would log
one under the page's Content-Security-Policy), the reference lists every route, the
try-it console gets a simulated balance, the dashboard's numbers move after a few
queries, and the zh/en switch works. Screenshots of each view go to
JNUFM_SCREENSHOT_DIR (default: a temporary directory).

Skipped, saying why, only where Chromium is not installed (JNUFM_CHROMIUM, default
/usr/bin/chromium); CI installs it and fails if these were skipped.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from api.routes import EXCLUDED, ROUTES, openapi
from handlers import routes
from handlers.base import AppDeps
from harness.processes import Proc, jnufm_server
from version import version

CHROMIUM = Path(os.environ.get("JNUFM_CHROMIUM", "/usr/bin/chromium"))
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)",
)

STUDENT, PASSWORD = "2012052690", "052690"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
WAIT_MS = 20_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sim: Proc) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("browser")
    db = f"sqlite+aiosqlite:///{Path(tmp) / 'jnufm.sqlite3'}"
    with jnufm_server(tmp, db, sim.url, processes=2) as proc:
        yield proc


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the screenshots go (JNUFM_SCREENSHOT_DIR, else a temporary directory)."""
    given = os.environ.get("JNUFM_SCREENSHOT_DIR")
    folder = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


class Tab:
    """A browser page on the server, recording console errors and uncaught exceptions."""

    def __init__(self, browser: Browser, base_url: str, viewport: dict[str, int]) -> None:
        self.context = browser.new_context(viewport=viewport, base_url=base_url)  # type: ignore[arg-type]
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self, path: str) -> Page:
        self.page.goto(path)
        self.page.wait_for_selector("body[data-contract=loaded]", timeout=WAIT_MS)
        return self.page


@pytest.fixture
def tab(browser: Browser, server: Proc) -> Iterator[Tab]:
    opened = Tab(browser, server.url, DESKTOP)
    yield opened
    opened.context.close()


@pytest.fixture
def phone(browser: Browser, server: Proc) -> Iterator[Tab]:
    opened = Tab(browser, server.url, PHONE)
    yield opened
    opened.context.close()


def test_the_page_loads_in_chinese_with_no_console_error(phone: Tab, shots: Path) -> None:
    page = phone.open("/")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator(".tabs a[data-view=try]").inner_text() == "试一试"
    assert "后 6 位" in page.locator("#try .note").inner_text()
    # Readable on a phone: nothing wider than the screen.
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    page.screenshot(path=str(shots / "phone-try-zh.png"), full_page=True)
    assert phone.errors == []


def test_the_reference_lists_every_route(tab: Tab, shots: Path) -> None:
    page = tab.open("/#reference")
    shown = {
        (op.get_attribute("data-method"), op.get_attribute("data-path"))
        for op in page.locator("#reference-list details.op").all()
    }
    documented = {(method, path) for path, item in openapi()["paths"].items() for method in item}
    assert shown == documented
    # Every route the app serves (but the static files) has its entry on the page.
    deps = AppDeps(card=None, retry_after_s=1)  # type: ignore[arg-type]
    paths = {route.pattern: route.path for route in ROUTES}
    for pattern, _, _ in routes(deps):
        if pattern not in EXCLUDED:
            assert any(path == paths.get(pattern) for _, path in shown), pattern
    page.locator("details.op[data-path='/v1/card/balance'][data-method=get] > summary").click()
    opened = page.locator("details.op[data-path='/v1/card/balance'][data-method=get]")
    assert "invalid_credentials" in opened.inner_text()
    assert "Cache-Status" in opened.inner_text()
    opened.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "reference-zh.png"), full_page=False)
    # The library's section; a cover answers an image (no schema), a book page HTML.
    library = page.locator("section.tag[data-tag=library]")
    assert library.locator("h3").inner_text() == "图书馆"
    cover = page.locator("details.op[data-path='/isbn/image/{isbn}'][data-method=get]")
    cover.locator("summary").click()
    assert {"image/jpeg", "image/png", "image/gif", "X-Cover", "invalid_isbn"} <= set(
        cover.locator("code").all_inner_texts()
    )
    # Every schema, example and media type is rendered as such, never as an object's name.
    assert "[object " not in (page.locator("#reference-list").text_content() or "")
    assert tab.errors == []


def test_try_it_returns_a_simulated_balance_and_its_headers(tab: Tab, shots: Path) -> None:
    page = tab.open("/#try")
    chosen = page.locator("#try-endpoint option:checked").inner_text()
    assert chosen.startswith("GET /v1/card/balance")
    page.fill("#try-student", STUDENT)
    page.fill("#try-password", PASSWORD)
    page.click("#try-send")
    page.wait_for_function(
        "() => document.getElementById('try-status').textContent.startsWith('200')",
        timeout=WAIT_MS,
    )
    body = page.locator("#try-body").inner_text()
    assert '"student_id": "2012052690"' in body
    assert re.search(r'"amount": "[0-9]+\.[0-9]{2}"', body), body
    headers = {row.get_attribute("data-header") for row in page.locator("#try-headers tr").all()}
    assert {"x-request-id", "cache-status", "age", "server-timing"} <= headers
    page.screenshot(path=str(shots / "try-zh.png"), full_page=True)
    # The 2013 endpoint: credentials go in the query string.
    value = page.locator("#try-endpoint option", has_text="GET /card/rest").get_attribute("value")
    assert value is not None
    page.select_option("#try-endpoint", value)
    page.click("#try-send")
    page.wait_for_function(
        "() => document.getElementById('try-request').textContent.startsWith('GET /card/rest') && "
        "document.getElementById('try-status').textContent.startsWith('200')",
        timeout=WAIT_MS,
    )
    assert re.search(r'"data": "[0-9]+\.[0-9]{2}"', page.locator("#try-body").inner_text())
    assert "password=***" in page.locator("#try-request").inner_text()
    assert tab.errors == []


def dashboard_number(page: Page, selector: str) -> float | None:
    text = page.locator(selector).inner_text().strip().rstrip("%").split(" ")[0]
    return None if text in ("", "—") else float(text)


def test_the_dashboard_moves_after_a_few_queries(tab: Tab, server: Proc, shots: Path) -> None:
    page = tab.open("/#dashboard")
    # The first readings of each worker, before the queries.
    page.wait_for_function(
        "() => document.querySelectorAll('#dash-school tbody tr').length >= 2", timeout=WAIT_MS
    )
    systems = {row.get_attribute("data-system") for row in page.locator("#dash-school tr").all()}
    assert {"card", "academic"} <= systems
    # Queries keep coming until the dashboard shows them (its rates cover the last
    # seconds of the worker that answers each poll: on a loaded machine a burst of
    # queries can fall between two polls of the same worker).
    moving = (
        "() => { const v = document.getElementById('dash-rps').textContent;"
        " return v !== '—' && Number(v) > 0; }"
    )
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        n = 0
        while not page.evaluate(moving):
            assert time.monotonic() < deadline, "the dashboard never showed the queries"
            student = f"20120526{90 + n % 8}"
            resp = client.get("/v1/card/balance", auth=(student, student[-6:]))
            assert resp.status_code == 200, resp.text
            n += 1
            page.wait_for_timeout(250)
    page.wait_for_function(
        "() => { const c = document.querySelector('#dash-school tr[data-system=card] td.num');"
        " return c && c.textContent !== '—' && Number(c.textContent) > 0; }",
        timeout=WAIT_MS,
    )
    rps = dashboard_number(page, "#dash-rps")
    assert rps is not None and rps > 0
    assert dashboard_number(page, "#dash-p50") is not None
    assert dashboard_number(page, "#dash-workers") == 2
    generations = page.locator("#dash-worker-list tbody tr").all()
    assert len(generations) >= 2
    breaker = page.locator("#dash-school tr[data-system=card] .breaker").get_attribute("class")
    assert breaker is not None and "closed" in breaker
    # Who the school requests were made for (every unregistered address together).
    page.wait_for_function(
        "() => document.querySelector('#dash-clients tr[data-client=anonymous]') !== null",
        timeout=WAIT_MS,
    )
    # A student locked out by five wrong passwords appears among the lockouts.
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        for guess in ("111111", "222222", "333333", "444444", "555555"):
            wrong = client.get("/v1/card/balance", auth=("2012052699", guess))
            assert wrong.status_code == 401, wrong.text
    page.wait_for_function(
        "() => document.querySelector('#dash-lockouts tr[data-scope=student]') !== null",
        timeout=WAIT_MS,
    )
    locked = page.locator("#dash-lockouts tr[data-scope=student]").first.inner_text()
    assert "5 / 5" in locked and "2012052699" not in locked, "students by pseudonym only"
    page.screenshot(path=str(shots / "dashboard-zh.png"), full_page=True)
    assert tab.errors == []


def test_the_language_switch_goes_to_english_and_back(tab: Tab, shots: Path) -> None:
    page = tab.open("/?lang=en#reference")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator(".tabs a[data-view=reference]").inner_text() == "API reference"
    assert page.locator("#reference h2").inner_text() == "API reference"
    page.screenshot(path=str(shots / "reference-en.png"))
    page.click(".tabs a[data-view=dashboard]")
    page.wait_for_function("() => location.hash === '#dashboard'")
    assert page.locator("#dashboard h2").inner_text() == "Dashboard"
    page.wait_for_function(
        "() => document.querySelectorAll('#dash-school tbody tr').length >= 2", timeout=WAIT_MS
    )
    page.screenshot(path=str(shots / "dashboard-en.png"), full_page=True)
    page.click("#lang-switch")
    page.wait_for_function("() => new URLSearchParams(location.search).get('lang') === 'zh'")
    page.wait_for_selector("body[data-contract=loaded]", timeout=WAIT_MS)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.evaluate("() => location.hash") == "#dashboard"
    assert page.locator("#dashboard h2").inner_text() == "运行状态"
    assert page.locator("#lang-switch").inner_text() == "English"
    assert tab.errors == []


def test_the_footer_shows_the_servers_version(tab: Tab) -> None:
    page = tab.open("/")
    assert page.locator("#app-version").inner_text() == f"jnufm {version()}"
    assert tab.errors == []


def documented_operations() -> set[tuple[str, str]]:
    return {(method, path) for path, item in openapi()["paths"].items() for method in item}


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_standard_reference_renders_every_operation_under_the_csp(
    browser: Browser, server: Proc, shots: Path, viewport: dict[str, int]
) -> None:
    opened = Tab(browser, server.url, viewport)
    try:
        page = opened.page
        answer = page.goto("/static/reference.html")
        assert answer is not None
        assert "script-src 'self';" in answer.headers["content-security-policy"]
        assert "unsafe" not in answer.headers["content-security-policy"]
        page.wait_for_selector("body[data-reference=loaded] .opblock", timeout=WAIT_MS)
        shown = {
            (
                (block.locator(".opblock-summary-method").inner_text()).lower(),
                block.locator(".opblock-summary-path").get_attribute("data-path"),
            )
            for block in page.locator(".opblock").all()
        }
        assert shown == documented_operations()
        # An opened operation (its parameters, answers, schemas and selects) loads
        # nothing the CSP blocks either.
        for path in ("/v1/card/balance", "/v1/library/search"):
            opblock = page.locator(".opblock.opblock-get").filter(
                has=page.locator(f".opblock-summary-path[data-path='{path}']")
            )
            opblock.locator(".opblock-summary-control").first.click()
            opblock.locator(".opblock-body .responses-wrapper").wait_for(timeout=WAIT_MS)
        name = "phone" if viewport is PHONE else "desktop"
        page.screenshot(path=str(shots / f"standard-reference-{name}.png"))
        assert opened.errors == []
    finally:
        opened.context.close()


def test_the_landing_links_the_standard_reference(tab: Tab) -> None:
    page = tab.open("/")
    page.click("a#standard-reference")
    page.wait_for_selector("body[data-reference=loaded]", timeout=WAIT_MS)
    assert page.url.endswith("/static/reference.html")
    assert tab.errors == []


def choose(page: Page, label: str) -> None:
    """Selects the try-it entry whose text starts with `label` ("GET /v1/library/search")."""
    options = page.locator("#try-endpoint option").all()
    value = next(
        o.get_attribute("value") for o in options if o.inner_text().startswith(label + " ")
    )
    assert value is not None
    page.select_option("#try-endpoint", value)


def test_try_it_offers_every_path_of_the_contract(tab: Tab) -> None:
    page = tab.open("/#try")
    offered = {
        text.split(" ")[1] for text in page.locator("#try-endpoint option").all_inner_texts()
    }
    assert offered == set(openapi()["paths"])
    assert tab.errors == []


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_try_it_searches_the_library_from_the_cache_unless_fresh_is_ticked(
    browser: Browser, server: Proc, shots: Path, viewport: dict[str, int]
) -> None:
    opened = Tab(browser, server.url, viewport)
    sent: list[tuple[str, dict[str, str]]] = []
    opened.page.on(
        "request",
        lambda r: sent.append((r.url, r.all_headers())) if "/v1/library/search" in r.url else None,
    )
    try:
        page = opened.open("/#try")
        choose(page, "GET /v1/library/search")
        page.fill("#try-params input[data-param=q]", "数据结构")
        done = (
            "() => document.getElementById('try-request').textContent"
            ".startsWith('GET /v1/library/search') && "
            "/^[0-9]{3}/.test(document.getElementById('try-status').textContent)"
        )
        for _ in range(2):
            page.click("#try-send")
            page.wait_for_function(done, timeout=WAIT_MS)
            status = page.locator("#try-status").inner_text()
            assert status.startswith("200"), page.locator("#try-body").inner_text()
            page.locator("#try-status").evaluate("node => { node.textContent = ''; }")
        assert '"books"' in page.locator("#try-body").inner_text() or '"items"' in (
            page.locator("#try-body").inner_text()
        )
        assert len(sent) == 2
        for url, headers in sent:
            assert url.startswith(server.url + "/v1/library/search?"), url
            assert "fresh=1" not in url
            assert "no-cache" not in headers.get("cache-control", ""), headers
            assert "authorization" not in headers
        # The second search is the cache's.
        cache_status = page.locator("#try-headers tr[data-header=cache-status] td").inner_text()
        assert "hit" in cache_status.lower(), cache_status
        page.check("#try-fresh")
        page.click("#try-send")
        page.wait_for_function(done, timeout=WAIT_MS)
        assert page.locator("#try-status").inner_text().startswith("200")
        assert len(sent) == 3
        url, headers = sent[2]
        assert "fresh=1" in url
        assert "no-cache" in headers.get("cache-control", ""), headers
        name = "phone" if viewport is PHONE else "desktop"
        page.screenshot(path=str(shots / f"try-library-{name}.png"), full_page=True)
        if viewport is PHONE:
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], width
        assert opened.errors == []
    finally:
        opened.context.close()


def test_curl_examples_use_the_pages_own_origin(tab: Tab) -> None:
    page = tab.open("/#try")
    page.locator("details.curl > summary").click()
    examples = page.locator("#try-curl").inner_text()
    assert server_origin(page) in examples
    assert "127.0.0.1:8000" not in examples or server_origin(page).endswith(":8000")
    assert "-u 2012052690:052690" in examples, "development offers the simulator's student"
    assert tab.errors == []


def server_origin(page: Page) -> str:
    origin = page.evaluate("() => location.origin")
    assert isinstance(origin, str)
    return origin


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_no_cell_of_a_parameter_table_is_narrower_than_its_name(
    browser: Browser, server: Proc, viewport: dict[str, int]
) -> None:
    opened = Tab(browser, server.url, viewport)
    try:
        page = opened.open("/#reference")
        page.evaluate(
            "() => document.querySelectorAll('details.op').forEach(d => { d.open = true; })"
        )
        cells = page.evaluate(
            """() => [...document.querySelectorAll(
                    '#reference-list table.param-table tbody td:first-child')]
                .filter(td => td.firstElementChild)
                .map(td => [td.firstElementChild.textContent,
                            td.getBoundingClientRect().width,
                            td.firstElementChild.getBoundingClientRect().width,
                            td.firstElementChild.getClientRects().length])"""
        )
        assert len(cells) > 50, "every operation's parameters"
        for name, cell, code, lines in cells:
            assert cell >= code, (name, cell, code)
            assert lines == 1, f"{name} breaks over {lines} lines"
        # No parameter table is a grid (the try-it form's layout).
        assert page.evaluate(
            "() => [...document.querySelectorAll('#reference-list table')]"
            ".every(t => getComputedStyle(t).display === 'table')"
        )
        assert opened.errors == []
    finally:
        opened.context.close()


def test_the_dashboard_draws_charts_and_fits_a_phone(phone: Tab, server: Proc, shots: Path) -> None:
    page = phone.open("/#dashboard")
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        for n in range(40):
            student = f"20120526{90 + n % 8}"
            assert client.get("/v1/card/balance", auth=(student, student[-6:])).status_code == 200
            if (
                page.evaluate("() => document.querySelectorAll('#dash-charts .line[d*=L]').length")
                >= 3
            ):
                break
            page.wait_for_timeout(250)
    # Lines appear once two readings are kept (one poll every 2 s).
    page.wait_for_function(
        "() => document.querySelectorAll('#dash-charts svg .line[d*=L]').length >= 3",
        timeout=WAIT_MS,
    )
    kinds = set(
        page.locator("#dash-charts figure.chart").evaluate_all("fs => fs.map(f => f.dataset.chart)")
    )
    assert {"rps", "p99", "hit", "flight"} <= kinds
    systems = set(
        page.locator("#dash-charts figure[data-chart=flight]").evaluate_all(
            "fs => fs.map(f => f.dataset.system)"
        )
    )
    assert {"card", "academic"} <= systems
    assert page.locator("#dash-charts figure[data-chart=flight] svg .budget").count() >= 2
    assert page.locator("#dash-charts figure[data-system=card] svg rect.band.closed").count() >= 1
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    wide = page.evaluate(
        "() => [...document.querySelectorAll('#dashboard *')]"
        ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
        ".map(e => e.tagName + '#' + e.id + '.' + e.getAttribute('class'))"
    )
    assert wide == [], wide
    page.screenshot(path=str(shots / "phone-dashboard-charts-zh.png"), full_page=True)
    assert phone.errors == []


def test_the_new_labels_switch_with_the_language(tab: Tab) -> None:
    page = tab.open("/?lang=en#dashboard")
    page.wait_for_selector("#dash-charts figure[data-chart=rps]", timeout=WAIT_MS)
    assert page.locator("#dash-charts figure[data-chart=rps] .title").inner_text() == "requests/s"
    assert page.locator("#dashboard h3").first.inner_text() == "The last minutes"
    assert page.locator("#standard-reference").inner_text().startswith("The reference")
    assert "last 6 digits" in page.locator("#try-note").text_content()  # type: ignore[operator]
    page.click("#lang-switch")
    page.wait_for_function("() => new URLSearchParams(location.search).get('lang') === 'zh'")
    page.wait_for_selector("body[data-contract=loaded]", timeout=WAIT_MS)
    page.wait_for_selector("#dash-charts figure[data-chart=rps]", timeout=WAIT_MS)
    assert page.locator("#dash-charts figure[data-chart=rps] .title").inner_text() == "请求/秒"
    assert page.locator("#dashboard h3").first.inner_text() == "最近几分钟"
    assert page.locator("#standard-reference").inner_text().startswith("标准格式")
    assert "后 6 位" in (page.locator("#try-note").text_content() or "")
    assert tab.errors == []


STRONG_KEY = "kV7nQ2xR9wLp4ZtB8mYc3HsJ6dFg1QeA0uNa"


def test_in_production_the_page_offers_no_credentials(
    browser: Browser, sim: Proc, tmp_path: Path
) -> None:
    db = f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}"
    env = {
        "JNUFM_MODE": "production",
        "JNUFM_SECRET_KEY": STRONG_KEY,
        "JNUFM_PUBLIC_URL": "https://api.example.edu",
    }
    with jnufm_server(tmp_path, db, sim.url, processes=1, env=env, secret_key=None) as proc:
        assert httpx.get(proc.url + "/healthz", trust_env=False).json()["mode"] == "production"
        opened = Tab(browser, proc.url, PHONE)
        try:
            page = opened.open("/#try")
            assert page.input_value("#try-student") == ""
            assert page.input_value("#try-password") == ""
            text = page.locator("body").inner_text() + (
                page.locator("#try-curl").text_content() or ""
            )
            assert "后 6 位" not in text and "052690" not in text
            # Nor the contract Swagger UI renders: no rule, no password example.
            served = httpx.get(proc.url + "/openapi.json", trust_env=False).text
            assert "last 6 digits" not in served and '"052690"' not in served
            assert opened.errors == []
        finally:
            opened.context.close()


def test_try_it_explains_an_error_code_in_the_pages_language(tab: Tab) -> None:
    page = tab.open("/#try")
    page.fill("#try-student", "2012052688")
    page.fill("#try-password", "000000")
    page.click("#try-send")
    page.wait_for_function(
        "() => document.getElementById('try-status').textContent.startsWith('401')",
        timeout=WAIT_MS,
    )
    meaning = page.locator("#try-meaning").inner_text()
    assert meaning.startswith("错误码的含义：invalid_credentials — "), meaning
    assert re.search(r"[\u4e00-\u9fff]", meaning.split(" — ", 1)[1]), meaning
    assert tab.errors == [] or all("401" in e for e in tab.errors), tab.errors
