"""How the contract tests make the storage of each backend.

Each capability's ``test_*_contract.py`` runs its part of the shipped storage contract
(:mod:`loyaltykit.testing.contract`) on every backend by mixing one of these into the
part: ``class TestMemoryStorage(MemoryBackend, TierContract)``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from loyaltykit import Storage
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract.asynchronous import AsyncFacade


class MemoryBackend:
    def make_storage(self) -> Storage:
        return MemoryStorage()


class SQLiteBackend:
    """A fresh SQLite file per storage, in the test's temporary directory."""

    _files = itertools.count()
    tmp_path: Path

    def make_storage(self) -> Storage:
        from loyaltykit.sql import SQLStorage

        path = self.tmp_path / f"ledger-{next(self._files)}.sqlite"
        storage = SQLStorage.from_url(f"sqlite:///{path}")
        storage.create_schema()
        return storage

    def dispose_storage(self, storage: Storage) -> None:
        storage.dispose()  # type: ignore[attr-defined]


class PostgreSQLBackend:
    """The real server: the session's PostgreSQL (see conftest), emptied per test."""

    def make_storage(self) -> Storage:
        from conftest import POSTGRESQL

        return POSTGRESQL.storage()


class AsyncSQLiteBackend(AsyncFacade, SQLiteBackend):
    """SQLite files of the test, with every facade an AsyncLoyalty on aiosqlite (see
    :mod:`loyaltykit.testing.contract.asynchronous`)."""


class AsyncPostgreSQLBackend(AsyncFacade, PostgreSQLBackend):
    """The session's PostgreSQL, with every facade an AsyncLoyalty on psycopg's async
    driver."""
