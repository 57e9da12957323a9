"""The document a production server serves states nothing of the simulator's passwords:
neither the rule nor an example holding one (a reference renderer pre-fills examples)."""

from __future__ import annotations

import json
from typing import Any

from api.contract import SIMULATOR_NOTE
from api.routes import openapi


def examples_with_passwords(node: Any, where: str = "") -> list[str]:
    found: list[str] = []
    if isinstance(node, list):
        for i, item in enumerate(node):
            found += examples_with_passwords(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        name = node.get("name")
        if isinstance(name, str) and "password" in name and "example" in node:
            found.append(where)
        example = node.get("example")
        if isinstance(example, dict) and any("password" in key for key in example):
            found.append(f"{where}.example")
        for key, value in node.items():
            found += examples_with_passwords(value, f"{where}.{key}")
    return found


def test_development_states_the_simulator_rule_and_gives_examples() -> None:
    doc = openapi()
    assert SIMULATOR_NOTE.strip() in doc["info"]["description"]
    assert examples_with_passwords(doc["paths"])  # the examples work against the simulator


def test_production_states_no_password_rule_and_holds_no_password_example() -> None:
    doc = openapi(production_mode=True)
    text = json.dumps(doc, ensure_ascii=False)
    assert "last 6 digits" not in text
    assert examples_with_passwords(doc) == []
    # Everything else is the same document: every route, every schema.
    assert doc["paths"].keys() == openapi()["paths"].keys()
    assert doc["components"]["schemas"] == openapi()["components"]["schemas"]
    student = doc["paths"]["/v1/card/balance"]["get"]
    assert student["security"] == openapi()["paths"]["/v1/card/balance"]["get"]["security"]
