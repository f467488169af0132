"""Checks specific to the SQLAlchemy backend on SQLite (the shared contract suite is in
the tests/*/test_*_contract.py): engine settings, error translation, schema constraints,
joining a host application's transaction, and agreement with MemoryStorage."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import (
    Account,
    DuplicateKey,
    ExpiryPolicy,
    InsufficientPoints,
    InvalidInput,
    Kind,
    LedgerPolicy,
    Lot,
    Loyalty,
    Member,
    Money,
    Posting,
    Program,
    ReadOnlyViolation,
    StorageError,
    TestClock,
    Transaction,
)
from loyaltykit._model import OrderRecord, OrderStatus, ProgramVersion, RuleUsage
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.storage import AccountState, IdempotencyRecord
from loyaltykit.testing.changes import ChangeSet, write_changes

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def make_program(program_id: str = "shop") -> Program:
    return Program(
        id=program_id, time_zone="Europe/Berlin", currency="EUR",
        point_value=Money("0.01", "EUR"),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(days=30)),
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def storage(db_path: Path) -> Iterator[SQLStorage]:
    storage = SQLStorage.from_url(f"sqlite:///{db_path}")
    storage.create_schema()
    storage.register_program(_version(1))
    yield storage
    storage.dispose()


def _version(number: int, definition: dict[str, Any] | None = None, *,
             at: dt.datetime = T0) -> ProgramVersion:
    return ProgramVersion("shop", number, None, definition or make_program().to_dict(), at)


def _enrolment(member_id: str, key: str) -> ChangeSet:
    changes = ChangeSet()
    changes.members.append(Member("shop", member_id, T0))
    changes.accounts[(member_id, "points")] = AccountState(member_id, "points")
    changes.new_accounts.add((member_id, "points"))
    changes.idempotency.append(IdempotencyRecord(key, "f", "{}", T0, member_id))
    return changes


def _write(storage: SQLStorage, changes: ChangeSet) -> None:
    with storage.unit_of_work("shop") as uow:
        write_changes(uow, changes)
        uow.commit()


def _adjustment(member_id: str, points: int, *, reverses: uuid.UUID | None = None
                ) -> Transaction:
    return Transaction(
        id=uuid.uuid4(), program_id="shop", member_id=member_id, wallet="points",
        kind=Kind.REVERSE if reverses else Kind.ADJUST, occurred_at=T0, recorded_at=T0,
        postings=(Posting(Account.AVAILABLE, points), Posting(Account.ADJUSTMENTS, -points)),
        reverses_id=reverses,
    )


# -- engine settings ----------------------------------------------------------------------


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(
    storage: SQLStorage,
) -> None:
    with storage._engine.connect() as conn:
        pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "foreign_keys", "busy_timeout")}
    assert {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000} == pragmas


def test_a_unit_of_work_takes_the_write_lock_at_once(storage: SQLStorage, db_path: Path
                                                     ) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with storage.unit_of_work("shop"):
            # BEGIN IMMEDIATE: a second writer is refused before the first one wrote ...
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
            # ... while plain readers are not blocked (WAL)
            assert 1 == other.execute("SELECT count(*) FROM lk_programs").fetchone()[0]
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_a_busy_database_is_a_storage_error(storage: SQLStorage, db_path: Path) -> None:
    # give up at once instead of after the 30 s busy timeout
    sa.event.listen(storage._engine, "connect",
                    lambda dbapi, record: dbapi.execute("PRAGMA busy_timeout = 0"))
    storage._engine.dispose()
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="locked") as info, storage.unit_of_work("shop"):
            pass
        assert isinstance(info.value.__cause__, sa.exc.OperationalError)
        other.execute("ROLLBACK")
    finally:
        other.close()
    with storage.unit_of_work("shop") as uow:
        assert uow.ledger.get_member("a") is None


def test_dispose_leaves_a_callers_engine_alone(db_path: Path) -> None:
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        storage = SQLStorage(engine)
        storage.create_schema()
        storage.dispose()
        assert "shop" not in {row[0] for row in _rows(engine, "SELECT id FROM lk_programs")}
        storage.register_program(_version(1))  # still usable
        assert [("shop",)] == _rows(engine, "SELECT id FROM lk_programs")
    finally:
        engine.dispose()


def test_a_bad_url_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        SQLStorage.from_url("no-such-dialect://nowhere")
    with pytest.raises(InvalidInput):
        SQLStorage(object())  # type: ignore[arg-type]


def test_register_program_keeps_the_first_definition_of_each_version(storage: SQLStorage
                                                                    ) -> None:
    later = T0 + dt.timedelta(days=1)
    storage.register_program(_version(1, {"changed": True}, at=later))
    storage.register_program(_version(2, {"changed": True}, at=later))
    # the program's own row keeps the definition it was registered with
    assert [("shop",)] == _rows(storage._engine, "SELECT id FROM lk_programs")
    with storage._engine.connect() as conn:
        definition = conn.scalar(sa.select(SQLStorage.metadata.tables["lk_programs"].c.definition))
    assert make_program().to_dict() == definition
    with storage.unit_of_work("shop") as uow:
        assert [_version(1), _version(2, {"changed": True},
                                      at=later)] == uow.programs.program_versions()


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("second", "detail"), [
    (_enrolment("b", "k-a"), {"key": "k-a"}),  # idempotency key per program
    (_enrolment("a", "k-b"), {"member_id": "a"}),  # member id per program
])
def test_unique_violations_become_duplicate_key(
    storage: SQLStorage, second: ChangeSet, detail: dict[str, str]
) -> None:
    _write(storage, _enrolment("a", "k-a"))
    with pytest.raises(DuplicateKey) as info, storage.unit_of_work("shop") as uow:
        write_changes(uow, second)
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert {"program_id": "shop", **detail} == info.value.details
    with storage.unit_of_work("shop") as uow:
        assert uow.keys.get_idempotency("k-b") is None
        assert uow.ledger.get_member("b") is None


def _order(order_id: str, member_id: str = "a", **changes: Any) -> OrderRecord:
    fields: dict[str, Any] = {
        "program_id": "shop", "order_id": order_id, "member_id": member_id, "placed_at": T0,
        "version": 1, "order": {"id": order_id, "lines": [{"id": "l1", "quantity": 1}]},
        "returned": {}, "status": OrderStatus.OPEN, "points": 10,
        "evaluation": {"points": 10}, "earn_id": None, "payments": (), "created_at": T0,
        "updated_at": T0,
    }
    return OrderRecord(**{**fields, **changes})


def test_a_duplicate_order_is_duplicate_key(storage: SQLStorage) -> None:
    _write(storage, _enrolment("a", "k-a"))
    _write(storage, ChangeSet(orders={"o1": _order("o1")}, new_orders={"o1"}))
    with pytest.raises(DuplicateKey) as info, storage.unit_of_work("shop") as uow:
        write_changes(uow, ChangeSet(orders={"o1": _order("o1", points=3)}, new_orders={"o1"}))
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert {"program_id": "shop", "order_id": "o1"} == info.value.details


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_an_update_of_an_unknown_order_is_a_storage_error(storage: SQLStorage, backend: str
                                                          ) -> None:
    store = storage if backend == "sqlite" else MemoryStorage()
    store.register_program(_version(1))
    with store.unit_of_work("shop") as uow:
        write_changes(uow, _enrolment("a", "k-a"))
        uow.commit()
    with pytest.raises(StorageError, match="orders") as info, store.unit_of_work("shop") as uow:
        write_changes(uow, ChangeSet(orders={"o1": _order("o1")}))
    assert not isinstance(info.value, DuplicateKey)


def test_orders_and_usage_are_stored_as_plain_values(storage: SQLStorage) -> None:
    _write(storage, _enrolment("a", "k-a"))
    payments = (uuid.UUID(int=2), uuid.UUID(int=1))
    order = _order("o1", payments=payments, status=OrderStatus.CANCELLED)
    usage = RuleUsage("shop", "a", "order:o1", "base", "promo", T0,
                      Decimal("0.333333333333333333333333333"), 2)
    _write(storage, ChangeSet(orders={"o1": order}, new_orders={"o1"}, usage=[usage]))
    assert [("cancelled", "0.333333333333333333333333333")] == _rows(
        storage._engine, "SELECT status, u.points FROM lk_orders JOIN lk_rule_usage u "
                         "ON u.source = 'order:' || lk_orders.order_id")
    with storage._engine.connect() as conn:
        stored = conn.scalar(sa.select(SQLStorage.metadata.tables["lk_orders"].c.payments))
    assert [str(p) for p in payments] == stored


def test_the_order_status_is_checked_by_the_database(storage: SQLStorage) -> None:
    _write(storage, _enrolment("a", "k-a"))
    _write(storage, ChangeSet(orders={"o1": _order("o1")}, new_orders={"o1"}))
    with pytest.raises(sa.exc.IntegrityError, match="CHECK"), storage._engine.begin() as conn:
        conn.exec_driver_sql("UPDATE lk_orders SET status = 'lost'")


def test_a_second_reversal_of_a_transaction_is_duplicate_key(storage: SQLStorage) -> None:
    _write(storage, _enrolment("a", "k-a"))
    original = _adjustment("a", 5)
    _write(storage, ChangeSet(transactions=[original]))
    _write(storage, ChangeSet(transactions=[_adjustment("a", -5, reverses=original.id)]))
    with pytest.raises(DuplicateKey) as info, storage.unit_of_work("shop") as uow:
        write_changes(uow, ChangeSet(transactions=[_adjustment("a", -5, reverses=original.id)]))
    assert original.id == info.value.details["reverses_id"]
    with storage.unit_of_work("shop") as uow:
        assert uow.ledger.find_reversal(original.id) is not None


def test_other_integrity_errors_are_storage_errors_not_duplicate_key(
    storage: SQLStorage,
) -> None:
    tx = _adjustment("ghost", 5)  # no such member: a foreign key fails
    with pytest.raises(StorageError) as info, storage.unit_of_work("shop") as uow:
        write_changes(uow, ChangeSet(transactions=[tx]))
    assert not isinstance(info.value, DuplicateKey)
    assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
    assert "IntegrityError" == info.value.details["error"]


def test_the_lot_bounds_are_checked_by_the_database(storage: SQLStorage) -> None:
    _write(storage, _enrolment("a", "k-a"))
    earn = _adjustment("a", 10)
    _write(storage, ChangeSet(transactions=[earn]))
    bad = Lot(uuid.uuid4(), "shop", "a", "points", earn.id, amount=10, remaining=11, held=0,
              earned_at=T0, activates_at=None, expires_at=None, pending=False)
    row = {"id": bad.id, "program_id": "shop", "member_id": "a", "wallet": "points",
           "transaction_id": earn.id, "amount": 10, "remaining": 11, "held": 0,
           "earned_at": T0, "activates_at": None, "expires_at": None, "pending": False}
    lots = SQLStorage.metadata.tables["lk_lots"]
    with pytest.raises(sa.exc.IntegrityError, match="CHECK"), storage._engine.begin() as conn:
        conn.execute(lots.insert(), row)
    with pytest.raises(StorageError, match="CHECK"), storage.unit_of_work("shop") as uow:
        write_changes(uow, ChangeSet(lots={bad.id: bad}, new_lots={bad.id}))
    with storage.unit_of_work("shop") as uow:
        assert [] == uow.ledger.load_lots_by_id([bad.id], member_id="a")


def test_a_missing_schema_is_a_storage_error(tmp_path: Path) -> None:
    storage = SQLStorage.from_url(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    try:
        with pytest.raises(StorageError, match="no such table"):
            storage.register_program(_version(1, {}))
        with pytest.raises(StorageError), storage.unit_of_work("shop") as uow:
            uow.ledger.get_member("a")
    finally:
        storage.dispose()


def test_naive_datetimes_are_refused_and_others_come_back_in_utc(storage: SQLStorage
                                                                ) -> None:
    _write(storage, _enrolment("a", "k-a"))
    plus_two = dt.timezone(dt.timedelta(hours=2))
    tx = Transaction(
        id=uuid.uuid4(), program_id="shop", member_id="a", wallet="points", kind=Kind.ADJUST,
        occurred_at=T0.astimezone(plus_two), recorded_at=T0, postings=(),
    )
    _write(storage, ChangeSet(transactions=[tx]))
    with storage.unit_of_work("shop") as uow:
        stored = uow.ledger.get_transaction(tx.id)
    assert stored is not None
    assert (T0, dt.UTC) == (stored.occurred_at, stored.occurred_at.tzinfo)
    with pytest.raises(StorageError, match="naive"), storage.unit_of_work("shop") as uow:
        uow.ledger.sums_as_of("points", "a", T0.replace(tzinfo=None))


def test_writes_after_a_commit_need_another_commit(storage: SQLStorage) -> None:
    with storage.unit_of_work("shop") as uow:
        write_changes(uow, _enrolment("a", "k-a"))
        uow.commit()
        write_changes(uow, _enrolment("b", "k-b"))
    with storage.unit_of_work("shop") as uow:
        assert (True, False) == (uow.ledger.get_member("a") is not None,
                                 uow.ledger.get_member("b") is not None)


# -- joining the host's transaction --------------------------------------------------------


def _rows(engine: sa.Engine, sql: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.exec_driver_sql(sql)]


@pytest.fixture(params=["loyaltykit", "plain", "postgresql"])
def host_engine(request: pytest.FixtureRequest, db_path: Path) -> Iterator[sa.Engine]:
    """An engine of the host application: on SQLite made by loyaltykit.sql.create_engine
    or by plain SQLAlchemy (pysqlite's legacy transaction mode); or a plain SQLAlchemy
    engine on a new database of the session's PostgreSQL server."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            from conftest import POSTGRESQL

            url = stack.enter_context(POSTGRESQL.empty_database())
            engine = sa.create_engine(url)
        else:
            url = f"sqlite:///{db_path}"
            engine = create_engine(url) if request.param == "loyaltykit" else sa.create_engine(url)
        SQLStorage(engine).create_schema()
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        yield engine
        engine.dispose()


def _place_order(conn: sa.Connection, clock: TestClock) -> Loyalty:
    loyalty = Loyalty(make_program(), SQLStorage(conn), clock=clock)
    loyalty.enrol("alice")
    loyalty.earn("alice", 100, key="order-1")
    conn.exec_driver_sql("INSERT INTO orders VALUES ('order-1')")
    return loyalty


def test_writes_on_a_host_connection_commit_with_the_host(host_engine: sa.Engine) -> None:
    clock = TestClock(T0)
    with host_engine.connect() as conn, conn.begin():
        loyalty = _place_order(conn, clock)
        # a failed loyaltykit write rolls back its savepoint only
        with pytest.raises(InsufficientPoints):
            loyalty.spend("alice", 1000, key="too-much")
        assert 100 == loyalty.balance("alice").available
    assert [("order-1",)] == _rows(host_engine, "SELECT id FROM orders")
    storage = SQLStorage(host_engine)
    assert 100 == Loyalty(make_program(), storage, clock=clock).balance("alice").available


def test_writes_on_a_host_connection_roll_back_with_the_host(host_engine: sa.Engine) -> None:
    clock = TestClock(T0)
    with host_engine.connect() as conn:
        conn.begin()
        loyalty = _place_order(conn, clock)
        assert 100 == loyalty.balance("alice").available
        conn.rollback()
    for table in ("orders", "lk_programs", "lk_members", "lk_transactions", "lk_lots"):
        assert [] == _rows(host_engine, f"SELECT * FROM {table}")


def test_a_host_connection_without_a_transaction_gets_one(host_engine: sa.Engine) -> None:
    with host_engine.connect() as conn:
        _place_order(conn, TestClock(T0))
        assert conn.in_transaction()  # the host's, like an autobegin: the host commits
        conn.rollback()
    assert [] == _rows(host_engine, "SELECT * FROM lk_members")


def test_reads_on_a_host_connection_leave_its_transaction_as_it_was(
        host_engine: sa.Engine) -> None:
    clock = TestClock(T0)
    with host_engine.connect() as conn, conn.begin():
        loyalty = _place_order(conn, clock)
        assert 100 == loyalty.balance("alice").available  # a read-only SAVEPOINT
        with SQLStorage(conn).read_unit_of_work("shop") as uow:
            assert uow.ledger.get_member("bob") is None
            with pytest.raises(ReadOnlyViolation):
                write_changes(uow, _enrolment("bob", "k-bob"))
        # the host's transaction still writes, its own rows and loyaltykit's
        conn.exec_driver_sql("INSERT INTO orders VALUES ('order-2')")
        assert 105 == loyalty.earn("alice", 5, key="order-2").balance.available
    assert [("order-1",), ("order-2",)] == _rows(host_engine, "SELECT id FROM orders ORDER BY id")
    storage = SQLStorage(host_engine)
    assert 105 == Loyalty(make_program(), storage, clock=clock).balance("alice").available
    with storage.unit_of_work("shop") as uow:
        assert uow.ledger.get_member("bob") is None


# -- the facade on SQLite agrees with MemoryStorage ------------------------------------------


def _counter_ids() -> Callable[[], uuid.UUID]:
    counter = itertools.count(1)
    return lambda: uuid.UUID(int=(1 << 76) | next(counter))


def _script(loyalty: Loyalty, clock: TestClock) -> list[Any]:
    """A day in the life of a shop; returns every observable result."""
    seen: list[Any] = []
    for member in ("alice", "bob"):
        seen.append(loyalty.enrol(member))
    earn = loyalty.earn("alice", 100, key="order-1", metadata={"order_id": "1"})
    seen.append(earn)
    seen.append(loyalty.earn("alice", 50, key="order-2",
                             activates_at=T0 + dt.timedelta(days=14)))
    clock.advance(days=1)
    spend = loyalty.spend("alice", 30, key="pay-1")
    seen.append(spend)
    hold = loyalty.hold("alice", 40, key="cart-1", ttl=dt.timedelta(minutes=15))
    seen.append(hold)
    seen.append(loyalty.capture(hold.hold_id, 25, key="paid-1"))
    stale = loyalty.hold("alice", 10, key="cart-2", ttl=dt.timedelta(minutes=15))
    seen.append(stale)
    seen.append(loyalty.reverse(spend.transaction_id, key="refund-1"))
    seen.append(loyalty.transfer("alice", "bob", 20, key="gift-1"))
    seen.append(loyalty.clawback("bob", 35, key="return-1"))
    seen.append(loyalty.bulk_earn({"alice": 5, "bob": 5}, key="campaign"))
    clock.advance(days=20)
    seen.append(loyalty.run_due())
    seen.append(loyalty.run_due())
    clock.advance(days=30)
    seen.append(loyalty.run_due(batch_size=1))
    seen.append(loyalty.earn("bob", 7, key="order-3"))
    seen.append(loyalty.earn("alice", 100, key="order-1", metadata={"order_id": "1"}))  # replay
    for member in ("alice", "bob"):
        seen.append(loyalty.balance(member))
        seen.append(loyalty.balance(member, as_of=T0 + dt.timedelta(days=1, minutes=1)))
        seen.append(loyalty.lots(member))
        cursor = None
        while True:
            page = loyalty.statement(member, limit=3, cursor=cursor)
            seen.append(page)
            for line in page.lines:
                seen.append(loyalty.transaction(line.transaction_id))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    seen.append(loyalty.hold_info(hold.hold_id))
    seen.append(loyalty.hold_info(stale.hold_id))
    return seen


def test_the_facade_on_sqlite_agrees_with_memory(storage: SQLStorage) -> None:
    results = []
    for backend in (MemoryStorage(), storage):
        clock = TestClock(T0)
        loyalty = Loyalty(make_program(), backend, clock=clock, new_id=_counter_ids())
        results.append(_script(loyalty, clock))
    memory, sqlite = results
    assert len(memory) == len(sqlite)
    for expected, actual in zip(memory, sqlite, strict=True):
        assert expected == actual


def test_a_bad_url_is_reported_without_its_password() -> None:
    with pytest.raises(InvalidInput) as info:
        SQLStorage.from_url("bogus://shop:s3cret@db.example/loyalty")
    assert "s3cret" not in str(info.value)
    assert "bogus://shop:***@db.example/loyalty" == info.value.details["url"]


def test_documents_beyond_what_orjson_encodes_are_stored_exactly(db_path: Path) -> None:
    """JSON columns are written with orjson on SQLite; values it refuses (integers
    beyond 64 bits; a lone surrogate too, but no valid input holds one) take the
    standard encoder and come back exact, and so do the ones it writes (non-ASCII text,
    floats, nesting)."""
    from loyaltykit import Order, OrderLine

    storage = SQLStorage.from_url(f"sqlite:///{db_path}")
    storage.create_schema()
    clock = TestClock(T0)
    loyalty = Loyalty(make_program(), storage, clock=clock)
    plain = {"name": "Zoë ☕", "ratio": 0.1, "nested": {"list": [1, None, True]}}
    for member_id, attributes in (("big", {"n": 2**70}), ("plain", plain)):
        loyalty.enrol(member_id, attributes=attributes)
        assert attributes == dict(loyalty.member(member_id).attributes)
    order = Order(id="o1", member_id="plain", placed_at=T0, currency="EUR",
                  lines=(OrderLine(sku="s", quantity=1, unit_price=Money("5.00", "EUR")),),
                  attributes={"huge": -(2**80), **plain})
    first = loyalty.record_order(order)
    assert first == loyalty.record_order(order)  # the same fingerprint: a replay
    assert order.to_dict() == dict(loyalty.order("o1").order)
    assert order == Order.from_dict(loyalty.order("o1").order)
    storage.dispose()
