"""`python server.py clients ...`: register, list and revoke the clients that speak for many
students (a WeChat server, an app's backend, a campus NAT).

    clients add NAME [--address CIDR ...] [--no-key] [--requests-per-s N] [--burst N]
                     [--school-requests-per-s N] [--school-burst N] [--failures-max N]
    clients list
    clients revoke NAME

`add` prints the client's API key once (only its SHA-256 is stored): the
client sends it as `X-Api-Key`. A client that cannot send a header (the 2013
WeChat bot) is registered by `--address` instead (or as well), with `--no-key`.
Adding a name that was revoked registers it again with a new key. Workers see
a change within `clients.refresh_s`.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db import tokens as q
from db.engine import make_engine, make_sessionmaker
from db.models import Client
from services.callers import check_name, key_hash, new_key, parse_networks
from settings import ConfigError, Settings


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="server.py clients", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    sub = p.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="register a client and print its key once")
    add.add_argument("name", help="the client's name: 1-64 of A-Z a-z 0-9 . _ -")
    add.add_argument(
        "--address",
        action="append",
        default=[],
        help="an address or CIDR network it speaks from (repeatable)",
    )
    add.add_argument("--no-key", action="store_true", help="known by its address only")
    for flag, kind in (
        ("--requests-per-s", float),
        ("--burst", float),
        ("--school-requests-per-s", float),
        ("--school-burst", float),
        ("--failures-max", int),
    ):
        add.add_argument(flag, type=kind, default=None, help="default: clients.* in config.yaml")
    sub.add_parser("list", help="the registered clients")
    revoke = sub.add_parser("revoke", help="revoke a client: its key and addresses stop working")
    revoke.add_argument("name", help="the name it was added with")
    return p


def run(settings: Settings, argv: list[str]) -> int:
    """Run one `clients` command; its exit code. Raises ConfigError for bad input."""
    args = parser().parse_args(argv)
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database)
    try:
        sessions = make_sessionmaker(engine)
        async with sessions.begin() as db:
            if args.action == "add":
                print(await add(db, args))
            elif args.action == "list":
                print(await listing(db, settings))
            else:
                print(await revoke(db, args.name))
    finally:
        await engine.dispose()
    return 0


async def add(db: AsyncSession, args: argparse.Namespace) -> str:
    try:
        name = check_name(args.name)
        addresses = " ".join(args.address)
        networks = parse_networks(addresses)
    except ValueError as exc:
        raise ConfigError(f"clients add: {exc}") from None
    if args.no_key and not networks:
        raise ConfigError("clients add: --no-key needs at least one --address")
    for flag in (
        "requests_per_s",
        "burst",
        "school_requests_per_s",
        "school_burst",
        "failures_max",
    ):
        value = getattr(args, flag)
        if value is not None and (value < 0 or (value == 0 and flag != "school_requests_per_s")):
            raise ConfigError(f"clients add: --{flag.replace('_', '-')} must be positive")
    key = None if args.no_key else new_key()
    now = datetime.now(UTC)
    row = await q.client_named(db, name)
    if row is not None and row.revoked_at is None:
        raise ConfigError(f"clients add: {name!r} is registered already (revoke it first)")
    if row is None:
        row = Client(name=name, created_at=now)
        db.add(row)
    row.key_hash = None if key is None else key_hash(key)
    row.addresses = " ".join(str(n) for n in networks)
    row.requests_per_s = args.requests_per_s
    row.burst = args.burst
    row.school_requests_per_s = args.school_requests_per_s
    row.school_burst = args.school_burst
    row.failures_max = args.failures_max
    row.created_at = now
    row.revoked_at = None
    await db.flush()
    lines = [f"registered {name}" + (f" for {row.addresses}" if row.addresses else "")]
    if key is not None:
        lines.append(f"key: {key}")
        lines.append("(shown once: send it as the X-Api-Key header; only its hash is kept)")
    return "\n".join(lines)


async def listing(db: AsyncSession, settings: Settings) -> str:
    d = settings.clients
    rows = await q.all_clients(db)
    if not rows:
        return "no registered clients"
    out = ["name\tkey\taddresses\trequests/s\tschool/s\tfailures_max\tregistered\trevoked"]
    for r in rows:
        school = (
            d.school_requests_per_s if r.school_requests_per_s is None else r.school_requests_per_s
        )
        out.append(
            "\t".join(
                [
                    r.name,
                    "yes" if r.key_hash else "no",
                    r.addresses or "-",
                    f"{r.requests_per_s or d.requests_per_s:g}",
                    f"{school:g}" if school else "fair share",
                    str(r.failures_max or d.failures_max),
                    r.created_at.isoformat(timespec="seconds"),
                    r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else "-",
                ]
            )
        )
    return "\n".join(out)


async def revoke(db: AsyncSession, name: str) -> str:
    row = await q.client_named(db, name)
    if row is None or row.revoked_at is not None:
        raise ConfigError(f"clients revoke: no registered client named {name!r}")
    row.revoked_at = datetime.now(UTC)
    row.key_hash = None
    row.addresses = ""
    return f"revoked {name} (its key and addresses stop working within clients.refresh_s)"
