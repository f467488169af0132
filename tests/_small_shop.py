"""A small shop for the history import's tests: one rate rule, orders of three members
one minute apart, in memory."""

from __future__ import annotations

import datetime as dt

from loyaltykit import EarningPolicy, Loyalty, Money, Order, OrderLine, Program, RateRule
from loyaltykit import TestClock as Clock
from loyaltykit.memory import MemoryStorage

#: The first order's instant (the clock stands a day later).
T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def small_loyalty() -> Loyalty:
    """A facade over a new memory storage: EUR, a 1-point-per-euro rate rule."""
    program = Program(id="shop", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)))
    return Loyalty(program, MemoryStorage(), clock=Clock(T0 + dt.timedelta(days=1)))


def small_orders(count: int) -> list[Order]:
    """``count`` orders of 20 EUR, of members m0, m1, m2 in turn, a minute apart."""
    return [Order(id=f"o{i}", member_id=f"m{i % 3}", currency="EUR",
                  placed_at=T0 + dt.timedelta(minutes=i),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),))
            for i in range(count)]
