"""Tiers on every storage backend: the TierContract part of the shipped storage contract
(`loyaltykit.testing.contract.tiers`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.tiers import TierContract


class TestMemoryStorage(MemoryBackend, TierContract):
    pass


class TestSQLiteStorage(SQLiteBackend, TierContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, TierContract):
    pass
