"""The orders' reports part of the storage contract (DESIGN §9, scenarios A3 and A4).

:class:`OrderReportContract` is run on every backend by ``tests/reports``: the purchases
that count (net goods after returns, cancelled and fully returned orders left out,
streamed in pages), KPIs per calendar period in the program's zone, and RFM scores and
segments, with the same answers everywhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from loyaltykit import (
    InvalidInput,
    Money,
    NaiveDatetime,
    Order,
    OrderLine,
    Period,
    Program,
    Purchase,
    RfmSegment,
    Storage,
    TestClock,
    rfm_scores,
    rfm_segment,
)
from loyaltykit.testing.contract.base import ContractPart, LoyaltyFactory, berlin, make_program, utc

__all__ = ["NOW", "OrderReportContract", "OrderShop"]

#: Where an :class:`OrderShop`'s clock stands unless told: after every order recorded.
NOW = utc(2030, 1, 1)


class OrderShop:
    """A facade over ``storage`` whose clock stands at ``now``, recording orders with
    one line each (or the lines given) placed in the past."""

    def __init__(self, factory: LoyaltyFactory, storage: Storage,
                 program: Program | None = None, *, now: dt.datetime = NOW) -> None:
        self.program = program or make_program("reports")
        self.clock = TestClock(now)
        self.loyalty = factory(self.program, storage, clock=self.clock)
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
        shop = OrderShop(self.make_loyalty, storage)
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
        shop = OrderShop(self.make_loyalty, storage)
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
        shop = OrderShop(self.make_loyalty, storage)
        with pytest.raises(InvalidInput, match="end is before start"):
            shop.loyalty.reports.purchases(start=utc(2026, 2, 1), end=utc(2026, 1, 1))
        with pytest.raises(NaiveDatetime):
            shop.loyalty.reports.purchases(start=dt.datetime(2026, 1, 1))

    def test_purchases_name_an_erased_member_by_its_erased_name(
        self, storage: Storage,
    ) -> None:
        shop = OrderShop(self.make_loyalty, storage)
        shop.order("gone", utc(2026, 1, 5), "8.00")
        shop.loyalty.privacy.erase("gone")
        [p] = shop.loyalty.reports.purchases()
        assert p.member_id.startswith("erased:") and Money("8.00", "EUR") == p.amount


    # -- KPIs per period (A3) -------------------------------------------------------------

    def _a3(self, storage: Storage) -> OrderShop:
        """Scenario A3's orders: Q1 2026 a 2, b 1, c 3, d 1, e 1; Q2 a 40.00, c 60.00,
        f 20.00, g 30.00 and 50.00; an order of a in Q2 cancelled and one of b returned
        in full (neither counts)."""
        shop = OrderShop(self.make_loyalty, storage)
        q1 = berlin(2026, 1, 10, 12)
        for member, n in (("a", 2), ("b", 1), ("c", 3), ("d", 1), ("e", 1)):
            for i in range(n):
                shop.order(member, q1 + dt.timedelta(days=20 * i), "25.00")
        q2 = berlin(2026, 4, 15, 12)
        shop.order("a", q2, "40.00")
        shop.order("c", q2, "60.00")
        shop.order("f", q2, "20.00")
        shop.order("g", q2, "30.00")
        shop.order("g", q2 + dt.timedelta(days=30), "50.00")
        shop.loyalty.cancel_order(shop.order("a", q2, "99.00"))
        gone = shop.order("b", q2, "15.00")
        shop.loyalty.record_return(gone, {"l": 1}, key="back")
        return shop

    def test_a3_kpis_per_quarter(self, storage: Storage) -> None:
        shop = self._a3(storage)
        q1, q2 = shop.loyalty.reports.kpis(Period.QUARTER, berlin(2026, 1, 1),
                                           berlin(2026, 7, 1))
        assert ("2026-Q1", "2026-Q2") == (q1.period.label, q2.period.label)
        assert (5, 5, 2, 8) == (q1.active_members, q1.new_members, q1.repeat_members,
                                q1.orders)
        assert Decimal("0.4") == q1.repeat_purchase_rate
        assert Money("200.00", "EUR") == q1.revenue
        assert (0, None, None) == (q1.previous_active_members, q1.retention_rate,
                                   q1.churn_rate)
        assert (4, 2, 5) == (q2.active_members, q2.new_members, q2.orders)
        assert Decimal("0.4") == q2.retention_rate and Decimal("0.6") == q2.churn_rate
        assert (5, 2) == (q2.previous_active_members, q2.retained_members)
        assert Money("200.00", "EUR") == q2.revenue
        assert Money("40.00", "EUR") == q2.average_order_value
        assert Decimal("1.25") == q2.orders_per_active_member
        assert Decimal("0.25") == q2.repeat_purchase_rate  # g only

    def test_a3_points_and_redemption_rate(self, storage: Storage) -> None:
        shop = OrderShop(self.make_loyalty, storage)
        shop.order("a", berlin(2026, 4, 2, 12), "40.00")
        shop.loyalty.earn("a", 10_000, key="e1", at=berlin(2026, 4, 3, 9))
        shop.loyalty.spend("a", 2_500, key="s1", at=berlin(2026, 5, 3, 9))
        [q2] = shop.loyalty.reports.kpis(Period.QUARTER, berlin(2026, 4, 1),
                                         berlin(2026, 7, 1))
        assert (10_000, 2_500) == (q2.points_issued, q2.points_redeemed)
        assert Decimal("0.25") == q2.redemption_rate

    def test_kpis_the_first_period_compares_with_the_one_before(
        self, storage: Storage,
    ) -> None:
        """A report starting in Q2 still compares Q2 with Q1; a period with no
        orders has zero counts, no rates and an empty revenue."""
        shop = self._a3(storage)
        q2, q3 = shop.loyalty.reports.kpis(Period.QUARTER, berlin(2026, 5, 1),
                                           berlin(2026, 7, 2))
        assert (5, 2, Decimal("0.4")) == (q2.previous_active_members, q2.retained_members,
                                          q2.retention_rate)
        assert (0, 0, Money("0", "EUR")) == (q3.active_members, q3.orders, q3.revenue)
        assert (None, None, None) == (q3.average_order_value, q3.repeat_purchase_rate,
                                      q3.orders_per_active_member)
        assert (4, 0, Decimal(0), Decimal(1)) == (
            q3.previous_active_members, q3.retained_members, q3.retention_rate,
            q3.churn_rate)

    def test_kpis_per_month_and_week_in_another_zone(self, storage: Storage) -> None:
        """Other numbers, months and ISO weeks, in America/New_York; an order at 23:30
        UTC on the last day of a month counts in the next month in Europe/Berlin."""
        ny = attrs.evolve(make_program("ny"), time_zone="America/New_York",
                          currency="USD", point_value=Money("0.01", "USD"))
        shop = OrderShop(self.make_loyalty, storage, ny)

        def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0
               ) -> dt.datetime:
            return dt.datetime(year, month, day, hour, minute,
                               tzinfo=ZoneInfo("America/New_York"))

        shop.order("x", at(2026, 1, 31, 23, 30), "10.10")  # 04:30 UTC on Feb 1: January
        shop.order("x", at(2026, 2, 1, 0, 30), "0.20")
        shop.order("y", at(2026, 2, 27, 9), "33.33")
        shop.order("y", at(2026, 2, 28, 9), "33.33")
        shop.order("y", at(2026, 2, 28, 10), "33.34")
        shop.order("z", at(2026, 3, 1, 0, 0), "5.00")
        jan, feb, mar = shop.loyalty.reports.kpis(Period.MONTH, at(2026, 1, 15),
                                                  at(2026, 3, 2))
        assert ("2026-01", "2026-02", "2026-03") == (jan.period.label, feb.period.label,
                                                     mar.period.label)
        assert (1, 1, 1, Money("10.10", "USD")) == (jan.active_members, jan.new_members,
                                                    jan.orders, jan.revenue)
        assert (2, 1, 4, Money("100.20", "USD")) == (feb.active_members, feb.new_members,
                                                     feb.orders, feb.revenue)
        assert Money("25.05", "USD") == feb.average_order_value
        assert (Decimal(2), Decimal("0.5"), Decimal(1), Decimal(0)) == (
            feb.orders_per_active_member, feb.repeat_purchase_rate, feb.retention_rate,
            feb.churn_rate)
        assert (1, 0, Decimal(0), Decimal(1)) == (
            mar.active_members, mar.retained_members, mar.retention_rate, mar.churn_rate)
        weeks = shop.loyalty.reports.kpis(Period.WEEK, at(2026, 2, 23), at(2026, 3, 2))
        # y's three and z's on Sunday 1 March
        assert [("2026-02-23", 4, 2)] == [(w.period.label, w.orders, w.active_members)
                                          for w in weeks]
        assert Decimal(2) == weeks[0].orders_per_active_member
        berlin_shop = OrderShop(self.make_loyalty, storage, make_program("berlin"))
        berlin_shop.order("m", utc(2026, 3, 31, 23, 30), "7.00")  # 01:30 on 1 April
        march, april = berlin_shop.loyalty.reports.kpis(Period.MONTH, berlin(2026, 3, 1),
                                                        berlin(2026, 5, 1))
        assert (0, 1) == (march.orders, april.orders)
        assert Money("7.00", "EUR") == april.revenue

    def test_kpis_refuse_bad_input(self, storage: Storage) -> None:
        reports = OrderShop(self.make_loyalty, storage).loyalty.reports
        with pytest.raises(InvalidInput, match="period must be a Period"):
            reports.kpis(30, utc(2026, 1, 1), utc(2026, 2, 1))  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="no such period"):
            reports.kpis("fortnight", utc(2026, 1, 1), utc(2026, 2, 1))
        # a period's value names it too
        assert reports.kpis("month", utc(2026, 1, 1), utc(2026, 2, 1)) == (
            reports.kpis(Period.MONTH, utc(2026, 1, 1), utc(2026, 2, 1)))
        with pytest.raises(InvalidInput, match="end is before start"):
            reports.kpis(Period.DAY, utc(2026, 2, 1), utc(2026, 1, 1))
        with pytest.raises(InvalidInput, match="at most"):
            reports.kpis(Period.DAY, utc(1990, 1, 1), utc(2029, 1, 1))
        with pytest.raises(NaiveDatetime):
            reports.kpis(Period.DAY, dt.datetime(2026, 1, 1), utc(2026, 2, 1))
        assert [] == reports.kpis(Period.DAY, utc(2026, 1, 1), utc(2026, 1, 1))

    # -- RFM (A4) --------------------------------------------------------------------------

    def test_a4_rfm(self, storage: Storage) -> None:
        """As of 2026-07-01 00:00 Berlin, orders at 12:00 Berlin: A4's table, and with
        the default segments a is a champion and d lost."""
        shop = OrderShop(self.make_loyalty, storage)
        table = {"a": ((2026, 6, 28), 12, "1250.00"), "e": ((2026, 6, 20), 5, "410.00"),
                 "b": ((2026, 6, 1), 3, "90.00"), "c": ((2026, 3, 15), 8, "640.00"),
                 "d": ((2025, 12, 24), 1, "35.00")}
        for member, (last, n, spend) in table.items():
            each = Decimal(spend) / n
            amounts = [each.quantize(Decimal("0.01"))] * (n - 1)
            amounts.append(Decimal(spend) - sum(amounts, Decimal(0)))
            for i, amount in enumerate(amounts):
                day = dt.date(*last) - dt.timedelta(days=n - 1 - i)
                shop.order(member, berlin(day.year, day.month, day.day, 12), str(amount))
        rows = shop.loyalty.reports.rfm(as_of=berlin(2026, 7, 1))
        got = {r.member_id: (r.recency_days, r.frequency, r.monetary, (r.r, r.f, r.m))
               for r in rows}
        assert {
            "a": (3, 12, Money("1250.00", "EUR"), (5, 5, 5)),
            "e": (11, 5, Money("410.00", "EUR"), (4, 3, 3)),
            "b": (30, 3, Money("90.00", "EUR"), (3, 2, 2)),
            "c": (108, 8, Money("640.00", "EUR"), (2, 4, 4)),
            "d": (189, 1, Money("35.00", "EUR"), (1, 1, 1)),
        } == got
        assert ["a", "b", "c", "d", "e"] == [r.member_id for r in rows]
        segments = {r.member_id: r.segment for r in rows}
        assert ("champions", "lost") == (segments["a"], segments["d"])
        assert berlin(2026, 6, 28, 12) == rows[0].last_order_at

    def test_rfm_ties_another_zone_and_own_segments(self, storage: Storage) -> None:
        """Tied values share the lower score; recency counts calendar days in the
        program's zone (Asia/Kolkata, +05:30); a table of the caller's own segments;
        orders after ``as_of``, cancelled or returned in full do not count."""
        kolkata = attrs.evolve(make_program("in"), time_zone="Asia/Kolkata",
                               currency="INR", point_value=Money("0.01", "INR"))
        shop = OrderShop(self.make_loyalty, storage, kolkata)
        as_of = utc(2026, 6, 30, 18, 29)  # 23:59 on 30 June in Kolkata
        shop.order("p", utc(2026, 6, 29, 18, 30), "100")  # 00:00 on 30 June: 0 days
        shop.order("q", utc(2026, 6, 29, 18, 29), "100")  # 23:59 on 29 June: 1 day
        shop.order("r", utc(2026, 6, 1), "50")
        shop.order("r", utc(2026, 6, 2), "50")  # 05:30 on 2 June: 28 days
        shop.order("s", utc(2026, 5, 1), "10")
        shop.order("s", utc(2026, 7, 1), "999")  # after as_of
        shop.loyalty.cancel_order(shop.order("s", utc(2026, 5, 2), "999"))
        gone = shop.order("t", utc(2026, 5, 3), "999")
        shop.loyalty.record_return(gone, {"l": 1}, key="back")
        mine = (RfmSegment("best", recency=(5, 5), frequency_monetary=(1, 5)),
                RfmSegment("rest", recency=(2, 4), frequency_monetary=(1, 5)))
        rows = shop.loyalty.reports.rfm(as_of=as_of, segments=mine)
        got = {r.member_id: (r.recency_days, r.frequency, r.monetary.amount,
                             (r.r, r.f, r.m), r.segment) for r in rows}
        # n = 4. recency 0, 1, 28, 60 -> ranks 4, 3, 2, 1; frequency 1, 1, 2, 1 -> the
        # three ones tie at rank 1 (score 2), r has rank 4; monetary 100, 100, 100, 10
        # -> the hundreds tie at rank 2 (score 3)
        assert {
            "p": (0, 1, Decimal(100), (5, 2, 3), "best"),
            "q": (1, 1, Decimal(100), (4, 2, 3), "rest"),
            "r": (28, 2, Decimal(100), (3, 5, 3), "rest"),
            "s": (60, 1, Decimal(10), (2, 2, 2), "rest"),
        } == got
        assert [] == shop.loyalty.reports.rfm(as_of=utc(2026, 4, 1))

    def test_rfm_scores_is_a_pure_function_with_a_stated_tie_rule(self) -> None:
        assert [5, 4, 3, 2, 1] == rfm_scores([50, 40, 30, 20, 10])
        assert [1, 2, 3, 4, 5] == rfm_scores([50, 40, 30, 20, 10], higher_is_better=False)
        assert [2, 2, 2, 2] == rfm_scores([7, 7, 7, 7])  # all rank 1: ceil(5 / 4)
        assert [5] == rfm_scores([Decimal("0.5")])
        assert [2, 2, 5] == rfm_scores([1, 1, 2])
        # ranks 1 1 3 4 4 4 7 8 8 8 of 10 -> ceil(rank / 2)
        assert [1, 1, 2, 2, 2, 2, 4, 4, 4, 4] == rfm_scores([1, 1, 3, 4, 4, 4, 7, 9, 9, 9])
        assert [] == rfm_scores([])
        assert "champions" == rfm_segment(5, 5, 5) and "lost" == rfm_segment(1, 1, 1)
        assert rfm_segment(3, 5, 4) == "loyal" and rfm_segment(1, 5, 4) == "cannot_lose_them"
        for r in range(1, 6):  # the default table names every cell
            for f in range(1, 6):
                for m in range(1, 6):
                    assert rfm_segment(r, f, m) is not None
        assert rfm_segment(1, 1, 1, ()) is None
        for bad in ([1, True], [1.5], "12", [Decimal("NaN")]):
            with pytest.raises(InvalidInput):
                rfm_scores(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            rfm_segment(0, 1, 1)
        with pytest.raises(InvalidInput):
            RfmSegment("x", recency=(4, 2), frequency_monetary=(1, 5))
        with pytest.raises(InvalidInput):
            RfmSegment("", recency=(1, 2), frequency_monetary=(1, 5))

    def test_rfm_refuses_bad_input(self, storage: Storage) -> None:
        reports = OrderShop(self.make_loyalty, storage).loyalty.reports
        with pytest.raises(InvalidInput, match="later than"):
            reports.rfm(as_of=utc(2031, 1, 1))
        with pytest.raises(InvalidInput, match="RfmSegment"):
            reports.rfm(segments=[("champions", (5, 5), (5, 5))])  # type: ignore[list-item]
        with pytest.raises(NaiveDatetime):
            reports.rfm(as_of=dt.datetime(2026, 1, 1))
