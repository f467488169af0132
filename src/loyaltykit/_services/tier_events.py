"""The tiers' events in the outbox: ``tier.changed``.

Every line appended to a member's tier history is raised as a
:class:`~loyaltykit._tiers.TierChanged` domain event in the unit of work that appends it
(an upgrade on earning or on an order, a revert on a return, an evaluation caught up on
by a write or run by due work, a manual assignment); :class:`TierEvents` turns it into
one ``tier.changed`` event of the member (version 1), wired by the facade with
:meth:`~loyaltykit._services.events.EventService.map`. So the member's ``tier.changed``
events are its tier history, line for line. A member starts on the base tier: an
enrolment appends no line and no event.

The payload names the tiers as the program does and carries what an e-mail needs:
the direction, why, the figure the decision read against the new tier's threshold, how
long the tier is kept and the new tier's benefits (see ``docs/events.md``).

Due work's evaluations, where the outbox is the only listener, have the store append
these events itself (:meth:`TierEvents.outbox` says what they hold:
:mod:`loyaltykit.storage.tier_due_set`), the same events without an object per member.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Callable
from typing import Any

from loyaltykit._outbox import EVENT_VERSION, EventDraft
from loyaltykit._pipeline import Work
from loyaltykit._program import Program
from loyaltykit._tiers import TierChanged, TierJob, TierMetric, TierPolicy
from loyaltykit._values import Money
from loyaltykit.storage.tier_due_set import TierOutbox, TierRung

__all__ = ["TierEvents"]


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else _utc_text(at)


# a due tier batch names the same few instants (its evaluation, the next, the end of
# protection) in every event: converting and formatting them anew was a sixth of the
# mapper's cost (equal instants in other zones hash alike and give the same UTC text)
@functools.lru_cache(maxsize=256)
def _utc_text(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


class TierEvents:
    """The mapper of :class:`~loyaltykit._tiers.TierChanged` to ``tier.changed`` for
    one program (``events.map(TierChanged, TierEvents(program))``)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        # the ladder's thresholds in metric units, worked out once (the policy's
        # property builds them anew: a tenth of a due tier batch's Python here)
        self._thresholds = program.tiers.thresholds if program.tiers is not None else ()
        # the ranks by name (the policy's rank() walks the ladder: two a change)
        self._ranks = ({t.name: i for i, t in enumerate(program.tiers.tiers)}
                       if program.tiers is not None else {})

    def _figure(self, policy: TierPolicy, units: int) -> Any:
        """A metric figure as JSON: an int of points or orders, spend as money."""
        value = policy.units_as(units, self.program.currency)
        return value.to_dict() if isinstance(value, Money) else value

    def outbox(self, job: TierJob, work: Work,
               new_ids: Callable[[int], list[uuid.UUID]]) -> TierOutbox | None:
        """What the ``tier.changed`` events of ``job``'s changes hold, for a store that
        appends them itself in ``work``; None where a figure is money (spend: its JSON
        is left to this mapper)."""
        policy = self.program.tiers
        if policy is None or policy.metric is TierMetric.SPEND:
            return None
        return TierOutbox(
            type="tier.changed", version=EVENT_VERSION, metric=policy.metric.value,
            ladder=[TierRung(t.name, self._thresholds[i], t.benefits.to_dict())
                    for i, t in enumerate(policy.tiers)],
            changed_at=_utc_text(job.at), next_evaluation=_iso(job.next_at),
            recorded_at=work.recorded_at, new_ids=new_ids)

    def __call__(self, work: Work, event: TierChanged) -> list[EventDraft]:
        policy = self.program.tiers
        assert policy is not None, "only a program with tiers raises TierChanged"
        change = event.change
        ranks = self._ranks
        before = ranks.get(change.from_tier)
        after = ranks.get(change.to_tier)
        if before is None or after is None:  # not on the ladder: the policy's error
            before, after = policy.rank(change.from_tier), policy.rank(change.to_tier)
        tier = policy.tiers[after]
        return [EventDraft("tier.changed", change.member_id, change.at, {
            "from": change.from_tier,
            "to": change.to_tier,
            # "same": a manual assignment that leaves the member where it was
            "direction": "up" if after > before else "down" if after < before else "same",
            "reason": change.reason,
            "note": change.note,
            "changed_at": _iso(change.at),
            "metric": policy.metric.value,
            # the figure the decision read (none for a manual change: it read none)
            "qualifying": (None if change.reason == "manual"
                           else self._figure(policy, change.metric)),
            "threshold": self._figure(policy, self._thresholds[after]),
            "protected_until": _iso(event.protected_until),
            "next_evaluation": _iso(event.next_evaluation),
            "benefits": tier.benefits.to_dict(),
        })]
