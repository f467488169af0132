"""The history import on every storage backend: the OrderImportContract part of the
shipped storage contract (`loyaltykit.testing.contract.order_import`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.order_import import OrderImportContract


class TestMemoryStorage(MemoryBackend, OrderImportContract):
    pass


class TestSQLiteStorage(SQLiteBackend, OrderImportContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, OrderImportContract):
    pass
