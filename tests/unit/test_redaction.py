"""Secrets never reach the log, however a request spells them: one rule
(observability.logs.redacted_uri, and redact for any other text) for the query string,
the path, absolute URIs, arrays and every encoding. (Through a real server's log, and
whatever Tornado itself writes about a malformed request:
tests/system/test_redaction.py.)"""

from __future__ import annotations

import string
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from handlers import path_words, routes
from handlers.base import AppDeps
from observability.logs import SECRET_PATHS, fully_decoded, redact, redacted_uri


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        ("/card/rest?stuid=2012052690&password=052690", "/card/rest?stuid=2012052690&password=***"),
        ("/card/rest?PASSWORD=052690&stuid=1", "/card/rest?PASSWORD=***&stuid=1"),
        ("/x?passwd=1&pwd=2&keep=3", "/x?passwd=***&pwd=***&keep=3"),
        ("/x?password=", "/x?password=***"),
        ("/x?mypassword=5", "/x?mypassword=***"),
        ("/x?pass%77ord=052690&stuid=1", "/x?password=***&stuid=1"),
        ("/x?password=05%2690&a=b", "/x?password=***&a=b"),
        ("/card/rest", "/card/rest"),
        # The server splits only on "&": the whole "x;y" is the password.
        ("/card/rest?a=1&password=052690;y", "/card/rest?a=1&password=***"),
        # Credentials where no parameter is expected: the log filter's rules.
        ("/v1/card/balance&password=052690", "/v1/card/balance&password=***"),
        ("/v1/x;password=052690", "/v1/x;password=***"),
        ("/card/rest?+password=052690", "/card/rest?+password=***"),
        ("/x?Authorization=Basic%20MDUyNjkw", "/x?Authorization=***"),
        ("/x?t=Bearer%20052690", "/x?t=Bearer+***"),
        # The 2013 account API's passwords and login token.
        (
            "/password/reset?username=u&oldpassword=052690&password=052690",
            "/password/reset?username=u&oldpassword=***&password=***",
        ),
        ("/auth_jwc?token=052690&jwc_password=052690", "/auth_jwc?token=***&jwc_password=***"),
        (
            "/class/auth?token=052690&jwcpw=052690&year=2012",
            "/class/auth?token=***&jwcpw=***&year=2012",
        ),
        # Arrays, other secret names, separators and encodings.
        ("/x?password[]=052690&a=1", "/x?password[]=***&a=1"),
        ("/x?user%5Bpassword%5D=052690", "/x?user[password]=***"),
        ("/x?pin=052690&PIN2=052690&api_key=052690", "/x?pin=***&PIN2=***&api_key=***"),
        ("/x?a=1;pwd=052690&b=2", "/x?a=1;pwd=***&b=2"),
        ("/x?a=1%26password%3D052690", "/x?a=1%26password=***"),
        ("/x%3Fpassword=052690", "/x%3Fpassword=***"),
        ("/x%253Fpassword%253D052690?a=1", "/x%3Fpassword=***?***"),
        ("/x?%2570assword=052690", "/x?password=***"),
        # An absolute URI: the user information is hidden, the rest by the same rules.
        ("http://u:052690@h/x?password=052690", "http://***@h/x?password=***"),
        ("http://h/card/rest?stuid=1&password=052690", "http://h/card/rest?stuid=1&password=***"),
        # Ordinary parameters are left as they are.
        ("/v1/library/search?q=python&page=2", "/v1/library/search?q=python&page=2"),
        ("/v1/timetable?year=2026&term=1", "/v1/timetable?year=2026&term=1"),
    ],
)
def test_secret_values_are_replaced(uri: str, logged: str) -> None:
    assert redacted_uri(uri) == logged
    assert "052690" not in redacted_uri(uri).replace("2012052690", "")


FEED = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdE"


@pytest.mark.parametrize(
    ("uri", "logged"),
    [
        (f"/v1/calendar/{FEED}.ics", "/v1/calendar/***.ics"),
        (f"/v1/calendar/{FEED}.ics?x=1", "/v1/calendar/***.ics?x=1"),
        # Mistyped feed URLs (no route matches them) hide the token as well.
        (f"/v1/calendar/{FEED}.ics/", "/v1/calendar/***.ics/"),
        (f"/v1/calendar/{FEED}", "/v1/calendar/***"),
        (f"/v1/calendar/{FEED[:20]}%2F{FEED[20:]}.ics", "/v1/calendar/***.ics"),
        (f"/v1/calendar/{FEED}/x.ics", "/v1/calendar/***.ics"),
        ("/v1/calendar/tokens", "/v1/calendar/tokens"),
        ("/v1/calendar/tokens/", "/v1/calendar/tokens/"),
        (f"http://h/v1/calendar/{FEED}.ics", "http://h/v1/calendar/***.ics"),
        (f"/v1//Calendar/{FEED}.ics", "/v1//Calendar/***.ics"),
        (f"/v1/calendar/{FEED[:20]}%0A{FEED[20:]}.ics", "/v1/calendar/***.ics"),
        (f"/v1/card/balance/{FEED}", "/v1/card/balance/***"),
        ("/v1/sessions/1234", "/v1/sessions/***"),
        (f"/uploads/{FEED[:32]}.png", "/uploads/***.png"),
    ],
)
def test_feed_tokens_are_replaced(uri: str, logged: str) -> None:
    assert redacted_uri(uri) == logged
    assert FEED[:10] not in redacted_uri(uri)


