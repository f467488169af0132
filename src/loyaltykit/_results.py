"""What the facade returns: balances, statements and write results.

Every write result is also stored (as JSON) with its idempotency key, so a replay of
the same request returns the very same value.
"""

from __future__ import annotations

import datetime as dt
import json
import operator
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import orjson

from loyaltykit._json import JsonForm
from loyaltykit._model import Kind, Member, OrderRecord
from loyaltykit._referrals import Referral, ReferralCode, ReferralStatus, Source
from loyaltykit._rewards import Voucher, VoucherStatus
from loyaltykit._rules import Evaluation
from loyaltykit._values import Money, json_bytes

__all__ = [
    "Balance",
    "BulkEarnResult",
    "DueProgress",
    "DueWorkReport",
    "EventResult",
    "HoldResult",
    "OrderResult",
    "Redemption",
    "ReturnResult",
    "StatementLine",
    "StatementPage",
    "TransactionResult",
    "TransferResult",
    "decode_order_result",
    "decode_result",
    "encode_order_result",
    "encode_result",
]


@attrs.frozen
class Balance(JsonForm):
    """A member's points in one wallet, now or as of a past instant.

    ``available`` is spendable; ``pending`` is visible but not yet spendable; ``held``
    is reserved by open holds; ``debt`` is owed from a clawback and settled by later
    earnings (under the ``ALLOW_NEGATIVE`` clawback policy it is also subtracted from
    ``available``). ``total`` = available + pending + held - debt (counting debt once).
    ``earned``, ``spent``, ``expired``, ``adjusted`` and ``transferred`` are lifetime
    net figures. ``next_expiring_points`` expire at ``next_expiring_at``.
    """

    member_id: str
    wallet: str
    as_of: dt.datetime
    available: int
    pending: int
    held: int
    debt: int
    total: int
    earned: int
    spent: int
    expired: int
    adjusted: int
    transferred: int
    next_expiring_points: int = 0
    next_expiring_at: dt.datetime | None = None


@attrs.frozen
class TransactionResult(JsonForm):
    """The result of a write that posted one transaction.

    ``points`` is the net change of the member's total points; ``balance`` the
    member's balance right after the write; ``related_ids`` any further transactions
    the same request wrote (the other half of a transfer, ...).
    """

    transaction_id: uuid.UUID
    kind: Kind
    member_id: str
    wallet: str
    points: int
    occurred_at: dt.datetime
    balance: Balance
    related_ids: tuple[uuid.UUID, ...] = ()


@attrs.frozen
class HoldResult(JsonForm):
    """The result of placing a hold: its id, points, expiry and the new balance."""

    hold_id: uuid.UUID
    transaction_id: uuid.UUID
    member_id: str
    wallet: str
    points: int
    expires_at: dt.datetime
    balance: Balance


@attrs.frozen
class TransferResult(JsonForm):
    """The two transactions of a transfer: out of one member, into the other."""

    transfer_id: uuid.UUID
    outgoing: TransactionResult
    incoming: TransactionResult


@attrs.frozen
class BulkEarnResult(JsonForm):
    """The result of a bulk earn: how many members got how many points in all."""

    batch_id: uuid.UUID
    members: int
    points: int
    occurred_at: dt.datetime


@attrs.frozen
class StatementLine(JsonForm):
    """One transaction as a member's statement shows it, with the running balance."""

    transaction_id: uuid.UUID
    kind: Kind
    occurred_at: dt.datetime
    points: int
    balance: int
    reason: str
    reverses_id: uuid.UUID | None = None


@attrs.frozen
class StatementPage(JsonForm):
    """A page of a statement, newest first; pass ``next_cursor`` to get the next page."""

    member_id: str
    wallet: str
    lines: tuple[StatementLine, ...]
    next_cursor: str | None


@attrs.frozen
class DueWorkReport(JsonForm):
    """What a run of due work did: counts of transactions and points moved.

    ``expired_points`` includes held points of an expired lot that a hold's release
    returned (they expire in the release transaction itself). ``tier_evaluations``
    counts members whose tier window was evaluated, ``tier_changes`` those whose tier
    changed, ``tier_notices`` "will downgrade" notices recorded. ``expired_vouchers``
    counts vouchers past their expiry marked expired, ``refunded_vouchers`` those of
    them whose points went back (rewards with ``refund_on_expiry``). ``pruned_events``
    counts outbox events deleted past the program's ``events.retention_days``.
    ``points_expiring_notices``, ``voucher_expiring_notices`` and
    ``tier_will_drop_notices`` count the notice events due work appended (the
    program's ``events`` policy; docs/events.md).
    """

    at: dt.datetime
    activated_lots: int = 0
    activated_points: int = 0
    expired_lots: int = 0
    expired_points: int = 0
    released_holds: int = 0
    released_points: int = 0
    members: int = 0
    tier_evaluations: int = 0
    tier_changes: int = 0
    tier_notices: int = 0
    expired_vouchers: int = 0
    refunded_vouchers: int = 0
    pruned_events: int = 0
    points_expiring_notices: int = 0
    voucher_expiring_notices: int = 0
    tier_will_drop_notices: int = 0


