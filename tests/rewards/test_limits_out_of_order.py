"""A member's limit holds in every period, also for a redemption backdated before
others (found by the ledger state machine): a lifetime limit counts every voucher, a
rolling one every window of its days that holds the redemption (on every backend)."""

from __future__ import annotations

import datetime as dt

import pytest

from loyaltykit import (
    CapPeriod,
    FreeItem,
    Loyalty,
    Money,
    Program,
    RedemptionLimitReached,
    Reward,
    RewardLimit,
    RewardPolicy,
    Storage,
    TestClock,
)
from loyaltykit.testing.invariants import check_invariants
from loyaltykit.testing.stored import stored_rows

AT = dt.datetime(2026, 4, 10, 8, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


def _loyalty(storage: Storage, limit: RewardLimit) -> Loyalty:
    reward = Reward("tea", "Tea", 10, FreeItem("tea"), per_member=limit)
    program = Program(id="p", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      rewards=RewardPolicy(catalogue=(reward,)))
    loyalty = Loyalty(program, storage, clock=TestClock(AT))
    loyalty.enrol("M")
    loyalty.earn("M", 1000, key="earn", at=AT - 30 * DAY)
    return loyalty


def _refused(loyalty: Loyalty, key: str, at: dt.datetime) -> None:
    before = stored_rows(loyalty.storage)
    with pytest.raises(RedemptionLimitReached):
        loyalty.rewards.redeem("M", "tea", key=key, at=at)
    assert stored_rows(loyalty.storage) == before


def test_a_lifetime_limit_counts_vouchers_issued_after_a_backdated_redemption(
        storage: Storage) -> None:
    loyalty = _loyalty(storage, RewardLimit(1, CapPeriod.LIFETIME))
    loyalty.rewards.redeem("M", "tea", key="now")
    _refused(loyalty, "an hour ago", AT - HOUR)
    _refused(loyalty, "a year ago", AT - 365 * DAY)
    check_invariants(loyalty.storage, loyalty.program, ["M"], at=AT)


def test_a_rolling_limit_holds_in_the_windows_of_later_redemptions(storage: Storage) -> None:
    loyalty = _loyalty(storage, RewardLimit(2, CapPeriod.ROLLING, days=7))
    loyalty.rewards.redeem("M", "tea", key="a", at=AT - 2 * DAY)
    loyalty.rewards.redeem("M", "tea", key="b")
    # three in the 7 days up to AT: refused, though only one lies in the 7 days up to it
    _refused(loyalty, "c", AT - 3 * DAY)
    # no 7-day window holding AT - 10 days holds another redemption: allowed
    loyalty.rewards.redeem("M", "tea", key="d", at=AT - 10 * DAY)
    # AT - 6 days: fine in the windows up to it and up to a, not in the one up to b
    _refused(loyalty, "e", AT - 6 * DAY)
    # AT - 9 days - 1 hour: d and it in the window up to it; a is 7 days and 1 hour on
    loyalty.rewards.redeem("M", "tea", key="f", at=AT - 9 * DAY - HOUR)
    check_invariants(loyalty.storage, loyalty.program, ["M"], at=AT)
    assert 4 == len(loyalty.rewards.vouchers("M"))


def test_a_cancelled_later_voucher_does_not_count(storage: Storage) -> None:
    loyalty = _loyalty(storage, RewardLimit(1, CapPeriod.ROLLING, days=7))
    later = loyalty.rewards.redeem("M", "tea", key="now").voucher
    _refused(loyalty, "before", AT - DAY)
    loyalty.rewards.cancel(later.code, key="cancel")
    loyalty.rewards.redeem("M", "tea", key="before", at=AT - DAY)
    check_invariants(loyalty.storage, loyalty.program, ["M"], at=AT)
