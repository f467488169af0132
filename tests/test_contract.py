"""Every storage backend passes the shipped contract suite (loyaltykit.testing.contract)."""

from __future__ import annotations

import itertools

from loyaltykit import Storage
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract import StorageContract


class TestMemoryStorage(StorageContract):
    def make_storage(self) -> Storage:
        return MemoryStorage()


class TestSQLiteStorage(StorageContract):
    _files = itertools.count()

    def make_storage(self) -> Storage:
        from loyaltykit.sql import SQLStorage

        path = self.tmp_path / f"ledger-{next(self._files)}.sqlite"
        storage = SQLStorage.from_url(f"sqlite:///{path}")
        storage.create_schema()
        return storage

    def dispose_storage(self, storage: Storage) -> None:
        storage.dispose()  # type: ignore[attr-defined]


class TestPostgreSQLStorage(StorageContract):
    """The real server: the session's PostgreSQL (see conftest), emptied per test."""

    def make_storage(self) -> Storage:
        from conftest import POSTGRESQL

        return POSTGRESQL.storage()
