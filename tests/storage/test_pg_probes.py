"""PostgreSQL's reads of a batch's keys (members, orders) read only the rows of the
keys asked for, whatever the tables' statistics (loyaltykit.sql._pg_probes).

They named their keys as ``key IN (...)`` and left the join to the planner: with
statistics older than the table (a history import writes a program's members and
orders faster than autovacuum analyses them) it read every row of the program and
compared each with every key named, so a history import's batches slowed down as the
program grew (9 s for one batch's account lock at 20,000 accounts). Here the
statistics are those of the program's first members, then a hundred times as many are
enrolled, as in an import: a read of a few keys must fetch their rows only (the
server's own counters of the transaction) and return what one-key reads return.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
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
    Tier,
    TierPolicy,
)
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.storage import UnitOfWork

T0 = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
FIRST = 20  # members the statistics know
MEMBERS = 2_000  # members in all (enough pages that a scan costs more than probes)
ASKED = 30  # members a read names
HOLDING = 30  # members with an open hold (the first ones)
TABLES = ("lk_accounts", "lk_lots", "lk_holds", "lk_hold_allocations", "lk_members",
          "lk_member_ids", "lk_orders", "lk_tier_states", "lk_tier_buckets")


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
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)),
                      tiers=TierPolicy(tiers=(Tier("base", 0), Tier("silver", 50))))
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


#: a read of many keys, and how its results add up from one-key reads
Read = Callable[[UnitOfWork, list[str]], Any]


def _merged(found: list[Any]) -> Any:
    if found and isinstance(found[0], dict):
        return {k: v for one in found for k, v in one.items()}
    return [x for one in found for x in one]


def _read(stale: tuple[SQLStorage, str], read: Read, *, orders: bool = False,
          shop_ids: bool = False, holding: bool = False) -> tuple[Any, Any, dict[str, int]]:
    """``read`` of ASKED keys (spread over the program, one unknown): of members by
    their member keys (those ``holding`` a hold), their shop ids (``shop_ids``) or of
    orders (``orders``); what one-key reads give for them, and the rows it fetched
    from each table."""
    storage, program_id = stale
    with storage.unit_of_work(program_id) as uow:
        conn = uow.connection()
        # the ledger's member ids are keys of the orders' (shop) ids
        column, table = (("order_id", "lk_orders") if orders else
                         ("external_id", "lk_member_ids") if shop_ids else
                         ("member_id", "lk_holds") if holding else
                         ("member_id", "lk_accounts"))
        ids = conn.exec_driver_sql(f"SELECT {column} FROM {table}").scalars().all()
        asked = [*sorted(ids)[::max(1, len(ids) // ASKED)][:ASKED - 1], "nobody"]
        random.Random(7).shuffle(asked)
        before = _fetched(conn)
        found = read(uow, asked)
        after = _fetched(conn)
        fetched = {t: after.get(t, 0) - before.get(t, 0) for t in TABLES}
        alone = _merged([read(uow, [key]) for key in asked])
    return found, alone, fetched


def _rows(found: Any) -> int:
    """How many rows a read's result holds (a member's buckets: one each)."""
    values = found.values() if isinstance(found, dict) else found
    return sum(len(v) if isinstance(v, dict) else 1 for v in values)


@pytest.mark.parametrize(("table", "read"), [
    ("lk_accounts", lambda uow, ids: uow.ledger.lock_accounts("points", ids)),
    ("lk_lots", lambda uow, ids: uow.ledger.load_lots("points", ids)),
    ("lk_members", lambda uow, ids: uow.ledger.load_members(ids, ["points"])),
    ("lk_tier_states", lambda uow, ids: uow.tiers.get_tier_states(ids)),
    ("lk_tier_buckets", lambda uow, ids: uow.tiers.tier_buckets(ids)),
])
def test_a_read_of_members_fetches_their_rows_only(
        stale: tuple[SQLStorage, str], table: str, read: Read) -> None:
    found, alone, fetched = _read(stale, read)
    assert alone == found and ASKED - 1 == len(found)
    assert _rows(found) >= fetched[table]  # not the program's MEMBERS
    if isinstance(found, dict):  # (accounts, tier states: locked) in member order
        assert list(found) == sorted(found)


def test_a_read_of_orders_fetches_their_rows_only(stale: tuple[SQLStorage, str]) -> None:
    found, alone, fetched = _read(stale, lambda uow, ids: uow.orders.get_orders(ids),
                                  orders=True)
    assert sorted(alone, key=str) == sorted(found, key=str) and ASKED - 1 == len(found)
    assert ASKED - 1 >= fetched["lk_orders"]


def test_a_read_of_shop_ids_fetches_their_rows_only(stale: tuple[SQLStorage, str]) -> None:
    found, alone, fetched = _read(stale, lambda uow, ids: uow.members.keys_of(ids),
                                  shop_ids=True)
    assert alone == found and ASKED - 1 == len(found)
    assert ASKED - 1 >= fetched["lk_member_ids"]


def test_reading_members_open_holds_gives_one_member_reads(
        stale: tuple[SQLStorage, str]) -> None:
    """The holds are too few here to fill more than a page, which the planner rightly
    scans for each member: only the read's result is checked."""
    found, alone, _ = _read(stale, lambda uow, ids: uow.ledger.load_open_holds("points", ids),
                            holding=True)
    assert alone == found and ASKED - 1 == len(found)
