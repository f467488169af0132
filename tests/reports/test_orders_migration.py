"""Migration 0013 fills the order amounts of the orders stored before it, with real
Alembic on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from loyaltykit import Loyalty, Money, Order, OrderLine, TestClock
from loyaltykit.sql import VERSION_TABLE, SQLStorage
from loyaltykit.testing.contract import make_program


@pytest.fixture
def storage(unmigrated_storage: SQLStorage) -> SQLStorage:
    """A storage on an empty database, no schema yet (SQLite file, then PostgreSQL)."""
    return unmigrated_storage


def _amounts(storage: SQLStorage) -> dict[str, tuple[Any, Any]]:
    with storage._engine.connect() as conn:
        return {o: (c, n) for o, c, n in conn.execute(sa.text(
            "SELECT order_id, currency, net_amount FROM lk_orders"))}


def _differences(storage: SQLStorage) -> list[Any]:
    with storage._engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True})
        return list(compare_metadata(context, SQLStorage.metadata))


def test_0013_fills_the_amounts_of_the_orders_stored_before_it(storage: SQLStorage) -> None:
    """The store writes each order's currency and net goods now (NULL when it does not
    count); downgrading drops them, upgrading fills them again with the same values
    (a partial return, a cancellation, a full return, an untouched order)."""
    storage.upgrade()
    clock = TestClock(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    loyalty = Loyalty(make_program("mig"), storage, clock=clock)
    loyalty.enrol("m")

    def order(oid: str, *lines: tuple[str, int, str]) -> None:
        loyalty.record_order(Order(
            id=oid, member_id="m", placed_at=clock.now(), currency="EUR",
            shipping=Money("4.90", "EUR"),
            lines=tuple(OrderLine(line_id=i, sku=i, quantity=q, unit_price=Money(p, "EUR"),
                                  discount=Money("1.00", "EUR") if i == "d" else None)
                        for i, q, p in lines)))

    order("kept", ("a", 1, "19.99"))
    order("part", ("a", 2, "10.00"), ("d", 3, "2.50"))
    order("cancelled", ("a", 1, "5.00"))
    order("gone", ("a", 1, "5.00"))
    loyalty.record_return("part", {"d": 1}, key="r1")
    loyalty.cancel_order("cancelled")
    loyalty.record_return("gone", {"a": 1}, key="r2")
    written = _amounts(storage)
    # part: 2 x 10.00 + 2 x 2.50 - 1.00 x 2/3 (the discount's share, to 18 places)
    assert {"kept": ("EUR", "19.99"), "cancelled": ("EUR", None), "gone": ("EUR", None)
            } == {k: v for k, v in written.items() if k != "part"}
    assert Decimal("24.333333333333333333") == Decimal(written["part"][1])
    config = storage.alembic_config()
    with storage._engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0012")
    with storage._engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("lk_orders")}
    assert not columns & {"currency", "net_amount"}
    storage.upgrade()
    assert [] == _differences(storage)
    assert written == _amounts(storage)
    assert [("m", "kept"), ("m", "part")] == [
        (p.member_id, p.order_id) for p in loyalty.reports.purchases()]
