"""The purchase summary: repeat purchase days, recency and age in local days of the
program's zone, and the average value of the repeat days."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from loyaltykit import (
    CurrencyMismatch,
    InvalidInput,
    InvalidSummary,
    Money,
    NaiveDatetime,
    Purchase,
)
from loyaltykit.analytics import Summary, summary

TOKYO = ZoneInfo("Asia/Tokyo")


def jpy(member: str, day: int, hour: int, amount: str, month: int = 3) -> Purchase:
    return Purchase(member, f"{member}-{month}-{day}-{hour}",
                    dt.datetime(2026, month, day, hour, tzinfo=TOKYO), Money(amount, "JPY"))


END = dt.datetime(2026, 4, 1, tzinfo=TOKYO)

PURCHASES = [
    # b: three purchase days, two purchases on 3 March (summed), first day left out
    jpy("b", 1, 10, "1000"), jpy("b", 3, 9, "500"), jpy("b", 3, 21, "700"),
    jpy("b", 10, 12, "300"),
    # a: one purchase only; c: first and last day of calibration
    jpy("a", 20, 12, "800"),
    jpy("c", 2, 8, "100"), jpy("c", 31, 23, "400"),
    # after the end: not seen
    jpy("a", 1, 0, "999", month=4),
]


def test_days_in_the_zone_same_day_purchases_summed_first_day_left_out() -> None:
    s = summary(PURCHASES, end=END, time_zone="Asia/Tokyo", unit="days")
    assert ("a", "b", "c") == s.member_ids
    assert [0, 2, 1] == s.x.tolist()
    assert [0.0, 9.0, 29.0] == s.t_x.tolist()
    # the last day of calibration is 31 March: T counts days from the first day to it
    assert [11.0, 30.0, 29.0] == s.T.tolist()
    assert [0.0, (1200 + 300) / 2, 400.0] == s.monetary.tolist()
    assert (Money("800", "JPY"), Money("2500", "JPY"), Money("500", "JPY")) == s.spend
    weeks = summary(PURCHASES, end=END, time_zone="Asia/Tokyo")
    assert "weeks" == weeks.unit
    np.testing.assert_allclose(s.T / 7, weeks.T)
    np.testing.assert_allclose(s.t_x / 7, weeks.t_x)


def test_the_local_date_decides_the_day() -> None:
    # 3 March 21:00 and 4 March 08:00 Tokyo are both 3 March in UTC (12:00 and 23:00)
    purchases = [jpy("m", 1, 12, "10"), jpy("m", 3, 21, "20"), jpy("m", 4, 8, "30")]
    in_tokyo = summary(purchases, end=END, time_zone="Asia/Tokyo", unit="days")
    in_utc = summary(purchases, end=END, time_zone="UTC", unit="days")
    assert ([2], [25.0], [3.0]) == (in_tokyo.x.tolist(), in_tokyo.monetary.tolist(),
                                    in_tokyo.t_x.tolist())
    assert ([1], [50.0], [2.0]) == (in_utc.x.tolist(), in_utc.monetary.tolist(),
                                    in_utc.t_x.tolist())
    # END is 31 March 15:00 UTC: its last day in UTC is 31 March too
    assert [30.0] == in_utc.T.tolist()


def test_end_is_exclusive_and_start_begins_a_cohort() -> None:
    at_end = [jpy("m", 1, 12, "10"), Purchase("m", "late", END, Money("5", "JPY"))]
    assert [0] == summary(at_end, end=END, time_zone="Asia/Tokyo").x.tolist()
    start = dt.datetime(2026, 3, 2, tzinfo=TOKYO)
    s = summary(PURCHASES, end=END, start=start, time_zone="Asia/Tokyo", unit="days")
    assert ("a", "b", "c") == s.member_ids
    assert [0, 1, 1] == s.x.tolist()  # b's 1 March is before the start
    assert [0.0, 7.0, 29.0] == s.t_x.tolist()
    assert [300.0] == s.monetary[1:2].tolist()


def test_a_summary_of_bare_columns_and_its_repeat_customers() -> None:
    s = Summary.of([0, 3, 1], [0, 5.5, 2], 10, [0, 12.5, 7], member_ids=["p", "q", "r"])
    assert [10.0] * 3 == s.T.tolist()
    assert ("q", "r") == s.repeat.member_ids
    assert [3, 1] == s.repeat.x.tolist()
    assert s.spend is None
    with pytest.raises(ValueError):
        s.x[0] = 5  # read-only columns


@pytest.mark.parametrize(("columns", "field"), [
    (([-1], [0], [3]), "x"),
    (([1.5], [1], [3]), "x"),
    (([1], [4], [3]), "t_x"),
    (([1], [-1], [3]), "t_x"),
    (([0], [1], [3]), "t_x"),
    (([1], [1], [-3]), "T"),
    (([1], [math.nan], [3]), "t_x"),
    (([math.inf], [1], [3]), "x"),
    (([], [], []), "x"),
    (([1, 2], [1, 1, 1], [3, 3]), "x"),
    ((["1"], [1], [3]), "x"),
    (([[1]], [[1]], [[3]]), "x"),
    (([1, 2], [1, 1], [3, 3], [5, -1]), "monetary"),
    (([0], [0], [3], [5]), "monetary"),
])
def test_bad_columns_are_refused(columns: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidSummary) as info:
        Summary.of(*columns)
    assert field == info.value.details["field"]


def test_bad_purchases_and_arguments_are_refused() -> None:
    good: dict[str, Any] = {"end": END, "time_zone": "Asia/Tokyo"}
    with pytest.raises(InvalidSummary):
        summary([], **good)
    with pytest.raises(InvalidSummary):
        summary([jpy("a", 1, 0, "1", month=4)], **good)  # none before the end
    with pytest.raises(CurrencyMismatch):
        summary([jpy("a", 1, 1, "1"), Purchase("a", "e", END, Money("1", "EUR"))], **good)
    with pytest.raises(NaiveDatetime):
        summary(PURCHASES, end=dt.datetime(2026, 4, 1), time_zone="UTC")
    with pytest.raises(NaiveDatetime):
        summary([Purchase("a", "o", dt.datetime(2026, 3, 1), Money("1", "JPY"))], **good)
    with pytest.raises(InvalidInput):
        summary(PURCHASES, start=END, **good)
    with pytest.raises(InvalidInput):
        summary(PURCHASES, end=END, time_zone="Mars/Olympus")
    with pytest.raises(InvalidInput):
        summary(PURCHASES, unit="months", **good)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        summary([object()], **good)
    with pytest.raises(InvalidInput):
        summary([Purchase("a", "o", END, Decimal("1"))], **good)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        summary("purchases", **good)
