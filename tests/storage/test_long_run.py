"""Long runs (``Storage.long_run``): on SQLite, fewer WAL checkpoints and a larger page
cache while due work or a history import runs, one checkpoint at the end, the
connections' own threshold and cache put back after."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, _checkpoints
from loyaltykit.storage import LongRunStorage, long_run
from loyaltykit.testing.contract.ledger_due import due_shop


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[SQLStorage]:
    made = SQLStorage.from_url(f"sqlite:///{tmp_path / 'runs.sqlite'}")
    made.create_schema()
    yield made
    made.dispose()


class Watched:
    """What a run did: each unit of work's long_run flag, the checkpoints run."""

    def __init__(self) -> None:
        self.seen: list[bool] = []
        self.checkpoints: list[object] = []


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> Watched:
    found = Watched()
    set_long_run = _checkpoints.set_long_run

    def spy(conn: sa.Connection, on: bool) -> None:
        found.seen.append(on)
        set_long_run(conn, on)

    monkeypatch.setattr("loyaltykit.sql.uow.set_long_run", spy)
    monkeypatch.setattr("loyaltykit.sql.storage.checkpoint", found.checkpoints.append)
    return found


def threshold(storage: SQLStorage) -> int:
    """The WAL checkpoint threshold a unit of work of ``storage`` runs with."""
    with storage.unit_of_work("p") as uow:
        return int(uow.connection().exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one())


def test_a_long_run_raises_the_threshold_and_puts_the_connections_own_back(
        storage: SQLStorage) -> None:
    runs: LongRunStorage = storage  # (the port part, checked statically)
    assert runs is storage
    own = threshold(storage)
    assert own == 1000  # SQLite's default
    with storage.long_run():
        assert threshold(storage) == _checkpoints.LONG_RUN_PAGES
        with storage.long_run():  # runs may overlap: the first to end keeps it raised
            pass
        assert threshold(storage) == _checkpoints.LONG_RUN_PAGES
    assert threshold(storage) == own


def cache_size(storage: SQLStorage) -> int:
    """The ``PRAGMA cache_size`` a unit of work of ``storage`` runs with."""
    with storage.unit_of_work("p") as uow:
        return int(uow.connection().exec_driver_sql("PRAGMA cache_size").scalar_one())


def test_a_long_run_gives_its_units_of_work_a_larger_cache_and_puts_the_own_back(
        storage: SQLStorage) -> None:
    own = cache_size(storage)
    assert own == -2000  # SQLite's default: 2,000 KiB
    with storage.long_run():
        assert cache_size(storage) == -_checkpoints.LONG_RUN_CACHE_KIB
    assert cache_size(storage) == own


def test_a_connections_own_larger_cache_is_left_as_it_is(storage: SQLStorage) -> None:
    @sa.event.listens_for(storage._engine, "connect")
    def own(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute("PRAGMA cache_size = -200000")  # type: ignore[attr-defined]

    storage._engine.dispose()
    with storage.long_run():
        assert cache_size(storage) == -200000
    assert cache_size(storage) == -200000


def test_a_connections_own_threshold_is_the_one_put_back(storage: SQLStorage) -> None:
    # a host's engine may set its own: the run puts that back, not SQLite's default
    @sa.event.listens_for(storage._engine, "connect")
    def own(dbapi_connection: object, _record: object) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint = 321")  # type: ignore[attr-defined]

    storage._engine.dispose()  # new connections: with the listener
    assert threshold(storage) == 321
    with storage.long_run():
        assert threshold(storage) == _checkpoints.LONG_RUN_PAGES
    assert threshold(storage) == 321


def test_the_last_run_to_end_checkpoints_once(storage: SQLStorage,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    done: list[object] = []
    monkeypatch.setattr("loyaltykit.sql.storage.checkpoint", done.append)
    with storage.long_run():
        with storage.long_run():
            pass
        assert done == []
    assert done == [storage._engine]


def test_a_host_connection_and_other_backends_are_left_as_they_are(
        storage: SQLStorage) -> None:
    with storage._engine.connect() as conn:
        hosted = SQLStorage(conn)
        with hosted.long_run(), hosted.unit_of_work("p") as uow:
            pages = uow.connection().exec_driver_sql("PRAGMA wal_autocheckpoint")
            assert pages.scalar_one() == 1000
    # no long_run of its own: a block that does nothing
    assert isinstance(long_run(MemoryStorage()), contextlib.nullcontext)


def test_due_work_runs_as_one_long_run(storage: SQLStorage, watched: Watched) -> None:
    """Every unit of work of run_due begins inside the run; one checkpoint ends it."""
    shop, _ = due_shop(storage, "p", 12)
    watched.seen.clear()  # (the shop's history: no long run)
    report = shop.loyalty.run_due(batch_size=5)
    assert report.members == 16  # wallets: every third member has a second
    assert len(watched.seen) >= 3 and all(watched.seen)  # the batches' units of work
    assert watched.checkpoints == [storage._engine]


def test_a_history_import_runs_as_one_long_run(storage: SQLStorage,
                                               watched: Watched) -> None:
    """Every unit of work of record_orders begins inside the run; one checkpoint ends
    it."""
    from loyaltykit import Loyalty, Money, Order, OrderLine, Program, TestClock

    clock = TestClock(dt.datetime(2026, 3, 1, 10, tzinfo=dt.UTC))
    loyalty = Loyalty(Program(id="p", time_zone="Europe/Berlin", currency="EUR",
                              point_value=Money("0.01", "EUR")), storage, clock=clock)
    orders = [Order(id=f"o{i}", member_id=f"m{i % 4}", currency="EUR",
                    placed_at=dt.datetime(2026, 2, 1 + i, 10, tzinfo=dt.UTC),
                    lines=(OrderLine(sku="a", quantity=1, unit_price=Money("10", "EUR")),))
              for i in range(9)]
    watched.seen.clear()
    result = loyalty.record_orders(orders, enrol=True, batch_size=3)
    assert result.recorded == 9
    assert len(watched.seen) >= 3 and all(watched.seen)
    assert watched.checkpoints == [storage._engine]
