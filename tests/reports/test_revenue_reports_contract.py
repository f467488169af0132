"""IFRS 15 from the program's own data on every storage backend: the
RevenueReportContract part of the shipped storage contract
(`loyaltykit.testing.contract.reports_revenue`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.reports_revenue import RevenueReportContract


class TestMemoryStorage(MemoryBackend, RevenueReportContract):
    pass


class TestSQLiteStorage(SQLiteBackend, RevenueReportContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, RevenueReportContract):
    pass
