"""The reports' statements run without PostgreSQL's JIT compilation, for their own
transaction only: a host whose transaction a report joins keeps its setting."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from loyaltykit import Loyalty, Money, Program, TestClock
from loyaltykit.sql import SQLStorage

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _program() -> Program:
    return Program(id="jit", time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"))


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_reports_turn_jit_off_in_their_read_only(engine: Any) -> None:
    Loyalty(_program(), SQLStorage(engine), clock=TestClock(NOW)).enrol("m")
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    with engine.connect() as conn:
        conn.begin()
        assert "on" == conn.exec_driver_sql("SHOW jit").scalar_one()
        loyalty = Loyalty(_program(), SQLStorage(conn), clock=TestClock(NOW))
        [totals] = loyalty.reports.totals()
        assert 1 == totals.members
        # the report's SAVEPOINT set it; ending the read undid it for the host
        assert "on" == conn.exec_driver_sql("SHOW jit").scalar_one()
        conn.rollback()
    sa.event.remove(engine, "before_cursor_execute", record)
    assert any(s == "SET LOCAL jit = off" for s in seen)
