"""The ledger part of the storage contract (DESIGN §3): enrolment, earn, spend order, pending
points, expiry and due work, bulk earn here; holds, corrections, views and write safety
in the ``ledger_*`` modules, which :class:`LedgerContract` composes.
"""

from __future__ import annotations

import datetime as dt
import uuid

import attrs
import pytest

from loyaltykit import (
    Account,
    Balance,
    ExpiryPolicy,
    ExpiryRounding,
    ExpiryStart,
    InsufficientPoints,
    InvalidInput,
    Kind,
    LedgerPolicy,
    Member,
    MemberAlreadyEnrolled,
    MemberNotFound,
    NotPending,
    PendingPolicy,
    SpendOrder,
    Storage,
    TransactionNotFound,
)
from loyaltykit.testing.contract.base import HOLD_TTL as _TTL
from loyaltykit.testing.contract.base import (
    L_EXPIRY,
    Shop,
    berlin,
    lot_of,
    make_program,
    moves,
    statement_lines,
    utc,
)
from loyaltykit.testing.contract.base import kinds as _kinds
from loyaltykit.testing.contract.ledger_corrections import LedgerCorrectionContract
from loyaltykit.testing.contract.ledger_due import LedgerDueContract
from loyaltykit.testing.contract.ledger_due_bulk import LedgerDueBulkContract
from loyaltykit.testing.contract.ledger_holds import LedgerHoldContract
from loyaltykit.testing.contract.ledger_views import LedgerViewContract
from loyaltykit.testing.contract.ledger_writes import LedgerWriteContract

__all__ = ["LedgerContract"]


