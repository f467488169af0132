"""Notices on the SQL backend: two runs of due work at once emit each notice once, and
a run costs a few statements per batch whatever the number of members (set-based)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from loyaltykit import Loyalty, TestClock
from loyaltykit.sql import SQLStorage
from loyaltykit.testing.contract import berlin
from loyaltykit.testing.contract.notices import notice_program
from loyaltykit.testing.notices import check_notices_once, notice_subjects


@pytest.fixture(params=["sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStorage]:
    with contextlib.ExitStack() as stack:
        if request.param == "postgresql":
            from conftest import POSTGRESQL

            made = POSTGRESQL.storage()
            assert isinstance(made, SQLStorage)
        else:
            made = SQLStorage.from_url(f"sqlite:///{tmp_path / 'notices.sqlite'}")
            made.create_schema()
            stack.callback(made.dispose)
        yield made


def _members(storage: SQLStorage, n: int) -> Loyalty:
    clock = TestClock(berlin(2026, 1, 15, 9))
    loyalty = Loyalty(notice_program(points_expiring_days=30), storage, clock=clock)
    for i in range(n):
        loyalty.enrol(f"m{i:04d}")
    loyalty.bulk_earn([(f"m{i:04d}", 10 + i) for i in range(n)], key="bulk")
    clock.set(berlin(2027, 1, 10))
    return loyalty


def test_two_runs_at_once_emit_each_notice_once(storage: SQLStorage) -> None:
    loyalty = _members(storage, 60)
    clock = loyalty.clock
    rivals = [Loyalty(loyalty.program, storage, clock=clock) for _ in range(2)]
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run(rival: Loyalty) -> None:
        try:
            barrier.wait(5)
            counts.append(rival.run_due(batch_size=7).points_expiring_notices)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert 60 == sum(counts)
    events = loyalty.events.read("check", limit=10_000)
    check_notices_once(events)
    assert 60 == len(notice_subjects(events))


def test_a_run_costs_the_same_statements_for_many_members(storage: SQLStorage) -> None:
    """Set-based: with one batch, 10 and 120 members take the same statements."""
    counted: list[int] = []
    engine: sa.Engine = storage._engine
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    for n in (10, 120):
        with engine.begin() as conn:  # start each size from an empty database
            for table in reversed(SQLStorage.metadata.sorted_tables):
                conn.execute(table.delete())
        loyalty = _members(storage, n)
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", count)
        try:
            assert n == loyalty.run_due(batch_size=500).points_expiring_notices
        finally:
            sa.event.remove(engine, "before_cursor_execute", count)
        counted.append(len(statements))
    assert counted[0] == counted[1], counted
