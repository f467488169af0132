"""Money in the command line's tables: cents, with averages rounded half up; the JSON
form stays exact."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyaltykit import Money
from loyaltykit.cli.report import _money


@pytest.mark.parametrize(("amount", "shown"), [
    ("51.106666666666666667", "51.11 EUR"),
    ("48.758", "48.76 EUR"),
    ("48.755", "48.76 EUR"),
    ("-2.345", "-2.35 EUR"),
    ("12.30", "12.30 EUR"),
    ("7", "7 EUR"),
])
def test_a_table_cell_shows_cents(amount: str, shown: str) -> None:
    assert shown == _money(Money(Decimal(amount), "EUR"))


def test_no_money_is_an_empty_cell() -> None:
    assert _money(None) is None
