"""The SQL backend's storage: engine or host connection, programs, schema, migrations."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from loyaltykit._errors import InvalidInput, StorageError, shown
from loyaltykit._model import ProgramVersion
from loyaltykit.sql._checkpoints import checkpoint
from loyaltykit.sql._errors import storage_error
from loyaltykit.sql._shared import upserts_for
from loyaltykit.sql.engine import create_engine
from loyaltykit.sql.outbox import PostgreSQLWaiter
from loyaltykit.sql.schema import metadata
from loyaltykit.sql.uow import SQLUnitOfWork, begin_in_host

if TYPE_CHECKING:
    from alembic.config import Config

    from loyaltykit.storage import (
        BatchingStorage,
        EventWaiter,
        KeyStore,
        LedgerStore,
        NoticeStore,
        OrderStore,
        OutboxStore,
        ProgramStore,
        ReadingStorage,
        ReferralStore,
        ReportStore,
        TierStore,
        UnitOfWork,
    )

__all__ = ["IMPORT_BATCH_SIZES", "MIGRATIONS_DIR", "VERSION_TABLE", "SQLStorage"]

#: Orders per batch of the history import by dialect (see
#: :attr:`SQLStorage.import_batch_size`); another dialect takes PostgreSQL's.
IMPORT_BATCH_SIZES = {"sqlite": 10_000, "postgresql": 1000}

#: The directory of the shipped Alembic migration scripts.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: The table where Alembic records loyaltykit's schema revision (its own name, so it
#: cannot collide with the host application's ``alembic_version``).
VERSION_TABLE = "loyaltykit_alembic_version"


class SQLStorage:
    """Keeps ledgers in a SQL database through SQLAlchemy Core (SQLite, PostgreSQL).

    ``bind`` is an :class:`~sqlalchemy.engine.Engine` (each unit of work checks out a
    connection and runs one transaction) or a host application's open
    :class:`~sqlalchemy.engine.Connection` (each unit of work is a SAVEPOINT inside the
    host's transaction; the host commits). For SQLite create engines with
    :meth:`from_url` or :func:`loyaltykit.sql.create_engine`, which set WAL, foreign
    keys, a busy timeout and ``BEGIN IMMEDIATE``.
    """

    #: The tables of the ledger (SQLAlchemy :class:`~sqlalchemy.MetaData`).
    metadata: ClassVar[sa.MetaData] = metadata

    def __init__(self, bind: Engine | Connection, *, notify: bool = False) -> None:
        self._engine: Engine
        self._connection: Connection | None
        if isinstance(bind, Engine):
            self._engine, self._connection = bind, None
        elif isinstance(bind, Connection):
            self._engine, self._connection = bind.engine, bind
        else:
            raise InvalidInput("bind must be a SQLAlchemy Engine or Connection",
                               bind=shown(bind))
        if not isinstance(notify, bool):
            raise InvalidInput("notify must be a bool", notify=shown(notify))
        #: on PostgreSQL, every write that appends events sends a notification
        self.notify = notify
        self._owns_engine = False
        #: the long runs going on (SQLite on an engine; None elsewhere: see long_run)
        self._long_runs: int | None = (
            0 if self._connection is None and self._engine.dialect.name == "sqlite"
            else None)
        self._long_runs_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, notify: bool = False, **engine_kwargs: Any) -> SQLStorage:
        """Create an engine for ``url`` (SQLite settings included; see
        :func:`create_engine`) owned by the new storage; :meth:`dispose` releases it.

        ``engine_kwargs`` go to :func:`sqlalchemy.create_engine`. An in-memory SQLite
        URL (``sqlite://``) gives each thread its own database; use a file to share
        one between threads or processes."""
        if not isinstance(notify, bool):
            raise InvalidInput("notify must be a bool", notify=shown(notify))
        try:
            engine = create_engine(url, **engine_kwargs)  # a bad URL: InvalidInput
        except sa_exc.SQLAlchemyError as exc:
            raise storage_error(exc) from exc
        storage = cls(engine, notify=notify)
        storage._owns_engine = True
        return storage

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        mode = ", host connection" if self._connection is not None else ""
        return f"SQLStorage({url!r}{mode})"

    @property
    def engine(self) -> Engine:
        """The engine: the one given, or the host connection's own."""
        return self._engine

    @property
    def connection(self) -> Connection | None:
        """The host application's connection this storage joins (None on an engine)."""
        return self._connection

    @property
    def concurrent(self) -> bool:
        """True on an engine whose pool gives each unit of work its own connection to
        one database; False on a host connection, or a pool of one connection per
        thread (an in-memory SQLite database is then a different one per thread) or
        one for all (whose units of work must run one at a time)."""
        one_per_thread_or_all = (sa.pool.SingletonThreadPool, sa.pool.StaticPool)
        return self._connection is None and not isinstance(self._engine.pool,
                                                           one_per_thread_or_all)

    @property
    def import_batch_size(self) -> int:
        """Orders per batch of ``record_orders`` when the caller gives none (see
        :class:`~loyaltykit.storage.BatchingStorage`). SQLite 10,000: each commit
        writes every page its batch touched to the WAL, and a history's orders touch
        most leaf pages of the members' indexes once the tables have grown (a batch of
        1000 CDNOW orders wrote ~32 MB of WAL), so a batch's commit costs more as the
        database grows and fewer, larger batches write far less (CDNOW, 69,659
        orders: commits 7.3 s of 43 at 1000 orders a batch, ~4 s at 5000; with the
        long run's page cache, see :mod:`loyaltykit.sql._checkpoints`, the import
        took 24.7-25.4 s at 5000 and 22.0-22.6 s at 10,000, its peak RSS 164 -> 313
        MiB). PostgreSQL 1000: its commits write only the WAL records of the batch's
        rows."""
        return IMPORT_BATCH_SIZES.get(self._engine.dialect.name,
                                      IMPORT_BATCH_SIZES["postgresql"])

    def unit_of_work(self, program_id: str) -> SQLUnitOfWork:
        """Return a new unit of work for ``program_id`` (use it as a context manager)."""
        runs = self._long_runs
        return SQLUnitOfWork(self._engine, self._connection, program_id, notify=self.notify,
                             long_run=None if runs is None else runs > 0)

    @contextlib.contextmanager
    def long_run(self) -> Iterator[None]:
        """Run a long series of units of work (due work, a history import) inside the
        block (see :class:`~loyaltykit.storage.LongRunStorage`). On SQLite on an
        engine, the units of work that begin meanwhile checkpoint the WAL every
        :data:`~loyaltykit.sql._checkpoints.LONG_RUN_PAGES` pages rather than SQLite's
        1000 (at the default, each batch's commit ran a checkpoint of its own), and the
        last run to end checkpoints once (``PASSIVE``); durability is unchanged. Runs
        may overlap (threads). Elsewhere it changes nothing."""
        if self._long_runs is None:
            yield
            return
        with self._long_runs_lock:
            self._long_runs += 1
        try:
            yield
        finally:
            with self._long_runs_lock:
                self._long_runs -= 1
                last = not self._long_runs
            if last:
                checkpoint(self._engine)

    def read_unit_of_work(self, program_id: str) -> SQLUnitOfWork:
        """Return a new unit of work for ``program_id`` that only reads (what the
        facade's reads use): writes through it raise
        :class:`~loyaltykit.ReadOnlyViolation`. On SQLite it begins with a deferred
        ``BEGIN``, so it takes no write lock and runs alongside a writer (WAL), seeing
        the last committed state; on PostgreSQL it is a ``READ ONLY`` transaction. On a
        host's connection it is a read-only SAVEPOINT; the host's transaction keeps its
        mode."""
        return SQLUnitOfWork(self._engine, self._connection, program_id, read_only=True)

    def event_waiter(self, program_id: str) -> EventWaiter | None:
        """A waiter that wakes when a write with ``notify`` commits events of the
        program (PostgreSQL ``LISTEN`` on a connection of its own, with the psycopg
        driver; close it after use), or None where there is nothing to listen to
        (SQLite, another driver, a host's connection): consumers then poll."""
        dialect = self._engine.dialect
        if self._connection is not None or (dialect.name, dialect.driver) != (
                "postgresql", "psycopg"):
            return None
        return PostgreSQLWaiter(self._engine, program_id)

    def _run(self, work: Callable[[Connection], None]) -> None:
        """Run ``work`` in a transaction of its own (a SAVEPOINT on a host connection)."""
        try:
            if self._connection is None:
                with self._engine.begin() as conn:
                    work(conn)
            else:
                with begin_in_host(self._connection):
                    work(self._connection)
        except sa_exc.SQLAlchemyError as exc:
            raise storage_error(exc) from exc

    def register_program(self, version: ProgramVersion) -> None:
        """Store this version unless ``(program_id, version)`` is stored already (the
        stored one is then left as it is). An unknown program is registered with this
        definition first. Safe to call concurrently: ``INSERT .. ON CONFLICT DO
        NOTHING`` lets a lost insert race pass without an error."""
        definition = dict(version.definition)

        def work(conn: Connection) -> None:
            upserts = upserts_for(conn)
            conn.execute(upserts.program, {"id": version.program_id, "definition": definition,
                                           "created_at": version.created_at})
            conn.execute(upserts.version, {
                "program_id": version.program_id, "version": version.version,
                "effective_from": version.effective_from, "definition": definition,
                "created_at": version.created_at,
            })

        self._run(work)

    def create_schema(self) -> None:
        """Create every table that does not exist yet (a shortcut for tests and demos;
        production databases should use :meth:`upgrade`)."""
        self._run(lambda conn: metadata.create_all(conn))

    def alembic_config(self) -> Config:
        """An Alembic configuration for the shipped migrations (no ``alembic.ini``)."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        config.set_main_option("version_table", VERSION_TABLE)
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the database schema to ``revision`` (default: the newest) with the
        migrations shipped in the package. On a host connection the migration joins
        the host's transaction, also from inside a host's own Alembic migration
        (``SQLStorage(op.get_bind()).upgrade()``; see :mod:`loyaltykit.sql.alembic`).
        A revision id shipped before the ``lk`` prefix (``"0008"``) names its new id
        (``"lk0008"``), and a database stamped with one is re-stamped first."""
        from alembic.util import CommandError

        from loyaltykit.sql.alembic import run_upgrade

        config = self.alembic_config()
        try:
            self._run(lambda conn: run_upgrade(conn, config, revision))
        except CommandError as exc:
            raise StorageError("the migration failed", revision=revision,
                               detail=str(exc)) from exc

    def dispose(self) -> None:
        """Close the pooled connections of an engine this storage created itself
        (:meth:`from_url`); a caller's engine or connection is left alone."""
        if self._owns_engine:
            self._engine.dispose()


if TYPE_CHECKING:
    def _conforms(u: SQLUnitOfWork, s: SQLStorage) -> tuple[UnitOfWork, ReadingStorage]:
        """Fails type checking (mypy) unless the backend and each of its stores match
        the storage port's Protocols; one line per store so the error names it."""
        keys: KeyStore = u.keys
        programs: ProgramStore = u.programs
        ledger: LedgerStore = u.ledger
        orders: OrderStore = u.orders
        tiers: TierStore = u.tiers
        referrals: ReferralStore = u.referrals
        events: OutboxStore = u.outbox
        notices: NoticeStore = u.notices
        reports: ReportStore = u.reports
        batching: BatchingStorage = s
        del keys, programs, ledger, orders, tiers, referrals, events, notices, reports
        del batching
        return u, s
