"""Route labels of metrics and access lines (handlers.route_labels, leanweb.route_label):
named like the OpenAPI paths, one per route, never regex syntax."""

from __future__ import annotations

import re
from typing import Any

import pytest

from handlers import route_labels, routes
from handlers.base import AppDeps
from leanweb import route_label
from observability.dashboard import UNCOUNTED_ROUTES
from observability.probes import OpsDeps

# What a label holds of a pattern's syntax: none, except the braces of a named part.
REGEX_SYNTAX = re.compile(r"[()\[\]*+?|^$\\]")


def every_route() -> list[tuple[str, type, dict[str, Any]]]:
    deps = AppDeps(card=None, retry_after_s=1, ops=OpsDeps(debug_block_route=True))  # type: ignore[arg-type]
    return routes(deps)


def test_every_route_has_a_label_without_regex_syntax() -> None:
    rules = every_route()
    labels = route_labels(rules)
    assert set(labels) == {pattern for pattern, _, _ in rules}
    for pattern, label in labels.items():
        assert label.startswith("/"), (pattern, label)
        assert not REGEX_SYNTAX.search(label), (pattern, label)
        # Braces only around a name: "{token}", never a quantifier such as "{20,64}".
        assert re.fullmatch(r"(?:[^{}]|\{[a-z_]+\})*", label), (pattern, label)
    assert len(set(labels.values())) == len(labels), "two routes share a label"


def test_labels_are_the_openapi_paths() -> None:
    labels = route_labels(every_route())
    assert labels[r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics"] == "/v1/calendar/{token}.ics"
    assert labels[r"/v1/sessions/([0-9]{1,18})"] == "/v1/sessions/{id}"
    assert labels[r"/book/search/([^/]+)"].startswith("/book/search/{")
    assert labels[r"/v1/card/balance"] == "/v1/card/balance"
    assert labels[r"/openapi\.json"] == "/openapi.json"
    # Routes the OpenAPI document leaves out (static files, WeChat's callbacks).
    assert labels[r"/()"] == "/"
    assert labels[r"/(favicon\.ico)"] == "/favicon.ico"
    assert labels[r"/static/(.*)"] == "/static/{path}"
    assert labels[r"/wechat/([a-z][a-z0-9_-]{0,31})"] == "/wechat/{account}"


def test_the_dashboard_leaves_out_routes_that_exist() -> None:
    labels = set(route_labels(every_route()).values()) | {"unmatched"}
    assert labels >= UNCOUNTED_ROUTES, UNCOUNTED_ROUTES - labels


@pytest.mark.parametrize(
    ("pattern", "names", "label"),
    [
        (r"/v1/calendar/([A-Za-z0-9_-]{20,64})\.ics", ["token"], "/v1/calendar/{token}.ics"),
        (r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})", ["id"], "/v1/library/books/{id}"),
        (r"/a/([0-9]+)/b/([a-z]+)", [], "/a/{arg}/b/{arg2}"),
        (r"/a/([0-9]+)/b/([a-z]+)", ["x"], "/a/{x}/b/{arg2}"),
        (r"/()", [], "/"),
        (r"/(favicon\.ico)", [], "/favicon.ico"),
        (r"^/healthz$", [], "/healthz"),
        (r"/x/([)(])", ["c"], "/x/{c}"),
    ],
)
def test_route_label_names_each_group(pattern: str, names: list[str], label: str) -> None:
    assert route_label(pattern, names) == label
