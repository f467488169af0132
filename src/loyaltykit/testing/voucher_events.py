"""The state machine's check of the rewards' events: the ``reward.redeemed`` and
``voucher.*`` events read from the outbox are exactly the changes of the vouchers
stored, each once.

Every voucher has one ``reward.redeemed`` (right after its redemption's
``points.spent``), then, once it is not issued any more, one event of its end
(``voucher.used``, ``voucher.cancelled`` or ``voucher.expired``) whose payload agrees
with what is stored; an issued voucher has no other; and no event names a voucher that
is not stored (a refused or rolled-back write left none).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from loyaltykit._outbox import OutboxEvent
from loyaltykit._rewards import Voucher, VoucherStatus

__all__ = ["voucher_event_problems"]

_TYPES = ("reward.redeemed", "voucher.used", "voucher.cancelled", "voucher.expired")


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _expected(v: Voucher, kind: str) -> tuple[dt.datetime | None, dict[str, Any]]:
    """When the event ``kind`` of ``v`` occurred and the payload fields it must show."""
    shared: dict[str, Any] = {
        "code": v.code, "shown": v.shown, "cost": v.cost, "wallet": v.wallet,
        "transaction_id": str(v.transaction_id), "program_version": v.version,
        "issued_at": _iso(v.issued_at), "expires_at": _iso(v.expires_at),
        "reward_id": v.reward_id}
    refund = None if v.refund_id is None else str(v.refund_id)
    if kind == "reward.redeemed":
        return v.issued_at, {**shared, "status": "issued"}
    if kind == "voucher.used":
        return v.used_at, {**shared, "status": "used", "used_at": _iso(v.used_at),
                           "order_id": v.order_id}
    if kind == "voucher.cancelled":
        return v.cancelled_at, {**shared, "status": "cancelled", "refund_id": refund,
                                "cancelled_at": _iso(v.cancelled_at)}
    return v.expired_at, {**shared, "status": "expired", "refund_id": refund,
                          "expired_at": _iso(v.expired_at), "refunded": refund is not None}


def voucher_event_problems(events: Sequence[OutboxEvent], vouchers: Iterable[Voucher]
                           ) -> Iterable[str]:
    """What is wrong with the rewards' events among ``events`` (the outbox in position
    order) for the stored ``vouchers``: each problem as a message."""
    by_voucher: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        if event.type in _TYPES:
            by_voucher.setdefault(str(event.payload.get("voucher_id")), []).append(i)
    for v in vouchers:
        found = by_voucher.pop(str(v.id), [])
        kinds = [events[i].type for i in found]
        want = ["reward.redeemed"] + (
            [] if v.status is VoucherStatus.ISSUED else [f"voucher.{v.status.value}"])
        who = f"voucher {v.shown} ({v.status.value}) of member {v.member_id!r}"
        if kinds != want:
            yield f"{who}: the outbox holds {kinds}, its changes are {want}"
            continue
        before = events[found[0] - 1] if found[0] else None
        if before is None or before.type != "points.spent" \
                or before.payload.get("transaction_id") != str(v.transaction_id):
            yield (f"{who}: its reward.redeemed does not follow the points.spent of "
                   f"{v.transaction_id} (it follows {before.type if before else None})")
        for i in found:
            event = events[i]
            at, fields = _expected(v, event.type)
            payload = {**event.payload, "reward_id": event.payload.get("reward", {}).get("id")}
            wrong = {k: (payload.get(k), value) for k, value in fields.items()
                     if payload.get(k) != value}
            if wrong or (event.member_id, event.occurred_at) != (v.member_id, at):
                yield (f"{who}: its {event.type} ({event.member_id!r} at {event.occurred_at}"
                       f") disagrees with the stored voucher (shown, stored): {wrong}")
    for voucher_id, found in by_voucher.items():
        yield (f"the outbox holds {[events[i].type for i in found]} of voucher "
               f"{voucher_id}, which is not stored")
