"""IFRS 15 / ASC 606 from the program's own data (DESIGN §9, scenario A1): the
revenue report of :class:`~loyaltykit._services.reports.ReportService`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from loyaltykit._errors import InvalidInput
from loyaltykit._ifrs15 import (
    CENT,
    PeriodRevenue,
    RedemptionEstimate,
    allocate_revenue,
    check_quantum,
    check_rate,
    recognised_share,
)
from loyaltykit._periods import Period, report_periods
from loyaltykit._reports_ledger import Breakage, PointsPeriod, WalletTotals
from loyaltykit._services.context import Context
from loyaltykit._validate import MIN_INSTANT, MONEY_CONTEXT
from loyaltykit._values import Money

__all__ = ["RevenueReports"]


def _rates(given: object, periods: int) -> list[Decimal] | None:
    """The expected redemption of each period as given (None: estimate them)."""
    if given is None:
        return None
    values = list(given) if isinstance(given, Sequence) and not isinstance(
        given, str | bytes) else [given] * periods
    if len(values) != periods:
        raise InvalidInput("expected_redemption: one rate per period of the report",
                           periods=periods, rates=len(values))
    return [check_rate(value, "expected_redemption") for value in values]


class RevenueReports:
    """The revenue part of :class:`~loyaltykit._services.reports.ReportService`."""

    c: Context
    #: the ledger's reports (:meth:`LedgerReports.totals`, ``.points``, ``.breakage``);
    #: the service wires them
    _ledger_totals: Callable[..., list[WalletTotals]]
    _ledger_points: Callable[..., list[PointsPeriod]]
    _ledger_breakage: Callable[..., Breakage]

    def revenue(self, period: Period | str, start: dt.datetime, end: dt.datetime, *,
                expected_redemption: Decimal | Sequence[Decimal] | None = None,
                wallet: str | None = None, quantum: Decimal = CENT) -> list[PeriodRevenue]:
        """IFRS 15 / ASC 606 for the points, per calendar ``period`` overlapping
        ``[start, end)`` (see :class:`~loyaltykit.PeriodRevenue`).

        Each period's sales (orders that count now, net goods) are split between goods
        and points by relative stand-alone selling price
        (:func:`~loyaltykit.allocate_revenue`: the points the orders earn x the point
        value x the expected redemption at the period's end), as one portfolio per
        period (IFRS 15 §4); the orders placed before ``start`` are allocated as one
        portfolio at the estimate at ``start``, so the liability carried in is counted.
        The points' share is recognised as the wallet's points are redeemed: by the end
        of a period, ``allocated so far x min(1, redeemed / (issued x expected
        redemption))``, the change being the period's revenue (cumulative catch-up,
        :func:`~loyaltykit.recognise_revenue`).

        ``expected_redemption``: one Decimal for every period, one per period, or None
        to estimate it at each period's end from closed cohorts
        (:meth:`breakage`; 1 while no cohort is closed). ``wallet``: the points' wallet
        (default the program's default). Amounts are rounded half even to ``quantum``.
        Instants after now are read as now. Bad arguments raise
        :class:`~loyaltykit.InvalidInput` subclasses."""
        program = self.c.program
        wallet = program.wallet(wallet)
        ranges = report_periods(period, start, end, program.time_zone)
        step = check_quantum(quantum)
        given = _rates(expected_redemption, len(ranges))
        if not ranges:
            return []
        now = self.c.now()
        opening = ranges[0].start
        bounds = [(MIN_INSTANT, opening), *((r.start, r.end) for r in ranges)]
        with self.c.read() as uow:
            sold = {t.period: t for t in uow.reports.period_order_totals(bounds)}

        def rate_at(at: dt.datetime, index: int) -> Decimal:
            if given is not None:
                return given[index]
            found = self._ledger_breakage(as_of=min(at, now), wallet=wallet)
            return Decimal(1) if found.expected_redemption is None else (
                found.expected_redemption)

        currency = program.currency
        zero = Money(0, currency)

        def split(index: int, rate: Decimal) -> tuple[Money, int, Money, Money]:
            t = sold.get(index)
            if t is None:
                return zero, 0, zero, zero
            sales = Money(t.net, currency)
            parts = allocate_revenue(sales, t.points, program.point_value, rate,
                                     quantum=step)
            return sales, t.points, parts.goods, parts.points

        def recognised(allocated: Decimal, issued: int, redeemed: int,
                       rate: Decimal) -> tuple[int, Decimal]:
            expected = int(MONEY_CONTEXT.multiply(Decimal(issued), rate).quantize(
                Decimal(1), ROUND_HALF_EVEN, context=MONEY_CONTEXT))
            estimate = RedemptionEstimate(max(redeemed, 0), max(expected, 0))
            return estimate.expected, recognised_share(allocated, estimate, step)

        # the wallet's points before the report, then what each period moved: two
        # statements, however many periods
        [carried] = self._ledger_totals(
            as_of=min(opening - dt.timedelta(microseconds=1), now), wallet=wallet)
        moved = self._ledger_points(period, start, end, wallet=wallet)
        opening_rate = rate_at(opening, 0)
        pool = split(0, opening_rate)[3].amount
        issued, redeemed = carried.issued, carried.redeemed
        before = recognised(pool, issued, redeemed, opening_rate)[1]
        out = []
        for i, (r, flows) in enumerate(zip(ranges, moved, strict=True)):
            rate = rate_at(r.end, i)
            sales, points, goods, allocated = split(i + 1, rate)
            pool = MONEY_CONTEXT.add(pool, allocated.amount)
            issued, redeemed = issued + flows.issued, redeemed + flows.redeemed
            expected, done = recognised(pool, issued, redeemed, rate)
            out.append(PeriodRevenue(
                period=r, sales=sales, points=points, expected_redemption=rate,
                goods=goods, allocated=allocated, issued=issued, redeemed=redeemed,
                expected=expected, recognised=Money(done, currency),
                revenue=Money(MONEY_CONTEXT.subtract(done, before), currency),
                liability=Money(MONEY_CONTEXT.subtract(pool, done), currency)))
            before = done
        return out
