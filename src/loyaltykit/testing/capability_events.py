"""State-machine checks of the tiers' and the referrals' outbox events.

:func:`check_capability_events` is called by
:meth:`loyaltykit.testing.machine.LedgerMachine.outbox_records_every_change_once` on
every backend after every step, with the events read: a member's ``tier.changed``
events are its stored tier history, line for line, each once (none for a refused or
replayed write, none without a line); and each referral's events are its status
changes, each once, told to both sides alike, ending in the status stored. On a program
without tiers or referrals it checks that there are no such events;
:mod:`loyaltykit.testing.capability_machine` runs the machine on a program with both.
"""

from __future__ import annotations

from collections.abc import Sequence

from loyaltykit._outbox import OutboxEvent
from loyaltykit._program import Program
from loyaltykit._referrals import Referral
from loyaltykit.storage import Storage
from loyaltykit.testing import by_shop_ids

__all__ = ["REFERRAL_STEPS", "check_capability_events"]

#: (status before, status after) -> the event a referral's change is told by
REFERRAL_STEPS = {
    (None, "waiting"): "referral.attributed",
    (None, "flagged"): "referral.attributed",
    (None, "blocked"): "referral.voided",
    ("flagged", "waiting"): "referral.approved",
    ("flagged", "rejected"): "referral.voided",
    ("waiting", "qualified"): "referral.rewarded",
    ("qualified", "voided"): "referral.voided",
}


def check_capability_events(storage: Storage, program: Program, members: Sequence[str],
                            events: Sequence[OutboxEvent], label: str) -> None:
    """Check the ``tier.changed`` and ``referral.*`` events among ``events`` (the whole
    outbox of ``program`` on ``storage``, in order) against what is stored for
    ``members`` (see the module docstring)."""
    tiers = [e for e in events if e.type.startswith("tier.")]
    referrals = [e for e in events if e.type.startswith("referral.")]
    history = {}
    stored: dict[str, Referral] = {}
    with by_shop_ids(storage).unit_of_work(program.id) as uow:
        for member_id in members:
            if program.tiers is not None:
                history[member_id] = uow.tiers.tier_history(member_id)
            if program.referrals is not None:
                found = uow.referrals.get_referral(member_id)
                if found is not None:
                    stored[member_id] = found
    assert {e.member_id for e in tiers} <= set(history), f"{label}: a tier event too many"
    for member_id, lines in history.items():
        told = [(e.occurred_at, e.payload["from"], e.payload["to"], e.payload["reason"],
                 e.payload["note"]) for e in tiers if e.member_id == member_id]
        kept = [(c.at, c.from_tier, c.to_tier, c.reason, c.note) for c in lines]
        assert kept == told, (f"{label}: the tier.changed events of {member_id!r} are not "
                              f"its tier history, each once:\n  history: {kept}\n"
                              f"  events:  {told}")
    referees = {e.member_id if e.payload["role"] == "referee" else e.payload["referee_id"]
                for e in referrals}
    assert referees <= set(stored), f"{label}: referral events of no referral stored"
    for referee_id, referral in stored.items():
        mine = [(e.type, e.payload["status"]) for e in referrals
                if e.payload["role"] == "referee" and e.member_id == referee_id]
        theirs = [(e.type, e.payload["status"], e.member_id) for e in referrals
                  if e.payload["role"] == "referrer" and e.payload["referee_id"] == referee_id]
        assert mine == [(t, s) for t, s, _ in theirs], (
            f"{label}: the referral of {referee_id!r} is told differently to its sides")
        assert {referral.referrer_id} >= {m for *_, m in theirs}, f"{label}: not the referrer"
        before: str | None = None
        for kind, status in mine:
            expected = REFERRAL_STEPS.get((before, status))
            assert expected == kind, (f"{label}: the referral of {referee_id!r} went from "
                                      f"{before} to {status} told as {kind}: {mine}")
            before = status
        assert referral.status.value == before, (
            f"{label}: the referral of {referee_id!r} is {referral.status.value}, its "
            f"events end at {before}: {mine}")
