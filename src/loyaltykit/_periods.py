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

__all__ = ["Period", "PeriodRange", "period_ranges"]

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
class PeriodRange:
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
