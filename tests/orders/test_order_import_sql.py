"""The history import's statements per batch on SQLite: a batch reads its members,
accounts, tier states and tier buckets in one go, so what it issues does not grow with
its orders (it did: ~3 reads per order), nor with its members' orders after their
first (each wrote the changes before it and read its member again). That the results
stay those of recording one by one is in the shipped contract (OrderImportContract)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from loyaltykit import (
    EarningPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    StampCardRule,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit.sql import SQLStorage, create_engine

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _program() -> Program:
    return Program(id="shop", time_zone="UTC", currency="EUR",
                   point_value=Money("0.01", "EUR"),
                   earning=EarningPolicy(rules=(RateRule(id="rate"),
                                                StampCardRule(id="card", every=3, points=5))),
                   tiers=TierPolicy(tiers=(Tier("base", 0), Tier("silver", 50))))


def _orders(start: int, count: int, members: int, price: str = "20.00") -> list[Order]:
    return [Order(id=f"o{i}", member_id=f"m{i % members}", currency="EUR",
                  placed_at=T0 + dt.timedelta(minutes=i),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money(price, "EUR")),))
            for i in range(start, start + count)]


def _statements_of_batch(tmp_path: Path, count: int, *, enrol: bool,
                         each: int = 1, known: int | None = None) -> list[str]:
    """The statements of one batch of ``each`` orders of each of ``count`` members
    (in turn), after a first import: with ``enrol`` ``known`` of them known (with tier
    buckets; default half) and the others new, else all known."""
    engine = create_engine(
        f"sqlite:///{tmp_path}/import{count}{enrol}{each}{known}.sqlite")
    try:
        storage = SQLStorage(engine)
        storage.create_schema()
        loyalty = Loyalty(_program(), storage, clock=TestClock(T0.replace(year=2027)))
        if known is None:
            known = count // 2 if enrol else count
        loyalty.record_orders(_orders(0, known, known), enrol=True)
        seen: list[str] = []

        def log(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
            seen.append(statement)

        sa.event.listen(engine, "before_cursor_execute", log)
        # 5 points an order: no member reaches silver, which would add a history line
        result = loyalty.record_orders(_orders(count, count * each, count, "5.00"),
                                       enrol=enrol, batch_size=count * each)
        sa.event.remove(engine, "before_cursor_execute", log)
        assert (count * each, count - known, 1) == (result.recorded, result.enrolled,
                                                    result.batches)
        return seen
    finally:
        engine.dispose()


def test_a_batch_of_distinct_members_issues_as_many_statements_for_any_size(
        tmp_path: Path) -> None:
    small, large = (len(_statements_of_batch(tmp_path, n, enrol=True)) for n in (20, 200))
    assert large == small  # not 3 more per order
    assert large <= 30


def test_a_batch_of_enrolled_members_reads_each_table_once(tmp_path: Path) -> None:
    """Without enrolments the batch's one read of the accounts locks them: no other."""
    seen = _statements_of_batch(tmp_path, 20, enrol=False)
    tables = [re.findall(r"\bFROM (\w+)", s)[0] for s in seen if s.startswith("SELECT")]
    assert 1 == tables.count("lk_accounts")
    assert sorted(set(tables)) == sorted(tables)  # no table read twice


def test_a_members_later_orders_in_a_batch_add_no_statement(tmp_path: Path) -> None:
    """Three orders of each member (a stamp card's third stamp among them) issue the
    statements one order of each does: the later ones read the reads their member's
    first order left, and everything is written at the batch's end (the tier states'
    update counts the three writes in their version)."""
    once, thrice = (
        [" ".join(s.split()[:3])  # what and which table
         for s in _statements_of_batch(tmp_path, 20, enrol=False, each=each)]
        for each in (1, 3))
    assert once == thrice
    assert any(s.startswith("UPDATE lk_tier_states") for s in thrice)


def test_members_the_batch_enrols_are_written_once_with_their_orders(
        tmp_path: Path) -> None:
    """A batch of new members neither reads them back nor updates their rows: their
    enrolment is not written ahead of their orders (then read back and updated) but
    with them, each row inserted once with the final state of the batch."""
    seen = _statements_of_batch(tmp_path, 20, enrol=True, each=2, known=0)
    assert [] == [s for s in seen if s.startswith("UPDATE")]
    read = {re.findall(r"\bFROM (\w+)", s)[0] for s in seen if s.startswith("SELECT")}
    assert not read & {"lk_members", "lk_tier_states", "lk_tier_buckets"}
    inserts = [" ".join(s.split()[:3]) for s in seen if s.startswith("INSERT")]
    claims = inserts.count("INSERT INTO lk_lookups")  # the orders' and the ledger's
    assert claims == 2
    inserts = [s for s in inserts if s != "INSERT INTO lk_lookups"]
    assert sorted(set(inserts)) == sorted(inserts)  # one statement per table


def test_a_batchs_ledger_and_order_rows_are_built_as_tuples(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The tables a batch writes most rows to take them as tuples (execute_rows: turned
    into columns for many rows): none goes through the dict-per-row executemany, which
    picked each dict's values out again by key (that was a tenth of the import's CPU
    beyond its statements)."""
    from loyaltykit.sql import _shared

    by_dicts: list[str] = []
    by_tuples: list[str] = []
    many, rows_of = _shared.execute_many, getattr(_shared, "execute_rows", None)

    def dicts_spy(conn: Any, stmt: Any, rows: Any) -> Any:
        by_dicts.append(stmt.table.name)
        return many(conn, stmt, rows)

    def tuples_spy(conn: Any, stmt: Any, keys: Any, rows: Any) -> Any:
        by_tuples.append(stmt.table.name)
        assert rows_of is not None
        return rows_of(conn, stmt, keys, rows)

    monkeypatch.setattr(_shared, "execute_many", dicts_spy)
    monkeypatch.setattr(_shared, "execute_rows", tuples_spy, raising=False)
    # known members (accounts and orders updated) and new ones (inserted), each with
    # orders before and after the batch's first write of it
    _statements_of_batch(tmp_path, 20, enrol=True, each=2)
    wide = {"lk_members", "lk_accounts", "lk_transactions", "lk_postings", "lk_lots",
            "lk_lot_movements", "lk_orders"}
    assert [] == [t for t in by_dicts if t in wide]
    assert wide <= set(by_tuples)
