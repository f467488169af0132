"""Reports over orders, the pure part: what an order counts for, the rows the reports
return (purchases, KPIs per period, RFM), and RFM scoring and segments as data
(DESIGN §9). No I/O, no clock reads.

An order *counts* while it is not cancelled and not everything in it was returned; it
counts for its *net goods now*: the lines' net amounts once the returns so far are
taken off, shipping excluded (:meth:`loyaltykit.Order.after_returns`,
:attr:`loyaltykit.Order.net_goods`).
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._errors import InvalidInput, LoyaltyError, shown
from loyaltykit._json import JsonForm
from loyaltykit._orders import Order, check_name
from loyaltykit._periods import PeriodRange
from loyaltykit._validate import MAX_MONEY_PLACES, MONEY_CONTEXT
from loyaltykit._values import Money

__all__ = [
    "DEFAULT_RFM_SEGMENTS",
    "PeriodKpis",
    "Purchase",
    "RfmRow",
    "RfmSegment",
    "check_segments",
    "counted_net",
    "ratio",
    "rfm_scores",
    "ranked_scores",
    "rfm_segment",
]


def counted_net(order: Mapping[str, Any], returned: Mapping[str, int],
                cancelled: bool) -> Decimal | None:
    """The net goods an order counts for now (``order`` as placed, as
    :meth:`~loyaltykit.Order.to_dict` gives it, ``returned`` the quantities returned so
    far per line id), or None when it does not count: cancelled, or every line
    returned. A document that is no valid order (only rows written by hand, never the
    library's) counts for nothing. The stores keep this (as exact decimal text) beside
    the order."""
    if cancelled:
        return None
    try:
        now = Order.from_dict(order).after_returns(returned)
    except LoyaltyError:
        return None
    if not now.lines:
        return None
    return now.net_goods


@attrs.frozen
class Purchase(JsonForm):
    """One order that counts, as the purchase analyses (CLV) read it.

    ``member_id`` is the shop's member id (``"erased:<key>"`` for an erased member),
    ``placed_at`` the order's instant in UTC and ``amount`` its net goods now (the
    lines' net amounts after the returns so far; shipping excluded)."""

    member_id: str
    order_id: str
    placed_at: dt.datetime
    amount: Money


# -- KPIs per period ---------------------------------------------------------------------

#: Rates are exact to this many significant digits (half to even beyond).
RATE_CONTEXT = decimal.Context(prec=28, rounding=decimal.ROUND_HALF_EVEN)


def ratio(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    """``part / whole`` as a Decimal (28 significant digits), None when ``whole`` is 0."""
    if whole == 0:
        return None
    return RATE_CONTEXT.divide(Decimal(part), Decimal(whole))


@attrs.frozen
class PeriodKpis(JsonForm):
    """The order and points KPIs of one calendar period (DESIGN §9, scenario A3).

    Orders are those that count (not cancelled, not returned in full), each for its net
    goods now. ``active_members`` placed at least one in the period, ``new_members``
    placed their first one ever in it, ``repeat_members`` at least two;
    ``revenue`` is the orders' net goods. ``retained_members`` were active in the
    period before too (the first period of a report compares with the one before it),
    of ``previous_active_members``. Rates are exact Decimals (``Decimal("0.4")`` is
    40%), None when their denominator is 0; ``average_order_value`` is None without
    orders. ``points_issued`` and ``points_redeemed`` are the ledger's points per
    period (:meth:`loyaltykit.Loyalty.reports.points`).
    """

    period: PeriodRange
    active_members: int
    new_members: int
    repeat_members: int
    orders: int
    revenue: Money
    previous_active_members: int
    retained_members: int
    points_issued: int
    points_redeemed: int

    @property
    def average_order_value(self) -> Money | None:
        """Revenue / orders (exact to 18 decimal places), None without orders."""
        if self.orders == 0:
            return None
        value = MONEY_CONTEXT.divide(self.revenue.amount, Decimal(self.orders))
        return Money(value.quantize(_FINEST, context=MONEY_CONTEXT)
                     if _places(value) > MAX_MONEY_PLACES else value, self.revenue.currency)

    @property
    def orders_per_active_member(self) -> Decimal | None:
        """Orders / active members."""
        return ratio(self.orders, self.active_members)

    @property
    def repeat_purchase_rate(self) -> Decimal | None:
        """Members with at least two orders in the period / active members."""
        return ratio(self.repeat_members, self.active_members)

    @property
    def retention_rate(self) -> Decimal | None:
        """Of the members active in the period before, the share active in this one."""
        return ratio(self.retained_members, self.previous_active_members)

    @property
    def churn_rate(self) -> Decimal | None:
        """1 - retention rate: of the members active before, the share not active now."""
        kept = self.retention_rate
        return None if kept is None else 1 - kept

    @property
    def redemption_rate(self) -> Decimal | None:
        """Points redeemed / points issued in the period."""
        return ratio(self.points_redeemed, self.points_issued)


_FINEST = Decimal(1).scaleb(-MAX_MONEY_PLACES)


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


# -- RFM ---------------------------------------------------------------------------------

#: Scores run from 1 (worst) to this (best).
RFM_SCORES = 5


def rfm_scores(values: Sequence[int | Decimal], *, higher_is_better: bool = True
               ) -> list[int]:
    """The RFM score (1..5, 5 = best) of each of ``values``, by rank among them.

    Tie rule: the values are ranked from worst to best with the *min* rule (a value's
    rank is 1 + the number of values strictly worse than it, so tied values share the
    lowest rank of their group) and scored ``ceil(5 * rank / n)``. The best distinct
    value of ``n`` distinct values scores 5, the worst ``ceil(5 / n)`` (1 from five
    values on); tied values share one score. ``higher_is_better=False`` for recency
    (fewer days since the last order is better). Ints or Decimals (no bools); an
    empty sequence gives an empty list.
    """
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInput("values must be a sequence of ints or Decimals",
                           values=shown(values))
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | Decimal) or (
                isinstance(value, Decimal) and not value.is_finite()):
            raise InvalidInput("values must be ints or finite Decimals", index=i,
                               value=shown(value))
    if not isinstance(higher_is_better, bool):
        raise InvalidInput("higher_is_better must be a bool",
                           higher_is_better=shown(higher_is_better))
    return ranked_scores(values, higher_is_better)


def ranked_scores(values: Sequence[int | Decimal], higher_is_better: bool) -> list[int]:
    """:func:`rfm_scores` of values already known to be ints or finite Decimals (what
    the reports read back from storage)."""
    n = len(values)
    ordered = sorted(values) if higher_is_better else sorted(values, reverse=True)
    rank: dict[int | Decimal, int] = {}
    for position, value in enumerate(ordered, start=1):
        rank.setdefault(value, position)  # the first (lowest) rank of a tied group
    return [-(-RFM_SCORES * rank[value] // n) for value in values]


def _score_range(value: object, name: str) -> tuple[int, int]:
    if (not isinstance(value, tuple) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
            or not 1 <= value[0] <= value[1] <= RFM_SCORES):
        raise InvalidInput(f"{name} must be a (lo, hi) pair of scores with "
                           f"1 <= lo <= hi <= {RFM_SCORES}", **{name: shown(value)})
    return value


def _check_scores(r: object, f: object, m: object) -> None:
    for name, score in (("r", r), ("f", f), ("m", m)):
        if isinstance(score, bool) or not isinstance(score, int) or not (
                1 <= score <= RFM_SCORES):
            raise InvalidInput(f"{name} must be a score from 1 to {RFM_SCORES}",
                               **{name: shown(score)})


@attrs.frozen
class RfmSegment(JsonForm):
    """A named cell of the RFM grid: members whose recency score is within
    ``recency`` and whose frequency-monetary score (``(F + M) // 2``, the mean of the
    two rounded down) is within ``frequency_monetary``, both inclusive (lo, hi) pairs
    of scores 1..5. A table of segments is searched in order; the first match wins."""

    name: str
    recency: tuple[int, int]
    frequency_monetary: tuple[int, int]

    def __attrs_post_init__(self) -> None:
        check_name(self.name, "name", InvalidInput)
        _score_range(self.recency, "recency")
        _score_range(self.frequency_monetary, "frequency_monetary")

    def matches(self, r: int, f: int, m: int) -> bool:
        """Whether scores ``r``, ``f``, ``m`` (each 1..5) fall in this segment."""
        _check_scores(r, f, m)
        fm = (f + m) // 2
        return (self.recency[0] <= r <= self.recency[1]
                and self.frequency_monetary[0] <= fm <= self.frequency_monetary[1])


#: The usual named segments over recency (R) and frequency-monetary (FM), searched in
#: order; together they cover every score: (5, 5, 5) is "champions", (1, 1, 1) "lost".
DEFAULT_RFM_SEGMENTS: tuple[RfmSegment, ...] = (
    RfmSegment("champions", recency=(4, 5), frequency_monetary=(4, 5)),
    RfmSegment("loyal", recency=(3, 5), frequency_monetary=(3, 5)),
    RfmSegment("potential_loyalists", recency=(4, 5), frequency_monetary=(2, 3)),
    RfmSegment("new_customers", recency=(5, 5), frequency_monetary=(1, 1)),
    RfmSegment("promising", recency=(4, 4), frequency_monetary=(1, 1)),
    RfmSegment("need_attention", recency=(3, 3), frequency_monetary=(2, 3)),
    RfmSegment("about_to_sleep", recency=(3, 3), frequency_monetary=(1, 1)),
    RfmSegment("cannot_lose_them", recency=(1, 1), frequency_monetary=(4, 5)),
    RfmSegment("at_risk", recency=(1, 2), frequency_monetary=(3, 5)),
    RfmSegment("hibernating", recency=(2, 2), frequency_monetary=(1, 2)),
    RfmSegment("lost", recency=(1, 1), frequency_monetary=(1, 2)),
)


def check_segments(segments: object) -> tuple[RfmSegment, ...]:
    """``segments`` as a tuple of :class:`RfmSegment` (else InvalidInput)."""
    if isinstance(segments, str | bytes) or not isinstance(segments, Sequence):
        raise InvalidInput("segments must be a sequence of RfmSegment",
                           segments=shown(segments))
    for i, segment in enumerate(segments):
        if not isinstance(segment, RfmSegment):
            raise InvalidInput("segments must be RfmSegment values", index=i,
                               segment=shown(segment))
    return tuple(segments)


def segment_grid(segments: Sequence[RfmSegment]) -> dict[tuple[int, int, int], str | None]:
    """Every score triple (r, f, m) mapped to the name of the first of ``segments``
    (checked) it falls in, or None: 125 look-ups worked out once per report."""
    table = check_segments(segments)
    scores = range(1, RFM_SCORES + 1)
    return {(r, f, m): next((s.name for s in table if s.matches(r, f, m)), None)
            for r in scores for f in scores for m in scores}


def rfm_segment(r: int, f: int, m: int,
                segments: Sequence[RfmSegment] = DEFAULT_RFM_SEGMENTS) -> str | None:
    """The name of the first of ``segments`` that scores ``r``, ``f``, ``m`` (each
    1..5) fall in, or None when none does."""
    _check_scores(r, f, m)
    for segment in check_segments(segments):
        if segment.matches(r, f, m):
            return segment.name
    return None


@attrs.frozen
class RfmRow(JsonForm):
    """One member's RFM as of an instant (scenario A4): ``recency_days`` whole
    calendar days in the program's zone from its last order's local date to the
    instant's, ``frequency`` its orders that count, ``monetary`` their net goods now;
    ``r``, ``f``, ``m`` the scores 1..5 (5 = best, see :func:`rfm_scores`) and
    ``segment`` the first matching segment's name (None: none matched)."""

    member_id: str
    last_order_at: dt.datetime
    recency_days: int
    frequency: int
    monetary: Money
    r: int
    f: int
    m: int
    segment: str | None
