"""Contract fuzzing: schemathesis generates requests from the OpenAPI document (the one
/openapi.json serves) and sends them to a real server process (two workers, SQLite,
the simulated school); every answer must keep the contract: a status the operation
documents, its media type, body schema and headers. No input may get a 500.

What counts as a failure, and why:
- 500 (`internal_error`, a bug of ours) always; and any status an operation does
  not document (schemathesis' status_code_conformance).
- 502, 503 and 504 are NOT failures: the school failing, too busy or too slow is an
  answer the contract promises (documented codes, with Retry-After); the
  conformance checks hold those answers to their schema like any other.

Checks left out, and why:
- negative_data_rejection: the server reads what it needs and ignores the rest (an
  empty parameter is an absent one, unknown parameters and headers are ignored, a
  malformed X-Request-Id is replaced), so a request outside the schema is not always
  refused; whatever it gets is still held to the contract.
- ignored_auth: a Basic header whose student number has the wrong shape is a 400
  (`invalid_student_id`), by design, not a 401.
- positive_data_acceptance: a well-formed but unknown student is refused (401) by
  the school, as documented.

Bounded and deterministic: a fixed seed, JNUFM_CONTRACT_EXAMPLES generated cases
per operation (default 8) on top of the spec's examples and schemathesis' boundary
values; about 2,500 requests, well under two minutes. /v1/ operations get the
simulated student's Basic auth; the 2013 endpoints get generated and example values.
"""

from __future__ import annotations

import base64
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from PIL import Image
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from api.contract import Operation, Route
from api.routes import ACCOUNT_PASSWORD_EXAMPLE, ROUTES, openapi
from harness.processes import Proc, jnufm_server

STUDENT, PASSWORD = "2012052690", "052690"
EXAMPLES = int(os.environ.get("JNUFM_CONTRACT_EXAMPLES", "8"))
SEED = 2013


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sim: Proc) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("contract")
    db = f"sqlite+aiosqlite:///{Path(tmp) / 'jnufm.sqlite3'}"
    with jnufm_server(tmp, db, sim.url, processes=2) as proc:
        yield proc


def contract_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
                "mode": "all",
            },
            "phases": {"stateful": {"enabled": False}},
            "auth": {"basic": {"username": STUDENT, "password": PASSWORD}},
            "checks": {
                # Replaced by the assertion below: only 500 is ours (see the docstring).
                "not_a_server_error": {"enabled": False},
                "positive_data_acceptance": {"enabled": False},
                "negative_data_rejection": {"enabled": False},
                "ignored_auth": {"enabled": False},
                "use_after_free": {"enabled": False},
                "ensure_resource_availability": {"enabled": False},
            },
        }
    )


# Loaded from the document itself: tests/component/test_openapi.py checks that /openapi.json
# serves exactly this. HEAD is GET's handler without the body
# (tests/component/test_http_conventions.py holds every GET route to that): fuzzing it
# again would only add wrong passwords, until the example student is locked out.
schema = schemathesis.openapi.from_dict(openapi(), config=contract_config()).exclude(method="HEAD")


@schema.parametrize()
def test_every_answer_keeps_the_contract(case: Case[Any], server: Proc) -> None:
    response = case.call_and_validate(base_url=server.url)
    assert response.status_code != 500, response.text


# --- the examples succeed -----------------------------------------------------------------
# The fuzzing above passes even if every request were refused; each operation's own
# example must get its documented success. Two examples cannot be stable, so this run
# makes its own: a calendar feed token (made for the simulated student), and
# `/web/book`'s `url`, a record URL of this run's simulated catalogue (the contract's
# example names the simulator on the default configuration's port), taken from a search
# as a client would.


