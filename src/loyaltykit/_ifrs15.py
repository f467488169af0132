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
from loyaltykit._validate import MAX_MONEY_PLACES, MONEY_CONTEXT
from loyaltykit._values import Money, check_points

__all__ = [
    "RedemptionEstimate",
    "RevenueAllocation",
    "RevenueRecognition",
    "allocate_revenue",
    "recognise_revenue",
]

#: The default rounding quantum: a cent.
CENT = Decimal("0.01")
_FINEST = Decimal(1).scaleb(-MAX_MONEY_PLACES)


@attrs.frozen
class RevenueAllocation:
    """An order's price split between goods and points (IFRS 15 §73-80).

    ``points_value`` is the points' stand-alone selling price (points x point value x
    expected redemption); ``goods + points == price``."""

    price: Money
    points_value: Money
    goods: Money
    points: Money


@attrs.frozen
class RedemptionEstimate:
    """At the end of one period: the points ``redeemed`` so far (cumulative) and the
    points ``expected`` to be redeemed in all (the current estimate)."""

    redeemed: int
    expected: int

    def __attrs_post_init__(self) -> None:
        check_points(self.redeemed, name="redeemed", allow_zero=True)
        check_points(self.expected, name="expected", allow_zero=True)


@attrs.frozen
class RevenueRecognition:
    """One period's recognition of the points' share: the estimate it used, the revenue
    ``recognised`` by the period's end (cumulative), the period's ``revenue`` and the
    contract ``liability`` left."""

    estimate: RedemptionEstimate
    recognised: Money
    revenue: Money
    liability: Money


def _quantum(value: object) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or not _FINEST <= value <= 1:
        raise InvalidInput("quantum must be a Decimal between 1E-18 and 1, e.g. "
                           "Decimal('0.01')", quantum=shown(value))
    return value


def _round(amount: Decimal, quantum: Decimal) -> Decimal:
    steps = MONEY_CONTEXT.divide(amount, quantum).quantize(Decimal(1), ROUND_HALF_EVEN,
                                                           context=MONEY_CONTEXT)
    return MONEY_CONTEXT.multiply(steps, quantum)


def _rate(value: object, name: str) -> Decimal:
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
    rate = _rate(expected_redemption, "expected_redemption")
    step = _quantum(quantum)
    ssp = MONEY_CONTEXT.multiply(MONEY_CONTEXT.multiply(point_value.amount, points), rate)
    whole = MONEY_CONTEXT.add(price.amount, ssp)
    goods = price.amount if whole == 0 else _round(
        MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(price.amount, price.amount), whole), step)
    currency = price.currency
    return RevenueAllocation(
        price=price, points_value=Money(_round(ssp, step), currency),
        goods=Money(goods, currency),
        points=Money(MONEY_CONTEXT.subtract(price.amount, goods), currency))


def recognise_revenue(allocated: Money, estimates: Sequence[RedemptionEstimate], *,
                      quantum: Decimal = CENT) -> list[RevenueRecognition]:
    """Recognise ``allocated`` (the points' share of the price) period by period:
    ``estimates`` gives each period's cumulative points redeemed and the points then
    expected to be redeemed in all. Revenue recognised by a period's end is
    ``allocated x min(1, redeemed / expected)`` (all of it when nothing more is
    expected), rounded half even to ``quantum``; each period's revenue is the change,
    so a re-estimate is caught up in the period it is made (and may be negative)."""
    allocated = _money(allocated, "allocated")
    step = _quantum(quantum)
    if isinstance(estimates, str | bytes) or not isinstance(estimates, Sequence):
        raise InvalidInput("estimates must be a sequence of RedemptionEstimate",
                           estimates=shown(estimates))
    out: list[RevenueRecognition] = []
    before = Decimal(0)
    for i, estimate in enumerate(estimates):
        if not isinstance(estimate, RedemptionEstimate):
            raise InvalidInput("estimates must be RedemptionEstimate values",
                               index=i, value=shown(estimate))
        if estimate.expected == 0 or estimate.redeemed >= estimate.expected:
            share = allocated.amount
        else:
            share = MONEY_CONTEXT.divide(
                MONEY_CONTEXT.multiply(allocated.amount, estimate.redeemed),
                estimate.expected)
        recognised = _round(share, step)
        currency = allocated.currency
        out.append(RevenueRecognition(
            estimate=estimate, recognised=Money(recognised, currency),
            revenue=Money(MONEY_CONTEXT.subtract(recognised, before), currency),
            liability=Money(MONEY_CONTEXT.subtract(allocated.amount, recognised), currency)))
        before = recognised
    return out