# --- Every shape an attacker tried ------------------------------------------------------


def known_words() -> frozenset[str]:
    """What the access line shows of a path no route took: the routes' own words."""
    deps = cast(AppDeps, SimpleNamespace(ops=SimpleNamespace(debug_block_route=True)))
    return path_words(routes(deps))


@dataclass(frozen=True)
class Attack:
    """A request line hiding `secret` ({s} in the line; {t} is a live feed token), and
    what its access line shows instead."""

    name: str
    line: str
    shown: str
    # Only the routes can tell this secret from an ordinary path segment: it is hidden
    # from a request no route took (the access line's rule), not from any text.
    by_route: bool = False


ATTACKS = [
    Attack("query", "GET /card/rest?stuid=2012052690&password={s}", "password=***"),
    Attack("encoded ? in the path", "GET /card/rest%3Fpassword={s}", "GET /card/*** "),
    Attack("twice encoded", "GET /card/rest%253Fpassword%253D{s}", "GET /card/*** "),
    Attack("encoded ? and = in a query", "GET /card/rest?x%3D1%26password%3D{s}", "x=1"),
    Attack("array", "GET /card/rest?stuid=1&password[]={s}", "password[]=***"),
    Attack("indexed array", "GET /card/rest?stuid=1&password[0]={s}", "password[0]=***"),
    Attack("encoded array", "GET /card/rest?stuid=1&user%5Bpassword%5D={s}", "=***"),
    Attack("pin", "GET /card/rest?stuid=1&pin={s}", "pin=***"),
    Attack("encoded name", "GET /card/rest?stuid=1&pass%77ord={s}", "password=***"),
    Attack("every letter encoded", "GET /card/rest?%70%61%73%73%77%64={s}", "passwd=***"),
    Attack("+ as space", "GET /card/rest?+password={s}", "+password=***"),
    Attack("upper case", "GET /card/rest?PassWord={s}", "PassWord=***"),
    Attack("; in the query", "GET /card/rest?stuid=1;password={s}", "stuid=1;password=***"),
    Attack("; in the path", "GET /card/rest;password={s}", "GET /card/*** "),
    Attack("fragment", "GET /card/rest?stuid=1#pwd={s}", "stuid=1%23pwd=***"),
    Attack("fragment in the path", "GET /card/rest#password={s}", "GET /card/*** "),
    Attack("token", "GET /get_username?token={s}", "token=***"),
    Attack("api_key", "GET /v1/card/balance?api_key={s}", "api_key=***"),
    Attack("signature", "GET /v1/card/balance?sig={s}", "sig=***"),
    Attack("2013 office password", "GET /class/auth?token=x&jwcpw={s}", "jwcpw=***"),
    Attack("path segment", "GET /card/rest/{s}", "GET /card/rest/*** ", by_route=True),
    Attack("static path", "GET /static/{s}", "GET /static/*** ", by_route=True),
    Attack("absolute URI", "GET http://127.0.0.1/card/rest?password={s}", "http://***/card/rest"),
    Attack("user information", "GET http://u:{s}@127.0.0.1/card/rest", "http://***/card/rest"),
    Attack("feed token", "GET /v1/calendar/{t}.ics", "GET /v1/calendar/***.ics "),
    Attack("feed token, absolute URI", "GET http://127.0.0.1/v1/calendar/{t}.ics", "calendar/***"),
    Attack("feed token, encoded /", "GET /v1/calendar%2F{t}.ics", "GET /v1/calendar/*** "),
    Attack("feed token, //", "GET /v1//calendar/{t}.ics", "GET /v1//calendar/*** "),
    Attack("feed token, upper case", "GET /V1/CALENDAR/{t}.ics", "GET /***/***/*** "),
    Attack("feed token revoked", "DELETE /v1/calendar/{t}x.ics", "/v1/calendar/***.ics "),
    Attack("token pasted in a path", "GET /v1/card/balance/{t}", "GET /v1/card/balance/*** "),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_every_shape_is_redacted_by_the_rule_itself(attack: Attack) -> None:
    secret, token = "Sx0123abcdQ", "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdE"
    uri = attack.line.format(s=secret, t=token).split(" ", 1)[1]
    texts = [redacted_uri(uri, known_words())]
    if not attack.by_route:
        texts += [
            redacted_uri(uri),
            redact(f"Uncaught exception GET {uri} (127.0.0.1)"),
            redact(f"HTTPServerRequest(protocol='http', uri={uri!r}, version='HTTP/1.1')"),
        ]
    for shown in texts:
        readable = fully_decoded(shown) or shown
        for hidden in (secret, token[:16]):
            assert hidden not in shown
            assert hidden not in readable


def test_every_route_with_a_path_argument_is_judged() -> None:
    """A route whose path holds a value is either in SECRET_PATHS or named here as
    holding nothing secret: a new route must take a side."""
    not_secret = {
        r"/book/search/([^/]+)",  # a search query
        r"/isbn/image/([0-9Xx-]{10,17})",
        r"/v1/library/books/((?:zh-)?[0-9A-Za-z.]{1,24})",
        r"/()",
        r"/(favicon\.ico)",
        r"/static/(.*)",  # a 404 shows only "/static/***"
        r"/wechat/([a-z][a-z0-9_-]{0,31})",  # an account's name in the config
        r"/v1/watches/([0-9]{1,18})",  # a watch's id
    }
    deps = cast(AppDeps, SimpleNamespace(ops=SimpleNamespace(debug_block_route=True)))
    prefixes = [f"/{prefix}/" for prefix, _ in SECRET_PATHS]
    for pattern, _, _ in routes(deps):
        if "(" not in pattern or pattern in not_secret:
            continue
        assert any(pattern.startswith(prefix) for prefix in prefixes), pattern
    for prefix in prefixes:
        assert redacted_uri(f"{prefix}Sx0123abcdQ.png") == f"{prefix}***.png"


# --- A property: random secrets, random encodings of the name -----------------------

NAMES = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "pin",
    "secret",
    "token",
    "key",
    "api_key",
    "sig",
    "oldpassword",
    "jwc_password",
    "jwcpw",
    "Authorization",
    "X-Api-Key",
    "access_token",
]
SEPARATORS = ["?", "?stuid=2012052690&", "?stuid=1;", "?x=1#", "?+", ";", "#", "&", "/"]
VALUE_CHARS = string.ascii_letters + string.digits + "-_.~!$'()*,;:@/?=&%+ \"<>\\\t"


