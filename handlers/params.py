"""Every request held to the parameters its operation declares (api/params.py), before
its handler reads them: what the contract forbids is refused with the parameter's code."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from tornado.httputil import HTTPServerRequest

from api import params
from leanweb.request import media_type
from services.errors import BadInput

if TYPE_CHECKING:
    from api.contract import Operation


@functools.cache
def operations() -> dict[tuple[str, str], Operation]:
    """Every described operation by its OpenAPI path and method (HEAD: GET's)."""
    from api.routes import ROUTES  # the routes' descriptions import the handlers' systems

    return {(route.path, op.method): op for route in ROUTES for op in route.operations}


def check(label: str, request: HTTPServerRequest) -> None:
    """Hold the request to its operation's parameters (none for a route or method the
    contract does not describe). Raises BadInput."""
    method = "get" if request.method == "HEAD" else (request.method or "").lower()
    op = operations().get((label, method))
    if op is None:
        return
    try:
        params.check(
            op,
            _texts(request.query_arguments),
            media_type(request.headers),
            _fields(request) if method == "post" else {},
            request.body if method == "post" else b"",
        )
    except params.Refused as refused:
        raise BadInput(refused.error, str(refused)) from None


def _fields(request: HTTPServerRequest) -> dict[str, list[str]]:
    """A form's fields as text, and a multipart form's files by name (no content)."""
    return {**_texts(request.body_arguments), **{name: [] for name in request.files}}


def _texts(arguments: dict[str, list[bytes]]) -> dict[str, list[str]]:
    """Arguments as text; one that is not UTF-8 is left to the handler (`bad_request`)."""
    out: dict[str, list[str]] = {}
    for name, values in arguments.items():
        try:
            out[name] = [value.decode("utf-8") for value in values]
        except UnicodeDecodeError:
            continue
    return out
