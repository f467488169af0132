"""The points-as-payment service: what a cart may pay in points, and the checkout's
hold -> capture (on payment) -> release (on abandonment).

The policy is the program version's ``payments`` (:class:`~loyaltykit.PaymentPolicy`,
in force when the order is placed); its arithmetic lives in :mod:`loyaltykit._payment`.
Holds are the ledger's own (:meth:`~loyaltykit.Loyalty.hold`): this service checks the
points against the policy first, so a refused payment writes nothing. The capture
transaction then goes to :meth:`~loyaltykit.Loyalty.record_order` as ``paid_with``;
what the order earns and what a return gives back is the orders' business.
"""

from __future__ import annotations

import datetime as dt
import uuid

from loyaltykit._errors import InvalidPayment, MemberNotFound
from loyaltykit._orders import Order, check_order
from loyaltykit._payment import PaymentPolicy, PaymentQuote
from loyaltykit._payment import quote as quote_cart
from loyaltykit._results import HoldResult, TransactionResult
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._validate import check_member_id
from loyaltykit._values import Money
from loyaltykit.storage import UnitOfWork

__all__ = ["DEFAULT_TTL", "PaymentService"]

#: How long a checkout's hold lasts unless told otherwise.
DEFAULT_TTL = dt.timedelta(minutes=15)


class PaymentService:
    """Points as payment for one program (see the module docstring)."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger

    def _policy(self, uow: UnitOfWork, order: Order, wallet: str) -> PaymentPolicy:
        """The payment policy of the program version in force when ``order`` is placed."""
        at = self.c.instant(order.placed_at, "placed_at")
        state = uow.ledger.load_member(order.member_id, (wallet,), at, lock=False)
        if state is None or wallet not in state.accounts:
            raise MemberNotFound("member is not enrolled", member_ids=[order.member_id])
        policy = None
        if state.version is not None:
            policy = self.c.version(state.version, uow).payments
        if policy is None:
            raise InvalidPayment("the program takes no points as payment (it has no "
                                 "payments policy)", program_id=self.program.id)
        return policy

    def quote(self, order: Order, *, wallet: str | None = None) -> PaymentQuote:
        """How many points ``order.member_id`` may pay for the cart ``order`` with:
        the usable range (minimum, maximum, step) and its money value, under the
        payment policy in force when the order is placed. Writes nothing.

        When nothing is usable (the member has fewer points than the minimum, or the
        cart's share of goods allows fewer) the quote says so: ``usable`` is False,
        ``max_points`` 0 and ``reason`` tells why. Raises
        :class:`~loyaltykit.InvalidPayment` if the program takes no points as payment.
        """
        order = check_order(self.program.currency, order)
        check_member_id(order.member_id)
        wallet_ = self.program.wallet(wallet)
        now = self.c.now()
        with self.c.read() as uow:
            policy = self._policy(uow, order, wallet_)
            lots = uow.ledger.load_lots(wallet_, [order.member_id])
            holds = uow.ledger.load_open_holds(wallet_, [order.member_id])
        # spendable now: expired lots not yet posted by due work do not count, and a
        # lot's held points come back when a stale hold is released
        stale: dict[uuid.UUID, int] = {}
        for hold in holds:
            if hold.expires_at <= now:
                for alloc in hold.allocations:
                    stale[alloc.lot_id] = stale.get(alloc.lot_id, 0) + alloc.points
        available = 0
        for lot in lots:
            if lot.pending and (lot.activates_at is None or lot.activates_at > now):
                continue
            if lot.expires_at is not None and lot.expires_at <= now:
                continue
            available += lot.remaining - lot.held + stale.get(lot.id, 0)
        return quote_cart(policy, order.member_id, order.id,
                          Money(order.net_goods, order.currency), available)

    def hold(
        self,
        order: Order,
        points: int,
        *,
        key: str,
        ttl: dt.timedelta = DEFAULT_TTL,
        at: dt.datetime | None = None,
        wallet: str | None = None,
    ) -> HoldResult:
        """Reserve ``points`` of ``order.member_id`` to pay for ``order`` at checkout
        (a ledger hold for ``ttl``; its metadata names the order). The points must keep
        the payment policy (whole steps, the minimum, the cart's share of goods), else
        :class:`~loyaltykit.InvalidPayment` and nothing is written. Capture it with
        :meth:`capture` once the order is paid and pass the capture's transaction id to
        :meth:`~loyaltykit.Loyalty.record_order` as ``paid_with``; :meth:`release` it
        if the checkout is abandoned (due work releases it once ``ttl`` has passed)."""
        order = check_order(self.program.currency, order)
        check_member_id(order.member_id)
        wallet_ = self.program.wallet(wallet)
        with self.c.read() as uow:
            policy = self._policy(uow, order, wallet_)
        if isinstance(points, int) and not isinstance(points, bool):
            problem = policy.problem(points, order.net_goods)
            if problem is not None:
                raise InvalidPayment(problem[0], order_id=order.id, **problem[1])
        return self._ledger.hold(order.member_id, points, key=key, ttl=ttl, at=at,
                                 wallet=wallet_, reason=f"payment for order {order.id}",
                                 metadata={"order_id": order.id})

    def capture(self, hold_id: uuid.UUID | str, *, key: str,
                at: dt.datetime | None = None) -> TransactionResult:
        """Redeem a checkout's hold whole, once the order is paid: the points are spent
        (the transaction to pass as ``paid_with``)."""
        return self._ledger.capture(hold_id, key=key, at=at)

    def release(self, hold_id: uuid.UUID | str, *, key: str,
                at: dt.datetime | None = None) -> TransactionResult:
        """Give a checkout's held points back (the checkout was abandoned)."""
        return self._ledger.void(hold_id, key=key, at=at, reason="checkout abandoned")
