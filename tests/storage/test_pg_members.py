"""PostgreSQL's many-member ledger reads read only the members asked for, whatever the
tables' statistics (loyaltykit.sql._pg_members).

Their statement named the members as ``member_id IN (SELECT json_array_elements_text(...))``
and left the join to the planner: with statistics older than the table (a history
import writes a program's members faster than autovacuum analyses them) it scanned
every row of the program and compared each with every member named, so a history
import's batches slowed down as its members grew (9 s for one batch at 20,000 accounts).
Here the statistics are those of the program's first members, then ten times as many
are enrolled, as in an import: a read of a few members must fetch their rows only
(the server's own counters of the transaction), and return what one-member reads do.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import POSTGRESQL
from loyaltykit import (
    EarningPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    TestClock,
)
from loyaltykit.sql import SQLStorage, create_engine

T0 = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
FIRST = 20  # members the statistics know
MEMBERS = 400  # members in all
ASKED = 30  # members a read names
HOLDING = 30  # members with an open hold (the first ones)
TABLES = ("lk_accounts", "lk_lots", "lk_holds", "lk_hold_allocations")


def _orders(start: int, stop: int) -> list[Order]:
    return [Order(id=f"o{i}", member_id=f"m{i:04d}", currency="EUR",
                  placed_at=T0 + dt.timedelta(minutes=i),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money("30.00", "EUR")),))
            for i in range(start, stop)]


@pytest.fixture(scope="module")
def stale() -> Iterator[tuple[SQLStorage, str]]:
    """A program of MEMBERS members with a lot each, HOLDING of them with an open
    hold, on tables whose statistics know the first FIRST members only."""
    program = Program(id="shop", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)))
    with POSTGRESQL.empty_database() as url:
        engine = create_engine(url)
        try:
            storage = SQLStorage(engine)
            storage.create_schema()
            with engine.begin() as conn:  # no analysis but the one below
                for table in TABLES:
                    conn.exec_driver_sql(
                        f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
            loyalty = Loyalty(program, storage, clock=TestClock(T0 + dt.timedelta(days=30)))
            loyalty.record_orders(_orders(0, FIRST), enrol=True)
            for i in range(2):
                loyalty.hold(f"m{i:04d}", 5, key=f"h{i}", ttl=dt.timedelta(days=9))
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
            loyalty.record_orders(_orders(FIRST, MEMBERS), enrol=True, batch_size=MEMBERS)
            for i in range(2, HOLDING):
                loyalty.hold(f"m{i:04d}", 5, key=f"h{i}", ttl=dt.timedelta(days=9))
            yield storage, program.id
        finally:
            engine.dispose()


def _fetched(conn: sa.Connection) -> dict[str, int]:
    """Rows this transaction has fetched from each table, by scan or index."""
    rows = conn.exec_driver_sql(
        "SELECT relname, coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
        "FROM pg_stat_xact_user_tables").all()
    return {name: int(n) for name, n in rows if name in TABLES}


def _read(stale: tuple[SQLStorage, str], read: str) -> tuple[Any, Any, dict[str, int]]:
    """The many-member read ``read`` of ASKED members (spread over the program, one
    not enrolled), what one-member reads give for them, and the rows it fetched."""
    storage, program_id = stale
    with storage.unit_of_work(program_id) as uow:
        ledger = uow.ledger
        conn = uow.connection()
        # the ledger's own member ids (the orders' ids are keys of the members)
        ids = conn.exec_driver_sql("SELECT member_id FROM lk_accounts").scalars().all()
        asked = [*sorted(ids)[::MEMBERS // ASKED][:ASKED - 1], "nobody"]
        random.Random(7).shuffle(asked)
        before = _fetched(conn)
        if read == "lock_accounts":
            found: Any = ledger.lock_accounts("points", asked)
        else:
            found = getattr(ledger, read)("points", asked)
        after = _fetched(conn)
        fetched = {t: after.get(t, 0) - before.get(t, 0) for t in TABLES}
        if read == "lock_accounts":
            alone: Any = {}
            for m in asked:
                alone.update(ledger.lock_accounts("points", [m]))
        else:
            alone = [x for m in asked for x in getattr(ledger, read)("points", [m])]
    return found, alone, fetched


def test_locking_members_accounts_fetches_their_rows_only(
        stale: tuple[SQLStorage, str]) -> None:
    found, alone, fetched = _read(stale, "lock_accounts")
    assert alone == found and ASKED - 1 == len(found)
    assert list(found) == sorted(found)  # locked and returned in member order
    assert ASKED - 1 >= fetched["lk_accounts"]  # not the program's MEMBERS


def test_reading_members_open_lots_fetches_their_rows_only(
        stale: tuple[SQLStorage, str]) -> None:
    found, alone, fetched = _read(stale, "load_lots")
    assert alone == found and ASKED - 1 == len(found)
    assert ASKED - 1 >= fetched["lk_lots"]


def test_reading_members_open_holds_gives_one_member_reads(
        stale: tuple[SQLStorage, str]) -> None:
    """The holds are too few here to fill more than a page, which the planner rightly
    scans for each member: only the read's result is checked."""
    found, alone, _ = _read(stale, "load_open_holds")
    assert alone == found and 1 < len(found) < ASKED - 1
