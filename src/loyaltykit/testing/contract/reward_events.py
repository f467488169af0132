"""The rewards' events in the outbox, on every backend (DESIGN §8, scenario O1 for
rewards): ``reward.redeemed``, ``voucher.used``, ``voucher.cancelled`` and
``voucher.expired``.

:class:`RewardEventContract` is mixed into
:class:`loyaltykit.testing.contract.StorageContract`, so every backend runs it: each
type's exact payload for scenario V's coffee voucher; a redemption's ``points.spent``
right before its ``reward.redeemed`` (and a cancellation's ``points.reversed`` before
its ``voucher.cancelled``) in the same write; no event for a refused write or a replay;
due work's expiry records one ``voucher.expired`` per voucher, batch by batch, and
none when run again.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from loyaltykit import (
    CodeSpec,
    InsufficientPoints,
    InvalidCode,
    OutboxEvent,
    OutOfStock,
    RedemptionLimitReached,
    Reward,
    RewardNotAvailable,
    RewardNotFound,
    Storage,
    TestClock,
    TierNotAllowed,
    Voucher,
    VoucherAlreadyUsed,
    VoucherNotFound,
    VoucherNotUsable,
)
from loyaltykit.testing.contract.base import ContractPart, LoyaltyFactory, berlin
from loyaltykit.testing.contract.rewards import reward_program, v_coffee, v_mug

__all__ = ["RewardEventContract"]

#: The types this part is about.
_TYPES = ("reward.redeemed", "voucher.used", "voucher.cancelled", "voucher.expired")
#: The code the first redemption of a :class:`_Shop` draws (its draws are fixed).
FIRST_CODE = ("01234567890", "01234-56789-0")


class _Shop:
    """Scenario V's program (coffee and mug unless ``rewards``) with a test clock and
    fixed code draws; ``M`` holds 1,500 points earned on 1 March 2026 (Berlin)."""

    def __init__(self, factory: LoyaltyFactory, storage: Storage, *rewards: Reward) -> None:
        draws = itertools.count()
        self.clock = TestClock(berlin(2026, 3, 1))
        self.loyalty = factory(reward_program(*rewards), storage, clock=self.clock,
                               randbelow=lambda n: next(draws) % n)
        self.rewards = self.loyalty.rewards
        self.earn("M", 1500)

    def earn(self, member_id: str, points: int) -> None:
        self.loyalty.enrol(member_id, key=f"enrol:{member_id}")
        self.loyalty.earn(member_id, points, key=f"earn:{member_id}:{self.clock.now()}")

    def at(self, when: dt.datetime) -> dt.datetime:
        self.clock.set(when)
        return when

    def events(self) -> list[OutboxEvent]:
        return self.loyalty.events.read("mailer", limit=1000)

    def ours(self) -> list[OutboxEvent]:
        """The rewards' events only."""
        return [e for e in self.events() if e.type in _TYPES]


def _coffee(voucher: Voucher, status: str) -> dict[str, Any]:
    """The part every event of scenario V's coffee voucher redeemed on 10 April 2026 at
    10:00 (Berlin) carries."""
    return {
        "voucher_id": str(voucher.id),
        "code": FIRST_CODE[0],
        "shown": FIRST_CODE[1],
        "status": status,
        "reward": {"id": "coffee", "name": "Coffee voucher",
                   "kind": {"type": "fixed_discount", "amount": "5.00", "currency": "EUR"}},
        "cost": 500,
        "wallet": "points",
        "transaction_id": str(voucher.transaction_id),
        "program_version": 1,
        "issued_at": "2026-04-10T08:00:00+00:00",
        "expires_at": "2026-05-10T08:00:00+00:00",
    }


