"""The orders' service: quotes, recorded orders and events, returns, cancellations.

An order is priced with the rules of the program version in force when it was placed
(its member's tier, caps, stamp cards and first-order status then) and its points are
awarded as one earn; a return re-prices the order as it then stands with the same
rules and claws the difference back. Raises :class:`~loyaltykit._events.OrderRecorded`
and :class:`~loyaltykit._events.OrderReturned` for the capabilities that react to
orders (tiers, referrals).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs

from loyaltykit._activity import Activity, Retention
from loyaltykit._copy import evolve
from loyaltykit._errors import (
    DuplicateKey,
    InvalidEvent,
    InvalidInput,
    InvalidOrder,
    InvalidPayment,
    InvalidReturn,
    LoyaltyError,
    MemberNotFound,
    OrderAlreadyRecorded,
    OrderCancelled,
    OrderNotFound,
    StorageError,
    shown,
)
from loyaltykit._events import OrderRecorded, OrderReturned
from loyaltykit._ledger import Ledger, MemberBook
from loyaltykit._model import (
    IdempotencyRecord,
    MemberState,
    OrderRecord,
    OrderStatus,
)
from loyaltykit._orders import MAX_QUANTITY, Event, Order, check_order
from loyaltykit._pipeline import Work
from loyaltykit._program import Program
from loyaltykit._results import (
    EventResult,
    OrderResult,
    ReturnResult,
    TransactionResult,
    decode_order_result,
    encode_order_result,
)
from loyaltykit._rules import (
    Evaluation,
    MemberContext,
    StampCardRule,
    UsageQuery,
    evaluate_event,
    evaluate_order,
    reevaluate_order,
    rewards_of,
    stamp_card_ids,
    usage_queries,
    usage_rows,
)
from loyaltykit._rules.facts import checked_context
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._services.order_payments import (
    RefundPlan,
    money_paid_by,
    points_of,
    read_payments,
    still_paying,
)
from loyaltykit._services.preload import MemberReads, member_reads
from loyaltykit._validate import check_id, check_json, check_member_id, check_reason
from loyaltykit._values import Money, check_key, check_points
from loyaltykit.storage import OrderChanges, UnitOfWork

__all__ = ["ORDER_KEY", "OrderKey", "OrderService", "TierOf", "order_request"]

ORDER_KEY = "order:"  # the prefix of record_order's default keys

#: The member's (tier name, earn multiplier) at an instant, for pricing (wired by the
#: facade to the tiers capability; the :class:`Work` of a write, None for a quote).
TierOf = Callable[[UnitOfWork, str, dt.datetime, "Work | None"], tuple[str, Decimal | None]]


@attrs.frozen
class _Priced:
    """What pricing an order or event read: the version in force, the member's context, its
    caps' usage rows and stamp counts, its counters and what they keep."""

    program: Program
    context: MemberContext
    usage: Sequence[Any]
    stamps: dict[str, int]
    activity: Activity
    kept: Retention


@attrs.frozen
class _Settled:
    """A return's stamp-card settlement: the rewards the returned order keeps per card,
    and the other orders that give fills back with what they keep per card."""

    keep: dict[str, tuple[int, int]]
    others: tuple[tuple[OrderRecord, dict[str, tuple[int, int]]], ...]


def _withdrawn(before: tuple[str, ...], after: tuple[str, ...]) -> tuple[str, ...]:
    left = list(after)
    gone = []
    for reward in before:
        if reward in left:
            left.remove(reward)
        else:
            gone.append(reward)
    return tuple(gone)


def _replay_order(uow: UnitOfWork, text: str) -> OrderResult:
    """Rebuild a stored :class:`OrderResult` from its order's row (the result stored
    with the key holds only what the row does not)."""
    data = json.loads(text)
    order_id = data.get("order_id")
    stored = uow.orders.get_order(order_id) if isinstance(order_id, str) else None
    if stored is None:  # pragma: no cover - written in the key's unit of work
        raise StorageError("the recorded order of an idempotency key is missing",
                           order_id=order_id)
    return decode_order_result(data, stored)


def _order_recorded(exc: DuplicateKey) -> LoyaltyError | None:
    """Another key's order with this id is not a race a retry resolves."""
    if "order_id" in exc.details:
        return OrderAlreadyRecorded("an order with this id is already recorded",
                                    order_id=exc.details["order_id"])
    return None