@attrs.frozen
class DueProgress(JsonForm):
    """How far a run of due work has come, as ``run_due(on_progress=...)`` reports it.

    A run is ``total`` stages of work: the ledger's ranges of ``batch_size`` member
    wallets (holds, activation, expiry), then one stage per capability with due work of
    its own (``"tiers"``, ``"rewards"``, ``"events"``, ``"notices"``). ``done`` of them
    are finished; ``stage`` names the last one finished (``"ledger"`` for a range, and
    for the first report, made with ``done == 0`` once the ranges are known);
    ``members`` counts the member wallets the ledger's part has worked through so far.
    ``at`` is the instant the run posts up to.

    .. versionadded:: 0.5
    """

    at: dt.datetime
    stage: str
    done: int
    total: int
    members: int


@attrs.frozen
class Redemption(JsonForm):
    """The result of redeeming a reward: the :class:`~loyaltykit.Voucher` issued, the
    spend ``transaction_id`` that debited its cost and the member's ``balance`` after.

    .. versionadded:: 0.3
    """

    voucher: Voucher
    transaction_id: uuid.UUID
    balance: Balance


@attrs.frozen
class OrderResult(JsonForm):
    """The result of recording an order: its points, the rule breakdown and the earn.

    ``points`` is what the order is worth (rounded once); ``evaluation`` explains it
    rule by rule; ``transaction`` is the earn (None when the order earned nothing);
    ``rewards`` are stamp-card rewards the shop should hand out.
    """

    order_id: str
    member_id: str
    points: int
    version: int
    evaluation: Evaluation
    transaction: TransactionResult | None
    rewards: tuple[str, ...] = ()


@attrs.frozen
class ReturnResult(JsonForm):
    """The result of a return or a cancellation.

    The order as it stands was re-evaluated with the rules it was placed under:
    ``points_before`` -> ``points_after``; ``clawed_back`` points were taken back by
    ``transaction`` (None if nothing changed). A cancellation also lists in
    ``restored`` the reversals that gave back points spent on the order.
    For an order paid partly with points (``paid_with``), ``points_refunded`` points
    went back to their lots (the ``refund`` or ``reverse`` transactions in
    ``restored``, a partial return's too) and ``money_refunded`` is what the shop
    refunds in money for the returned goods (shipping excluded); it is None when
    points paid for the order but its program version has no payment policy.
    ``rewards_withdrawn`` lists stamp-card rewards the order no longer earns: the shop
    should cancel them if they were not used yet. A stamp card keeps
    ``floor(kept stamps / every)`` rewards over all of the member's orders, so a return
    can also withdraw a reward another order filled with the help of the returned
    stamps: ``rewards_withdrawn_elsewhere`` lists those as ``(order id, reward)`` pairs
    and ``card_clawbacks`` the clawbacks of their points (one per such order).
    """

    order_id: str
    member_id: str
    points_before: int
    points_after: int
    clawed_back: int
    evaluation: Evaluation
    transaction: TransactionResult | None
    restored: tuple[TransactionResult, ...] = ()
    cancelled: bool = False
    rewards_withdrawn: tuple[str, ...] = ()
    rewards_withdrawn_elsewhere: tuple[tuple[str, str], ...] = ()
    card_clawbacks: tuple[TransactionResult, ...] = ()
    points_refunded: int = 0
    money_refunded: Money | None = None


@attrs.frozen
class EventResult(JsonForm):
    """The result of recording an event (sign-up, birthday, review, custom...)."""

    event_id: str
    member_id: str
    points: int
    version: int
    evaluation: Evaluation
    transaction: TransactionResult | None
    rewards: tuple[str, ...] = ()


# -- JSON codec for idempotent replay -------------------------------------------------

_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (Balance, TransactionResult, HoldResult, TransferResult, BulkEarnResult, Member,
                OrderResult, ReturnResult, EventResult, ReferralCode, Referral, Voucher,
                Redemption, Money)
}
_ENUMS: dict[str, type[Any]] = {"source": Source, "referral_status": ReferralStatus,
                                 "voucher_status": VoucherStatus}
