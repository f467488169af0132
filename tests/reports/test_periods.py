"""Reporting periods in the program's zone (src/loyaltykit/_periods.py): DST, ISO weeks,
quarters, years, a zone with a half-hour offset."""

from __future__ import annotations

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

from loyaltykit import Period
from loyaltykit._periods import period_ranges

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def _utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_days_across_the_spring_and_autumn_changes_are_23_and_25_hours() -> None:
    days = period_ranges(Period.DAY, dt.datetime(2026, 3, 28, 12, tzinfo=BERLIN),
                         dt.datetime(2026, 3, 30, tzinfo=BERLIN), "Europe/Berlin")
    assert ["2026-03-28", "2026-03-29"] == [d.label for d in days]
    assert [dt.timedelta(hours=24), dt.timedelta(hours=23)] == [d.end - d.start for d in days]
    assert _utc(2026, 3, 28, 23) == days[1].start  # local midnight, still CET
    autumn = period_ranges(Period.DAY, _utc(2026, 10, 25, 1), _utc(2026, 10, 25, 2),
                           "Europe/Berlin")
    assert [(_utc(2026, 10, 24, 22), _utc(2026, 10, 25, 23))] == [
        (d.start, d.end) for d in autumn]


def test_iso_weeks_start_on_monday_and_cross_the_year() -> None:
    weeks = period_ranges(Period.WEEK, _utc(2026, 12, 30), _utc(2027, 1, 5), "UTC")
    assert [(dt.date(2026, 12, 28), "2026-12-28"), (dt.date(2027, 1, 4), "2027-01-04")] == [
        (w.day, w.label) for w in weeks]
    assert all(w.day.weekday() == 0 and w.end - w.start == dt.timedelta(days=7)
               for w in weeks)
    assert 53 == dt.date(2026, 12, 28).isocalendar().week  # 2026 has an ISO week 53


def test_quarters_and_years_are_whole_and_named() -> None:
    quarters = period_ranges(Period.QUARTER, dt.datetime(2026, 2, 10, tzinfo=BERLIN),
                             dt.datetime(2026, 11, 1, tzinfo=BERLIN), "Europe/Berlin")
    assert ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"] == [q.label for q in quarters]
    assert _utc(2025, 12, 31, 23) == quarters[0].start  # CET
    assert _utc(2026, 3, 31, 22) == quarters[1].start  # CEST
    assert all(a.end == b.start for a, b in itertools.pairwise(quarters))
    [year] = period_ranges(Period.YEAR, _utc(2026, 6, 1), _utc(2026, 6, 2), "Europe/Berlin")
    assert ("2026", _utc(2025, 12, 31, 23), _utc(2026, 12, 31, 23)) == (
        year.label, year.start, year.end)


def test_a_half_hour_zone_and_an_instant_just_before_the_end() -> None:
    """Asia/Kolkata is UTC+05:30: its months start at 18:30 UTC the day before; an
    instant just before ``end`` makes its period the last one; ``end`` at a period's
    start does not add that period."""
    months = period_ranges(Period.MONTH, _utc(2026, 1, 31, 18, 29),
                           _utc(2026, 1, 31, 18, 31), "Asia/Kolkata")
    assert [("2026-01", _utc(2025, 12, 31, 18, 30), _utc(2026, 1, 31, 18, 30)),
            ("2026-02", _utc(2026, 1, 31, 18, 30), _utc(2026, 2, 28, 18, 30))] == [
        (m.label, m.start, m.end) for m in months]
    assert ["2026-01"] == [m.label for m in period_ranges(
        Period.MONTH, _utc(2026, 1, 10), _utc(2026, 1, 31, 18, 30), "Asia/Kolkata")]
    assert [] == period_ranges(Period.MONTH, _utc(2026, 1, 10), _utc(2026, 1, 9),
                               "Asia/Kolkata")

