"""Referrals on every storage backend: the ReferralContract part of the shipped storage contract
(`loyaltykit.testing.contract.referrals`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.referrals import ReferralContract


class TestMemoryStorage(MemoryBackend, ReferralContract):
    pass


class TestSQLiteStorage(SQLiteBackend, ReferralContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, ReferralContract):
    pass
