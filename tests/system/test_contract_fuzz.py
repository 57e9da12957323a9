"""Contract fuzzing: schemathesis generates requests from the OpenAPI document (the one
/openapi.json serves) and sends them to a real server process (two workers, SQLite,
the simulated school); every answer must keep the contract: a status the operation
documents, its media type, body schema and headers. No input may get a 500.

Every check of schemathesis is on, and what counts as a failure, and why:
- a request the schema allows that is refused with a 400 (positive_data_acceptance),
  one it forbids that is accepted (negative_data_rejection): the server holds every
  declared parameter to its schema wherever it is sent (api/params.py), so the two
  agree. The exception: a card history window and a new watch, whose fields depend on
  each other in ways OpenAPI cannot state (BETWEEN_FIELDS); there a 400 is allowed.
- invalid credentials not answered 401 (ignored_auth): credentials that cannot be right
  are refused as a wrong password is.
- a status, media type, body or header an operation does not document; a method it does
  not answer without a 405 and `Allow`; 500 (`internal_error`, a bug of ours) always.
- a resource made (a session token, a calendar feed, a watch) that is not there, or one
  deleted that still is (use_after_free, ensure_resource_availability): schemathesis'
  stateful phase follows the document's links (test_what_is_made_is_there_until_deleted).
- 502, 503 and 504 are NOT failures (not_a_server_error's expected statuses): the
  school failing, too busy or too slow is an answer the contract promises (documented
  codes, with Retry-After); the conformance checks hold those answers to their schema
  like any other.

Bounded and deterministic: a fixed seed, JNUFM_CONTRACT_EXAMPLES generated cases
per operation (default 8) on top of the spec's examples and schemathesis' boundary
values, about two minutes; JNUFM_CONTRACT_SEED picks another seed. /v1/ operations get the
simulated student's Basic auth; the 2013 endpoints get generated and example values.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from PIL import Image
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from api.contract import Operation, Route, operation_id
from api.routes import ACCOUNT_PASSWORD_EXAMPLE, ROUTES, openapi
from harness.processes import Proc, jnufm_server

STUDENT, PASSWORD = "2012052690", "052690"
EXAMPLES = int(os.environ.get("JNUFM_CONTRACT_EXAMPLES", "8"))
SEED = int(os.environ.get("JNUFM_CONTRACT_SEED", "2013"))
# The school failing, too busy or too slow: answers the contract promises.
SCHOOL = ["502", "503", "504"]
# What a request the contract allows may get (schemathesis' own list for
# positive_data_acceptance): never a 400.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
# Operations whose fields depend on each other in ways OpenAPI cannot state, answered 400
# for a combination the schema allows: a card history window (start <= end, 2000 to
# tomorrow, at most `api.history_max_days`); a watch's kind, param, channel and target
# (a param for the kind, a target for the channel, the kind of the credentials' system, no
# private network). Each of these 400s is documented (invalid_range, invalid_watch_*,
# invalid_target); everything else of these operations is checked as of any other.
BETWEEN_FIELDS = [
    ("get", "/v1/card/transactions"),
    ("post", "/v1/card/transactions"),
    ("post", "/v1/watches"),
]
# A revoked or ended calendar feed is 410 Gone (`token_revoked`, `feed_gone`...: the URL
# will not work again, so a calendar app stops polling), not 404.
GONE = [("get", "/v1/calendar/{token}.ics")]


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
                # Every check on; the school failing, busy or slow is a documented answer.
                "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", *SCHOOL]},
            },
            "operations": [
                {
                    "include-operation-id": operation_id(method, path),
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}
                    },
                }
                for method, path in BETWEEN_FIELDS
            ]
            + [
                {
                    "include-operation-id": operation_id(method, path),
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "410"]}
                    },
                }
                for method, path in GONE
            ],
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


# --- what is made can be used, then is gone ---------------------------------------------------
# The stateful checks (use_after_free, ensure_resource_availability and the rest, all on)
# follow the document's links: a new session token, calendar feed or watch, then what its
# answer links to (read the feed, revoke the token or the feed, delete the watch). Made,
# it must be there; deleted, gone. Run by schemathesis' own command (its stateful engine
# replays scenarios against a server whose state moved on, which a bare hypothesis state
# machine takes for a flaky strategy), with the same seed and the same expectations.
LINKED = (
    "post_v1_sessions",
    "delete_v1_sessions_id",
    "post_v1_calendar_tokens",
    "get_v1_calendar_token_ics",
    "delete_v1_calendar_token_ics",
    "post_v1_watches",
    "delete_v1_watches_id",
)
SCENARIOS = int(os.environ.get("JNUFM_CONTRACT_SCENARIOS", "30"))


def statuses(values: list[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def stateful_config() -> str:
    """schemathesis.toml: the seed, the expectations of contract_config(), and links only as
    the document declares them (no inferred ones)."""
    lines = [
        f"seed = {SEED}",
        "[generation]",
        f"max-examples = {SCENARIOS}",
        'database = "none"',
        "[checks.not_a_server_error]",
        f"expected-statuses = {statuses(['2xx', '3xx', '4xx', *SCHOOL])}",
        "[phases.stateful.inference]",
        "algorithms = []",
    ]
    for extra, ops in (("400", BETWEEN_FIELDS), ("410", GONE)):
        for method, path in ops:
            lines += [
                "[[operations]]",
                f'include-operation-id = "{operation_id(method, path)}"',
                "[operations.checks.positive_data_acceptance]",
                f"expected-statuses = {statuses([*ACCEPTED, extra])}",
            ]
    return "\n".join(lines) + "\n"


def test_what_is_made_is_there_until_deleted(sim: Proc, tmp_path: Path) -> None:
    # A server of its own: the scenarios leave tokens and watches of the example student
    # behind (up to `watches.per_student`), which the other tests here must not meet.
    db = f"sqlite+aiosqlite:///{tmp_path / 'jnufm.sqlite3'}"
    with jnufm_server(tmp_path, db, sim.url, processes=2) as server:
        report = stateful_run(server, tmp_path)
    # Every link was followed, and no scenario failed or errored.
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected", report)
    assert links is not None and links[1] == links[2] and int(links[1]) >= 4, report[-3000:]
    assert re.search(r"Scenarios:\s+[1-9]", report), report[-3000:]


def stateful_run(server: Proc, tmp_path: Path) -> str:
    """schemathesis' stateful phase on LINKED against the server; its report."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(openapi()), encoding="utf-8")
    config = tmp_path / "schemathesis.toml"
    config.write_text(stateful_config(), encoding="utf-8")
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        str(spec),
        "--url",
        server.url,
        "--phases",
        "stateful",
        "--checks",
        "all",
        "--auth",
        f"{STUDENT}:{PASSWORD}",
        "--exclude-method",
        "HEAD",
    ]
    for op_id in LINKED:
        command += ["--include-operation-id", op_id]
    ran = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
    )
    report = ran.stdout + ran.stderr
    assert ran.returncode == 0, report[-6000:]
    return report


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
        fields = {name: made.get(name, value) for name, value in op.body.example.items()}
        request["json" if op.body.json is not None else "data"] = fields
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
