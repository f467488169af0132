"""IFRS 15 / ASC 606 as a pure calculator: scenario A1 and other numbers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyaltykit import (
    CurrencyMismatch,
    InvalidInput,
    InvalidMoney,
    InvalidPoints,
    LoyaltyError,
    Money,
    RedemptionEstimate,
    allocate_revenue,
    recognise_revenue,
)

UNIT = Decimal(1)


def test_a1_illustrative_example_52() -> None:
    # sales 100,000, 10,000 points worth 1 each, 95% expected to be redeemed
    allocation = allocate_revenue(Money(100_000, "EUR"), 10_000, Money(1, "EUR"),
                                  Decimal("0.95"), quantum=UNIT)
    assert Money(9_500, "EUR") == allocation.points_value
    assert Money(91_324, "EUR") == allocation.goods
    assert Money(8_676, "EUR") == allocation.points
    periods = recognise_revenue(allocation.points, [
        RedemptionEstimate(redeemed=4_500, expected=9_500),
        RedemptionEstimate(redeemed=8_500, expected=9_700),
    ], quantum=UNIT)
    assert [Money(4_110, "EUR"), Money(3_493, "EUR")] == [p.revenue for p in periods]
    assert [Money(4_110, "EUR"), Money(7_603, "EUR")] == [p.recognised for p in periods]
    assert Money(1_073, "EUR") == periods[-1].liability


def test_other_numbers_in_cents() -> None:
    # 250.00 USD earning 25 points of 0.50 each, 80% expected: ssp 10.00
    allocation = allocate_revenue(Money("250.00", "USD"), 25, Money("0.50", "USD"),
                                  Decimal("0.8"))
    # goods 250 x 250 / 260 = 240.3846... -> 240.38; points 9.62
    assert (Money("240.38", "USD"), Money("9.62", "USD")) == (allocation.goods,
                                                              allocation.points)
    periods = recognise_revenue(allocation.points, [
        RedemptionEstimate(0, 20), RedemptionEstimate(7, 20), RedemptionEstimate(15, 14),
        RedemptionEstimate(15, 18)])
    # 7/20 x 9.62 = 3.367 -> 3.37; all of it once more is redeemed than expected; then a
    # higher estimate takes revenue back: 15/18 x 9.62 = 8.0166 -> 8.02
    assert ["0.00", "3.37", "6.25", "-1.60"] == [str(p.revenue.amount) for p in periods]
    assert ["9.62", "6.25", "0.00", "1.60"] == [str(p.liability.amount) for p in periods]


def test_half_even_rounding() -> None:
    # 4.5 steps of the quantum round to 4, 5.5 to 6
    a = recognise_revenue(Money("9", "EUR"), [RedemptionEstimate(1, 2)], quantum=UNIT)
    b = recognise_revenue(Money("11", "EUR"), [RedemptionEstimate(1, 2)], quantum=UNIT)
    assert (Money(4, "EUR"), Money(6, "EUR")) == (a[0].recognised, b[0].recognised)


def test_nothing_expected_recognises_everything() -> None:
    [period] = recognise_revenue(Money("5.00", "EUR"), [RedemptionEstimate(0, 0)])
    assert (Money("5.00", "EUR"), Money("0.00", "EUR")) == (period.revenue, period.liability)


@given(price=st.integers(0, 10**9), points=st.integers(0, 10**7),
       rate=st.integers(0, 100), cents=st.integers(1, 500))
def test_parts_add_up(price: int, points: int, rate: int, cents: int) -> None:
    allocation = allocate_revenue(Money(Decimal(price) / 100, "EUR"), points,
                                  Money(Decimal(cents) / 1000, "EUR"), Decimal(rate) / 100)
    assert allocation.price == allocation.goods + allocation.points
    assert Money(0, "EUR") <= allocation.points <= allocation.price


@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=8))
def test_revenue_adds_up_to_recognised(pairs: list[tuple[int, int]]) -> None:
    allocated = Money("1234.56", "EUR")
    periods = recognise_revenue(allocated, [RedemptionEstimate(r, e) for r, e in pairs])
    total = Money(0, "EUR")
    for p in periods:
        total = total + p.revenue
        assert total == p.recognised
        assert allocated == p.recognised + p.liability
        assert Money(0, "EUR") <= p.recognised <= allocated


@pytest.mark.parametrize(("call", "error"), [
    (lambda: allocate_revenue(100, 1, Money(1, "EUR"), Decimal(1)), InvalidMoney),
    (lambda: allocate_revenue(Money(-1, "EUR"), 1, Money(1, "EUR"), Decimal(1)),
     InvalidMoney),
    (lambda: allocate_revenue(Money(1, "EUR"), -1, Money(1, "EUR"), Decimal(1)),
     InvalidPoints),
    (lambda: allocate_revenue(Money(1, "EUR"), 1.5, Money(1, "EUR"), Decimal(1)),
     InvalidPoints),
    (lambda: allocate_revenue(Money(1, "EUR"), 1, Money(1, "USD"), Decimal(1)),
     CurrencyMismatch),
    (lambda: allocate_revenue(Money(1, "EUR"), 1, Money(1, "EUR"), Decimal("1.1")),
     InvalidInput),
    (lambda: allocate_revenue(Money(1, "EUR"), 1, Money(1, "EUR"), 0.5), InvalidInput),
    (lambda: allocate_revenue(Money(1, "EUR"), 1, Money(1, "EUR"), Decimal("NaN")),
     InvalidInput),
    (lambda: allocate_revenue(Money(1, "EUR"), 1, Money(1, "EUR"), Decimal(1),
                              quantum=Decimal(0)), InvalidInput),
    (lambda: recognise_revenue(Money(1, "EUR"), [(1, 2)]), InvalidInput),
    (lambda: recognise_revenue(Money(1, "EUR"), "ab"), InvalidInput),
    (lambda: RedemptionEstimate(-1, 2), InvalidPoints),
])
def test_bad_input_is_refused(call, error) -> None:
    with pytest.raises(error) as raised:
        call()
    assert isinstance(raised.value, LoyaltyError)
