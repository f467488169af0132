"""The figures behind each picture (loyaltykit.plots), computed by hand from small known
shops (tests/plots/_plot_shops.py) and compared on memory, SQLite and PostgreSQL; no
matplotlib involved."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from _plot_shops import (
    BACKENDS,
    berlin,
    cohort_shop,
    liability_shop,
    plain_program,
    rfm_shop,
    storage_on,
    tier_shop,
)

from loyaltykit import (
    InvalidInput,
    Loyalty,
    Money,
    NaiveDatetime,
    Period,
    RfmSegment,
    Storage,
    UnknownWallet,
)
from loyaltykit.analytics import CustomerValues
from loyaltykit.memory import MemoryStorage
from loyaltykit.plots import (
    clv_distribution,
    cohort_retention,
    liability_over_time,
    rfm_segments,
    tiers_over_time,
)

THIRD = Decimal("0.3333333333333333333333333333")  # 1/3 to the KPIs' 28 digits
_TICK = dt.timedelta(microseconds=1)


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    with storage_on(request.param, tmp_path) as made:
        yield made


def _labels(rows: object) -> list[str]:
    return [r.period.label for r in rows]  # type: ignore[attr-defined]


# -- retention by cohort ------------------------------------------------------------------


def test_cohort_retention_by_hand(storage: Storage) -> None:
    shop = cohort_shop(storage)
    found = cohort_retention(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                             berlin(2026, 5, 1, 0))
    assert ["2026-01", "2026-02", "2026-03", "2026-04"] == [p.label for p in found.periods]
    assert (Period.MONTH, "Europe/Berlin") == (found.period, found.time_zone)
    # January: ann, ben, hal; February: cy (dee bought first in December, gus's only
    # order was returned); March: fay (her February order was cancelled); April: eve,
    # whose order at 22:30 UTC on 31 March was placed on 1 April in Berlin
    assert [(c.cohort.label, c.members, c.active) for c in found.cohorts] == [
        ("2026-01", 3, (3, 1, 1, 0)),   # ben again in February, ann in March
        ("2026-02", 1, (1, 1, 1)),      # cy in March and April
        ("2026-03", 1, (1, 0)),
        ("2026-04", 1, (1,)),
    ]
    assert [c.retention for c in found.cohorts] == [
        (Decimal(1), THIRD, THIRD, Decimal(0)),
        (Decimal(1), Decimal(1), Decimal(1)),
        (Decimal(1), Decimal(0)),
        (Decimal(1),),
    ]
    assert found.grid == [
        [Decimal(1), THIRD, THIRD, Decimal(0)],
        [Decimal(1), Decimal(1), Decimal(1), None],
        [Decimal(1), Decimal(0), None, None],
        [Decimal(1), None, None, None],
    ]


def test_cohort_retention_counts_whole_periods_and_leaves_later_orders_out() -> None:
    shop = cohort_shop(MemoryStorage())
    # mid-January to mid-March: the whole of January to March, as the KPIs take it;
    # cy's April order is after the range, eve's first order too
    found = cohort_retention(shop.loyalty, "month", berlin(2026, 1, 15),
                             berlin(2026, 3, 15))
    assert [(c.cohort.label, c.members, c.active) for c in found.cohorts] == [
        ("2026-01", 3, (3, 1, 1)), ("2026-02", 1, (1, 1)), ("2026-03", 1, (1,))]


def test_cohort_retention_per_quarter_and_empty_range() -> None:
    shop = cohort_shop(MemoryStorage())
    found = cohort_retention(shop.loyalty, Period.QUARTER, berlin(2026, 1, 1, 0),
                             berlin(2026, 7, 1, 0))
    # Q1: ann, ben, hal, cy, fay (5); in Q2 only cy ordered again; Q2's cohort: eve
    assert [(c.cohort.label, c.members, c.active, c.retention) for c in found.cohorts] == [
        ("2026-Q1", 5, (5, 1), (Decimal(1), Decimal("0.2"))),
        ("2026-Q2", 1, (1,), (Decimal(1),))]
    empty = cohort_retention(shop.loyalty, Period.MONTH, berlin(2026, 1, 1),
                             berlin(2026, 1, 1))
    assert ((), ()) == (empty.periods, empty.cohorts)


def test_a_period_without_new_members_is_a_cohort_of_none() -> None:
    shop = cohort_shop(MemoryStorage())
    found = cohort_retention(shop.loyalty, Period.MONTH, berlin(2026, 4, 1, 0),
                             berlin(2026, 6, 1, 0))
    # April: eve only (cy bought first in February); May: nobody
    assert [(c.cohort.label, c.members, c.active, c.retention) for c in found.cohorts] == [
        ("2026-04", 1, (1, 0), (Decimal(1), Decimal(0))), ("2026-05", 0, (0,), (None,))]


def test_cohort_retention_has_the_json_form() -> None:
    found = cohort_retention(cohort_shop(MemoryStorage()).loyalty, Period.MONTH,
                             berlin(2026, 3, 1, 0), berlin(2026, 5, 1, 0))
    data = json.loads(found.to_json())
    assert "month" == data["period"]
    assert ["2026-03-01", "2026-04-01"] == [p["day"] for p in data["periods"]]
    assert [{"members": 1, "active": [1, 0], "retention": ["1", "0"]},
            {"members": 1, "active": [1], "retention": ["1"]}] == [
        {k: c[k] for k in ("members", "active", "retention")} for c in data["cohorts"]]


@pytest.mark.parametrize(("args", "error"), [
    (("fortnight", berlin(2026, 1, 1), berlin(2026, 2, 1)), InvalidInput),
    ((Period.MONTH, berlin(2026, 2, 1), berlin(2026, 1, 1)), InvalidInput),
    ((Period.MONTH, dt.datetime(2026, 1, 1), berlin(2026, 2, 1)), NaiveDatetime),
    ((Period.DAY, berlin(2000, 1, 1), berlin(2040, 1, 1)), InvalidInput),  # > MAX_PERIODS
])
def test_cohort_retention_refuses_bad_arguments(args: tuple[object, ...],
                                                error: type[Exception]) -> None:
    shop = cohort_shop(MemoryStorage())
    with pytest.raises(error):
        cohort_retention(shop.loyalty, *args)  # type: ignore[arg-type]


@pytest.mark.parametrize("function", [cohort_retention, liability_over_time, tiers_over_time])
def test_not_a_loyalty_is_refused(function: object) -> None:
    with pytest.raises(InvalidInput, match="must be a Loyalty"):
        function("shop", Period.MONTH, berlin(2026, 1, 1), berlin(2026, 2, 1))  # type: ignore[operator]
    with pytest.raises(InvalidInput, match="must be a Loyalty"):
        rfm_segments(None)  # type: ignore[arg-type]


# -- RFM segments -------------------------------------------------------------------------

TABLE = (RfmSegment("top", recency=(4, 5), frequency_monetary=(4, 5)),
         RfmSegment("middle", recency=(2, 5), frequency_monetary=(1, 5)),
         RfmSegment("gone", recency=(1, 1), frequency_monetary=(2, 5)))


def test_rfm_segment_sizes_by_hand(storage: Storage) -> None:
    shop = rfm_shop(storage)
    as_of = berlin(2026, 7, 1, 0)
    found = rfm_segments(shop.loyalty, as_of=as_of, segments=TABLE)
    # a (5,5,5) FM 5: top; e (4,3,3) FM 3, b (3,2,2) FM 2, c (2,4,4) FM 4: middle;
    # d (1,1,1) FM 1: no segment ("gone" wants FM 2..5)
    assert (as_of, 5) == (found.as_of, found.members)
    assert [(s.segment, s.members, s.share) for s in found.segments] == [
        ("top", 1, Decimal("0.2")), ("middle", 3, Decimal("0.6")), ("gone", 0, Decimal(0)),
        (None, 1, Decimal("0.2"))]


def test_rfm_segments_with_the_default_table_count_every_member() -> None:
    shop = rfm_shop(MemoryStorage())
    found = rfm_segments(shop.loyalty)  # as of now, 1 July 00:00 in Berlin
    assert shop.clock.now() == found.as_of
    sizes = {s.segment: s.members for s in found.segments}
    assert 11 == len(found.segments)  # every default segment, zeros included
    assert None not in sizes  # the default table covers every score
    assert (1, 1) == (sizes["champions"], sizes["lost"])  # a and d (docs/reports.md)
    assert 5 == sum(sizes.values()) == found.members
    nobody = rfm_segments(Loyalty(plain_program("nobody"), MemoryStorage(), clock=shop.clock))
    assert (0, {None}) == (nobody.members, {s.share for s in nobody.segments})


def test_rfm_segments_refuse_what_rfm_refuses() -> None:
    shop = rfm_shop(MemoryStorage())
    with pytest.raises(InvalidInput):
        rfm_segments(shop.loyalty, as_of=berlin(2026, 8, 1))  # later than now
    with pytest.raises(NaiveDatetime):
        rfm_segments(shop.loyalty, as_of=dt.datetime(2026, 6, 1))
    with pytest.raises(InvalidInput):
        rfm_segments(shop.loyalty, segments=("champions",))  # type: ignore[arg-type]


# -- liability and breakage over time -----------------------------------------------------


def test_liability_over_time_by_hand(storage: Storage) -> None:
    shop = liability_shop(storage)
    found = liability_over_time(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                                berlin(2026, 5, 1, 0))
    assert (Period.MONTH, "points", "EUR") == (found.period, found.wallet, found.currency)
    eur = lambda amount: Money(amount, "EUR")  # noqa: E731
    assert [(r.period.label, r.points, r.face_value, r.basis, r.expected_redemption,
             r.breakage_rate, r.liability) for r in found.rows] == [
        # ann's 1,000: no cohort closed yet, the full face value
        ("2026-01", 1_000, eur("10.00"), "face_value", Decimal(1), None, eur("10.00")),
        # ann's 600 left and ben's 3,000
        ("2026-02", 3_600, eur("36.00"), "face_value", Decimal(1), None, eur("36.00")),
        # ann's 600 expired: January's cohort closed, 600 of 1,000 broken; ben's 2,000
        ("2026-03", 2_000, eur("20.00"), "breakage", Decimal("0.4"), Decimal("0.6"),
         eur("8.00")),
        # ben's 2,000 expired: 2,600 of 4,000 broken; cy's 2,000; read now (20 April)
        ("2026-04", 2_000, eur("20.00"), "breakage", Decimal("0.35"), Decimal("0.65"),
         eur("7.00")),
    ]
    # each month is read at its last instant, the running one at now
    assert [r.as_of for r in found.rows] == [
        berlin(2026, 2, 1, 0) - _TICK, berlin(2026, 3, 1, 0) - _TICK,
        berlin(2026, 4, 1, 0) - _TICK, shop.clock.now()]


def test_periods_not_begun_are_left_out() -> None:
    shop = liability_shop(MemoryStorage())
    found = liability_over_time(shop.loyalty, "month", berlin(2026, 3, 1, 0),
                                berlin(2027, 1, 1, 0))
    assert ["2026-03", "2026-04"] == _labels(found.rows)
    later = liability_over_time(shop.loyalty, "month", berlin(2026, 6, 1, 0),
                                berlin(2026, 8, 1, 0))
    assert () == later.rows


def test_liability_over_time_refuses_an_unknown_wallet_and_bad_periods() -> None:
    shop = liability_shop(MemoryStorage())
    with pytest.raises(UnknownWallet):
        liability_over_time(shop.loyalty, Period.MONTH, berlin(2026, 1, 1),
                            berlin(2026, 2, 1), wallet="miles")
    with pytest.raises(InvalidInput):
        liability_over_time(shop.loyalty, 3, berlin(2026, 1, 1),  # type: ignore[arg-type]
                            berlin(2026, 2, 1))


# -- tiers over time ----------------------------------------------------------------------


def test_tiers_over_time_by_hand(storage: Storage) -> None:
    shop = tier_shop(storage)
    found = tiers_over_time(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                            berlin(2026, 6, 1, 0))
    assert ("member", "silver", "gold", None) == found.tiers
    assert [(r.period.label, r.members, r.total) for r in found.rows] == [
        ("2026-01", (1, 1, 0, 0), 2),   # ann silver, bob member
        ("2026-02", (1, 1, 1, 0), 3),   # ann gold, bob silver, cy member
        ("2026-03", (2, 1, 1, 0), 4),   # dee joins; March is read now (20 March)
    ]  # April and May have not begun
    assert shop.clock.now() == found.rows[-1].as_of


def test_tiers_over_time_without_tiers_counts_members_without_one() -> None:
    shop = liability_shop(MemoryStorage())
    found = tiers_over_time(shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                            berlin(2026, 3, 1, 0))
    assert ((None,), [(3,), (3,)]) == (found.tiers, [r.members for r in found.rows])


# -- the CLV distribution -----------------------------------------------------------------


def test_clv_distribution_by_hand() -> None:
    found = clv_distribution([1, 2, Decimal("2.5"), 4.0, 9], bins=4)
    # from 1 to 9 in bins of 2: [1, 3) [3, 5) [5, 7) [7, 9], the last closed
    assert (1.0, 2.0, 2.5, 4.0, 9.0) == found.values
    assert (1.0, 3.0, 5.0, 7.0, 9.0) == found.edges
    assert (3, 1, 0, 1) == found.counts
    assert (None, None, None) == (found.horizon, found.unit, found.currency)
    one = clv_distribution([5, 5], bins=2)  # one value: a unit-wide range around it
    assert ((4.5, 5.0, 5.5), (0, 2)) == (one.edges, one.counts)


def test_clv_distribution_bins_as_numpy_does() -> None:
    rng = random.Random(25)
    for _ in range(20):
        values = [rng.lognormvariate(3, 1.2) for _ in range(rng.randrange(1, 300))]
        bins = rng.randrange(1, 60)
        counts, edges = np.histogram(values, bins=bins)
        found = clv_distribution(values, bins=bins)
        assert (counts.tolist(), edges.tolist()) == (list(found.counts), list(found.edges))


def test_clv_distribution_of_customer_values() -> None:
    values = CustomerValues(
        member_ids=("a", "b", "c"), expected_purchases=np.array([1.0, 2.0, 0.5]),
        probability_alive=np.array([0.9, 0.8, 0.4]),
        expected_average_value=np.array([10.0, 20.0, 12.0]),
        expected_value=np.array([10.0, 40.0, 6.0]),
        historical=(Money("30.00", "USD"), Money("80.00", "USD"), Money("12.00", "USD")),
        horizon=52.0, discount_rate=0.0, step=52.0, unit="weeks")
    found = clv_distribution(values, bins=2)
    assert ((10.0, 40.0, 6.0), (6.0, 23.0, 40.0), (2, 1)) == (
        found.values, found.edges, found.counts)
    assert (52.0, "weeks", "USD") == (found.horizon, found.unit, found.currency)
    assert {"values": [10.0, 40.0, 6.0], "edges": [6.0, 23.0, 40.0], "counts": [2, 1],
            "horizon": 52.0, "unit": "weeks", "currency": "USD"} == found.to_dict()


@pytest.mark.parametrize(("values", "bins"), [
    ([], 10), ("12", 10), (12, 10), ([1, "2"], 10), ([1, True], 10),
    ([1, float("nan")], 10), ([1, float("inf")], 10), ([1, Decimal("NaN")], 10),
    ([1, 2], 0), ([1, 2], 1001), ([1, 2], 2.0), ([1, 2], True),
])
def test_clv_distribution_refuses_bad_values(values: object, bins: object) -> None:
    with pytest.raises(InvalidInput):
        clv_distribution(values, bins=bins)  # type: ignore[arg-type]


def test_the_figures_of_two_shops_differ() -> None:
    one = liability_over_time(liability_shop(MemoryStorage()).loyalty, Period.MONTH,
                              berlin(2026, 1, 1, 0), berlin(2026, 5, 1, 0))
    other_shop = liability_shop(MemoryStorage())
    other_shop.loyalty.earn("ann", 5, key="one-more")  # now, in April
    other = liability_over_time(other_shop.loyalty, Period.MONTH, berlin(2026, 1, 1, 0),
                                berlin(2026, 5, 1, 0))
    assert one.rows[:3] == other.rows[:3]
    assert (2_000, 2_005) == (one.rows[3].points, other.rows[3].points)


def test_a_range_ending_within_a_period_is_read_at_its_end() -> None:
    shop = liability_shop(MemoryStorage())
    end = berlin(2026, 3, 15, 0)  # after ann's expiry (12 March), before ben's spend
    found = liability_over_time(shop.loyalty, Period.MONTH, berlin(2026, 2, 1, 0), end)
    assert [("2026-02", 3_600), ("2026-03", 3_000)] == [
        (r.period.label, r.points) for r in found.rows]
    assert end - _TICK == found.rows[-1].as_of
    tiers = tiers_over_time(tier_shop(MemoryStorage()).loyalty, Period.MONTH,
                            berlin(2026, 1, 1, 0), berlin(2026, 2, 5, 0))
    # read just before 5 February: cy not enrolled yet, bob and ann not yet promoted
    assert [(1, 1, 0, 0), (1, 1, 0, 0)] == [r.members for r in tiers.rows]