def example_request(route: Route, op: Operation, made: dict[str, str]) -> dict[str, Any]:
    """The request the contract's examples make for one operation; a parameter named in
    `made` gets the value made for this run instead."""
    path = route.path
    for param in route.path_params:
        path = path.replace("{" + param.name + "}", made.get(param.name, param.example))
    query = {
        p.name: made.get(p.name, p.example)
        for p in op.params
        if p.where == "query" and p.example is not None
    }
    request: dict[str, Any] = {"method": op.method.upper(), "url": path, "params": query}
    if op.body is not None and op.body.multipart is not None:
        request["files"] = {"file": ("example.png", example_png(), "image/png")}
    elif op.body is not None and op.body.required and op.body.example is not None:
        request["json"] = op.body.example
    if "studentBasic" in op.security:
        basic = base64.b64encode(f"{STUDENT}:{PASSWORD}".encode()).decode()
        request["headers"] = {"Authorization": f"Basic {basic}"}
    return request


def example_png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def new_account(client: httpx.Client) -> tuple[str, str, str]:
    """A new 2013 account with an avatar: its user name, token and picture name."""
    username = f"example{secrets.token_hex(4)}"
    params = {"username": username, "password": ACCOUNT_PASSWORD_EXAMPLE}
    token = client.get("/signup", params=params).json()["token"]
    sent = {"file": ("example.png", example_png(), "image/png")}
    url = client.post("/set_avatar", params={"token": token}, files=sent).json()["url"]
    return username, token, url.removeprefix("/uploads/").removesuffix(".png")


def example_account(client: httpx.Client) -> dict[str, str]:
    """The 2013 account routes' examples need this run's own: a user name and its live token
    (bound to the simulated student), and a picture of another account (the upload
    examples replace the first account's pictures)."""
    username, token, _ = new_account(client)
    _, _, picture = new_account(client)
    bind = {"token": token, "jwc_username": STUDENT, "jwc_password": PASSWORD}
    assert client.get("/auth_jwc", params=bind).json()["status"] == 0
    return {"username": username, "token": token, "picture": picture}


def test_every_operation_answers_its_example_with_its_success(server: Proc) -> None:
    with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
        auth = (STUDENT, PASSWORD)
        made = client.post("/v1/calendar/tokens", auth=auth, params={"year": "2026", "term": "1"})
        assert made.status_code == 201, made.text
        tokens = [made.json()["token"]]
        found = client.get("/book/search/engine", params={"query": "数据结构"})
        assert found.status_code == 200, found.text
        record_url = found.json()["data"][0]["url"].encode()
        book_url = base64.urlsafe_b64encode(record_url).decode().rstrip("=")
        account = example_account(client)
        answered = []
        for route in ROUTES:
            for op in route.operations:
                if op.method == "delete":
                    # Revoke a token of its own, after the feed was read with the first.
                    again = client.post("/v1/calendar/tokens", auth=auth)
                    tokens.append(again.json()["token"])
                this_run = {"token": tokens[-1], "url": book_url}
                if op.tag == "accounts":
                    this_run = account
                if op.tag == "sessions" and route.path_params:
                    # Revoke a session token of its own.
                    opened = client.post("/v1/sessions", auth=auth)
                    this_run = {"id": str(opened.json()["id"])}
                if op.tag == "watches" and route.path_params:
                    # Delete a watch of its own.
                    watched = client.post(
                        "/v1/watches",
                        auth=auth,
                        json={"kind": "card_transaction", "channel": "email", "target": "a@b.cn"},
                    )
                    assert watched.status_code == 201, watched.text
                    this_run = {"id": str(watched.json()["watch"]["id"])}
                resp = client.request(**example_request(route, op, this_run))
                answered.append((op.method, route.path, resp.status_code))
                if route.path == "/v1/wechat/bind":
                    # A bind link is made in a WeChat chat (this server has no account):
                    # its example is answered with one of the refusals it documents.
                    code = resp.json()["error"]["code"]
                    assert code in {f.code for f in op.failures}, (route.path, resp.text)
                    continue
                assert resp.status_code == op.answer.status, (route.path, op.method, resp.text)
                assert resp.headers["X-Request-Id"], (route.path, op.method)
        assert len(answered) == sum(len(route.operations) for route in ROUTES)
