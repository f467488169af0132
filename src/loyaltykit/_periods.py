"""Reporting periods: calendar days, ISO weeks, months, quarters and years in the
program's time zone, as half-open UTC ranges that set-based reads group by.

A leaf module (it knows only the calendar), shared by the reports that count per
period (points movements, KPIs, cohorts).
"""

from __future__ import annotations

import datetime as dt
import enum

import attrs

from loyaltykit._calendar import calendar_period, zone
from loyaltykit._errors import InvalidInput, shown
from loyaltykit._json import JsonForm
from loyaltykit._validate import check_instant

__all__ = ["MAX_PERIODS", "Period", "PeriodRange", "period_ranges", "report_periods"]

#: At most this many periods in one report (about 27 years of days).
MAX_PERIODS = 10_000


class Period(enum.Enum):
    """The length of a reporting period; each starts at local midnight in the
    program's time zone (a week on Monday, ISO 8601)."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


@attrs.frozen
class PeriodRange(JsonForm):
    """One reporting period: ``[start, end)`` in UTC, and its first local ``day``
    (in the program's time zone), which names it."""

    period: Period
    day: dt.date
    start: dt.datetime
    end: dt.datetime

    @property
    def label(self) -> str:
        """A stable name: ``2026-03-02`` (day, week), ``2026-03`` (month),
        ``2026-Q1`` (quarter), ``2026`` (year)."""
        if self.period is Period.MONTH:
            return f"{self.day.year:04d}-{self.day.month:02d}"
        if self.period is Period.QUARTER:
            return f"{self.day.year:04d}-Q{(self.day.month - 1) // 3 + 1}"
        if self.period is Period.YEAR:
            return f"{self.day.year:04d}"
        return self.day.isoformat()


def period_ranges(period: Period, start: dt.datetime, end: dt.datetime,
                  time_zone: str) -> list[PeriodRange]:
    """The periods of length ``period`` in ``time_zone`` that overlap ``[start, end)``,
    in time order: the first is the one containing ``start``, the last the one
    containing the instant just before ``end`` (whole periods, never cut). Empty
    when ``end <= start``. The caller validates its inputs (aware instants, a known
    period and zone) and the count (:data:`MAX_PERIODS`)."""
    tz = zone(time_zone)
    out: list[PeriodRange] = []
    if end <= start:
        return out
    day = start.astimezone(tz).date()
    while True:
        first, after = calendar_period(period.value, day, tz)
        if first >= end:
            break
        local = first.astimezone(tz).date()
        out.append(PeriodRange(period, local, first, after))
        day = after.astimezone(tz).date()
        if len(out) > MAX_PERIODS:
            break
    return out


def report_periods(period: object, start: object, end: object,
                   time_zone: str) -> list[PeriodRange]:
    """The periods of a report, its arguments checked at the edge: ``period`` a
    :class:`Period` (or its value, ``"month"``), ``start`` and ``end`` aware instants
    with ``end`` not before ``start`` (equal: no period), at most :data:`MAX_PERIODS`
    periods. Refusals are :class:`~loyaltykit.InvalidInput` (naive instants
    :class:`~loyaltykit.NaiveDatetime`)."""
    if isinstance(period, str) and not isinstance(period, Period):
        try:
            period = Period(period)
        except ValueError:
            raise InvalidInput("no such period", period=shown(period),
                               expected=[p.value for p in Period]) from None
    if not isinstance(period, Period):
        raise InvalidInput("period must be a Period", period=shown(period),
                           expected=[p.value for p in Period])
    lo = check_instant(start, "start")
    hi = check_instant(end, "end")
    if hi < lo:
        raise InvalidInput("end is before start", start=lo.isoformat(), end=hi.isoformat())
    ranges = period_ranges(period, lo, hi, time_zone)
    if len(ranges) > MAX_PERIODS:
        raise InvalidInput(f"at most {MAX_PERIODS} periods in one report",
                           period=period.value, start=lo.isoformat(), end=hi.isoformat())
    return ranges
