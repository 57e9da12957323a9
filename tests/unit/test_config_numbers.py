"""Settings whose words are numbers ("2013") accept them as YAML writes them bare (a number)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import settings as settings_module
from schoolsim.profiles import SettingError, profile, with_overrides
from settings import ConfigError, load_settings


def load_yaml(tmp_path: Path, text: str) -> settings_module.Settings:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, env={})


def test_legacy_body_written_bare_as_readme_shows(tmp_path: Path) -> None:
    assert load_yaml(tmp_path, "api:\n  legacy_body: 2013\n").api.legacy_body == "2013"
    assert load_yaml(tmp_path, "api:\n  legacy_body: '2013'\n").api.legacy_body == "2013"
    assert load_yaml(tmp_path, "api:\n  legacy_body: compact\n").api.legacy_body == "compact"


@pytest.mark.parametrize("value", ["2014", "true", "2013.0", "[2013]"])
def test_other_values_of_legacy_body_are_refused_naming_the_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.legacy_body"):
        load_yaml(tmp_path, f"api:\n  legacy_body: {value}\n")


def numeric_word_fields() -> list[tuple[type[BaseModel], str, str]]:
    """(model, field, word) for every Literal string setting whose word is a number."""
    found: list[tuple[type[BaseModel], str, str]] = []
    seen: set[type[BaseModel]] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            for kind in walk(field.annotation):
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    visit(kind)
                elif typing.get_origin(kind) is typing.Literal:
                    found.extend(
                        (model, name, word)
                        for word in typing.get_args(kind)
                        if isinstance(word, str) and word.isdigit()
                    )

    def walk(kind: object) -> list[object]:
        args = typing.get_args(kind)
        if typing.get_origin(kind) is typing.Literal or not args:
            return [kind]
        return [kind, *(k for arg in args for k in walk(arg))]

    visit(settings_module.Settings)
    return found


def test_every_numeric_word_setting_takes_the_number() -> None:
    fields = numeric_word_fields()
    assert (settings_module.ApiSettings, "legacy_body", "2013") in fields
    for model, name, word in fields:
        errors: list[object] = []
        try:
            value = getattr(model.model_validate({name: int(word)}), name)
        except ValidationError as exc:  # another field of the model is required
            errors = [err["loc"] for err in exc.errors() if err["loc"][:1] == (name,)]
        else:
            assert value == word, (model, name)
        assert errors == [], (model, name)


def test_simulator_markup_sent_as_a_json_number() -> None:
    fast = profile("fast")
    assert with_overrides(fast, {"markup": 2013}).markup == "2013"
    assert with_overrides(fast, {"markup": "platform"}).markup == "platform"
    for wrong in (2014, True, 2013.0):
        with pytest.raises(SettingError, match="markup"):
            with_overrides(fast, {"markup": wrong})
