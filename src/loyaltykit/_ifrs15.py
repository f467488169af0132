"""IFRS 15 / ASC 606 for points: allocate an order's price between the goods and the
points it earns, and recognise the points' share as revenue as points are redeemed
(DESIGN §9, scenario A1). A pure calculator on given inputs; the reports' service
feeds it from a program's own data.

Points are a separate performance obligation ("material right"). Their stand-alone
selling price is ``points x point value x expected redemption``; the price is split
by relative stand-alone selling price::

    goods  = price x price / (price + ssp)        (rounded to the quantum, half even)
    points = price - goods                        (so the parts add up exactly)

The points' share is a contract liability, recognised as revenue in proportion to the
points redeemed out of those expected to be redeemed, re-estimated each period; a
change of estimate is caught up at once (cumulative catch-up)::

    recognised by the end of period n = allocated x min(1, redeemed_n / expected_n)
    revenue of period n               = recognised_n - recognised_(n-1)
    liability after period n          = allocated - recognised_n
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

import attrs

from loyaltykit._errors import CurrencyMismatch, InvalidInput, InvalidMoney, shown
from loyaltykit._json import JsonForm
from loyaltykit._periods import PeriodRange
from loyaltykit._validate import MAX_MONEY_PLACES, MONEY_CONTEXT
from loyaltykit._values import Money, check_points

__all__ = [
    "PeriodRevenue",
    "RedemptionEstimate",
    "RevenueAllocation",
    "RevenueRecognition",
    "allocate_revenue",
    "check_quantum",
    "check_rate",
    "recognise_revenue",
    "recognised_share",
]

#: The default rounding quantum: a cent.
CENT = Decimal("0.01")
_FINEST = Decimal(1).scaleb(-MAX_MONEY_PLACES)


@attrs.frozen
class RevenueAllocation(JsonForm):
    """An order's price split between goods and points (IFRS 15 §73-80).

    ``points_value`` is the points' stand-alone selling price (points x point value x
    expected redemption); ``goods + points == price``."""

    price: Money
    points_value: Money
    goods: Money
    points: Money


@attrs.frozen
class RedemptionEstimate(JsonForm):
    """At the end of one period: the points ``redeemed`` so far (cumulative) and the
    points ``expected`` to be redeemed in all (the current estimate)."""

    redeemed: int
    expected: int

    def __attrs_post_init__(self) -> None:
        check_points(self.redeemed, name="redeemed", allow_zero=True)
        check_points(self.expected, name="expected", allow_zero=True)


@attrs.frozen
class PeriodRevenue(JsonForm):
    """IFRS 15 for one reporting period, from the program's own data
    (:meth:`loyalty.reports.revenue <loyaltykit._services.report_revenue.RevenueReports.revenue>`).

    ``sales`` is the net goods of the orders placed in the period that count now, and
    ``points`` what they earn now; ``expected_redemption`` the share of points expected
    to be redeemed at the period's end, with which the sales are split into ``goods``
    and ``allocated`` (the points' share, a contract liability). ``issued`` and
    ``redeemed`` are the wallet's points by the period's end (cumulative, as
    :meth:`totals` counts them), ``expected`` = issued x expected redemption.
    ``recognised`` is the points' revenue recognised by the period's end (cumulative,
    from the start of the program), ``revenue`` this period's part of it (negative
    when a re-estimate takes some back) and ``liability`` the contract liability left
    at the period's end."""

    period: PeriodRange
    sales: Money
    points: int
    expected_redemption: Decimal
    goods: Money
    allocated: Money
    issued: int
    redeemed: int
    expected: int
    recognised: Money
    revenue: Money
    liability: Money


@attrs.frozen
class RevenueRecognition(JsonForm):
    """One period's recognition of the points' share: the estimate it used, the revenue
    ``recognised`` by the period's end (cumulative), the period's ``revenue`` and the
    contract ``liability`` left."""

    estimate: RedemptionEstimate
    recognised: Money
    revenue: Money
    liability: Money


def check_quantum(value: object) -> Decimal:
    """``value`` if it is a rounding quantum (a Decimal between 1E-18 and 1)."""
    if not isinstance(value, Decimal) or not value.is_finite() or not _FINEST <= value <= 1:
        raise InvalidInput("quantum must be a Decimal between 1E-18 and 1, e.g. "
                           "Decimal('0.01')", quantum=shown(value))
    return value


