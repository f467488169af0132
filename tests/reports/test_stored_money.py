"""stored_money: the reports' unchecked Money for amounts read back from storage."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyaltykit import InvalidMoney, Money
from loyaltykit._values import stored_money


def test_stored_money_is_money_and_still_refuses_what_money_cannot_hold() -> None:
    fast = stored_money(Decimal("12.50"), "EUR")
    assert (Money("12.50", "EUR"), hash(Money("12.50", "EUR"))) == (fast, hash(fast))
    assert Money("13.00", "EUR") == fast + Money("0.50", "EUR")
    with pytest.raises(InvalidMoney):
        stored_money(Decimal(10**15), "EUR")
    with pytest.raises(InvalidMoney):
        stored_money(Decimal(-(10**15)), "EUR")
