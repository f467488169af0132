"""The outbox part of the storage contract (DESIGN §8, scenarios O1 and O3).

:class:`OutboxContract` is mixed into :class:`loyaltykit.testing.contract.StorageContract`,
so every backend runs it (a backend may also run it alone): every change appends its
events in the same unit of work, in the order raised, with stable ids; a refused or
rolled-back write appends nothing; consumers read from their position, acknowledge
forwards only and never past what they can read; pruning keeps what a consumer has not
acknowledged; an erased member's events keep no trace of the shop's id; and the store's
own rules probed directly (positions in write order, a unit of work that rolls back).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import attrs
import pytest

from loyaltykit import (
    EarningPolicy,
    EventPolicy,
    EventPosition,
    InsufficientPoints,
    InvalidInput,
    InvalidPosition,
    Loyalty,
    Money,
    Order,
    OrderLine,
    OutboxEvent,
    Program,
    RateRule,
    Storage,
    TestClock,
)
from loyaltykit._outbox import NewEvent
from loyaltykit.storage import OutboxChanges
from loyaltykit.testing.contract.base import ContractPart, berlin, make_program, utc
from loyaltykit.testing.stored import stored_rows

__all__ = ["OutboxContract", "o_program", "types"]


def o_program(**changes: Any) -> Program:
    """Scenario O's program P: Berlin, EUR, one point per euro of an order (fields of
    :class:`~loyaltykit.Program` in ``changes`` replace the defaults)."""
    return attrs.evolve(make_program(), earning=EarningPolicy(rules=(
        RateRule(id="base", points=Decimal(1), per=Decimal(1)),)), **changes)


def types(events: list[OutboxEvent]) -> list[str]:
    """The types of ``events``, in order."""
    return [e.type for e in events]


def _order(order_id: str, member_id: str, at: dt.datetime, euros: str) -> Order:
    return Order(id=order_id, member_id=member_id, placed_at=at, currency="EUR",
                 lines=(OrderLine(sku="beans", quantity=1, unit_price=Money(euros, "EUR"),
                                  line_id="l1"),))


class OutboxContract(ContractPart):
    """The outbox's part of the storage contract (see the module docstring)."""

    def outbox_text(self, storage: Storage) -> str:
        """What ``storage`` keeps of the outbox, as text to search (override for a
        third-party backend)."""
        rows = stored_rows(storage)
        return "\n".join(f"{name}\n" + "\n".join(found) for name, found in rows.items()
                         if name.startswith(("OutboxTables.", "lk_outbox")))

    def _o1(self, storage: Storage) -> tuple[Loyalty, TestClock]:
        """Scenario O1 up to the read: alice enrols at 09:00 and places order 1001
        worth 100 points at 10:00 (Berlin, 2026-01-15)."""
        clock = TestClock(berlin(2026, 1, 15, 9))
        loyalty = self.make_loyalty(o_program(), storage, clock=clock)
        loyalty.enrol("alice", attributes={"language": "de"})
        clock.set(berlin(2026, 1, 15, 10))
        loyalty.record_order(_order("1001", "alice", clock.now(), "100.00"))
        return loyalty, clock

    # -- O1: what a change appends -------------------------------------------------------

    def test_o1_enrolment_and_order_append_their_events_in_order(
        self, storage: Storage
    ) -> None:
        loyalty, _ = self._o1(storage)
        events = loyalty.events.read("mailer")
        assert ["member.enrolled", "points.earned", "order.recorded"] == types(events)
        assert {"alice"} == {e.member_id for e in events}
        enrolled, earned, recorded = events
        assert berlin(2026, 1, 15, 9) == enrolled.occurred_at
        assert {"language": "de"} == enrolled.payload["attributes"]
        assert berlin(2026, 1, 15, 10) == earned.occurred_at
        assert 100 == earned.payload["points"]
        assert {"order_id": "1001"} == earned.payload["metadata"]
        assert {"available": 100, "pending": 0, "held": 0, "debt": 0, "total": 100} == (
            earned.payload["balance"])
        assert "earn" == earned.payload["kind"]
        assert [100] == [lot["points"] for lot in earned.payload["lots"]]
        assert "1001" == recorded.payload["order_id"]
        assert 100 == recorded.payload["points"]
        assert earned.payload["transaction_id"] == recorded.payload["earn_id"]
        assert "member_id" not in recorded.payload["order"]
        # stable: the same events, ids and positions on every read
        assert events == loyalty.events.read("mailer")
        assert 3 == len({e.id for e in events})
        assert [e.position for e in events] == sorted(e.position for e in events)
        assert all(e.recorded_at == e.occurred_at for e in events)  # not backdated
        # JSON all the way through
        assert events[1].to_dict()["payload"]["balance"]["available"] == 100

    def test_o1_every_kind_of_transaction_has_its_event(self, storage: Storage) -> None:
        loyalty, clock = self._o1(storage)
        loyalty.enrol("bob")
        loyalty.spend("alice", 10, key="s")
        hold = loyalty.hold("alice", 20, key="h", ttl=dt.timedelta(minutes=15))
        loyalty.capture(hold.hold_id, 5, key="c")
        loyalty.adjust("alice", 3, key="a", reason="goodwill")
        loyalty.transfer("alice", "bob", 7, key="t")
        spent = loyalty.spend("alice", 1, key="s2")
        loyalty.reverse(spent.transaction_id, key="r")
        loyalty.clawback("alice", 2, key="cb")
        loyalty.record_return("1001", {"l1": 1}, key="ret")
        events = loyalty.events.read("mailer", limit=100)
        assert [
            "member.enrolled", "points.earned", "order.recorded", "member.enrolled",
            "points.spent", "points.held", "points.captured", "points.adjusted",
            "points.transferred", "points.transferred", "points.spent", "points.reversed",
            "points.clawed_back", "order.returned", "points.clawed_back",
        ] == types(events)
        out, into = events[8:10]
        assert ("alice", "bob") == (out.member_id, into.member_id)
        assert ("bob", "alice") == (out.payload["counterpart_member_id"],
                                    into.payload["counterpart_member_id"])
        assert "counterpart_member_id" not in out.payload["metadata"]
        assert str(spent.transaction_id) == events[11].payload["reverses_id"]
        returned = events[13]
        assert {"order_id": "1001", "cancelled": False} == {
            k: returned.payload[k] for k in ("order_id", "cancelled")}
        assert [{"line_id": "l1", "sku": "beans", "quantity": 1, "unit_price": "100.00"}] == (
            returned.payload["lines"])
        balance = loyalty.balance("alice")
        assert balance.available == events[-1].payload["balance"]["available"]
        assert clock.now() == events[-1].occurred_at

    def test_o1_a_refused_write_appends_nothing(self, storage: Storage) -> None:
        loyalty, _ = self._o1(storage)
        before = loyalty.events.read("mailer")
        with pytest.raises(InsufficientPoints):
            loyalty.spend("alice", 1000, key="too-much")
        loyalty.earn("alice", 5, key="once")
        loyalty.earn("alice", 5, key="once")  # a replay writes nothing
        after = loyalty.events.read("mailer")
        assert before == after[:3]
        assert ["points.earned"] == types(after[3:])

    def test_payloads_come_back_exactly(self, storage: Storage) -> None:
        loyalty, _ = self._o1(storage)
        metadata = {"big": 2**70, "small": -(2**63) - 5, "u64": 2**64 - 1, "ratio": 0.1,
                    "digits": "1234567890123456789012345", "text": "Grüße \u2603",
                    "nested": [{"a": None, "b": [True, False]}]}
        loyalty.earn("alice", 5, key="exact", metadata=metadata)
        assert metadata == loyalty.events.read("mailer")[-1].payload["metadata"]

    def test_o1_due_work_appends_its_transactions(self, storage: Storage) -> None:
        loyalty, clock = self._o1(storage)
        loyalty.hold("alice", 30, key="h", ttl=dt.timedelta(minutes=15))
        clock.advance(hours=1)
        loyalty.run_due()
        assert "points.released" == loyalty.events.read("mailer")[-1].type

    # -- consumers ---------------------------------------------------------------------------

    def test_reading_does_not_move_a_position_and_ack_does(self, storage: Storage) -> None:
        loyalty, _ = self._o1(storage)
        events = loyalty.events
        assert events.position("mailer") is None
        assert [] == events.consumers()
        first = events.read("mailer", limit=2)
        assert first == events.read("mailer", limit=2)  # at-least-once: read again
        assert first[1].position == events.ack("mailer", first[1])
        assert first[1].position == events.position("mailer")
        rest = events.read("mailer")
        assert ["order.recorded"] == types(rest)
        # another consumer has its own position
        assert 3 == len(events.read("crm"))
        # never backwards: an earlier position changes nothing
        assert first[1].position == events.ack("mailer", first[0].position)
        assert rest == events.read("mailer")
        assert rest[0].position == events.ack("mailer", rest[0])
        assert [] == events.read("mailer")
        consumers = events.consumers()
        assert [("mailer", rest[0].position)] == [(c.name, c.position) for c in consumers]
        assert loyalty.clock.now() == consumers[0].acked_at

    def test_ack_past_what_can_be_read_is_refused_and_writes_nothing(
        self, storage: Storage
    ) -> None:
        loyalty, _ = self._o1(storage)
        last = loyalty.events.read("mailer")[-1].position
        for beyond in (EventPosition(last.tx, last.seq + 1, stream=last.stream),
                       EventPosition(last.tx + 1, 0, stream=last.stream)):
            with pytest.raises(InvalidPosition) as caught:
                loyalty.events.ack("mailer", beyond)
            assert last.to_str() == caught.value.details["last"]
        assert loyalty.events.position("mailer") is None
        assert [] == loyalty.events.consumers()

    def test_consumer_names_and_arguments_are_checked(self, storage: Storage) -> None:
        loyalty, _ = self._o1(storage)
        event = loyalty.events.read("mailer")[0]
        for name in ("", " mailer", "a" * 65, "-x", "mail/er", 7, None):
            with pytest.raises(InvalidInput):
                loyalty.events.read(name)  # type: ignore[arg-type]
            with pytest.raises(InvalidInput):
                loyalty.events.ack(name, event)  # type: ignore[arg-type]
        for limit in (0, 10_001, True, 1.5, "10"):
            with pytest.raises(InvalidInput):
                loyalty.events.read("mailer", limit=limit)  # type: ignore[arg-type]
        for bad in (None, "0.1", 3, event.to_dict()):
            with pytest.raises(InvalidInput):
                loyalty.events.ack("mailer", bad)  # type: ignore[arg-type]
        for options in ({"batch": 0}, {"poll": 0}, {"poll": True}, {"stop": 3}):
            with pytest.raises(InvalidInput):
                loyalty.events.follow("mailer", **options)
        assert [] == loyalty.events.consumers()

    def test_positions_round_trip_as_text(self) -> None:
        event = uuid.UUID("01a2447d-23a4-71c8-a4ae-feeef6ebb0ca")
        for position in (EventPosition(0, 1), EventPosition(2**63 - 1, 2**63 - 1),
                         EventPosition(7, 2, event), EventPosition(7, 2, event, -(2**63)),
                         EventPosition(0, 0, stream=2**63 - 1)):
            assert position == EventPosition.from_str(position.to_str())
        assert "-5:7.2." + event.hex == EventPosition(7, 2, event, -5).to_str()
        for text in ("", "1", "1.2.3", "-1.2", "01.2", "1.2 ", "x.y", "1.9223372036854775808",
                     "1:2", "x:1.2", "-0:1.2", "01:1.2", "1.2." + event.hex.upper(),
                     "1.2." + event.hex[:-1], "9223372036854775808:1.2", None, 12):
            with pytest.raises(InvalidPosition):
                EventPosition.from_str(text)  # type: ignore[arg-type]
        for fields in ((-1, 0), (0, 2**63), (True, 1), (0, 1.0), (0, 1, "x"),
                       (0, 1, event, 2**63), (0, 1, event, True)):
            with pytest.raises(InvalidPosition):
                EventPosition(*fields)
        assert EventPosition(0, 9) < EventPosition(0, 10) < EventPosition(1, 0)
        # within a key and number the event's id, with none before every id; a
        # stream's positions all after a lower stream's
        assert EventPosition(1, 2) < EventPosition(1, 2, event) < EventPosition(1, 3)
        assert EventPosition(2**62, 5, event, 1) < EventPosition(0, 0, stream=2)

    def test_follow_yields_everything_and_acks_each_batch_once_handled(
        self, storage: Storage
    ) -> None:
        loyalty, _ = self._o1(storage)
        loyalty.earn("alice", 1, key="e1")
        loyalty.earn("alice", 1, key="e2")
        seen: list[OutboxEvent] = []
        follower = loyalty.events.follow("mailer", batch=2, poll=0.001,
                                         stop=lambda: len(seen) >= 5)
        for event in follower:
            seen.append(event)
            if len(seen) == 2:
                assert loyalty.events.position("mailer") is None  # still being handled
            if len(seen) == 3:  # asking for the third acknowledged the first batch
                assert seen[1].position == loyalty.events.position("mailer")
        assert 5 == len(seen)
        assert seen == loyalty.events.read("crm")
        assert seen[-1].position == loyalty.events.position("mailer")
        # a follower that stops while handling an event leaves its batch unacknowledged
        loyalty.earn("alice", 1, key="e3")
        for event in loyalty.events.follow("mailer", poll=0.001):
            assert "points.earned" == event.type
            break
        assert seen[-1].position == loyalty.events.position("mailer")

    # -- retention ---------------------------------------------------------------------------

    def test_prune_keeps_what_a_consumer_has_not_acknowledged(self, storage: Storage
                                                              ) -> None:
        loyalty, clock = self._o1(storage)
        clock.advance(days=40)
        loyalty.earn("alice", 1, key="late")
        events = loyalty.events.read("mailer")
        loyalty.events.ack("mailer", events[0])
        cutoff = clock.now() - dt.timedelta(days=30)
        assert 1 == loyalty.events.prune(cutoff)  # only the acknowledged one
        assert events[1:] == loyalty.events.read("crm")
        loyalty.events.ack("mailer", events[-1])
        assert 2 == loyalty.events.prune(cutoff)
        assert 0 == loyalty.events.prune(clock.now())  # the last event stays
        assert events[-1:] == loyalty.events.read("crm")
        with pytest.raises(InvalidInput):
            loyalty.events.prune(clock.now() + dt.timedelta(seconds=1))

    def test_prune_without_consumers_and_by_due_work(self, storage: Storage) -> None:
        clock = TestClock(berlin(2026, 1, 15, 9))
        program = o_program(events=EventPolicy(retention_days=30))
        loyalty = self.make_loyalty(program, storage, clock=clock)
        loyalty.enrol("alice")
        loyalty.earn("alice", 10, key="e1")
        clock.advance(days=31)
        loyalty.earn("alice", 10, key="e2")
        report = loyalty.run_due()
        assert 2 == report.pruned_events  # nobody acknowledges: retention alone decides
        assert ["points.earned"] == types(loyalty.events.read("c"))
        assert 0 == loyalty.run_due().pruned_events
        assert program == Program.from_dict(program.to_dict())

    # -- privacy -----------------------------------------------------------------------------

    def test_an_erased_members_events_keep_no_trace_of_it(self, storage: Storage) -> None:
        loyalty, _ = self._o1(storage)
        loyalty.enrol("bob")
        loyalty.transfer("alice", "bob", 10, key="t")
        erased = loyalty.privacy.erase("alice")
        assert erased.erased_as is not None
        name = erased.erased_as
        events = loyalty.events.read("mailer", limit=100)
        assert "member.erased" == events[-1].type
        assert {name, "bob"} == {e.member_id for e in events}
        enrolled = events[0]
        assert (name, {}) == (enrolled.member_id, enrolled.payload["attributes"])
        into = [e for e in events if e.member_id == "bob"][-1]
        assert name == into.payload["counterpart_member_id"]
        text = self.outbox_text(storage)
        assert "alice" not in text and "language" not in text
        assert str(events[0].id) in text or events[0].id.hex in text  # the control

    # -- the store itself --------------------------------------------------------------------

    def test_the_store_gives_positions_in_write_order_and_rolls_back(
        self, storage: Storage
    ) -> None:
        self._register(storage)
        raw = storage  # the store itself: member keys in and out
        at = utc(2026, 1, 1)

        def new(member_id: str, n: int) -> NewEvent:
            return NewEvent(uuid.uuid4(), "test.event", 1, member_id, at, at, {"n": n})

        with raw.unit_of_work("shop") as uow:
            uow.outbox.write(OutboxChanges([new("m1", 1), new("m2", 2), new("m1", 3)]))
            uow.commit()
        with raw.unit_of_work("shop") as uow:
            uow.outbox.write(OutboxChanges([new("m2", 4)]))  # never committed
        with raw.unit_of_work("other") as uow:
            assert [] == uow.outbox.streams()  # programs are apart
        with raw.unit_of_work("shop") as uow:
            (stream,) = uow.outbox.streams()  # one server: one stream
            assert [] == uow.outbox.read(stream + 1, None, 10)
            found = uow.outbox.read(stream, None, 10)
            assert [1, 2, 3] == [e.payload["n"] for e in found]
            assert ["m1", "m2", "m1"] == [e.member_id for e in found]
            assert [e.position for e in found] == sorted({e.position for e in found})
            assert {stream} == {e.position.stream for e in found}
            assert [e.id for e in found] == [e.position.event for e in found]
            assert found[1:] == uow.outbox.read(stream, found[0].position, 10)
            assert found[1:2] == uow.outbox.read(stream, found[0].position, 1)
            assert found[2].position == uow.outbox.last_position(stream)
            assert uow.outbox.last_position(stream + 1) is None
            assert [] == uow.outbox.read(stream, found[2].position, 10)
            assert uow.outbox.set_consumer_position("c", found[1].position, at) == (
                found[1].position)
            assert uow.outbox.set_consumer_position("c", found[0].position, at) == (
                found[1].position)
            assert uow.outbox.set_consumer_position("c", EventPosition(
                found[2].position.tx, found[2].position.seq + 1, stream=stream), at) is None
            assert uow.outbox.set_consumer_position(  # a stream with no event
                "c", EventPosition(0, 0, stream=stream + 1), at) is None
            uow.commit()
        with raw.unit_of_work("shop") as uow:
            assert [found[1].position] == [
                c.position for c in uow.outbox.consumer_positions("c")]
            assert 0 == uow.outbox.prune(at, 10)  # recorded at, not before
            assert 1 == uow.outbox.prune(utc(2026, 1, 2), 1)  # a batch of one
            assert 1 == uow.outbox.prune(utc(2026, 1, 2), 10)  # up to the consumer's
            assert found[2:] == uow.outbox.read(stream, None, 10)
            assert uow.outbox.set_consumer_position("c", found[2].position, at)
            assert 0 == uow.outbox.prune(utc(2026, 1, 2), 10)  # the last event stays
            uow.outbox.write(OutboxChanges([new("m1", 5)]))
            uow.commit()
        with raw.unit_of_work("shop") as uow:  # (a write's own events are not safe yet)
            newest = uow.outbox.read(stream, found[2].position, 10)
            assert [5] == [e.payload["n"] for e in newest]  # numbers are never reused
            assert newest[0].position > found[2].position

