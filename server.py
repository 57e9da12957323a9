"""jnufm: one binary that serves the campus API.

    python server.py [serve] [--config PATH] [--port N] [--processes N]
    python server.py migrate [--config PATH]
    python server.py check-config [--config PATH]
    python server.py systemd-unit [--config PATH] [--install [--unit-dir DIR]]
    python server.py clients add|list|revoke ... [--config PATH]
    python server.py prefetch timetable [--config PATH]

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

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "config.yaml"

log = logging.getLogger("jnufm")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="server.py", description="jnufm campus API server")
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=["serve", "migrate", "check-config", "systemd-unit"],
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="config file (default: config.yaml)"
    )
    parser.add_argument("--port", type=int, default=None, help="listen on this port")
    parser.add_argument(
        "--processes", type=int, default=None, help="workers; 0 = one per core, 1 = no fork"
    )
    parser.add_argument(
        "--install", action="store_true", help="systemd-unit: install the unit instead of printing"
    )
    parser.add_argument(
        "--unit-dir",
        type=Path,
        default=None,
        help="systemd-unit --install: where to (default: /etc/systemd/system)",
    )
    return parser.parse_args(argv)


def config_path(args: argparse.Namespace) -> Path:
    if args.config is not None:
        return Path(args.config)
    env_path = os.environ.get("JNUFM_CONFIG")
    return Path(env_path) if env_path else DEFAULT_CONFIG


def load(args: argparse.Namespace) -> Settings:
    path = config_path(args)
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["listen.port"] = args.port
    if args.processes is not None:
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
        from runtime.admin import run
    elif name == "prefetch":
        from runtime.prefetch import run
    else:
        from runtime.pages import run

    settings = load_settings(config_path(known))
    migrate_here(settings)
    return run(settings, rest)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["clients"], ["pages"], ["prefetch"]):
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
