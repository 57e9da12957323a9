"""Students' tokens over real HTTP (a real simulated school, SQLite and MySQL): a token
instead of a password on every call, listed and revoked by its student, ended by a
password change at the school, with calendar feeds on the same tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.processes import Proc, schoolsim, sim_json
from tests.conftest import make_settings, serve_app

STUDENT = "2012052690"
PASSWORD = STUDENT[-6:]
YEAR, TERM = "2026", "1"


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school of this test's own (passwords are changed in it)."""
    with schoolsim(tmp_path_factory.mktemp("school"), "fast") as proc:
        yield proc


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code(reply: httpx.Response) -> str:
    return str(reply.json()["error"]["code"])


async def open_session(
    client: httpx.AsyncClient, system: str = "card", password: str = PASSWORD, **extra: str
) -> dict[str, Any]:
    reply = await client.post(
        "/v1/sessions",
        data={"system": system, **extra},
        auth=(STUDENT, password),
    )
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_a_token_instead_of_the_password(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, deps):
        made = await open_session(client, label="my phone")
        token = made["token"]
        assert made["system"] == "card" and made["label"] == "my phone" and made["current"]
        assert made["student_id"] == STUDENT
        assert len(token) == 43
        balance = await client.get("/v1/card/balance", headers=bearer(token))
        assert balance.status_code == 200, balance.text
        assert balance.json()["student_id"] == STUDENT
        assert balance.json()["source"] == "cache", "the session's own query warmed the cache"
        for path in ("/v1/card/transactions", "/v1/card/profile"):
            assert (await client.get(path, headers=bearer(token))).status_code == 200
        # A card token opens nothing at the academic office (another password guards it).
        other = await client.get("/v1/timetable", headers=bearer(token))
        assert other.status_code == 403 and code(other) == "insufficient_scope"
        assert "insufficient_scope" in other.headers["WWW-Authenticate"]
        # Stored: only the token's hash and the password sealed; neither in clear.
        assert deps.tokens is not None
        async with deps.tokens._sessions() as session:
            from sqlalchemy import text

            rows = (await session.execute(text("SELECT token_hash, sealed FROM tokens"))).all()
        assert rows and all(token not in repr(row) and PASSWORD not in repr(row) for row in rows)


