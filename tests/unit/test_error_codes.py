"""The catalogue of error codes (services/codes.py) is the only place a code is written:
every code the server can answer is one of its entries, every entry is answered
somewhere, and the API description documents them from it."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from api.routes import openapi
from services import codes
from services.codes import ErrorCode
from services.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]
# The server's own code: what runs in the master and the workers.
SERVER_PACKAGES = {
    "db",
    "handlers",
    "leanweb",
    "observability",
    "runtime",
    "school",
    "services",
    "systems",
}
# The one module of the API description that runs on every request: it refuses the
# parameters outside their schemas (handlers/params.py calls it).
SERVER_API_MODULES = ("api/params.py",)
# What raises or writes an error from a catalogue entry given as its first argument.
TAKES_AN_ENTRY = {"BadInput", "TokenRefused", "RateLimited", "refusal_answer"}
# Answered by Tornado's own refusals or a fault of ours, on any path: README's error
# table lists them; the API document describes what routes answer of their own.
NOT_IN_THE_DOCUMENT = {
    codes.INTERNAL_ERROR,
    codes.UNAUTHORIZED,
    codes.METHOD_NOT_ALLOWED,
    codes.LENGTH_REQUIRED,
    codes.RANGE_NOT_SATISFIABLE,
}
CATALOGUE = codes.catalogue()


def server_modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in [*sorted(ROOT.glob("*.py")), *(ROOT / name for name in SERVER_API_MODULES)]:
        yield path, ast.parse(path.read_text(encoding="utf-8"))
    for package in sorted(SERVER_PACKAGES):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts or path == ROOT / "services" / "codes.py":
                continue
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def entries_named(tree: ast.Module) -> Iterator[str]:
    """The catalogue's names a module uses: `codes.NAME` (however the module is bound)
    and `from services.codes import NAME`."""
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "services":
            aliases |= {a.asname or a.name for a in node.names if a.name == "codes"}
        if isinstance(node, ast.ImportFrom) and node.module == "services.codes":
            yield from (a.name for a in node.names if a.name in CATALOGUE)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            yield node.attr


def used_entries() -> dict[str, set[str]]:
    """Each catalogue name the server's code uses, and where."""
    used: dict[str, set[str]] = {}
    for path, tree in server_modules():
        for name in entries_named(tree):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return used


def test_each_entry_is_one_code_at_one_status_with_its_meaning() -> None:
    assert len(CATALOGUE) > 50
    pairs = [(e.status, e.code) for e in CATALOGUE.values()]
    assert len(pairs) == len(set(pairs)), "two entries of one code at one status"
    for name, entry in CATALOGUE.items():
        assert 400 <= entry.status < 600, name
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", entry.code), name
        assert entry.when.strip() and entry.when_zh.strip(), f"{name} says nothing"


def test_every_name_the_server_uses_is_an_entry_and_every_entry_is_answered() -> None:
    used = used_entries()
    unknown = {name: where for name, where in used.items() if name not in CATALOGUE}
    assert not unknown, f"not in the catalogue: {unknown}"
    unused = set(CATALOGUE) - set(used)
    assert not unused, f"entries the server never answers: {sorted(unused)}"


def test_no_code_is_written_outside_the_catalogue() -> None:
    """An error is raised with an entry, never with a code typed again: no string (or
    f-string) where an entry goes, and no entry made outside the catalogue."""
    for path, tree in server_modules():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            assert name != "ErrorCode", f"{where}: an entry made outside services/codes.py"
            if name in TAKES_AN_ENTRY and node.args:
                first = node.args[0]
                assert not isinstance(first, ast.Constant | ast.JoinedStr), (
                    f"{where}: {name} given a code, not a catalogue entry"
                )


def test_every_service_error_answers_a_catalogue_entry() -> None:
    entries = set(CATALOGUE.values())
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        assert cls.error in entries, cls.__name__
        pending += cls.__subclasses__()


def test_the_api_document_describes_the_entries_routes_answer_and_only_those() -> None:
    documented = {(e["status"], e["code"]) for e in openapi()["x-errors"]}
    answered = {(e.status, e.code) for e in CATALOGUE.values()} - {
        (e.status, e.code) for e in NOT_IN_THE_DOCUMENT
    }
    assert answered - documented == set(), "answered, but not in the API document"
    assert documented - answered == set(), "in the API document, but no entry of the catalogue"


def test_a_route_may_word_an_entry_for_itself_but_not_change_it() -> None:
    entry = codes.NOT_CONFIGURED
    worded = entry.answered("the 2013 account API is off", "未启用")
    assert (worded.status, worded.code) == (entry.status, entry.code)
    assert worded != entry
    assert isinstance(worded, ErrorCode)
