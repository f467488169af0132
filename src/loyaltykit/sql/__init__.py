"""The SQLAlchemy Core storage backend: SQLite by default, dialect-neutral SQL.

>>> from loyaltykit.sql import SQLStorage
>>> storage = SQLStorage.from_url("sqlite://")  # in memory; use sqlite:///path.db
>>> storage.create_schema()
>>> storage.dispose()

:meth:`SQLStorage.from_url` owns its engine; for SQLite it switches on WAL, foreign
keys, a busy timeout and ``BEGIN IMMEDIATE`` transactions (writers are serialised by
the database lock, so two concurrent spends can never overdraw). Production databases
get their schema from the shipped Alembic migrations (:meth:`SQLStorage.upgrade`);
:meth:`SQLStorage.create_schema` is a shortcut for tests.

Given a host application's open :class:`~sqlalchemy.engine.Connection`, every unit of
work runs in a SAVEPOINT inside the host's transaction: loyaltykit's writes then
commit, or roll back, with the host's own (an order row and its points award are one
atomic change). loyaltykit never commits or closes such a connection.

Driver errors never escape: unique violations of the ledger's rules become
:class:`~loyaltykit.DuplicateKey`, anything else :class:`~loyaltykit.StorageError`.

The SQL is dialect-neutral but for a few upserts (registering a program version, which
must not fail on a lost insert race, rule usage rows, tier metric buckets and tier
notices), written as ``INSERT .. ON CONFLICT`` for PostgreSQL and SQLite, the supported
databases, and the set-based tier evaluation (see :mod:`loyaltykit.sql.tiers`).

The backend is one module per store of the storage port (:mod:`loyaltykit.storage`),
beside its engine set-up, schema and unit of work:

==============  ================================================================
module          what it holds
==============  ================================================================
``storage``     :class:`SQLStorage`: engine or host connection, programs, schema
``uow``         :class:`SQLUnitOfWork`: the transaction, and the stores below
``keys``        idempotency records and program versions
``ledger``      members, accounts, lots, holds and transactions
``ledger_due``  the ledger's due-work reads (due accounts, their key ranges)
``orders``      recorded orders and rule usage
``tiers``       tier states, buckets, history, notices; set-based evaluation
``referrals``   referral codes, referrals and identity marks
``engine``      :func:`create_engine` and SQLite's transaction settings
``schema``      the tables (SQLAlchemy Core)
==============  ================================================================
"""

# importable from here as before (not in __all__: it never was)
from loyaltykit.sql._errors import RETRYABLE_SQLSTATES as RETRYABLE_SQLSTATES
from loyaltykit.sql.engine import create_engine
from loyaltykit.sql.storage import MIGRATIONS_DIR, VERSION_TABLE, SQLStorage
from loyaltykit.sql.uow import SQLUnitOfWork

__all__ = ["MIGRATIONS_DIR", "VERSION_TABLE", "SQLStorage", "SQLUnitOfWork", "create_engine"]
