"""Command line: `python -m schoolsim --host H --port P --profile fast [--set k=v ...]`."""

import argparse
import asyncio
import contextlib
import signal
import sys

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from schoolsim.app import make_app
from schoolsim.profiles import (
    PROFILE_NAMES,
    SettingError,
    SimSettings,
    parse_assignments,
    profile,
    with_overrides,
)
from schoolsim.state import AppState

# Longest wait for open connections to close on shutdown, so SIGTERM stays prompt.
_SHUTDOWN_GRACE_S = 2.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m schoolsim", description="Simulated 2013 school card center."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8013, help="port (0 = any free port)")
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="fast")
    parser.add_argument("--seed", type=int, default=None, help="dataset seed (default 2013)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one profile setting (repeatable)",
    )
    return parser


def build_settings(name: str, seed: int | None, assignments: list[str]) -> SimSettings:
    """The profile's settings with --seed and then every --set applied."""
    settings = profile(name)
    if seed is not None:
        settings = with_overrides(settings, {"seed": seed})
    return with_overrides(settings, parse_assignments(assignments))


async def serve(host: str, port: int, name: str, settings: SimSettings) -> int:
    """Run until SIGTERM or SIGINT, then close connections and return 0."""
    state = AppState(name, settings)
    server = HTTPServer(make_app(state))
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
    except SettingError as exc:
        print(f"schoolsim: error: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(args.host, args.port, args.profile, settings))


if __name__ == "__main__":
    sys.exit(main())
