"""Joining Django's transaction: loyaltykit's writes commit and roll back with the rows
a Django project writes through its ORM.

:func:`connection` gives a SQLAlchemy :class:`~sqlalchemy.engine.Connection` whose
DBAPI connection *is* Django's, for one database alias, inside Django's
``transaction.atomic()``. A facade bound to it (``shop.bind(conn)``) writes each unit of
work in a SAVEPOINT of Django's transaction, and Django commits or rolls back the whole
(``pip install 'loyaltykit[django]'``; SQLite and PostgreSQL, psycopg 3 or psycopg2)::

    from django.db import transaction
    from loyaltykit.django import connection

    with transaction.atomic():
        order = Order.objects.create(customer="ann", total=Decimal("25.00"))
        with connection() as conn:
            shop.bind(conn).record_order(...)

SQLAlchemy runs statements on Django's connection but never commits, rolls back or
closes it: Django owns its transaction and its life (``CONN_MAX_AGE``, the end of a
request). Django is imported when :func:`connection` is first called, so importing
this module needs no Django.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import ConnectionPoolEntry, Pool

from loyaltykit._errors import InvalidInput, shown
from loyaltykit.sql._errors import storage_error

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = ["connection"]


@contextlib.contextmanager
def connection(using: str = "default") -> Iterator[Connection]:
    """A SQLAlchemy connection over Django's connection ``using`` (a database alias),
    inside Django's transaction: bind a facade to it (``shop.bind(conn)``) and its
    writes commit or roll back with Django's rows.

    The ``with`` block is an ``atomic(using=using)`` block: inside an enclosing
    ``atomic()`` it joins that transaction (a savepoint of Django's), outside one it is
    a transaction of its own, committed when the block ends. An exception leaving the
    block (a loyaltykit refusal such as :class:`~loyaltykit.InsufficientPoints` too)
    rolls back what the block wrote, as ``atomic`` does, and the enclosing transaction
    goes on if the exception is caught. Nested calls in one thread give the same
    connection.

    An alias Django does not know, or a database other than SQLite or PostgreSQL,
    raises :class:`~loyaltykit.InvalidInput`.
    """
    from django.db import connections, transaction

    if not isinstance(using, str) or using not in connections.settings:
        raise InvalidInput("using must name a database in Django's DATABASES",
                           using=shown(using))
    wrapper = connections[using]
    engine = _engine(using, wrapper)
    with transaction.atomic(using=using):
        wrapper.ensure_connection()
        joined: dict[str, Connection] = _open.__dict__.setdefault("by_alias", {})
        outer = joined.get(using)
        if outer is not None and not outer.closed and _borrowed(outer) is wrapper.connection:
            yield outer
            return
        try:
            conn = engine.connect()
        except sa_exc.SQLAlchemyError as exc:
            raise storage_error(exc) from exc
        joined[using] = conn
        try:
            yield conn
        finally:
            del joined[using]
            conn.close()  # gives the connection back to Django: nothing is rolled back


#: the SQLAlchemy connection open in this thread, by alias (nested calls share it)
_open = threading.local()
#: one engine (a dialect and a pool over Django's connections) per alias
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()

#: SQLAlchemy's dialect for each Django backend vendor loyaltykit keeps ledgers on
_DIALECTS = {"sqlite": "sqlite+pysqlite://", "postgresql": "postgresql+{driver}://"}


def _engine(using: str, wrapper: Any) -> Engine:
    with _engines_lock:
        engine = _engines.get(using)
        if engine is None:
            url = _DIALECTS.get(wrapper.vendor)
            options: dict[str, Any] = {}
            if url is None:
                raise InvalidInput("loyaltykit joins Django's SQLite and PostgreSQL databases",
                                   using=using, vendor=shown(wrapper.vendor))
            if wrapper.vendor == "postgresql":
                from django.db.backends.postgresql.psycopg_any import is_psycopg3

                url = url.format(driver="psycopg" if is_psycopg3 else "psycopg2")
                # hstore's set-up would register types on Django's connection, which
                # is Django's to set up
                options["use_native_hstore"] = False
            engine = sa.create_engine(url, pool=_DjangoPool(using), **options)
            if wrapper.vendor == "sqlite":
                _read_converted(engine.dialect)
            _engines[using] = engine
        return engine


def _read_converted(dialect: Any) -> None:
    """Django opens SQLite connections with ``detect_types``, so columns declared
    DATETIME, DATE or TIME come back converted by Django's converters: SQLAlchemy's
    result processors (which parse text) pass those values through."""
    from sqlalchemy.dialects import sqlite

    class DateTime(_Converted, sqlite.DATETIME):
        pass

    class Date(_Converted, sqlite.DATE):
        pass

    class Time(_Converted, sqlite.TIME):
        pass

    dialect.colspecs = {**dialect.colspecs, sa.DateTime: DateTime, sa.Date: Date,
                        sa.Time: Time}


class _Converted(sa.types.TypeEngine[Any]):
    def result_processor(self, dialect: Any, coltype: object) -> Any:
        parse = super().result_processor(dialect, coltype)
        if parse is None:
            return None

        def process(value: Any) -> Any:
            return parse(value) if isinstance(value, str) else value

        return process


def _borrowed(conn: Connection) -> Any:
    """The Django DBAPI connection under a SQLAlchemy connection of this module."""
    return conn.connection.driver_connection.raw  # type: ignore[union-attr]


class _Borrowed:
    """Django's DBAPI connection as SQLAlchemy sees it: statements run on it (SAVEPOINTs,
    their release and rollback included), but commit, rollback and close do nothing, as
    Django owns its transaction and its life. Setting an attribute (an isolation level,
    autocommit) fails, so SQLAlchemy cannot change the connection under Django."""

    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    def commit(self) -> None:
        """Django commits."""

    def rollback(self) -> None:
        """Django rolls back."""

    def close(self) -> None:
        """Django closes."""


class _DjangoPool(Pool):
    """Hands out the DBAPI connection Django holds for an alias in this thread.

    One pool record per Django connection (kept per thread and made again when Django
    has reconnected), so SQLAlchemy's per-connection set-up (its dialect's ``connect``
    handlers) runs once per Django connection, not once per use; giving a connection
    back keeps it open and rolls nothing back."""

    def __init__(self, using: str, **kwargs: Any) -> None:
        kwargs["reset_on_return"] = None
        super().__init__(self._django_connection, **kwargs)
        self._using = using
        self._local = threading.local()

    def _django_connection(self) -> Any:
        from django.db import connections

        wrapper = connections[self._using]
        wrapper.ensure_connection()
        return _Borrowed(wrapper.connection)

    def _do_get(self) -> ConnectionPoolEntry:
        from django.db import connections

        current = connections[self._using].connection
        record: ConnectionPoolEntry | None = getattr(self._local, "record", None)
        if (record is None or record.dbapi_connection is None
                or record.dbapi_connection.raw is not current):
            record = self._local.record = self._create_connection()
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        """Django keeps the connection."""

    def dispose(self) -> None:
        """Forget this thread's record (Django's connection stays open)."""
        self._local = threading.local()

    def recreate(self) -> _DjangoPool:
        return _DjangoPool(self._using, echo=self.echo, _dispatch=self.dispatch,
                           dialect=self._dialect)

    def status(self) -> str:
        return f"_DjangoPool({self._using!r})"
