"""``tier.changed`` on every storage backend: the TierEventContract part of the shipped
storage contract (`loyaltykit.testing.contract.tier_events`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.tier_events import TierEventContract


class TestMemoryStorage(MemoryBackend, TierEventContract):
    pass


class TestSQLiteStorage(SQLiteBackend, TierEventContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, TierEventContract):
    pass