def _round(amount: Decimal, quantum: Decimal) -> Decimal:
    steps = MONEY_CONTEXT.divide(amount, quantum).quantize(Decimal(1), ROUND_HALF_EVEN,
                                                           context=MONEY_CONTEXT)
    return MONEY_CONTEXT.multiply(steps, quantum)


def check_rate(value: object, name: str) -> Decimal:
    """``value`` as a Decimal if it is a rate between 0 and 1 (a Decimal or int; no
    bool, NaN or infinity), else :class:`~loyaltykit.InvalidInput` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int) or (
            isinstance(value, Decimal) and not value.is_finite()) or not 0 <= value <= 1:
        raise InvalidInput(f"{name} must be a Decimal between 0 and 1",
                           **{name: shown(value)})
    return Decimal(value)


def _money(value: object, name: str) -> Money:
    if not isinstance(value, Money):
        raise InvalidMoney(f"{name} must be Money", **{name: shown(value)})
    if value.amount < 0:
        raise InvalidMoney(f"{name} must not be negative", **{name: str(value.amount)})
    return value


def allocate_revenue(price: Money, points: int, point_value: Money,
                     expected_redemption: Decimal, *, quantum: Decimal = CENT
                     ) -> RevenueAllocation:
    """Split ``price`` between the goods and the ``points`` they earn, by relative
    stand-alone selling price; the points are valued at ``point_value`` each times
    ``expected_redemption`` (the share of points expected to be redeemed, 0..1).
    Amounts are rounded half even to ``quantum`` (a cent by default)."""
    price = _money(price, "price")
    check_points(points, allow_zero=True)
    point_value = _money(point_value, "point_value")
    if point_value.currency != price.currency:
        raise CurrencyMismatch("point_value: must be in the price's currency",
                               expected=price.currency, actual=point_value.currency)
    rate = check_rate(expected_redemption, "expected_redemption")
    step = check_quantum(quantum)
    ssp = MONEY_CONTEXT.multiply(MONEY_CONTEXT.multiply(point_value.amount, points), rate)
    whole = MONEY_CONTEXT.add(price.amount, ssp)
    goods = price.amount if whole == 0 else _round(
        MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(price.amount, price.amount), whole), step)
    currency = price.currency
    return RevenueAllocation(
        price=price, points_value=Money(_round(ssp, step), currency),
        goods=Money(goods, currency),
        points=Money(MONEY_CONTEXT.subtract(price.amount, goods), currency))


def recognised_share(allocated: Decimal, estimate: RedemptionEstimate,
                     quantum: Decimal) -> Decimal:
    """The part of ``allocated`` recognised by the time of ``estimate``:
    ``allocated x min(1, redeemed / expected)`` (all of it when nothing is expected),
    rounded half even to ``quantum``."""
    if estimate.expected == 0 or estimate.redeemed >= estimate.expected:
        return _round(allocated, quantum)
    return _round(MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(allocated, estimate.redeemed),
                                       estimate.expected), quantum)


def recognise_revenue(allocated: Money, estimates: Sequence[RedemptionEstimate], *,
                      quantum: Decimal = CENT) -> list[RevenueRecognition]:
    """Recognise ``allocated`` (the points' share of the price) period by period:
    ``estimates`` gives each period's cumulative points redeemed and the points then
    expected to be redeemed in all. Revenue recognised by a period's end is
    ``allocated x min(1, redeemed / expected)`` (all of it when nothing more is
    expected), rounded half even to ``quantum``; each period's revenue is the change,
    so a re-estimate is caught up in the period it is made (and may be negative)."""
    allocated = _money(allocated, "allocated")
    step = check_quantum(quantum)
    if isinstance(estimates, str | bytes) or not isinstance(estimates, Sequence):
        raise InvalidInput("estimates must be a sequence of RedemptionEstimate",
                           estimates=shown(estimates))
    out: list[RevenueRecognition] = []
    before = Decimal(0)
    for i, estimate in enumerate(estimates):
        if not isinstance(estimate, RedemptionEstimate):
            raise InvalidInput("estimates must be RedemptionEstimate values",
                               index=i, value=shown(estimate))
        recognised = recognised_share(allocated.amount, estimate, step)
        currency = allocated.currency
        out.append(RevenueRecognition(
            estimate=estimate, recognised=Money(recognised, currency),
            revenue=Money(MONEY_CONTEXT.subtract(recognised, before), currency),
            liability=Money(MONEY_CONTEXT.subtract(allocated.amount, recognised), currency)))
        before = recognised
    return out