class LedgerContract(
    LedgerHoldContract, LedgerCorrectionContract, LedgerViewContract, LedgerWriteContract,
    LedgerDueContract, LedgerDueBulkContract,
):
    """The ledger on a backend (DESIGN §3): members, lots, pending points, expiry, due work,
    holds, corrections, balances, statements, idempotency and concurrency. Mixed into
    StorageContract."""

    # -- enrolment ----------------------------------------------------------------------

    def test_enrol_returns_the_member_with_empty_wallets(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(wallets=("points", "credits")))
        member = shop.loyalty.enrol("alice", attributes={"email": "a@example.com"})
        assert Member("shop", "alice", utc(2026, 1, 1, 8), {"email": "a@example.com"}) == (
            member)
        assert member == shop.loyalty.member("alice")
        for wallet in ("points", "credits"):
            balance = shop.balance("alice", wallet=wallet)
            assert (0, 0, 0, 0, 0) == (balance.available, balance.pending, balance.held,
                                       balance.debt, balance.total)
            assert [] == shop.loyalty.lots("alice", wallet=wallet)
            assert [] == statement_lines(shop.loyalty, "alice", wallet=wallet)

    def test_enrol_twice_with_the_default_key_returns_the_same_member(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage)
        first = shop.loyalty.enrol("alice")
        shop.later(dt.timedelta(hours=1))
        assert first == shop.loyalty.enrol("alice")
        assert first == shop.loyalty.member("alice")

    def test_enrol_with_another_key_raises_member_already_enrolled(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage)
        shop.loyalty.enrol("alice")
        before = shop.snapshot("alice")
        with pytest.raises(MemberAlreadyEnrolled) as info:
            shop.loyalty.enrol("alice", key="signup-2")
        assert "alice" == info.value.details["member_id"]
        assert before == shop.snapshot("alice")

    def test_unknown_member_raises_member_not_found(self, storage: Storage) -> None:
        shop = self.shop(storage)
        with pytest.raises(MemberNotFound):
            shop.loyalty.member("ghost")
        with pytest.raises(MemberNotFound):
            shop.loyalty.earn("ghost", 10, key="k")
        with pytest.raises(MemberNotFound):
            shop.balance("ghost")
        assert {("ghost", "points"): None} == shop.snapshot("ghost")

    # -- earn ---------------------------------------------------------------------------

    def test_earn_creates_a_lot_and_balanced_postings(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        result = shop.loyalty.earn("m", 100, key="order-1", reason="order",
                                   metadata={"order_id": "o-1"})
        assert (Kind.EARN, "m", "points", 100, utc(2026, 1, 15, 9)) == (
            result.kind, result.member_id, result.wallet, result.points, result.occurred_at)
        assert (100, 0, 100, 100) == (result.balance.available, result.balance.pending,
                                      result.balance.total, result.balance.earned)
        assert (100, utc(2027, 1, 31, 23)) == (result.balance.next_expiring_points,
                                              result.balance.next_expiring_at)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.ISSUED: -100, Account.AVAILABLE: 100} == {
            p.account: p.amount for p in tx.postings}
        assert ("order", {"order_id": "o-1"}, "order-1") == (
            tx.reason, dict(tx.metadata), tx.idempotency_key)
        [lot] = shop.loyalty.lots("m")
        assert {lot.id: 100} == moves(tx)
        assert (100, 100, 0, utc(2026, 1, 15, 9), None, utc(2027, 1, 31, 23), False,
                tx.id) == (lot.amount, lot.remaining, lot.held, lot.earned_at,
                           lot.activates_at, lot.expires_at, lot.pending,
                           lot.transaction_id)
        shop.check("m")

    # -- spend order ----------------------------------------------------------------------

    def _spend_order_world(
        self, storage: Storage, order: SpendOrder
    ) -> tuple[Shop, list[uuid.UUID]]:
        """Lots L1..L4 of member m: L1 (10) and L2 (20) expire together, L3 (30, a
        transfer in) is newer than both but expires first, L4 (40) is newest."""
        shop = self.shop(storage, make_program(expiry=L_EXPIRY, spend_order=order))
        shop.enrol("m", "x")
        shop.go(2026, 1, 15, 10)
        shop.earn("x", 30)  # expires 2027-02-01
        shop.go(2026, 3, 10, 9)
        l1 = shop.earn("m", 10)  # expires 2027-04-01
        shop.go(2026, 3, 20, 9)
        l2 = shop.earn("m", 20)  # expires 2027-04-01
        shop.go(2026, 4, 5, 9)
        transfer = shop.loyalty.transfer("x", "m", 30, key="gift")
        l3 = lot_of(shop.loyalty.transaction(transfer.incoming.transaction_id))
        shop.go(2026, 5, 1, 9)
        l4 = shop.earn("m", 40)  # expires 2027-06-01
        assert utc(2027, 1, 31, 23) == shop.lot("m", l3).expires_at
        shop.go(2026, 6, 1, 12)
        return shop, [l1, l2, l3, l4]

    @pytest.mark.parametrize(
        ("order", "consumed", "left"),
        [
            (SpendOrder.SOONEST_EXPIRING, {2: -30, 0: -10, 1: -5}, {1: 15, 3: 40}),
            (SpendOrder.OLDEST_FIRST, {0: -10, 1: -20, 2: -15}, {2: 15, 3: 40}),
            (SpendOrder.NEWEST_FIRST, {3: -40, 2: -5}, {0: 10, 1: 20, 2: 25}),
        ],
        ids=["soonest_expiring", "oldest_first", "newest_first"],
    )
    def test_spend_consumes_lots_in_the_programs_spend_order(
        self, storage: Storage, order: SpendOrder, consumed: dict[int, int],
        left: dict[int, int],
    ) -> None:
        shop, lots = self._spend_order_world(storage, order)
        result = shop.loyalty.spend("m", 45, key="pay")
        assert (Kind.SPEND, -45, 55, 45) == (result.kind, result.points,
                                             result.balance.available, result.balance.spent)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {lots[i]: d for i, d in consumed.items()} == moves(tx)
        assert {Account.AVAILABLE: -45, Account.REDEEMED: 45} == {
            p.account: p.amount for p in tx.postings}
        assert {lots[i]: n for i, n in left.items()} == shop.remaining("m")
        shop.check("m", "x")

    def test_default_spend_order_is_soonest_expiring(self) -> None:
        assert SpendOrder.SOONEST_EXPIRING == LedgerPolicy().spend_order

    def test_hold_reserves_lots_in_spend_order(self, storage: Storage) -> None:
        shop, lots = self._spend_order_world(storage, SpendOrder.SOONEST_EXPIRING)
        result = shop.loyalty.hold("m", 45, key="cart", ttl=_TTL)
        hold = shop.loyalty.hold_info(result.hold_id)
        assert {lots[2]: 30, lots[0]: 10, lots[1]: 5} == {
            a.lot_id: a.points for a in hold.allocations}
        held = {lot.id: lot.held for lot in shop.loyalty.lots("m")}
        assert {lots[0]: 10, lots[1]: 5, lots[2]: 30, lots[3]: 0} == held
        shop.check("m")

    # -- pending points -------------------------------------------------------------------

    def test_pending_days_policy(self, storage: Storage) -> None:
        program = make_program(expiry=ExpiryPolicy(
            months=12, round_up_to=ExpiryRounding.MONTH, counted_from=ExpiryStart.ACTIVATION,
        ), pending=PendingPolicy(days=14))
        shop = self.shop(storage, program)
        shop.enrol("m")
        shop.go(2026, 5, 1, 10)
        result = shop.loyalty.earn("m", 80, key="order")
        assert (0, 80, 80) == (result.balance.available, result.balance.pending,
                               result.balance.total)
        [lot] = shop.loyalty.lots("m")
        assert (True, utc(2026, 5, 15, 8), None) == (lot.pending, lot.activates_at,
                                                    lot.expires_at)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 10, key="pay")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.hold("m", 10, key="cart", ttl=_TTL)
        assert before == shop.snapshot("m")
        shop.go(2026, 5, 15, 10)
        assert 0 == shop.loyalty.run_due(berlin(2026, 5, 15, 9, 59)).activated_lots
        report = shop.loyalty.run_due()
        assert (1, 80) == (report.activated_lots, report.activated_points)
        balance = shop.balance("m")
        assert (80, 0) == (balance.available, balance.pending)
        [lot] = shop.loyalty.lots("m")
        assert (False, None, utc(2027, 5, 31, 22)) == (lot.pending, lot.activates_at,
                                                      lot.expires_at)
        [activation, _earn] = statement_lines(shop.loyalty, "m")
        assert (Kind.ACTIVATE, utc(2026, 5, 15, 8), 0) == (
            activation.kind, activation.occurred_at, activation.points)
        shop.check("m")

    @pytest.mark.parametrize(
        ("counted_from", "while_pending", "after"),
        [
            (ExpiryStart.EARN, utc(2027, 5, 31, 22), utc(2027, 5, 31, 22)),
            (ExpiryStart.ACTIVATION, None, utc(2027, 6, 30, 22)),
        ],
    )
    def test_expiry_counts_from_earn_or_activation(
        self, storage: Storage, counted_from: ExpiryStart, while_pending: dt.datetime | None,
        after: dt.datetime,
    ) -> None:
        program = make_program(expiry=ExpiryPolicy(
            months=12, round_up_to=ExpiryRounding.MONTH, counted_from=counted_from,
        ), pending=PendingPolicy(days=14))
        shop = self.shop(storage, program)
        shop.enrol("m")
        shop.go(2026, 5, 25, 10)
        lot_id = shop.earn("m", 10)
        assert while_pending == shop.lot("m", lot_id).expires_at
        shop.go(2026, 6, 8, 10)  # activation instant
        assert 1 == shop.loyalty.run_due().activated_lots
        assert after == shop.lot("m", lot_id).expires_at
        assert after == shop.balance("m").next_expiring_at

    def test_manual_pending_and_activate(self, storage: Storage) -> None:
        program = make_program(expiry=ExpiryPolicy(months=1, counted_from=ExpiryStart.ACTIVATION),
                               pending=PendingPolicy(manual=True))
        shop = self.shop(storage, program)
        shop.enrol("m")
        shop.go(2026, 1, 10, 10)
        earn = shop.loyalty.earn("m", 50, key="order")
        [lot] = shop.loyalty.lots("m")
        assert (True, None, None) == (lot.pending, lot.activates_at, lot.expires_at)
        shop.go(2026, 2, 20, 10)
        assert 0 == shop.loyalty.run_due().activated_lots
        assert 50 == shop.balance("m").pending
        result = shop.loyalty.activate(earn.transaction_id, key="window-closed")
        assert (Kind.ACTIVATE, utc(2026, 2, 20, 9)) == (result.kind, result.occurred_at)
        assert (50, 0) == (result.balance.available, result.balance.pending)
        assert utc(2026, 3, 20, 9) == shop.lot("m", lot.id).expires_at
        before = shop.snapshot("m")
        with pytest.raises(NotPending):
            shop.loyalty.activate(earn.transaction_id, key="again")
        assert before == shop.snapshot("m")
        shop.check("m")

    def test_explicit_activates_at(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        now = shop.clock.now()
        later = shop.loyalty.earn("m", 30, key="later", activates_at=now + dt.timedelta(days=3))
        assert (0, 30) == (later.balance.available, later.balance.pending)
        at_once = shop.loyalty.earn("m", 5, key="now", activates_at=now)
        assert (5, 30) == (at_once.balance.available, at_once.balance.pending)
        shop.later(dt.timedelta(days=3))
        report = shop.loyalty.run_due()
        assert (1, 30) == (report.activated_lots, report.activated_points)
        assert (35, 0) == (shop.balance("m").available, shop.balance("m").pending)
        shop.check("m")

    def test_activate_early_then_due_work_has_nothing_to_activate(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage, make_program(pending=PendingPolicy(days=14)))
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 40, key="order")
        shop.later(dt.timedelta(days=2))
        assert 40 == shop.loyalty.activate(earn.transaction_id, key="early").balance.available
        shop.later(dt.timedelta(days=20))
        assert 0 == shop.loyalty.run_due().activated_lots
        assert 40 == shop.balance("m").available
        shop.check("m")

    def test_activate_an_earn_that_is_not_pending_raises_not_pending(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 40, key="order")
        before = shop.snapshot("m")
        with pytest.raises(NotPending):
            shop.loyalty.activate(earn.transaction_id, key="act")
        with pytest.raises(TransactionNotFound):
            shop.loyalty.activate(uuid.uuid4(), key="act2")
        assert before == shop.snapshot("m")

    def test_a_write_activates_matured_points_first(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(pending=PendingPolicy(days=14)))
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.later(dt.timedelta(days=15))
        result = shop.loyalty.spend("m", 40, key="pay")
        assert (0, 0, 40) == (result.balance.available, result.balance.pending,
                              result.balance.spent)
        assert [Kind.SPEND, Kind.ACTIVATE, Kind.EARN] == _kinds(
            statement_lines(shop.loyalty, "m"))
        shop.check("m")

    # -- expiry ---------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("policy", "earned", "expires"),
        [
            (ExpiryPolicy(days=30), (2026, 1, 15, 10), utc(2026, 2, 14, 9)),
            # calendar days in the program's zone: across the switch to summer time
            (ExpiryPolicy(days=1), (2026, 3, 28, 12), utc(2026, 3, 29, 10)),
            (ExpiryPolicy(days=30, round_up_to=ExpiryRounding.DAY), (2026, 1, 15, 10),
             utc(2026, 2, 14, 23)),
            (ExpiryPolicy(months=1), (2026, 1, 31, 10), utc(2026, 2, 28, 9)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.MONTH), (2026, 1, 15, 10),
             utc(2027, 1, 31, 23)),
            # 00:30 in Berlin is still the previous month in UTC
            (ExpiryPolicy(months=1, round_up_to=ExpiryRounding.MONTH), (2026, 2, 1, 0, 30),
             utc(2026, 3, 31, 22)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.QUARTER), (2026, 1, 15, 10),
             utc(2027, 3, 31, 22)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.QUARTER), (2026, 11, 20, 10),
             utc(2027, 12, 31, 23)),
            (ExpiryPolicy(months=12, round_up_to=ExpiryRounding.YEAR), (2026, 1, 15, 10),
             utc(2027, 12, 31, 23)),
            (ExpiryPolicy(months=6, round_up_to=ExpiryRounding.YEAR), (2026, 3, 1, 10),
             utc(2026, 12, 31, 23)),
        ],
        ids=["days", "days-dst", "day", "months", "month", "month-local", "quarter",
             "quarter-year-end", "year", "year-half"],
    )
    def test_lot_expires_at_the_policys_instant_in_the_programs_zone(
        self, storage: Storage, policy: ExpiryPolicy, earned: tuple[int, ...],
        expires: dt.datetime,
    ) -> None:
        shop = self.shop(storage, make_program(expiry=policy), start=berlin(2025, 12, 1))
        shop.enrol("m")
        shop.go(*earned)
        result = shop.loyalty.earn("m", 70, key="order")
        [lot] = shop.loyalty.lots("m")
        assert expires == lot.expires_at
        assert (70, expires) == (result.balance.next_expiring_points,
                                 result.balance.next_expiring_at)
        shop.clock.set(expires)
        assert 0 == shop.loyalty.run_due(expires - dt.timedelta(microseconds=1)).expired_lots
        assert 70 == shop.balance("m").available
        report = shop.loyalty.run_due()
        assert (1, 70, 1) == (report.expired_lots, report.expired_points, report.members)
        balance = shop.balance("m")
        assert (0, 70, 0, None) == (balance.available, balance.expired,
                                    balance.next_expiring_points, balance.next_expiring_at)
        [line, _] = statement_lines(shop.loyalty, "m")
        assert (Kind.EXPIRE, expires, -70) == (line.kind, line.occurred_at, line.points)
        shop.check("m")

    def test_next_expiring_adds_lots_that_expire_together(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="a")
        shop.go(2026, 1, 20, 10)
        same = shop.loyalty.earn("m", 50, key="b")
        assert (150, utc(2027, 1, 31, 23)) == (same.balance.next_expiring_points,
                                              same.balance.next_expiring_at)
        shop.go(2026, 2, 1, 10)
        later = shop.loyalty.earn("m", 5, key="c")
        assert (150, utc(2027, 1, 31, 23)) == (later.balance.next_expiring_points,
                                              later.balance.next_expiring_at)
        spend = shop.loyalty.spend("m", 120, key="pay")
        assert (30, utc(2027, 1, 31, 23)) == (spend.balance.next_expiring_points,
                                             spend.balance.next_expiring_at)
        assert (30, utc(2027, 1, 31, 23)) == (shop.balance("m").next_expiring_points,
                                             shop.balance("m").next_expiring_at)
        shop.check("m")

    def test_next_expiring_counts_the_lots_of_an_earlier_expiring_version(
            self, storage: Storage) -> None:
        # a version that never expires points skips the next-expiry read only for the
        # wallets without a live lot that expires: one an earlier version earned counts
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m", "n")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="a")
        never = attrs.evolve(shop.program, version=2,
                             ledger=attrs.evolve(shop.program.ledger, expiry=ExpiryPolicy()))
        later = self.shop(storage, never, start=shop.clock.now())
        later.go(2026, 2, 1, 10)
        expiring = (100, utc(2027, 1, 31, 23))

        def nxt(balance: Balance) -> tuple[int, dt.datetime | None]:
            return balance.next_expiring_points, balance.next_expiring_at

        assert expiring == nxt(later.loyalty.earn("m", 50, key="b").balance)
        assert expiring == nxt(later.balance("m"))
        assert (0, None) == nxt(later.loyalty.earn("n", 50, key="c").balance)
        assert (0, None) == nxt(later.balance("n"))
        # spent soonest expiring first: what is left never expires
        assert (0, None) == nxt(later.loyalty.spend("m", 120, key="d").balance)
        assert (0, None) == nxt(later.balance("m"))
        later.check("m", "n")

    def test_points_without_an_expiry_policy_never_expire(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 10, key="order")
        shop.go(2099, 1, 1)
        assert 0 == shop.loyalty.run_due().expired_lots
        assert (10, None) == (shop.balance("m").available, shop.loyalty.lots("m")[0].expires_at)

    def test_expiry_takes_what_is_left_of_each_lot(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        first = shop.earn("m", 100)
        shop.later(dt.timedelta(days=1))
        second = shop.earn("m", 50)
        shop.loyalty.spend("m", 30, key="pay")
        shop.later(dt.timedelta(days=30))
        report = shop.loyalty.run_due()
        assert (2, 120) == (report.expired_lots, report.expired_points)
        expiries = [shop.loyalty.transaction(line.transaction_id)
                    for line in statement_lines(shop.loyalty, "m") if line.kind is Kind.EXPIRE]
        assert [{second: -50}, {first: -70}] == [moves(tx) for tx in expiries]
        assert [berlin(2026, 1, 12, 9), berlin(2026, 1, 11, 9)] == [
            tx.occurred_at for tx in expiries]
        assert (0, 120, 30) == (shop.balance("m").available, shop.balance("m").expired,
                                shop.balance("m").spent)
        shop.check("m")

    def test_run_due_is_idempotent(self, storage: Storage) -> None:
        program = make_program(expiry=ExpiryPolicy(days=10), pending=PendingPolicy(days=2))
        shop = self.shop(storage, program)
        shop.enrol("a", "b", "c")
        for member in ("a", "b", "c"):
            shop.loyalty.earn(member, 10, key=f"earn-{member}")
        shop.later(dt.timedelta(days=3))
        shop.loyalty.hold("a", 5, key="cart", ttl=_TTL)
        shop.later(dt.timedelta(days=1))
        first = shop.loyalty.run_due(batch_size=1)
        assert (1, 5, 3) == (first.released_holds, first.released_points, first.members)
        before = shop.snapshot("a", "b", "c")
        second = shop.loyalty.run_due(batch_size=1)
        assert (0, 0, 0, 0, 0, 0, 0) == (
            second.activated_lots, second.activated_points, second.expired_lots,
            second.expired_points, second.released_holds, second.released_points,
            second.members)
        assert before == shop.snapshot("a", "b", "c")
        shop.later(dt.timedelta(days=30))
        third = shop.loyalty.run_due(batch_size=2)
        assert (3, 30, 3) == (third.expired_lots, third.expired_points, third.members)
        assert 0 == shop.loyalty.run_due().members
        shop.check("a", "b", "c")

    def test_a_write_first_catches_up_the_members_own_due_work(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        shop.loyalty.earn("m", 100, key="order")
        shop.go(2027, 2, 1, 0, 30)
        # not yet posted: the balance shows the ledger as last written
        assert 100 == shop.balance("m").available
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 10, key="pay")
        assert before == shop.snapshot("m")
        result = shop.loyalty.earn("m", 5, key="order-2")
        assert (5, 100) == (result.balance.available, result.balance.expired)
        [earn, expire, _] = statement_lines(shop.loyalty, "m")
        assert (Kind.EXPIRE, utc(2027, 1, 31, 23), -100) == (
            expire.kind, expire.occurred_at, expire.points)
        assert Kind.EARN == earn.kind
        assert 0 == shop.loyalty.run_due().expired_lots
        shop.check("m")

    # -- bulk earn ------------------------------------------------------------------------

    def test_bulk_earn(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("a", "b", "c")
        result = shop.loyalty.bulk_earn({"a": 10, "b": 20, "c": 30}, key="campaign",
                                        reason="spring gift")
        assert (3, 60, shop.clock.now()) == (result.members, result.points,
                                             result.occurred_at)
        assert [10, 20, 30] == [shop.balance(m).available for m in ("a", "b", "c")]
        for member in ("a", "b", "c"):
            [line] = statement_lines(shop.loyalty, member)
            tx = shop.loyalty.transaction(line.transaction_id)
            assert (Kind.EARN, "spring gift", str(result.batch_id)) == (
                tx.kind, tx.reason, tx.metadata["batch_id"])
        pairs = shop.loyalty.bulk_earn([("a", 1), ("c", 2)], key="campaign-2")
        assert (2, 3) == (pairs.members, pairs.points)
        assert [11, 20, 32] == [shop.balance(m).available for m in ("a", "b", "c")]
        shop.check("a", "b", "c")

    def test_bulk_earn_is_all_or_nothing(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("a", "b")
        before = shop.snapshot("a", "b")
        with pytest.raises(MemberNotFound) as info:
            shop.loyalty.bulk_earn([("a", 10), ("ghost", 5), ("b", 3)], key="campaign")
        assert ["ghost"] == list(info.value.details["member_ids"])
        with pytest.raises(InvalidInput):
            shop.loyalty.bulk_earn([("a", 10), ("b", 5), ("a", 3)], key="campaign")
        assert before == shop.snapshot("a", "b")
        # the key was not used up by the failures
        assert 2 == shop.loyalty.bulk_earn({"a": 1, "b": 1}, key="campaign").members
