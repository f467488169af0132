"""The reads a write skips where they cannot matter, counted as the SQL statements it
issues (SQLite file and PostgreSQL): the wallet's next expiry is not read where no
live lot expires (a program that never expires points), nor the open holds where
nothing is held. That the results stay the same is in the shipped contract
(LedgerContract: next expiry across versions, holds)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import ExpiryPolicy, LedgerPolicy, Loyalty, Money, Program, TestClock
from loyaltykit.sql import SQLStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _program(expiry: ExpiryPolicy) -> Program:
    return Program(id="shop", time_zone="UTC", currency="EUR",
                   point_value=Money("0.01", "EUR"), ledger=LedgerPolicy(expiry=expiry))


def _statements(engine: sa.Engine, work: Callable[[], Any]) -> list[str]:
    seen: list[str] = []

    def log(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", log)
    try:
        work()
    finally:
        sa.event.remove(engine, "before_cursor_execute", log)
    return seen


def _next_expiry_reads(statements: list[str]) -> int:
    # the store's next_expiring: the soonest expiry of the wallet's lots, summed
    return sum("FROM lk_lots" in s and "sum(" in s.lower() and "expires_at" in s
               for s in statements)


def _hold_loads(statements: list[str]) -> int:
    return sum("FROM lk_holds" in s for s in statements)


@pytest.mark.parametrize("expires", [False, True], ids=["never-expires", "expires"])
def test_the_next_expiry_is_read_only_where_points_expire(engine: sa.Engine,
                                                          expires: bool) -> None:
    policy = ExpiryPolicy(days=30) if expires else ExpiryPolicy()
    loyalty = Loyalty(_program(policy), SQLStorage(engine), clock=TestClock(T0))
    loyalty.enrol("m")
    loyalty.earn("m", 100, key="a")
    results: list[Any] = []
    earn = _statements(engine, lambda: results.append(loyalty.earn("m", 50, key="b")))
    read = _statements(engine, lambda: results.append(loyalty.balance("m")))
    assert (int(expires), int(expires)) == (_next_expiry_reads(earn), _next_expiry_reads(read))
    expected = (150, T0 + dt.timedelta(days=30)) if expires else (0, None)
    for balance in (results[0].balance, results[1]):
        assert expected == (balance.next_expiring_points, balance.next_expiring_at)


def test_open_holds_are_loaded_only_where_points_are_held(engine: sa.Engine) -> None:
    loyalty = Loyalty(_program(ExpiryPolicy()), SQLStorage(engine), clock=TestClock(T0))
    loyalty.enrol("m")
    loyalty.earn("m", 100, key="a")
    assert 0 == _hold_loads(_statements(engine, lambda: loyalty.spend("m", 10, key="b")))
    hold = loyalty.hold("m", 20, key="c", ttl=dt.timedelta(minutes=5))
    spend = _statements(engine, lambda: loyalty.spend("m", 10, key="d"))
    assert 1 == _hold_loads(spend)
    loyalty.void(hold.hold_id, key="e")
    assert 0 == _hold_loads(_statements(engine, lambda: loyalty.spend("m", 10, key="f")))
    assert 70 == loyalty.balance("m").available