async def test_listing_and_revoking_ones_own_tokens(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        first = (await open_session(client, label="phone"))["token"]
        second = await open_session(client, label="laptop")
        listed = await client.get("/v1/sessions", headers=bearer(first))
        assert listed.status_code == 200, listed.text
        tokens = listed.json()["tokens"]
        assert {t["label"] for t in tokens} == {"phone", "laptop"}
        assert [t["current"] for t in tokens if t["label"] == "phone"] == [True]
        assert all("token" not in t for t in tokens), "a listing never shows a token again"
        # With the password too (Basic), and per system.
        by_password = await client.get("/v1/sessions", auth=(STUDENT, PASSWORD))
        assert len(by_password.json()["tokens"]) == 2
        gone = await client.delete(f"/v1/sessions/{second['id']}", headers=bearer(first))
        assert gone.status_code == 204
        refused = await client.get("/v1/card/balance", headers=bearer(second["token"]))
        assert refused.status_code == 401 and code(refused) == "token_revoked"
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
        unknown = await client.delete("/v1/sessions/999999", headers=bearer(first))
        assert unknown.status_code == 404 and code(unknown) == "unknown_token"
        everything = await client.delete("/v1/sessions", headers=bearer(first))
        assert everything.status_code == 200 and len(everything.json()["revoked"]) == 1
        after = await client.get("/v1/card/balance", headers=bearer(first))
        assert after.status_code == 401 and code(after) == "token_revoked"


async def test_bad_session_requests_are_clear_4xx(db_url: str, school: Proc) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        wrong = await client.post("/v1/sessions", auth=(STUDENT, "999999"))
        assert wrong.status_code == 401 and code(wrong) == "invalid_credentials"
        nothing = await client.post("/v1/sessions")
        assert nothing.status_code == 401 and code(nothing) == "missing_credentials"
        system = await client.post(
            "/v1/sessions", data={"system": "library"}, auth=(STUDENT, PASSWORD)
        )
        assert system.status_code == 400 and code(system) == "invalid_system"
        label = await client.post(
            "/v1/sessions", data={"label": "x" * 65}, auth=(STUDENT, PASSWORD)
        )
        assert label.status_code == 400 and code(label) == "invalid_label"
        for token in ("short", "A" * 43, "!" * 43):
            reply = await client.get("/v1/card/balance", headers=bearer(token))
            assert reply.status_code == 401 and code(reply) == "invalid_token", token
        listing = await client.get("/v1/sessions")
        assert listing.status_code == 401 and code(listing) == "missing_credentials"


async def test_a_token_keeps_working_while_its_student_is_locked_out(
    db_url: str, school: Proc
) -> None:
    """Anyone who knows a student number can lock its password out; not the token."""
    settings = make_settings(db_url, school.url, **{"limits.failed_logins_ip_max": 30})
    async with serve_app(settings) as (client, _):
        token = (await open_session(client))["token"]
        for guess in ("111111", "222222", "333333", "444444", "555555"):
            wrong = await client.get("/v1/card/balance", auth=(STUDENT, guess))
            assert wrong.status_code == 401
        locked = await client.get("/v1/card/balance", auth=(STUDENT, PASSWORD))
        assert locked.status_code == 429 and code(locked) == "too_many_failed_logins"
        assert (await client.get("/v1/card/balance", headers=bearer(token))).status_code == 200


async def test_a_new_password_accepted_at_the_school_ends_the_old_tokens(
    db_url: str, school: Proc
) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        token = (await open_session(client))["token"]
        sim_json(school.url, f"/__sim/students/{STUDENT}/password", {"password": "135790"})
        accepted = await client.get("/v1/card/balance", auth=(STUDENT, "135790"))
        assert accepted.status_code == 200
        ended = await client.get("/v1/card/balance", headers=bearer(token))
        assert ended.status_code == 401 and code(ended) == "password_changed"
        assert "changed at the school" in ended.json()["error"]["message"]
        # A new token with the new password works.
        fresh = (await open_session(client, password="135790"))["token"]
        assert (await client.get("/v1/card/balance", headers=bearer(fresh))).status_code == 200


async def test_the_stored_password_refused_at_a_login_ends_the_token(
    db_url: str, school: Proc
) -> None:
    """The student changed the password elsewhere; the token's next login is refused."""
    settings = make_settings(
        db_url, school.url, **{"sessions.enabled": False, "cache.fresh_min_interval_s": 0}
    )
    async with serve_app(settings) as (client, _):
        token = (await open_session(client))["token"]
        sim_json(school.url, f"/__sim/students/{STUDENT}/password", {"password": "135791"})
        refused = await client.get(
            "/v1/card/balance", headers={**bearer(token), "Cache-Control": "no-cache"}
        )
        assert refused.status_code == 401 and code(refused) == "password_changed"
        again = await client.get("/v1/card/balance", headers=bearer(token))
        assert again.status_code == 401 and code(again) == "password_changed"


async def test_feeds_are_tokens_too_cached_by_etag_and_ended_by_a_password_change(
    db_url: str, school: Proc
) -> None:
    async with serve_app(make_settings(db_url, school.url)) as (client, _):
        session = (await open_session(client, "academic"))["token"]
        made = await client.post(
            "/v1/calendar/tokens", params={"year": YEAR, "term": TERM}, headers=bearer(session)
        )
        assert made.status_code == 201, made.text
        path = made.json()["path"]
        feed = await client.get(path)
        assert feed.status_code == 200, feed.text
        etag = feed.headers["ETag"]
        # A calendar app may keep it for the feed's refresh interval (its own REFRESH-INTERVAL).
        assert re.fullmatch(r"private, max-age=[0-9]+", feed.headers["Cache-Control"])
        assert "Last-Modified" in feed.headers
        same = await client.get(path, headers={"If-None-Match": etag})
        assert same.status_code == 304 and same.content == b""
        assert (await client.get(path, headers={"If-None-Match": '"other"'})).status_code == 200
        # The feed is listed with the student's academic tokens.
        listed = await client.get(
            "/v1/sessions", params={"system": "academic"}, headers=bearer(session)
        )
        kinds = sorted(t["kind"] for t in listed.json()["tokens"])
        assert kinds == ["feed", "session"]
        sim_json(
            school.url, f"/__sim/academic/students/{STUDENT}/password", {"password": "newpass1"}
        )
        new = await client.get(
            "/v1/timetable", params={"year": YEAR, "term": TERM}, auth=(STUDENT, "newpass1")
        )
        assert new.status_code == 200, new.text
        gone = await client.get(path)
        assert gone.status_code == 410 and code(gone) == "password_changed"
        old = await client.get("/v1/timetable", headers=bearer(session))
        assert old.status_code == 401 and code(old) == "password_changed"
