"""The rewards' service: redeem points for a reward's voucher, use it, cancel it, and
expire it with due work (``loyalty.rewards``).

A redemption is one write: the reward must be in the catalogue of the program version
in force, inside its window and for the member's tier; under the member's account lock
(so one member's redemptions take turns) the per-member limit is counted and the cost
spent in spend order; then one guarded write takes the reward's stock and global limit
(:meth:`~loyaltykit.storage.RewardStore.take`: concurrent redemptions never take more
than there is), and the voucher is issued with a code drawn like a referral code (a
drawn code that is taken is drawn again). Every refusal raises before anything is
written.

Cancelling an unused voucher reverses its spend (the points go back to the lots they
came from, with their expiry) and gives back its stock and its place in the limits.
An expired voucher gives back its item of stock but keeps counting against the
reward's global limit and the member's limit (it was redeemed; only the item was not
handed out); its points come back only if the reward says ``refund_on_expiry``.

Each change raises its domain event (:class:`~loyaltykit._rewards.RewardRedeemed`,
``VoucherUsed``, ``VoucherCancelled``, ``VoucherExpired``) after the points' own
transaction, so the outbox (:mod:`loyaltykit._services.reward_events`) records a
redemption's ``points.spent`` before its ``reward.redeemed``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable
from decimal import Decimal

import attrs

from loyaltykit._calendar import add_days, zone
from loyaltykit._errors import (
    InvalidInput,
    InvalidPayment,
    MemberNotFound,
    NotReversible,
    OutOfStock,
    RedemptionLimitReached,
    RewardNotAvailable,
    RewardNotFound,
    TierNotAllowed,
    VoucherAlreadyUsed,
    VoucherNotFound,
    VoucherNotUsable,
    shown,
)
from loyaltykit._events import OrderRecorded, PointsPosted
from loyaltykit._model import Kind, Transaction
from loyaltykit._pipeline import EventBus, Work
from loyaltykit._results import Redemption
from loyaltykit._rewards import (
    Availability,
    Reward,
    RewardPolicy,
    RewardRedeemed,
    Voucher,
    VoucherCancelled,
    VoucherExpired,
    VoucherStatus,
    VoucherUsed,
    availability,
    period_bounds,
    rolling_count,
    voucher_expires_at,
)
from loyaltykit._rules import CapPeriod
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService, lots_by_member
from loyaltykit._validate import check_member_id, check_reason, check_reward_id
from loyaltykit._values import check_key
from loyaltykit.storage import RewardChanges, UnitOfWork

__all__ = ["RewardService"]

#: The tiers' ``tier_of``: (tier name, earn multiplier) of a member at an instant.
TierOf = Callable[[UnitOfWork, str, dt.datetime, "Work | None"], tuple[str, Decimal | None]]


class RewardService:
    """Rewards of one program (see the module docstring); ``loyalty.rewards``."""

    def __init__(self, c: Context, ledger: LedgerService, *,
                 randbelow: Callable[[int], int] = secrets.randbelow) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger
        self._randbelow = randbelow
        #: the tiers' ``tier_of`` when the program has tiers (the facade wires it)
        self.tier_of: TierOf | None = None

    def subscribe(self, bus: EventBus) -> None:
        """Guard the redemptions' spends: a voucher's points come back only through the
        voucher (:meth:`cancel`, or expiry with ``refund_on_expiry``), so a direct
        ``reverse`` of its spend is refused (:class:`~loyaltykit.NotReversible`), and so
        is naming it as an order's payment (:class:`~loyaltykit.InvalidPayment`).
        Subscribed whatever the program version says, as vouchers outlive versions."""
        bus.subscribe(PointsPosted, self._on_posted)
        bus.subscribe(OrderRecorded, self._on_order)

    def _voucher_of(self, uow: UnitOfWork, tx: Transaction) -> Voucher | None:
        """The voucher whose redemption spent ``tx``, or None."""
        if tx.kind is not Kind.SPEND or "voucher_id" not in tx.metadata:
            return None
        for voucher in uow.rewards.member_vouchers(tx.member_id):
            if voucher.transaction_id == tx.id:
                return voucher
        return None

    def _on_posted(self, work: Work, event: PointsPosted) -> None:
        tx = event.transaction
        if tx.kind is not Kind.REVERSE or tx.reverses_id is None:
            return
        if tx.reverses_id in work.scratch.get("rewards.reversing", ()):
            return  # the voucher's own cancel or refund on expiry
        # a reversal is its original's member's: read by the member (routed)
        original = work.uow.ledger.get_transaction(tx.reverses_id, member_id=tx.member_id)
        voucher = None if original is None else self._voucher_of(work.uow, original)
        if voucher is not None:
            raise NotReversible(
                "the transaction redeemed a reward; cancel its voucher to give the "
                "points back", transaction_id=str(tx.reverses_id), code=voucher.code)

    def _on_order(self, work: Work, event: OrderRecorded) -> None:
        for paid in event.payments:
            voucher = self._voucher_of(work.uow, paid)
            if voucher is not None:
                raise InvalidPayment(
                    "paid_with: the transaction redeemed a reward, it pays no order",
                    order_id=event.record.order_id, transaction_id=str(paid.id),
                    code=voucher.code)

    def _policy(self) -> RewardPolicy:
        policy = self.program.rewards
        if policy is None:
            raise InvalidInput("the program has no rewards", program_id=self.program.id)
        return policy

    # -- redeem -----------------------------------------------------------------------------

    def redeem(self, member_id: str, reward_id: str, *, key: str,
               at: dt.datetime | None = None) -> Redemption:
        """Spend a reward's cost in points and issue its voucher, in one write.

        Refused, with nothing written: a reward the program version in force does not
        have (:class:`~loyaltykit.RewardNotFound`), outside its window
        (:class:`~loyaltykit.RewardNotAvailable`), for other tiers
        (:class:`~loyaltykit.TierNotAllowed`), past the member's limit in the period
        (:class:`~loyaltykit.RedemptionLimitReached`), too few points
        (:class:`~loyaltykit.InsufficientPoints`), no stock left or the global limit
        reached (:class:`~loyaltykit.OutOfStock`). The same key with the same request
        returns the first result.
        """
        policy = self._policy()
        member_id = check_member_id(member_id)
        reward_id = check_reward_id(reward_id)
        key = check_key(key)
        when = self.c.instant(at)
        request = self.c.request("redeem", at, when, member_id=member_id, reward_id=reward_id)
        wallet = policy.wallet or self.program.default_wallet

        def apply(work: Work) -> Redemption:
            uow, ledger = work.uow, work.ledger
            reward = policy.by_id.get(reward_id)
            if reward is None:
                raise RewardNotFound("the program has no such reward", reward_id=reward_id)
            state = availability(reward, when)
            if state is not Availability.AVAILABLE:
                raise RewardNotAvailable("the reward cannot be redeemed now",
                                         reward_id=reward_id, when=state.value,
                                         at=when.isoformat())
            book = self._ledger.books(uow, ledger, wallet, [member_id],
                                      need_lots=True)[member_id]
            if reward.tiers:
                tier = self.tier_of(uow, member_id, when, work)[0] \
                    if self.tier_of is not None else None
                if tier not in reward.tiers:
                    raise TierNotAllowed("the reward is for members of other tiers",
                                         reward_id=reward_id, tier=tier,
                                         tiers=sorted(reward.tiers))
            self._check_limit(uow, reward, member_id, when)
            voucher_id = self.c.new_id()
            tx = ledger.spend(book, reward.cost, reason=f"reward {reward.id}",
                              metadata={"reward_id": reward.id,
                                        "voucher_id": str(voucher_id)})
            if not uow.rewards.take(reward.id, reward.stock, reward.global_limit):
                raise OutOfStock("the reward is out of stock", reward_id=reward_id,
                                 stock=reward.stock, global_limit=reward.global_limit)
            code = policy.code.draw(self._randbelow)
            voucher = Voucher(
                id=voucher_id, program_id=self.program.id, code=code,
                shown=policy.code.display(code), member_id=member_id, reward_id=reward.id,
                version=self.program.version, wallet=wallet, cost=reward.cost,
                transaction_id=tx.id, status=VoucherStatus.ISSUED, issued_at=when,
                expires_at=voucher_expires_at(reward, when, self.program.time_zone))
            part = work.part(RewardChanges)
            part.vouchers[voucher_id] = voucher
            part.new_vouchers.add(voucher_id)
            work.publish(RewardRedeemed(voucher, reward))  # after its spend's event
            balance = self._ledger.tx_result(uow, ledger, book, tx).balance
            return Redemption(voucher=voucher, transaction_id=tx.id, balance=balance)

        return self.c.pipeline.run(key, request, when, member_id, apply, redraw="code")

    def _check_limit(self, uow: UnitOfWork, reward: Reward, member_id: str,
                     when: dt.datetime) -> None:
        """Refuse past the member's limit (counted under the member's lock)."""
        limit = reward.per_member
        if limit is None:
            return
        tz = self.program.time_zone
        start, end = period_bounds(limit, when, tz)
        count = uow.rewards.count_redeemed(member_id, reward.id, start, end)
        if count < limit.count and limit.period is CapPeriod.ROLLING:
            # redeemed out of order (backdated): the windows of later redemptions that
            # hold it must keep the limit too; read them only if there are any
            horizon = add_days(when, (limit.days or 0) + 1, zone(tz))
            if uow.rewards.count_redeemed(member_id, reward.id, end, horizon):
                issued = [v.issued_at for v in uow.rewards.member_vouchers(member_id)
                          if v.reward_id == reward.id
                          and v.status is not VoucherStatus.CANCELLED]
                count = rolling_count(limit, when, tz, issued)
        if count >= limit.count:
            raise RedemptionLimitReached(
                "the member has redeemed the reward as often as the limit allows",
                reward_id=reward.id, count=limit.count, period=limit.period.value)

    # -- a voucher's life -------------------------------------------------------------------

    def check_code(self, text: str) -> str:
        """Normalise a typed voucher code and return its stored form, or raise
        :class:`~loyaltykit.InvalidCode` if it cannot be one (a typo is caught by the
        check character). Reads no storage."""
        return self._policy().code.parse(text)

    def _usable(self, uow: UnitOfWork, code: str, when: dt.datetime) -> Voucher:
        """The issued voucher ``code``, usable at ``when``; else the typed refusal."""
        voucher = uow.rewards.get_voucher(code)
        if voucher is None:
            raise VoucherNotFound("no voucher with this code", code=code)
        status = voucher.status_at(when)
        if status is VoucherStatus.USED:
            raise VoucherAlreadyUsed("the voucher was used", code=code,
                                     status=status.value, order_id=voucher.order_id)
        if status is not VoucherStatus.ISSUED:
            raise VoucherNotUsable(f"the voucher is {status.value}", code=code,
                                   status=status.value)
        if when < voucher.issued_at:
            raise InvalidInput("at is before the voucher was issued", code=code,
                               at=when.isoformat(),
                               issued_at=voucher.issued_at.isoformat())
        return voucher

    def use(self, code: str, *, order_id: str, key: str,
            at: dt.datetime | None = None) -> Voucher:
        """Mark a voucher used on the order ``order_id`` (the shop's id) and return it.

        ``code`` is normalised first (:class:`~loyaltykit.InvalidCode` if malformed).
        Refused, with nothing written: an unknown code
        (:class:`~loyaltykit.VoucherNotFound`), a used one
        (:class:`~loyaltykit.VoucherAlreadyUsed`), a cancelled one or one whose expiry
        has come at ``at``, even before due work marked it
        (:class:`~loyaltykit.VoucherNotUsable`)."""
        parsed = self.check_code(code)
        order_id = check_member_id(order_id, "order_id")
        key = check_key(key)
        when = self.c.instant(at)
        request = self.c.request("use_voucher", at, when, code=parsed, order_id=order_id)

        def apply(work: Work) -> Voucher:
            voucher = self._usable(work.uow, parsed, when)
            used = attrs.evolve(voucher, status=VoucherStatus.USED, used_at=when,
                                order_id=order_id)
            work.part(RewardChanges).vouchers[voucher.id] = used
            work.publish(VoucherUsed(used, self._reward(work.uow, voucher)))
            return used

        return self.c.pipeline.run(key, request, when, None, apply)

    def cancel(self, code: str, *, key: str, at: dt.datetime | None = None,
               reason: str = "") -> Voucher:
        """Cancel an unused voucher and return it: its spend is reversed (the points go
        back to the lots they came from, with their original expiry), and its item of
        stock and its place in the global and per-member limits are given back.

        Refused like :meth:`use`, with nothing written; a used voucher raises
        :class:`~loyaltykit.VoucherAlreadyUsed`."""
        parsed = self.check_code(code)
        key = check_key(key)
        reason = check_reason(reason)
        when = self.c.instant(at)
        request = self.c.request("cancel_voucher", at, when, code=parsed, reason=reason)

        def apply(work: Work) -> Voucher:
            uow = work.uow
            voucher = self._usable(uow, parsed, when)
            refund = self._refund(work, [voucher],
                                  reason or f"voucher {voucher.shown} cancelled").get(voucher.id)
            uow.rewards.release(voucher.reward_id, 1, 1)
            cancelled = attrs.evolve(voucher, status=VoucherStatus.CANCELLED,
                                     cancelled_at=when,
                                     refund_id=None if refund is None else refund.id)
            work.part(RewardChanges).vouchers[voucher.id] = cancelled
            work.publish(VoucherCancelled(cancelled, self._reward(uow, voucher),
                                          0 if refund is None else refund.points, reason))
            return cancelled

        return self.c.pipeline.run(key, request, when, None, apply)

    def _refund(self, work: Work, vouchers: list[Voucher], reason: str
                ) -> dict[uuid.UUID, Transaction]:
        """Reverse the spends of ``vouchers`` (their members' books locked in member
        order, wallet by wallet); return the reversal by voucher id. A spend already
        reversed (before direct reverses of it were refused) is left as it is."""
        uow, ledger = work.uow, work.ledger
        out: dict[uuid.UUID, Transaction] = {}
        by_wallet: dict[str, list[Voucher]] = {}
        for voucher in vouchers:
            by_wallet.setdefault(voucher.wallet, []).append(voucher)
        for wallet, found in sorted(by_wallet.items()):
            spends = {v.id: uow.ledger.get_transaction(v.transaction_id, member_id=v.member_id)
                      for v in found}
            books = self._ledger.books(
                uow, ledger, wallet, sorted({v.member_id for v in found}), need_lots=True,
                extra_lots=lots_by_member(tx for tx in spends.values() if tx is not None))
            for voucher in found:
                tx = spends[voucher.id]
                if tx is None or uow.ledger.find_reversal(
                        tx.id, member_id=tx.member_id) is not None:
                    continue
                work.scratch.setdefault("rewards.reversing", set()).add(tx.id)
                out[voucher.id] = ledger.reverse(
                    books[voucher.member_id], tx, reason=reason,
                    metadata={"reward_id": voucher.reward_id,
                              "voucher_id": str(voucher.id)})
        return out

    # -- reads ------------------------------------------------------------------------------

    def voucher(self, code: str) -> Voucher:
        """Return the voucher with this code (normalised first), as stored."""
        parsed = self.check_code(code)
        with self.c.read() as uow:
            found = uow.rewards.get_voucher(parsed)
        if found is None:
            raise VoucherNotFound("no voucher with this code", code=parsed)
        return found

    def vouchers(self, member_id: str, status: VoucherStatus | None = None) -> list[Voucher]:
        """Return the member's vouchers, oldest first (:class:`~loyaltykit.MemberNotFound`
        for an id not enrolled); with ``status``, only those
        stored with it (an issued voucher past its expiry stays ``issued`` until due
        work marks it: see :meth:`~loyaltykit.Voucher.status_at`)."""
        member_id = check_member_id(member_id)
        if status is not None and not isinstance(status, VoucherStatus):
            raise InvalidInput("status must be a VoucherStatus or None", status=shown(status))
        with self.c.read() as uow:
            if uow.ledger.get_member(member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            found = uow.rewards.member_vouchers(member_id)
        return [v for v in found if status is None or v.status is status]

    def stock(self, reward_id: str) -> int | None:
        """How many of the reward are left to redeem (None: no stock kept) under the
        program version in force: its ``stock`` less the vouchers issued or used."""
        reward_id = check_reward_id(reward_id)
        reward = self._policy().by_id.get(reward_id)
        if reward is None:
            raise RewardNotFound("the program has no such reward", reward_id=reward_id)
        if reward.stock is None:
            return None
        with self.c.read() as uow:
            held, _ = uow.rewards.counters(reward_id)
        return max(reward.stock - held, 0)

    # -- due work ---------------------------------------------------------------------------

    def due(self, at: dt.datetime, batch_size: int, workers: int) -> dict[str, int]:
        """Expire the issued vouchers whose expiry has come by ``at``, batch by batch
        (each its own unit of work): their items of stock go back, and their points
        too where the reward says ``refund_on_expiry`` (the reversal is dated ``at``)."""
        totals = {"expired_vouchers": 0, "refunded_vouchers": 0}

        def batch(work: Work) -> tuple[int, int]:
            uow = work.uow
            due = uow.rewards.due_vouchers(at, batch_size)
            if not due:
                return 0, 0
            refunds = [v for v in due if self._refunds(uow, v)]
            refunded = self._refund(work, refunds, "voucher expired") if refunds else {}
            released: dict[str, int] = {}
            for voucher in due:
                released[voucher.reward_id] = released.get(voucher.reward_id, 0) + 1
            for reward_id, n in sorted(released.items()):
                uow.rewards.release(reward_id, n, 0)
            part = work.part(RewardChanges)
            for voucher in due:  # one guarded executemany, one of the outbox: set-based
                refund = refunded.get(voucher.id)
                expired = part.vouchers[voucher.id] = attrs.evolve(
                    voucher, status=VoucherStatus.EXPIRED, expired_at=voucher.expires_at,
                    refund_id=None if refund is None else refund.id)
                work.publish(VoucherExpired(expired, self._reward(uow, voucher),
                                            0 if refund is None else refund.points))
            return len(due), len(refunded)

        while True:  # a batch retried after a conflict is counted once
            expired, refunded = self.c.pipeline.batch(at, batch, retry=True,
                                                      what="voucher expiry")
            totals["expired_vouchers"] += expired
            totals["refunded_vouchers"] += refunded
            if expired < batch_size:
                return totals

    def _reward(self, uow: UnitOfWork, voucher: Voucher) -> Reward | None:
        """The reward the voucher was redeemed for, in its program version."""
        policy = self.c.version(voucher.version, uow).rewards
        return policy.by_id.get(voucher.reward_id) if policy is not None else None

    def _refunds(self, uow: UnitOfWork, voucher: Voucher) -> bool:
        """True if the reward the voucher was redeemed for refunds on expiry."""
        reward = self._reward(uow, voucher)
        return reward is not None and reward.refund_on_expiry

