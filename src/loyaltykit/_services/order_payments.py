"""Orders paid partly with points, the orders' side (DESIGN §7): which payments an
order may name, what they still pay after partial refunds, the money-paid part of each
line an order earns on, and the refund a return or cancellation posts.

The policy and its arithmetic are :mod:`loyaltykit._payment`'s; the checkout (quote,
hold, capture) is :class:`~loyaltykit._services.payments.PaymentService`'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from loyaltykit._errors import InvalidInput, InvalidPayment, TransactionNotFound
from loyaltykit._ledger import Ledger, MemberBook
from loyaltykit._model import Account, Kind, OrderRecord, Transaction
from loyaltykit._orders import Order
from loyaltykit._payment import PaymentPolicy, allocate, split_refund
from loyaltykit.storage import UnitOfWork

__all__ = ["RefundPlan", "money_paid_by", "points_of", "read_payments", "still_paying"]


def read_payments(uow: UnitOfWork, payments: Sequence[uuid.UUID], member_id: str,
                  wallet: str, order_id: str) -> list[Transaction]:
    """The transactions ``paid_with`` names for the order ``order_id``, read under the
    member's lock: spends or captures of the member's ``wallet``, none reversed and none
    paying another order (one payment's points go back once)."""
    paid_txs = []
    for pid in payments:
        # read by the member: another member's transaction is not found either
        paid = uow.ledger.get_transaction(pid, member_id=member_id)
        if paid is None or paid.member_id != member_id or paid.wallet != wallet:
            raise TransactionNotFound("no such payment of this member's wallet",
                                      transaction_id=str(pid), member_id=member_id)
        if paid.kind not in (Kind.SPEND, Kind.CAPTURE):
            raise InvalidInput("paid_with must name spend or capture transactions",
                               transaction_id=str(pid), kind=paid.kind.value)
        if uow.ledger.find_reversal(pid, member_id=member_id) is not None:
            raise InvalidPayment("paid_with: the payment was reversed",
                                 order_id=order_id, transaction_id=str(pid))
        paid_txs.append(paid)
    if paid_txs:
        named = set(payments)
        for other in uow.orders.load_orders(member_id):
            both = named.intersection(other.payments)
            if both and other.order_id != order_id:
                raise InvalidPayment("paid_with: the payment already pays another order",
                                     order_id=order_id, other_order_id=other.order_id,
                                     transaction_id=str(min(both)))
    return paid_txs


def still_paying(uow: UnitOfWork, record: OrderRecord, payments: Sequence[Transaction]
                 ) -> tuple[list[Transaction], int]:
    """The order's ``payments`` not reversed outside it, and the points they still pay
    after the partial refunds kept on the order."""
    live = [t for t in payments
            if uow.ledger.find_reversal(t.id, member_id=t.member_id) is None]
    return live, points_of(live) - sum(record.refunded.get(t.id, 0) for t in live)


def money_paid_by(policy: PaymentPolicy | None, order: Order,
                  points: int) -> list[Decimal] | None:
    """The money-paid part of each line of ``order`` when ``points`` paid for the rest
    (their value allocated pro rata to the lines' nets, to the cent, largest remainder
    first); None when the order earns on its whole nets."""
    if policy is None or policy.earn_on_points_paid or points <= 0:
        return None
    nets = [line.net for line in order.lines]
    paid = min(policy.value(points), sum(nets, Decimal(0)))
    return [net - part for net, part in zip(nets, allocate(paid, nets), strict=True)]


def points_of(payments: Iterable[Transaction]) -> int:
    """The points ``payments`` (spends or captures) redeemed."""
    return sum(t.amount(Account.REDEEMED) for t in payments)


@attrs.define
class RefundPlan:
    """What a return or cancellation gives back of the points that paid for an order.

    ``live`` are its payments not reversed outside the order, ``refunded`` the points
    partial returns gave back of each (kept on the order), ``points_back`` /
    ``money_back`` this return's refund (money: the goods value returned less the
    points' value; None when the order's program version has no payment policy and
    points paid for it), ``points_after`` the points still paying for what is kept.
    """

    live: list[Transaction]
    refunded: dict[uuid.UUID, int]
    points_back: int
    money_back: Decimal | None
    points_after: int
    cancel: bool

    @classmethod
    def make(cls, uow: UnitOfWork, record: OrderRecord, policy: PaymentPolicy | None,
             payments: Sequence[Transaction], before: Order, after: Order, *,
             cancel: bool) -> RefundPlan:
        live, left = still_paying(uow, record, payments)
        refunded = dict(record.refunded)
        returned = before.net_goods - after.net_goods
        everything = cancel or not after.lines
        if policy is not None and payments:
            back, money = split_refund(policy, returned, before.net_goods, left,
                                       everything=everything)
        elif payments:  # no policy: only a cancellation gives the points back
            back, money = (left if cancel else 0), None
        else:
            back, money = 0, returned
        return cls(live, refunded, back, money, left - back, cancel)

    def apply(self, ledger: Ledger, book: MemberBook, reason: str,
              order_id: str) -> list[Transaction]:
        """Post the refund: payments are given back last first; one never refunded
        before is reversed whole on a cancellation (as before partial refunds)."""
        done: list[Transaction] = []
        left = self.points_back
        meta = {"order_id": order_id}
        for paid in reversed(self.live):
            if left <= 0:
                break
            already = self.refunded.get(paid.id, 0)
            rest = paid.amount(Account.REDEEMED) - already
            n = min(rest, left)
            if n <= 0:
                continue
            left -= n
            if self.cancel and already == 0 and n == rest:
                done.append(ledger.reverse(book, paid, reason=reason, metadata=meta))
            else:
                done.append(ledger.refund(book, paid, n, already=already, reason=reason,
                                          metadata=meta))
                self.refunded[paid.id] = already + n
        done.reverse()
        return done
