"""Engine set-up for the SQL backend, chiefly SQLite's transaction settings.

SQLite serialises writers with a database-wide lock. A transaction that starts as a
reader and later writes (pysqlite's default deferred BEGIN) can fail with "database
is locked" when two of them try to upgrade at once, whatever the busy timeout. So
every transaction of a loyaltykit SQLite engine starts with ``BEGIN IMMEDIATE``
(taking the write lock up front; WAL keeps plain readers unblocked) and pysqlite's own
transaction handling is switched off, as the SQLAlchemy SQLite documentation describes
("Enabling Non-Legacy SQLite Transactional Modes").

Read-only units of work (:meth:`~loyaltykit.sql.SQLStorage.read_unit_of_work`) are the
exception: :func:`begin_read_only` makes their transaction a deferred ``BEGIN``, which
takes no lock until it reads and never the write lock, so in WAL mode they run
alongside a writer and read the last committed state as of their first read. Their
connection is switched to ``PRAGMA query_only`` first, so a write through them fails
(:class:`~loyaltykit.ReadOnlyViolation`); the next ordinary transaction on that pooled
connection switches it back. On PostgreSQL they begin ``READ ONLY`` transactions.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from loyaltykit._errors import InvalidInput, shown

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "begin_read_only", "configure_sqlite", "create_engine"]

#: How long a SQLite connection waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_connect(dbapi_connection: Any, connection_record: Any) -> None:
    # None: the driver emits no BEGIN of its own; _sqlite_begin does it instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


#: In a pooled SQLite connection's ``info``: the next transaction is read only (set by
#: :func:`begin_read_only`, taken by the BEGIN).
_READ_ONLY_NEXT = "loyaltykit.read_only_next"
#: In a pooled SQLite connection's ``info``: ``PRAGMA query_only`` is on.
_QUERY_ONLY = "loyaltykit.query_only"


def _sqlite_do_begin(dbapi_connection: Any) -> None:
    # SQLAlchemy hands the pool's proxy of the connection, whose ``info`` lives as long
    # as the DBAPI connection (and so as its PRAGMA settings); a bare one has none
    info = getattr(dbapi_connection, "info", None)
    if info is None:
        dbapi_connection.execute("BEGIN IMMEDIATE")
        return
    read_only = info.pop(_READ_ONLY_NEXT, False)
    # query_only is left on after a read-only transaction and switched off again by
    # the next ordinary one: a run of reads on a connection sets it once
    if read_only is not info.get(_QUERY_ONLY, False):
        dbapi_connection.execute(f"PRAGMA query_only = {'ON' if read_only else 'OFF'}")
        info[_QUERY_ONLY] = read_only
    dbapi_connection.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")


def begin_read_only(conn: Connection) -> sa.RootTransaction:
    """Begin a read-only transaction on ``conn`` (a connection of the engine, not in a
    transaction): a deferred ``BEGIN`` with ``PRAGMA query_only`` on a SQLite engine
    set up by :func:`configure_sqlite` (another SQLite engine: its own BEGIN, without
    the refusal of writes), ``BEGIN READ ONLY`` on PostgreSQL."""
    dialect = conn.dialect
    if dialect.name == "sqlite":
        if dialect.do_begin is _sqlite_do_begin:
            info = conn.connection.info
            info[_READ_ONLY_NEXT] = True
            try:
                return conn.begin()
            finally:  # taken by the BEGIN; never left for a later transaction
                info.pop(_READ_ONLY_NEXT, None)
    elif dialect.name == "postgresql" and not conn.get_execution_options().get(
            "postgresql_readonly"):
        # the driver begins READ ONLY (no extra round trip); SQLAlchemy resets the
        # connection when it goes back to the pool
        conn.execution_options(postgresql_readonly=True)
    return conn.begin()


def configure_sqlite(engine: Engine) -> None:
    """Install loyaltykit's SQLite settings on a fresh ``engine`` (before first use):
    WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` for every transaction."""
    if not event.contains(engine, "connect", _sqlite_connect):
        event.listen(engine, "connect", _sqlite_connect)
    # The SQLAlchemy docs emit BEGIN from a "begin" connection event; replacing the
    # dialect's (empty) do_begin does the same without making every statement of the
    # engine dispatch connection events. SQLAlchemy still wraps its errors (a busy
    # database) in its own exceptions. The dialect instance belongs to this engine.
    engine.dialect.do_begin = _sqlite_do_begin  # type: ignore[method-assign]


def create_engine(url: str | sa.URL, **engine_kwargs: Any) -> Engine:
    """Like :func:`sqlalchemy.create_engine`, plus loyaltykit's SQLite settings for
    ``sqlite`` URLs (see :func:`configure_sqlite`). A URL or an option SQLAlchemy
    cannot use raises :class:`~loyaltykit.InvalidInput` (the URL's password hidden)."""
    if not isinstance(url, str | sa.URL):
        raise InvalidInput("url must be a database URL (str or sqlalchemy.URL)", url=shown(url))
    try:
        engine = sa.create_engine(url, **engine_kwargs)
    except sa_exc.ArgumentError as exc:  # unparsable, unknown dialect or driver
        raise InvalidInput("unusable database URL", url=hide_password(str(url)),
                           error=type(exc).__name__) from None
    except (TypeError, ValueError) as exc:  # options the dialect or pool does not take
        raise InvalidInput("unusable engine options", url=hide_password(str(url)),
                           options=sorted(engine_kwargs), detail=str(exc)) from None
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
    return engine


def hide_password(url: str) -> str:
    """Mask the password of ``scheme://user:password@host/...`` for error messages."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)
