"""Recorded orders, earning-rule usage, account activity and program versions on every
storage backend: the OrderContract part of the shipped storage contract
(`loyaltykit.testing.contract.orders`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.orders import OrderContract


class TestMemoryStorage(MemoryBackend, OrderContract):
    pass


class TestSQLiteStorage(SQLiteBackend, OrderContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, OrderContract):
    pass