class RewardEventContract(ContractPart):
    """The rewards' events on a backend; see the module docstring."""

    # -- each type, exactly -----------------------------------------------------------------

    def test_reward_redeemed_follows_its_points_spent_with_the_voucher_to_mail(
            self, storage: Storage) -> None:
        shop = _Shop(self.make_loyalty, storage)
        got = shop.rewards.redeem("M", "coffee", key="r", at=shop.at(berlin(2026, 4, 10, 10)))
        events = shop.events()
        assert ["points.spent", "reward.redeemed"] == [e.type for e in events[-2:]]
        spent, redeemed = events[-2:]
        assert spent.position < redeemed.position
        assert str(got.transaction_id) == spent.payload["transaction_id"]
        assert ("M", berlin(2026, 4, 10, 10), 1) == (
            redeemed.member_id, redeemed.occurred_at, redeemed.version)
        assert _coffee(got.voucher, "issued") == redeemed.payload
        assert (got.voucher.code, got.voucher.shown) == FIRST_CODE
        # the balance after it is on the spend's event
        assert 1000 == spent.payload["balance"]["available"] == got.balance.available

    def test_voucher_used_names_its_order(self, storage: Storage) -> None:
        shop = _Shop(self.make_loyalty, storage)
        got = shop.rewards.redeem("M", "coffee", key="r", at=shop.at(berlin(2026, 4, 10, 10)))
        used = shop.rewards.use(got.voucher.shown.lower(), order_id="1001", key="u",
                                at=shop.at(berlin(2026, 4, 12, 9, 30)))
        event = shop.events()[-1]
        assert ("voucher.used", "M", berlin(2026, 4, 12, 9, 30)) == (
            event.type, event.member_id, event.occurred_at)
        assert {**_coffee(used, "used"), "used_at": "2026-04-12T07:30:00+00:00",
                "order_id": "1001"} == event.payload

    def test_voucher_cancelled_follows_the_reversal_that_gave_the_points_back(
            self, storage: Storage) -> None:
        shop = _Shop(self.make_loyalty, storage)
        got = shop.rewards.redeem("M", "coffee", key="r", at=shop.at(berlin(2026, 4, 10, 10)))
        cancelled = shop.rewards.cancel(got.voucher.code, key="c", reason="changed mind",
                                        at=shop.at(berlin(2026, 4, 11)))
        reversed_, event = shop.events()[-2:]
        assert ("points.reversed", "voucher.cancelled") == (reversed_.type, event.type)
        assert str(cancelled.refund_id) == reversed_.payload["transaction_id"]
        assert ("M", berlin(2026, 4, 11)) == (event.member_id, event.occurred_at)
        assert {**_coffee(cancelled, "cancelled"),
                "cancelled_at": "2026-04-10T22:00:00+00:00", "reason": "changed mind",
                "refund_id": str(cancelled.refund_id), "points_returned": 500
                } == event.payload
        assert 1500 == reversed_.payload["balance"]["available"]

    def test_voucher_expired_by_due_work_once_per_voucher(self, storage: Storage) -> None:
        shop = _Shop(self.make_loyalty, storage)
        shop.earn("N", 600)
        shop.at(berlin(2026, 4, 10, 10))
        first = shop.rewards.redeem("M", "coffee", key="r1").voucher
        second = shop.rewards.redeem("N", "coffee", key="r2").voucher
        shop.at(berlin(2026, 5, 10, 9, 59))
        shop.loyalty.run_due()
        assert ["reward.redeemed"] * 2 == [e.type for e in shop.ours()]  # not yet
        shop.at(berlin(2026, 5, 11))
        assert 2 == shop.loyalty.run_due(batch_size=1).expired_vouchers  # two batches
        expired = shop.ours()[2:]
        assert ["voucher.expired"] * 2 == [e.type for e in expired]
        assert [("M", str(first.id)), ("N", str(second.id))] == sorted(
            (e.member_id, e.payload["voucher_id"]) for e in expired)
        event = next(e for e in expired if e.member_id == "M")
        stored = shop.rewards.voucher(first.code)
        assert berlin(2026, 5, 10, 10) == event.occurred_at  # its expiry, not the run
        assert {**_coffee(stored, "expired"), "expired_at": "2026-05-10T08:00:00+00:00",
                "refunded": False, "refund_id": None, "points_returned": 0
                } == event.payload
        # run again, and later: nothing more
        before = shop.events()
        assert 0 == shop.loyalty.run_due().expired_vouchers
        shop.at(berlin(2026, 6, 1))
        shop.loyalty.run_due()
        assert before == shop.events()

    def test_voucher_expired_with_a_refund_says_what_came_back(self, storage: Storage
                                                               ) -> None:
        shop = _Shop(self.make_loyalty, storage, v_coffee(refund_on_expiry=True), v_mug())
        got = shop.rewards.redeem("M", "coffee", key="r", at=shop.at(berlin(2026, 4, 10, 10)))
        shop.at(berlin(2026, 5, 11))
        assert 1 == shop.loyalty.run_due().refunded_vouchers
        reversed_, event = shop.events()[-2:]
        assert ("points.reversed", "voucher.expired") == (reversed_.type, event.type)
        stored = shop.rewards.voucher(got.voucher.code)
        assert {**_coffee(stored, "expired"), "expired_at": "2026-05-10T08:00:00+00:00",
                "refunded": True, "refund_id": reversed_.payload["transaction_id"],
                "points_returned": 500} == event.payload
        assert str(stored.refund_id) == event.payload["refund_id"]

    def test_a_refund_into_an_expired_lot_returns_no_points(self, storage: Storage) -> None:
        """Points a refund gives back to a lot past its expiry expire at once:
        ``points_returned`` says what the member got back (0), ``refunded`` that the
        spend was reversed."""
        late = v_coffee(refund_on_expiry=True, valid_days=None,
                        valid_until=berlin(2027, 5, 1))
        # M's lot of 1 March 2026 expires 1 April 2027
        shop = _Shop(self.make_loyalty, storage, late)
        shop.at(berlin(2026, 4, 10, 10))
        got = shop.rewards.redeem("M", "coffee", key="r")
        shop.loyalty.spend("M", 1000, key="rest")  # the lot holds the voucher's 500 only
        shop.at(berlin(2027, 5, 2))
        assert 1 == shop.loyalty.run_due().refunded_vouchers
        event = shop.ours()[-1]
        assert ("voucher.expired", True, 0) == (
            event.type, event.payload["refunded"], event.payload["points_returned"])
        assert str(shop.rewards.voucher(got.voucher.code).refund_id) == (
            event.payload["refund_id"])
        assert "2027-04-30T22:00:00+00:00" == event.payload["expired_at"]
        assert 0 == shop.loyalty.balance("M").available

    # -- none without a change ------------------------------------------------------------------

    def test_refused_writes_and_replays_append_no_event(self, storage: Storage) -> None:
        shop = _Shop(self.make_loyalty, storage, v_coffee(stock=1), v_mug())
        shop.earn("P", 100)
        shop.earn("N", 600)
        with pytest.raises(RewardNotAvailable):
            shop.rewards.redeem("M", "coffee", key="early")
        shop.at(berlin(2026, 4, 10, 10))
        got = shop.rewards.redeem("M", "coffee", key="r")
        events = shop.events()
        assert ["reward.redeemed"] == [e.type for e in shop.ours()]
        refusals: list[tuple[type[Exception], Any]] = [
            (InsufficientPoints, lambda: shop.rewards.redeem("P", "coffee", key="p")),
            (RewardNotFound, lambda: shop.rewards.redeem("M", "tea", key="t")),
            (RedemptionLimitReached, lambda: shop.rewards.redeem("M", "coffee", key="m")),
            (OutOfStock, lambda: shop.rewards.redeem("N", "coffee", key="n")),
            (TierNotAllowed, lambda: shop.rewards.redeem("M", "mug", key="g")),
            (InvalidCode, lambda: shop.rewards.use("not a code", order_id="o", key="x")),
            (VoucherNotFound, lambda: shop.rewards.cancel(
                CodeSpec().display(CodeSpec().draw(lambda n: 3)), key="x")),
        ]
        for error, call in refusals:
            with pytest.raises(error):
                call()
        assert got == shop.rewards.redeem("M", "coffee", key="r")  # a replay
        assert events == shop.events()
        shop.rewards.use(got.voucher.code, order_id="1001", key="u")
        events = shop.events()
        assert ["reward.redeemed", "voucher.used"] == [e.type for e in shop.ours()]
        with pytest.raises(VoucherAlreadyUsed):
            shop.rewards.cancel(got.voucher.code, key="c")
        with pytest.raises(VoucherAlreadyUsed):
            shop.rewards.use(got.voucher.code, order_id="1002", key="u2")
        shop.rewards.use(got.voucher.code, order_id="1001", key="u")  # a replay
        assert events == shop.events()

    def test_a_voucher_of_an_erased_member_expires_under_its_erased_name(
            self, storage: Storage) -> None:
        shop = _Shop(self.make_loyalty, storage)
        got = shop.rewards.redeem("M", "coffee", key="r", at=shop.at(berlin(2026, 4, 10, 10)))
        erased = shop.loyalty.privacy.erase("M").erased_as
        shop.at(berlin(2026, 5, 11))
        assert 1 == shop.loyalty.run_due().expired_vouchers
        event = shop.ours()[-1]
        assert ("voucher.expired", erased, str(got.voucher.id)) == (
            event.type, event.member_id, event.payload["voucher_id"])
        with pytest.raises(VoucherNotUsable):
            shop.rewards.use(got.voucher.code, order_id="1", key="u")
        assert event == shop.ours()[-1]
