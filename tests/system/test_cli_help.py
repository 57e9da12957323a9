"""Each command line's --help, run as a process: every command and option explained,
every benchmark workload and every simulated system listed; --version."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import server
import version
from bench.run import MEASURES, workloads
from runtime import admin, pages, prefetch
from schoolsim.systems import MOUNTED

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, cwd: Path = ROOT) -> str:
    """A command's stdout; it must exit 0 with nothing on stderr."""
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """A parser and every subcommand's parser under it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += parsers(sub)
    return found


def test_server_help_lists_every_command_with_its_help_line() -> None:
    out = " ".join(run("server.py", "--help").split())
    subcommands = next(
        a for a in server.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    summaries = {a.dest: a.help for a in subcommands._choices_actions}
    assert set(summaries) == set(server.COMMANDS)
    for command, summary in summaries.items():
        assert f"{command} {summary}" in out
    assert "--version" in out


@pytest.mark.parametrize("command", server.COMMANDS)
def test_each_server_command_has_its_help(command: str, tmp_path: Path) -> None:
    # A config that does not exist: --help reads none and touches no database.
    out = run("server.py", command, "--help", "--config", str(tmp_path / "absent.yaml"))
    assert out.startswith(f"usage: server.py {command}")
    assert "--config PATH" in out
    assert not (tmp_path / "absent.yaml").exists()


@pytest.mark.parametrize(
    "parser",
    [server.build_parser(), admin.parser(), pages.parser(), prefetch.parser()],
    ids=["server", "clients", "pages", "prefetch"],
)
def test_every_option_and_argument_has_a_help_line(parser: argparse.ArgumentParser) -> None:
    for one in parsers(parser):
        for action in one._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(a.help for a in action._choices_actions), one.prog
            else:
                assert action.help, f"{one.prog} {action.option_strings or action.dest}"


def test_version_prints_pyproject_s_and_the_commit_where_there_is_git() -> None:
    out = run("server.py", "--version")
    assert out.startswith(f"jnufm {version.version()}")
    if (ROOT / ".git").exists() and shutil.which("git"):
        assert "(commit " in out


def test_version_without_git(tmp_path: Path) -> None:
    """A copy of the code with no .git beside it (an unpacked release) still answers."""
    shutil.copy(ROOT / "version.py", tmp_path)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    out = run("-c", "import version; print(version.describe())", cwd=tmp_path)
    assert out == f"jnufm {version.version()}\n"


def test_bench_help_lists_every_workload_with_what_it_measures_and_its_time() -> None:
    out = run("-m", "bench", "--help")
    for command in ("run", "calibrate", "report", "profile", "drills", "balance", "storage"):
        assert f"python -m bench {command}" in out
    lines = out.splitlines()
    for w in workloads(False):
        assert w.key in MEASURES, f"MEASURES has no line for {w.key}"
        at = next(i for i, line in enumerate(lines) if line.split()[:1] == [w.key])
        assert MEASURES[w.key] in lines[at]
        assert f"up to {w.seconds:g} s" in lines[at + 1]
    assert "< 20 min" in out and "< 4 min" in out


def test_schoolsim_help_describes_every_system() -> None:
    out = run("-m", "schoolsim", "--help")
    for words in (
        "card center",
        "academic office",
        "main library catalogue",
        "Zhuhai campus library catalogue",
        "cover service",
        "official-account API",
        "fast",
        "jnu-2013",
    ):
        assert words in out
    for name in MOUNTED:
        assert any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip()), name
