"""jnufm: one binary that serves the campus API.

    python server.py [serve] [--config PATH] [--port N] [--processes N]
    python server.py migrate [--config PATH]
    python server.py check-config [--config PATH]

`serve` validates the config, migrates the database, starts the bundled
school simulator if enabled, binds the socket and forks one worker per core.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "config.yaml"

log = logging.getLogger("jnufm")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="server.py", description="jnufm campus API server")
    parser.add_argument(
        "command", nargs="?", default="serve", choices=["serve", "migrate", "check-config"]
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="config file (default: config.yaml)"
    )
    parser.add_argument("--port", type=int, default=None, help="listen on this port")
    parser.add_argument(
        "--processes", type=int, default=None, help="workers; 0 = one per core, 1 = no fork"
    )
    return parser.parse_args(argv)


def setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log.level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        force=True,
    )
    # The HTTP client logs every request URL at INFO; the school's URLs are ours to log.
    for noisy in ("httpx", "httpcore", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load(args: argparse.Namespace) -> Settings:
    import os

    path = args.config
    if path is None:
        env_path = os.environ.get("JNUFM_CONFIG")
        path = Path(env_path) if env_path else DEFAULT_CONFIG
    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["listen.port"] = args.port
    if args.processes is not None:
        overrides["processes"] = args.processes
    return load_settings(path, overrides=overrides)


def prepare_database(settings: Settings) -> str | None:
    """Reach the database and apply migrations; raises ConfigError naming the problem."""
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


def serve(settings: Settings) -> int:
    from runtime.master import Master
    from runtime.simulator import SimulatorError, SimulatorProcess
    from runtime.worker import loop_factory
    from runtime.worker import serve as serve_in_process

    revision = prepare_database(settings)
    log.info("database ready at revision %s", revision)
    simulator = SimulatorProcess(settings.simulator) if settings.simulator.enabled else None
    master = Master(settings)
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
            with asyncio.Runner(loop_factory=loop_factory(settings)) as runner:
                runner.run(serve_in_process(settings, master.sockets, 0))
            return 0
        return master.run(simulator)
    finally:
        if simulator is not None:
            simulator.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load(args)
        setup_logging(settings)
        if args.command == "check-config":
            print("config ok")
            return 0
        if args.command == "migrate":
            print(f"database at revision {prepare_database(settings)}")
            return 0
        return serve(settings)
    except ConfigError as exc:
        print(f"jnufm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