_ENUM_NAMES: dict[type[Any], str] = {cls: name for name, cls in _ENUMS.items()}


_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _dump(value: Any) -> Any:
    # plain JSON values first: they are most of a result (this codec runs on every write)
    if value is None or isinstance(value, str | int | float):
        return value
    cls = type(value)
    if cls is Evaluation:  # its own compact JSON form is several times faster to write
        return {"__evaluation__": value.to_dict()}
    names = _FIELDS.get(cls)
    if names is None and attrs.has(cls):
        names = _FIELDS[cls] = tuple(f.name for f in attrs.fields(cls))
    if names is not None:
        data = {name: _dump(getattr(value, name)) for name in names}
        data["__type__"] = cls.__name__
        return data
    if isinstance(value, dt.datetime):
        return {"__dt__": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"__uuid__": str(value)}
    if isinstance(value, Kind):
        return {"__kind__": value.value}
    if cls in _ENUM_NAMES:
        return {"__enum__": [_ENUM_NAMES[cls], value.value]}
    if isinstance(value, Decimal):
        return {"__dec__": str(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_dump(v) for v in value]}
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {"__map__": {k: _dump(v) for k, v in value.items()}}
    return value


def _load(value: Any) -> Any:
    if isinstance(value, dict):
        if "__dt__" in value:
            return dt.datetime.fromisoformat(value["__dt__"])
        if "__uuid__" in value:
            return uuid.UUID(value["__uuid__"])
        if "__tuple__" in value:
            return tuple(_load(v) for v in value["__tuple__"])
        if "__map__" in value:
            return {k: _load(v) for k, v in value["__map__"].items()}
        if "__kind__" in value:
            return Kind(value["__kind__"])
        if "__enum__" in value:
            name, raw = value["__enum__"]
            return _ENUMS[name](raw)
        if "__evaluation__" in value:
            return Evaluation.from_dict(value["__evaluation__"])
        if "__dec__" in value:
            return Decimal(value["__dec__"])
        cls = _TYPES[value["__type__"]]
        kwargs = {k: _load(v) for k, v in value.items() if k != "__type__"}
        return cls(**kwargs)
    if isinstance(value, list):
        return [_load(v) for v in value]
    return value


def encode_result(result: Any) -> str:
    """Serialise a write result to JSON text (see :func:`decode_result`)."""
    fast = _FAST.get(type(result))
    if fast is not None:
        return json_bytes(fast(result), sort_keys=True).decode()
    return json.dumps(_dump(result), separators=(",", ":"), sort_keys=True)


# The everyday writes' results (an earn's, a spend's, a hold's) written out by hand: the
# same document as _dump's, built without walking the fields (the generic codec was a
# tenth of what an earn costs beyond its statements). The asserts keep them in step
# with the classes; tests compare both forms.
_BALANCE_PLAIN = ("member_id", "wallet", "available", "pending", "held", "debt", "total",
                  "earned", "spent", "expired", "adjusted", "transferred",
                  "next_expiring_points")
assert {f.name for f in attrs.fields(Balance)} == {*_BALANCE_PLAIN, "as_of",
                                                   "next_expiring_at"}
assert [f.name for f in attrs.fields(TransactionResult)] == [
    "transaction_id", "kind", "member_id", "wallet", "points", "occurred_at", "balance",
    "related_ids"]
assert [f.name for f in attrs.fields(HoldResult)] == [
    "hold_id", "transaction_id", "member_id", "wallet", "points", "expires_at", "balance"]
_balance_plain = operator.attrgetter(*_BALANCE_PLAIN)


def _fast_balance(b: Balance) -> dict[str, Any]:
    data = dict(zip(_BALANCE_PLAIN, _balance_plain(b), strict=True))
    data["as_of"] = {"__dt__": b.as_of.isoformat()}
    at = b.next_expiring_at
    data["next_expiring_at"] = None if at is None else {"__dt__": at.isoformat()}
    data["__type__"] = "Balance"
    return data


def _fast_transaction(r: TransactionResult) -> dict[str, Any]:
    return {"transaction_id": {"__uuid__": str(r.transaction_id)},
            "kind": {"__kind__": r.kind.value}, "member_id": r.member_id,
            "wallet": r.wallet, "points": r.points,
            "occurred_at": {"__dt__": r.occurred_at.isoformat()},
            "balance": _fast_balance(r.balance),
            "related_ids": {"__tuple__": [{"__uuid__": str(i)} for i in r.related_ids]},
            "__type__": "TransactionResult"}


