"""The 2013 account API over real HTTP against the real app and the simulated office: the
2013 request shapes and status values, every error a user can reach, passwords kept
only as argon2 hashes (never in an answer, the database or the log), tokens that
expire and end, checked pictures, the bound academic office, and wrong passwords
limited under concurrency; on SQLite and MySQL."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import secrets
import struct
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin
from sqlalchemy import select, text, update

from db.engine import make_engine
from db.models import Account, Base, LoginFailure, Token
from harness.processes import Proc, sim_json
from settings import Settings
from tests.conftest import make_settings, serve_app

YEAR, TERM = "2012", "1"
PASSWORD = "secret-pw"
TOKEN_ROUTES = ("/get_username", "/get_info", "/set_info", "/sync", "/auth_jwc")


@pytest.fixture
def settings(db_url: str, sim: Proc) -> Settings:
    # Workers keep no copy of a token (tests change rows directly), and a fresh answer is
    # asked of the school at once when a test asks for one.
    return make_settings(db_url, sim.url, **{"tokens.cache_s": 0, "cache.fresh_min_interval_s": 0})


def new_name() -> str:
    return f"user{secrets.token_hex(4)}"


def new_student() -> str:
    """A simulated student of its own (the simulator keeps password changes for the run)."""
    return f"201{random.randrange(10**7):07d}"


async def signup(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    resp = await client.get("/signup", params={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == 0, body
    token: str = body["token"]
    return token


def png(size: tuple[int, int] = (8, 8), **info: str) -> bytes:
    out = io.BytesIO()
    meta = PngImagePlugin.PngInfo()
    for key, value in info.items():
        meta.add_text(key, value)
    Image.new("RGB", size, (200, 30, 30)).save(out, "PNG", pnginfo=meta)
    return out.getvalue()


def picture(fmt: str, size: tuple[int, int] = (8, 8)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, fmt)
    return out.getvalue()


def noise_png(side: int) -> bytes:
    """A PNG that barely compresses: about 3 bytes a pixel."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), secrets.token_bytes(side * side * 3)).save(out, "PNG")
    return out.getvalue()


async def upload(
    client: httpx.AsyncClient, token: str, data: bytes, route: str = "/set_avatar"
) -> httpx.Response:
    return await client.post(
        route, params={"token": token}, files={"file": ("me.png", data, "image/png")}
    )


def assert_bad_token(resp: httpx.Response, status: int | str = 2) -> None:
    assert resp.status_code == 401, resp.text
    body = resp.json()
    assert body["version"] == 1.0
    assert body["status"] == status
    assert body["data"] is None
    assert body["error"]["code"] == "invalid_token"


async def db_rows(settings: Settings, stmt: Any) -> list[Any]:
    engine = make_engine(settings.database)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(stmt)).all())
    finally:
        await engine.dispose()


async def db_write(settings: Settings, stmt: Any) -> None:
    engine = make_engine(settings.database)
    try:
        async with engine.begin() as conn:
            await conn.execute(stmt)
    finally:
        await engine.dispose()


# Accounts and tokens ----------------------------------------------------------------------------


async def test_signup_login_and_username_answer_as_2013(http_client: httpx.AsyncClient) -> None:
    name = new_name()
    first = await http_client.get("/signup", params={"username": name, "password": "pw-123456"})
    assert first.status_code == 200
    body = first.json()
    assert body["version"] == 1.0 and body["status"] == 0
    assert len(body["token"]) == 43
    again = await http_client.get("/signup", params={"username": name, "password": "other-pw"})
    assert again.status_code == 200
    assert again.json() == {"version": 1.0, "status": 1, "token": "none"}

    login = await http_client.get("/login", params={"username": name, "password": "pw-123456"})
    assert login.status_code == 200
    assert login.json()["status"] == 0
    token = login.json()["token"]
    assert token not in (body["token"], "none")
    # A form POST body, as a 2013 client may send; the name without case.
    form = await http_client.post(
        "/login", data={"username": name.upper(), "password": "pw-123456"}
    )
    assert form.json()["status"] == 0

    wrong = await http_client.get("/login", params={"username": name, "password": "pw-654321"})
    assert wrong.status_code == 200
    assert wrong.json() == {"version": 1.0, "status": 2, "token": "none"}
    nobody = await http_client.get(
        "/login", params={"username": new_name(), "password": "pw-123456"}
    )
    assert nobody.json() == {"version": 1.0, "status": 1, "token": "none"}

    for t in (body["token"], token):
        resp = await http_client.get("/get_username", params={"token": t})
        assert resp.status_code == 200
        assert resp.json() == {"version": 1.0, "status": 0, "username": name}
    assert (await http_client.get("/version")).json() == {"version": 1}


