"""A version's orders ask which usage rows and stamp cards they need once: both follow
from the version's rules alone. A version whose caps look back over a period still asks
each order for its periods, and prices each as recorded one by one (capped)."""

from __future__ import annotations

import datetime as dt

import pytest

from loyaltykit import (
    Cap,
    CapPeriod,
    EarningPolicy,
    FixedRule,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    StampCardRule,
)
from loyaltykit import TestClock as Clock
from loyaltykit._rules import usage
from loyaltykit._services import orders as orders_service
from loyaltykit.memory import MemoryStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _loyalty(*rules: object) -> Loyalty:
    program = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"), *rules)))
    loyalty = Loyalty(program, MemoryStorage(), clock=Clock(T0 + dt.timedelta(days=10)))
    loyalty.enrol("m", at=T0)
    return loyalty


def _order(i: int) -> Order:
    return Order(id=f"o{i}", member_id="m", currency="EUR",
                 placed_at=T0 + dt.timedelta(days=i),
                 lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),))


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[dt.datetime]:
    """The instants the order service asked usage queries for."""
    seen: list[dt.datetime] = []
    queries = usage.usage_queries

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(args[2])  # type: ignore[arg-type]
        return queries(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(orders_service, "usage_queries", spy)
    return seen


def test_a_version_without_periods_asks_once(asked: list[dt.datetime]) -> None:
    loyalty = _loyalty(StampCardRule(id="card", every=2, points=5))
    results = [loyalty.record_order(_order(i)) for i in range(4)]
    assert [20, 25, 20, 25] == [r.points for r in results]  # the card still fills
    assert [T0] == asked
    result = loyalty.record_orders([_order(i) for i in range(4, 8)])
    assert (4, 90) == (result.recorded, result.points)
    assert [T0] == asked


def test_a_version_with_a_period_cap_asks_each_order(asked: list[dt.datetime]) -> None:
    loyalty = _loyalty(FixedRule(id="bonus", points=10, caps=(Cap(20, CapPeriod.MONTH),)))
    results = [loyalty.record_order(_order(i)) for i in range(3)]
    assert [30, 30, 20] == [r.points for r in results]  # the month's cap is reached
    assert [T0 + dt.timedelta(days=i) for i in range(3)] == asked
