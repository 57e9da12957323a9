"""The API's handler base (leanweb.LeanHandler) keeps tornado.web's behaviour where clients
can see it: methods, arguments, headers, errors. Through real HTTP, in process."""

from __future__ import annotations

import httpx
import pytest
from tornado.httputil import HTTPHeaders

from leanweb import LeanHandler

STUDENT = {"stuid": "2012052690", "password": "052690"}


async def test_answers_carry_date_and_nosniff_and_a_warm_answer_its_timing(
    http_client: httpx.AsyncClient,
) -> None:
    first = await http_client.get("/card/rest", params=STUDENT)
    again = await http_client.get("/card/rest", params=STUDENT)
    for resp in (first, again):
        assert resp.status_code == 200
        assert resp.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Date"].endswith(" GMT")
        assert int(resp.headers["Content-Length"]) == len(resp.content)
        assert "Server" not in resp.headers and "Etag" not in resp.headers
    # Where the time went, part by part (how long each took depends on the machine).
    parts = [part.split(";dur=") for part in again.headers["Server-Timing"].split(", ")]
    assert [name for name, _ in parts][:3] == ["cache", "db", "school"]
    assert parts[-1][0] == "total"
    assert all(float(duration) >= 0.0 for _, duration in parts)
    assert again.headers["Cache-Status"].startswith("jnufm; hit")


async def test_head_is_get_without_a_body_and_unknown_methods_are_405(
    http_client: httpx.AsyncClient,
) -> None:
    get = await http_client.get("/card/rest", params=STUDENT)
    head = await http_client.head("/card/rest", params=STUDENT)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    other = await http_client.request("BREW", "/v1/card/balance")
    assert other.status_code == 405
    assert other.headers["Allow"] == "GET, HEAD, POST"
    assert other.json()["error"]["code"] == "method_not_allowed"


async def test_a_form_body_counts_whatever_the_method_as_with_tornado_web(
    http_client: httpx.AsyncClient,
) -> None:
    for method in ("GET", "POST"):
        resp = await http_client.request(
            method,
            "/card/rest",
            content="stuid=2012052690&password=052690",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status_code == 200, (method, resp.text)
        assert resp.json()["data"]


async def test_bad_arguments_are_400_json_without_the_raw_value(
    http_client: httpx.AsyncClient,
) -> None:
    resp = await http_client.get("/card/rest?stuid=2012052690&password=%ff%fe")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "a parameter is not valid UTF-8"
    assert "%ff" not in resp.text and "\\xff" not in resp.text
    resp = await http_client.get("/v1/library/books/%ff")
    assert resp.status_code in (400, 404)
    assert "error" in resp.json()


async def test_path_arguments_are_decoded(http_client: httpx.AsyncClient) -> None:
    resp = await http_client.get("/book/search/%E6%95%B0%E6%8D%AE")  # 数据
    assert resp.status_code == 200
    assert isinstance(resp.json()["data"], list)


def test_header_values_with_line_breaks_are_refused() -> None:
    handler = LeanHandler.__new__(LeanHandler)
    handler._headers = HTTPHeaders()
    handler.set_header("X-Fine", "a\tb é")
    for bad in ("a\r\nSet-Cookie: x=1", "a\nb", "a\x00b", "雪"):
        with pytest.raises(ValueError, match="unsafe header value"):
            handler.set_header("X-Bad", bad)
