"""The rewards' events on every storage backend: the RewardEventContract part of the
shipped storage contract (`loyaltykit.testing.contract.reward_events`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.reward_events import RewardEventContract


class TestMemoryStorage(MemoryBackend, RewardEventContract):
    pass


class TestSQLiteStorage(SQLiteBackend, RewardEventContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, RewardEventContract):
    pass
