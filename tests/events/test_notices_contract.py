"""Notices from due work on every storage backend: the NoticeContract part of the
shipped storage contract (`loyaltykit.testing.contract.notices`)."""

from __future__ import annotations

from _backends import MemoryBackend, PostgreSQLBackend, SQLiteBackend
from loyaltykit.testing.contract.notices import NoticeContract


class TestMemoryStorage(MemoryBackend, NoticeContract):
    pass


class TestSQLiteStorage(SQLiteBackend, NoticeContract):
    pass


class TestPostgreSQLStorage(PostgreSQLBackend, NoticeContract):
    pass
