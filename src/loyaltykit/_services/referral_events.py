"""The referrals' events in the outbox: ``referral.attributed``, ``.approved``,
``.rewarded`` and ``.voided``.

The referrals' service raises a :class:`ReferralChanged` domain event whenever it
records a referral or changes its status, in the same unit of work;
:class:`ReferralEvents` (wired by the facade with
:meth:`~loyaltykit._services.events.EventService.map`) turns each into one outbox event
for **each side**: the referrer's first (the event's member is the referrer, ``role``
is ``"referrer"`` and ``referee_id`` names the referee), then the referee's (``role``
``"referee"``, ``referrer_id``). The other party is named by the shop's member id: the
outbox stores it as the member key (like ``counterpart_member_id``), so once that party
is erased it reads ``"erased:<key>"`` and nothing of its shop id is kept.

=====================  ===================================  ======================
status change          event                                ``cause`` (voided)
=====================  ===================================  ======================
new: waiting, flagged  ``referral.attributed`` (``status``)
new: blocked           ``referral.voided``                  ``"blocked"``
flagged -> waiting     ``referral.approved``
waiting -> qualified   ``referral.rewarded``
flagged -> rejected    ``referral.voided``                  ``"rejected"``
qualified -> voided    ``referral.voided``                  ``"returned"``
=====================  ===================================  ======================

Approving a flagged referral whose qualifying order was noted meanwhile is two
changes, so two events: ``referral.approved``, then ``referral.rewarded``. Noting or
un-noting a flagged referral's order changes no status and raises nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs

from loyaltykit._outbox import EventDraft
from loyaltykit._pipeline import Work
from loyaltykit._program import Program, zone
from loyaltykit._referrals import Referral, ReferralStatus, add_days

__all__ = ["ReferralChanged", "ReferralEvents"]

S = ReferralStatus


@attrs.frozen
class ReferralChanged:
    """Domain event: a referral was recorded (``before`` None) or its status changed,
    from ``before`` to ``after``, at the write's business instant ``at``."""

    before: Referral | None
    after: Referral
    at: dt.datetime


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.astimezone(dt.UTC).isoformat()


def _kind(before: ReferralStatus | None, after: ReferralStatus) -> tuple[str, str | None]:
    """The event type of a status change, and a void's cause."""
    if after is S.BLOCKED:
        return "referral.voided", "blocked"
    if after is S.REJECTED:
        return "referral.voided", "rejected"
    if after is S.VOIDED:
        return "referral.voided", "returned"
    if after is S.QUALIFIED:
        return "referral.rewarded", None
    if before is S.FLAGGED and after is S.WAITING:
        return "referral.approved", None
    if before is None:  # waiting or flagged
        return "referral.attributed", None
    raise AssertionError(f"no event for a referral going from {before} to {after}")


class ReferralEvents:
    """The mapper of :class:`ReferralChanged` to the referral events of both sides, for
    one program (``events.map(ReferralChanged, ReferralEvents(program))``)."""

    def __init__(self, program: Program) -> None:
        self.program = program

    def __call__(self, work: Work, event: ReferralChanged) -> list[EventDraft]:
        r = event.after
        kind, cause = _kind(None if event.before is None else event.before.status, r.status)
        common: dict[str, Any] = {
            "status": r.status.value,
            "source": r.source.value,
            "campaign": r.campaign,
            "attributed_at": _iso(r.attributed_at),
            "reasons": list(r.reasons),
        }
        if kind in ("referral.attributed", "referral.approved"):
            policy = self.program.referrals
            assert policy is not None, "only a program with referrals attributes"
            reward, _ = policy.reward_for(r.source, r.attributed_at)
            common["qualify_by"] = _iso(add_days(
                r.attributed_at, policy.qualify_within_days, zone(self.program.time_zone)))
            common["min_net"] = None if policy.min_net is None else policy.min_net.to_dict()
            common["reward"] = reward.to_dict()
        if kind == "referral.approved" or cause is not None:
            common["decided_at"] = _iso(r.decided_at)
        if cause is not None:
            common["cause"] = cause
        if kind == "referral.rewarded" or cause == "returned":
            common["order_id"] = r.order_id
            common["qualified_at"] = _iso(r.qualified_at)
            common["settles_at"] = _iso(r.settles_at)
            common["referrer_points"] = r.referrer_points
            common["referee_points"] = r.referee_points
        drafts = []
        for role, member_id, other, points, tx in (
                ("referrer", r.referrer_id, {"referee_id": r.referee_id}, r.referrer_points,
                 r.referrer_tx),
                ("referee", r.referee_id, {"referrer_id": r.referrer_id}, r.referee_points,
                 r.referee_tx)):
            payload = {"role": role, **other, **common}
            if "order_id" in common:  # this side's points: granted, or now taken back
                payload["points"] = points
                payload["transaction_id"] = None if tx is None else str(tx)
            drafts.append(EventDraft(kind, member_id, event.at, payload))
        return drafts
