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
