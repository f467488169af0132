"""The rewards' events in the outbox: ``reward.redeemed``, ``voucher.used``,
``voucher.cancelled`` and ``voucher.expired`` (version 1; docs/events.md).

Each maps a domain event the rewards' service raises (:mod:`loyaltykit._rewards`) in
the write's own unit of work, from what the event carries (nothing is read). Every
payload describes the voucher as it stands after the change, complete enough for the
member's e-mail: the reward (id, name, what it gives), its cost in points, the voucher's
code (stored and printed forms: a ``reward.redeemed`` is the "your voucher" mail),
validity and the spend that paid for it; then what the change adds (the order it was
used on, the points a cancellation or an expiry gave back and their reversal).

Within a write the points' event comes first: a redemption's ``points.spent`` before
its ``reward.redeemed``, a cancellation's (or refunding expiry's) ``points.reversed``
before its ``voucher.cancelled`` (``voucher.expired``).
"""

from __future__ import annotations

from typing import Any

from loyaltykit._outbox import EventDraft
from loyaltykit._pipeline import Work
from loyaltykit._rewards import (
    Reward,
    RewardRedeemed,
    Voucher,
    VoucherCancelled,
    VoucherExpired,
    VoucherUsed,
)
from loyaltykit._services.events import EventService

__all__ = ["map_reward_events", "voucher_payload"]


def map_reward_events(events: EventService) -> None:
    """Append the rewards' outbox events for the rewards' domain events (the facade
    wires it)."""
    events.map(RewardRedeemed, _redeemed)
    events.map(VoucherUsed, _used)
    events.map(VoucherCancelled, _cancelled)
    events.map(VoucherExpired, _expired)


def voucher_payload(voucher: Voucher, reward: Reward | None) -> dict[str, Any]:
    """What every reward and voucher event carries: the voucher and its reward."""
    return {
        "voucher_id": str(voucher.id),
        "code": voucher.code,
        "shown": voucher.shown,
        "status": voucher.status.value,
        "reward": {"id": voucher.reward_id,
                   "name": None if reward is None else reward.name,
                   "kind": None if reward is None else reward.kind.to_dict()},
        "cost": voucher.cost,
        "wallet": voucher.wallet,
        "transaction_id": str(voucher.transaction_id),
        "program_version": voucher.version,
        "issued_at": voucher.issued_at.isoformat(),
        "expires_at": None if voucher.expires_at is None else voucher.expires_at.isoformat(),
    }


def _refund(voucher: Voucher, points: int) -> dict[str, Any]:
    return {"refund_id": None if voucher.refund_id is None else str(voucher.refund_id),
            "points_returned": points}


def _redeemed(work: Work, event: RewardRedeemed) -> list[EventDraft]:
    v = event.voucher
    return [EventDraft("reward.redeemed", v.member_id, v.issued_at,
                       voucher_payload(v, event.reward))]


def _used(work: Work, event: VoucherUsed) -> list[EventDraft]:
    v = event.voucher
    assert v.used_at is not None
    return [EventDraft("voucher.used", v.member_id, v.used_at, {
        **voucher_payload(v, event.reward),
        "used_at": v.used_at.isoformat(),
        "order_id": v.order_id,
    })]


def _cancelled(work: Work, event: VoucherCancelled) -> list[EventDraft]:
    v = event.voucher
    assert v.cancelled_at is not None
    return [EventDraft("voucher.cancelled", v.member_id, v.cancelled_at, {
        **voucher_payload(v, event.reward),
        "cancelled_at": v.cancelled_at.isoformat(),
        "reason": event.reason,
        **_refund(v, event.points_returned),
    })]


def _expired(work: Work, event: VoucherExpired) -> list[EventDraft]:
    v = event.voucher
    assert v.expired_at is not None
    return [EventDraft("voucher.expired", v.member_id, v.expired_at, {
        **voucher_payload(v, event.reward),
        "expired_at": v.expired_at.isoformat(),
        "refunded": v.refund_id is not None,
        **_refund(v, event.points_returned),
    })]
