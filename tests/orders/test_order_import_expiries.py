"""A history import's batch works out a lot expiry once per start instant for all of
its orders (each order has a ledger of its own: each worked it out again, a time-zone
calculation per order), and the lots expire as recording them one by one gives."""

from __future__ import annotations

import datetime as dt

import pytest

from loyaltykit import (
    EarningPolicy,
    ExpiryPolicy,
    ExpiryRounding,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
)
from loyaltykit import TestClock as Clock
from loyaltykit.memory import MemoryStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _loyalty() -> Loyalty:
    program = Program(id="shop", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)),
                      ledger=LedgerPolicy(expiry=ExpiryPolicy(
                          months=12, round_up_to=ExpiryRounding.MONTH)))
    return Loyalty(program, MemoryStorage(), clock=Clock(T0 + dt.timedelta(days=2)))


def _orders() -> list[Order]:
    # ten members' orders at two instants (a shop's history: many orders of a day)
    return [Order(id=f"o{i}", member_id=f"m{i}", currency="EUR",
                  placed_at=T0 + dt.timedelta(days=i % 2),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),))
            for i in range(10)]


def test_a_batch_works_out_each_start_s_expiry_once(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[dt.datetime] = []
    expiry_for = ExpiryPolicy.expiry_for

    def spy(self: ExpiryPolicy, start: dt.datetime, time_zone: str) -> dt.datetime | None:
        starts.append(start)
        return expiry_for(self, start, time_zone)

    monkeypatch.setattr(ExpiryPolicy, "expiry_for", spy)
    loyalty = _loyalty()
    assert 10 == loyalty.record_orders(_orders(), enrol=True, batch_size=10).recorded
    assert [T0, T0 + dt.timedelta(days=1)] == starts
    one_by_one = _loyalty()
    for order in _orders():
        one_by_one.enrol(order.member_id, at=T0)
        one_by_one.record_order(order)
    for i in range(10):
        expiries = [(lot.amount, lot.expires_at) for lot in loyalty.lots(f"m{i}")]
        assert [(20, dt.datetime(2027, 1, 31, 23, tzinfo=dt.UTC))] == expiries
        assert expiries == [(lot.amount, lot.expires_at)
                            for lot in one_by_one.lots(f"m{i}")]