def _fast_hold(r: HoldResult) -> dict[str, Any]:
    return {"hold_id": {"__uuid__": str(r.hold_id)},
            "transaction_id": {"__uuid__": str(r.transaction_id)},
            "member_id": r.member_id, "wallet": r.wallet, "points": r.points,
            "expires_at": {"__dt__": r.expires_at.isoformat()},
            "balance": _fast_balance(r.balance), "__type__": "HoldResult"}


def _fast_member(m: Member) -> dict[str, Any]:
    # an enrolment's result (a history import enrols thousands of members a batch)
    return {"program_id": m.program_id, "member_id": m.member_id,
            "enrolled_at": {"__dt__": m.enrolled_at.isoformat()},
            "attributes": (_dump(m.attributes) if m.attributes or type(m.attributes) is not dict
                           else {"__map__": {}}),  # (most members have none)
            "__type__": "Member"}


assert [f.name for f in attrs.fields(Member)] == [
    "program_id", "member_id", "enrolled_at", "attributes"]

_FAST: dict[type[Any], Callable[[Any], dict[str, Any]]] = {
    TransactionResult: _fast_transaction, HoldResult: _fast_hold, Member: _fast_member}


def decode_result(text: str) -> Any:
    """Inverse of :func:`encode_result`."""
    return _load(json.loads(text))


# -- the compact form of record_order's result ------------------------------------------
#
# An order's row already holds most of its record_order result (ids, points, version,
# the breakdown); what it stores as the result is only the rest: the earn and the
# balance after it, positionally. Writing it is a few string joins, not the generic
# codec above (every order pays for it, and the generic form was most of what an order
# costs beyond a plain earn). Version "2" tells it from the generic form that results
# stored before this one used.

_BALANCE_COUNTS = ("available", "pending", "held", "debt", "total", "earned", "spent",
                   "expired", "adjusted", "transferred", "next_expiring_points")
_balance_counts = operator.attrgetter(*_BALANCE_COUNTS)  # one call, not a getattr each


def encode_order_result(result: OrderResult) -> str:
    """Serialise what an order's row does not hold of its :class:`OrderResult`: the
    order id, the earn transaction and the balance after it (see
    :func:`decode_order_result`)."""
    tx = result.transaction
    if tx is None:
        return orjson.dumps({"v": 2, "order_id": result.order_id}).decode()
    b = tx.balance
    occurred_at = tx.occurred_at.isoformat()
    # (an earn's balance is as of its own instant: one text for both)
    as_of = occurred_at if b.as_of is tx.occurred_at else b.as_of.isoformat()
    data = {
        "v": 2,
        "order_id": result.order_id,
        "tx": [tx.transaction_id.hex, tx.kind.value, tx.wallet, tx.points,
               occurred_at, [r.hex for r in tx.related_ids]],
        "balance": [as_of, *_balance_counts(b),
                    None if b.next_expiring_at is None else b.next_expiring_at.isoformat()],
    }
    return orjson.dumps(data).decode()


def decode_order_result(data: dict[str, Any], record: OrderRecord) -> OrderResult:
    """The :class:`OrderResult` that recording ``record``'s order returned, from the
    stored result parsed as ``data`` (:func:`encode_order_result`, or the generic form
    without the breakdown that earlier rows hold) and the order's row."""
    evaluation = Evaluation.from_dict(dict(record.evaluation_as_recorded()))
    if data.get("v") != 2:  # the generic codec's fields, less the breakdown
        fields = {k: _load(v) for k, v in data.items() if k != "__type__"}
        fields["evaluation"] = evaluation
        return OrderResult(**fields)
    transaction = None
    if "tx" in data:
        tx_id, kind, wallet, points, occurred_at, related = data["tx"]
        as_of, *counts, next_at = data["balance"]
        balance = Balance(
            member_id=record.member_id, wallet=wallet, as_of=dt.datetime.fromisoformat(as_of),
            **dict(zip(_BALANCE_COUNTS, counts, strict=True)),
            next_expiring_at=None if next_at is None else dt.datetime.fromisoformat(next_at),
        )
        transaction = TransactionResult(
            transaction_id=uuid.UUID(tx_id), kind=Kind(kind), member_id=record.member_id,
            wallet=wallet, points=points, occurred_at=dt.datetime.fromisoformat(occurred_at),
            balance=balance, related_ids=tuple(uuid.UUID(r) for r in related),
        )
    return OrderResult(order_id=record.order_id, member_id=record.member_id,
                       points=evaluation.points, version=evaluation.version,
                       evaluation=evaluation, transaction=transaction,
                       rewards=evaluation.rewards)
