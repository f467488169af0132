"""Engine set-up for the SQL backend, chiefly SQLite's transaction settings.

SQLite serialises writers with a database-wide lock. A transaction that starts as a
reader and later writes (pysqlite's default deferred BEGIN) can fail with "database
is locked" when two of them try to upgrade at once, whatever the busy timeout. So
every transaction of a loyaltykit SQLite engine starts with ``BEGIN IMMEDIATE``
(taking the write lock up front; WAL keeps plain readers unblocked) and pysqlite's own
transaction handling is switched off, as the SQLAlchemy SQLite documentation describes
("Enabling Non-Legacy SQLite Transactional Modes"). This is the only SQLite-specific
SQL of the backend.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from loyaltykit._errors import InvalidInput, shown

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "configure_sqlite", "create_engine"]

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


def _sqlite_do_begin(dbapi_connection: Any) -> None:
    dbapi_connection.execute("BEGIN IMMEDIATE")


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
