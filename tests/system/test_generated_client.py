"""A client generated from /openapi.json by openapi-python-client works as a new user
would use it: Basic auth for /v1/, the timetable's year and term as ints, a library
search without credentials, and every error answer as one type (`Error`).

The generator runs offline (the document is the served one, saved to a file); its only
setting is `content_type_overrides`, because it reads no `image/*` answer unless told
that it is raw bytes. A real server process and the simulated school answer.
"""

from __future__ import annotations

import base64
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from harness.processes import Proc, jnufm_server

STUDENT, PASSWORD = "2012052690", "052690"
PACKAGE = "jnufm_client"
GENERATOR_CONFIG = {
    "project_name_override": "jnufm-client",
    "package_name_override": PACKAGE,
    "content_type_overrides": {
        media: "application/octet-stream" for media in ("image/jpeg", "image/png", "image/gif")
    },
    "post_hooks": [],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sim: Proc) -> Iterator[Proc]:
    tmp = tmp_path_factory.mktemp("generated-client")
    db = f"sqlite+aiosqlite:///{Path(tmp) / 'jnufm.sqlite3'}"
    with jnufm_server(tmp, db, sim.url, processes=1) as proc:
        yield proc


@pytest.fixture(scope="module")
def generated(server: Proc, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package openapi-python-client writes from the served document, importable."""
    generator = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert generator is not None, "openapi-python-client is in requirements-dev.txt"
    tmp = tmp_path_factory.mktemp("client")
    spec = tmp / "openapi.json"
    spec.write_bytes(httpx.get(f"{server.url}/openapi.json", timeout=30).content)
    config = tmp / "generator.json"
    config.write_text(json.dumps(GENERATOR_CONFIG))
    out = tmp / "out"
    done = subprocess.run(
        [
            generator,
            "generate",
            "--path",
            str(spec),
            "--output-path",
            str(out),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every answer of every operation is in the client: nothing dropped with a warning.
    assert "WARNING" not in done.stdout, done.stdout
    sys.path.insert(0, str(out))
    try:
        yield out
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def basic(server: Proc, password: str) -> Any:
    token = base64.b64encode(f"{STUDENT}:{password}".encode()).decode()
    return module("client").AuthenticatedClient(
        base_url=server.url, token=token, prefix="Basic", timeout=httpx.Timeout(60)
    )


def operation(name: str) -> Any:
    """The generated module of one operation, whichever tag's folder holds it."""
    root = importlib.import_module(PACKAGE).__path__[0]
    found = sorted(Path(root, "api").glob(f"*/{name}.py"))
    assert len(found) == 1, found
    return module(f"api.{found[0].parent.name}.{name}")


def anonymous(server: Proc) -> Any:
    return module("client").Client(base_url=server.url, timeout=httpx.Timeout(60))


def test_card_balance_with_basic_auth(server: Proc, generated: Path) -> None:
    with basic(server, PASSWORD) as client:
        answer = operation("get_v1_card_balance").sync(client=client)
    assert type(answer).__name__ == "Balance", answer
    assert answer.balance.currency == "CNY"
    assert isinstance(answer.balance.amount, str) and answer.balance.amount


def test_timetable_with_year_and_term_as_ints(server: Proc, generated: Path) -> None:
    with basic(server, PASSWORD) as client:
        answer = operation("get_v1_timetable").sync(client=client, year=2026, term=1)
    assert type(answer).__name__ == "Timetable", answer
    assert (answer.year, answer.term) == (2026, 1)
    assert answer.courses, "the simulated student has courses in 2026-2027's first term"


def test_library_search(server: Proc, generated: Path) -> None:
    with anonymous(server) as client:
        answer = operation("get_v1_library_search").sync(
            client=client, q="数据结构", page=1, available=False
        )
    assert type(answer).__name__ == "LibrarySearch", answer
    assert (answer.page, answer.available_only) == (1, False)
    assert answer.books


def test_every_error_is_one_type(server: Proc, generated: Path) -> None:
    error_type = module("models").Error
    with basic(server, "000000") as client:
        response = operation("get_v1_card_balance").sync_detailed(client=client)
    assert response.status_code == 401
    assert isinstance(response.parsed, error_type)
    assert response.parsed.error.code == "invalid_credentials"
    assert response.parsed.error.message
    # A refused search is the same type.
    with anonymous(server) as client:
        refused = operation("get_v1_library_search").sync_detailed(client=client, q=" ")
    assert refused.status_code == 400
    assert isinstance(refused.parsed, error_type)
    assert refused.parsed.error.code == "invalid_query"  # spaces only: no word to search
