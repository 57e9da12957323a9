"""Pages the school clients could not read, kept for the operator.

When a fetch ends in a `SchoolPageError` (a page no client rule could read: a
redesign, an error page we do not know, a login answer that means neither yes nor
no), the pipeline hands the error and the fetch's trail (school/capture.py) to
`PageCaptures.keep`, which
- counts it: `jnufm_school_pages_unreadable_total{system,page}`, every time;
- keeps the last page received, redacted (school/capture.py `redact`), with the
  request that led to it: one row per system, page kind, day and redacted page
  (the same page again only counts in `seen`), at most
  `captures.per_system_per_day` rows per system and day, cut at
  `captures.max_chars` characters, deleted `captures.keep_s` after last seen;
- writes one log line for a newly kept page, and at most one a minute per system
  and page kind for the same page seen again.
Nothing here reaches the student's answer: the student gets 502
`school_page_unreadable` whatever happens to the copy, and a database error only
loses the copy (logged).

`python server.py pages list|show` (runtime/pages.py) and the dashboard read them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import captures as q
from db.models import PageCapture
from observability import metrics
from school.capture import PageTrail, redact, redact_url
from school.errors import SchoolPageError
from school.html import page_charset
from services.errors import StorageUnavailable
from settings import CapturesSettings

log = logging.getLogger("jnufm.captures")

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DIGITS = re.compile(r"[0-9]")
# Seconds between two log lines about the same page kind seen again (per worker).
REPEAT_LOG_S = 60.0
# Text content types: anything else is kept as a line saying what it was.
_TEXT = ("text/", "application/xhtml", "application/xml", "application/json")


def page_kind(exc: SchoolPageError) -> str:
    """The page kind a client named (`other` if none or not a plain name): a bounded
    label for metrics and the breaker."""
    kind = getattr(exc, "kind", None)
    return kind if isinstance(kind, str) and _KIND.fullmatch(kind) else "other"


@dataclass(frozen=True, slots=True)
class Kept:
    """What became of one unreadable page: its row (None: not kept) and why."""

    capture_id: int | None
    outcome: str  # new, again, over_limit, disabled, no_page, storage_error


def _page_text(body: bytes, content_type: str | None) -> str | None:
    """The page as text, None for a body that is not text (an image)."""
    if content_type and not content_type.lower().startswith(_TEXT):
        return None
    try:
        charset = page_charset(body, content_type)
        return body.decode(charset, errors="replace")
    except (LookupError, ValueError):
        return body.decode("utf-8", errors="replace")
    except Exception:
        return None


class PageCaptures:
    """Keeps unreadable pages (see the module docstring)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: CapturesSettings,
        now: Callable[[], datetime],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self._now = now
        self._clock = clock
        self._logged: dict[tuple[str, str], float] = {}

    async def keep(self, system: str, exc: SchoolPageError, trail: PageTrail) -> Kept:
        """Count, keep and log one unreadable page. Never raises for storage."""
        kind = page_kind(exc)
        metrics.count_unreadable_page(system, kind)
        reason = _DIGITS.sub("0", str(exc))[:300]
        last = trail.last
        if not self._settings.enabled:
            kept = Kept(None, "disabled")
        elif last is None:
            kept = Kept(None, "no_page")
        else:
            kept = await self._store(system, kind, reason, trail)
        self._log(system, kind, reason, kept)
        return kept

    async def _store(self, system: str, kind: str, reason: str, trail: PageTrail) -> Kept:
        last = trail.last
        assert last is not None
        text = _page_text(last.body, last.content_type)
        if text is None:
            page, cut = f"[not text: {len(last.body)} bytes, {last.content_type}]", False
        else:
            page, cut = redact(text, self._settings.max_chars)
        digest = hashlib.sha256(f"{last.status}\n{page}".encode()).hexdigest()
        now = self._now()
        day = now.date().isoformat()
        try:
            async with self._sessions.begin() as db:
                again = await q.seen_again(db, system, kind, day, digest, now)
                if again is not None:
                    return Kept(again, "again")
                if await q.kept_on(db, system, day) >= self._settings.per_system_per_day:
                    return Kept(None, "over_limit")
                row = PageCapture(
                    system=system,
                    kind=kind,
                    day=day,
                    digest=digest,
                    first_seen_at=now,
                    last_seen_at=now,
                    seen=1,
                    reason=reason,
                    method=last.method[:8],
                    url=redact_url(last.url)[:500],
                    form_names=" ".join(last.form_names)[:500],
                    trail="\n".join(redact_url(p) for p in trail.paths),
                    status=last.status,
                    content_type=(last.content_type or "")[:100],
                    size=len(last.body),
                    cut=int(cut),
                    page=page,
                )
                return Kept(await q.add(db, row), "new")
        except SQLAlchemyError as exc:
            log.warning(
                "could not keep an unreadable %s page of %s: %s", kind, system, type(exc).__name__
            )
            return Kept(None, "storage_error")

    def _log(self, system: str, kind: str, reason: str, kept: Kept) -> None:
        key = (system, kind)
        now = self._clock()
        if kept.outcome != "new" and now - self._logged.get(key, -REPEAT_LOG_S) < REPEAT_LOG_S:
            return
        self._logged[key] = now
        log.warning(
            "school page unreadable: system=%s page=%s capture=%s outcome=%s reason=%s",
            system,
            kind,
            kept.capture_id if kept.capture_id is not None else "-",
            kept.outcome,
            reason,
        )

    async def latest(self, limit: int, system: str | None = None) -> Sequence[PageCapture]:
        """The most recently seen kept pages; StorageUnavailable if the database cannot
        say."""
        try:
            async with self._sessions() as db:
                return await q.latest(db, limit, system)
        except SQLAlchemyError as exc:
            raise StorageUnavailable(f"unreadable pages: {type(exc).__name__}") from exc

    async def one(self, capture_id: int) -> PageCapture | None:
        async with self._sessions() as db:
            return await q.one(db, capture_id)
