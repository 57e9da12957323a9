"""The answer models of session tokens, watches and WeChat bindings: the published examples
are answers they accept, they write them back unchanged, and they refuse what the schema
refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from api.answers import ANSWERS
from api.answers.sessions import (
    MODELS,
    BoundSystems,
    NewSession,
    NewWatch,
    Revoked,
    SessionFeed,
    Sessions,
    SessionToken,
    Watch,
    Watches,
    WeChatBinding,
    WeChatBound,
)
from api.schemas import COMPONENTS, EXAMPLES

EXAMPLED: list[type[BaseModel]] = [NewSession, Sessions, Revoked, NewWatch, Watches]
MADE = datetime(2026, 11, 27, 0, 12, 3, tzinfo=UTC)


@pytest.mark.parametrize("model", EXAMPLED, ids=lambda m: m.__name__)
def test_each_example_validates_and_is_written_back_unchanged(model: type[BaseModel]) -> None:
    example = EXAMPLES[model.__name__]
    answer = model.model_validate(example)
    assert json.loads(answer.model_dump_json()) == example


def test_the_nested_examples_validate_with_their_own_models() -> None:
    for token in EXAMPLES["Sessions"]["tokens"]:
        assert SessionToken.model_validate(token).current is True
    for watch in EXAMPLES["Watches"]["watches"]:
        assert Watch.model_validate(watch).messages[0].attempts == 1


def test_the_models_are_registered_with_the_optional_properties_absent() -> None:
    for model in MODELS:
        assert model in ANSWERS
    for name in ("SessionToken", "NewSession"):
        assert "feed" not in COMPONENTS[name]["required"]
        assert COMPONENTS[name]["properties"]["feed"] == {
            "$ref": "#/components/schemas/SessionFeed"
        }
    assert COMPONENTS["NewWatch"]["required"] == ["student_id", "watch"]
    assert COMPONENTS["NewWatch"]["properties"]["secret"]["type"] == "string"
    assert list(COMPONENTS["NewSession"]["properties"])[:3] == ["token", "student_id", "id"]


def test_a_session_token_writes_its_feed_only_when_it_has_one() -> None:
    fields = {
        "id": 7,
        "kind": "session",
        "system": "card",
        "label": "my phone",
        "client": None,
        "created_at": MADE,
        "last_used_at": MADE,
        "current": False,
    }
    plain = json.loads(SessionToken(**fields).json_text())
    assert "feed" not in plain
    assert plain["created_at"] == "2026-11-27T08:12:03+08:00"
    feed = SessionFeed(feed="exams", year=2026, term=1)
    made = SessionToken(**{**fields, "kind": "feed", "system": "academic", "feed": feed})
    assert json.loads(made.json_text())["feed"] == {"feed": "exams", "year": 2026, "term": 1}


def test_the_models_refuse_what_the_schema_refuses() -> None:
    with pytest.raises(ValidationError):
        NewSession.model_validate({**EXAMPLES["NewSession"], "token": "too-short"})
    with pytest.raises(ValidationError):
        SessionFeed(feed="all", year=2026, term=3)
    with pytest.raises(ValidationError):
        Watch.model_validate({**EXAMPLES["NewWatch"]["watch"], "channel": "sms"})
    with pytest.raises(ValidationError):
        WeChatBinding(id=0, account="jnufm", created_at=MADE)
    with pytest.raises(ValidationError):
        WeChatBound(
            student_id="2012-05", bound=BoundSystems(card=True, academic=False), account="x"
        )
    with pytest.raises(ValidationError):
        Revoked.model_validate({**EXAMPLES["Revoked"], "system": "library"})
