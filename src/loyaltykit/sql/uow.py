"""The SQL backend's unit of work: one database transaction, and one store per
capability sharing its connection."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from loyaltykit._copy import cached
from loyaltykit._errors import StorageError
from loyaltykit.sql._checkpoints import set_long_run
from loyaltykit.sql._errors import storage_error, translated
from loyaltykit.sql.engine import begin_read_only
from loyaltykit.sql.keys import SQLKeyStore, SQLProgramStore
from loyaltykit.sql.ledger import SQLLedgerStore
from loyaltykit.sql.members import SQLMemberKeyStore
from loyaltykit.sql.notices import SQLNoticeStore
from loyaltykit.sql.orders import SQLOrderStore
from loyaltykit.sql.outbox import SQLOutboxStore
from loyaltykit.sql.referrals import SQLReferralStore
from loyaltykit.sql.reports import SQLReportStore
from loyaltykit.sql.rewards import SQLRewardStore
from loyaltykit.sql.tiers import SQLTierStore

__all__ = ["SQLUnitOfWork", "begin_in_host"]


class SQLUnitOfWork:
    """One database transaction of :class:`~loyaltykit.sql.SQLStorage` for one program.

    On an engine it checks out a connection and begins a transaction (``BEGIN
    IMMEDIATE`` on SQLite); on a host's connection it opens a SAVEPOINT. Leaving the
    ``with`` block without :meth:`commit` rolls back; writes after a commit start a new
    transaction that needs its own commit.

    Its stores (``keys``, ``programs``, ``ledger``, ``orders``, ``tiers``,
    ``referrals``, ``rewards``, ``members``, ``outbox``, ``notices``) read and write through
    :meth:`connection`, so the first of them to run begins the transaction.

    A ``read_only`` one (:meth:`SQLStorage.read_unit_of_work`) refuses writes with
    :class:`~loyaltykit.ReadOnlyViolation`: on an engine its transaction is a deferred
    ``BEGIN`` under ``PRAGMA query_only`` on SQLite (no write lock: it runs alongside a
    writer) or ``READ ONLY`` on PostgreSQL (see :mod:`loyaltykit.sql.engine`); on a
    host's connection its SAVEPOINT is made read only (``SET TRANSACTION READ ONLY``,
    or ``PRAGMA query_only`` until it ends), and the host's transaction is left as it
    was.
    """

    def __init__(self, engine: Engine, host: Connection | None, program_id: str, *,
                 notify: bool = False, read_only: bool = False,
                 long_run: bool | None = None) -> None:
        """A unit of work on ``engine``, or inside the ``host`` connection's transaction
        (as a SAVEPOINT) when given; :meth:`SQLStorage.unit_of_work` builds them. With
        ``notify``, appending events on PostgreSQL also sends a notification (at
        commit); with ``read_only`` it refuses writes. ``long_run`` (SQLite on an
        engine; None elsewhere): whether a long run lasts, which sets the connection's
        WAL checkpoint threshold (:mod:`loyaltykit.sql._checkpoints`)."""
        self._long_run = long_run
        self.program_id = program_id
        self.notify = notify
        #: True: writes are refused (ReadOnlyViolation)
        self.read_only = read_only
        self._query_only_was: int | None = None
        self._engine = engine
        self._host = host
        self._conn: Connection | None = None
        self._tx: sa.Transaction | None = None

    # -- stores (built on first use; each asks for the connection, which begins lazily) --

    @cached
    def keys(self) -> SQLKeyStore:
        """Idempotency records."""
        return SQLKeyStore(self)

    @cached
    def programs(self) -> SQLProgramStore:
        """Stored program versions."""
        return SQLProgramStore(self)

    @cached
    def ledger(self) -> SQLLedgerStore:
        """Members, accounts, lots, holds and transactions."""
        return SQLLedgerStore(self)

    @cached
    def orders(self) -> SQLOrderStore:
        """Recorded orders and rule usage."""
        return SQLOrderStore(self)

    @cached
    def tiers(self) -> SQLTierStore:
        """Tier states, metric buckets, history and notices."""
        return SQLTierStore(self)

    @cached
    def referrals(self) -> SQLReferralStore:
        """Referral codes, referrals and identity marks."""
        return SQLReferralStore(self)

    @cached
    def rewards(self) -> SQLRewardStore:
        """Vouchers and reward counters."""
        return SQLRewardStore(self)

    @cached
    def members(self) -> SQLMemberKeyStore:
        """The shop's member ids mapped to member keys, and erasures."""
        return SQLMemberKeyStore(self)

    @cached
    def outbox(self) -> SQLOutboxStore:
        """Events (the outbox) and consumers' positions."""
        return SQLOutboxStore(self)

    @cached
    def notices(self) -> SQLNoticeStore:
        """The notices due work has emitted."""
        return SQLNoticeStore(self)

    @cached
    def reports(self) -> SQLReportStore:
        """Program-wide reads for reports (read only)."""
        return SQLReportStore(self)

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else ("open" if self._tx else "committed")
        mode = ", read only" if self.read_only else ""
        return f"SQLUnitOfWork(program_id={self.program_id!r}, {state}{mode})"

    # -- life cycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            if self._host is not None:
                self._conn = self._host
                self._tx = begin_in_host(self._host)
                if self.read_only:
                    self._host_read_only(self._host)
            else:
                self._conn = self._engine.connect()
                if self._long_run is not None:
                    set_long_run(self._conn, self._long_run)
                self._tx = self._begin(self._conn)
        except sa_exc.SQLAlchemyError as exc:
            self._release()
            raise storage_error(exc) from exc
        return self

    def _begin(self, conn: Connection) -> sa.Transaction:
        return begin_read_only(conn) if self.read_only else conn.begin()

    def _host_read_only(self, conn: Connection) -> None:
        """Make the SAVEPOINT just opened on the host's connection read only."""
        if conn.dialect.name == "postgresql":
            # undone when the SAVEPOINT ends, released or rolled back
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        elif conn.dialect.name == "sqlite" and self._query_only_was is None:
            # a connection setting: put back as the host had it when this one ends
            self._query_only_was = int(conn.exec_driver_sql("PRAGMA query_only").scalar_one())
            conn.exec_driver_sql("PRAGMA query_only = ON")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back what was not committed and give the connection back."""
        try:
            if self._tx is not None:
                self._tx.rollback()
        except sa_exc.SQLAlchemyError as error:
            raise storage_error(error) from error
        finally:
            self._release()

    def _release(self) -> None:
        # Each store holds this unit of work: dropping the stores built breaks that
        # cycle, so the write's objects are freed when it ends, not by the cyclic
        # garbage collector (whose collections, triggered by the objects every write
        # left, cost an earn about a tenth of its time). A store kept by a caller still
        # refuses use outside the with block; a store asked for again is built anew.
        for name in _STORES:
            self.__dict__.pop(name, None)
        self._tx = None
        conn, self._conn = self._conn, None
        was, self._query_only_was = self._query_only_was, None
        if conn is not None and was is not None:
            try:
                conn.exec_driver_sql(f"PRAGMA query_only = {was}")
            except sa_exc.SQLAlchemyError as exc:
                raise storage_error(exc) from exc
        if conn is not None and self._host is None:
            try:
                conn.close()
            except sa_exc.SQLAlchemyError as exc:
                raise storage_error(exc) from exc

    def connection(self) -> Connection:
        """The connection, inside an open transaction (a new one after a commit)."""
        conn = self._conn
        if conn is None:
            raise StorageError("unit of work used outside its with block",
                               program_id=self.program_id)
        if self._tx is None:
            if self._host is not None:
                self._tx = conn.begin_nested()
                if self.read_only:
                    self._host_read_only(conn)
            else:
                self._tx = self._begin(conn)
        return conn

    @translated
    def commit(self) -> None:
        """Make every write so far durable (or, on a host's connection, part of the
        host's transaction: released from the SAVEPOINT)."""
        if self._conn is None:
            raise StorageError("unit of work used outside its with block",
                               program_id=self.program_id)
        tx, self._tx = self._tx, None
        if tx is not None:
            tx.commit()


#: The stores a unit of work builds on first use (see :meth:`SQLUnitOfWork._release`).
_STORES = tuple(name for name, value in vars(SQLUnitOfWork).items()
                if isinstance(value, cached))


def begin_in_host(conn: Connection) -> sa.Transaction:
    """Open a SAVEPOINT inside the host's transaction (beginning it if needed)."""
    if not conn.in_transaction():
        conn.begin()  # the host's transaction, committed by the host like an autobegin
    if conn.dialect.name == "sqlite":
        driver = conn.connection.driver_connection
        if driver is not None and not getattr(driver, "in_transaction", True):
            # pysqlite's legacy mode has not really begun the host's transaction yet;
            # a SAVEPOINT alone would then commit on release, outside the host's control
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    return conn.begin_nested()
