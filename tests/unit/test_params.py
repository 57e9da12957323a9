"""The check that holds requests to their declared parameters (api/params.py): a value is
read as its schema says, and refused with its parameter's code."""

from __future__ import annotations

import json

import pytest

from api.contract import Operation, failures_of
from api.params import Refused, check, conforms, refusal
from api.routes import ROUTES
from services import codes

YEAR = {"type": "integer", "minimum": 2000, "maximum": 2100}
STUDENT_ID = {"type": "string", "pattern": "^[0-9]{6,16}$"}
DATE = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


def operation(method: str, path: str) -> Operation:
    return next(
        op
        for route in ROUTES
        if route.path == path
        for op in route.operations
        if op.method == method
    )


@pytest.mark.parametrize(
    ("schema", "value", "typed", "ok"),
    [
        (YEAR, "2026", False, True),
        (YEAR, "2101", False, False),
        (YEAR, "", False, False),
        (YEAR, "2026.0", False, False),
        (YEAR, 2026, True, True),
        (YEAR, 2026.0, True, True),
        (YEAR, "2026", True, False),
        (YEAR, True, True, False),
        (STUDENT_ID, "2012052690", False, True),
        # A final `$` is the end, not the place before a final newline.
        (STUDENT_ID, "2012052690\n", False, False),
        (DATE, "2026-02-28", False, True),
        (DATE, "2026-02-30", False, False),
        ({"type": "string", "enum": ["true", "false"]}, "yes", False, False),
        ({"anyOf": [STUDENT_ID, {"type": "null"}]}, None, True, True),
        ({"anyOf": [STUDENT_ID, {"type": "null"}]}, 2012052690, True, False),
    ],
)
def test_a_value_is_read_as_its_schema_says(
    schema: dict[str, object], value: object, typed: bool, ok: bool
) -> None:
    assert conforms(schema, value, typed) is ok


def test_every_declared_parameter_has_its_refusal_documented() -> None:
    for route in ROUTES:
        for op in route.operations:
            documented = {(f.status, f.code) for f in failures_of(op)}
            for param in op.params:
                if param.where == "query" and param.name != "token":
                    reason = refusal(op, param.name)
                    for code in (reason.empty, reason.invalid):
                        assert (code.status, code.code) in documented, (route.path, param.name)


def test_a_parameter_is_checked_wherever_it_is_sent() -> None:
    op = operation("post", "/v1/timetable")
    good = json.dumps({"year": 2026, "term": 1}).encode()
    check(op, {"year": ["2026"]}, "application/json", {}, good)
    with pytest.raises(Refused) as refused:
        check(op, {"year": ["2101"]}, "application/json", {}, good)
    assert refused.value.error == codes.INVALID_YEAR
    with pytest.raises(Refused) as refused:
        check(op, {}, "application/json", {}, json.dumps({"student_id": "12"}).encode())
    assert refused.value.error == codes.INVALID_STUDENT_ID
    with pytest.raises(Refused) as refused:
        check(op, {}, "application/x-www-form-urlencoded", {"password": [""]}, b"")
    assert refused.value.error == codes.MISSING_PASSWORD
    with pytest.raises(Refused) as refused:
        check(op, {}, "application/json", {}, b"[1]")
    assert refused.value.error == codes.INVALID_JSON


def test_an_account_password_is_the_accounts_own() -> None:
    op = operation("get", "/signup")
    with pytest.raises(Refused) as refused:
        check(op, {"password": ["short"]}, "", {}, b"")
    assert refused.value.error == codes.INVALID_ACCOUNT_PASSWORD
    assert refused.value.error.status == 400