def encoded(text: str, depths: list[int]) -> str:
    """Each character percent-encoded depths[i] times over (0: as it is)."""
    out = []
    for char, depth in zip(text, depths, strict=False):
        out.append(char if depth == 0 else "%" + "25" * (depth - 1) + f"{ord(char):02X}")
    return "".join(out)


@st.composite
def secret_in_a_uri(draw: st.DrawFn) -> tuple[str, str]:
    """(uri, secret): a secret value under a secret name, the name (and the separators
    around it) percent-encoded to random depths, in random case, with an array suffix."""
    name = draw(st.sampled_from(NAMES))
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    name += draw(st.sampled_from(["", "[]", "[0]", "[12]"]))
    depths = draw(st.lists(st.integers(0, 3), min_size=len(name), max_size=len(name)))
    separator = draw(st.sampled_from(SEPARATORS))
    separator = encoded(separator, [draw(st.integers(0, 2))] * len(separator))
    equals = draw(st.sampled_from(["=", "%3D", "%3d", "%253D"]))
    secret = draw(st.text(VALUE_CHARS, min_size=8, max_size=24))
    value = quote(secret, safe="") if draw(st.booleans()) else quote(quote(secret, safe=""))
    prefix = draw(st.sampled_from(["/card/rest", "/v1/card/balance", "http://h/card/rest", ""]))
    tail = draw(st.sampled_from(["", "&stuid=2012052690", "#f", "&x=y%26z"]))
    uri = f"{prefix}{separator}{encoded(name, depths)}{equals}{value}{tail}"
    assume(secret not in uri.replace(value, ""))
    assume(secret.strip() == secret and len(set(secret)) > 3)
    return uri, secret


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret_in_a_uri())
def test_a_secret_never_shows_whatever_the_encoding(case: tuple[str, str]) -> None:
    uri, secret = case
    line = redact(f"Malformed request {uri} from 127.0.0.1")
    # Only the URI's part of the line: the words around it may hold the secret's
    # characters by chance (a drawn "127.0.0." is in the address).
    shown_uri = line.removeprefix("Malformed request ").removesuffix(" from 127.0.0.1")
    assert shown_uri != line, line
    for shown in (redacted_uri(uri), redacted_uri(uri, known_words()), shown_uri):
        assert secret not in shown, (uri, shown)
        readable = fully_decoded(shown)
        assert readable is None or secret not in readable, (uri, shown)
