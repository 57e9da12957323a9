"""Async client of the book cover service: a cover image by ISBN, checked before it is
passed on.

Evidence (2013): covers came from an outside service,
`GET /index.php?client=libcode&isbn=<isbn>/cover` (the `/cover` inside the
parameter is how 2013 sent it). What it answers without a cover is not known
(guess: 404). An answer is passed on only if it says it is a JPEG, PNG or GIF,
its first bytes agree, and it is not longer than `max_bytes`; anything else is
refused, never passed on as an image of unknown content: AnswerRefused when the
service answered this ISBN with something we will not pass on (too long, not an
image: about this cover, not the service's health), SchoolPageError for an
answer no working service gives (another status, a redirect loop).
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from school.errors import AnswerRefused, SchoolPageError
from school.web import Browser
from systems.library.config import CoverServiceConfig
from systems.library.isbn import normalise_isbn

__all__ = ["CoverClient", "normalise_isbn"]

SYSTEM = "covers"
_METRIC_PATH = re.compile(r"(?:/[A-Za-z0-9_-]{1,20})?/index\.php")
_REDIRECTS = (301, 302, 303, 307, 308)
# Image types passed on, and how their files begin.
_MAGIC = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


def image_type(content_type: str | None, body: bytes) -> str | None:
    """The image type of an answer if its header and its first bytes agree on one we pass on."""
    kind = (content_type or "").split(";")[0].strip().lower()
    magic = _MAGIC.get(kind)
    if magic is None or not body.startswith(magic):
        return None
    return kind


class CoverClient:
    """The cover service; one per worker process."""

    def __init__(
        self,
        settings: CoverServiceConfig,
        http: httpx.AsyncClient,
    ) -> None:
        """`settings.max_bytes`: longest image accepted (a longer answer is not read on)."""
        self.settings = settings
        self.max_bytes = settings.max_bytes
        self._base = settings.base_url.rstrip("/")
        self._browser = Browser(SYSTEM, settings, http, _METRIC_PATH)

    def cover_url(self, isbn: str) -> str:
        return f"{self._base}/index.php?client=libcode&isbn={quote(isbn, safe='')}/cover"

    async def cover(self, isbn: str) -> tuple[bytes, str] | None:
        """(image, content type) of a book's cover; None when the service has none.

        ValueError if `isbn` is not a valid ISBN; AnswerRefused for an answer that is
        not a JPEG, PNG or GIF, or too long; SchoolPageError for another status.
        """
        valid = normalise_isbn(isbn)
        if valid is None:
            raise ValueError("not a valid ISBN")
        url = self.cover_url(valid)
        for _ in range(self.settings.max_redirects + 1):
            request = httpx.Request(
                "GET",
                url,
                headers={
                    "User-Agent": self.settings.user_agent,
                    "Accept": "image/*",
                    "Accept-Encoding": "identity",
                },
                extensions={
                    "timeout": httpx.Timeout(
                        self.settings.total_timeout_s, connect=self.settings.connect_timeout_s
                    ).as_dict()
                },
            )
            response = await self._browser.exchange(request, "cover", self.max_bytes)
            status = response.status_code
            if status == 404:
                return None
            if status in _REDIRECTS and response.headers.get("location"):
                # Only within the service (Browser.url refuses other hosts).
                url = self._browser.url(response.headers["location"], url)
                continue
            if status != 200:
                raise SchoolPageError(f"cover service answered HTTP {status}", "cover")
            kind = image_type(response.headers.get("content-type"), response.content)
            if kind is None:
                shown = (response.headers.get("content-type") or "none")[:40]
                raise AnswerRefused(f"cover service answered {shown}, not an image")
            return response.content, kind
        raise SchoolPageError(f"more than {self.settings.max_redirects} redirects", "cover")
