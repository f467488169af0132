"""Points as payment, as data and arithmetic (DESIGN §7): the program's policy, the
usable range of a cart, the money-paid share of each line and the split of a return's
refund between points and money.

Pure: no I/O, no clock. The money value of ``n`` points is ``n * money / points``,
rounded down to the cent (0.01), so a member is never credited more than the policy
says. Points are whole; money is exact :class:`~decimal.Decimal`.

Allocation of the points-paid money across an order's lines (to earn on the
money-paid part only) is pro rata to each line's net amount, to the cent, by the
largest-remainder method: each line gets its share rounded down to the cent, and the
cents left over go one each to the lines with the largest remainders (ties: the line
that comes first in the order), so the allocations always sum exactly to the amount.

A return's refund of ``R`` (the goods value the return takes off the order) is split
by the policy's ``returns``:

* ``pro_rata`` (default): the points part is ``R * V / G``, where ``V`` is the money
  value of the points still paid and ``G`` the goods value before the return;
* ``points_first``: points first, up to ``V``: ``min(R, V)``;
* ``money_first``: money first, up to the money still paid ``G - V``; the rest in
  points: ``max(0, R - (G - V))``.

The points given back are that money part in points, rounded down to a whole point
(never more than are still paid); the money refund is the rest of ``R``. A return that
leaves no goods gives back every point still paid, so repeated partial returns never
give back more than was paid, and a cancellation gives back exactly what is left.
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._errors import shown
from loyaltykit._json import JsonForm
from loyaltykit._validate import (
    MONEY_CONTEXT,
    check_bool,
    check_decimal,
    check_enum,
    check_int,
    invalid,
)
from loyaltykit._values import MAX_POINTS, Money

__all__ = [
    "CENT",
    "PaymentPolicy",
    "PaymentQuote",
    "ReturnSplit",
    "allocate",
    "quote",
    "split_refund",
]

#: The money unit payments are allocated and valued in.
CENT = Decimal("0.01")
_ZERO = Decimal(0)
_ONE = Decimal(1)
_KEYS = frozenset({"points", "money", "min_points", "max_share", "step",
                   "earn_on_points_paid", "returns"})


class ReturnSplit(enum.Enum):
    """How a return of an order paid partly with points splits its refund."""

    PRO_RATA = "pro_rata"
    POINTS_FIRST = "points_first"
    MONEY_FIRST = "money_first"


def _field(name: str) -> str:
    return f"payments.{name}"


@attrs.frozen
class PaymentPolicy(JsonForm):
    """How members may pay with points: ``points`` points are worth ``money``
    (``PaymentPolicy(points=100, money=Money("1.00", "EUR"))``: 100 points = 1.00 EUR).

    A payment uses at least ``min_points``, in whole ``step`` s of points, and at most
    ``max_share`` (0 < share <= 1) of the cart's goods (shipping excluded). Points are
    earned on the money-paid part of an order only, unless ``earn_on_points_paid``.
    ``returns`` says how a partial return splits its refund (:class:`ReturnSplit`).

    >>> policy = PaymentPolicy(points=100, money=Money("1.00", "EUR"), min_points=500,
    ...                        max_share=Decimal("0.5"), step=100)
    >>> policy.value(2000)
    Decimal('20.00')
    >>> policy.limit(Decimal("40.00"))
    2000

    .. versionadded:: 0.3
    """

    points: int
    money: Money
    min_points: int = 0
    max_share: Decimal = attrs.field(default=_ONE)
    step: int = 1
    earn_on_points_paid: bool = False
    returns: ReturnSplit = ReturnSplit.PRO_RATA

    def __attrs_post_init__(self) -> None:
        check_int(self.points, _field("points"), 1, MAX_POINTS)
        if not isinstance(self.money, Money):
            raise invalid(_field("money"), "must be Money", shown(self.money))
        if not CENT <= self.money.amount <= Decimal(10**9):
            raise invalid(_field("money"), "must be from 0.01 to 1000000000",
                          str(self.money.amount))
        check_int(self.min_points, _field("min_points"), 0, MAX_POINTS)
        share = check_decimal(self.max_share, _field("max_share"), _ZERO, _ONE)
        if share <= _ZERO:
            raise invalid(_field("max_share"), "must be more than 0", str(share))
        object.__setattr__(self, "max_share", share)
        check_int(self.step, _field("step"), 1, MAX_POINTS)
        check_bool(self.earn_on_points_paid, _field("earn_on_points_paid"))
        object.__setattr__(self, "returns",
                           check_enum(ReturnSplit, self.returns, _field("returns")))

    def value(self, points: int) -> Decimal:
        """The money ``points`` are worth, rounded down to the cent."""
        exact = MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(points, self.money.amount),
                                     self.points)
        return exact.quantize(CENT, rounding=decimal.ROUND_DOWN, context=MONEY_CONTEXT)

    def points_for(self, money: Decimal) -> int:
        """The most whole points worth no more than ``money``."""
        exact = MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(money, self.points),
                                     self.money.amount)
        return max(int(exact.to_integral_value(rounding=decimal.ROUND_FLOOR)), 0)

    def limit(self, goods: Decimal) -> int:
        """The most points a cart with ``goods`` (net, shipping excluded) may use: its
        ``max_share`` in points, rounded down to a whole step."""
        most = self.points_for(MONEY_CONTEXT.multiply(goods, self.max_share))
        return most - most % self.step

    @property
    def least(self) -> int:
        """The fewest points a payment may use: ``min_points`` rounded up to a step
        (at least one step)."""
        steps = max(-(-self.min_points // self.step), 1)
        return steps * self.step

    def problem(self, points: int, goods: Decimal) -> tuple[str, dict[str, Any]] | None:
        """Why paying ``points`` for a cart of ``goods`` breaks the policy (None: it
        does not): not a whole step, under the minimum, over the share."""
        if points % self.step:
            return (f"points must be whole steps of {self.step}",
                    {"points": points, "step": self.step})
        if points < self.least:
            return (f"at least {self.least} points must be used",
                    {"points": points, "min_points": self.least})
        limit = self.limit(goods)
        if points > limit:
            return (f"at most {limit} points may pay for goods of {goods} "
                    f"({self.max_share} of them)",
                    {"points": points, "max_points": limit, "goods": str(goods)})
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {"points": self.points, "money": self.money.to_dict(),
                "min_points": self.min_points, "max_share": str(self.max_share),
                "step": self.step, "earn_on_points_paid": self.earn_on_points_paid,
                "returns": self.returns.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PaymentPolicy:
        """Build a policy from :meth:`to_dict` output (or the program's ``[payments]``
        TOML table, ``money = {amount = "1.00", currency = "EUR"}``); bad fields raise
        InvalidProgram naming the field."""
        if not isinstance(data, Mapping):
            raise invalid("payments", "must be a table", shown(data))
        for key in data:
            if key not in _KEYS:
                raise invalid(_field(str(key)[:64]), f"unknown field (known: {sorted(_KEYS)})",
                              None)
        for key in ("points", "money"):
            if key not in data:
                raise invalid(_field(key), "is required", None)
        raw = data["money"]
        try:
            money = Money.from_dict(raw)
        except Exception:
            raise invalid(_field("money"), "must be {'amount': ..., 'currency': ...}",
                          shown(raw)) from None
        return cls(points=data["points"], money=money,
                   min_points=data.get("min_points", 0),
                   max_share=data.get("max_share", "1"), step=data.get("step", 1),
                   earn_on_points_paid=data.get("earn_on_points_paid", False),
                   returns=data.get("returns", ReturnSplit.PRO_RATA.value))


@attrs.frozen
class PaymentQuote(JsonForm):
    """How many points a member may pay for a cart with (a dry run; nothing written).

    ``min_points`` .. ``max_points`` is the usable range (whole steps of ``step``),
    worth ``min_value`` .. ``max_value``; ``limit`` is the most the policy allows for
    this cart whatever the balance, ``available`` the member's spendable points.
    When the range is empty (the member has fewer points than the minimum, or the
    cart's share is below it) ``usable`` is False, ``max_points`` is 0 and ``reason``
    says why.

    .. versionadded:: 0.3
    """

    member_id: str
    order_id: str
    available: int
    goods: Money
    min_points: int
    max_points: int
    step: int
    limit: int
    min_value: Money
    max_value: Money
    usable: bool
    reason: str | None = None


def quote(policy: PaymentPolicy, member_id: str, order_id: str, goods: Money,
          available: int) -> PaymentQuote:
    """The usable range for a cart of ``goods`` and a member with ``available`` points."""
    limit = policy.limit(goods.amount)
    least = policy.least
    most = min(limit, available - available % policy.step)
    reason = None
    if most < least:
        reason = (f"the cart allows at most {limit} points" if limit < least
                  else f"the member has {available} points available")
        reason += f", fewer than the minimum of {least}"
        most = 0
    currency = goods.currency
    return PaymentQuote(
        member_id=member_id, order_id=order_id, available=available, goods=goods,
        min_points=least, max_points=most, step=policy.step, limit=limit,
        min_value=Money(policy.value(least), currency),
        max_value=Money(policy.value(most), currency), usable=reason is None, reason=reason)


def allocate(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """Split ``amount`` (whole cents, at most the weights' sum) across ``weights`` pro
    rata, to the cent, by the largest remainder (ties: the first); the parts sum
    exactly to ``amount``.

    >>> allocate(Decimal("20.00"), [Decimal("25.00"), Decimal("15.00")])
    [Decimal('12.50'), Decimal('7.50')]
    >>> allocate(Decimal("0.10"), [Decimal("1"), Decimal("1"), Decimal("1")])
    [Decimal('0.04'), Decimal('0.03'), Decimal('0.03')]
    """
    total = sum(weights, _ZERO)
    if amount <= _ZERO or total <= _ZERO:
        return [_ZERO for _ in weights]
    cents = int(MONEY_CONTEXT.divide(amount, CENT))
    exact = [MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(cents, w), total) for w in weights]
    floors = [int(e.to_integral_value(rounding=decimal.ROUND_FLOOR)) for e in exact]
    left = cents - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [(Decimal(n) * CENT).quantize(CENT) for n in floors]


def split_refund(policy: PaymentPolicy, returned: Decimal, goods: Decimal,
                 points_left: int, *, everything: bool) -> tuple[int, Decimal]:
    """``(points, money)`` to give back for a return of ``returned`` goods value from
    an order whose goods were worth ``goods`` before it and which still has
    ``points_left`` points paid (see the module docstring). ``everything``: nothing
    is left of the order's goods afterwards."""
    if points_left <= 0:
        return 0, max(returned, _ZERO)
    if everything:
        return points_left, max(returned - policy.value(points_left), _ZERO)
    if returned <= _ZERO or goods <= _ZERO:
        return 0, _ZERO
    paid = policy.value(points_left)
    split = policy.returns
    if split is ReturnSplit.PRO_RATA:
        part = MONEY_CONTEXT.divide(MONEY_CONTEXT.multiply(returned, paid), goods)
    elif split is ReturnSplit.POINTS_FIRST:
        part = min(returned, paid)
    else:
        part = max(returned - max(goods - paid, _ZERO), _ZERO)
    part = min(part, returned, paid)
    points = min(policy.points_for(part), points_left)
    return points, max(returned - policy.value(points), _ZERO)
