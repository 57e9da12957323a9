"""leanweb's server_request: the request Tornado's HTTPServerRequest makes, its query
arguments copied without deepcopy."""

from __future__ import annotations

import pytest
from tornado import httputil

from leanweb import server_request

URIS = [
    "/card/rest",
    "/card/rest?stuid=2012052690&password=052690",
    "/card/rest?stuid=1&stuid=2&password=&x",
    "/v1/library/search?q=%E4%B8%AD%E6%96%87&page=2#frag",
    "/p?a=1;b=2",
    "/?",
]


def _headers() -> httputil.HTTPHeaders:
    headers = httputil.HTTPHeaders()
    headers["Host"] = "127.0.0.1:8000"
    return headers


@pytest.mark.parametrize("uri", URIS)
def test_it_is_the_request_tornado_makes(uri: str) -> None:
    line = httputil.RequestStartLine("GET", uri, "HTTP/1.1")
    ours = server_request(httputil.HTTPConnection(), None, line, _headers())
    theirs = httputil.HTTPServerRequest(start_line=line, headers=_headers())
    for name in ("method", "uri", "version", "path", "query", "host", "host_name"):
        assert getattr(ours, name) == getattr(theirs, name), name
    assert ours.arguments == theirs.arguments
    assert ours.query_arguments == theirs.query_arguments
    assert ours.body_arguments == theirs.body_arguments == {}


def test_its_two_argument_maps_are_independent() -> None:
    line = httputil.RequestStartLine("POST", "/card/rest?stuid=1", "HTTP/1.1")
    request = server_request(httputil.HTTPConnection(), None, line, _headers())
    request.arguments["stuid"].append(b"2")  # as a parsed body's fields are added
    request.arguments["password"] = [b"x"]
    assert request.query_arguments == {"stuid": [b"1"]}


def test_too_many_query_fields_are_the_clients_error() -> None:
    uri = "/card/rest?" + "&".join(f"f{n}=1" for n in range(1001))
    line = httputil.RequestStartLine("GET", uri, "HTTP/1.1")
    with pytest.raises(httputil.HTTPInputError, match="Invalid query string"):
        server_request(httputil.HTTPConnection(), None, line, _headers())
    with pytest.raises(httputil.HTTPInputError, match="Invalid query string"):
        httputil.HTTPServerRequest(start_line=line, headers=_headers())
