"""The WeChat bind page in a real browser (headless Chromium, phone width) against a real
server process with an official account: the link a follower gets for 绑定 opens the
page, which binds the student without a password ever in a URL, and says so in Chinese;
the same link a second time is refused. No console error under the page's CSP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Request
from pydantic import SecretStr

from channels.wechat.config import WeChatAccount
from channels.wechat.simulated_platform import SimulatedPlatform
from harness.processes import Proc, jnufm_server
from tests.system.browser.test_page import CHROMIUM, PHONE, WAIT_MS, browser, shots

__all__ = ["browser", "shots"]  # fixtures shared with the page's tests

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason=f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)",
)

APP_ID = "wx7d1e2f3a4b5c6d7e"
TOKEN = "BindPageToken2026x"
STUDENT, PASSWORD = "2012052690", "052690"
OPENID = "oBindPageFollower00000000001"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sim: Proc) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("bind-page")
    db = f"sqlite+aiosqlite:///{Path(tmp) / 'jnufm.sqlite3'}"
    account = {"name": "jnu", "app_id": APP_ID, "mode": "plain"}
    with jnufm_server(
        tmp,
        db,
        sim.url,
        processes=1,
        env={"JNUFM_WECHAT_TOKEN": TOKEN},
        wechat={"accounts": [account]},
    ) as proc:
        yield proc


def bind_link(server: Proc) -> str:
    """What the follower reads after sending 绑定: the link, as WeChat would show it."""
    account = WeChatAccount(name="jnu", app_id=APP_ID, mode="plain", token=SecretStr(TOKEN))
    platform = SimulatedPlatform(account)
    post = platform.text(OPENID, "绑定")
    reply = httpx.post(
        f"{server.url}/wechat", params=post.query, content=post.body, timeout=30, trust_env=False
    )
    assert reply.status_code == 200, reply.text
    opened = platform.open_reply(reply.content)
    assert opened is not None
    found = re.search(r"https?://\S+#ticket=\S+", opened.content)
    assert found is not None, opened.content
    return found.group(0)


def test_the_bind_link_binds_on_a_phone_without_a_password_in_any_url(
    browser: Browser, server: Proc, shots: Path
) -> None:
    link = bind_link(server)
    context = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    page = context.new_page()
    errors: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def seen(request: Request) -> None:
        urls.append(request.url)

    page.on("request", seen)
    try:
        page.goto(link)
        page.fill("#student-id", STUDENT)
        page.fill("#password", PASSWORD)
        page.fill("#academic-password", PASSWORD)
        page.click("#submit")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('绑定成功')",
            timeout=WAIT_MS,
        )
        page.screenshot(path=str(shots / "wechat-bind-phone.png"), full_page=True)
        # The fields are emptied, and no request carried a password in its URL.
        assert page.input_value("#password") == "" and page.input_value("#academic-password") == ""
        assert urls and not any(PASSWORD in url.replace(STUDENT, "") for url in urls), urls
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        assert errors == [], errors
    finally:
        context.close()
    # The same link again, in another browser: used.
    again = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    try:
        page = again.new_page()
        page.goto(link)
        page.fill("#student-id", STUDENT)
        page.fill("#password", PASSWORD)
        page.click("#submit")
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('用过')",
            timeout=WAIT_MS,
        )
    finally:
        again.close()
