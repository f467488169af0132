"""The events' service: the outbox every change is recorded in, and its consumers
(``loyalty.events``).

Appending is a subscriber's job: for each domain event type a *mapper* turns the
domain event into outbox events (:class:`~loyaltykit._outbox.EventDraft`), appended in
the same unit of work, so an outbox event exists exactly when its change does. This
module maps what the ledger and the orders raise (enrolment, every posted transaction,
orders recorded, returned and cancelled, erasure); another capability maps its own
domain events from its own module with :meth:`EventService.map`.

Consumers read in position order from their stored position and acknowledge what they
handled (:meth:`EventService.read`, :meth:`EventService.ack`): reading does not move
the position, so delivery is at-least-once. :meth:`EventService.follow` does both in a
loop and waits for new events. Positions never skip an event that commits later (see
:mod:`loyaltykit._outbox`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from loyaltykit._errors import InvalidInput, InvalidPosition, shown
from loyaltykit._events import (
    DuePosted,
    MemberEnrolled,
    MemberErased,
    OrderRecorded,
    OrderReturned,
    PointsPosted,
)
from loyaltykit._member_keys import ERASED_PREFIX
from loyaltykit._model import MEMBER_ACCOUNTS, Account, Kind, Transaction
from loyaltykit._outbox import (
    EVENT_VERSION,
    EventConsumer,
    EventDraft,
    EventPosition,
    NewEvent,
    OutboxEvent,
)
from loyaltykit._pipeline import EventBus, Work
from loyaltykit._program import ClawbackPolicy
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._validate import check_consumer, check_count
from loyaltykit.storage import OutboxChanges

#: The member's accounts by value (a due row's postings name them so).
_MEMBER_ACCOUNT_NAMES = frozenset(a.value for a in MEMBER_ACCOUNTS)

__all__ = ["MAX_READ", "POINTS_EVENTS", "EventService", "Mapper"]

logger = logging.getLogger("loyaltykit")

E = TypeVar("E")

#: What a mapper does: the outbox events a domain event stands for.
Mapper = Callable[[Work, E], Iterable[EventDraft]]

#: The scratch entry holding the last transaction's id and its text (see _points_payload).
_LAST_TX = "events.last_tx"

#: The most events one read returns.
MAX_READ = 10_000
#: Events pruned per unit of work.
_PRUNE_BATCH = 1_000

#: The outbox event of each kind of ledger transaction.
POINTS_EVENTS: Mapping[Kind, str] = {
    Kind.EARN: "points.earned",
    Kind.SPEND: "points.spent",
    Kind.EXPIRE: "points.expired",
    Kind.CLAWBACK: "points.clawed_back",
    Kind.ADJUST: "points.adjusted",
    Kind.TRANSFER: "points.transferred",
    Kind.REVERSE: "points.reversed",
    Kind.REFUND: "points.refunded",
    Kind.HOLD: "points.held",
    Kind.CAPTURE: "points.captured",
    Kind.RELEASE: "points.released",
    Kind.ACTIVATE: "points.activated",
}

#: Each kind's outbox event type and the kind's value (one lookup, no Enum descriptor).
_KINDS: Mapping[Kind, tuple[str, str]] = {k: (t, k.value) for k, t in POINTS_EVENTS.items()}
#: The member's buckets as an event shows their changes: name and sign (debt as owed).
_MEMBER_BUCKETS = tuple((a, a.value, -1 if a is Account.DEBT else 1)
                        for a in Account if a in MEMBER_ACCOUNTS)


def _add(work: Work, event_type: str, member_id: str, occurred_at: dt.datetime,
         payload: Mapping[str, Any], version: int = EVENT_VERSION) -> None:
    """Append one event to this write's outbox part, with a new id (a draft's, or an
    event built straight from its fields)."""
    work.part(OutboxChanges).events.append(NewEvent(
        id=work.ledger.new_id(), type=event_type, version=version, member_id=member_id,
        occurred_at=occurred_at, recorded_at=work.recorded_at, payload=payload))


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


#: the acknowledgement time of a stream a consumer never acknowledged anything in
_NEVER = dt.datetime.min.replace(tzinfo=dt.UTC)


class EventService:
    """The outbox of one program and its consumers (see the module docstring);
    ``loyalty.events``."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger
        # a balance shows available net of debt where the policy allows negative ones
        self._negative = c.program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE

    # -- appending --------------------------------------------------------------------------

    def subscribe(self, bus: EventBus) -> None:
        """Record what the ledger and the orders raise; scrub an erased member's events.
        Subscribed before the other capabilities, so a change's own event comes before
        the events of the reactions to it."""
        # the events every order raises (its earn, the order) and an enrolment's are
        # appended straight from their fields, with no draft per event (a history
        # import raises them for every order and new member: building, checking and
        # copying drafts was a third of their outbox time)
        bus.subscribe(MemberEnrolled, self._enrolled, records=True)
        bus.subscribe(PointsPosted, self._posted, records=True)
        bus.subscribe(DuePosted, self._due_posted, records=True)
        bus.subscribe(OrderRecorded, self._order_recorded, records=True)
        self.map(OrderReturned, self._order_returned, bus)
        bus.subscribe(MemberErased, self._scrub)
        self.map(MemberErased, self._erased, bus)

    def map(self, event_type: type[E], mapper: Mapper[E], bus: EventBus | None = None
            ) -> None:
        """Append the outbox events ``mapper(work, event)`` returns for every domain
        event of ``event_type`` raised, in the same unit of work (a capability maps its
        own domain events this way)."""
        def append(work: Work, event: E) -> None:
            self.append(work, mapper(work, event))

        (bus if bus is not None else self.c.bus).subscribe(event_type, append, records=True)

    @staticmethod
    def append(work: Work, drafts: Iterable[EventDraft]) -> None:
        """Append ``drafts`` to this write's outbox part, each with a new id."""
        for draft in drafts:
            if "member_id" in draft.payload:  # the event carries it (erasable)
                raise AssertionError(f"a payload repeats the member's id: {draft.type}")
            _add(work, draft.type, draft.member_id, draft.occurred_at, draft.payload,
                 draft.version)

    def _enrolled(self, work: Work, event: MemberEnrolled) -> None:
        """Append the enrolment's event."""
        member = event.member
        _add(work, "member.enrolled", member.member_id, member.enrolled_at, {
            "enrolled_at": member.enrolled_at.isoformat(),
            "attributes": dict(member.attributes)})

    def _posted(self, work: Work, event: PointsPosted) -> None:
        """Append the transaction's event (its payload holds no member id)."""
        tx = event.transaction
        event_type, kind = _KINDS[tx.kind]
        _add(work, event_type, tx.member_id, tx.occurred_at,
             self._points_payload(work, tx, kind))

    def _due_posted(self, work: Work, event: DuePosted) -> None:
        """The outbox events of due transactions posted set-based: what
        :meth:`_posted` appends for each (same payload, field for field), with the
        event ids the due work drew after each transaction's (the per-member path's
        order of ids)."""
        events = work.part(OutboxChanges).events
        recorded_at = work.recorded_at
        for (event_id, tx_id, member_id, wallet, kind, occurred_at, postings,
             (available, pending, held, debt), reason, metadata) in event.records:
            assert event_id is not None
            events.append(NewEvent(
                id=event_id, type=POINTS_EVENTS[Kind(kind)], version=EVENT_VERSION,
                member_id=member_id, occurred_at=occurred_at, recorded_at=recorded_at,
                payload={
                    "transaction_id": str(tx_id), "kind": kind, "wallet": wallet,
                    "points": sum(n for a, n in postings if a in _MEMBER_ACCOUNT_NAMES),
                    "changes": {a: -n if a == "debt" else n for a, n in postings
                                if a in _MEMBER_ACCOUNT_NAMES and n},
                    "balance": {"available": available, "pending": pending, "held": held,
                                "debt": debt,
                                "total": available + pending + held - debt
                                + (debt if self._negative else 0)},
                    "reason": reason, "metadata": metadata}))

    def _points_payload(self, work: Work, tx: Transaction, kind: str) -> dict[str, Any]:
        ledger = work.ledger
        metadata = dict(tx.metadata)
        tx_id = str(tx.id)
        # an order's earn is named again by the order's event (its earn_id): the text
        # is kept for it (a UUID's text costs as much as the rest of the event's ids)
        work.scratch[_LAST_TX] = (tx.id, tx_id)
        # the member's buckets by identity, in one pass: an Enum hashes and shows its
        # value through Python calls, several per posting
        points = 0
        changes: dict[str, int] = {}  # what moved; debt as owed (positive: owes more)
        for posting in tx.postings:
            account, amount = posting.account, posting.amount
            for member_account, name, sign in _MEMBER_BUCKETS:
                if account is member_account:
                    points += amount
                    if amount:
                        changes[name] = sign * amount
                    break
        payload: dict[str, Any] = {
            "transaction_id": tx_id,
            "kind": kind,
            "wallet": tx.wallet,
            "points": points,
            "changes": changes,
        }
        try:
            state = ledger.book(tx.member_id, tx.wallet).state
        except KeyError:  # pragma: no cover - every posting book is registered
            state = None
        if state is not None:  # as Balance shows it (LedgerService.balance_from_sums)
            debt = -state.debt
            available = state.available - (debt if self._negative else 0)
            payload["balance"] = {
                "available": available, "pending": state.pending, "held": state.held,
                "debt": debt, "total": state.available + state.pending + state.held - debt}
        lots = []
        for move in tx.movements:
            lot = ledger.changes.lots.get(move.lot_id) if move.delta > 0 else None
            if lot is not None and (lot.transaction_id is tx.id
                                    or lot.transaction_id == tx.id):
                lots.append({"lot_id": str(lot.id), "points": move.delta,
                             "pending": lot.pending, "activates_at": _iso(lot.activates_at),
                             "expires_at": _iso(lot.expires_at)})
        if lots:
            payload["lots"] = lots
        if tx.reverses_id is not None:
            payload["reverses_id"] = str(tx.reverses_id)
        counterpart = metadata.pop("counterpart_member_id", None)
        if counterpart is not None:  # stored as a member key, shown as the shop's id
            payload["counterpart_member_id"] = counterpart
        payload["reason"] = tx.reason
        payload["metadata"] = metadata
        return payload

    def _order_recorded(self, work: Work, event: OrderRecorded) -> None:
        """Append the order's event (its payload holds no member id: the order's is
        left out)."""
        record = event.record
        order = dict(record.order)
        order.pop("member_id", None)
        evaluation = dict(record.evaluation)
        # the rule by rule breakdown, without the member's context (its id and
        # attributes: the event carries the one, the other is erasable)
        evaluation.pop("context", None)
        earn_id = record.earn_id
        earn: str | None = None
        if earn_id is not None:
            last = work.scratch.get(_LAST_TX)
            earn = (last[1] if last is not None and (last[0] is earn_id or last[0] == earn_id)
                    else str(earn_id))
        _add(work, "order.recorded", record.member_id, record.placed_at, {
            "order_id": record.order_id,
            "placed_at": record.placed_at.isoformat(),
            "points": record.points,
            "earn_id": earn,
            "wallet": event.wallet,
            "program_version": record.version,
            "paid_with": [str(p) for p in record.payments],
            "order": order,
            "evaluation": evaluation,
        })

    def _order_returned(self, work: Work, event: OrderReturned) -> list[EventDraft]:
        record = event.record
        left = {line.id: line.quantity for line in event.after.lines}
        lines = [{"line_id": line.id, "sku": line.sku, "quantity": line.quantity - left.get(
                      line.id, 0), "unit_price": str(line.unit_price.amount)}
                 for line in event.before.lines if line.quantity > left.get(line.id, 0)]
        kind = "order.cancelled" if event.cancelled else "order.returned"
        return [EventDraft(kind, record.member_id, event.at, {
            "order_id": record.order_id,
            "returned_at": event.at.isoformat(),
            "cancelled": event.cancelled,
            "lines": lines,
            "points_before": record.points,
            "wallet": event.wallet,
        })]

    def _erased(self, work: Work, event: MemberErased) -> list[EventDraft]:
        return [EventDraft("member.erased", ERASED_PREFIX + event.member_key, event.erased_at,
                           {"erased_at": event.erased_at.isoformat()})]

    @staticmethod
    def _scrub(work: Work, event: MemberErased) -> None:
        """Empty the member's attributes kept in its events (``member.enrolled``)."""
        work.uow.outbox.erase(ERASED_PREFIX + event.member_key)

    # -- consumers --------------------------------------------------------------------------

    def read(self, consumer: str, limit: int = 100) -> list[OutboxEvent]:
        """The next events for ``consumer``: up to ``limit`` (1-10000) events after the
        position it acknowledged last (from the first event if it never did), in
        position order. Reading does not move the position: acknowledge what you
        handled with :meth:`ack` (delivery is at-least-once; de-duplicate on the
        event's ``id``). An event whose transaction may still commit before an earlier
        position is never passed over: what cannot be read yet comes in a later read.

        A read returns events of one stream (one on a single server; see
        docs/events.md for a distributed engine's): of the streams with events to read,
        the one the consumer acknowledged longest ago (never first), so acknowledging
        the last event read is all a consumer does, and every stream is read in turn.
        """
        consumer = check_consumer(consumer)
        limit = check_count(limit, "limit", 1, MAX_READ)
        with self.c.read() as uow:
            outbox = uow.outbox
            streams = outbox.streams()
            if not streams:
                return []
            acked = {c.position.stream: c for c in outbox.consumer_positions(consumer)}
            if len(streams) > 1:  # least recently acknowledged first, never first of all
                def turn(stream: int) -> tuple[bool, dt.datetime, int]:
                    found = acked.get(stream)
                    return (found is not None, _NEVER if found is None else found.acked_at,
                            stream)

                streams.sort(key=turn)
            for stream in streams:
                found = acked.get(stream)
                events = outbox.read(stream, None if found is None else found.position,
                                     limit)
                if events:
                    return events
            return []

    def ack(self, consumer: str, event: OutboxEvent | EventPosition) -> EventPosition:
        """Acknowledge that ``consumer`` handled everything up to ``event`` (an event
        read, or its position) and return the consumer's position now.

        A position never moves backwards: acknowledging an earlier one changes nothing
        (the stored one is returned). A position past the last event the consumer can
        read now raises :class:`~loyaltykit.InvalidPosition`, with nothing written."""
        consumer = check_consumer(consumer)
        if isinstance(event, OutboxEvent):
            position = event.position
        elif isinstance(event, EventPosition):
            position = event
        else:
            raise InvalidInput("event must be an OutboxEvent or an EventPosition",
                               event=shown(event))
        when = self.c.now()

        def apply(work: Work) -> EventPosition:
            moved = work.uow.outbox.set_consumer_position(consumer, position,
                                                          work.recorded_at)
            if moved is None:
                last = work.uow.outbox.last_position(position.stream)
                raise InvalidPosition(
                    "the position is past the last event the consumer can read",
                    consumer=consumer, position=position.to_str(),
                    last=None if last is None else last.to_str())
            return moved

        return self.c.pipeline.batch(when, apply, retry=True, what="ack")

    def position(self, consumer: str) -> EventPosition | None:
        """The position ``consumer`` acknowledged last (None: it never did): where
        events come in several streams, its position in the stream it acknowledged
        something in last (:meth:`positions` has them all)."""
        consumer = check_consumer(consumer)
        with self.c.read() as uow:
            found = uow.outbox.consumer_positions(consumer)
        if not found:
            return None
        return max(found, key=lambda c: (c.acked_at, c.position)).position

    def positions(self, consumer: str) -> list[EventPosition]:
        """Every position ``consumer`` acknowledged, one a stream, by stream (one on a
        single server)."""
        consumer = check_consumer(consumer)
        with self.c.read() as uow:
            return [c.position for c in uow.outbox.consumer_positions(consumer)]

    def consumers(self) -> list[EventConsumer]:
        """Every consumer that acknowledged something: its position and when, by name
        (and stream: one entry a stream it acknowledged something in)."""
        with self.c.read() as uow:
            return uow.outbox.consumers()

    def follow(self, consumer: str, *, batch: int = 100, poll: float = 1.0,
               stop: Callable[[], bool] | None = None) -> Iterator[OutboxEvent]:
        """Yield ``consumer``'s events as they come, for ever (or until ``stop()`` is
        true: it is asked before each read and while waiting).

        Events are read ``batch`` at a time; a batch is acknowledged when the next
        event after it is asked for (so once the caller has handled all of it): an
        event the caller was handling when it stopped, or raised on, is read again by
        the next follower. With nothing to read it waits up to ``poll`` seconds
        (0.001-3600): on PostgreSQL it wakes when an event is committed if the storage
        sends notifications (``SQLStorage(..., notify=True)``), elsewhere it polls.
        """
        consumer = check_consumer(consumer)
        batch = check_count(batch, "batch", 1, MAX_READ)
        if isinstance(poll, bool) or not isinstance(poll, int | float) \
                or not 0.001 <= poll <= 3600:
            raise InvalidInput("poll must be a number of seconds from 0.001 to 3600",
                               poll=shown(poll))
        if stop is not None and not callable(stop):
            raise InvalidInput("stop must be callable (or None)", stop=shown(stop))
        return self._follow(consumer, batch, float(poll), stop)

    def _follow(self, consumer: str, batch: int, poll: float,
                stop: Callable[[], bool] | None) -> Iterator[OutboxEvent]:
        make_waiter = getattr(self.c.storage, "event_waiter", None)
        waiter = make_waiter(self.program.id) if callable(make_waiter) else None
        try:
            handled: EventPosition | None = None
            while True:
                if handled is not None:
                    self.ack(consumer, handled)
                    handled = None
                if stop is not None and stop():
                    return
                events = self.read(consumer, batch)
                if events:
                    yield from events
                    handled = events[-1].position
                elif waiter is not None:
                    waiter.wait(poll)
                else:
                    time.sleep(poll)
        finally:
            if waiter is not None:
                waiter.close()

    # -- retention --------------------------------------------------------------------------

    def prune(self, before: dt.datetime) -> int:
        """Delete the events recorded before ``before`` that every consumer has
        acknowledged (every such event when no consumer ever acknowledged anything),
        batch by batch, and return how many. The last event stays, so positions never
        start over. ``before`` may not be later than now."""
        if before is None:  # never "now" by default: pruning is told up to when
            raise InvalidInput("before must be an instant", before=None)
        when = self.c.instant(before, "before")
        total = 0
        while True:
            pruned = self.c.pipeline.batch(
                self.c.now(), lambda work: work.uow.outbox.prune(when, _PRUNE_BATCH),
                retry=True, what="prune")
            total += pruned
            if pruned < _PRUNE_BATCH:
                return total

    def due(self, at: dt.datetime, batch_size: int, workers: int) -> dict[str, int]:
        """Due work: prune acknowledged events older than the program's
        ``events.retention_days`` (nothing without one)."""
        policy = self.program.events
        if policy is None or policy.retention_days is None:
            return {}
        pruned = self.prune(at - dt.timedelta(days=policy.retention_days))
        if pruned:
            logger.info("pruned %d events", pruned)
        return {"pruned_events": pruned}
