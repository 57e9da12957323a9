"""The 2013 account API's answer models: the published examples are answers they accept,
they write them back unchanged, and they refuse what the schema refuses."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from api.answers import ANSWERS
from api.answers.accounts import (
    MODELS,
    AccountData,
    AccountDone,
    AccountError,
    AccountLogin,
    AccountPicture,
    AccountProfile,
    AccountSignup,
    Version2013,
)
from api.answers.common import ErrorBody
from api.schemas import COMPONENTS, EXAMPLES
from handlers.legacy import encode

TOKEN = "7Ux8LJWfR6F0hwIRDLHk9D1Jn1xbMwd3xL-UlCtyztA"
# Every answer model but the error, which has no example of its own.
EXAMPLED = [model for model in MODELS if model is not AccountError]


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda m: m.__name__)
def test_each_example_validates_and_is_written_back_unchanged(model: type[BaseModel]) -> None:
    example = EXAMPLES[model.__name__]
    answer = model.model_validate(example)
    assert json.loads(answer.model_dump_json()) == example


def test_the_models_are_registered_and_keep_the_2013_schema() -> None:
    for model in MODELS:
        assert model in ANSWERS
    assert COMPONENTS["AccountLogin"]["properties"]["status"]["enum"] == [0, 1, 2]
    assert COMPONENTS["AccountDone"]["properties"]["status"] == {"type": "integer", "enum": [0]}
    assert COMPONENTS["Version2013"]["properties"]["version"]["const"] == 1
    assert COMPONENTS["AccountSync"]["properties"]["data"] == {
        "$ref": "#/components/schemas/AccountData"
    }
    # The public profile is absent, not null, when there is no such user.
    profile = COMPONENTS["AccountProfile"]
    assert profile["required"] == ["version", "status"]
    assert profile["properties"]["nickname"] == {"type": "string"}
    assert "anyOf" not in profile["properties"]["avatar"]


def test_a_missing_user_has_no_profile_keys_in_either_style() -> None:
    answer = AccountProfile(version=1.0, status=4)
    assert answer.json_text() == '{"version":1.0,"status":4}'
    assert encode(answer, "2013") == '{\n  "status": 4, \n  "version": 1.0\n}'
    found = AccountProfile.model_validate(EXAMPLES["AccountProfile"])
    assert json.loads(found.json_text())["background"] == ""


def test_an_error_carries_2013_s_keys_and_the_bad_token_status_only_when_refused() -> None:
    error = ErrorBody(code="invalid_token", message="no such token")
    refused = AccountError(version=1.0, status=2, data=None, error=error)
    assert refused.json_text() == (
        '{"version":1.0,"status":2,"data":null,'
        '"error":{"code":"invalid_token","message":"no such token"}}'
    )
    other = AccountError(version=1.0, data=None, error=error)
    assert list(json.loads(other.json_text())) == ["version", "data", "error"]
    assert json.loads(encode(other, "2013")) == json.loads(other.json_text())
    assert COMPONENTS["AccountError"]["required"] == ["version", "data", "error"]
    with pytest.raises(ValidationError):
        AccountError(version=1.0, status=1, data=None, error=error)


def test_the_models_refuse_what_the_schema_refuses() -> None:
    with pytest.raises(ValidationError):
        AccountLogin(version=1.0, status=3, token=TOKEN)
    with pytest.raises(ValidationError):
        AccountSignup(version=1.0, status=0, token="short")
    with pytest.raises(ValidationError):
        AccountPicture(version=1.0, status=0, url="/uploads/../secret.png")
    with pytest.raises(ValidationError):
        AccountDone(version=1.0, status=1)
    with pytest.raises(ValidationError):
        Version2013(version=2)
    with pytest.raises(ValidationError):
        AccountData.model_validate({**EXAMPLES["AccountSync"]["data"], "jwcid": "12ab"})
    with pytest.raises(ValidationError):
        AccountDone.model_validate({"version": 1.0, "status": 0, "password": "x"})
