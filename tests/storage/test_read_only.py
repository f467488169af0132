"""Reads on a SQLite file run alongside a writer: the facade's reads use the storage's
read-only unit of work, a deferred ``BEGIN`` that takes no write lock (WAL), while
writes still begin with ``BEGIN IMMEDIATE``. (That a read-only unit of work refuses
writes on every backend is in the shipped contract, LedgerWriteContract.)"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loyaltykit import Loyalty, MemberNotFound, Money, Program, StorageError, TestClock
from loyaltykit.sql import SQLStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)
PROGRAM = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                  point_value=Money("0.01", "EUR"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def storage(db_path: Path) -> Iterator[SQLStorage]:
    storage = SQLStorage.from_url(f"sqlite:///{db_path}")
    storage.create_schema()
    # a lock is refused at once instead of after the 30 s busy timeout: a read that
    # waited for the writer fails here instead of passing late
    sa.event.listen(storage._engine, "connect",
                    lambda dbapi, record: dbapi.execute("PRAGMA busy_timeout = 0"))
    storage._engine.dispose()  # the schema's pooled connection has the 30 s timeout
    yield storage
    storage.dispose()


@pytest.fixture
def writer(db_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection to the file, holding the write lock with uncommitted rows."""
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def _hold_the_write_lock(other: sqlite3.Connection) -> None:
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE lk_accounts SET available = 999")
    other.execute("INSERT INTO lk_member_ids SELECT program_id, 'ghost', 'ghost-key'"
                  " FROM lk_member_ids")
    other.execute("INSERT INTO lk_members SELECT program_id, 'ghost-key', enrolled_at,"
                  " attributes FROM lk_members")


def test_reads_run_alongside_an_open_write_transaction(
        storage: SQLStorage, writer: sqlite3.Connection) -> None:
    loyalty = Loyalty(PROGRAM, storage, clock=TestClock(T0))
    loyalty.enrol("m")
    loyalty.earn("m", 100, key="a")
    _hold_the_write_lock(writer)
    # the reads see the last committed state, not the writer's rows
    assert 100 == loyalty.balance("m").available
    assert [100] == [line.points for line in loyalty.statement("m").lines]
    assert [100] == [lot.remaining for lot in loyalty.lots("m")]
    with pytest.raises(MemberNotFound):
        loyalty.member("ghost")
    [totals] = loyalty.reports.totals()
    assert (1, 100) == (totals.members, totals.outstanding)
    # a write still takes the write lock first, so it waits for the writer (here: fails)
    with pytest.raises(StorageError, match="locked"):
        loyalty.earn("m", 5, key="b")
    writer.execute("ROLLBACK")
    # the pooled connection the reads used writes again
    assert 105 == loyalty.earn("m", 5, key="b").balance.available
    assert 105 == loyalty.balance("m").available


def test_a_read_only_unit_of_work_keeps_its_snapshot_while_a_writer_commits(
        storage: SQLStorage, writer: sqlite3.Connection) -> None:
    loyalty = Loyalty(PROGRAM, storage, clock=TestClock(T0))
    loyalty.enrol("m")
    [(key,)] = writer.execute("SELECT member_id FROM lk_member_ids").fetchall()
    with storage.read_unit_of_work("shop") as uow:
        state = uow.ledger.get_account("points", key)  # its snapshot begins here
        assert state is not None and 0 == state.available
        _hold_the_write_lock(writer)  # no lock of the reader's is in the way
        writer.execute("COMMIT")
        state = uow.ledger.get_account("points", key)
        assert state is not None and 0 == state.available  # still what it saw first
        assert uow.ledger.get_member("ghost-key") is None
    assert 999 == loyalty.balance("m").available  # a new read sees the commit
    assert loyalty.member("ghost").member_id == "ghost"
