"""The orders' reports part of the storage contract (DESIGN §9, scenarios A3 and A4).

:class:`OrderReportContract` is run on every backend by ``tests/reports``: the purchases
that count (net goods after returns, cancelled and fully returned orders left out,
streamed in pages), KPIs per calendar period in the program's zone, and RFM scores and
segments, with the same answers everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from loyaltykit import (
    InvalidInput,
    Loyalty,
    Money,
    NaiveDatetime,
    Order,
    OrderLine,
    Program,
    Purchase,
    Storage,
    TestClock,
)
from loyaltykit.testing.contract.base import ContractPart, make_program, utc

__all__ = ["NOW", "OrderReportContract", "OrderShop"]

#: Where an :class:`OrderShop`'s clock stands unless told: after every order recorded.
NOW = utc(2030, 1, 1)


class OrderShop:
    """A facade over ``storage`` whose clock stands at ``now``, recording orders with
    one line each (or the lines given) placed in the past."""

    def __init__(self, storage: Storage, program: Program | None = None, *,
                 now: dt.datetime = NOW) -> None:
        self.program = program or make_program("reports")
        self.clock = TestClock(now)
        self.loyalty = Loyalty(self.program, storage, clock=self.clock)
        self._n = 0
        self._enrolled: set[str] = set()

    def order(self, member_id: str, at: dt.datetime, amount: str = "10.00", *,
              order_id: str | None = None, lines: Sequence[tuple[str, int, str]] = (),
              shipping: str | None = None) -> str:
        """Record an order of ``member_id`` placed at ``at``: one line ``l`` of
        ``amount``, or ``lines`` as (line id, quantity, unit price). Return its id."""
        if member_id not in self._enrolled:
            self.loyalty.enrol(member_id)
            self._enrolled.add(member_id)
        self._n += 1
        oid = order_id or f"o{self._n:04d}"
        currency = self.program.currency
        made = lines or (("l", 1, amount),)
        self.loyalty.record_order(Order(
            id=oid, member_id=member_id, placed_at=at, currency=currency,
            lines=tuple(OrderLine(line_id=i, sku=i, quantity=q,
                                  unit_price=Money(p, currency)) for i, q, p in made),
            shipping=None if shipping is None else Money(shipping, currency)))
        return oid

    def purchases(self, **kwargs: Any) -> list[tuple[str, str, dt.datetime, str]]:
        """The purchases report as (member, order, placed_at, amount text)."""
        return [(p.member_id, p.order_id, p.placed_at, str(p.amount.amount))
                for p in self.loyalty.reports.purchases(**kwargs)]


class OrderReportContract(ContractPart):
    """Reports over orders: the same answers on every backend."""

    # -- purchases -------------------------------------------------------------------------

    def test_purchases_are_the_orders_that_count_at_their_net_goods_now(
        self, storage: Storage,
    ) -> None:
        """Net goods after returns (shipping excluded); cancelled and fully returned
        orders are left out; ordered by member, then placed_at, then order id."""
        shop = OrderShop(storage)
        at = utc(2026, 3, 2, 9)
        shop.order("ann", at, lines=(("a", 2, "10.00"), ("b", 1, "5.50")), shipping="4.90",
                   order_id="o-ret")
        shop.order("ann", at, "7.25", order_id="o-A")  # same instant: by order id
        shop.order("ann", at - dt.timedelta(days=1), "1.00", order_id="o-z")
        shop.order("ben", at, "30.00", order_id="o-cancel")
        shop.order("ben", at, lines=(("x", 3, "2.00"),), order_id="o-gone")
        shop.order("ben", at + dt.timedelta(hours=1), "12.00", order_id="o-b")
        lo = shop.loyalty
        lo.record_return("o-ret", {"a": 1}, key="r1")
        lo.cancel_order("o-cancel")
        lo.record_return("o-gone", {"x": 2}, key="r2")
        lo.record_return("o-gone", {"x": 1}, key="r3")  # everything back now
        got = shop.purchases()
        by_member = {m: [(o, a) for mm, o, _, a in got if mm == m] for m in ("ann", "ben")}
        assert [("o-z", "1.00"), ("o-A", "7.25"), ("o-ret", "15.50")] == by_member["ann"]
        assert [("o-b", "12.00")] == by_member["ben"]
        assert 4 == len(got)
        members = [m for m, *_ in got]
        assert members == sorted(members, key=members.index)  # each member's together
        ann = next(p for p in lo.reports.purchases() if p.member_id == "ann")
        assert ann == Purchase("ann", "o-z", at - dt.timedelta(days=1), Money("1.00", "EUR"))
        assert dt.UTC == ann.placed_at.tzinfo

    def test_purchases_within_bounds_and_in_pages(self, storage: Storage,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
        """``[start, end)``; a page boundary between two orders of one member at the
        same instant loses nothing and repeats nothing."""
        import loyaltykit._services.report_orders as service

        monkeypatch.setattr(service, "PURCHASES_PAGE", 2)
        shop = OrderShop(storage)
        at = utc(2026, 5, 1, 12)
        for member in ("m1", "m2", "m3"):
            for oid in ("a", "B", "c"):
                shop.order(member, at, "3.00", order_id=f"{member}-{oid}")
            shop.order(member, at + dt.timedelta(days=1), "4.00", order_id=f"{member}-late")
        everything = shop.purchases()
        assert 12 == len(everything) == len(set(everything))
        for member in ("m1", "m2", "m3"):
            assert [f"{member}-B", f"{member}-a", f"{member}-c", f"{member}-late"] == [
                o for m, o, _, _ in everything if m == member]
        day = shop.purchases(start=at, end=at + dt.timedelta(days=1))
        assert 9 == len(day) and all(o[1].endswith(("a", "B", "c")) for o in day)
        assert 3 == len(shop.purchases(start=at + dt.timedelta(days=1)))
        assert [] == shop.purchases(end=at)
        assert [] == shop.purchases(start=at, end=at)

    def test_purchases_refuse_bad_bounds_when_called(self, storage: Storage) -> None:
        shop = OrderShop(storage)
        with pytest.raises(InvalidInput, match="end is before start"):
            shop.loyalty.reports.purchases(start=utc(2026, 2, 1), end=utc(2026, 1, 1))
        with pytest.raises(NaiveDatetime):
            shop.loyalty.reports.purchases(start=dt.datetime(2026, 1, 1))

    def test_purchases_name_an_erased_member_by_its_erased_name(
        self, storage: Storage,
    ) -> None:
        shop = OrderShop(storage)
        shop.order("gone", utc(2026, 1, 5), "8.00")
        shop.loyalty.privacy.erase("gone")
        [p] = shop.loyalty.reports.purchases()
        assert p.member_id.startswith("erased:") and Money("8.00", "EUR") == p.amount

