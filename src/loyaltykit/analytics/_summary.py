"""The purchase summary the CLV models read: per customer, repeat purchase days ``x``,
recency ``t_x``, age ``T`` and the average value of the repeat days, built from
purchases (the program's own orders, or any iterable of purchase records).

Times count whole local days in the program's time zone: a customer's first purchase
day is day 0, ``t_x`` is the day of the last purchase day and ``T`` the last day of
calibration (the local date of the instant just before ``end``), each divided by the
unit's length (7 for weeks). This is the convention of Fader, Hardie & Lee's CDNOW
summary (and of ``lifetimes``): a first purchase on 1997-01-01 and a calibration ending
with 1997-09-30 give ``T = 272 / 7 = 38.86`` weeks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs
import numpy as np

from loyaltykit._errors import CurrencyMismatch, InvalidInput, InvalidSummary, shown
from loyaltykit._json import JsonForm
from loyaltykit._validate import check_instant, check_time_zone
from loyaltykit._values import Money
from loyaltykit.analytics._checks import FloatArray, IntArray, as_float_array, check_rfm

if TYPE_CHECKING:
    from loyaltykit._facade import Loyalty

__all__ = ["UNITS", "Summary", "summary", "summary_from"]

#: The time units a summary can count in, by their length in days.
UNITS: dict[str, int] = {"days": 1, "weeks": 7}

Unit = Literal["days", "weeks"]


def _check_unit(unit: object) -> str:
    if not isinstance(unit, str) or unit not in UNITS:
        raise InvalidInput(f"unit must be one of {sorted(UNITS)}", unit=shown(unit))
    return unit


def _frozen(array: Any) -> Any:
    array.setflags(write=False)
    return array


@attrs.frozen(eq=False)
class Summary(JsonForm):
    """One row per customer, as columns: what BG/NBD and Gamma-Gamma are fitted on.

    * ``member_ids``: the shop's member ids (``"0"``, ``"1"``... when built from bare
      arrays);
    * ``x``: repeat purchase days (distinct purchase days after the first);
    * ``t_x``: time of the last purchase day after the first (0 when ``x == 0``);
    * ``T``: time from the first purchase day to the end of calibration;
    * ``monetary``: average value of the repeat purchase days (a day's purchases
      summed, the first day left out); 0 when ``x == 0``;
    * ``unit``: ``"weeks"`` or ``"days"``, the unit of ``t_x`` and ``T``;
    * ``spend``: net spend in the calibration period per member (the historical value;
      exact), or ``None`` when the summary was given as bare numbers.

    The arrays are read-only. Build one with :func:`summary`, :func:`summary_from` or
    :meth:`of`; every way checks the columns (else :class:`~loyaltykit.InvalidSummary`).
    """

    member_ids: tuple[str, ...]
    x: IntArray
    t_x: FloatArray
    T: FloatArray
    monetary: FloatArray
    unit: str = "weeks"
    spend: tuple[Money, ...] | None = None

    def __attrs_post_init__(self) -> None:
        _check_unit(self.unit)
        xs, txs, Ts = check_rfm(self.x, self.t_x, self.T)
        if xs.ndim != 1:
            raise InvalidSummary("x, t_x and T must be one-dimensional", field="x")
        money = as_float_array(self.monetary, "monetary")
        n = xs.size
        if money.shape != (n,) or len(self.member_ids) != n:
            raise InvalidSummary("every column must have one value per customer",
                                 field="monetary", customers=n, monetary=money.size,
                                 member_ids=len(self.member_ids))
        bad = ((xs > 0) & (money < 0)) | ((xs == 0) & (money != 0))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise InvalidSummary("monetary must be >= 0, and 0 for a customer with x = 0",
                                 field="monetary", row=row, monetary=float(money[row]))
        if self.spend is not None and (len(self.spend) != n or not all(
                isinstance(s, Money) for s in self.spend)):
            raise InvalidSummary("spend must be one Money per customer", field="spend")
        object.__setattr__(self, "x", _frozen(xs.astype(np.int64)))
        object.__setattr__(self, "t_x", _frozen(txs.copy()))
        object.__setattr__(self, "T", _frozen(Ts.copy()))
        object.__setattr__(self, "monetary", _frozen(money.copy()))

    @classmethod
    def of(cls, x: Any, t_x: Any, T: Any, monetary: Any = None, *,
           member_ids: Sequence[str] | None = None, unit: Unit = "weeks") -> Summary:
        """A summary from bare columns (array-likes of equal length), e.g. a published
        data set. ``monetary`` defaults to zeros (no spend model then); ``member_ids``
        to ``"0"``, ``"1"``..."""
        xs = as_float_array(x, "x")
        money = np.zeros(xs.shape) if monetary is None else monetary
        if member_ids is None:
            ids = tuple(str(i) for i in range(xs.size))
        elif isinstance(member_ids, str) or not all(isinstance(m, str) for m in member_ids):
            raise InvalidSummary("member_ids must be a sequence of str", field="member_ids")
        else:
            ids = tuple(member_ids)
        return cls(ids, xs, t_x, T, money, unit)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.member_ids)

    @property
    def repeat(self) -> Summary:
        """The customers with at least one repeat purchase day (what Gamma-Gamma fits)."""
        keep = self.x > 0
        ids = tuple(m for m, k in zip(self.member_ids, keep, strict=True) if k)
        spend = None if self.spend is None else tuple(
            s for s, k in zip(self.spend, keep, strict=True) if k)
        return Summary(ids, self.x[keep], self.t_x[keep], self.T[keep],
                       self.monetary[keep], self.unit, spend)


def _attr(record: object, name: str) -> Any:
    try:
        return getattr(record, name)
    except AttributeError:
        raise InvalidInput(f"a purchase must have a {name}", purchase=shown(record),
                           field=name) from None


def summary(purchases: Iterable[Any], *, end: dt.datetime, time_zone: str,
            start: dt.datetime | None = None, unit: Unit = "weeks") -> Summary:
    """The BG/NBD / Gamma-Gamma summary of ``purchases`` placed in ``[start, end)``.

    ``purchases``: records with ``member_id`` (str), ``placed_at`` (aware datetime) and
    ``amount`` (:class:`~loyaltykit.Money`, net of returns), such as
    ``loyalty.reports.purchases()``; one currency. Purchases on the same local date
    (in ``time_zone``) make one purchase day, whose value is their sum. Customers are
    the members with a purchase in the window (sorted by member id); with ``start``
    the summary sees only purchases from ``start`` on (a cohort study), so a member's
    first purchase in the window counts as the first. ``T`` runs to the last local
    day before ``end``: a purchase that day has ``t_x == T``. Bad arguments raise
    :class:`~loyaltykit.InvalidInput` (:class:`~loyaltykit.NaiveDatetime`,
    :class:`~loyaltykit.CurrencyMismatch`); no purchase in the window
    :class:`~loyaltykit.InvalidSummary`.
    """
    end_ = check_instant(end, "end")
    start_ = None if start is None else check_instant(start, "start")
    if start_ is not None and start_ >= end_:
        raise InvalidInput("start must be before end", start=start_.isoformat(),
                           end=end_.isoformat())
    zone = _zone(time_zone)
    unit_days = UNITS[_check_unit(unit)]
    if isinstance(purchases, str | bytes) or not isinstance(purchases, Iterable):
        raise InvalidInput("purchases must be an iterable of purchases",
                           purchases=shown(purchases))
    index: dict[str, int] = {}
    members: list[int] = []
    days: list[int] = []
    amounts: list[float] = []
    spend: dict[int, Decimal] = {}
    currency: str | None = None
    for record in purchases:
        member_id = _attr(record, "member_id")
        placed_at = check_instant(_attr(record, "placed_at"), "placed_at")
        amount = _attr(record, "amount")
        if not isinstance(member_id, str) or not member_id:
            raise InvalidInput("a purchase's member_id must be a non-empty str",
                               member_id=shown(member_id))
        if not isinstance(amount, Money):
            raise InvalidInput("a purchase's amount must be Money", amount=shown(amount))
        if currency is None:
            currency = amount.currency
        elif amount.currency != currency:
            raise CurrencyMismatch("purchases must share one currency", expected=currency,
                                   actual=amount.currency)
        if placed_at >= end_ or (start_ is not None and placed_at < start_):
            continue
        i = index.setdefault(member_id, len(index))
        members.append(i)
        days.append(placed_at.replace(tzinfo=dt.UTC).astimezone(zone).date().toordinal())
        amounts.append(float(amount.amount))
        spend[i] = spend.get(i, Decimal(0)) + amount.amount
    if not index:
        raise InvalidSummary("no purchases in the calibration period", field="purchases",
                             start=None if start_ is None else start_.isoformat(),
                             end=end_.isoformat())
    last_day = (end_ - dt.timedelta(microseconds=1)).replace(tzinfo=dt.UTC) \
        .astimezone(zone).date().toordinal()
    ids = sorted(index)
    order = np.array([index[m] for m in ids], dtype=np.int64)  # position -> index
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))  # index -> position in the sorted ids
    x, t_x, T, monetary = _columns(rank[np.array(members, dtype=np.int64)],
                                   np.array(days, dtype=np.int64),
                                   np.array(amounts, dtype=np.float64), len(ids), last_day)
    assert currency is not None
    money = tuple(Money(spend[int(i)], currency) for i in order)
    return Summary(tuple(ids), x, t_x / unit_days, T / unit_days, monetary, unit, money)


def _zone(time_zone: object) -> dt.tzinfo:
    from loyaltykit._calendar import zone

    name = check_time_zone(time_zone)
    return zone(name)


def _columns(member: IntArray, day: IntArray, amount: FloatArray, n: int, last_day: int
             ) -> tuple[IntArray, FloatArray, FloatArray, FloatArray]:
    """Set-based: purchase days per member (a day's amounts summed), then per member the
    repeat days, the last and first day and the repeat days' average value."""
    first_ord = int(day.min())
    span = int(day.max()) - first_ord + 1
    key = member * span + (day - first_ord)
    keys, inverse = np.unique(key, return_inverse=True)  # sorted: by member, then day
    day_value = np.bincount(inverse, weights=amount, minlength=keys.size)
    day_member = keys // span
    day_of = keys % span + first_ord
    starts = np.searchsorted(day_member, np.arange(n))
    counts = np.bincount(day_member, minlength=n)
    first = day_of[starts]
    last = day_of[starts + counts - 1]
    x = counts - 1
    totals = np.bincount(day_member, weights=day_value, minlength=n)
    repeat_value = totals - day_value[starts]
    monetary = np.divide(repeat_value, x, out=np.zeros(n), where=x > 0)
    return (x.astype(np.int64), (last - first).astype(np.float64),
            (last_day - first).astype(np.float64), monetary)


def summary_from(loyalty: Loyalty, *, end: dt.datetime | None = None,
                 start: dt.datetime | None = None, unit: Unit = "weeks") -> Summary:
    """:func:`summary` of the program's own orders: ``loyalty.reports.purchases`` in
    ``[start, end)`` (``end`` defaults to the clock's now), days in the program's time
    zone. Cancelled and fully returned orders are left out; amounts are net goods after
    returns (shipping excluded); an erased member's orders stay, under its erased name.
    ``spend`` is each member's net spend in the window (historical CLV)."""
    from loyaltykit._facade import Loyalty

    if not isinstance(loyalty, Loyalty):
        raise InvalidInput("loyalty must be a Loyalty", loyalty=shown(loyalty))
    end_ = loyalty.clock.now() if end is None else check_instant(end, "end")
    start_ = None if start is None else check_instant(start, "start")
    return summary(loyalty.reports.purchases(start=start_, end=end_), end=end_, start=start_,
                   time_zone=loyalty.program.time_zone, unit=unit)