def order_request(placed: dict[str, Any], wallet_: str,
                  payments: Sequence[uuid.UUID] = ()) -> dict[str, Any]:
    """The request :meth:`OrderService.record_order`'s key fingerprints: the order
    (``placed``: ``order.to_dict()``), its wallet and the payments' ids."""
    return {"op": "record_order", "order": placed, "wallet": wallet_,
            "paid_with": [str(p) for p in payments]}


@attrs.frozen
class OrderKey:
    """An order under its default key: its row is the key's record (one row, not two)."""

    order_id: str

    def lookup(self, uow: UnitOfWork, key: str) -> IdempotencyRecord | None:
        """The record of an order's default key: the order's row, or for an order
        recorded without one there (before migration 0005) the key's own record."""
        found = uow.orders.get_order(self.order_id)
        return None if found is None else self.record_of(uow, key, found)

    def record_of(self, uow: UnitOfWork, key: str, found: OrderRecord) -> IdempotencyRecord:
        """The record of the default ``key`` of the order stored as ``found`` (see
        :meth:`lookup`); :class:`~loyaltykit.OrderAlreadyRecorded` if it was recorded
        under another key."""
        if found.fingerprint is not None and found.result is not None:
            return IdempotencyRecord(key=key, fingerprint=found.fingerprint,
                                     result=found.result, created_at=found.created_at,
                                     member_id=found.member_id)
        record = uow.keys.get_idempotency(key)
        if record is None:  # recorded under another key
            raise OrderAlreadyRecorded("an order with this id is already recorded",
                                       order_id=self.order_id)
        return record

    def keep(self, work: Work, fingerprint: str, result: str) -> None:
        orders = work.part(OrderChanges).orders
        # the row was built (and checked) by this write: copied without checking again
        orders[self.order_id] = evolve(orders[self.order_id], fingerprint=fingerprint,
                                       result=result)


