"""The revenue report's part of the storage contract: IFRS 15 / ASC 606 from the
program's own orders and ledger (scenario A1, and an estimate from closed cohorts in
another zone and currency)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pendulum
import pytest

from loyaltykit import (
    Base,
    EarningPolicy,
    ExpiryPolicy,
    InvalidInput,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Period,
    Program,
    RateRule,
    Storage,
    TestClock,
    UnknownWallet,
)
from loyaltykit.testing.contract.base import ContractPart, LoyaltyFactory, berlin

__all__ = ["RevenueReportContract"]

_NEW_YORK = pendulum.timezone("America/New_York")


def _ny(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=_NEW_YORK)


def _shop(factory: LoyaltyFactory, storage: Storage, *, time_zone: str, currency: str,
          point_value: str, per: str, now: dt.datetime, expiry_days: int | None = None
          ) -> Loyalty:
    program = Program(
        id="revenue", time_zone=time_zone, currency=currency,
        point_value=Money(point_value, currency),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(days=expiry_days)),
        earning=EarningPolicy(rules=(RateRule(id="base", points=Decimal(1),
                                              per=Decimal(per), base=Base.NET_GOODS),)))
    return factory(program, storage, clock=TestClock(now))


def _order(loyalty: Loyalty, order_id: str, member: str, at: dt.datetime,
           amount: str) -> int:
    loyalty.clock.set(at)  # type: ignore[attr-defined]
    result = loyalty.record_order(Order(
        id=order_id, member_id=member, placed_at=at, currency=loyalty.program.currency,
        lines=(OrderLine(sku="goods", quantity=1,
                         unit_price=Money(amount, loyalty.program.currency)),)))
    return result.points


def eur(amount: int | str) -> Money:
    return Money(amount, "EUR")


def usd(amount: int | str) -> Money:
    return Money(amount, "USD")


def _spend(loyalty: Loyalty, member: str, at: dt.datetime, points: int, key: str) -> None:
    loyalty.clock.set(at)  # type: ignore[attr-defined]
    loyalty.spend(member, points, key=key)


class RevenueReportContract(ContractPart):
    """``loyalty.reports.revenue`` gives the same figures on every backend."""

    def test_a1_from_the_programs_data(self, storage: Storage) -> None:
        # IFRS 15 IE52: sales 100,000 earn 10,000 points (1 per 10), each worth 1;
        # 95% expected, then 97%; 4,500 redeemed in Q1, 8,500 by the end of Q2
        loyalty = _shop(self.make_loyalty, storage, time_zone="Europe/Berlin", currency="EUR",
                        point_value="1", per="10.00", now=berlin(2026, 1, 1))
        loyalty.enrol("m")
        assert 10_000 == _order(loyalty, "o1", "m", berlin(2026, 2, 1, 12), "100000.00")
        _spend(loyalty, "m", berlin(2026, 3, 1, 12), 4_500, "s1")
        _spend(loyalty, "m", berlin(2026, 5, 1, 12), 4_000, "s2")
        loyalty.clock.set(berlin(2026, 7, 1))  # type: ignore[attr-defined]
        q1, q2 = loyalty.reports.revenue(
            Period.QUARTER, berlin(2026, 1, 1), berlin(2026, 7, 1),
            expected_redemption=[Decimal("0.95"), Decimal("0.97")], quantum=Decimal(1))
        assert (eur(100_000), 10_000, eur(91_324), eur(8_676)) == (
            q1.sales, q1.points, q1.goods, q1.allocated)
        assert (10_000, 4_500, 9_500) == (q1.issued, q1.redeemed, q1.expected)
        assert (eur(4_110), eur(4_110), eur(4_566)) == (q1.revenue, q1.recognised,
                                                       q1.liability)
        assert (eur(0), 0, eur(0)) == (q2.sales, q2.points, q2.allocated)
        assert (8_500, 9_700) == (q2.redeemed, q2.expected)
        assert (eur(3_493), eur(7_603), eur(1_073)) == (q2.revenue, q2.recognised,
                                                       q2.liability)
        assert ["2026-Q1", "2026-Q2"] == [q.period.label for q in (q1, q2)]

    def test_estimated_from_closed_cohorts_and_carried_in(self, storage: Storage) -> None:
        # New York, USD, 1 point per dollar worth 0.10, lots expire after 60 days
        loyalty = _shop(self.make_loyalty, storage, time_zone="America/New_York", currency="USD",
                        point_value="0.10", per="1.00", now=_ny(2025, 1, 1),
                        expiry_days=60)
        loyalty.enrol("a")
        loyalty.enrol("b")
        _order(loyalty, "o1", "a", _ny(2025, 1, 10, 12), "1000.00")
        _spend(loyalty, "a", _ny(2025, 2, 1, 12), 750, "s1")
        loyalty.clock.set(_ny(2025, 3, 12))  # type: ignore[attr-defined]
        loyalty.run_due()  # 250 expire: January closes, breakage 25%
        _order(loyalty, "o2", "b", _ny(2025, 4, 15, 12), "2000.00")
        _spend(loyalty, "b", _ny(2025, 5, 1, 12), 1_200, "s2")
        loyalty.clock.set(_ny(2025, 5, 31))  # type: ignore[attr-defined]
        [q2] = loyalty.reports.revenue(Period.QUARTER, _ny(2025, 4, 1), _ny(2025, 7, 1))
        # carried in: 1,000.00 with points worth 1,000 x 0.10 x 0.75 = 75: 69.77 to the
        # points, all recognised (750 of 750 expected redeemed); Q2: 2,000.00 with 150
        # of points: 2,000 x 150 / 2,150 = 139.53; 209.30 x 1,950 / 2,250 = 181.39
        assert Decimal("0.75") == q2.expected_redemption
        assert (usd("2000.00"), 2_000, usd("1860.47"), usd("139.53")) == (
            q2.sales, q2.points, q2.goods, q2.allocated)
        assert (3_000, 1_950, 2_250) == (q2.issued, q2.redeemed, q2.expected)
        assert (usd("181.39"), usd("111.62"), usd("27.91")) == (
            q2.recognised, q2.revenue, q2.liability)
        # with no closed cohort the points are valued at face value (expected 1)
        [before] = loyalty.reports.revenue(Period.MONTH, _ny(2025, 1, 1), _ny(2025, 2, 1))
        assert Decimal(1) == before.expected_redemption

    def test_revenue_refuses_bad_input(self, storage: Storage) -> None:
        loyalty = _shop(self.make_loyalty, storage, time_zone="Europe/Berlin", currency="EUR",
                        point_value="1", per="10.00", now=berlin(2026, 7, 1))
        reports = loyalty.reports
        start, end = berlin(2026, 1, 1), berlin(2026, 7, 1)
        with pytest.raises(InvalidInput, match="one rate per period"):
            reports.revenue(Period.QUARTER, start, end, expected_redemption=[Decimal(1)])
        with pytest.raises(InvalidInput, match="between 0 and 1"):
            reports.revenue(Period.QUARTER, start, end, expected_redemption=Decimal("1.5"))
        with pytest.raises(InvalidInput, match="quantum"):
            reports.revenue(Period.QUARTER, start, end, quantum=Decimal(0))
        with pytest.raises(UnknownWallet):
            reports.revenue(Period.QUARTER, start, end, wallet="miles")
        with pytest.raises(InvalidInput, match="end is before start"):
            reports.revenue(Period.QUARTER, end, start)
        assert [] == reports.revenue("month", start, start)
