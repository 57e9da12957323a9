"""How jnufm talks to a school system: as a browser does.

A `Browser` sends one system's requests with the cookies of one session (never
a jar shared between students), follows redirects only within the system,
submits forms as the page gives them (in the page's charset), and maps every
transport failure to the school error tree. It also keeps the protections
every system shares: the query's deadline (school/deadline.py: no request
started that could not end in time), the request's total timeout, and the
metrics and timing of each request.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import httpx

from observability import metrics
from observability.timing import add_time
from school import capture, deadline
from school.config import SystemConfig
from school.errors import (
    AnswerRefused,
    SchoolConnectionError,
    SchoolError,
    SchoolPageError,
    SchoolServerError,
    SchoolTimeout,
)
from school.html import Form, codec_of, page_charset

_FORM_TYPE = "application/x-www-form-urlencoded"
_REDIRECTS = (301, 302, 303, 307, 308)
# Weight of the newest request in the moving average of request times.
LATENCY_WEIGHT = 0.2

# Outcome label of jnufm_school_requests for each error `exchange` raises.
_OUTCOMES: dict[type[SchoolError], str] = {
    SchoolTimeout: "timeout",
    SchoolConnectionError: "connection",
    SchoolServerError: "server_error",
    SchoolPageError: "bad_page",
    AnswerRefused: "bad_page",
}


class CookieJar:
    """The cookies of one session at one school system, in the order they were set.

    Path and domain are ignored: every cookie of the system's host goes back to
    it (evidence for the card center: Tomcat's JSESSIONID has Path=/; the rest:
    guess).
    """

    def __init__(self, cookies: Mapping[str, str] | None = None) -> None:
        self._cookies: dict[str, str] = dict(cookies or {})

    @classmethod
    def from_session(cls, value: str, main_cookie: str) -> CookieJar:
        """The jar a stored session value stands for: the bare value of `main_cookie`
        (the usual case), or a whole Cookie header."""
        if "=" not in value:
            return cls({main_cookie: value})
        pairs = (part.strip().partition("=") for part in value.split(";"))
        return cls({name: v for name, _, v in pairs if name})

    def session_value(self, main_cookie: str) -> str:
        """The jar as one storable string (see from_session)."""
        if list(self._cookies) == [main_cookie]:
            return self._cookies[main_cookie]
        return self.header()

    def header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self._cookies.items())

    def __contains__(self, name: object) -> bool:
        return name in self._cookies

    def update(self, response: httpx.Response) -> None:
        """Take the cookies a response sets (and drop those it expires)."""
        for header in response.headers.get_list("set-cookie"):
            first, *attributes = header.split(";")
            name, sep, value = first.partition("=")
            name, value = name.strip(), value.strip().strip('"')
            if not sep or not name:
                continue
            if _expired(attributes):
                self._cookies.pop(name, None)
            else:
                self._cookies[name] = value


def _expired(attributes: Sequence[str]) -> bool:
    for attribute in attributes:
        key, _, value = attribute.strip().partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                return int(value.strip()) <= 0
            except ValueError:
                continue
        if key == "expires":
            try:
                return parsedate_to_datetime(value.strip()).timestamp() <= time.time()
            except (TypeError, ValueError):
                continue
    return False


@dataclass(frozen=True, slots=True)
class Reply:
    """A 200 answer: where it came from (after redirects), its body and Content-Type."""

    url: str
    body: bytes
    content_type: str | None


class Browser:
    """One school system's transport, shared by every student of a worker."""

    def __init__(
        self,
        system: str,
        settings: SystemConfig,
        http: httpx.AsyncClient,
        metric_path: re.Pattern[str],
    ) -> None:
        """`metric_path`: request paths shown in metrics (others count as "/other", so
        whatever paths a system's pages name, the series stay bounded)."""
        self.system = system
        self.settings = settings
        self._http = http
        self._metric_path = metric_path
        self._base = settings.base_url.rstrip("/")
        base = urlsplit(self._base)
        self._origin = (base.scheme, base.netloc.lower())
        self._timeout = httpx.Timeout(settings.total_timeout_s, connect=settings.connect_timeout_s)
        self.requests_sent = 0
        # How long a request has been taking lately (moving average): a query whose
        # deadline is nearer than this starts no further request.
        self.typical_s = 0.0

    def url(self, target: str, page_url: str | None = None) -> str:
        """target resolved against the page it came from (else the base), if on this system."""
        url = urljoin(page_url or self._base + "/", target)
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            # Never send a session cookie or form data to another host.
            raise SchoolPageError(f"{self.system} points away from itself: {parts.netloc[:60]}")
        return urlunsplit(parts._replace(fragment=""))

    async def exchange(
        self, request: httpx.Request, where: str, max_bytes: int | None = None
    ) -> httpx.Response:
        """Send one request; map every failure to a SchoolError; count and time it.

        With `max_bytes`, a body longer than that is not read on (AnswerRefused: too
        large for what was asked, not a failure of the school).
        """
        path = urlsplit(str(request.url)).path
        deadline.check(f"{request.method} {path}", self.typical_s)
        self.requests_sent += 1
        label = path if self._metric_path.fullmatch(path) else "/other"
        where = f"{request.method} {label} ({where})"
        started = time.perf_counter()
        outcome = "ok"
        try:
            try:
                async with asyncio.timeout(self.settings.total_timeout_s):
                    if max_bytes is None:
                        response = await self._http.send(request, follow_redirects=False)
                    else:
                        response = await self._capped(request, max_bytes)
            except TimeoutError as exc:
                raise SchoolTimeout(f"{where}: no answer within the total timeout") from exc
            except httpx.TimeoutException as exc:
                raise SchoolTimeout(f"{where}: {type(exc).__name__}") from exc
            except httpx.DecodingError as exc:
                raise SchoolPageError(f"{where}: undecodable body") from exc
            except httpx.RequestError as exc:
                raise SchoolConnectionError(f"{where}: {type(exc).__name__}") from exc
            if response.status_code >= 500:
                raise SchoolServerError(
                    f"{where}: HTTP {response.status_code}", response.status_code
                )
        except SchoolError as exc:
            outcome = _OUTCOMES.get(type(exc), "error")
            raise
        finally:
            elapsed = time.perf_counter() - started
            add_time("school", elapsed)
            metrics.observe_school_request(self.system, label, outcome, elapsed)
            if outcome == "ok":
                self.typical_s += LATENCY_WEIGHT * (elapsed - self.typical_s)
        return response

    async def _capped(self, request: httpx.Request, max_bytes: int) -> httpx.Response:
        """The answer with its body read up to max_bytes (AnswerRefused past that)."""
        response = await self._http.send(request, follow_redirects=False, stream=True)
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise AnswerRefused(f"answer longer than {max_bytes} bytes")
        finally:
            await response.aclose()
        return httpx.Response(
            response.status_code, headers=response.headers, content=bytes(body), request=request
        )

    async def send(
        self,
        method: str,
        url: str,
        jar: CookieJar,
        referer: str,
        form: Sequence[tuple[str, str]] | None = None,
        charset: str = "gbk",
    ) -> Reply:
        """One request and the redirects it draws (within this system), cookies kept."""
        content: bytes | None = None
        if method == "POST":
            # Evidence: form values go in the pages' charset (clients send
            # Submit=+%C8%B7+%B6%A8+, " 确 定 " in GBK).
            content = urlencode(list(form or ()), encoding=codec_of(charset)).encode("ascii")
        for hop in range(self.settings.max_redirects + 1):
            headers = {
                "User-Agent": self.settings.user_agent,
                "Accept-Encoding": "identity",
                "Referer": referer,
            }
            if self.settings.host:
                headers["Host"] = self.settings.host
            if jar.header():
                headers["Cookie"] = jar.header()
            if content is not None:
                headers["Content-Type"] = _FORM_TYPE
            # A bare Request (not build_request) so the shared client's cookie jar,
            # filled by other students' answers, is never merged into this request.
            request = httpx.Request(
                method,
                url,
                headers=headers,
                content=content,
                extensions={"timeout": self._timeout.as_dict()},
            )
            response = await self.exchange(request, "redirected" if hop else "asked")
            jar.update(response)
            status = response.status_code
            # The last answer of a fetch is what the operator sees when it cannot be read.
            capture.note(
                method,
                url,
                form if content is not None else None,
                status,
                response.headers.get("content-type"),
                response.content,
            )
            if status == 200:
                return Reply(url, response.content, response.headers.get("content-type"))
            location = response.headers.get("location")
            if status not in _REDIRECTS or not location:
                raise SchoolPageError(f"{method} {urlsplit(url).path}: unexpected HTTP {status}")
            # Browsers keep the Referer of the redirected request.
            url = self.url(location, url)
            if status in (301, 302, 303):
                # As browsers do: the redirect is fetched with GET, without the form.
                method, content = "GET", None
        raise SchoolPageError(f"more than {self.settings.max_redirects} redirects")

    async def get(self, path: str, jar: CookieJar, referer: str) -> Reply:
        return await self.send("GET", self.url(path), jar, referer)

    async def submit(
        self, form: Form, page: Reply, jar: CookieJar, values: Mapping[str, str] | None = None
    ) -> Reply:
        """Submit a page's form as a browser does (its action resolved against the page)."""
        if values:
            form = form.with_values(dict(values))
        charset = page_charset(page.body, page.content_type)
        target = self.url(form.action, page.url)
        if form.method == "POST":
            return await self.send("POST", target, jar, page.url, form.fields, charset)
        parts = urlsplit(target)
        query = urlencode(list(form.fields), encoding=codec_of(charset))
        return await self.send("GET", urlunsplit(parts._replace(query=query)), jar, page.url)
