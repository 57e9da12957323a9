"""Command line: `python -m schoolsim --host H --port P --profile fast [--set k=v ...]`.

One process, one port: the card center at `/`, and each other system of
`schoolsim.systems.MOUNTED` under its own prefix with its own overload layer.
`--set key=value` changes a card center setting, `--set <system>.key=value` one
of another system (every system starts from the same profile).
"""

import argparse
import asyncio
import contextlib
import importlib
import signal
import sys
import textwrap

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from schoolsim.card.app import make_app
from schoolsim.card.state import AppState
from schoolsim.overload import Mount
from schoolsim.profiles import (
    PROFILE_NAMES,
    SettingError,
    SimSettings,
    parse_assignments,
    profile,
    with_overrides,
)
from schoolsim.systems import MOUNTED, mounted_profile

# Longest wait for open connections to close on shutdown, so SIGTERM stays prompt.
_SHUTDOWN_GRACE_S = 2.0


# What each system is, where its module's docstring does not say it in a line.
_WHAT = {
    "academic": "academic office (ASP.NET pages): login with a captcha, timetable, exams, "
    "grades, profile",
}


def _systems_help() -> str:
    """Every system served: its prefix, its name for --set, what it simulates."""
    lines = [
        "systems served (prefix, name for --set SYSTEM.KEY=VALUE, what it simulates):",
        "  /            (KEY alone) card center: login with a captcha and a shuffled keypad, "
        "balance, transactions, account page",
    ]
    for name, module_name in MOUNTED.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or "").strip().splitlines()[0].rstrip(".")
        what = _WHAT.get(name) or doc.removeprefix("The simulated ")
        lines.append(f"  {module.PREFIX:<12} {name:<11} {what}")
    lines.append("")
    for paragraph in (
        "Each system has its own overload layer (capacity, queue, latency, failures) and "
        "its side endpoints (counters, settings, faults) under /__sim/<name>/.",
        "profiles: fast (quick answers, for tests and development); jnu-2013 (the 2013 "
        "school's latency, capacity and failures, for the benchmarks).",
    ):
        lines += [*textwrap.wrap(paragraph, width=88), ""]
    return "\n".join(lines).rstrip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m schoolsim",
        description=textwrap.fill(
            "The simulated 2013 school, every system on one port: the card center at /, "
            "the academic office under /jwc/, the library catalogues and covers under "
            "/opac/, /ilas/, /covers/, WeChat's official-account API under /wechat-api/.",
            width=88,
        ),
        epilog=_systems_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8013, help="port (0 = any free port)")
    parser.add_argument(
        "--profile",
        choices=PROFILE_NAMES,
        default="fast",
        help="how the school behaves (below; default fast)",
    )
    parser.add_argument("--seed", type=int, default=None, help="dataset seed (default 2013)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one profile setting (repeatable): KEY for the card center, "
        "SYSTEM.KEY for another system (academic, opac, ilas, covers, wechat)",
    )
    return parser


def build_settings(name: str, seed: int | None, assignments: list[str]) -> SimSettings:
    """The card center's settings: the profile's, with --seed and then every --set
    that names no other system applied."""
    settings = profile(name)
    if seed is not None:
        settings = with_overrides(settings, {"seed": seed})
    mine = {k: v for k, v in parse_assignments(assignments).items() if "." not in k}
    return with_overrides(settings, mine)


def build_mounts(name: str, seed: int | None, assignments: list[str]) -> list[Mount]:
    """Every other system, each with its profile settings and its own --set overrides."""
    overrides = parse_assignments(assignments)
    unknown = {k.partition(".")[0] for k in overrides if "." in k} - set(MOUNTED)
    if unknown:
        raise SettingError(f"no simulated system {', '.join(sorted(unknown))}")
    mounts = []
    for system, module_name in MOUNTED.items():
        settings = mounted_profile(system, name)
        if seed is not None:
            settings = with_overrides(settings, {"seed": seed})
        prefix = system + "."
        mine = {k[len(prefix) :]: v for k, v in overrides.items() if k.startswith(prefix)}
        module = importlib.import_module(module_name)
        mounts.append(module.mount(name, with_overrides(settings, mine)))
    return mounts


async def serve(
    host: str, port: int, name: str, settings: SimSettings, mounts: list[Mount] | None = None
) -> int:
    """Run until SIGTERM or SIGINT, then close connections and return 0."""
    state = AppState(name, settings)
    server = HTTPServer(make_app(state, mounts or []))
    sockets = bind_sockets(port, host)
    server.add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    print(f"schoolsim listening on http://{host}:{bound} (profile {name})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.stop()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(server.close_all_connections(), _SHUTDOWN_GRACE_S)
    print("schoolsim stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve."""
    args = _parser().parse_args(argv)
    try:
        settings = build_settings(args.profile, args.seed, args.overrides)
        mounts = build_mounts(args.profile, args.seed, args.overrides)
    except SettingError as exc:
        print(f"schoolsim: error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(args.host, args.port, args.profile, settings, mounts))


if __name__ == "__main__":
    sys.exit(main())
