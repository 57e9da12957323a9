"""Every bad input a user can send gets a 4xx JSON error with a stable code, never a 500."""

from __future__ import annotations

import base64

import httpx
import pytest

STUDENT = "2012052690"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "missing_student_id"),
        ({"password": "052690"}, "missing_student_id"),
        ({"stuid": "", "password": "052690"}, "missing_student_id"),
        ({"stuid": STUDENT}, "missing_password"),
        ({"stuid": STUDENT, "password": ""}, "missing_password"),
        ({"stuid": "20120526x0", "password": "052690"}, "invalid_student_id"),
        ({"stuid": "1" * 17, "password": "052690"}, "invalid_student_id"),
        ({"stuid": "1" * 5000, "password": "052690"}, "invalid_student_id"),
        ({"stuid": STUDENT, "password": "05269a"}, "invalid_password"),
        ({"stuid": STUDENT, "password": "0526901"}, "invalid_password"),
        ({"stuid": STUDENT, "password": "\u0660" * 6}, "invalid_password"),
    ],
)
@pytest.mark.parametrize("path", ["/card/rest", "/card/today", "/card/month", "/card/personalinfo"])
async def test_legacy_bad_credentials(
    http_client: httpx.AsyncClient, path: str, params: dict[str, str], code: str
) -> None:
    resp = await http_client.get(path, params=params)
    # Credentials that cannot be right: unauthorized, as a wrong password is.
    assert resp.status_code == 401
    # "data": null beside the error: a 2013 client reading ["data"] shows nothing.
    assert resp.json() == {
        "data": None,
        "error": {"code": code, "message": resp.json()["error"]["message"]},
    }
    assert resp.json()["error"]["message"]


async def test_v1_without_credentials_asks_for_basic_auth(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/v1/card/balance")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "missing_credentials"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("headers", "code", "status"),
    [
        ({"Authorization": "Digest abc"}, "invalid_authorization", 401),
        ({"Authorization": "Bearer abc"}, "invalid_token", 401),
        ({"Authorization": "Bearer " + "A" * 43}, "invalid_token", 401),
        ({"Authorization": "Basic !!!notbase64"}, "invalid_authorization", 401),
        (
            {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()},
            "invalid_authorization",
            401,
        ),
        # Credentials that cannot be right are refused as unauthorized, with their own code.
        (basic("", "052690"), "missing_student_id", 401),
        (basic(STUDENT, ""), "missing_password", 401),
        (basic("abc", "052690"), "invalid_student_id", 401),
        (basic(STUDENT, "12"), "invalid_password", 401),
    ],
)
async def test_v1_bad_authorization(
    http_client: httpx.AsyncClient, headers: dict[str, str], code: str, status: int
) -> None:
    resp = await http_client.get("/v1/card/balance", headers=headers)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("content", "content_type", "code", "status"),
    [
        (b"{not json", "application/json", "invalid_json", 400),
        (b"[1, 2]", "application/json", "invalid_json", 400),
        (
            b'{"student_id": {"a": 1}, "password": "052690"}',
            "application/json",
            "invalid_json",
            400,
        ),
        # A field of another type than the contract's: refused with the field's code.
        (
            b'{"student_id": 2012052690, "password": "052690"}',
            "application/json",
            "invalid_student_id",
            401,
        ),
        (b'{"password": "052690"}', "application/json", "missing_student_id", 401),
        (b"\xff\xfe", "application/json", "invalid_json", 400),
        (b"student_id=2012052690", "application/x-www-form-urlencoded", "missing_password", 401),
    ],
)
async def test_v1_bad_post_bodies(
    http_client: httpx.AsyncClient, content: bytes, content_type: str, code: str, status: int
) -> None:
    resp = await http_client.post(
        "/v1/card/balance", content=content, headers={"Content-Type": content_type}
    )
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code


async def test_v1_a_body_of_another_type_is_415(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.post(
        "/v1/card/balance",
        content=b"student_id=2012052690",
        headers={"Content-Type": "text/plain"},
    )
    assert resp.status_code == 415
    assert resp.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"start": "2013-02-30"}, "invalid_date"),
        ({"start": "yesterday"}, "invalid_date"),
        ({"start": "20130801"}, "invalid_date"),
        ({"end": "2013-8-1"}, "invalid_date"),
        ({"start": "2013-08-24", "end": "2013-08-01"}, "invalid_range"),
        ({"start": "2013-01-01", "end": "2013-12-31"}, "invalid_range"),
        ({"end": "2999-01-01"}, "invalid_range"),
        ({"start": "x" * 100}, "invalid_date"),
    ],
)
async def test_v1_bad_dates(
    http_client: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    resp = await http_client.get(
        "/v1/card/transactions", params=params, headers=basic(STUDENT, "052690")
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == code


async def test_unknown_route_is_a_json_404(http_client: httpx.AsyncClient) -> None:
    for method in ("GET", "POST", "DELETE"):
        resp = await http_client.request(method, "/no/such/thing")
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == "not_found"


async def test_missing_static_file_is_a_json_404(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/static/nothing.css")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/card/today"),
        ("DELETE", "/v1/card/balance"),
        ("PUT", "/card/today"),
        ("POST", "/healthz"),
    ],
)
async def test_wrong_method_is_a_json_405(
    http_client: httpx.AsyncClient, method: str, path: str
) -> None:
    resp = await http_client.request(method, path)
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("content", "content_type", "code"),
    [
        # json.loads raises RecursionError on deep nesting (a 500 before).
        (b'{"student_id": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", "invalid_json"),
        (b"[" * 60000, "application/json", "invalid_json"),
        # A number too long for int(): ValueError from the int/str conversion limit.
        (b'{"student_id": ' + b"1" * 5000 + b', "password": "052690"}', "application/json", None),
        (b"--x\r\ngarbage", "multipart/form-data; boundary=x", "bad_request"),
        (b"student_id=%ff%fe&password=052690", "application/x-www-form-urlencoded", "bad_request"),
    ],
)
async def test_v1_hostile_bodies_are_4xx(
    http_client: httpx.AsyncClient, content: bytes, content_type: str, code: str | None
) -> None:
    resp = await http_client.post(
        "/v1/card/balance", content=content, headers={"Content-Type": content_type}
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert "052690" not in error["message"]


@pytest.mark.parametrize(
    "token",
    [
        "é" * 8,  # non-ASCII: base64.b64decode raises ValueError, not binascii.Error
        "学号:密码".encode().decode("latin-1"),
        base64.b64encode("学生:密码".encode("gbk")).decode(),  # decodes, but not UTF-8
        base64.b64encode(b"2012052690\xff:052690").decode(),
    ],
)
async def test_v1_non_ascii_basic_credentials_are_401(
    http_client: httpx.AsyncClient, token: str
) -> None:
    resp = await http_client.get(
        "/v1/card/balance", headers={b"Authorization": b"Basic " + token.encode("latin-1")}
    )
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["code"] == "invalid_authorization"


@pytest.mark.parametrize("path", ["/static/a%00b", "/static/%00", "/static/style.css%00.txt"])
async def test_nul_byte_in_a_static_path_is_a_json_404(
    http_client: httpx.AsyncClient, path: str
) -> None:
    resp = await http_client.get(path)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["code"] == "not_found"


async def test_invalid_utf8_parameter_is_400_without_repeating_it(
    http_client: httpx.AsyncClient,
) -> None:
    resp = await http_client.get("/card/rest?stuid=2012052690&password=%ff052690")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "bad_request"
    assert "052690" not in error["message"]
