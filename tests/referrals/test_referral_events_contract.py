"""The referral events on every storage backend: the ReferralEventContract part of the shipped
storage contract (`loyaltykit.testing.contract.referral_events`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.referral_events import ReferralEventContract


class TestMemoryStorage(MemoryBackend, ReferralEventContract):
    pass


class TestSQLiteStorage(SQLiteBackend, ReferralEventContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, ReferralEventContract):
    pass
