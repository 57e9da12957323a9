"""A small HTTP layer on Tornado's HTTP server, without tornado.web's per-request machinery.

Tornado's HTTPServer (tornado.http1connection) still reads every request and writes
every answer; what this replaces is tornado.web's layer between the two: the
RequestHandler object (its header defaults, output transforms, ETag hashing, UI
modules, XSRF and cookie hooks) and the Application's routing through every rule.
For a small JSON answer that layer costs as much as the rest of a Tornado
hello-world. It knows nothing of the application that uses it.

handler.py      LeanHandler: RequestHandler's interface as far as a JSON API uses it
                (arguments, headers, status, finish, errors), HTTP's rules (HEAD
                as GET, 405 with Allow, 415, ETag and 304), and what it leaves out
                on purpose
routing.py      LeanRoutes (path -> handler), LeanDelegate (one request),
                LeanApplication (routes served on an HTTPServer)
request.py      header values, media types, entity tags, UTF-8 arguments, form and
                multipart bodies
compression.py  Compression (which answers go gzip-compressed), accepts_gzip

tests/component/test_lean_parity.py sends the same requests through a handler on
tornado.web.RequestHandler and the same handler on LeanHandler, and lists every
difference with its reason: a Tornado upgrade that changes behaviour fails it.

Tornado's public interfaces it relies on, and nothing private:
- tornado.httputil: HTTPServerConnectionDelegate and HTTPMessageDelegate (how the
  server hands over a request), HTTPServerRequest (its method, path, version,
  headers, arguments, body, `connection`, `server_connection`), HTTPHeaders,
  RequestStartLine / ResponseStartLine, HTTPConnection.write_headers (its future
  tells when the answer is written) and finish, parse_body_arguments,
  HTTPInputError;
- tornado.http1connection.HTTP1ServerConnection.close (closing a connection after
  its answer);
- tornado.routing.PathMatches (route patterns, as tornado.web matches them);
- tornado.escape.xhtml_escape (the default error page, as tornado.web writes it);
- tornado.web.HTTPError and MissingArgumentError (handlers raise what they would
  raise on tornado.web).
"""

from leanweb.compression import Compression, accepts_gzip
from leanweb.handler import BODY_METHODS, Finisher, LeanHandler, answered_methods, body_etag
from leanweb.request import (
    decode_argument,
    entity_tags,
    header,
    media_type,
    parse_body,
    server_request,
)
from leanweb.routing import (
    LeanApplication,
    LeanDelegate,
    LeanRoutes,
    NotFoundHandler,
    Rule,
    route_label,
)

__all__ = [
    "BODY_METHODS",
    "Compression",
    "Finisher",
    "LeanApplication",
    "LeanDelegate",
    "LeanHandler",
    "LeanRoutes",
    "NotFoundHandler",
    "Rule",
    "accepts_gzip",
    "answered_methods",
    "body_etag",
    "decode_argument",
    "entity_tags",
    "header",
    "media_type",
    "parse_body",
    "route_label",
    "server_request",
]
