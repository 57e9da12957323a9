"""WeChat followers bound to students over real HTTP (a real simulated school, SQLite and
MySQL): the bind link's ticket posted by the bind page, the passwords proven by making
session tokens, the chat's grant, one-time and expiring tickets, rebinding, unbinding,
a password change, the student's listing, retention, and nothing in clear in the
database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text

from channels.wechat.config import WeChatAccount
from handlers.base import AppDeps
from harness.processes import Proc, schoolsim, sim_json
from services import codes
from services.errors import BadInput, TokenRefused
from services.leases import LeaseStore
from services.retention import Retention
from services.wechat_followers import Followers
from settings import Settings
from tests.conftest import make_settings, serve_app

APP_ID = "wx2c2769f8efd9abc2"
WECHAT_TOKEN = "Zq8vR2mXk4Tn7pLw"
ACCOUNT = WeChatAccount(name="jnu", app_id=APP_ID, mode="plain", token=SecretStr(WECHAT_TOKEN))
OPENID = "oRz3Q5mXk9Lw2Tn7pYb4Vc8JhU1E"
OTHER_OPENID = "oRz3Q5mXk9Lw2Tn7pYb4Vc8JhZZZ"
STUDENT = "2012052691"
OTHER = "2011000123"


def password_of(student: str) -> str:
    return student[-6:]


def wechat_settings(db_url: str, sim_url: str, **overrides: Any) -> Settings:
    return make_settings(
        db_url,
        sim_url,
        **{"wechat.accounts": [{"name": "jnu", "app_id": APP_ID, "mode": "plain"}], **overrides},
    )


@pytest.fixture(autouse=True)
def wechat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JNUFM_WECHAT_TOKEN", WECHAT_TOKEN)


@asynccontextmanager
async def served(
    db_url: str, sim_url: str, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, AppDeps, Followers]]:
    async with serve_app(wechat_settings(db_url, sim_url, **overrides)) as (client, deps):
        assert deps.followers is not None
        yield client, deps, deps.followers


@pytest.fixture
def school(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """A school of this test's own (a password is changed in it)."""
    with schoolsim(tmp_path_factory.mktemp("school"), "fast") as proc:
        yield proc


def ticket_of(url: str) -> str:
    parts = urlsplit(url)
    assert parts.path == "/static/wechat-bind.html"
    assert not parts.query, "nothing of the ticket in the request line"
    name, _, value = parts.fragment.partition("=")
    assert name == "ticket" and value
    return value


async def post_bind(
    client: httpx.AsyncClient,
    ticket: str,
    student: str = STUDENT,
    password: str | None = None,
    academic: str | None = None,
    as_json: bool = False,
) -> httpx.Response:
    fields = {
        "ticket": ticket,
        "student_id": student,
        "password": password_of(student) if password is None else password,
    }
    if academic is not None:
        fields["academic_password"] = academic
    if as_json:
        return await client.post("/v1/wechat/bind", json=fields)
    return await client.post("/v1/wechat/bind", data=fields)


def code(reply: httpx.Response) -> str:
    return str(reply.json()["error"]["code"])


