"""jnufm: one binary that serves the campus API.

    python server.py [serve] [--config PATH] [--port N] [--processes N]
    python server.py migrate [--config PATH]
    python server.py check-config [--config PATH]
    python server.py systemd-unit [--config PATH] [--install [--unit-dir DIR]]
    python server.py clients add|list|revoke ... [--config PATH]
    python server.py prefetch timetable [--config PATH]
    python server.py pages list|show ... [--config PATH]
    python server.py --version

`serve` validates the config, migrates the database, starts the bundled
school simulator if enabled, binds the socket and forks one worker per core.
`systemd-unit` prints deploy/jnufm.service filled in for this installation
(this interpreter, this directory, this config file), or installs it.
`clients` registers the gateways and apps that speak for many students
(runtime/admin.py). `prefetch timetable` fetches, in quiet hours, the timetable of
every student with an academic office token (runtime/prefetch.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from observability.logs import configure_logging
from settings import ConfigError, Settings, load_settings
from version import describe

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "config.yaml"

log = logging.getLogger("jnufm")


# The commands run by other modules (runtime/admin.py, runtime/prefetch.py,
# runtime/pages.py), which parse the rest of the line themselves.
OPERATOR_COMMANDS = {
    "clients": "register, list and revoke the clients that speak for many students",
    "prefetch": "fetch, in quiet hours, the timetable of every student with a token",
    "pages": "read the school pages the clients could not read (kept, redacted)",
}
COMMANDS = ("serve", "migrate", "check-config", "systemd-unit", *OPERATOR_COMMANDS)
# Options that take a value: the word after one is never the command.
_VALUED = frozenset({"--config", "--port", "--processes", "--unit-dir"})


class PrintVersion(argparse.Action):
    """--version: the version (and the git commit where known), found only when asked."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(describe())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The command line of server.py, with a help line for every command and option."""
    parser = argparse.ArgumentParser(
        prog="server.py",
        description="jnufm: the campus API server. Without a command: serve.",
        epilog="`server.py COMMAND --help` tells more about one command.",
    )
    parser.add_argument("--version", action=PrintVersion, help="print the version and exit")
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help="the config file (default: $JNUFM_CONFIG, else config.yaml beside server.py)",
    )
    listen = argparse.ArgumentParser(add_help=False)
    listen.add_argument(
        "--port", type=int, default=None, metavar="N", help="listen on this port (listen.port)"
    )
    listen.add_argument(
        "--processes",
        type=int,
        default=None,
        metavar="N",
        help="workers (processes): 0 = one per core, 1 = no fork",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")

    def command(
        name: str, summary: str, description: str, parents: list[argparse.ArgumentParser]
    ) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=description, parents=parents)

    command(
        "serve",
        "serve the API (the default command)",
        "Validate the config, migrate the database, start the bundled school simulator if "
        "simulator.enabled, bind the socket and fork the workers (processes). Stops on "
        "SIGTERM or SIGINT, reloads the config on SIGHUP.",
        [config, listen],
    )
    command(
        "migrate",
        "apply the database migrations, print the revision",
        "Reach the database of database.url and apply every migration not yet applied.",
        [config, listen],
    )
    command(
        "check-config",
        "validate the config and exit",
        "Read and validate the config (and the WeChat accounts' secrets it names); print "
        "`config ok`, or one line naming the bad key and exit 2.",
        [config, listen],
    )
    unit = command(
        "systemd-unit",
        "print (or install) the systemd unit for this installation",
        "Print deploy/jnufm.service filled in for this installation (this interpreter, this "
        "directory, this config file), or install it.",
        [config],
    )
    unit.add_argument(
        "--install", action="store_true", help="install the unit instead of printing it"
    )
    unit.add_argument(
        "--unit-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --install: where to install it (default: /etc/systemd/system)",
    )
    for name, summary in OPERATOR_COMMANDS.items():
        # Parsed by its own module (operator_command); listed here for --help.
        command(name, summary, summary, []).add_argument(
            "args", nargs=argparse.REMAINDER, help=f"see `server.py {name} --help`"
        )
    return parser