async def test_a_bad_token_is_2013s_bad_token_with_401(http_client: httpx.AsyncClient) -> None:
    unknown = secrets.token_urlsafe(32)
    for route in TOKEN_ROUTES:
        for params in ({}, {"token": "1362491089"}, {"token": unknown}):
            extra = {"username": "someone"} if route == "/get_info" else {}
            extra.update(
                {"jwc_username": "2012052690", "jwc_password": "052690"}
                if route == "/auth_jwc"
                else {}
            )
            resp = await http_client.get(route, params={**params, **extra})
            assert_bad_token(resp)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    for route in ("/class/auth", "/kaoshi/auth"):
        resp = await http_client.get(route, params={"token": unknown, "year": YEAR, "term": TERM})
        assert_bad_token(resp, "AuthNotPass")
    resp = await upload(http_client, unknown, png())
    assert_bad_token(resp)


async def test_a_password_reset_ends_every_token(http_client: httpx.AsyncClient) -> None:
    name = new_name()
    first = await signup(http_client, name, "old-password")
    second = (
        await http_client.get("/login", params={"username": name, "password": "old-password"})
    ).json()["token"]

    reset = {"username": name, "oldpassword": "not-it-123", "password": "new-password"}
    miss = await http_client.get("/password/reset", params=reset)
    assert miss.status_code == 200
    assert miss.json() == {"version": 1.0, "status": "Password not match"}
    assert (await http_client.get("/get_username", params={"token": first})).status_code == 200

    nobody = {**reset, "username": new_name()}
    assert (await http_client.get("/password/reset", params=nobody)).json()["status"] == (
        "Password not match"
    )

    done = await http_client.post("/password/reset", data={**reset, "oldpassword": "old-password"})
    assert done.json() == {"version": 1.0, "status": "Password reset success"}
    for token in (first, second):
        assert_bad_token(await http_client.get("/get_username", params={"token": token}))
    old = await http_client.get("/login", params={"username": name, "password": "old-password"})
    assert old.json()["status"] == 2
    new = await http_client.get("/login", params={"username": name, "password": "new-password"})
    assert new.json()["status"] == 0


async def test_an_idle_token_expires(http_client: httpx.AsyncClient, settings: Settings) -> None:
    name = new_name()
    token = await signup(http_client, name)
    live = await signup(http_client, new_name())
    idle = timedelta(seconds=settings.tokens.idle_s + 60)
    # Its last use as long ago as tokens.idle_s and a minute.
    rows = await db_rows(
        settings, select(Token.id, Token.last_used_at).where(Token.kind == "account")
    )
    assert len(rows) == 2
    account = (await db_rows(settings, select(Account.id).where(Account.username == name)))[0][0]
    await db_write(
        settings,
        update(Token)
        .where(Token.account_id == account)
        .values(created_at=datetime.now(UTC) - idle, last_used_at=datetime.now(UTC) - idle),
    )
    assert_bad_token(await http_client.get("/get_username", params={"token": token}))
    assert (await http_client.get("/get_username", params={"token": live})).status_code == 200


# Profiles ---------------------------------------------------------------------------------------


async def test_profiles_are_set_and_read_as_2013(http_client: httpx.AsyncClient) -> None:
    alice, bob = new_name(), new_name()
    a = await signup(http_client, alice)
    b = await signup(http_client, bob)
    empty = await http_client.get("/get_info", params={"token": b, "username": alice})
    assert empty.json() == {
        "version": 1.0,
        "status": 0,
        "nickname": "",
        "realname": "",
        "sex": "",
        "signature": "",
        "avatar": "",
        "background": "",
    }
    profile = {"nickname": "阿丽", "realname": "张三", "sex": "女", "signature": "hi\nthere"}
    done = await http_client.get("/set_info", params={"token": a, **profile})
    assert done.status_code == 200
    assert done.json() == {"version": 1.0, "status": 0}
    # Only the fields sent change (a POST form this time).
    await http_client.post("/set_info", data={"token": a, "sex": "F"})
    seen = (await http_client.get("/get_info", params={"token": b, "username": alice})).json()
    assert seen == {**empty.json(), **profile, "sex": "F"}
    # The name without case; unknown users are 2013's status 4.
    upper = await http_client.get("/get_info", params={"token": b, "username": alice.upper()})
    assert upper.json()["nickname"] == "阿丽"
    missing = await http_client.get("/get_info", params={"token": b, "username": new_name()})
    assert missing.status_code == 200
    assert missing.json() == {"version": 1.0, "status": 4}
    # Too long: a clear 400, nothing changed.
    long = await http_client.get("/set_info", params={"token": a, "signature": "x" * 257})
    assert long.status_code == 400
    assert long.json()["error"]["code"] == "invalid_profile"
    assert long.json()["version"] == 1.0
    again = (await http_client.get("/get_info", params={"token": b, "username": alice})).json()
    assert again["signature"] == "hi\nthere"


