"""Reading a request: header values, UTF-8 arguments, form and multipart bodies.

The same rules as tornado.web.RequestHandler (an argument that is not UTF-8 is a 400,
a body is parsed whatever the method), with tornado.httputil's public parsers.
"""

from __future__ import annotations

from typing import Final, overload

from tornado import httputil
from tornado.escape import parse_qs_bytes
from tornado.web import HTTPError

# Tornado's own cap on a query string's fields (its default ParseBodyConfig's).
MAX_QUERY_FIELDS: Final = httputil.ParseBodyConfig().urlencoded.max_arguments


def server_request(
    connection: httputil.HTTPConnection,
    server_connection: object,
    start_line: httputil.RequestStartLine,
    headers: httputil.HTTPHeaders,
) -> httputil.HTTPServerRequest:
    """The request Tornado's HTTPServerRequest makes of a start line and headers, its
    query arguments copied field by field instead of by `copy.deepcopy` (their values are
    bytes: two dicts as independent, in a tenth of the time)."""
    path, sep, query = start_line.path.partition("?")
    request = httputil.HTTPServerRequest(
        connection=connection,
        server_connection=server_connection,
        start_line=start_line._replace(path=path) if sep else start_line,
        headers=headers,
    )
    if not sep:
        return request
    request.uri, request.query = start_line.path, query
    try:
        arguments = parse_qs_bytes(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except Exception as e:  # as Tornado's: any parsing failure is the client's
        raise httputil.HTTPInputError(f"Invalid query string: {e}") from e
    request.arguments = arguments
    request.query_arguments = {name: list(values) for name, values in arguments.items()}
    return request


@overload
def header(headers: httputil.HTTPHeaders, name: str) -> str | None: ...
@overload
def header(headers: httputil.HTTPHeaders, name: str, default: str) -> str: ...
@overload
def header(headers: httputil.HTTPHeaders, name: str, default: None) -> str | None: ...
def header(headers: httputil.HTTPHeaders, name: str, default: str | None = None) -> str | None:
    """A request header's value, as HTTPHeaders.get gives it (repeated ones joined by
    commas), without Mapping.get's KeyError for a missing one (most are missing)."""
    values = headers.get_list(name)
    return ",".join(values) if values else default


def media_type(headers: httputil.HTTPHeaders) -> str:
    """The body's media type, without its parameters, in lower case ("" if none)."""
    return header(headers, "Content-Type", "").split(";")[0].strip().lower()


def entity_tags(value: str) -> set[str]:
    """The entity tags of an If-None-Match value, weak ones by their opaque part
    (If-None-Match compares weakly); {"*"} for `*`."""
    if value.strip() == "*":
        return {"*"}
    return {tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()}


def decode_argument(value: bytes, name: str) -> str:
    """An argument's text; a 400 (as RequestHandler.decode_argument) if it is not UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "Invalid unicode in %s: %r", name, value[:40]) from None


def parse_body(request: httputil.HTTPServerRequest) -> None:
    """Form and multipart bodies into request.body_arguments (and request.arguments)."""
    try:
        httputil.parse_body_arguments(
            header(request.headers, "Content-Type", ""),
            request.body,
            request.body_arguments,
            request.files,
            request.headers,
        )
    except httputil.HTTPInputError as exc:
        raise HTTPError(400, "Invalid body: %s", exc) from exc
    for name, values in request.body_arguments.items():
        request.arguments.setdefault(name, []).extend(values)
