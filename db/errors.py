"""What a database error means for the caller: someone else got there first, or storage failed.

Losing a race for a row shows up as a duplicate key (IntegrityError), on
InnoDB as a deadlock or a lock wait timeout, on SQLite as a busy or locked
database: all mean "try again or let the other one have it". Anything else
(connection refused or lost, disk full, read-only file system) means the
database cannot be used right now. The MySQL driver's failures of any class
arrive here as its own errors, so wrapped by SQLAlchemy (db/driver.py).
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

# MySQL/MariaDB error codes of lost races: lock wait timeout, deadlock.
MYSQL_CONTENTION = frozenset({1205, 1213})
SQLITE_CONTENTION = ("database is locked", "database table is locked", "database is busy")


def is_contention(exc: SQLAlchemyError) -> bool:
    """Whether the error only means another transaction holds what we wanted."""
    if isinstance(exc, IntegrityError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in MYSQL_CONTENTION
    text = str(orig).lower()
    return any(mark in text for mark in SQLITE_CONTENTION)
