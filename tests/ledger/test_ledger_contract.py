"""The ledger on every storage backend: the LedgerContract part of the shipped storage
contract (`loyaltykit.testing.contract.ledger` and its `ledger_*` modules: members,
lots, pending points, expiry, holds, corrections, balances, statements, idempotency,
concurrency and the unit of work)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.ledger import LedgerContract


class TestMemoryStorage(MemoryBackend, LedgerContract):
    pass


class TestSQLiteStorage(SQLiteBackend, LedgerContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, LedgerContract):
    pass