class OrderService:
    """Orders and events of one program (see the module docstring)."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger
        #: the member's tier for pricing; None: the member's ``tier`` attribute
        self.tier_of: TierOf | None = None
        # per (version, event type; None: orders): the stamp cards a source can stamp,
        # and whether it asks for usage rows at all. Both follow from the version's
        # rules alone (the instant only moves the periods asked for), so a version's
        # orders ask once, not each order (working out periods that no cap needs is a
        # time-zone conversion)
        self._plans: dict[tuple[int, str | None], tuple[tuple[str, ...], bool]] = {}
        c.pipeline.reserve(ORDER_KEY, "record_order")

    def _member_state(self, uow: UnitOfWork, member_id: str, wallet: str, at: dt.datetime,
                      *, lock: bool, reads: MemberReads | None = None) -> MemberState:
        """The member, its ``wallet`` and default-wallet accounts (locked with ``lock``;
        the default wallet's row keeps the earning counters) and the version in force
        at ``at``: one read, or none with a batch's ``reads`` of the member (locked)."""
        default = self.program.default_wallet
        wallets = (wallet,) if wallet == default else tuple(sorted((wallet, default)))
        state = (reads.member_state(wallets, at) if reads is not None
                 else uow.ledger.load_member(member_id, wallets, at, lock=lock))
        if state is None or wallet not in state.accounts:
            raise MemberNotFound("member is not enrolled", member_ids=[member_id])
        return state

    def _activity(self, uow: UnitOfWork, state: MemberState, kept: Retention,
                  queries: Sequence[UsageQuery] = ()) -> Activity:
        """The member's earning counters, rebuilt from its orders and events when the
        stored ones cannot answer ``queries`` (or keep less than ``kept`` asks)."""
        member_id = state.member.member_id
        default = state.accounts.get(self.program.default_wallet)
        activity = Activity.load(default.activity if default else None)
        if activity is not None and activity.covers(queries, kept):
            return activity
        if activity is not None:
            kept = activity.widened(kept)
        return Activity.rebuild(uow.orders.load_usage(member_id), uow.orders.load_orders(member_id),
                                kept, since=None)

    def _keep_activity(self, ledger: Ledger, state: MemberState, activity: Activity) -> None:
        default = state.accounts.get(self.program.default_wallet)
        if default is not None:
            ledger.set_activity(default, activity.dump())

    def _pricing(
        self, uow: UnitOfWork, state: MemberState, at: dt.datetime, *,
        event_type: str | None = None, is_order: bool,
        work: Work | None = None,
    ) -> _Priced:
        """What pricing an order or event of the member at ``at`` needs: the program
        version in force, the member's context, its caps' usage and stamp counts (from
        the counters on its default-wallet account)."""
        if state.version is None:
            raise InvalidOrder("no version of the program is in force at that instant",
                               field="placed_at" if is_order else "occurred_at",
                               value=at.isoformat())
        program = self.c.version(state.version, uow)
        kept = self.c.retention(program)
        plan = self._plans.get((program.version, event_type))
        queries: list[UsageQuery] = []
        if plan is None or plan[1]:
            queries = usage_queries(program.earning, program.time_zone, at,
                                    event_type=event_type, stamp_counts=True)
            if plan is None:
                plan = self._plans[(program.version, event_type)] = (
                    stamp_card_ids(program.earning, event_type=event_type), bool(queries))
        activity = self._activity(uow, state, kept, queries)
        member = state.member
        member_id = member.member_id
        first_order = is_order and program.earning.needs_first_order and activity.orders == 0
        ctx: MemberContext
        if self.tier_of is not None:
            # a stored member and its tier policy's tier: checked already (each order of
            # an import's stream is priced; checking them again cost as much as its rules)
            name, multiplier = self.tier_of(uow, member_id, at, work)
            attributes = member.attributes
            ctx = checked_context(
                member_id, member.enrolled_at,
                check_json(attributes, "attributes") if attributes else {}, name,
                first_order, multiplier)
        else:  # the tier is an attribute the shop set: checked as a tier name
            tier = member.attributes.get("tier")
            ctx = MemberContext(
                member_id=member_id, enrolled_at=member.enrolled_at,
                attributes=dict(member.attributes), tier=tier if isinstance(tier, str) else None,
                first_order=first_order)
        usage = activity.rows(self.program.id, member_id) if queries else ()
        stamps = activity.stamp_counts(plan[0])
        return _Priced(program, ctx, usage, stamps, activity, kept)

    def quote(self, order_or_event: Order | Event, *, paid_points: int = 0) -> Evaluation:
        """Price an order or an event without writing anything: the same breakdown
        :meth:`record_order` / :meth:`record_event` would write now, with the member's
        caps, stamp cards and first-order status as they stand.

        ``paid_points`` are the points the member means to pay the order with: under a
        ``payments`` policy the order then earns on its money-paid part, as
        :meth:`record_order` with that payment would (points that break the policy
        raise :class:`~loyaltykit.InvalidPayment`; without a policy they change
        nothing, as ``paid_with`` does not)."""
        paid_points = check_points(paid_points, name="paid_points", allow_zero=True)
        if isinstance(order_or_event, Event):
            if paid_points:
                raise InvalidPayment("an event is not paid for", paid_points=paid_points)
            check_member_id(order_or_event.member_id)
            at = self.c.instant(order_or_event.occurred_at, "occurred_at")
            with self.c.read() as uow:
                state = self._member_state(uow, order_or_event.member_id,
                                           self.program.default_wallet, at, lock=False)
                p = self._pricing(uow, state, at, event_type=order_or_event.type, is_order=False)
            return evaluate_event(p.program.earning, p.program.time_zone, order_or_event, p.context,
                                  usage=p.usage, version=p.program.version, stamps=p.stamps)
        order = check_order(self.program.currency, order_or_event)
        check_member_id(order.member_id)
        at = self.c.instant(order.placed_at, "placed_at")
        with self.c.read() as uow:
            if uow.orders.get_order(order.id) is not None:
                raise OrderAlreadyRecorded("an order with this id is already recorded",
                                           order_id=order.id)
            state = self._member_state(uow, order.member_id, self.program.default_wallet,
                                       at, lock=False)
            p = self._pricing(uow, state, at, is_order=True)
        policy = p.program.payments if paid_points else None
        if policy is not None:
            problem = policy.problem(paid_points, order.net_goods)
            if problem is not None:
                raise InvalidPayment(f"paid_points: {problem[0]}", order_id=order.id,
                                     **problem[1])
        return evaluate_order(p.program.earning, p.program.time_zone, order, p.context,
                              usage=p.usage, version=p.program.version, stamps=p.stamps,
                              money_paid=money_paid_by(policy, order, paid_points))

    def record_order(
        self,
        order: Order,
        *,
        key: str | None = None,
        paid_with: Iterable[uuid.UUID | str] = (),
        wallet: str | None = None,
    ) -> OrderResult:
        """Price an order with the rules in force when it was placed and award its points
        (pending per the program's policy) as one earn dated ``order.placed_at``.

        Idempotent by order id: the key defaults to ``"order:<id>"``; recording the
        same order again returns the first result, and another order with the same id
        raises :class:`~loyaltykit.OrderAlreadyRecorded`. Under the default key the
        order's row is the key's record (one row, not two); keys starting with
        ``"order:"`` are kept for this default (anything else using one raises
        :class:`~loyaltykit.InvalidInput`). ``paid_with`` lists the
        spend or capture transactions that paid for the order with points; cancelling
        the order gives those points back to their original lots. When the program
        version in force has a ``payments`` policy, the points paid must keep it (whole
        steps, the minimum, the cart's share of goods; else
        :class:`~loyaltykit.InvalidPayment`, nothing written), the order earns on its
        money-paid part only (unless the policy says otherwise) and a partial return
        gives points back in proportion (see :meth:`record_return`).
        """
        order = check_order(self.program.currency, order)
        member_id = check_member_id(order.member_id)
        default_key = f"{ORDER_KEY}{order.id}"
        key = check_key(key if key is not None else default_key)
        wallet_ = self.program.wallet(wallet)
        when = self.c.instant(order.placed_at, "placed_at")
        if isinstance(paid_with, str | bytes) or not isinstance(paid_with, Iterable):
            raise InvalidInput("paid_with must be a list of transaction ids",
                               paid_with=paid_with)
        payments = tuple(dict.fromkeys(check_id(p, "paid_with") for p in paid_with))
        placed = order.to_dict()
        request = order_request(placed, wallet_, payments)

        def apply(work: Work) -> OrderResult:
            return self.record_in(work, order, member_id, wallet_, when, payments,
                                  placed=placed)

        # the breakdown is stored once, with the order: the key's record holds the rest
        # under the default key the order's row is the key's record, and a duplicate
        # order id is a race the retry resolves (it finds the winner's row)
        holder = OrderKey(order.id) if key == default_key else None
        return self.c.pipeline.run(
            key, request, when, member_id, apply, encode=encode_order_result,
            replay=_replay_order, holder=holder,
            on_duplicate=_order_recorded if holder is None else None)

    def record_in(self, work: Work, order: Order, member_id: str, wallet_: str,
                  when: dt.datetime, payments: tuple[uuid.UUID, ...] = (), *,
                  placed: dict[str, Any] | None = None) -> OrderResult:
        """Record ``order`` (checked; ``member_id`` its member's id checked, ``when`` its
        instant checked) in ``work``: the use case of :meth:`record_order`, shared with
        the history import (:mod:`loyaltykit._services.order_import`). It only reads
        before returning: a refusal (member not enrolled, no version in force, a
        payment that breaks the policy) leaves nothing to write. ``placed`` is
        ``order.to_dict()`` if the caller has it."""
        uow, ledger = work.uow, work.ledger
        if placed is None:
            placed = order.to_dict()
        # read under the member's lock: caps, stamp cards and "first order" count
        # this member's other orders, which cannot change until we commit. A second
        # order with this id is refused by the storage's unique rule on writing.
        state = self._member_state(uow, member_id, wallet_, when, lock=True,
                                   reads=member_reads(work.scratch, member_id))
        book = self._ledger.books(uow, ledger, wallet_, [member_id], need_lots=False,
                                  locked={member_id: state.accounts[wallet_]})[member_id]
        paid_txs = read_payments(uow, payments, member_id, wallet_, order.id)
        p = self._pricing(uow, state, when, is_order=True, work=work)
        program = p.program
        policy = program.payments if paid_txs else None
        points_paid = points_of(paid_txs)
        if policy is not None:
            problem = policy.problem(points_paid, order.net_goods)
            if problem is not None:
                raise InvalidPayment(f"paid_with: {problem[0]}", order_id=order.id,
                                     **problem[1])
        evaluation = evaluate_order(program.earning, program.time_zone, order, p.context,
                                    usage=p.usage, version=program.version, stamps=p.stamps,
                                    money_paid=money_paid_by(policy, order, points_paid))
        tx = None
        if evaluation.points > 0:
            tx = ledger.earn(book, evaluation.points, reason=f"order {order.id}",
                             metadata={"order_id": order.id})
        record = OrderRecord(
            program_id=self.program.id, order_id=order.id, member_id=member_id,
            placed_at=when, version=program.version, order=placed,
            returned={}, status=OrderStatus.OPEN, points=evaluation.points,
            evaluation=evaluation.to_dict(), earn_id=tx.id if tx else None,
            payments=payments, created_at=ledger.recorded_at,
            updated_at=ledger.recorded_at,
        )
        orders = work.part(OrderChanges)
        orders.orders[order.id] = record
        orders.new_orders.add(order.id)
        orders.net[order.id] = order.net_goods  # an order has lines: it counts
        work.publish(OrderRecorded(order, record, wallet_, tuple(paid_txs)))
        # the order's row is its usage log; the counters follow it
        usage_key = f"order:{order.id}"
        self._keep_activity(ledger, state, p.activity.record(
            usage_key, when, (), usage_rows(evaluation, program_id=self.program.id,
                                            member_id=member_id, source=usage_key,
                                            occurred_at=when),
            orders=1, horizon=p.kept.horizon))
        return OrderResult(
            order_id=order.id, member_id=member_id, points=evaluation.points,
            version=program.version, evaluation=evaluation,
            transaction=self._ledger.tx_result(uow, ledger, book, tx) if tx else None,
            rewards=evaluation.rewards,
        )

    def record_return(
        self,
        order_id: str,
        lines: Mapping[str, int],
        *,
        key: str,
        at: dt.datetime | None = None,
        reason: str = "",
    ) -> ReturnResult:
        """Return ``lines`` (line id -> quantity) of a recorded order.

        The order as it stands afterwards is re-evaluated with the rules it was placed
        under (its program version, its member's tier and first-order status then);
        the difference is clawed back under the program's clawback policy, from the
        order's own lots first. A return that drops the order below a bonus's minimum
        removes that bonus; a return never adds points. A stamp card keeps
        ``floor(kept stamps / every)`` rewards over all of the member's orders: a
        return that takes stamps back withdraws the rest from this order first, then
        from the member's most recently placed orders (their points clawed back, listed
        in ``rewards_withdrawn_elsewhere`` and ``card_clawbacks``); a cancellation too.

        An order paid partly with points (``paid_with``) under a program with a
        ``payments`` policy gets back part of those points: the goods value returned is
        refunded in points and money as the policy's ``returns`` says (pro rata by
        default), the points going back to the lots their payment took them from, with
        their original expiry (a ``refund`` transaction in ``restored``;
        ``points_refunded`` and ``money_refunded`` say how much). The kept lines then
        earn on their money-paid part. A later cancellation gives back only the rest.
        """
        order_id = check_member_id(order_id, "order_id")
        if not isinstance(lines, Mapping) or not lines:
            raise InvalidReturn("lines must be a non-empty mapping of line id to quantity",
                                lines=shown(lines))
        wanted: dict[str, int] = {}
        for line_id, qty in lines.items():
            if not isinstance(line_id, str):
                raise InvalidReturn("line ids are str", line_id=shown(line_id))
            if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QUANTITY:
                raise InvalidReturn(f"a returned quantity must be an int from 1 to "
                                    f"{MAX_QUANTITY}", line_id=line_id, quantity=qty)
            wanted[line_id] = qty
        key = check_key(key)
        reason = check_reason(reason)
        when = self.c.instant(at)
        request = self.c.request("record_return", at, when, order_id=order_id,
                                lines=wanted, reason=reason)
        return self._return(order_id, wanted, key, when, request, reason, cancel=False)

    def cancel_order(
        self,
        order_id: str,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        reason: str = "",
    ) -> ReturnResult:
        """Cancel an order: return everything left of it (its points are clawed back)
        and give the points spent on it (``paid_with``) back to their original lots,
        with their original expiry. The key defaults to ``"cancel:<order id>"``."""
        order_id = check_member_id(order_id, "order_id")
        key = check_key(key if key is not None else f"cancel:{order_id}")
        reason = check_reason(reason)
        when = self.c.instant(at)
        request = self.c.request("cancel_order", at, when, order_id=order_id, reason=reason)
        return self._return(order_id, None, key, when, request, reason, cancel=True)

    def _return(
        self,
        order_id: str,
        wanted: dict[str, int] | None,
        key: str,
        when: dt.datetime,
        request: dict[str, Any],
        reason: str,
        *,
        cancel: bool,
    ) -> ReturnResult:
        def apply(work: Work) -> ReturnResult:
            uow, ledger = work.uow, work.ledger
            found = uow.orders.get_order(order_id)
            if found is None:
                raise OrderNotFound("no such order", order_id=order_id)
            member_id = found.member_id
            # the order's transactions, read by its member (routed: DESIGN §10)
            payments = [t for t in (uow.ledger.get_transaction(p, member_id=member_id)
                                    for p in found.payments) if t is not None]
            earn = (uow.ledger.get_transaction(found.earn_id, member_id=member_id)
                    if found.earn_id else None)
            earn_lots = [m.lot_id for m in earn.movements if m.delta > 0] if earn else []
            wallet_ = earn.wallet if earn else (payments[0].wallet if payments
                                                else self.program.default_wallet)
            state = self._member_state(uow, member_id, wallet_, when, lock=True)
            book = self._ledger.books(
                uow, ledger, wallet_, [member_id], need_lots=True,
                extra_lots={member_id: [*earn_lots,
                                        *(m.lot_id for t in payments for m in t.movements)]},
                locked={member_id: state.accounts[wallet_]},
            )[member_id]
            # read again under the member's lock: a concurrent return may have won
            record = uow.orders.get_order(order_id)
            assert record is not None
            if record.status is OrderStatus.CANCELLED:
                raise OrderCancelled("the order was cancelled", order_id=order_id)
            original = Order.from_dict(dict(record.order))
            returned = dict(record.returned)
            if when < record.placed_at:
                raise InvalidReturn("a return cannot be dated before its order was placed",
                                    order_id=order_id, at=when.isoformat(),
                                    placed_at=record.placed_at.isoformat())
            if wanted is None:  # cancel: everything that is left goes back
                returned = {line.id: line.quantity for line in original.lines}
            else:
                for line_id, qty in wanted.items():
                    returned[line_id] = returned.get(line_id, 0) + qty
            as_it_stands = original.after_returns(returned)
            program = self.c.version(record.version, uow)
            standing = original.after_returns(dict(record.returned))
            plan = RefundPlan.make(uow, record, program.payments, payments, standing,
                                    as_it_stands, cancel=cancel)
            money_paid = money_paid_by(program.payments, as_it_stands, plan.points_after)
            previous = Evaluation.from_dict(dict(record.evaluation))
            placeholder = MemberContext(member_id=member_id, enrolled_at=record.placed_at)
            evaluation = evaluate_order(program.earning, program.time_zone, as_it_stands,
                                        placeholder, previous=previous,
                                        version=record.version, money_paid=money_paid)
            kept = self.c.retention(program)
            activity = self._activity(uow, state, kept)
            settled = self._settle_cards(uow, program, record, previous, evaluation, activity)
            if settled.keep:
                evaluation = reevaluate_order(program.earning, program.time_zone,
                                              as_it_stands, previous, version=record.version,
                                              keep=settled.keep, money_paid=money_paid)
            # before any clawback, so the voided rewards are taken back from their own lots
            work.publish(OrderReturned(
                record, before=standing,
                after=as_it_stands, at=when, wallet=wallet_, cancelled=cancel))
            why = reason or f"order {order_id} {'cancelled' if cancel else 'return'}"
            restored = plan.apply(ledger, book, why, order_id)
            difference = record.points - evaluation.points
            tx = None
            if difference > 0:
                tx = ledger.clawback(
                    book, difference, earn_lots=earn_lots,
                    reason=reason or f"order {order_id} {'cancelled' if cancel else 'return'}",
                    metadata={"order_id": order_id},
                )
            work.part(OrderChanges).orders[order_id] = attrs.evolve(
                record, returned=returned, points=evaluation.points,
                evaluation=evaluation.to_dict(), updated_at=ledger.recorded_at,
                recorded_evaluation=record.evaluation_as_recorded(),
                status=OrderStatus.CANCELLED if cancel else OrderStatus.OPEN,
                refunded=plan.refunded,
            )
            usage_key = f"order:{order_id}"
            before, after = (usage_rows(e, program_id=self.program.id, member_id=member_id,
                                        source=usage_key, occurred_at=record.placed_at)
                             for e in (previous, evaluation))
            activity = activity.record(usage_key, record.placed_at, before, after,
                                       orders=-1 if cancel else 0, horizon=kept.horizon)
            # the fills the kept stamps no longer hold, taken back from other orders
            books = {wallet_: book}
            card_clawbacks = []
            elsewhere: list[tuple[str, str]] = []
            for other, keep in settled.others:
                activity, withdrawn, tx_other = self._withdraw_fills(
                    work, other, keep, books, activity, kept, order_id, reason)
                elsewhere.extend((other.order_id, r) for r in withdrawn)
                if tx_other is not None:
                    card_clawbacks.append(tx_other)
            self._keep_activity(ledger, state, activity)
            return ReturnResult(
                order_id=order_id, member_id=member_id, points_before=record.points,
                points_after=evaluation.points, clawed_back=max(difference, 0),
                evaluation=evaluation,
                transaction=self._ledger.tx_result(uow, ledger, book, tx) if tx else None,
                restored=tuple(self._ledger.tx_result(uow, ledger, book, t) for t in restored),
                cancelled=cancel,
                rewards_withdrawn=_withdrawn(previous.rewards, evaluation.rewards),
                rewards_withdrawn_elsewhere=tuple(elsewhere),
                card_clawbacks=tuple(card_clawbacks),
                points_refunded=plan.points_back,
                money_refunded=(None if plan.money_back is None
                                else Money(plan.money_back, original.currency)),
            )

        return self.c.pipeline.run(key, request, when, None, apply)

    def _settle_cards(self, uow: UnitOfWork, program: Program, record: OrderRecord,
                      previous: Evaluation, evaluation: Evaluation,
                      activity: Activity) -> _Settled:
        """Settle the stamp cards whose stamps the return of ``record`` takes back.

        A card keeps ``floor(kept stamps / every)`` rewards over all of the member's
        orders: the rewards beyond that are withdrawn from the returned order first (it
        keeps the rest, whatever its own stamps would give now), then from the member's
        other orders, most recently placed first. Only cards that lose stamps are
        settled, so only a return that takes stamps back reads the member's orders."""
        cards = [r for r in program.earning.rules
                 if isinstance(r, StampCardRule) and r.for_orders]
        was = {o.rule_id: o for o in previous.outcomes}
        now = {o.rule_id: o for o in evaluation.outcomes}
        lost = {}
        keep: dict[str, tuple[int, int]] = {}
        for card in cards:
            old, new = was.get(card.id), now.get(card.id)
            gone = (old.stamps if old else 0) - (new.stamps if new else 0)
            if gone > 0:
                lost[card.id] = gone
            elif rewards_of(card, old) != rewards_of(card, new):
                # no stamp goes back, so the card's count is unchanged: the order keeps
                # the rewards it holds (a fill its own stamps no longer show, e.g. when
                # an order already returned in full is cancelled)
                keep[card.id] = (rewards_of(card, old), new.stamps if new else 0)
        if not lost:
            return _Settled(keep, ())
        # a cancelled order may still hold a fill that the kept stamps hold (see below)
        others = [o for o in uow.orders.load_orders(record.member_id)
                  if o.order_id != record.order_id]
        others.sort(key=lambda o: (o.placed_at, o.order_id), reverse=True)  # latest first
        breakdowns = {o.order_id: Evaluation.from_dict(dict(o.evaluation)) for o in others}
        counts = activity.stamp_counts(tuple(lost))
        taken: dict[str, dict[str, tuple[int, int]]] = {}
        for card in cards:
            if card.id not in lost:
                continue
            own = rewards_of(card, was.get(card.id))
            held = {o.order_id: rewards_of(card, breakdowns[o.order_id].outcome(card.id))
                    for o in others}
            left = now.get(card.id)
            stamps_left = left.stamps if left is not None else 0
            target = max(counts[card.id] - lost[card.id], 0) // card.every
            excess = own + sum(held.values()) - target
            mine = min(max(excess, 0), own)
            if own - mine != rewards_of(card, left):  # its own stamps would give another
                keep[card.id] = (own - mine, stamps_left)
            excess -= mine
            for o in others:
                if excess <= 0:
                    break
                take = min(excess, held[o.order_id])
                if take:
                    stamped = breakdowns[o.order_id].outcome(card.id)
                    taken.setdefault(o.order_id, {})[card.id] = (
                        held[o.order_id] - take, stamped.stamps if stamped else 0)
                    excess -= take
        return _Settled(keep, tuple((o, taken[o.order_id]) for o in others
                                    if o.order_id in taken))

    def _withdraw_fills(
        self, work: Work, other: OrderRecord, keep: dict[str, tuple[int, int]],
        books: dict[str, MemberBook], activity: Activity, kept: Retention,
        returned_id: str, reason: str,
    ) -> tuple[Activity, tuple[str, ...], TransactionResult | None]:
        """Withdraw fills of stamp cards from ``other`` (an order whose stamps are all
        kept): it keeps ``keep[card]`` rewards of each card named, and the points they
        were worth are clawed back from its own lots first, as a return's are. Returns
        the counters after it, the rewards withdrawn and the clawback."""
        uow, ledger = work.uow, work.ledger
        program = self.c.version(other.version, uow)
        previous = Evaluation.from_dict(dict(other.evaluation))
        as_it_stands = Order.from_dict(dict(other.order)).after_returns(dict(other.returned))
        money_paid = None
        if program.payments is not None and other.payments:
            paid = [t for t in (uow.ledger.get_transaction(p, member_id=other.member_id)
                                for p in other.payments) if t is not None]
            money_paid = money_paid_by(program.payments, as_it_stands,
                                       still_paying(uow, other, paid)[1])
        evaluation = reevaluate_order(program.earning, program.time_zone, as_it_stands,
                                      previous, version=other.version, keep=keep,
                                      money_paid=money_paid)
        member_id = other.member_id
        difference = other.points - evaluation.points
        tx = None
        if difference > 0:
            earn = (uow.ledger.get_transaction(other.earn_id, member_id=member_id)
                    if other.earn_id else None)
            earn_lots = [m.lot_id for m in earn.movements if m.delta > 0] if earn else []
            wallet = earn.wallet if earn else self.program.default_wallet
            book = books.get(wallet)
            if book is None:  # the order earned in another wallet than the returned one
                book = books[wallet] = self._ledger.books(
                    uow, ledger, wallet, [member_id], need_lots=True,
                    extra_lots={member_id: earn_lots})[member_id]
            claw = ledger.clawback(
                book, difference, earn_lots=earn_lots,
                reason=reason or f"order {other.order_id}: stamp card reward withdrawn "
                                 f"(return of order {returned_id})",
                metadata={"order_id": other.order_id, "returned_order_id": returned_id},
            )
            tx = self._ledger.tx_result(uow, ledger, book, claw)
        work.part(OrderChanges).orders[other.order_id] = attrs.evolve(
            other, points=evaluation.points, evaluation=evaluation.to_dict(),
            updated_at=ledger.recorded_at,
            recorded_evaluation=other.evaluation_as_recorded())
        usage_key = f"order:{other.order_id}"
        before, after = (usage_rows(e, program_id=self.program.id, member_id=member_id,
                                    source=usage_key, occurred_at=other.placed_at)
                         for e in (previous, evaluation))
        activity = activity.record(usage_key, other.placed_at, before, after,
                                   horizon=kept.horizon)
        return activity, _withdrawn(previous.rewards, evaluation.rewards), tx

    def record_event(
        self,
        event: Event,
        *,
        key: str | None = None,
        wallet: str | None = None,
    ) -> EventResult:
        """Award the bonus rules for an event (sign-up, birthday, anniversary, review,
        visit or a custom one), dated ``event.occurred_at``. The key defaults to
        ``"event:<id>"``: recording the same event again returns the first result."""
        if not isinstance(event, Event):
            raise InvalidEvent("event must be an Event", field="event", value=shown(event))
        member_id = check_member_id(event.member_id)
        key = check_key(key if key is not None else f"event:{event.id}")
        wallet_ = self.program.wallet(wallet)
        when = self.c.instant(event.occurred_at, "occurred_at")
        request = {"op": "record_event", "event": event.to_dict(), "wallet": wallet_}

        def apply(work: Work) -> EventResult:
            uow, ledger = work.uow, work.ledger
            state = self._member_state(uow, member_id, wallet_, when, lock=True)
            book = self._ledger.books(uow, ledger, wallet_, [member_id], need_lots=False,
                               locked={member_id: state.accounts[wallet_]})[member_id]
            p = self._pricing(uow, state, when, event_type=event.type, is_order=False,
                              work=work)
            program = p.program
            evaluation = evaluate_event(program.earning, program.time_zone, event, p.context,
                                        usage=p.usage, version=program.version, stamps=p.stamps)
            tx = None
            if evaluation.points > 0:
                tx = ledger.earn(book, evaluation.points, reason=f"{event.type} {event.id}",
                                 metadata={"event_id": event.id, "event_type": event.type})
            # events keep their usage rows (their log); the counters follow them
            rows = usage_rows(evaluation, program_id=self.program.id, member_id=member_id,
                              source=f"event:{event.id}", occurred_at=when)
            work.part(OrderChanges).usage.extend(rows)
            self._keep_activity(ledger, state, p.activity.record(
                f"event:{event.id}", when, (), rows, horizon=p.kept.horizon))
            return EventResult(
                event_id=event.id, member_id=member_id, points=evaluation.points,
                version=program.version, evaluation=evaluation,
                transaction=self._ledger.tx_result(uow, ledger, book, tx) if tx else None,
                rewards=evaluation.rewards,
            )

        return self.c.pipeline.run(key, request, when, member_id, apply)

    def order(self, order_id: str) -> OrderRecord:
        """Return a recorded order: as placed, what was returned, what it is worth now."""
        order_id = check_member_id(order_id, "order_id")
        with self.c.read() as uow:
            record = uow.orders.get_order(order_id)
        if record is None:
            raise OrderNotFound("no such order", order_id=order_id)
        return record

