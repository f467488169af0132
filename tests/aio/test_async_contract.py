"""The shipped storage contract through the async facade: every part
(:class:`StorageContract` and :class:`OrderImportContract`) with each facade an
:class:`~loyaltykit.aio.AsyncLoyalty` on aiosqlite and on psycopg's async driver
(:mod:`loyaltykit.testing.contract.asynchronous`). The contract's direct checks of the
storage use the test's sync storage on the same database.

On PostgreSQL the run takes minutes on two cores (the contract's many short calls, each
a round trip through the event loop's thread and the greenlet bridge), so it is slow;
SQLite stays in the fast loop."""

from __future__ import annotations

import pytest

from _backends import AsyncPostgreSQLBackend, AsyncSQLiteBackend
from loyaltykit.testing.contract import StorageContract
from loyaltykit.testing.contract.order_import import OrderImportContract


class TestAsyncSQLite(AsyncSQLiteBackend, StorageContract, OrderImportContract):
    pass


@pytest.mark.slow
class TestAsyncPostgreSQL(AsyncPostgreSQLBackend, StorageContract, OrderImportContract):
    pass
