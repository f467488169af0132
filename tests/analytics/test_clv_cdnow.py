"""Scenario A5 from the library's own order data: CDNOW_sample.txt replayed as orders
through ``Loyalty.record_order``, summarised by ``summary_from``, equals the published
summary row by row, and fits to the published figures."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from loyaltykit import InvalidInput, Loyalty, Money, Order, OrderLine, Program, TestClock
from loyaltykit.analytics import Summary, fit_bgnbd, fit_gamma_gamma, summary_from
from loyaltykit.memory import MemoryStorage

DATA = Path(__file__).resolve().parents[1] / "data" / "cdnow"
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
CALIBRATION_END = dt.datetime(1997, 10, 1, tzinfo=NEW_YORK)


def program(time_zone: str, currency: str) -> Program:
    return Program(id="p", time_zone=time_zone, currency=currency,
                   point_value=Money("0.01", currency))


@pytest.fixture(scope="module")
def cdnow() -> Loyalty:
    """The 6,919 purchases of CDNOW_sample.txt as orders at noon New York time, one line
    of the purchase's dollar value each (memory storage)."""
    loyalty = Loyalty(program("America/New_York", "USD"), MemoryStorage(),
                      clock=TestClock(dt.datetime(1998, 7, 1, tzinfo=NEW_YORK)))
    enrolled: set[str] = set()
    for n, line in enumerate((DATA / "CDNOW_sample.txt").read_text().splitlines()):
        _, member, day, _, dollars = line.split()
        if member not in enrolled:
            loyalty.enrol(member)
            enrolled.add(member)
        placed = dt.datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=NEW_YORK)
        loyalty.record_order(Order(str(n), member, placed, "USD",
                                   (OrderLine("cds", 1, Money(dollars, "USD")),)))
    return loyalty


@pytest.fixture(scope="module")
def calibration(cdnow: Loyalty) -> Summary:
    return summary_from(cdnow, end=CALIBRATION_END)


def test_the_summary_equals_the_published_one_row_by_row(calibration: Summary) -> None:
    s = calibration
    with (DATA / "cdnow_customers_summary.csv").open() as f:
        published = list(csv.DictReader(f))
    assert [f"{int(r['ID']):04d}" for r in published] == list(s.member_ids)
    for i, row in enumerate(published):
        assert int(row["frequency"]) == s.x[i], row
        assert abs(float(row["recency"]) - s.t_x[i]) <= 0.01, row
        assert abs(float(row["T"]) - s.T[i]) <= 0.01, row
    assert "weeks" == s.unit
    assert s.spend is not None
    assert Money("74.02", "USD") == s.spend[0]  # 29.33 + 29.73 + 14.96


def test_the_replayed_summary_fits_to_the_published_figures(calibration: Summary) -> None:
    s = calibration
    fit = fit_bgnbd(s)
    for name, expected in (("r", 0.243), ("alpha", 4.414), ("a", 0.793), ("b", 2.426)):
        assert abs(getattr(fit, name) - expected) <= 0.001, name
    assert abs(fit.log_likelihood - -9582.4) <= 0.1
    spend = fit_gamma_gamma(s)
    assert 946 == spend.customers
    for got, expected in ((spend.p, 6.25), (spend.q, 3.74), (spend.v, 15.44)):
        assert abs(got - expected) <= 0.01


def test_end_defaults_to_the_clock_and_days_count_as_days(cdnow: Loyalty) -> None:
    whole = summary_from(cdnow, unit="days")  # to the clock's now: 1998-07-01
    assert "0001" == whole.member_ids[0]
    # customer 1 bought on 1997-01-01, 01-18, 08-02 and 12-12
    assert (3, 345.0, 545.0) == (whole.x[0], whole.t_x[0], whole.T[0])
    cohort = summary_from(cdnow, start=dt.datetime(1997, 1, 2, tzinfo=NEW_YORK),
                          end=CALIBRATION_END, unit="days")
    assert (1, 196.0, 255.0) == (cohort.x[0], cohort.t_x[0], cohort.T[0])  # from 01-18


def test_summary_from_reads_days_in_the_programs_zone() -> None:
    clock = TestClock(dt.datetime(2026, 4, 1, tzinfo=BERLIN))
    shop = Loyalty(program("Europe/Berlin", "EUR"), MemoryStorage(), clock=clock)
    shop.enrol("m")

    def buy(order_id: str, at: dt.datetime, price: str) -> None:
        shop.record_order(Order(order_id, "m", at, "EUR",
                                (OrderLine("x", 1, Money(price, "EUR")),)))

    buy("1", dt.datetime(2026, 3, 1, 12, tzinfo=BERLIN), "10")
    buy("2", dt.datetime(2026, 3, 8, 23, 30, tzinfo=BERLIN), "20")  # 22:30 UTC
    buy("3", dt.datetime(2026, 3, 9, 0, 30, tzinfo=BERLIN), "40")   # 23:30 UTC, 8 March
    buy("4", dt.datetime(2026, 3, 9, 12, tzinfo=BERLIN), "2")
    s = summary_from(shop, unit="days")
    # in Berlin: 1, 8 and 9 March (UTC would see 1 and 8 March only)
    assert ([2], [8.0], [30.0]) == (s.x.tolist(), s.t_x.tolist(), s.T.tolist())
    assert [(20 + 42) / 2] == s.monetary.tolist()
    with pytest.raises(InvalidInput):
        summary_from("shop")  # type: ignore[arg-type]
