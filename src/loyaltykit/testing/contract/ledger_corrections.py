"""The corrections part of the ledger contract: reversals, adjustments, transfers and
clawbacks.
"""

from __future__ import annotations

import datetime as dt
import uuid

import attrs
import pytest

from loyaltykit import (
    Account,
    AlreadyReversed,
    ClawbackPolicy,
    ExpiryPolicy,
    HoldStatus,
    InsufficientPoints,
    InvalidInput,
    Kind,
    MemberNotFound,
    Money,
    NotReversible,
    Order,
    OrderLine,
    PaymentPolicy,
    PendingPolicy,
    Storage,
    TransactionNotFound,
)
from loyaltykit.testing.contract.base import HOLD_TTL as _TTL
from loyaltykit.testing.contract.base import (
    L_EXPIRY,
    ContractPart,
    lot_of,
    make_program,
    moves,
    statement_lines,
    utc,
)

__all__ = ["LedgerCorrectionContract"]


class LedgerCorrectionContract(ContractPart):
    """Corrections on a backend: part of :class:`LedgerContract`."""

    # -- reversal -------------------------------------------------------------------------

    def test_reverse_an_earn(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 100, key="order")
        result = shop.loyalty.reverse(earn.transaction_id, key="undo", reason="mistake")
        assert (Kind.REVERSE, -100, 0, 0) == (result.kind, result.points,
                                              result.balance.available, result.balance.earned)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert (earn.transaction_id, "mistake") == (tx.reverses_id, tx.reason)
        assert [] == shop.loyalty.lots("m")
        [undo, original] = statement_lines(shop.loyalty, "m")
        assert ((Kind.REVERSE, -100, earn.transaction_id), (Kind.EARN, 100, None)) == (
            (undo.kind, undo.points, undo.reverses_id),
            (original.kind, original.points, original.reverses_id))
        shop.check("m")

    def test_reverse_an_earn_already_spent_creates_debt(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 100, key="order")
        shop.loyalty.spend("m", 70, key="pay")
        result = shop.loyalty.reverse(earn.transaction_id, key="undo")
        assert (0, 70, -70) == (result.balance.available, result.balance.debt,
                                result.balance.total)
        after = shop.loyalty.earn("m", 100, key="order-2")
        assert (30, 0) == (after.balance.available, after.balance.debt)
        shop.check("m")

    def test_reverse_a_spend_restores_the_exact_lots(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        shop.earn("m", 100)
        shop.go(2026, 3, 10, 9)
        shop.earn("m", 50)
        shop.earn("m", 25)
        lots = shop.loyalty.lots("m")
        shop.go(2026, 6, 1, 12)
        spend = shop.loyalty.spend("m", 160, key="pay")
        assert 15 == spend.balance.available
        shop.go(2026, 7, 1, 12)
        result = shop.loyalty.reverse(spend.transaction_id, key="undo")
        assert (160, 175, 0) == (result.points, result.balance.available,
                                 result.balance.spent)
        assert lots == shop.loyalty.lots("m")
        spend_tx = shop.loyalty.transaction(spend.transaction_id)
        undo_tx = shop.loyalty.transaction(result.transaction_id)
        assert {k: -v for k, v in moves(spend_tx).items()} == moves(undo_tx)
        shop.check("m")

    def test_reverse_a_spend_into_an_expired_lot_expires_at_once(
        self, storage: Storage
    ) -> None:
        shop = self.shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        spend = shop.loyalty.spend("m", 60, key="pay")
        shop.later(dt.timedelta(days=11))
        assert 40 == shop.loyalty.run_due().expired_points
        result = shop.loyalty.reverse(spend.transaction_id, key="undo")
        assert (0, 0, 0, 100) == (result.points, result.balance.available,
                                  result.balance.spent, result.balance.expired)
        tx = shop.loyalty.transaction(result.transaction_id)
        assert {Account.REDEEMED: -60, Account.EXPIRED: 60} == {
            p.account: p.amount for p in tx.postings}
        shop.check("m")

    def test_reverse_a_capture(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        lots = [(lot.id, lot.remaining) for lot in shop.loyalty.lots("m")]
        capture = shop.loyalty.capture(hold_id, 45, key="paid")
        result = shop.loyalty.reverse(capture.transaction_id, key="refund")
        assert (45, 100, 0) == (result.points, result.balance.available, result.balance.spent)
        assert lots == [(lot.id, lot.remaining) for lot in shop.loyalty.lots("m")]
        shop.check("m")

    def test_a_partly_refunded_capture_is_found_and_not_reversed(self, storage: Storage
                                                                 ) -> None:
        """``find_refunds`` finds the refunds of one debit (a partial return of the
        order it paid), and reversing that debit is refused: its exact opposite would
        give the refunded points back twice."""
        program = attrs.evolve(make_program(),
                               payments=PaymentPolicy(points=1, money=Money("0.01", "EUR")))
        shop = self.shop(storage, program)
        shop.enrol("m")
        shop.loyalty.earn("m", 5000, key="earn")
        lines = (OrderLine(sku="a", quantity=1, unit_price=Money("20.00", "EUR")),
                 OrderLine(sku="b", quantity=1, unit_price=Money("20.00", "EUR")))
        order = Order(id="o1", member_id="m", placed_at=shop.clock.now(), currency="EUR",
                      lines=lines)
        held = shop.loyalty.payments.hold(order, 2000, key="hold")
        paid = shop.loyalty.payments.capture(held.hold_id, key="capture")
        other = shop.loyalty.spend("m", 10, key="other")
        shop.loyalty.record_order(order, paid_with=[paid.transaction_id])
        back = shop.loyalty.record_return("o1", {"a": 1}, key="return")
        refund = [t.transaction_id for t in back.restored]
        assert 1000 == back.points_refunded and 1 == len(refund)
        with storage.unit_of_work(program.id) as uow:
            stored = uow.ledger.get_transaction(paid.transaction_id)
            assert stored is not None
            m = stored.member_id  # the member's key, as the store keeps it
            assert refund == uow.ledger.find_refunds("points", m, paid.transaction_id)
            assert [] == uow.ledger.find_refunds("points", m, other.transaction_id)
            assert [] == uow.ledger.find_refunds("points", "nobody", paid.transaction_id)
        with pytest.raises(NotReversible) as refused:
            shop.loyalty.reverse(paid.transaction_id, key="undo")
        assert [str(r) for r in refund] == refused.value.details["refunds"]
        shop.loyalty.reverse(other.transaction_id, key="undo-other")
        shop.check("m")

    @pytest.mark.parametrize("points", [25, -25])
    def test_reverse_an_adjustment(self, storage: Storage, points: int) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        adjust = shop.loyalty.adjust("m", points, key="fix", reason="support ticket 7")
        assert (100 + points, points) == (adjust.balance.available, adjust.balance.adjusted)
        result = shop.loyalty.reverse(adjust.transaction_id, key="unfix")
        assert (-points, 100, 0) == (result.points, result.balance.available,
                                     result.balance.adjusted)
        shop.check("m")

    @pytest.mark.parametrize("half", ["outgoing", "incoming"])
    def test_reverse_either_half_of_a_transfer_reverses_both(
        self, storage: Storage, half: str
    ) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("giver", "taker")
        shop.loyalty.earn("giver", 100, key="order")
        lots = shop.loyalty.lots("giver")
        transfer = shop.loyalty.transfer("giver", "taker", 60, key="gift")
        chosen = getattr(transfer, half)
        other = transfer.incoming if half == "outgoing" else transfer.outgoing
        result = shop.loyalty.reverse(chosen.transaction_id, key="undo")
        assert 1 == len(result.related_ids)
        sibling = shop.loyalty.transaction(result.related_ids[0])
        assert (Kind.REVERSE, other.transaction_id) == (sibling.kind, sibling.reverses_id)
        assert (100, 0) == (shop.balance("giver").available, shop.balance("giver").transferred)
        assert (0, 0) == (shop.balance("taker").available, shop.balance("taker").transferred)
        assert lots == shop.loyalty.lots("giver")
        assert [] == shop.loyalty.lots("taker")
        before = shop.snapshot("giver", "taker")
        with pytest.raises(AlreadyReversed):
            shop.loyalty.reverse(other.transaction_id, key="undo-2")
        assert before == shop.snapshot("giver", "taker")
        shop.check("giver", "taker")

    def test_reverse_a_transfer_the_receiver_already_spent(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("giver", "taker")
        shop.loyalty.earn("giver", 100, key="order")
        shop.loyalty.earn("taker", 10, key="order-t")
        transfer = shop.loyalty.transfer("giver", "taker", 60, key="gift")
        shop.loyalty.spend("taker", 50, key="pay")
        shop.loyalty.reverse(transfer.outgoing.transaction_id, key="undo")
        assert (100, 0) == (shop.balance("giver").available, shop.balance("giver").debt)
        taker = shop.balance("taker")
        assert (0, 40, -40, 50) == (taker.available, taker.debt, taker.total, taker.spent)
        shop.check("giver", "taker")

    def test_reverse_an_earn_whose_points_are_held(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        [line] = [line for line in statement_lines(shop.loyalty, "m")
                  if line.kind is Kind.EARN]
        result = shop.loyalty.reverse(line.transaction_id, key="undo")
        assert (0, 60, 60, 0) == (result.balance.available, result.balance.held,
                                  result.balance.debt, result.balance.total)
        assert HoldStatus.OPEN == shop.loyalty.hold_info(hold_id).status
        capture = shop.loyalty.capture(hold_id, key="paid")
        assert (0, 0, 60, -60) == (capture.balance.available, capture.balance.held,
                                   capture.balance.debt, capture.balance.total)
        shop.check("m")

    def test_reverse_a_clawback(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 100, key="order")
        claw = shop.loyalty.clawback("m", 30, key="return")
        result = shop.loyalty.reverse(claw.transaction_id, key="undo")
        assert (30, 100, 100) == (result.points, result.balance.available,
                                  result.balance.earned)
        shop.check("m")

    def test_reverse_a_clawback_that_created_debt(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m", "n")
        shop.loyalty.earn("m", 30, key="order")
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (0, 20) == (claw.balance.available, claw.balance.debt)
        result = shop.loyalty.reverse(claw.transaction_id, key="undo")
        assert (30, 0, 30) == (result.balance.available, result.balance.debt,
                               result.balance.total)
        # debt already settled by a later earn comes back as points
        shop.loyalty.earn("n", 30, key="order-n")
        claw = shop.loyalty.clawback("n", 50, key="return-n")
        assert 15 == shop.loyalty.earn("n", 35, key="order-n2").balance.available
        result = shop.loyalty.reverse(claw.transaction_id, key="undo-n")
        assert (65, 0, 65) == (result.balance.available, result.balance.debt,
                               result.balance.total)
        shop.check("m", "n")

    @pytest.mark.parametrize(
        "kind", [Kind.EXPIRE, Kind.ACTIVATE, Kind.HOLD, Kind.RELEASE, Kind.REVERSE]
    )
    def test_not_reversible(self, storage: Storage, kind: Kind) -> None:
        shop = self.shop(storage, make_program(expiry=ExpiryPolicy(days=10)))
        shop.enrol("m")
        shop.loyalty.earn("m", 10, key="expiring")
        shop.later(dt.timedelta(days=11))
        shop.loyalty.run_due()
        shop.loyalty.earn("m", 10, key="pending",
                          activates_at=shop.clock.now() + dt.timedelta(days=1))
        shop.later(dt.timedelta(days=1))
        shop.loyalty.run_due()
        earn = shop.loyalty.earn("m", 10, key="plain")
        shop.loyalty.reverse(earn.transaction_id, key="undo")
        shop.loyalty.earn("m", 10, key="more")
        hold = shop.loyalty.hold("m", 5, key="cart", ttl=_TTL)
        shop.loyalty.void(hold.hold_id, key="abandoned")
        lines = statement_lines(shop.loyalty, "m")
        [target] = [line.transaction_id for line in lines if line.kind is kind]
        before = shop.snapshot("m")
        with pytest.raises(NotReversible) as info:
            shop.loyalty.reverse(target, key="undo-it")
        assert kind.value == info.value.details["kind"]
        assert before == shop.snapshot("m")

    def test_a_transaction_is_reversed_at_most_once(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 100, key="order")
        first = shop.loyalty.reverse(earn.transaction_id, key="undo")
        before = shop.snapshot("m")
        with pytest.raises(AlreadyReversed):
            shop.loyalty.reverse(earn.transaction_id, key="undo-2")
        with pytest.raises(TransactionNotFound):
            shop.loyalty.reverse(uuid.uuid4(), key="undo-3")
        assert before == shop.snapshot("m")
        assert first == shop.loyalty.reverse(earn.transaction_id, key="undo")

    def test_reads_by_id_named_by_their_member(self, storage: Storage) -> None:
        # a transaction, its reversal and its lots read by id and member (the reads a
        # distributed engine routes by the member): found as by id alone when the
        # member is theirs, not found when it is another's (a lot is only ever read
        # by its member)
        shop = self.shop(storage)
        shop.enrol("m")
        shop.enrol("n")
        earn = shop.loyalty.earn("m", 100, key="order")
        other = shop.loyalty.earn("n", 50, key="other")
        undo = shop.loyalty.reverse(earn.transaction_id, key="undo")
        tid = earn.transaction_id
        with storage.unit_of_work(shop.program.id) as uow:
            alone = uow.ledger.get_transaction(tid)
            assert alone is not None
            m = alone.member_id  # the member's key, as the store keeps it
            lot_ids = [mv.lot_id for mv in alone.movements]
            assert alone == uow.ledger.get_transaction(tid, member_id=m)
            assert uow.ledger.get_transaction(tid, member_id="nobody") is None
            assert undo.transaction_id == uow.ledger.find_reversal(tid) == (
                uow.ledger.find_reversal(tid, member_id=m))
            assert uow.ledger.find_reversal(tid, member_id="nobody") is None
            lots = uow.ledger.load_lots_by_id(lot_ids, member_id=m)
            assert [lot_ids[0]] == [lot.id for lot in lots] and m == lots[0].member_id
            assert [] == uow.ledger.load_lots_by_id(lot_ids, member_id="nobody")
            theirs = uow.ledger.get_transaction(other.transaction_id)
            assert theirs is not None
            n = theirs.member_id
            n_lots = [mv.lot_id for mv in theirs.movements]
            assert [] == uow.ledger.load_lots_by_id(lot_ids, member_id=n)
            # both members' ids asked of one: only its own come back, in the order given
            assert lots == uow.ledger.load_lots_by_id([*n_lots, *lot_ids], member_id=m)
            assert [n_lots[0]] == [lot.id for lot in uow.ledger.load_lots_by_id(
                [*lot_ids, *n_lots], member_id=n)]

    # -- adjustments ----------------------------------------------------------------------

    def test_adjustments(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("m")
        shop.go(2026, 1, 15, 10)
        credit = shop.loyalty.adjust("m", 50, key="goodwill", reason="late delivery")
        assert (Kind.ADJUST, 50, 50, 50, 0) == (
            credit.kind, credit.points, credit.balance.available, credit.balance.adjusted,
            credit.balance.earned)
        [lot] = shop.loyalty.lots("m")
        assert (50, utc(2027, 1, 31, 23), False) == (lot.amount, lot.expires_at, lot.pending)
        debit = shop.loyalty.adjust("m", -20, key="fix", reason="double credit")
        assert (-20, 30, 30) == (debit.points, debit.balance.available,
                                 debit.balance.adjusted)
        assert "double credit" == shop.loyalty.transaction(debit.transaction_id).reason
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.adjust("m", -31, key="too-much", reason="oops")
        for reason in ("", "   "):
            with pytest.raises(InvalidInput):
                shop.loyalty.adjust("m", 5, key="no-reason", reason=reason)
        assert before == shop.snapshot("m")
        shop.check("m")

    # -- transfer -------------------------------------------------------------------------

    def test_transfer_keeps_the_source_lots_expiry(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=L_EXPIRY))
        shop.enrol("giver", "taker")
        shop.go(2026, 1, 15, 10)
        shop.earn("giver", 30)
        shop.go(2026, 3, 10, 9)
        shop.earn("giver", 50)
        shop.go(2026, 6, 1, 12)
        result = shop.loyalty.transfer("giver", "taker", 60, key="gift", reason="family")
        assert (Kind.TRANSFER, -60, 20, -60) == (
            result.outgoing.kind, result.outgoing.points, result.outgoing.balance.available,
            result.outgoing.balance.transferred)
        assert (Kind.TRANSFER, 60, 60, 60, 0) == (
            result.incoming.kind, result.incoming.points, result.incoming.balance.available,
            result.incoming.balance.transferred, result.incoming.balance.earned)
        assert ((result.incoming.transaction_id,), (result.outgoing.transaction_id,)) == (
            result.outgoing.related_ids, result.incoming.related_ids)
        received = [(lot.amount, lot.remaining, lot.earned_at, lot.expires_at)
                    for lot in shop.loyalty.lots("taker")]
        assert [(30, 30, utc(2026, 6, 1, 10), utc(2027, 1, 31, 23)),
                (30, 30, utc(2026, 6, 1, 10), utc(2027, 3, 31, 22))] == received
        out_tx = shop.loyalty.transaction(result.outgoing.transaction_id)
        assert str(result.transfer_id) == out_tx.metadata["transfer_id"]
        shop.check("giver", "taker")

    def test_transfer_refusals_write_nothing(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("giver", "taker")
        shop.loyalty.earn("giver", 30, key="order")
        before = shop.snapshot("giver", "taker")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.transfer("giver", "taker", 31, key="gift")
        with pytest.raises(MemberNotFound):
            shop.loyalty.transfer("giver", "ghost", 10, key="gift-2")
        with pytest.raises(InvalidInput):
            shop.loyalty.transfer("giver", "giver", 10, key="gift-3")
        assert before == shop.snapshot("giver", "taker")
        with pytest.raises(MemberNotFound):
            shop.balance("ghost")

    # -- clawback -------------------------------------------------------------------------

    def test_clawback_debt_settled_by_a_later_earn(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 30, key="order")
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (Kind.CLAWBACK, -50, 0, 20, -20, 30 - 50) == (
            claw.kind, claw.points, claw.balance.available, claw.balance.debt,
            claw.balance.total, claw.balance.earned)
        before = shop.snapshot("m")
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 1, key="pay")
        assert before == shop.snapshot("m")
        earn = shop.loyalty.earn("m", 35, key="order-2")
        assert (15, 0, 15) == (earn.balance.available, earn.balance.debt, earn.balance.total)
        lot = shop.lot("m", lot_of(shop.loyalty.transaction(earn.transaction_id)))
        assert (35, 15) == (lot.amount, lot.remaining)
        shop.check("m")

    def test_clawback_debt_settled_by_activation(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(pending=PendingPolicy(days=14)))
        shop.enrol("m")
        claw = shop.loyalty.clawback("m", 20, key="return")
        assert (0, 20) == (claw.balance.available, claw.balance.debt)
        earn = shop.loyalty.earn("m", 50, key="order")
        assert (0, 50, 20) == (earn.balance.available, earn.balance.pending,
                               earn.balance.debt)
        shop.later(dt.timedelta(days=14))
        assert 1 == shop.loyalty.run_due().activated_lots
        balance = shop.balance("m")
        assert (30, 0, 0, 30) == (balance.available, balance.pending, balance.debt,
                                  balance.total)
        shop.check("m")

    def test_clawback_allow_negative(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(clawback=ClawbackPolicy.ALLOW_NEGATIVE))
        shop.enrol("m")
        shop.loyalty.earn("m", 30, key="order")
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (-20, 20, -20) == (claw.balance.available, claw.balance.debt,
                                  claw.balance.total)
        with pytest.raises(InsufficientPoints):
            shop.loyalty.spend("m", 1, key="pay")
        earn = shop.loyalty.earn("m", 35, key="order-2")
        assert (15, 0, 15) == (earn.balance.available, earn.balance.debt, earn.balance.total)
        shop.check("m")

    def test_clawback_pending_only(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(clawback=ClawbackPolicy.PENDING_ONLY))
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.loyalty.earn("m", 30, key="order-2",
                          activates_at=shop.clock.now() + dt.timedelta(days=14))
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (-30, 40, 0, 0, 40) == (
            claw.points, claw.balance.available, claw.balance.pending, claw.balance.debt,
            claw.balance.total)
        tx = shop.loyalty.transaction(claw.transaction_id)
        # only what was taken is booked against issued; the rest is written off, not a
        # ledger movement, and shown as the transaction's shortfall
        assert {Account.PENDING: -30, Account.ISSUED: 30} == {
            p.account: p.amount for p in tx.postings}
        assert 20 == tx.metadata["shortfall"]
        shop.check("m")

    def test_clawback_pending_only_earned_counts_what_was_taken(
            self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(clawback=ClawbackPolicy.PENDING_ONLY))
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.loyalty.earn("m", 30, key="order-2",
                          activates_at=shop.clock.now() + dt.timedelta(days=14))
        shop.loyalty.clawback("m", 80, key="return", metadata={"order": "o-1"})
        balance = shop.balance("m")
        # the member lost the 30 pending points only: earned 70 - 30
        assert (40, 40, 0) == (balance.earned, balance.total, balance.spent)
        assert balance.total == balance.earned - balance.spent - balance.expired
        as_of = shop.loyalty.balance("m", as_of=shop.clock.now())
        assert 40 == as_of.earned
        # nothing pending left: a second clawback takes nothing, writes off all of it
        claw = shop.loyalty.clawback("m", 5, key="return-2")
        tx = shop.loyalty.transaction(claw.transaction_id)
        assert ((), 5, 0) == (tx.postings, tx.metadata["shortfall"], claw.points)
        assert 40 == shop.balance("m").earned
        shop.check("m")

    def test_reversal_under_pending_only_keeps_what_was_spent_issued(
            self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(clawback=ClawbackPolicy.PENDING_ONLY))
        shop.enrol("m")
        earn = shop.loyalty.earn("m", 50, key="order")
        shop.loyalty.spend("m", 20, key="pay")
        back = shop.loyalty.reverse(earn.transaction_id, key="undo")
        tx = shop.loyalty.transaction(back.transaction_id)
        assert {Account.AVAILABLE: -30, Account.ISSUED: 30} == {
            p.account: p.amount for p in tx.postings}
        assert 20 == tx.metadata["shortfall"]
        balance = shop.balance("m")
        assert (20, 20, 0) == (balance.earned, balance.spent, balance.total)
        shop.check("m")

    def test_clawback_takes_available_before_pending(self, storage: Storage) -> None:
        shop = self.shop(storage)
        shop.enrol("m")
        shop.loyalty.earn("m", 40, key="order")
        shop.loyalty.earn("m", 30, key="order-2",
                          activates_at=shop.clock.now() + dt.timedelta(days=14))
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (0, 20, 0) == (claw.balance.available, claw.balance.pending,
                              claw.balance.debt)
        shop.check("m")

    def test_clawback_leaves_held_points_alone(self, storage: Storage) -> None:
        shop, hold_id = self._holding(storage)
        claw = shop.loyalty.clawback("m", 50, key="return")
        assert (0, 60, 10) == (claw.balance.available, claw.balance.held, claw.balance.debt)
        assert -60 == shop.loyalty.capture(hold_id, key="paid").points
        shop.check("m")

    def test_clawback_targets_the_lot_of_an_earn(self, storage: Storage) -> None:
        shop = self.shop(storage, make_program(expiry=ExpiryPolicy(days=100)))
        shop.enrol("m", "other")
        first = shop.earn("m", 40)
        shop.later(dt.timedelta(days=1))
        second_earn = shop.loyalty.earn("m", 30, key="order-2")
        second = lot_of(shop.loyalty.transaction(second_earn.transaction_id))
        shop.loyalty.clawback("m", 20, key="return", earn_id=second_earn.transaction_id)
        assert {first: 40, second: 10} == shop.remaining("m")
        shop.loyalty.clawback("m", 25, key="return-2",
                              earn_id=str(second_earn.transaction_id))
        assert {first: 25} == shop.remaining("m")
        other = shop.loyalty.earn("other", 5, key="order-o")
        before = shop.snapshot("m", "other")
        for earn_id in (other.transaction_id, uuid.uuid4()):
            with pytest.raises(TransactionNotFound):
                shop.loyalty.clawback("m", 5, key="return-3", earn_id=earn_id)
        assert before == shop.snapshot("m", "other")
        shop.check("m", "other")
