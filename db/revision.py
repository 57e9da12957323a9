"""The newest schema revision, read from the migration files without importing Alembic.

Workers compare it with the database's (`/readyz`); Alembic itself (about 11 MB
of modules) is only loaded where migrations run, so no worker carries it.
"""

from __future__ import annotations

import re
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]+)?=\s*(.+?)\s*$", re.M)


def _value(text: str) -> str | None:
    text = text.strip()
    if text == "None":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    raise ValueError(f"not a plain revision: {text}")


def revisions(versions: Path = MIGRATIONS_DIR / "versions") -> dict[str, str | None]:
    """Every migration's revision and the one it follows."""
    found: dict[str, str | None] = {}
    for path in sorted(versions.glob("*.py")):
        fields = dict(_ASSIGNMENT.findall(path.read_text(encoding="utf-8")))
        if "revision" not in fields:
            continue
        revision = _value(fields["revision"])
        if revision is None:
            raise ValueError(f"{path.name}: revision is None")
        found[revision] = _value(fields.get("down_revision", "None"))
    return found


def head_revision(versions: Path = MIGRATIONS_DIR / "versions") -> str | None:
    """The one revision no other follows (None without migrations); ValueError if the
    history branches."""
    graph = revisions(versions)
    heads = set(graph) - {down for down in graph.values() if down is not None}
    if len(heads) > 1:
        raise ValueError(f"the migrations have several heads: {sorted(heads)}")
    return next(iter(heads), None)
