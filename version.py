"""jnufm's version: the one in pyproject.toml, read from the checkout (no install needed).

`version()` is what `server.py --version`, `/healthz`, `/openapi.json`'s `info.version`,
the `jnufm_build_info` metric, the page's footer and the WeChat `version` reply show.
`git_commit()` adds the checkout's commit where a `.git` sits beside this file.
"""

from __future__ import annotations

import functools
import importlib.metadata
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
UNKNOWN = "unknown"


@functools.cache
def version() -> str:
    """pyproject.toml's `project.version`; the installed distribution's where there is no
    pyproject.toml beside this file; "unknown" where neither is found."""
    try:
        with (ROOT / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, tomllib.TOMLDecodeError, KeyError):
        pass
    try:
        return importlib.metadata.version("jnufm")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


@functools.cache
def git_commit() -> str | None:
    """The checkout's commit (12 hex digits), or None where there is no .git or no git."""
    if not (ROOT / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit if head.returncode == 0 and commit else None


def describe() -> str:
    """`jnufm 0.1.0 (commit 0123456789ab)`, or without the commit where none is known."""
    commit = git_commit()
    return f"jnufm {version()}" + (f" (commit {commit})" if commit else "")
