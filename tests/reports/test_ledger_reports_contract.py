"""The ledger's reports on every storage backend: the LedgerReportContract part of the
shipped storage contract (`loyaltykit.testing.contract.reports_ledger`): totals and
their identity, points per period, members, counts, tiers, breakage and liability."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.reports_ledger import LedgerReportContract


class TestMemoryStorage(MemoryBackend, LedgerReportContract):
    pass


class TestSQLiteStorage(SQLiteBackend, LedgerReportContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, LedgerReportContract):
    pass
