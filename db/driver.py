"""The MySQL driver as SQLAlchemy sees it, with every failure a database error: the one
place where a driver exception of any class becomes the driver's own error.

SQLAlchemy wraps only the driver's DBAPI exceptions (pymysql's `Error` tree) in its
`DBAPIError`s; anything else passes through it unwrapped. A dying database makes
aiomysql raise others too: on uvloop a write to a connection the server reset
raises `RuntimeError: unable to perform operation on <TCPTransport closed=True>`, a
connection reset while it is being opened raises `RuntimeError: Transport does not
expose socket instance`; other loops and moments give `ConnectionResetError` and
kin. Unwrapped, such an error slips past every `except SQLAlchemyError` (a 500
instead of a 503 or a stale answer) and, raised by the pool's pre-ping, it does not
even get the dead connection replaced.

So every call SQLAlchemy makes into the driver (connect, cursor, execute, commit,
rollback, ping, autocommit) passes `_translate`: a non-DBAPI `Exception` is
raised again as pymysql's `OperationalError` 2013, "Lost connection to MySQL
server", with the original as its cause. SQLAlchemy then treats it as what it is,
a lost connection: wrapped as `sqlalchemy.exc.OperationalError`, the connection
invalidated, a failed pre-ping answered by a new connection. A close that fails
closes the socket and is done. Cancellation (`asyncio.CancelledError`, a
BaseException) is never touched.

Why here and not in SQLAlchemy's `handle_error` event: that event sees failures of
statements, commits and rollbacks, but a non-DBAPI failure while connecting or in
the pool's pre-ping leaves SQLAlchemy unwrapped and unseen by it (tried on 2.1.9:
the `RuntimeError`s above came from exactly those two). The adapters are
SQLAlchemy's own aiomysql adapters with the one change, handed to the engine as its
DBAPI module (`create_async_engine(module=...)`); tests/system/test_database_dies.py holds
them to it against a database killed mid-request.
"""

from __future__ import annotations

from typing import Any, NoReturn

import aiomysql
import pymysql
from sqlalchemy.dialects.mysql.aiomysql import (
    AsyncAdapt_aiomysql_connection,
    AsyncAdapt_aiomysql_dbapi,
)
from sqlalchemy.util.concurrency import await_

# The client error code of a connection lost mid-command (CR_SERVER_LOST): SQLAlchemy's
# MySQL dialect counts it as a disconnect, so the connection is thrown away.
SERVER_LOST = 2013


def lost_connection(error: BaseException) -> pymysql.err.OperationalError:
    """The driver's own error for a failure it raised as another class."""
    return pymysql.err.OperationalError(
        SERVER_LOST, f"Lost connection to MySQL server ({type(error).__name__}: {error})"
    )


def _translate(error: Exception) -> NoReturn:
    if isinstance(error, pymysql.err.Error):
        raise error
    raise lost_connection(error) from error


class _Connection(AsyncAdapt_aiomysql_connection):
    """SQLAlchemy's aiomysql connection; every failure a DBAPI error."""

    __slots__ = ()

    @classmethod
    def _handle_exception_no_connection(cls, dbapi: Any, error: Exception) -> NoReturn:
        # Every failure of connect, cursor, execute, commit and rollback comes here.
        _translate(error)

    # What SQLAlchemy's adapter calls without passing the hook above:

    def ping(self, reconnect: bool = False) -> None:
        try:
            super().ping(reconnect)
        except Exception as error:
            _translate(error)

    def autocommit(self, value: Any) -> None:
        try:
            super().autocommit(value)
        except Exception as error:
            _translate(error)

    def close(self) -> None:
        try:
            super().close()
        except Exception:
            # Saying goodbye to a server that is gone fails: close the socket, which is
            # all a close must do.
            self._terminate_force_close()

    def _terminate_handled_exceptions(self) -> tuple[type[BaseException], ...]:
        # A graceful close that fails in any way (uvloop's RuntimeError on a reset
        # connection included) ends in a forced one, as OSError already does.
        return (Exception, *super()._terminate_handled_exceptions())


class TranslatingAiomysql(AsyncAdapt_aiomysql_dbapi):
    """aiomysql as SQLAlchemy's DBAPI module, its connections every failure a DBAPI error."""

    def __init__(self) -> None:
        super().__init__(aiomysql, pymysql)

    def connect(self, *arg: Any, **kw: Any) -> _Connection:
        creator_fn = kw.pop("async_creator_fn", self.aiomysql.connect)
        return await_(_Connection.create(self, creator_fn(*arg, **kw)))
