"""The lock files: every package pinned with hashes, the locks agreeing with each other
and with the hand-edited requirements they are compiled from (README, "Dependencies")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def name(text: str) -> str:
    return re.sub(r"[-_.]+", "-", text).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            found[name(match[1])] = match[2]
    return found


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """name -> (version, number of hashes) of every package of a lock file."""
    found: dict[str, tuple[str, int]] = {}
    current = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line)
        if match:
            current = name(match[1])
            found[current] = (match[2], 0)
        elif line.strip().startswith("--hash=sha256:") and current:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        elif not line.startswith(" "):
            current = ""
    return found


LOCKS = {
    "requirements.lock": ["requirements.txt"],
    "requirements-dev.lock": ["requirements.txt", "requirements-dev.txt"],
    "bench/requirements.lock": [
        "requirements.txt",
        "requirements-dev.txt",
        "bench/requirements.txt",
    ],
}


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_has_hashes_and_every_input_pin_is_kept(lock: str) -> None:
    packages = locked(ROOT / lock)
    assert len(packages) > 30
    assert [p for p, (_, hashes) in packages.items() if hashes == 0] == []
    for source in LOCKS[lock]:
        for package, version in pins(ROOT / source).items():
            assert packages.get(package, ("missing", 0))[0] == version, (lock, source, package)


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        ("requirements.lock", "requirements-dev.lock"),
        ("requirements-dev.lock", "bench/requirements.lock"),
    ],
)
def test_the_locks_agree_where_they_overlap(smaller: str, larger: str) -> None:
    """Installed one over the other (.ci/run: the bench lock, then scripts/check's),
    no package changes version."""
    small, large = locked(ROOT / smaller), locked(ROOT / larger)
    assert {p: v for p, (v, _) in small.items()} == {p: large[p][0] for p in small if p in large}
    assert set(small) <= set(large)


def test_the_scripts_install_from_the_locks_with_hashes() -> None:
    run = (ROOT / "scripts/run").read_text(encoding="utf-8")
    check = (ROOT / "scripts/check").read_text(encoding="utf-8")
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert re.search(r"--require-hashes \\\n\s+-r requirements\.lock", run)
    assert re.search(r"--require-hashes \\\n\s+-r requirements-dev\.lock", check)
    assert re.search(r"--require-hashes \\\n\s+-r bench/requirements\.lock", ci)
    assert "pip-tools" in pins(ROOT / "requirements-dev.txt")
