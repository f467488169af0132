"""A facade per request: building and binding write nothing, bound facades read on a
read-only replica, the program version is stored by ``register()`` or the first write."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import (
    InvalidInput,
    Loyalty,
    MemberNotFound,
    Money,
    Program,
    ProgramVersionConflict,
    StorageError,
    TestClock,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.storage import Storage

PROGRAM = Program(id="bind", time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"))
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def _versions(storage: Storage) -> list[int]:
    with storage.unit_of_work(PROGRAM.id) as uow:
        return [v.version for v in uow.programs.program_versions()]


def _statements(engine: sa.Engine) -> Any:
    """A list that collects every statement ``engine`` runs from now on."""
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *rest: seen.append(sql))
    return seen


def test_building_a_facade_writes_nothing(storage: Storage) -> None:
    """On today's main the constructor stored the program version (a write)."""
    loyalty = Loyalty(PROGRAM, storage, clock=TestClock(NOW))
    assert [] == _versions(storage)
    # reads of a version never stored see an empty program
    with pytest.raises(MemberNotFound):
        loyalty.balance("alice")
    assert 0 == loyalty.reports.totals()[0].issued
    # the first write stores it, once
    loyalty.enrol("alice")
    loyalty.earn("alice", 10, key="k")
    assert [1] == _versions(storage)


def test_building_and_binding_run_no_insert(engine: sa.Engine) -> None:
    storage = SQLStorage(engine)
    seen = _statements(engine)
    loyalty = Loyalty(PROGRAM, storage, clock=TestClock(NOW))
    assert seen and not [s for s in seen if not s.lstrip().upper().startswith(
        ("SELECT", "BEGIN", "SET", "SAVEPOINT", "RELEASE", "ROLLBACK", "PRAGMA"))]
    seen.clear()
    loyalty.bind(storage)
    assert [] == seen  # binding to a storage runs no query either
    with engine.connect() as conn:
        seen.clear()
        loyalty.bind(conn)
        assert [] == seen  # binding checks nothing again: no query at all


def test_a_conflicting_version_is_refused_at_its_first_write(storage: Storage) -> None:
    first = Loyalty(PROGRAM, storage, clock=TestClock(NOW))
    changed = Loyalty(Program(id="bind", time_zone="UTC", currency="EUR",
                              point_value=Money("0.02", "EUR")), storage, clock=TestClock(NOW))
    first.enrol("alice")  # stores version 1 as ``first`` defines it
    with pytest.raises(ProgramVersionConflict):
        changed.enrol("bob")
    with pytest.raises(MemberNotFound):
        first.member("bob")
    # and a facade built now is refused at once, as before
    with pytest.raises(ProgramVersionConflict):
        Loyalty(changed.program, storage)


def test_register_stores_the_version_and_bound_facades_write_without_a_look(
        engine: sa.Engine) -> None:
    storage = SQLStorage(engine)
    loyalty = Loyalty(PROGRAM, storage, clock=TestClock(NOW))
    loyalty.register()
    loyalty.register()  # nothing if stored already
    assert [1] == _versions(storage)
    seen = _statements(engine)
    with engine.begin() as conn:
        bound = loyalty.bind(conn)
        bound.enrol("alice")
    assert not [s for s in seen if "lk_program" in s]  # known stored: not looked up
    assert "alice" == loyalty.member("alice").member_id


def test_a_bound_facade_joins_the_connections_transaction(engine: sa.Engine) -> None:
    loyalty = Loyalty(PROGRAM, SQLStorage(engine), clock=TestClock(NOW))
    with engine.connect() as conn, conn.begin() as tx:
        bound = loyalty.bind(conn)
        assert bound.clock is loyalty.clock and bound.program is loyalty.program
        bound.enrol("alice")
        bound.earn("alice", 25, key="order-1")
        assert 25 == bound.balance("alice").available
        tx.rollback()  # the points and the program's registration roll back together
    assert [] == _versions(SQLStorage(engine))


def test_bind_takes_a_storage_or_a_connection_only() -> None:
    loyalty = Loyalty(PROGRAM, MemoryStorage(), clock=TestClock(NOW))
    for bad in (None, 42, "sqlite://", MemoryStorage):
        with pytest.raises(InvalidInput):
            loyalty.bind(bad)  # type: ignore[arg-type]
    other = MemoryStorage()
    bound = loyalty.bind(other)
    bound.enrol("alice")  # another storage of its own: the version is stored there too
    assert [1] == _versions(other)


@pytest.fixture
def replica(engine: sa.Engine, tmp_path: Path) -> Iterator[sa.Engine]:
    """A read-only engine on ``engine``'s database, holding a member with points."""
    writer = Loyalty(PROGRAM, SQLStorage(engine), clock=TestClock(NOW))
    writer.enrol("alice")
    writer.earn("alice", 40, key="e1")
    if engine.dialect.name == "postgresql":
        made = sa.create_engine(engine.url, connect_args={
            "options": "-c default_transaction_read_only=on"})
    else:
        path = engine.url.database
        made = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    yield made
    made.dispose()


def _reads(loyalty: Loyalty) -> None:
    assert 40 == loyalty.balance("alice").available
    assert [40] == [line.points for line in loyalty.statement("alice").lines]
    assert [40] == [lot.remaining for lot in loyalty.lots("alice")]
    assert 40 == loyalty.reports.totals()[0].issued


def test_reads_work_on_a_read_only_replica_and_writes_raise(
        engine: sa.Engine, replica: sa.Engine) -> None:
    """On today's main building the facade failed there: ``cannot execute INSERT in a
    read-only transaction`` (SQLite: ``attempt to write a readonly database``)."""
    loyalty = Loyalty(PROGRAM, SQLStorage(replica), clock=TestClock(NOW))
    _reads(loyalty)
    if replica.dialect.name == "sqlite":
        # (PostgreSQL: once a pooled connection has read, SQLAlchemy's reset has
        # psycopg begin its writes READ WRITE, which a mere default_transaction_read_only
        # allows; a real standby refuses it. A read-only transaction: below and the
        # next test.)
        with pytest.raises(StorageError):
            loyalty.earn("alice", 5, key="on-the-replica")
    with replica.connect() as conn:
        bound = loyalty.bind(conn)
        _reads(bound)
        if replica.dialect.name == "sqlite":
            with pytest.raises(StorageError):
                bound.enrol("bob")
    fresh = Loyalty(PROGRAM, SQLStorage(engine))
    assert 40 == fresh.balance("alice").available  # nothing written
    with pytest.raises(MemberNotFound):
        fresh.member("bob")


def test_a_read_only_transaction_reads_through_a_bound_facade(engine: sa.Engine) -> None:
    loyalty = Loyalty(PROGRAM, SQLStorage(engine), clock=TestClock(NOW))
    loyalty.enrol("alice")
    loyalty.earn("alice", 40, key="e1")
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as conn, conn.begin():
        # a read-only transaction: PostgreSQL's own; SQLite's connection made query-only
        conn.exec_driver_sql("SET TRANSACTION READ ONLY" if postgres
                             else "PRAGMA query_only = ON")
        bound = loyalty.bind(conn)
        _reads(bound)
        with pytest.raises(StorageError):
            bound.earn("alice", 1, key="ro")
        _reads(bound)  # the host's transaction is still usable
        if not postgres:
            conn.exec_driver_sql("PRAGMA query_only = OFF")
