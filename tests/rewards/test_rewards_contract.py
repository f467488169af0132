"""Rewards on every storage backend: the RewardContract part of the shipped storage contract
(`loyaltykit.testing.contract.rewards`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.rewards import RewardContract


class TestMemoryStorage(MemoryBackend, RewardContract):
    pass


class TestSQLiteStorage(SQLiteBackend, RewardContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, RewardContract):
    pass
