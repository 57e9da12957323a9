"""One version, pyproject.toml's, everywhere it is shown."""

from __future__ import annotations

import tomllib
from pathlib import Path

import version
from api.routes import openapi

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_pyproject_s() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        wanted = tomllib.load(file)["project"]["version"]
    assert version.version() == wanted
    assert version.describe().startswith(f"jnufm {wanted}")


def test_openapi_info_version_is_the_same() -> None:
    assert openapi()["info"]["version"] == version.version()
