"""The notices' invariant: no subject is noticed twice (DESIGN §8, scenario O2).

:func:`check_notices_once` takes the events a consumer read and fails if two notices
of one type name the same subject: a lot in two ``points.expiring`` events, a voucher
in two ``voucher.expiring`` events, a member's evaluation in two ``tier.will_drop``
events. The state machine (:mod:`loyaltykit.testing.machine`) runs it on every
backend after every step.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from loyaltykit._notices import POINTS_EXPIRING, TIER_WILL_DROP, VOUCHER_EXPIRING
from loyaltykit._outbox import OutboxEvent

__all__ = ["check_notices_once", "notice_subjects"]


def notice_subjects(events: Iterable[OutboxEvent]) -> list[tuple[str, str, str]]:
    """The ``(type, member_id, subject)`` of every notice among ``events``, in order."""
    found: list[tuple[str, str, str]] = []
    for event in events:
        payload = event.payload
        if event.type == POINTS_EXPIRING:
            found.extend((event.type, event.member_id, lot["lot_id"])
                         for lot in payload["lots"])
        elif event.type == VOUCHER_EXPIRING:
            found.append((event.type, event.member_id, payload["voucher_id"]))
        elif event.type == TIER_WILL_DROP:
            found.append((event.type, event.member_id, payload["evaluation_at"]))
    return found


def check_notices_once(events: Iterable[OutboxEvent], label: str = "the outbox") -> None:
    """Fail if any subject has two notices among ``events``."""
    twice = [s for s, n in Counter(notice_subjects(events)).items() if n > 1]
    assert not twice, f"{label}: notices emitted twice: {twice}"
