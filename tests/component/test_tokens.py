"""The token store on real SQLite and MySQL, with a settable clock: expiry when idle and
by age, ended rows kept so their holder learns why, then pruned; the per-student cap;
what a worker remembers and for how long."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from db import tokens as q
from db.engine import make_engine, make_sessionmaker
from db.migrate import migrate
from db.models import Token
from services.credentials import Credentials
from services.errors import BadInput, TokenRefused, TokenScope
from services.tokens import TokenStore
from services.vault import SessionVault
from settings import DatabaseSettings, TokensSettings

T0 = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
CREDS = Credentials("2012052690", "052690")
ATTEMPT = "a" * 32


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[tuple[TokenStore, Clock, Any]]:
    engine = make_engine(DatabaseSettings(url=db_url))
    await migrate(engine)
    clock = Clock()
    settings = TokensSettings(
        idle_s=3600, max_age_s=10 * 3600, per_student=3, cache_s=1, touch_s=0, keep_ended_s=600
    )
    sessions = make_sessionmaker(engine)
    made = TokenStore(sessions, settings, SessionVault(b"k" * 32), clock, clock.monotonic)
    yield made, clock, sessions
    await made.aclose()
    await engine.dispose()


async def rows(sessions: Any) -> int:
    async with sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(Token)) or 0)


async def test_a_session_token_opens_its_password_for_its_system_only(
    store: tuple[TokenStore, Clock, Any],
) -> None:
    tokens, _, _ = store
    token, view = await tokens.create_session(CREDS, "card", ATTEMPT, "gw", "phone")
    token_id = view.id
    assert (view.kind, view.system, view.client, view.label) == ("session", "card", "gw", "phone")
    grant = await tokens.session(token, "card")
    assert grant.token_id == token_id and grant.client == "gw"
    assert grant.credentials() == Credentials("2012052690", "052690", proven=True)
    assert "052690" not in repr(grant)
    with pytest.raises(TokenScope):
        await tokens.session(token, "academic")
    with pytest.raises(TokenRefused) as unknown:
        await tokens.session("B" * 43, "card")
    assert unknown.value.code == "invalid_token"


async def test_unused_tokens_expire_and_none_outlives_its_maximum_age(
    store: tuple[TokenStore, Clock, Any],
) -> None:
    tokens, clock, _ = store
    idle, _ = await tokens.create_session(CREDS, "card", ATTEMPT)
    used, _ = await tokens.create_session(CREDS, "card", ATTEMPT)
    for _ in range(11):  # used every 50 minutes: never idle an hour; 9h10 in all
        clock.advance(3000)
        await tokens.session(used, "card")
        await tokens.aclose()  # its use is written
    with pytest.raises(TokenRefused) as expired:
        await tokens.session(idle, "card")
    assert expired.value.code == "token_expired"
    clock.advance(3100)  # over 10 hours old: tokens.max_age_s
    with pytest.raises(TokenRefused) as too_old:
        await tokens.session(used, "card")
    assert too_old.value.code == "token_expired"


async def test_ended_tokens_say_why_then_are_pruned(store: tuple[TokenStore, Clock, Any]) -> None:
    tokens, clock, sessions = store
    revoked, revoked_view = await tokens.create_session(CREDS, "card", ATTEMPT)
    revoked_id = revoked_view.id
    changed, _ = await tokens.create_session(CREDS, "card", ATTEMPT)
    assert await tokens.revoke(CREDS.student_id, "card", [revoked_id]) == [revoked_id]
    async with sessions.begin() as db:
        ended = await q.end_tokens(
            db, CREDS.student_id, "card", clock(), "password_changed", keep="b" * 32
        )
    assert ended == 1
    clock.advance(2)  # past tokens.cache_s: read again
    for token, want in ((revoked, "token_revoked"), (changed, "password_changed")):
        with pytest.raises(TokenRefused) as caught:
            await tokens.session(token, "card")
        assert caught.value.code == want
    assert await rows(sessions) == 2
    clock.advance(601)  # tokens.keep_ended_s
    await tokens.create_session(CREDS, "card", ATTEMPT)  # making one prunes old ones
    assert await rows(sessions) == 1


async def test_too_many_tokens_end_the_oldest(store: tuple[TokenStore, Clock, Any]) -> None:
    tokens, clock, _ = store
    made = []
    for _ in range(4):
        made.append((await tokens.create_session(CREDS, "card", ATTEMPT))[0])
        clock.advance(1)
    with pytest.raises(TokenRefused) as caught:
        await tokens.session(made[0], "card")
    assert caught.value.code == "token_revoked"
    for token in made[1:]:
        await tokens.session(token, "card")
    assert len(await tokens.listed(CREDS.student_id, "card")) == 3


async def test_a_feed_token_ended_is_gone_with_its_reason(
    store: tuple[TokenStore, Clock, Any],
) -> None:
    tokens, clock, _ = store
    feed = await tokens.create_feed(CREDS.student_id, "all", 2026, 1, ATTEMPT)
    grant = await tokens.feed(feed)
    assert (grant.student_id, grant.feed, grant.year, grant.term) == (
        CREDS.student_id,
        "all",
        2026,
        1,
    )
    with pytest.raises(TokenRefused):
        await tokens.session(feed, "academic")  # a feed URL is no session
    assert await tokens.revoke_token(feed, "feed")
    assert not await tokens.revoke_token(feed, "feed")
    with pytest.raises(TokenRefused) as caught:
        await tokens.feed(feed)
    assert caught.value.status == 410 and caught.value.code == "token_revoked"
    with pytest.raises(BadInput) as unknown:
        await tokens.feed("C" * 43)
    assert unknown.value.status == 404
    clock.advance(1)


async def test_a_worker_trusts_what_it_read_for_cache_s_only(
    store: tuple[TokenStore, Clock, Any],
) -> None:
    """Another worker revoked the token: this one answers for at most tokens.cache_s."""
    tokens, clock, sessions = store
    token, view = await tokens.create_session(CREDS, "card", ATTEMPT)
    token_id = view.id
    await tokens.session(token, "card")
    async with sessions.begin() as db:  # another worker's revocation
        await q.end_token_ids(db, CREDS.student_id, "card", [token_id], clock(), "revoked")
    await tokens.session(token, "card")  # within cache_s: still remembered here
    clock.advance(1.5)
    with pytest.raises(TokenRefused):
        await tokens.session(token, "card")


def test_a_feed_is_built_once_per_change_of_what_it_shows() -> None:
    from services.calendar import FeedCache

    built: list[int] = []

    def build(n: int) -> bytes:
        built.append(n)
        return f"BEGIN:VCALENDAR {n}".encode()

    cache = FeedCache(entries=2)
    first = cache.get(("jnufm 2026-1", "2012052690", "all", T0), lambda: build(1))
    again = cache.get(("jnufm 2026-1", "2012052690", "all", T0), lambda: build(2))
    assert first == again and built == [1]
    later = T0 + timedelta(hours=1)  # the school answered anew
    changed = cache.get(("jnufm 2026-1", "2012052690", "all", later), lambda: build(3))
    assert changed.etag != first.etag and built == [1, 3]
    cache.get(("other",), lambda: build(4))  # a third feed: the oldest goes (2 kept)
    cache.get(("jnufm 2026-1", "2012052690", "all", T0), lambda: build(5))
    assert built == [1, 3, 4, 5]
