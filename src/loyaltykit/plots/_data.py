"""The figures behind each picture, computed from the reports (no matplotlib).

Each function reads what ``loyalty.reports`` (or :mod:`loyaltykit.analytics`) already
answers and arranges it for one picture; none writes. Periods are the reports'
calendar periods in the program's time zone (:class:`~loyaltykit.Period`).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._facade import Loyalty
from loyaltykit._periods import Period, PeriodRange, report_periods
from loyaltykit._reports_orders import DEFAULT_RFM_SEGMENTS, RfmSegment, ratio
from loyaltykit._validate import check_instant
from loyaltykit.plots._figures import (
    ClvDistribution,
    CohortRetention,
    CohortRow,
    LiabilityAt,
    LiabilityOverTime,
    RfmSegments,
    SegmentSize,
    TiersAt,
    TiersOverTime,
)

__all__ = [
    "MAX_BINS",
    "clv_distribution",
    "cohort_retention",
    "liability_over_time",
    "period_ends",
    "rfm_segments",
    "tiers_over_time",
]

#: The most bins :func:`clv_distribution` draws.
MAX_BINS = 1000

_TICK = dt.timedelta(microseconds=1)


def check_loyalty(loyalty: object) -> Loyalty:
    """``loyalty`` if it is a :class:`~loyaltykit.Loyalty`, else InvalidInput."""
    if not isinstance(loyalty, Loyalty):
        raise InvalidInput("loyalty must be a Loyalty", loyalty=shown(loyalty))
    return loyalty


def _period(period: Period | str) -> Period:
    return period if isinstance(period, Period) else Period(period)


def period_ends(loyalty: Loyalty, period: Period | str, start: dt.datetime,
                end: dt.datetime) -> list[tuple[PeriodRange, dt.datetime]]:
    """The periods overlapping ``[start, end)`` that have begun by now, each with the
    instant it is read at: its last instant (everything before its end: an ``as_of``
    counts what had occurred by then), or the range's last if the range ends sooner,
    or now for the period now running."""
    ranges = report_periods(period, start, end, loyalty.program.time_zone)
    now = loyalty.clock.now()
    last = check_instant(end, "end") - _TICK
    return [(r, min(r.end - _TICK, last, now)) for r in ranges if r.start <= now]


def cohort_retention(loyalty: Loyalty, period: Period | str, start: dt.datetime,
                     end: dt.datetime) -> CohortRetention:
    """Retention by cohort over the calendar ``period``\\ s (program's time zone)
    overlapping ``[start, end)``, whole periods as :meth:`loyalty.reports.kpis
    <loyaltykit.PeriodKpis>` takes them.

    A member's cohort is the period of its first order that counts, ever (from
    ``loyalty.reports.purchases()``: not cancelled, not returned in full); members
    whose first order came before the range belong to no cohort. For each cohort and
    each period since its own (column 0 is the cohort's period, so its share is 1),
    the share of the cohort that placed at least one order in that period: an exact
    Decimal (:class:`~loyaltykit.PeriodKpis`' rates), None for a cohort without
    members. Orders count as they stand now. Bad arguments raise what ``kpis`` raises
    (:class:`~loyaltykit.InvalidInput`, :class:`~loyaltykit.NaiveDatetime`).
    """
    loyalty = check_loyalty(loyalty)
    ranges = report_periods(period, start, end, loyalty.program.time_zone)
    which = _period(period)
    n = len(ranges)
    starts = [r.start for r in ranges]
    active = [[0] * (n - i) for i in range(n)]
    if ranges:
        lo = ranges[0].start
        # purchases() gives each member's purchases together, in time order: one
        # member's state at a time, whatever the number of members
        member: str | None = None
        cohort: int | None = None
        seen: set[int] = set()
        for p in loyalty.reports.purchases(end=ranges[-1].end):
            index = bisect.bisect_right(starts, p.placed_at) - 1
            if p.member_id != member:  # its first order that counts, ever
                member, seen = p.member_id, set()
                cohort = None if p.placed_at < lo else index
            if cohort is None or index - cohort in seen:
                continue
            seen.add(index - cohort)
            active[cohort][index - cohort] += 1
    rows = tuple(CohortRow(cohort=r, members=active[i][0], active=tuple(active[i]),
                           retention=tuple(ratio(a, active[i][0]) for a in active[i]))
                 for i, r in enumerate(ranges))
    return CohortRetention(period=which, time_zone=loyalty.program.time_zone,
                           periods=tuple(ranges), cohorts=rows)


def rfm_segments(loyalty: Loyalty, *, as_of: dt.datetime | None = None,
                 segments: Sequence[RfmSegment] = DEFAULT_RFM_SEGMENTS) -> RfmSegments:
    """How many members each RFM segment holds at ``as_of`` (default now), from
    ``loyalty.reports.rfm(as_of=..., segments=...)``: every segment name of the table
    in its order (zeros included), then the members no segment matched (only if any),
    each with its exact share of the scored members. Bad arguments raise what ``rfm``
    raises."""
    loyalty = check_loyalty(loyalty)
    when = loyalty.clock.now() if as_of is None else check_instant(as_of, "as_of")
    rows = loyalty.reports.rfm(as_of=when, segments=segments)
    counts: dict[str | None, int] = dict.fromkeys((s.name for s in segments), 0)
    for row in rows:
        counts[row.segment] = counts.get(row.segment, 0) + 1
    total = len(rows)
    return RfmSegments(as_of=when, members=total, segments=tuple(
        SegmentSize(segment=name, members=n, share=ratio(n, total))
        for name, n in counts.items()))


def liability_over_time(loyalty: Loyalty, period: Period | str, start: dt.datetime,
                        end: dt.datetime, *, wallet: str | None = None
                        ) -> LiabilityOverTime:
    """``loyalty.reports.liability`` and ``.breakage`` of ``wallet`` (default the
    program's default wallet) at the end of each calendar ``period`` overlapping
    ``[start, end)``: read at each period's last instant (the range's last, if it ends
    within the period; now for the period now running), periods that have not begun
    left out. The expected redemption (and so the
    liability) is the one each report would have given then: 1 - the breakage of the
    cohorts closed by then, or the full face value before any closed. Bad arguments
    raise what the reports raise (:class:`~loyaltykit.InvalidInput`,
    :class:`~loyaltykit.UnknownWallet`, :class:`~loyaltykit.NaiveDatetime`)."""
    loyalty = check_loyalty(loyalty)
    name = loyalty.program.wallet(wallet)
    rows = []
    for r, when in period_ends(loyalty, period, start, end):
        owed = loyalty.reports.liability(as_of=when, wallet=name)
        broken = loyalty.reports.breakage(as_of=when, wallet=name)
        rows.append(LiabilityAt(period=r, as_of=when, points=owed.points,
                                face_value=owed.face_value,
                                expected_redemption=owed.expected_redemption,
                                basis=owed.basis, liability=owed.liability,
                                breakage_rate=broken.rate))
    return LiabilityOverTime(period=_period(period), wallet=name,
                             currency=loyalty.program.point_value.currency,
                             rows=tuple(rows))


def tiers_over_time(loyalty: Loyalty, period: Period | str, start: dt.datetime,
                    end: dt.datetime) -> TiersOverTime:
    """``loyalty.reports.tiers(as_of=...)`` at the end of each calendar ``period``
    overlapping ``[start, end)`` (read as :func:`liability_over_time` reads), one
    column per tier the reports list, in their order. Bad arguments raise what the
    reports raise."""
    loyalty = check_loyalty(loyalty)
    found = [(r, when, loyalty.reports.tiers(as_of=when))
             for r, when in period_ends(loyalty, period, start, end)]
    names: dict[str | None, None] = {}
    if loyalty.program.tiers is not None:
        names.update((t.name, None) for t in loyalty.program.tiers.tiers)
    names[None] = None
    for _, _, distribution in found:
        names.update((t.tier, None) for t in distribution.tiers)
    tiers = tuple(names)
    rows = tuple(TiersAt(period=r, as_of=when,
                         members=tuple(d.count(t) for t in tiers), total=d.total)
                 for r, when, d in found)
    return TiersOverTime(period=_period(period), tiers=tiers, rows=rows)


def clv_distribution(values: Any, bins: int = 20, *,
                     currency: str | None = None) -> ClvDistribution:
    """A histogram of expected customer values: ``values`` is a
    :class:`~loyaltykit.analytics.CustomerValues` (its ``expected_value`` column, its
    horizon and unit, the currency of its historical spend) or a sequence of finite
    numbers (ints, floats, Decimals). ``bins`` equal-width bins from the smallest value
    to the largest (one unit wide around a single value), as ``numpy.histogram``
    makes them; 1 to :data:`MAX_BINS`. No values, a value that is not a finite
    number or a bad ``bins`` raise :class:`~loyaltykit.InvalidInput`."""
    horizon: float | None = None
    unit: str | None = None
    column = getattr(values, "expected_value", None)
    if column is not None and hasattr(values, "horizon"):  # a CustomerValues
        horizon, unit = float(values.horizon), str(values.unit)
        historical = values.historical
        if currency is None and historical:
            currency = historical[0].currency
        values = column.tolist() if hasattr(column, "tolist") else list(column)
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInput("values must be a CustomerValues or a sequence of numbers",
                           values=shown(values))
    if not values:
        raise InvalidInput("no values to draw a distribution of")
    numbers: list[float] = []
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise InvalidInput("values must be numbers", index=i, value=shown(value))
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInput("values must be finite", index=i, value=shown(value))
        numbers.append(number)
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= MAX_BINS:
        raise InvalidInput(f"bins must be an int in 1..{MAX_BINS}", bins=shown(bins))
    if currency is not None and not isinstance(currency, str):
        raise InvalidInput("currency must be text", currency=shown(currency))
    lo, hi = min(numbers), max(numbers)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    step = (hi - lo) / bins
    edges = [i * step + lo for i in range(bins)] + [hi]  # numpy.linspace's arithmetic
    counts = [0] * bins
    for number in numbers:
        counts[min(bisect.bisect_right(edges, number) - 1, bins - 1)] += 1
    return ClvDistribution(values=tuple(numbers), edges=tuple(edges), counts=tuple(counts),
                           horizon=horizon, unit=unit, currency=currency)