async def refused_code(followers: Followers, openid: str, system: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        await followers.grant(ACCOUNT, openid, system)
    return refused.value.code


async def test_a_follower_binds_on_the_page_and_the_chat_gets_the_password(
    db_url: str, sim: Proc
) -> None:
    async with served(db_url, sim.url) as (client, _, followers):
        page = await client.get("/static/wechat-bind.html")
        assert page.status_code == 200 and "绑定学号" in page.text
        assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
        assert (await client.get("/static/wechat-bind.js")).status_code == 200

        assert await followers.binding(ACCOUNT, OPENID) is None
        assert await followers.grant(ACCOUNT, OPENID, "card") is None
        url = followers.bind_url(ACCOUNT, OPENID)
        assert OPENID not in url
        ticket = ticket_of(url)

        reply = await post_bind(client, ticket, as_json=True)
        assert reply.status_code == 201, reply.text
        assert reply.json() == {
            "student_id": STUDENT,
            "bound": {"card": True, "academic": False},
            "account": "jnu",
        }
        binding = await followers.binding(ACCOUNT, OPENID)
        assert binding is not None and binding.student_id == STUDENT and binding.account == "jnu"
        assert binding.card_token_id is not None and binding.academic_token_id is None
        grant = await followers.grant(ACCOUNT, OPENID, "card")
        assert grant is not None
        assert (grant.student_id, grant.password, grant.system) == (
            STUDENT,
            password_of(STUDENT),
            "card",
        )
        assert grant.client == "wechat:jnu"
        assert await followers.grant(ACCOUNT, OPENID, "academic") is None
        # Another follower (or the same one of another account) is not bound by it.
        assert await followers.binding(ACCOUNT, OTHER_OPENID) is None

        # The student sees the binding's token among its own, labelled.
        listed = await client.get("/v1/sessions", auth=(STUDENT, password_of(STUDENT)))
        assert listed.status_code == 200, listed.text
        tokens = listed.json()["tokens"]
        assert [(t["label"], t["client"]) for t in tokens] == [("微信", "wechat:jnu")]
        assert listed.json()["wechat"] == [
            {
                "id": binding.id,
                "account": "jnu",
                "created_at": listed.json()["wechat"][0]["created_at"],
            }
        ]

        # Used once: the same link again is refused, and binds nothing.
        again = await post_bind(client, ticket)
        assert again.status_code == 409 and code(again) == "wechat_ticket_used"
        assert "绑定" in again.json()["error"]["message"]


async def test_a_wrong_password_leaves_the_ticket_usable(db_url: str, sim: Proc) -> None:
    student = "2012000311"
    async with served(db_url, sim.url) as (client, _, followers):
        ticket = ticket_of(followers.bind_url(ACCOUNT, OPENID))
        wrong = await post_bind(client, ticket, student, password="999999")
        assert wrong.status_code == 401 and code(wrong) == "invalid_credentials"
        assert "999999" not in wrong.text
        # The card password right, the academic office's wrong: refused too, and the
        # card token it made is ended at once.
        academic = await post_bind(client, ticket, student, academic="999999")
        assert academic.status_code == 401 and code(academic) == "invalid_credentials"
        listed = await client.get("/v1/sessions", auth=(student, password_of(student)))
        assert listed.json()["tokens"] == [] and listed.json()["wechat"] == []
        assert await followers.binding(ACCOUNT, OPENID) is None
        shape = await post_bind(client, ticket, "12ab")
        assert shape.status_code == 401 and code(shape) == "invalid_student_id"
        missing = await post_bind(client, ticket, password="")
        assert missing.status_code == 401 and code(missing) == "missing_password"

        right = await post_bind(client, ticket, student, academic=password_of(student))
        assert right.status_code == 201, right.text
        assert right.json()["bound"] == {"card": True, "academic": True}
        grant = await followers.grant(ACCOUNT, OPENID, "academic")
        assert grant is not None and grant.password == password_of(student)


async def test_expired_tampered_and_foreign_tickets_are_refused(db_url: str, sim: Proc) -> None:
    async with served(db_url, sim.url) as (client, deps, followers):
        secret = followers._secret
        assert deps.sessions is not None and deps.tokens is not None

        def followers_at(moment: datetime, accounts: dict[str, WeChatAccount]) -> Followers:
            return Followers(
                followers._sessions,
                deps.tokens,  # type: ignore[arg-type]
                deps.sessions,  # type: ignore[arg-type]
                accounts,
                followers._settings,
                secret,
                "http://127.0.0.1:8000",
                now=lambda: moment,
            )

        ttl = followers._settings.bind_link_ttl_s
        old = followers_at(datetime.now(UTC) - timedelta(seconds=ttl + 120), {"jnu": ACCOUNT})
        expired = await post_bind(client, ticket_of(old.bind_url(ACCOUNT, OPENID)))
        assert expired.status_code == 410 and code(expired) == "wechat_ticket_expired"

        ticket = ticket_of(followers.bind_url(ACCOUNT, OPENID))
        payload, _, signature = ticket.rpartition(".")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        version, account, follower, ticket_id, expires = payload.split(".")
        other_follower = followers.follower_key(ACCOUNT, OTHER_OPENID)
        later = str(int(expires) + 86400)
        for tampered in (
            f"{payload}.{flipped}",
            ".".join((version, account, other_follower, ticket_id, expires, signature)),
            ".".join((version, account, follower, ticket_id, later, signature)),
            ticket[:-1],
            "",
            "not-a-ticket",
            "x" * 5000,
            OPENID,
        ):
            reply = await post_bind(client, tampered)
            assert reply.status_code == 400 and code(reply) == "wechat_ticket_invalid", tampered
        no_ticket = await client.post(
            "/v1/wechat/bind", data={"student_id": STUDENT, "password": password_of(STUDENT)}
        )
        assert no_ticket.status_code == 400 and code(no_ticket) == "wechat_ticket_invalid"

        # Signed by this server, for an account it no longer has.
        gone = WeChatAccount(
            name="old", app_id="wx0000000000000000", mode="plain", token=SecretStr(WECHAT_TOKEN)
        )
        foreign = followers_at(datetime.now(UTC), {"old": gone})
        reply = await post_bind(client, ticket_of(foreign.bind_url(gone, OPENID)))
        assert reply.status_code == 400 and code(reply) == "wechat_ticket_invalid"

        assert await followers.binding(ACCOUNT, OPENID) is None
        assert await followers.binding(ACCOUNT, OTHER_OPENID) is None
        # The genuine ticket still works after all that.
        assert (await post_bind(client, ticket)).status_code == 201


async def test_two_requests_with_one_ticket_bind_once(db_url: str, sim: Proc) -> None:
    student = "2012000312"
    async with served(db_url, sim.url) as (client, _, followers):
        ticket = ticket_of(followers.bind_url(ACCOUNT, OPENID))
        replies = await asyncio.gather(*(post_bind(client, ticket, student) for _ in range(3)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [201, 409, 409], [r.text for r in replies]
        assert {code(r) for r in replies if r.status_code == 409} == {"wechat_ticket_used"}
        # The losers' tokens were ended: only the binding's is live.
        listed = await client.get("/v1/sessions", auth=(student, password_of(student)))
        binding = await followers.binding(ACCOUNT, OPENID)
        assert binding is not None
        assert [t["id"] for t in listed.json()["tokens"]] == [binding.card_token_id]


async def test_followers_of_a_student_rebinding_and_unbinding(db_url: str, sim: Proc) -> None:
    student, other = "2012000313", "2011000314"
    async with served(db_url, sim.url) as (client, deps, followers):
        first = await post_bind(
            client,
            ticket_of(followers.bind_url(ACCOUNT, OPENID)),
            student,
            academic=password_of(student),
        )
        assert first.status_code == 201, first.text
        second = await post_bind(
            client, ticket_of(followers.bind_url(ACCOUNT, OTHER_OPENID)), student
        )
        assert second.status_code == 201, second.text

        card = await client.get("/v1/sessions", auth=(student, password_of(student)))
        assert [b["account"] for b in card.json()["wechat"]] == ["jnu", "jnu"]
        office = await client.get(
            "/v1/sessions", params={"system": "academic"}, auth=(student, password_of(student))
        )
        first_binding = await followers.binding(ACCOUNT, OPENID)
        assert first_binding is not None
        assert [b["id"] for b in office.json()["wechat"]] == [first_binding.id]
        assert [b.id for b in await followers.listed(student)] == [
            first_binding.id,
            (await followers.binding(ACCOUNT, OTHER_OPENID)).id,  # type: ignore[union-attr]
        ]

        # The first follower binds another student: the old binding's tokens end.
        rebound = await post_bind(client, ticket_of(followers.bind_url(ACCOUNT, OPENID)), other)
        assert rebound.status_code == 201, rebound.text
        grant = await followers.grant(ACCOUNT, OPENID, "card")
        assert grant is not None and grant.student_id == other
        assert await followers.grant(ACCOUNT, OPENID, "academic") is None
        assert deps.tokens is not None
        for system, token_id in (
            ("card", first_binding.card_token_id),
            ("academic", first_binding.academic_token_id),
        ):
            assert token_id is not None
            with pytest.raises(TokenRefused) as ended:
                await deps.tokens.session_by_id(token_id, system)
            assert ended.value.error is codes.TOKEN_REVOKED
        assert len(await followers.listed(student)) == 1
        assert [b.student_id for b in await followers.listed(other)] == [other]

        # Unbinding ends the binding and its token; the chat learns why.
        assert await followers.unbind(ACCOUNT, OTHER_OPENID)
        assert await followers.binding(ACCOUNT, OTHER_OPENID) is None
        assert await followers.grant(ACCOUNT, OTHER_OPENID, "card") is None
        assert await followers.ended(ACCOUNT, OTHER_OPENID) == "unbound"
        assert not await followers.unbind(ACCOUNT, OTHER_OPENID)
        assert await followers.listed(student) == []
        left = await client.get("/v1/sessions", auth=(student, password_of(student)))
        assert left.json()["tokens"] == [] and left.json()["wechat"] == []
        # An unbound follower binds again with a new link.
        again = await post_bind(
            client, ticket_of(followers.bind_url(ACCOUNT, OTHER_OPENID)), student
        )
        assert again.status_code == 201
        assert await followers.ended(ACCOUNT, OTHER_OPENID) is None


async def test_revoking_the_students_tokens_ends_its_bindings(db_url: str, sim: Proc) -> None:
    student = "2012000315"
    async with served(db_url, sim.url) as (client, _, followers):
        made = await post_bind(client, ticket_of(followers.bind_url(ACCOUNT, OPENID)), student)
        assert made.status_code == 201
        binding = await followers.binding(ACCOUNT, OPENID)
        assert binding is not None
        revoked = await client.delete("/v1/sessions", auth=(student, password_of(student)))
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked"] == [binding.card_token_id]
        assert revoked.json()["wechat"] == [binding.id]
        assert await followers.binding(ACCOUNT, OPENID) is None
        assert await followers.ended(ACCOUNT, OPENID) == "revoked"
        listed = await client.get("/v1/sessions", auth=(student, password_of(student)))
        assert listed.json()["wechat"] == []

        # One token by its id: the binding it leaves without a live token ends too.
        await post_bind(client, ticket_of(followers.bind_url(ACCOUNT, OPENID)), student)
        binding = await followers.binding(ACCOUNT, OPENID)
        assert binding is not None
        one = await client.delete(
            f"/v1/sessions/{binding.card_token_id}", auth=(student, password_of(student))
        )
        assert one.status_code == 204
        assert await followers.binding(ACCOUNT, OPENID) is None


async def test_a_password_changed_at_the_school_ends_the_binding_s_token(
    db_url: str, school: Proc
) -> None:
    async with served(db_url, school.url) as (client, _, followers):
        made = await post_bind(client, ticket_of(followers.bind_url(ACCOUNT, OPENID)))
        assert made.status_code == 201, made.text
        sim_json(school.url, f"/__sim/students/{STUDENT}/password", {"password": "135790"})
        accepted = await client.get("/v1/card/balance", auth=(STUDENT, "135790"))
        assert accepted.status_code == 200, accepted.text
        # Still bound, so that the chat can say why it no longer answers.
        assert await followers.binding(ACCOUNT, OPENID) is not None
        assert await refused_code(followers, OPENID, "card") == "password_changed"
        assert await followers.listed(STUDENT) == []
        listed = await client.get("/v1/sessions", auth=(STUDENT, "135790"))
        assert listed.json()["wechat"] == []
        # Bound again with the new password, it works.
        again = await post_bind(
            client, ticket_of(followers.bind_url(ACCOUNT, OPENID)), password="135790"
        )
        assert again.status_code == 201, again.text
        grant = await followers.grant(ACCOUNT, OPENID, "card")
        assert grant is not None and grant.password == "135790"


async def test_the_database_holds_no_openid_password_or_ticket(db_url: str, school: Proc) -> None:
    student, card_password, office_password = "2012000316", "864213", "Qz7wK3pX"
    sim_json(school.url, f"/__sim/students/{student}/password", {"password": card_password})
    sim_json(
        school.url,
        f"/__sim/academic/students/{student}/password",
        {"password": office_password},
    )
    async with served(db_url, school.url) as (client, _, followers):
        tickets = []
        for openid in (OPENID, OTHER_OPENID):
            tickets.append(ticket_of(followers.bind_url(ACCOUNT, openid)))
            reply = await post_bind(
                client, tickets[-1], student, password=card_password, academic=office_password
            )
            assert reply.status_code == 201, reply.text
        assert await followers.unbind(ACCOUNT, OTHER_OPENID)
        secrets = [OPENID, OTHER_OPENID, card_password, office_password, *tickets]
        async with followers._sessions() as db:
            for table in ("wechat_followers", "wechat_tickets", "tokens"):
                rows = (await db.execute(text(f"SELECT * FROM {table}"))).all()
                assert rows, table
                for row in rows:
                    for value in row:
                        for secret in secrets:
                            assert secret not in str(value), (table, secret)
            keys = set(await db.scalars(text("SELECT follower FROM wechat_followers")))
        assert keys == {followers.follower_key(ACCOUNT, o) for o in (OPENID, OTHER_OPENID)}
        # The key depends on the account's app id too.
        elsewhere = ACCOUNT.model_copy(update={"app_id": "wx0000000000000001"})
        assert followers.follower_key(elsewhere, OPENID) not in keys


async def test_retention_prunes_ended_bindings_and_expired_tickets(db_url: str, sim: Proc) -> None:
    settings = wechat_settings(db_url, sim.url, **{"retention.batch": 2, "retention.pause_s": 0})
    async with serve_app(settings) as (client, deps):
        followers = deps.followers
        assert followers is not None
        for openid in (OPENID, OTHER_OPENID):
            reply = await post_bind(
                client, ticket_of(followers.bind_url(ACCOUNT, openid)), "2012000317"
            )
            assert reply.status_code == 201
        assert await followers.unbind(ACCOUNT, OTHER_OPENID)
        sessions = followers._sessions

        async def count(table: str) -> int:
            async with sessions() as db:
                return int(await db.scalar(text(f"SELECT COUNT(*) FROM {table}")) or 0)

        now = datetime.now(UTC)

        def pruner(at: datetime) -> Retention:
            return Retention(sessions, LeaseStore(sessions, lambda: at), settings, lambda: at)

        # Inside their keeping: nothing goes.
        soon = pruner(now + timedelta(seconds=60))
        assert (await soon.prune_table("wechat_followers")).deleted == 0
        assert (await soon.prune_table("wechat_tickets")).deleted == 0
        # Tickets past their expiry go; an ended binding past ended_bindings_keep_s goes,
        # the live one stays.
        ttl = settings.wechat.bind_link_ttl_s
        keep = settings.wechat.ended_bindings_keep_s
        later = pruner(now + timedelta(seconds=max(ttl, keep) + 60))
        assert (await later.prune_table("wechat_tickets")).deleted == 2
        assert (await later.prune_table("wechat_followers")).deleted == 1
        assert await count("wechat_tickets") == 0
        assert await count("wechat_followers") == 1
        assert await followers.binding(ACCOUNT, OPENID) is not None


async def test_without_wechat_the_route_is_not_configured(db_url: str, sim: Proc) -> None:
    async with serve_app(make_settings(db_url, sim.url)) as (client, deps):
        assert deps.followers is None
        reply = await post_bind(client, "1.jnu.x.y.z.s")
        assert reply.status_code == 404 and code(reply) == "not_configured"
        listed = await client.get("/v1/sessions", auth=(STUDENT, password_of(STUDENT)))
        assert listed.status_code == 200 and listed.json()["wechat"] == []


def test_a_ticket_names_the_follower_by_key_and_expires(tmp_path: Any) -> None:
    """Pure: the ticket's shape, signature domain and expiry."""
    moment = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    settings = wechat_settings(
        f"sqlite+aiosqlite:///{tmp_path}/unused.sqlite3", "http://127.0.0.1:1"
    )
    made = Followers(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {"jnu": ACCOUNT},
        settings.wechat,
        b"k" * 32,
        "https://jnu.example/",
        now=lambda: moment,
    )
    url = made.bind_url(ACCOUNT, OPENID)
    assert url.startswith("https://jnu.example/static/wechat-bind.html#ticket=1.jnu.")
    ticket = ticket_of(url)
    found = made.read_ticket(ticket)
    assert found.account == "jnu" and found.follower == made.follower_key(ACCOUNT, OPENID)
    assert found.expires_at == moment + timedelta(seconds=settings.wechat.bind_link_ttl_s)
    assert ticket_of(made.bind_url(ACCOUNT, OPENID)) != ticket, "each link has its own id"
    # Another secret signs differently.
    other = Followers(
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        {"jnu": ACCOUNT},
        settings.wechat,
        b"j" * 32,
        "https://jnu.example",
        now=lambda: moment,
    )
    with pytest.raises(BadInput) as refused:
        other.read_ticket(ticket)
    assert refused.value.error is codes.WECHAT_TICKET_INVALID
