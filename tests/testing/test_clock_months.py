"""``TestClock.advance(months=...)``: calendar months on the wall clock of the clock's
time zone, the day clamped to the month's end, typed errors for bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from loyaltykit import InvalidInput, TestClock

UTC = dt.UTC


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(("start", "months", "expected"), [
    (at(2026, 1, 15, 9), 1, at(2026, 2, 15, 9)),
    (at(2026, 1, 31, 9), 1, at(2026, 2, 28, 9)),    # clamped to February's end
    (at(2028, 1, 31, 9), 1, at(2028, 2, 29, 9)),    # a leap year's
    (at(2026, 3, 31, 9), -1, at(2026, 2, 28, 9)),   # backwards, clamped too
    (at(2026, 1, 15, 9), 12, at(2027, 1, 15, 9)),
    (at(2026, 11, 30), 3, at(2027, 2, 28)),          # across a year end
    (at(2026, 1, 15, 9), 0, at(2026, 1, 15, 9)),
])
def test_months_in_utc_keep_the_time_of_day_and_clamp_the_day(start, months, expected):
    clock = TestClock(start)
    assert "UTC" == clock.time_zone
    assert expected == clock.advance(months=months)
    assert expected == clock.now()


def test_months_count_on_the_wall_clock_of_the_time_zone():
    # 10:00 in Berlin (winter, UTC+1) becomes 10:00 in Berlin (summer, UTC+2)
    clock = TestClock(at(2026, 3, 15, 9), time_zone="Europe/Berlin")
    assert at(2026, 4, 15, 8) == clock.advance(months=1)
    # in UTC the same month is 09:00 UTC to 09:00 UTC
    assert at(2026, 4, 15, 9) == TestClock(at(2026, 3, 15, 9)).advance(months=1)
    # the day is the local one: 30 January 23:30 UTC is 31 January 00:30 in Berlin,
    # clamped to 28 February 00:30 there; in UTC it is 30 January, clamped to the 28th
    berlin = TestClock(at(2026, 1, 30, 23, 30), time_zone="Europe/Berlin")
    assert at(2026, 2, 27, 23, 30) == berlin.advance(months=1)
    assert at(2026, 2, 28, 23, 30) == TestClock(at(2026, 1, 30, 23, 30)).advance(months=1)


def test_a_local_time_that_does_not_exist_moves_past_the_gap():
    # 02:30 on 29 March 2026 does not exist in Berlin (clocks jump 02:00 -> 03:00)
    clock = TestClock(at(2026, 1, 29, 1, 30), time_zone="Europe/Berlin")
    assert at(2026, 3, 29, 1, 30) == clock.advance(months=2)  # 03:30 summer time


def test_months_come_first_then_the_exact_duration():
    clock = TestClock(at(2026, 1, 31, 9))
    assert at(2026, 3, 1, 9) == clock.advance(months=1, days=1)   # 28 Feb + 1 day
    clock = TestClock(at(2026, 1, 31, 9))
    assert at(2026, 3, 1, 10, 30) == clock.advance(months=1, days=1, hours=1, minutes=30)


def test_the_result_is_a_plain_utc_datetime():
    value = TestClock(at(2026, 1, 15), time_zone="Asia/Tokyo").advance(months=1)
    assert dt.datetime is type(value)
    assert UTC is value.tzinfo


@pytest.mark.parametrize("months", [1.0, 1.5, "1", None, True, float("nan")])
def test_months_must_be_an_int(months):
    clock = TestClock(at(2026, 1, 15))
    with pytest.raises(InvalidInput, match="months must be an int"):
        clock.advance(months=months)
    assert at(2026, 1, 15) == clock.now()


@pytest.mark.parametrize(("start", "months"), [
    (at(8999, 12, 1), 1),
    (at(1900, 1, 1), -1),
    (at(2026, 1, 1), 10**9),
    (at(2026, 1, 1), -10**9),
    (at(2026, 1, 1), 12 * 7000),     # past pendulum's year 9999
    (at(2026, 1, 1), -12 * 2100),    # before its year 1
])
def test_months_beyond_the_supported_instants_are_refused(start, months):
    clock = TestClock(start)
    with pytest.raises(InvalidInput, match="supported instants"):
        clock.advance(months=months)
    assert start == clock.now()


def test_months_then_a_duration_beyond_the_supported_instants_is_refused():
    clock = TestClock(at(8999, 11, 1))
    with pytest.raises(InvalidInput, match="supported instants"):
        clock.advance(months=1, days=31)
    assert at(8999, 11, 1) == clock.now()


@pytest.mark.parametrize("time_zone", ["Mars/Olympus", "", "+02:00", "localtime", 1, None])
def test_an_unknown_time_zone_is_refused(time_zone):
    with pytest.raises(InvalidInput, match="time_zone"):
        TestClock(at(2026, 1, 15), time_zone=time_zone)


def test_repr_names_a_time_zone_other_than_utc():
    assert "TestClock(2026-01-15T00:00:00+00:00)" == repr(TestClock(at(2026, 1, 15)))
    assert ("TestClock(2026-01-15T00:00:00+00:00, time_zone='Europe/Berlin')"
            == repr(TestClock(at(2026, 1, 15), time_zone="Europe/Berlin")))
