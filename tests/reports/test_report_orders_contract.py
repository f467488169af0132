"""Reports over orders on every storage backend: the OrderReportContract part of the
shipped storage contract (`loyaltykit.testing.contract.reports_orders`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.reports_orders import OrderReportContract


class TestMemoryStorage(MemoryBackend, OrderReportContract):
    pass


class TestSQLiteStorage(SQLiteBackend, OrderReportContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, OrderReportContract):
    pass
