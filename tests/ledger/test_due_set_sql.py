"""On SQLite a batch of plain wallets' due work is posted by the database itself
(:mod:`loyaltykit.sql.ledger_due_set`): a fixed number of statements per batch, none
of them a statement per row. The contract's test_set_based_due_work_equals_catch_up
shows the rows are the ones ``catch_up`` writes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import ExpiryPolicy, ExpiryStart, Loyalty, PendingPolicy, TestClock
from loyaltykit._events import DuePosted
from loyaltykit.sql import SQLStorage, _checkpoints
from loyaltykit.sql._batch_cache import KIB_PER_WALLET
from loyaltykit.testing.contract.base import berlin, make_program

#: the tables due work writes a row per transaction (or per touched row) to
_TABLES = ("lk_transactions", "lk_postings", "lk_lot_movements", "lk_lots", "lk_holds",
           "lk_accounts", "lk_outbox")


def _run_due(path: Path, members: int, batch_size: int, after: Any = None,
             due_posted: Any = None) -> tuple[Any, list[tuple[str, int]]]:
    """Due work over ``members`` plain wallets (each: a stale hold, a matured pending
    lot, an expired lot); the report and the (table, rows bound) of every statement
    the run sent that writes a due table (``after``: also an after_cursor_execute
    listener for the run; ``due_posted``: also a subscriber to DuePosted)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    storage = SQLStorage(engine)
    storage.create_schema()
    clock = TestClock(berlin(2026, 1, 1, 10))
    loyalty = Loyalty(make_program(
        "plain", expiry=ExpiryPolicy(days=30, counted_from=ExpiryStart.EARN),
        pending=PendingPolicy(days=5)), storage, clock=clock)
    ids = [f"m{i:03d}" for i in range(members)]
    for i, m in enumerate(ids):
        loyalty.enrol(m)
        loyalty.earn(m, 10 + i, key=f"old-{m}", activates_at=clock.now())
    clock.set(berlin(2026, 1, 20, 10))
    for i, m in enumerate(ids):
        loyalty.earn(m, 100, key=f"new-{m}")  # pending until 25 January
        loyalty.hold(m, 1 + i % 5, key=f"hold-{m}", ttl=dt.timedelta(hours=1))
    clock.set(berlin(2026, 2, 5, 10))
    if due_posted is not None:
        loyalty._c.bus.subscribe(DuePosted, due_posted)
    writes: list[tuple[str, int]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
             executemany: bool) -> None:
        words = statement.split()
        verb = words[0].upper()
        table = words[2] if verb == "INSERT" else words[1] if verb == "UPDATE" else ""
        if table in _TABLES:
            writes.append((table, len(parameters) if executemany else 1))

    sa.event.listen(engine, "before_cursor_execute", seen)
    if after is not None:
        sa.event.listen(engine, "after_cursor_execute", after)
    report = loyalty.run_due(batch_size=batch_size)
    sa.event.remove(engine, "before_cursor_execute", seen)
    if after is not None:
        sa.event.remove(engine, "after_cursor_execute", after)
    engine.dispose()
    return report, writes


