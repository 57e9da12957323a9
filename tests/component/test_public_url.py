"""URLs in answers are built on the configured public URL (`api.public_url`), never on
the Host header a client wrote."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from harness.processes import Proc
from settings import ConfigError, load_settings
from tests.conftest import TEST_SECRET, make_settings, serve_app

PUBLIC = "https://api.example.edu/jnufm"
SPOOFED = "evil.example:666"


@pytest.fixture
async def client(db_url: str, sim: Proc) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(db_url, sim.url, **{"api.public_url": PUBLIC + "/"})
    async with serve_app(settings) as (http, deps):
        assert deps.public_url == PUBLIC
        yield http


def reflected(answer: httpx.Response) -> bool:
    """Whether the spoofed host appears anywhere in the answer, headers or body."""
    headers = " ".join(f"{k}: {v}" for k, v in answer.headers.items())
    return "evil.example" in headers or "evil.example" in answer.text


async def test_a_feed_url_is_built_on_the_public_url(client: httpx.AsyncClient) -> None:
    made = await client.post(
        "/v1/calendar/tokens",
        params={"year": 2026, "term": 1},
        auth=("2012052690", "052690"),
        headers={"Host": SPOOFED, "X-Forwarded-Host": SPOOFED, "Forwarded": f"host={SPOOFED}"},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    assert body["url"] == f"{PUBLIC}/v1/calendar/{body['token']}.ics"
    assert made.headers["Location"] == body["path"]
    assert not reflected(made)


async def test_cover_links_of_the_2013_search_are_built_on_the_public_url(
    client: httpx.AsyncClient,
) -> None:
    found = await client.get(
        "/book/search/engine", params={"query": "Python"}, headers={"Host": SPOOFED}
    )
    assert found.status_code == 200, found.text
    images = [row["image"] for row in found.json()["data"] if row["image"]]
    assert images, "the simulated catalogue has books with covers"
    assert all(image.startswith(f"{PUBLIC}/isbn/image/") for image in images), images
    assert not reflected(found)


async def test_a_book_page_links_relative_to_where_it_was_read(
    client: httpx.AsyncClient,
) -> None:
    found = await client.get("/book/search/engine", params={"query": "Python"})
    record = base64.urlsafe_b64encode(found.json()["data"][0]["url"].encode()).decode()
    page = await client.get("/web/book", params={"url": record}, headers={"Host": SPOOFED})
    assert page.status_code == 200, page.text
    assert "/isbn/image/" in page.text or "/web/book?url=" in page.text
    assert not reflected(page)


def settings_of(**overrides: Any) -> Any:
    return load_settings(None, env={}, overrides={"secret_key": TEST_SECRET, **overrides})


@pytest.mark.parametrize(
    ("listen", "public"),
    [
        ({"listen.host": "127.0.0.1", "listen.port": 8000}, "http://127.0.0.1:8000"),
        ({"listen.host": "0.0.0.0", "listen.port": 8080}, "http://127.0.0.1:8080"),
        ({"listen.host": "::1", "listen.port": 9000}, "http://[::1]:9000"),
        ({"api.public_url": "https://api.example.edu/"}, "https://api.example.edu"),
        ({"api.public_url": "http://10.0.0.5:8000/jnufm"}, "http://10.0.0.5:8000/jnufm"),
    ],
)
def test_the_public_url_defaults_to_the_listen_address(listen: dict[str, Any], public: str) -> None:
    assert settings_of(**listen).public_base_url() == public


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "ftp://api.example.edu",
        "https://",
        "https://user:pw@api.example.edu",
        "https://api.example.edu/?x=1",
        "https://api.example.edu/#top",
        "https://api.example.edu/a b",
        "https://api.example.edu/\r\nX: 1",
    ],
)
def test_a_public_url_that_is_not_a_base_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^api\.public_url: Value error, must be an http"):
        settings_of(**{"api.public_url": url})


def test_production_requires_the_public_url() -> None:
    key = "kV7nQ2xR9wLp4ZtB8mYc3HsJ6dFg1QeA0uNa"
    with pytest.raises(ConfigError) as refused:
        load_settings(None, env={"JNUFM_MODE": "production", "JNUFM_SECRET_KEY": key})
    assert str(refused.value).startswith("api.public_url: production mode needs the URL")
    settings = load_settings(
        None,
        env={"JNUFM_MODE": "production", "JNUFM_SECRET_KEY": key, "JNUFM_PUBLIC_URL": PUBLIC},
    )
    assert settings.public_base_url() == PUBLIC
