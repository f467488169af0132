"""The history import's batch size when the caller gives none: the storage's own
(``import_batch_size``, :class:`~loyaltykit.storage.BatchingStorage`), else the
import's default. On SQLite a batch's commit writes every page the batch touched to the
WAL, and a history's orders touch most leaf pages of the members' indexes once the
tables have grown: 10,000 orders a batch write a fraction of what 500 did."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import (
    EarningPolicy,
    InvalidInput,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    TestClock,
)
from loyaltykit._services.order_import import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.storage import BatchingStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)
PROGRAM = Program(id="shop", time_zone="UTC", currency="EUR",
                  point_value=Money("0.01", "EUR"),
                  earning=EarningPolicy(rules=(RateRule(id="rate"),)))


def _orders(count: int, members: int = 50) -> list[Order]:
    return [Order(id=f"o{i}", member_id=f"m{i % members}", currency="EUR",
                  placed_at=T0 + dt.timedelta(seconds=i),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money("3.00", "EUR")),))
            for i in range(count)]


def _loyalty(storage: Any) -> Loyalty:
    return Loyalty(PROGRAM, storage, clock=TestClock(T0.replace(year=2027)))


def test_a_sqlite_import_commits_once_per_10000_orders_unless_told(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/batches.sqlite")
    try:
        storage = SQLStorage(engine)
        storage.create_schema()
        checked: BatchingStorage = storage
        assert 10_000 == checked.import_batch_size
        commits: list[object] = []
        sa.event.listen(engine, "commit", commits.append)
        loyalty = _loyalty(storage)
        loyalty.register()
        commits.clear()  # registering the program committed
        result = loyalty.record_orders(_orders(1200), enrol=True)
        # one batch, one commit (the default of 500 orders took three of each)
        assert (1200, 1, 1) == (result.recorded, result.batches, len(commits))
        told = loyalty.record_orders(_orders(1300)[1200:], batch_size=40)
        assert (100, 3) == (told.recorded, told.batches)
        assert 1300 * 3 == loyalty.reports.totals()[0].issued
    finally:
        engine.dispose()


def test_postgresql_names_1000_orders_a_batch() -> None:
    storage = SQLStorage(sa.create_engine("postgresql+psycopg://nobody@localhost/none"))
    assert 1000 == storage.import_batch_size  # no connection is made to know it


def test_a_storage_without_a_size_of_its_own_takes_the_imports_default() -> None:
    assert not hasattr(MemoryStorage(), "import_batch_size")
    result = _loyalty(MemoryStorage()).record_orders(_orders(DEFAULT_BATCH_SIZE + 1),
                                                     enrol=True)
    assert (DEFAULT_BATCH_SIZE + 1, 2) == (result.recorded, result.batches)


class _Sized(MemoryStorage):
    def __init__(self, size: object) -> None:
        super().__init__()
        self.import_batch_size = size


@pytest.mark.parametrize("size", [0, MAX_BATCH_SIZE + 1, True, "5", 2.0])
def test_a_storage_naming_a_bad_size_is_refused_before_anything_is_written(
        size: object) -> None:
    storage = _Sized(size)
    loyalty = _loyalty(storage)
    with pytest.raises(InvalidInput, match="import_batch_size"):
        loyalty.record_orders(_orders(3), enrol=True)
    assert 0 == loyalty.reports.totals()[0].members


def test_a_storage_naming_a_size_is_imported_in_batches_of_it() -> None:
    result = _loyalty(_Sized(7)).record_orders(_orders(20), enrol=True)
    assert (20, 3) == (result.recorded, result.batches)
