"""The privacy part of the storage contract (scenario P1) on every backend."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract import PrivacyContract


class TestMemoryStorage(MemoryBackend, PrivacyContract):
    pass


class TestSQLiteStorage(SQLiteBackend, PrivacyContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, PrivacyContract):
    pass
