"""Bad input to the rewards' calls: typed errors before storage is touched, nothing
written (on every backend)."""

from __future__ import annotations

import datetime as dt

import pytest

from loyaltykit import (
    InvalidCode,
    InvalidInput,
    Loyalty,
    MemberNotFound,
    Money,
    Program,
    RewardNotFound,
    Storage,
    TestClock,
)
from loyaltykit.testing.contract.rewards import reward_program
from loyaltykit.testing.stored import stored_rows

AT = dt.datetime(2026, 4, 10, 8, tzinfo=dt.UTC)


@pytest.fixture
def loyalty(storage: Storage) -> Loyalty:
    lo = Loyalty(reward_program(), storage, clock=TestClock(AT))
    lo.enrol("M")
    lo.earn("M", 1500, key="earn")
    return lo


@pytest.mark.parametrize("reward_id", [None, 5, "", "x" * 65, b"coffee"])
def test_a_reward_id_that_is_not_one_is_invalid(loyalty: Loyalty, reward_id: object) -> None:
    before = stored_rows(loyalty.storage)
    with pytest.raises(InvalidInput):
        loyalty.rewards.redeem("M", reward_id, key="r")  # type: ignore[arg-type]
    with pytest.raises(RewardNotFound):
        loyalty.rewards.redeem("M", "tea\x00", key="r")
    assert stored_rows(loyalty.storage) == before


def test_codes_statuses_and_instants_are_checked(loyalty: Loyalty) -> None:
    got = loyalty.rewards.redeem("M", "coffee", key="r")
    before = stored_rows(loyalty.storage)
    with pytest.raises(InvalidCode):
        loyalty.rewards.use(got.voucher.code[:-1] + "?", order_id="o", key="u")
    with pytest.raises(InvalidInput):
        loyalty.rewards.use(got.voucher.code, order_id=" o", key="u")
    with pytest.raises(InvalidInput):  # before the voucher was issued
        loyalty.rewards.use(got.voucher.code, order_id="o", key="u",
                            at=AT - dt.timedelta(seconds=1))
    with pytest.raises(InvalidInput):
        loyalty.rewards.vouchers("M", "issued")  # type: ignore[arg-type]
    with pytest.raises(MemberNotFound):
        loyalty.rewards.vouchers("nobody")
    assert stored_rows(loyalty.storage) == before


def test_a_program_without_rewards_refuses_the_calls(storage: Storage) -> None:
    program = Program(id="plain", time_zone="Europe/Berlin", currency="EUR",
                      point_value=Money("0.01", "EUR"))
    lo = Loyalty(program, storage, clock=TestClock(AT))
    lo.enrol("M")
    before = stored_rows(storage)
    with pytest.raises(InvalidInput):
        lo.rewards.redeem("M", "coffee", key="r")
    with pytest.raises(InvalidInput):
        lo.rewards.check_code("ABCD")
    assert stored_rows(storage) == before
    assert lo.run_due().expired_vouchers == 0
