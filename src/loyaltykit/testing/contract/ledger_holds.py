"""The hold part of the ledger contract: reserve, capture, void and release of holds.
"""

from __future__ import annotations

import uuid

import pytest

from loyaltykit import (
    Account,
    ExpiryPolicy,
    HoldExpired,
    HoldNotFound,
    HoldNotOpen,
    HoldStatus,
    InsufficientPoints,
    Kind,
    Storage,
)
from loyaltykit.testing.contract.base import HOLD_TTL as _TTL
from loyaltykit.testing.contract.base import MINUTE as _MINUTE
from loyaltykit.testing.contract.base import (
    ContractPart,
    Shop,
    make_program,
    statement_lines,
    utc,
)
from loyaltykit.testing.contract.base import kinds as _kinds

__all__ = ["LedgerHoldContract"]


class LedgerHoldContract(ContractPart):
    """Holds on a backend: part of :class:`LedgerContract`."""

    def test_hold_reserves_points(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        now = shop.clock.now()
        result = shop.loyalty.hold("m", 60, key="cart", ttl=_TTL, reason="checkout")
        assert (60, now + _TTL, 40, 60, 100) == (
            result.points, result.expires_at, result.balance.available, result.balance.held,
            result.balance.total)
        hold = shop.loyalty.hold_info(result.hold_id)
        assert (HoldStatus.OPEN, 60, now, now + _TTL, result.transaction_id, 0, None) == (
            hold.status, hold.points, hold.created_at, hold.expires_at, hold.transaction_id,
            hold.captured, hold.resolved_by)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert (Kind.HOLD, 0, {Account.AVAILABLE: -60, Account.HELD: 60}) == (
            tx.kind, tx.points, {p.account: p.amount for p in tx.postings})
        shop.check("m")

    def test_held_points_are_not_spendable_twice(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        shop.enrol("n")
        before = shop.snapshot("m", "n")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.hold("m", 50, key="cart-2", ttl=_TTL)
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 41, key="pay")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.adjust("m", -41, key="fix", reason="typo")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.transfer("m", "n", 41, key="gift")
        assert before == shop.snapshot("m", "n")
        assert 0 == shop.loyalty.spend("m", 40, key="pay-40").balance.available
        with pytest.raises(InsufficientPoints):
            shop.loyalty.hold("m", 1, key="cart-3", ttl=_TTL)
        assert 100 == shop.loyalty.capture(hold_id, key="paid").balance.spent
        shop.check("m", "n")

    def test_capture_all(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        result = shop.loyalty.capture(hold_id, key="paid")
        assert (Kind.CAPTURE, -60, 40, 0, 60, 40) == (
            result.kind, result.points, result.balance.available, result.balance.held,
            result.balance.spent, result.balance.total)
        hold = shop.loyalty.hold_info(hold_id)
        assert (HoldStatus.CAPTURED, 60, result.transaction_id) == (
            hold.status, hold.captured, hold.resolved_by)
        shop.check("m")

    def test_capture_part_returns_the_rest(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        result = shop.loyalty.capture(hold_id, 45, key="paid")
        assert (-45, 55, 0, 45) == (result.points, result.balance.available,
                                    result.balance.held, result.balance.spent)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.HELD: -60, Account.REDEEMED: 45, Account.AVAILABLE: 15} == {
            p.account: p.amount for p in tx.postings}
        hold = shop.loyalty.hold_info(hold_id)
        assert (HoldStatus.CAPTURED, 45) == (hold.status, hold.captured)
        assert [55] == [lot.remaining for lot in shop.loyalty.lots("m")]
        shop.check("m")

    def test_capture_more_than_held_is_refused(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.capture(hold_id, 61, key="paid")
        assert before == shop.snapshot("m")
        assert HoldStatus.OPEN == shop.loyalty.hold_info(hold_id).status

    def test_void_returns_everything(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        result = shop.loyalty.void(hold_id, key="abandoned")
        assert (Kind.RELEASE, 0, 100, 0, 0) == (
            result.kind, result.points, result.balance.available, result.balance.held,
            result.balance.spent)
        hold = shop.loyalty.hold_info(hold_id)
        assert (HoldStatus.VOIDED, 0, result.transaction_id) == (
            hold.status, hold.captured, hold.resolved_by)
        shop.check("m")

    @pytest.mark.parametrize("first", ["capture", "void"])
    @pytest.mark.parametrize("second", ["capture", "void"])
    def test_a_resolved_hold_is_not_open(self, storage: Storage, first: str,
                                         second: str) -> None:
        shop, hold_id = self._holding(storage)
        getattr(shop.loyalty, first)(hold_id, key="first")
        before = shop.snapshot("m")
        with pytest.raises(HoldNotOpen):
            getattr(shop.loyalty, second)(hold_id, key="second")
        assert before == shop.snapshot("m")

    def test_unknown_hold_raises_hold_not_found(self, storage: Storage) -> None:
        shop, _ = self._holding(storage)
        before = shop.snapshot("m")
        for call in (
            lambda: shop.loyalty.capture(uuid.uuid4(), key="a"),
            lambda: shop.loyalty.void(uuid.uuid4(), key="b"),
            lambda: shop.loyalty.hold_info(uuid.uuid4()),
        ):
            with pytest.raises(HoldNotFound):
                call()
        assert before == shop.snapshot("m")

    def test_due_work_releases_a_stale_hold(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        expires = shop.loyalty.hold_info(hold_id).expires_at
        shop.later(_TTL - _MINUTE)
        assert 0 == shop.loyalty.run_due().released_holds
        shop.later(2 * _MINUTE)
        report = shop.loyalty.run_due()
        assert (1, 60) == (report.released_holds, report.released_points)
        hold = shop.loyalty.hold_info(hold_id)
        assert HoldStatus.RELEASED == hold.status
        release = shop.loyalty.transaction(hold.resolved_by or uuid.uuid4())
        assert (Kind.RELEASE, expires) == (release.kind, release.occurred_at)
        assert (100, 0) == (shop.balance("m").available, shop.balance("m").held)
        with pytest.raises(HoldNotOpen):
            shop.loyalty.capture(hold_id, key="late")
        shop.check("m")

    def test_capture_after_the_ttl_raises_hold_expired(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        shop.later(_TTL)  # exactly at the hold's expiry: too late
        before = shop.snapshot("m")
        with pytest.raises(HoldExpired):
            shop.loyalty.capture(hold_id, key="late")
        assert before == shop.snapshot("m")
        assert HoldStatus.OPEN == shop.loyalty.hold_info(hold_id).status
        # the hold's points are free again for the member's next write
        assert 0 == shop.loyalty.spend("m", 100, key="pay").balance.available
        assert HoldStatus.RELEASED == shop.loyalty.hold_info(hold_id).status
        shop.check("m")

    # a held lot reaching its expiry before the hold resolves: the held points are
    # protected until the hold resolves; what then returns to the lot expires at once

    def _held_past_expiry(self, storage: Storage, *, run_due: bool) -> tuple[Shop, uuid.UUID]:
        shop = self.shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")  # expires 2026-01-11 09:00 Berlin
        shop.go(2026, 1, 11, 8, 55)
        hold_id = shop.loyalty.hold("m", 60, key="cart", ttl=_TTL).hold_id
        shop.go(2026, 1, 11, 9, 1)
        if run_due:
            report = shop.loyalty.run_due()
            assert (1, 40) == (report.expired_lots, report.expired_points)
            balance = shop.balance("m")
            assert (0, 60, 40, 60) == (balance.available, balance.held, balance.expired,
                                       balance.total)
            assert [(60, 60)] == [(lot.remaining, lot.held) for lot in shop.loyalty.lots("m")]
            with pytest.raises(InsufficientPoints):
                shop.loyalty.spend("m", 1, key="pay")
        shop.go(2026, 1, 11, 9, 2)
        return shop, hold_id

    @pytest.mark.parametrize("run_due", [True, False])
    def test_capture_of_a_hold_on_an_expired_lot(self, storage: Storage,
                                                 run_due: bool) -> None:
        shop, hold_id = self._held_past_expiry(storage, run_due=run_due)
        result = shop.loyalty.capture(hold_id, 45, key="paid")
        assert (0, 0, 45, 55, 0) == (
            result.balance.available, result.balance.held, result.balance.spent,
            result.balance.expired, result.balance.total)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.HELD: -60, Account.REDEEMED: 45, Account.EXPIRED: 15} == {
            p.account: p.amount for p in tx.postings}
        assert [] == shop.loyalty.lots("m")
        assert [Kind.CAPTURE, Kind.EXPIRE, Kind.HOLD, Kind.EARN] == _kinds(
            statement_lines(shop.loyalty, "m"))
        shop.check("m")

    def test_void_of_a_hold_on_an_expired_lot(self, storage: Storage) -> None:
        shop, hold_id = self._held_past_expiry(storage, run_due=True)
        result = shop.loyalty.void(hold_id, key="abandoned")
        assert (0, 0, 0, 100, 0) == (
            result.balance.available, result.balance.held, result.balance.spent,
            result.balance.expired, result.balance.total)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.HELD: -60, Account.EXPIRED: 60} == {
            p.account: p.amount for p in tx.postings}
        assert [] == shop.loyalty.lots("m")
        shop.check("m")

    def test_due_release_of_a_hold_on_an_expired_lot(self, storage: Storage) -> None:
        shop, hold_id = self._held_past_expiry(storage, run_due=True)
        shop.go(2026, 1, 11, 9, 20)
        report = shop.loyalty.run_due()
        assert (1, 60, 60) == (
            report.released_holds, report.released_points, report.expired_points)
        balance = shop.balance("m")
        assert (0, 0, 0, 100, 0) == (balance.available, balance.held, balance.spent,
                                     balance.expired, balance.total)
        hold = shop.loyalty.hold_info(hold_id)
        release = shop.loyalty.transaction(hold.resolved_by or uuid.uuid4())
        assert (HoldStatus.RELEASED, utc(2026, 1, 11, 8, 10)) == (hold.status,
                                                                  release.occurred_at)
        assert {Account.HELD: -60, Account.EXPIRED: 60} == {
            p.account: p.amount for p in release.postings}
        assert 0 == shop.loyalty.run_due().members
        shop.check("m")
