"""The history import draws its ids from the default source a few hundred at a time
(one draw per id was a tenth of a batch's id cost), in the order they are used; an
injected id source is still called once per id."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from loyaltykit import EarningPolicy, Loyalty, Money, Order, OrderLine, Program, RateRule
from loyaltykit import TestClock as Clock
from loyaltykit._values import _UUID7
from loyaltykit.memory import MemoryStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _loyalty(**kwargs: Any) -> Loyalty:
    program = Program(id="shop", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)))
    return Loyalty(program, MemoryStorage(), clock=Clock(T0 + dt.timedelta(days=1)),
                   **kwargs)


def _orders(count: int) -> list[Order]:
    return [Order(id=f"o{i}", member_id="m", currency="EUR",
                  placed_at=T0 + dt.timedelta(minutes=i),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),))
            for i in range(count)]


def test_a_batch_draws_its_ids_many_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    loyalty = _loyalty()
    loyalty.enrol("m", at=T0)  # its key is drawn: the import's rows need no new key
    single: list[None] = []
    draw = _UUID7.__call__

    def one(self: _UUID7) -> uuid.UUID:
        single.append(None)
        return draw(self)

    monkeypatch.setattr(_UUID7, "__call__", one)
    result = loyalty.record_orders(_orders(50), batch_size=50)
    assert (50, 1000) == (result.recorded, result.points)
    assert [] == single  # not ~4 an order: a transaction, a lot, its events
    lots = loyalty.lots("m")
    assert sorted(lot.id for lot in lots) == [lot.id for lot in
                                              sorted(lots, key=lambda lot: lot.earned_at)]


def test_an_injected_id_source_is_called_once_per_id() -> None:
    drawn: list[uuid.UUID] = []

    def new_id() -> uuid.UUID:
        drawn.append(uuid.UUID(int=len(drawn) + 1))
        return drawn[-1]

    loyalty = _loyalty(new_id=new_id)
    loyalty.record_orders(_orders(3), enrol=True)
    # the lots' ids are among the ids drawn, and none was drawn ahead (a pool would
    # draw 256 at a time)
    assert {lot.id for lot in loyalty.lots("m")} <= set(drawn)
    assert len(drawn) < 20
