"""The outbox on every storage backend: the OutboxContract part of the shipped storage
contract (`loyaltykit.testing.contract.outbox`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.outbox import OutboxContract


class TestMemoryStorage(MemoryBackend, OutboxContract):
    pass


class TestSQLiteStorage(SQLiteBackend, OutboxContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, OutboxContract):
    pass