# Pictures ---------------------------------------------------------------------------------------


async def test_pictures_are_re_encoded_png_without_what_came_with_them(
    http_client: httpx.AsyncClient,
) -> None:
    name = new_name()
    token = await signup(http_client, name)
    # A PNG with a text chunk and a script appended (a polyglot).
    sent = png((40, 30), Comment="SECRET-COMMENT") + b"<?php system($_GET['c']); ?>"
    resp = await upload(http_client, token, sent)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["version"] == 1.0 and body["status"] == 0
    url = body["url"]
    assert url.startswith("/uploads/") and url.endswith(".png")

    served = await http_client.get(url)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/png"
    assert "max-age" in served.headers["Cache-Control"]
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert b"SECRET-COMMENT" not in served.content and b"<?php" not in served.content
    with Image.open(io.BytesIO(served.content)) as image:
        assert image.format == "PNG" and image.size == (40, 30)
        assert image.getpixel((0, 0)) == (200, 30, 30)
        assert "Comment" not in image.info

    # JPEG and GIF become PNG too; the background is its own picture. A JPEG's EXIF
    # orientation turns it upright, and the EXIF itself is gone.
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    exif[0x010E] = "SECRET-EXIF"  # image description
    jpeg = io.BytesIO()
    Image.new("RGB", (20, 16), (10, 120, 200)).save(jpeg, "JPEG", exif=exif.tobytes())
    back = await upload(http_client, token, jpeg.getvalue(), "/set_background")
    assert back.status_code == 200
    upright = await http_client.get(back.json()["url"])
    assert b"SECRET-EXIF" not in upright.content
    with Image.open(io.BytesIO(upright.content)) as image:
        assert image.size == (16, 20)
        assert "exif" not in image.info
    gif = await upload(http_client, token, picture("GIF"))
    assert gif.status_code == 200
    for answer in (back, gif):
        got = await http_client.get(answer.json()["url"])
        with Image.open(io.BytesIO(got.content)) as image:
            assert image.format == "PNG"

    other = await signup(http_client, new_name())
    info = (await http_client.get("/get_info", params={"token": other, "username": name})).json()
    assert info["avatar"] == gif.json()["url"]
    assert info["background"] == back.json()["url"]
    # The replaced avatar's URL is gone.
    gone = await http_client.get(url)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "unknown_upload"


