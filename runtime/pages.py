"""`python server.py pages ...`: read the school pages the clients could not read, as
kept (redacted) by services/captures.py.

    pages list [--system NAME] [--limit N]
    pages show ID

`list` shows the newest first: id, system, page kind, when first and last seen,
how often, the request that got it and why it could not be read. `show` prints
one kept page: the request, the trail of requests before it, then the redacted
page itself (its markup as received; digits zeroed, names and tokens masked,
field values dropped).
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from db.engine import make_engine, make_sessionmaker
from services.captures import PageCaptures
from settings import ConfigError, Settings
from systems import SYSTEMS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="server.py pages", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    sub = p.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="the kept pages, newest first")
    listing.add_argument(
        "--system", choices=[s.name for s in SYSTEMS], default=None, help="one system only"
    )
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    show = sub.add_parser("show", help="one kept page, redacted, with the request that got it")
    show.add_argument("id", type=int, help="the page's id (from `pages list`)")
    return p


def run(settings: Settings, argv: list[str]) -> int:
    """Run one `pages` command; its exit code. Raises ConfigError for bad input."""
    args = parser().parse_args(argv)
    if args.action == "list" and not 1 <= args.limit <= 1000:
        raise ConfigError("pages list: --limit must be 1..1000")
    return asyncio.run(_run(settings, args))


def _when(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds")


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    engine = make_engine(settings.database)
    try:
        captures = PageCaptures(
            make_sessionmaker(engine), settings.captures, lambda: datetime.now(UTC)
        )
        if args.action == "list":
            rows = await captures.latest(args.limit, args.system)
            if not rows:
                print("no unreadable pages kept")
                return 0
            print("id\tsystem\tpage\tfirst seen\tlast seen\tseen\trequest\treason")
            for r in rows:
                print(
                    "\t".join(
                        [
                            str(r.id),
                            r.system,
                            r.kind,
                            _when(r.first_seen_at),
                            _when(r.last_seen_at),
                            str(r.seen),
                            f"{r.method} {r.url}",
                            r.reason,
                        ]
                    )
                )
            return 0
        row = await captures.one(args.id)
        if row is None:
            raise ConfigError(f"pages show: no kept page with id {args.id}")
        print(f"id: {row.id}")
        print(f"system: {row.system}  page: {row.kind}")
        print(f"first seen: {_when(row.first_seen_at)}  last seen: {_when(row.last_seen_at)}")
        print(f"seen: {row.seen}")
        print(f"reason: {row.reason}")
        print(f"request: {row.method} {row.url}")
        print(f"fields posted: {row.form_names or '-'}")
        print(f"answer: HTTP {row.status}, {row.content_type or '-'}, {row.size} bytes")
        print("requests of the fetch:")
        for line in row.trail.splitlines():
            print(f"  {line}")
        cut = " (cut at captures.max_chars)" if row.cut else ""
        print(f"--- the page, redacted{cut} ---")
        print(row.page)
        return 0
    finally:
        await engine.dispose()