def test_a_plain_batch_is_a_fixed_number_of_statements(tmp_path: Path) -> None:
    small, small_writes = _run_due(tmp_path / "small.db", 6, 3)
    large, large_writes = _run_due(tmp_path / "large.db", 24, 12)
    assert (2, 2, 2) == (small.activated_lots // 3, large.activated_lots // 12,
                         large.expired_lots // 12)
    assert 24 == large.released_holds
    # each statement writes its table set-based: one bound row, whatever the batch
    assert [] == [w for w in small_writes + large_writes if w[1] != 1]
    # two batches either way: as many statements for 12 wallets a batch as for 3
    assert sorted(small_writes) == sorted(large_writes)
    assert {t: 2 for t in _TABLES} == {t: sum(1 for w in large_writes if w[0] == t)
                                       for t in _TABLES}


def test_a_subscriber_beyond_the_outbox_gets_every_due_posting(tmp_path: Path) -> None:
    # the database posts a batch itself only where the outbox is DuePosted's only
    # subscriber: another one (a capability reacting to expiries) gets every record
    seen: list[Any] = []
    report, _ = _run_due(tmp_path / "subscribed.db", 8, 4,
                         due_posted=lambda work, event: seen.extend(event.records))
    assert (8, 8, 8) == (report.activated_lots, report.expired_lots, report.released_holds)
    assert 24 == len(seen)


def test_the_temporary_tables_are_made_once_per_connection(tmp_path: Path) -> None:
    # dropped and made again each batch, they changed the connection's schema, and
    # SQLite prepared every statement of the next batch anew
    versions: list[int] = []

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if statement.lstrip().startswith("INSERT INTO _lk_due_tx"):
            versions.append(cursor.connection.execute(
                "PRAGMA temp.schema_version").fetchone()[0])

    report, _ = _run_due(tmp_path / "due.db", 12, 3, after)
    assert 12 == report.activated_lots
    assert 4 == len(versions)  # four batches, each set-based
    assert 1 == len(set(versions))  # the temporary schema as the first batch left it


def test_the_writes_scan_the_batch_transactions_without_a_sort_or_a_join(tmp_path: Path
                                                                         ) -> None:
    # each transaction's row carries what its writes need (member, wallet, metadata, the
    # balance after it) in posting order, and the ids come as one bound value: the
    # outbox's events are one scan of it (no sort of the payloads, no join to the
    # accounts, wallets or a table of ids), and no statement but the wallets' own is
    # sent row by row
    plans: dict[str, tuple[str, list[str]]] = {}
    many: list[str] = []

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        words = statement.split()
        if executemany:
            many.append(" ".join(words[:3]))
        elif words[:3] in (["INSERT", "INTO", "lk_outbox"],
                           ["INSERT", "INTO", "lk_transactions"]):
            plans.setdefault(words[2], (statement, [r[3] for r in cursor.connection.execute(
                "EXPLAIN QUERY PLAN " + statement, parameters)]))

    report, _ = _run_due(tmp_path / "due.db", 12, 6, after)
    assert 12 == report.expired_lots
    assert {"lk_outbox", "lk_transactions"} == set(plans)
    for table, (statement, plan) in plans.items():
        assert "JOIN" not in statement.upper(), table
        assert [d for d in plan if "TEMP B-TREE" in d] == [], table
    assert {"INSERT INTO _lk_due_w"} == set(many)


def test_a_batch_keeps_its_dirty_pages_in_the_cache_until_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A batch's statements run with a page cache of room for the batch (the default
    # 2 MiB made SQLite spill dirty pages into the WAL mid-batch and write them again
    # at the commit); the connection's own size is set back after the batch. (The
    # long run around run_due gives a larger cache of its own: left out here, so the
    # batch's own is what is seen.)
    monkeypatch.setattr(_checkpoints, "LONG_RUN_CACHE_KIB", 0)
    wallets = 150  # 150 x 16 KiB: more than the default cache's 2,000 KiB
    seen: list[tuple[str, int]] = []

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        size = cursor.connection.execute("PRAGMA cache_size").fetchone()[0]
        seen.append((" ".join(statement.split()), size))

    report, _ = _run_due(tmp_path / "due.db", wallets, wallets, after)
    assert wallets == report.released_holds
    during = {size for what, size in seen if what.startswith("INSERT INTO lk_outbox")}
    assert {-KIB_PER_WALLET * wallets} == during
    # the batch's unit of work starts (reading its wallets) with the connection's size
    default = seen[0][1]
    assert default > -KIB_PER_WALLET * wallets
    assert {default} == {size for what, size in seen
                         if what.startswith("SELECT") and "_lk_due" not in what}


def test_an_outbox_event_cuts_its_transaction_id_text_once(tmp_path: Path) -> None:
    # The event's payload takes its transaction id's text (str(uuid)) as one cut of the
    # texts bound for the batch, not five cuts of the hex digits joined by hyphens per
    # row: substr is counted per outbox row (the event's id is the other cut).
    calls: dict[str, int] = {"n": 0}
    counted: list[tuple[int, int]] = []

    def substr(x: Any, start: int, length: int | None = None) -> Any:
        calls["n"] += 1
        assert start >= 1  # (the only form this run uses; SQLite's semantics for it)
        return x[start - 1:] if length is None else x[start - 1:start - 1 + length]

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        if statement.lstrip().startswith("INSERT INTO lk_outbox") and "_lk_due_tx" in statement:
            counted.append((calls["n"], cursor.rowcount))
        if not counted and not calls.get("set"):
            cursor.connection.create_function("substr", -1, substr)
            calls["set"] = 1
        calls["n"] = 0

    report, _ = _run_due(tmp_path / "due.db", 12, 6, after)
    assert 12 == report.released_holds
    assert 2 == len(counted)
    assert [(2 * rows, rows) for _, rows in counted] == counted
