"""What the state machine checks of the outbox after every step: it holds one event for
each change stored, each once, in increasing positions (see
:meth:`loyaltykit.testing.machine.LedgerMachine.outbox_records_every_change_once`).
Each capability's part stays in its own module; this gathers them."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from loyaltykit._outbox import OutboxEvent
from loyaltykit._program import Program
from loyaltykit.storage import Storage
from loyaltykit.testing.capability_events import check_capability_events
from loyaltykit.testing.invariants import LedgerSnapshot
from loyaltykit.testing.notices import check_notices_once
from loyaltykit.testing.voucher_events import voucher_event_problems

__all__ = ["check_outbox"]


def check_outbox(storage: Storage, program: Program, members: Sequence[str],
                 orders: Collection[str], snapshot: LedgerSnapshot,
                 events: Sequence[OutboxEvent]) -> None:
    """Assert that ``events`` (every event of the program, in position order) hold one
    ``points.*`` event per transaction in ``snapshot``, one ``member.enrolled`` per
    member enrolled, one ``order.recorded`` per order in ``orders``, the tier, referral
    and voucher events of the changes stored, no notice subject twice, each id once and
    positions strictly increasing."""
    label = f"{storage!r}: the outbox"
    posted = sorted(e.payload["transaction_id"] for e in events
                    if e.type.startswith("points.") and "transaction_id" in e.payload)
    stored = sorted(str(tx.id) for w in snapshot.wallets.values() for tx in w.transactions)
    assert stored == posted, f"{label} does not hold one event per transaction"
    enrolled = sorted(e.member_id for e in events if e.type == "member.enrolled")
    enrolled_stored = sorted(m for m, member in snapshot.members.items() if member)
    assert enrolled_stored == enrolled, f"{label} does not hold one event per member"
    check_capability_events(storage, program, members, events, label)
    recorded = sorted(e.payload["order_id"] for e in events if e.type == "order.recorded")
    assert sorted(orders) == recorded, f"{label}: not one event per order"
    wrong = list(voucher_event_problems(events, snapshot.vouchers.values()))
    assert not wrong, f"{label}, the vouchers' events:\n" + "\n".join(wrong)
    assert len(events) == len({e.id for e in events}), f"{label}: an id twice"
    check_notices_once(events, label)
    positions = [e.position for e in events]
    assert positions == sorted(set(positions)), f"{label}: positions out of order"