async def test_uploads_that_are_not_pictures_we_take_are_refused(
    http_client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await signup(http_client, new_name())
    side = settings.accounts.max_image_side
    truncated = png((64, 64))[:60]
    # A PNG header that claims sides far over the limit (a decompression bomb).
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
    bomb += struct.pack(">I", zlib.crc32(ihdr)) + png((1, 1))[33:]
    cases = [
        (b"just some text, not a picture", 400, "invalid_image"),
        (picture("BMP"), 400, "invalid_image"),
        (truncated, 400, "invalid_image"),
        (b"", 400, "invalid_image"),
        (png((side + 1, 1)), 400, "image_too_large"),
        (bomb, 400, "image_too_large"),
    ]
    for data, status, code in cases:
        resp = await upload(http_client, token, data)
        assert resp.status_code == status, (code, resp.text)
        assert resp.json()["error"]["code"] == code
        assert resp.json()["version"] == 1.0
    missing = await http_client.post(
        "/set_avatar", params={"token": token}, files={"other": ("x.png", png(), "image/png")}
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_file"
    wrong_method = await http_client.get("/set_avatar", params={"token": token})
    assert wrong_method.status_code == 405


async def raw_exchange(client: httpx.AsyncClient, request: bytes) -> tuple[int, bytes]:
    """Send a request's head over a raw connection (no body); its status and body."""
    url = client.base_url
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(15):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_the_upload_body_limit_is_larger_for_uploads_only(
    http_client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await signup(http_client, new_name())
    limit = settings.accounts.max_upload_bytes
    assert limit > settings.http.max_body_bytes
    # Over http.max_body_bytes, under accounts.max_upload_bytes: taken.
    mid = noise_png(200)
    assert settings.http.max_body_bytes < len(mid) < limit
    taken = await upload(http_client, token, mid)
    assert taken.status_code == 200, taken.text
    # Over accounts.max_upload_bytes: refused from its Content-Length, before it is sent;
    # on any other route, the same size as the taken picture is refused.
    for path, length in (
        ("/set_avatar", limit + 1),
        ("/set_background", limit + 1),
        ("/set_info", len(mid)),
    ):
        status, body = await raw_exchange(
            http_client,
            f"POST {path}?token={token} HTTP/1.1\r\nHost: t\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {length}\r\n\r\n".encode(),
        )
        assert status == 413, (path, body)
        assert json.loads(body)["error"]["code"] == "payload_too_large"
    # A chunked upload is cut off once it passes accounts.max_upload_bytes.
    chunk = b"x" * 65536
    frames = b"%x\r\n%s\r\n" % (len(chunk), chunk) * (limit // len(chunk))
    status, body = await raw_exchange(
        http_client,
        f"POST /set_avatar?token={token} HTTP/1.1\r\nHost: t\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
        + frames
        + b"%x\r\n%s\r\n" % (limit % len(chunk) + 1, b"y" * (limit % len(chunk) + 1)),
    )
    assert status == 413, body
    assert json.loads(body)["error"]["code"] == "payload_too_large"


# The academic office ------------------------------------------------------------------------


async def test_the_academic_office_binds_and_answers_by_token(
    http_client: httpx.AsyncClient,
) -> None:
    student = new_student()
    password = student[-6:]
    token = await signup(http_client, new_name())
    office = {"token": token, "year": YEAR, "term": TERM}

    unbound = await http_client.get("/class/auth", params=office)
    assert unbound.status_code == 409
    assert unbound.json()["error"]["code"] == "not_bound"

    bind = {"token": token, "jwc_username": student}
    refused = await http_client.get("/auth_jwc", params={**bind, "jwc_password": "wrong1"})
    assert refused.status_code == 200
    assert refused.json() == {"version": 1.0, "status": 1}
    bound = await http_client.get("/auth_jwc", params={**bind, "jwc_password": password})
    assert bound.json() == {"version": 1.0, "status": 0}

    classes = await http_client.get(
        "/class/get", params={"user": student, "password": password, "year": YEAR, "term": TERM}
    )
    exams = await http_client.get(
        "/kaoshi/get", params={"user": student, "password": password, "year": YEAR, "term": TERM}
    )
    assert classes.status_code == exams.status_code == 200
    # 2013's request shapes: the token alone, or with jwcpw; GET or POST.
    for resp in (
        await http_client.get("/class/auth", params=office),
        await http_client.post("/class/auth", data={**office, "jwcpw": password}),
        await http_client.get("/class/auth", params={**office, "jwcpw": ""}),
    ):
        assert resp.status_code == 200, resp.text
        assert resp.json() == classes.json()
        assert resp.headers["Cache-Status"].startswith("jnufm; ")
    by_token = await http_client.get("/kaoshi/auth", params=office)
    assert by_token.status_code == 200
    assert by_token.json() == exams.json()

    wrong = await http_client.get("/class/auth", params={**office, "jwcpw": "wrong2"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert "status" not in wrong.json()

    sync = await http_client.get("/sync", params={"token": token})
    assert sync.status_code == 200
    data = sync.json()["data"]
    assert data["jwcid"] == student
    assert set(data) == {
        "username",
        "jwcid",
        "nickname",
        "realname",
        "sex",
        "signature",
        "avatar",
        "background",
    }
    # Another user sees the public profile only, never the student number.
    other = await signup(http_client, new_name())
    info = await http_client.get("/get_info", params={"token": other, "username": data["username"]})
    assert student not in info.text


async def bound_account(client: httpx.AsyncClient, student: str) -> str:
    token = await signup(client, new_name())
    bind = {"token": token, "jwc_username": student, "jwc_password": student[-6:]}
    assert (await client.get("/auth_jwc", params=bind)).json()["status"] == 0
    office = {"token": token, "year": YEAR, "term": TERM}
    assert (await client.get("/class/auth", params=office)).status_code == 200
    return token


async def test_a_password_change_at_the_school_ends_the_binding(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    student = new_student()
    token = await bound_account(http_client, student)
    office = {"token": token, "year": YEAR, "term": TERM}

    sim_json(sim.url, f"/__sim/academic/students/{student}/password", {"password": "changed9"})
    sim_json(sim.url, "/__sim/academic/reset", {"sessions": True})
    for _ in range(2):  # the school refuses the bound password; then the binding has ended
        resp = await http_client.get("/class/auth", params={**office, "fresh": "1"})
        assert resp.status_code == 401, resp.text
        body = resp.json()
        assert body["version"] == 1.0
        assert body["status"] == "AuthNotPass"
        assert body["error"]["code"] == "password_changed"
    # With the new password it works again, and is bound from then on.
    new = await http_client.get("/kaoshi/auth", params={**office, "jwcpw": "changed9"})
    assert new.status_code == 200, new.text
    assert (await http_client.get("/class/auth", params=office)).status_code == 200


async def test_a_new_password_used_elsewhere_ends_the_binding(
    http_client: httpx.AsyncClient, sim: Proc
) -> None:
    student = new_student()
    token = await bound_account(http_client, student)
    sim_json(sim.url, f"/__sim/academic/students/{student}/password", {"password": "changed8"})
    # The student asks with the new password: the school accepts it, and every token made
    # with the old one ends.
    direct = {"user": student, "password": "changed8", "year": YEAR, "term": TERM}
    assert (await http_client.get("/class/get", params=direct)).status_code == 200
    resp = await http_client.get(
        "/kaoshi/auth", params={"token": token, "year": YEAR, "term": TERM}
    )
    assert resp.status_code == 401, resp.text
    assert resp.json()["status"] == "AuthNotPass"
    assert resp.json()["error"]["code"] == "password_changed"


# Secrets ---------------------------------------------------------------------------------------


async def test_no_password_in_any_answer_the_database_or_the_log(
    http_client: httpx.AsyncClient,
    settings: Settings,
    sim: Proc,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    student = new_student()
    office_pw = f"Jwc{secrets.token_hex(4)}"
    sim_json(sim.url, f"/__sim/academic/students/{student}/password", {"password": office_pw})
    name = new_name()
    first_pw, second_pw = f"Acc-{secrets.token_hex(5)}", f"Acc-{secrets.token_hex(5)}"
    secrets_sent = [first_pw, second_pw, office_pw]
    answers: list[httpx.Response] = []

    async def ask(method: str, route: str, **kw: Any) -> httpx.Response:
        resp = await http_client.request(method, route, **kw)
        answers.append(resp)
        return resp

    signup_resp = await ask("GET", "/signup", params={"username": name, "password": first_pw})
    token = signup_resp.json()["token"]
    await ask("GET", "/login", params={"username": name, "password": "wrong-pw-1"})
    await ask(
        "POST",
        "/password/reset",
        data={"username": name, "oldpassword": first_pw, "password": second_pw},
    )
    login = await ask("GET", "/login", params={"username": name, "password": second_pw})
    token = login.json()["token"]
    await ask(
        "GET",
        "/auth_jwc",
        params={"token": token, "jwc_username": student, "jwc_password": "wrong-1"},
    )
    await ask(
        "GET",
        "/auth_jwc",
        params={"token": token, "jwc_username": student, "jwc_password": office_pw},
    )
    await ask(
        "GET",
        "/class/auth",
        params={"token": token, "jwcpw": office_pw, "year": YEAR, "term": TERM},
    )
    await ask("GET", "/kaoshi/auth", params={"token": token, "year": YEAR, "term": TERM})
    await ask("GET", "/sync", params={"token": token})
    await ask("GET", "/get_info", params={"token": token, "username": name})
    assert all(r.status_code < 500 for r in answers)
    assert answers[-2].json()["data"]["jwcid"] == student

    for resp in answers:
        for secret in secrets_sent:
            assert secret not in resp.text
            assert secret not in str(resp.headers)

    dump: list[str] = []
    engine = make_engine(settings.database)
    try:
        async with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in await conn.execute(select(table)):
                    dump.append(repr(tuple(row)))
            hashes = (await conn.execute(text("SELECT password_hash FROM accounts"))).all()
    finally:
        await engine.dispose()
    everything = "\n".join(dump)
    assert name in everything  # the dump is not empty
    for secret in secrets_sent:
        assert secret not in everything
    assert [h[0][:10] for h in hashes] == ["$argon2id$"]

    # The server's lines (not the test client's own, which name its URLs).
    logged = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "/auth_jwc" in logged  # access lines were captured
    for secret in [*secrets_sent, token]:
        assert secret not in logged


# Wrong passwords ------------------------------------------------------------------------------


async def test_wrong_account_passwords_are_limited_per_user_name(
    http_client: httpx.AsyncClient, settings: Settings
) -> None:
    name, other = new_name(), new_name()
    await signup(http_client, name, "right-pw")
    await signup(http_client, other, "right-pw")
    limit = settings.limits.failed_logins_max
    for n in range(limit):
        resp = await http_client.get("/login", params={"username": name, "password": f"wrong-{n}"})
        assert resp.json()["status"] == 2
    # A password already tried is no new guess.
    again = await http_client.get("/login", params={"username": name, "password": "wrong-0"})
    assert again.json()["status"] == 2
    for password in ("wrong-new", "right-pw"):
        locked = await http_client.get("/login", params={"username": name, "password": password})
        assert locked.status_code == 429, locked.text
        assert locked.json()["error"]["code"] == "too_many_failed_logins"
        assert locked.json()["version"] == 1.0
        assert int(locked.headers["Retry-After"]) > 0
    reset = {"username": name, "oldpassword": "right-pw", "password": "new-password"}
    assert (await http_client.get("/password/reset", params=reset)).status_code == 429
    # Another user name is not locked.
    free = await http_client.get("/login", params={"username": other, "password": "right-pw"})
    assert free.json()["status"] == 0


async def test_concurrent_wrong_passwords_never_exceed_the_limit(
    http_client: httpx.AsyncClient, settings: Settings
) -> None:
    name = new_name()
    await signup(http_client, name, "right-pw")
    limit = settings.limits.failed_logins_max

    async def guess(n: int) -> httpx.Response:
        return await http_client.get("/login", params={"username": name, "password": f"guess-{n}"})

    # A burst of distinct wrong passwords at once: at most `limit` of them are judged
    # (all may be refused: each counts the others before it is judged).
    burst = await asyncio.gather(*(guess(n) for n in range(4 * limit)))
    statuses = [r.status_code for r in burst]
    assert set(statuses) <= {200, 429}, statuses
    judged = [r for r in burst if r.status_code == 200]
    assert all(r.json()["status"] == 2 for r in judged)
    assert len(judged) <= limit
    # The refused ones left nothing behind: one at a time, exactly the rest is judged.
    more = 0
    for n in range(100, 100 + limit + 1):
        resp = await guess(n)
        if resp.status_code == 429:
            break
        assert resp.json()["status"] == 2
        more += 1
    assert len(judged) + more == limit
    rows = await db_rows(
        settings,
        select(LoginFailure.attempt).where(
            LoginFailure.scope == "account", LoginFailure.subject.like("u:%")
        ),
    )
    assert len({attempt for (attempt,) in rows}) == limit


async def test_wrong_account_passwords_are_limited_per_address(db_url: str, sim: Proc) -> None:
    limit = 6
    settings = make_settings(db_url, sim.url, **{"limits.failed_logins_ip_max": limit})
    async with serve_app(settings) as (client, _):
        names = [new_name() for _ in range(2 * limit + 2)]
        for name in names:
            await signup(client, name, "right-pw")

        async def guess(name: str) -> httpx.Response:
            return await client.get("/login", params={"username": name, "password": "wrong-pw"})

        # One wrong password each for many user names, at once, then one at a time.
        burst = await asyncio.gather(*(guess(name) for name in names[: 2 * limit]))
        judged = [r for r in burst if r.status_code == 200]
        assert len(judged) <= limit
        assert all(r.status_code == 429 for r in burst if r not in judged)
        more = 0
        for name in names[: 2 * limit]:
            resp = await guess(name + "x")  # no such user: a wrong guess all the same
            if resp.status_code == 429:
                break
            assert resp.json()["status"] == 1
            more += 1
        assert len(judged) + more == limit
        # Every password from the address is refused now, the right one too.
        locked = await client.get("/login", params={"username": names[-1], "password": "right-pw"})
        assert locked.status_code == 429
        assert "address" in locked.json()["error"]["message"]


# Bad input -------------------------------------------------------------------------------------


async def test_bad_input_gets_a_clear_4xx(http_client: httpx.AsyncClient) -> None:
    token = await signup(http_client, new_name())
    cases: list[tuple[str, str, int, str]] = [
        ("/signup", "password=secret-pw", 400, "missing_username"),
        ("/signup", "username=&password=secret-pw", 400, "missing_username"),
        ("/signup", f"username={'a' * 65}&password=secret-pw", 400, "invalid_username"),
        ("/signup", "username=%E5%BC%A0%E4%B8%89&password=secret-pw", 400, "invalid_username"),
        ("/signup", "username=two%20words&password=secret-pw", 400, "invalid_username"),
        ("/signup", "username=-dash&password=secret-pw", 400, "invalid_username"),
        ("/signup", "username=%E2%84%AAelvin&password=secret-pw", 400, "invalid_username"),
        ("/signup", "username=okname", 400, "missing_password"),
        ("/signup", "username=okname&password=12345", 400, "invalid_password"),
        ("/signup", f"username=okname&password={'p' * 129}", 400, "invalid_password"),
        ("/signup", "username=%ff&password=secret-pw", 400, "bad_request"),
        ("/login", "username=okname", 400, "missing_password"),
        ("/password/reset", "username=okname&password=secret-pw", 400, "missing_password"),
        (
            "/password/reset",
            "username=okname&oldpassword=x&password=secret-pw",
            400,
            "invalid_password",
        ),
        ("/get_info", f"token={token}", 400, "missing_username"),
        ("/set_info", f"token={token}&nickname={'n' * 65}", 400, "invalid_profile"),
        # Student credentials that cannot be right: unauthorized, with their own code.
        ("/auth_jwc", f"token={token}&jwc_password=052690", 401, "missing_student_id"),
        (
            "/auth_jwc",
            f"token={token}&jwc_username=abc&jwc_password=052690",
            401,
            "invalid_student_id",
        ),
        ("/auth_jwc", f"token={token}&jwc_username=2012052690", 401, "missing_password"),
        ("/class/auth", f"token={token}&year=12&term=1", 400, "invalid_year"),
        ("/class/auth", f"token={token}&year=2012&term=3", 400, "invalid_term"),
        # A year alone: the current term's number, then (no office bound) 409.
        ("/kaoshi/auth", f"token={token}&year=2012", 409, "not_bound"),
        # A jwcpw no academic office password can be: refused before the binding is looked at.
        (
            "/class/auth",
            f"token={token}&year=2012&term=1&jwcpw={'x' * 40}",
            401,
            "invalid_password",
        ),
        ("/uploads/" + "A" * 32 + ".png", "", 404, "unknown_upload"),
        ("/uploads/short.png", "", 404, "not_found"),
    ]
    for route, query, status, code in cases:
        resp = await http_client.get(f"{route}?{query}")
        assert resp.status_code == status, (route, query, resp.text)
        assert resp.json()["error"]["code"] == code, (route, query)
    assert (await http_client.post("/version")).status_code == 405


async def test_the_routes_answer_404_when_accounts_are_off(db_url: str, sim: Proc) -> None:
    settings = make_settings(db_url, sim.url, **{"accounts.enabled": False})
    async with serve_app(settings) as (client, _):
        for route in ("/signup", "/get_info", "/class/auth", "/uploads/" + "A" * 32 + ".png"):
            resp = await client.get(route, params={"username": "a", "password": "secret-pw"})
            assert resp.status_code == 404
            assert resp.json()["error"]["code"] == "not_configured"


async def test_a_hash_made_with_old_parameters_is_made_again_at_login(
    db_url: str, sim: Proc
) -> None:
    name = new_name()
    cheap = make_settings(db_url, sim.url, **{"accounts.hash_time_cost": 1})
    async with serve_app(cheap) as (client, _):
        await signup(client, name, "right-pw")
    before = await db_rows(cheap, select(Account.password_hash))
    assert ",t=1," in before[0][0]
    current = make_settings(db_url, sim.url)
    async with serve_app(current) as (client, _):
        login = await client.get("/login", params={"username": name, "password": "right-pw"})
        assert login.json()["status"] == 0
    after = await db_rows(current, select(Account.password_hash))
    assert f",t={current.accounts.hash_time_cost}," in after[0][0]