def with_command_first(argv: list[str]) -> list[str]:
    """argv with its command first, `serve` where none is named (`server.py --port 8001`,
    `server.py --config X migrate` as before)."""
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word in COMMANDS:
            return [word, *argv[:i], *argv[i + 1 :]]
        elif word in _VALUED:
            skip = True
    if any(word in ("-h", "--help", "--version") for word in argv):
        return argv
    return ["serve", *argv]


def parse_args(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(with_command_first(argv))


def config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    env_path = os.environ.get("JNUFM_CONFIG")
    return Path(env_path) if env_path else DEFAULT_CONFIG


def load(args: argparse.Namespace) -> Settings:
    path = config_path(args)
    overrides: dict[str, Any] = {}
    if getattr(args, "port", None) is not None:
        overrides["listen.port"] = args.port
    if getattr(args, "processes", None) is not None:
        overrides["processes"] = args.processes
    settings = load_settings(path, overrides=overrides)
    check_wechat_accounts(settings)
    return settings


def check_wechat_accounts(settings: Settings) -> None:
    """Read every WeChat account's secrets (and the SMTP password file) now, in the
    master (at start and on reload): a missing or weak token or key is one line here,
    not a worker that dies at its first breath. Raises ConfigError."""
    from channels.wechat.config import WeChatConfigError, load_accounts

    try:
        load_accounts(settings.wechat, os.environ, production=settings.mode == "production")
    except WeChatConfigError as exc:
        raise ConfigError(str(exc)) from None
    smtp = settings.watches.smtp
    if settings.watches.enabled and smtp.host and smtp.password_file:
        try:
            Path(smtp.password_file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"watches.smtp.password_file: cannot read ({exc.strerror})") from None


def prepare_database(settings: Settings) -> str | None:
    """Reach the database and apply migrations, in a child process so that the master
    (and every worker forked from it) never loads Alembic; raises ConfigError naming
    the problem."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: migrate, say how it went, exit (never return)
        os._exit(_migrate_in_child(settings, read_end, write_end))
    os.close(write_end)
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    status, _, text = message.partition(" ")
    if status != "ok":
        raise ConfigError(text or "database: the migration process died")
    return text or None


def _migrate_in_child(settings: Settings, read_end: int, write_end: int) -> int:
    """The migration child's work: its exit code, its outcome written to the pipe."""
    message = "error database: the migration process failed"
    code = 1
    try:
        os.close(read_end)
        # Forked from a running master (on reload): not the master's signals.
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        message = "ok " + (migrate_here(settings) or "")
        code = 0
    except ConfigError as exc:
        message = "error " + str(exc)
    except BaseException as exc:  # reported to the parent, which raises
        message = f"error database: {type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(OSError), os.fdopen(write_end, "w", encoding="utf-8") as pipe:
            pipe.write(message)
    return code


def migrate_here(settings: Settings) -> str | None:
    """Reach the database and apply migrations in this process."""
    from sqlalchemy.exc import SQLAlchemyError

    from db.engine import make_engine, safe_url
    from db.migrate import MigrationLockTimeout, migrate

    async def run() -> str | None:
        engine = make_engine(settings.database)
        try:
            return await migrate(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (SQLAlchemyError, OSError, MigrationLockTimeout) as exc:
        reason = getattr(exc, "orig", None) or exc
        first_line = (
            str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        )
        raise ConfigError(
            f"database: cannot use {safe_url(settings.database.url)}: {first_line}"
        ) from None


def serve(settings: Settings, args: argparse.Namespace) -> int:
    # Before anything imports prometheus_client: it picks its storage at import time.
    from observability.metrics import prepare_multiproc_dir

    metrics_dir = prepare_multiproc_dir(settings.metrics.multiproc_dir or None)
    try:
        return _serve(settings, args)
    finally:
        if not settings.metrics.multiproc_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from runtime.master import Master
    from runtime.simulator import SimulatorError, SimulatorProcess
    from runtime.systemd import Notifier
    from runtime.worker import loop_factory
    from runtime.worker import serve as serve_in_process

    # Taken out of the environment before any child process can inherit it.
    notifier = Notifier()
    revision = prepare_database(settings)
    log.info("database ready at revision %s", revision)

    def reload_settings(old: Settings) -> Settings:
        """The config file re-read and checked, migrations applied if the database moved."""
        new = load(args)
        if new.database.url != old.database.url:
            prepare_database(new)
        return new

    simulator = SimulatorProcess(settings.simulator) if settings.simulator.enabled else None
    master = Master(settings, reload_settings, notifier)
    try:
        master.bind()
    except OSError as exc:
        raise ConfigError(
            f"listen: cannot bind {settings.listen.host}:{settings.listen.port}: {exc.strerror}"
        ) from None
    try:
        if simulator is not None:
            simulator.start()
    except SimulatorError as exc:
        raise ConfigError(str(exc)) from None
    host, port = master.address
    base = f"http://{host}:{port}"
    print(f"jnufm listening on {base} ({settings.worker_count()} worker(s))", flush=True)
    log.info("%s serving on %s", describe(), base)
    print(f"try: curl '{base}/card/rest?stuid=2012052690&password=052690'", flush=True)
    try:
        if settings.worker_count() == 1 and master.sockets is not None:
            # No fork: no supervision, heartbeat or reload (development and debugging).
            with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
                runner.run(
                    serve_in_process(
                        settings,
                        master.sockets,
                        0,
                        on_ready=notifier.ready,
                        host_tables=master.host_tables,
                    )
                )
            notifier.stopping()
            return 0
        return master.run(simulator)
    finally:
        if simulator is not None:
            simulator.stop()


def systemd_unit(args: argparse.Namespace) -> int:
    from runtime.systemd import DEFAULT_UNIT_DIR, install_unit, render_unit

    text = render_unit(config_path(args))
    if not args.install:
        print(text, end="")
        return 0
    try:
        path = install_unit(text, args.unit_dir or DEFAULT_UNIT_DIR)
    except OSError as exc:
        print(f"jnufm: cannot install the unit: {exc}", file=sys.stderr)
        return 1
    print(f"installed {path}")
    print("next: useradd --system --home-dir /var/lib/jnufm --shell /usr/sbin/nologin jnufm")
    print("      install -d -m 0750 /etc/jnufm && head -c 32 /dev/urandom | base64 \\")
    print("          > /etc/jnufm/secret_key && chmod 0600 /etc/jnufm/secret_key")
    print("      systemctl daemon-reload && systemctl enable --now jnufm")
    return 0


def operator_command(name: str, argv: list[str]) -> int:
    """`clients ...`, `pages ...` or `prefetch ...`, with `--config PATH` anywhere among
    its arguments."""
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, default=None)
    known, rest = config.parse_known_args(argv)
    if name == "clients":
        from runtime.admin import parser, run
    elif name == "prefetch":
        from runtime.prefetch import parser, run
    else:
        from runtime.pages import parser, run

    # --help and bad usage end here, before the config is read and the database migrated.
    usage = parser()
    usage.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help="the config file (default: $JNUFM_CONFIG, else config.yaml)",
    )
    usage.parse_args(rest)
    settings = load_settings(config_path(known))
    migrate_here(settings)
    return run(settings, rest)


def main(argv: list[str] | None = None) -> int:
    argv = with_command_first(sys.argv[1:] if argv is None else argv)
    if argv[0] in OPERATOR_COMMANDS:
        try:
            return operator_command(argv[0], argv[1:])
        except ConfigError as exc:
            print(f"jnufm: {exc}", file=sys.stderr)
            return 2
    args = parse_args(argv)
    if args.command == "systemd-unit":
        return systemd_unit(args)
    try:
        settings = load(args)
        configure_logging(settings.log, settings.http.log_repeat_interval_s)
        if args.command == "check-config":
            print("config ok")
            return 0
        if args.command == "migrate":
            print(f"database at revision {migrate_here(settings)}")
            return 0
        return serve(settings, args)
    except ConfigError as exc:
        print(f"jnufm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
