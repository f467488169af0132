"""The in-memory outbox: events in insertion order (writers take turns under the
storage's one lock, so insertion order is commit order), and consumers' positions."""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from typing import NamedTuple

from loyaltykit._outbox import EventConsumer, EventPosition, NewEvent, OutboxEvent
from loyaltykit.memory.tables import JSONText, MemberKeys, Tables, UndoLog, plain
from loyaltykit.storage.outbox import OutboxChanges

__all__ = ["KeptEvent", "MemoryOutboxStore", "OutboxTables"]


class KeptEvent(NamedTuple):
    """An event as the outbox keeps it: one tuple, its id and payload in one bytes
    object (the id's 16 bytes, then the payload's packed JSON text: where an int id and
    a JSONText took two objects); the position is its key's seq."""

    type: str
    version: int
    member_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    body: bytes

    @classmethod
    def of(cls, id_: uuid.UUID, type_: str, version: int, member_id: str,
           occurred_at: dt.datetime, recorded_at: dt.datetime,
           payload: JSONText) -> KeptEvent:
        return cls(type_, version, member_id, occurred_at, recorded_at,
                   id_.bytes + bytes(payload))

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self.body[:16])

    @property
    def payload(self) -> JSONText:
        return JSONText.packed(self.body[16:])

    def __repr__(self) -> str:  # as a SQL row shows it: its id, then its columns
        return repr((self.id, *self[:5], self.payload))


class OutboxTables:
    def __init__(self) -> None:
        # program_id -> seq -> event (member keys, as stored; one dict per program, not
        # a (program, seq) key tuple per event)
        self.events: dict[str, dict[int, KeptEvent]] = {}
        # program_id -> the seqs of its events, ascending
        self.order: dict[str, list[int]] = {}
        # program_id -> the last seq given (never goes back, even when pruned)
        self.last: dict[str, int] = {}
        # (program_id, member_id) -> seqs of the member's events, ascending (a list: a
        # few machine words per event where a set takes a hash table per member)
        self.by_member: dict[tuple[str, str], list[int]] = {}
        # (program_id, name) -> consumer
        self.consumers: dict[tuple[str, str], EventConsumer] = {}


def _read(kept: KeptEvent, seq: int) -> OutboxEvent:
    """A fresh event of what is kept (its payload as SQL reads its JSON column)."""
    return OutboxEvent(id=kept.id, type=kept.type, version=kept.version,
                       member_id=kept.member_id, occurred_at=kept.occurred_at,
                       recorded_at=kept.recorded_at, payload=kept.payload.value(),
                       position=EventPosition(0, seq))


class MemoryOutboxStore:
    """The outbox of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(OutboxTables)
        self._keys = tables.of(MemberKeys)

    def read(self, after: EventPosition | None, limit: int) -> list[OutboxEvent]:
        program_id = self._uow.program_id
        seqs = self._t.order.get(program_id, [])
        start = 0 if after is None else bisect.bisect_right(seqs, after.seq)
        if after is not None and after.tx > 0:  # a position of no event of this backend
            start = len(seqs)
        events = self._t.events.get(program_id, {})
        return [_read(events[s], s) for s in seqs[start:start + limit]]

    def member_events(self, member_id: str) -> list[OutboxEvent]:
        program_id = self._uow.program_id
        events = self._t.events.get(program_id, {})
        return [_read(events[s], s) for s in self._t.by_member.get((program_id, member_id), ())]

    def last_position(self) -> EventPosition | None:
        seqs = self._t.order.get(self._uow.program_id)
        return EventPosition(0, seqs[-1]) if seqs else None

    def consumer_position(self, name: str) -> EventPosition | None:
        found = self._t.consumers.get((self._uow.program_id, name))
        return None if found is None else found.position

    def consumers(self) -> list[EventConsumer]:
        program_id = self._uow.program_id
        return sorted((c for (p, _), c in self._t.consumers.items() if p == program_id),
                      key=lambda c: c.name)

    def set_consumer_position(self, name: str, position: EventPosition,
                              at: dt.datetime) -> EventPosition | None:
        key = (self._uow.program_id, name)
        stored = self._t.consumers.get(key)
        if stored is not None and position <= stored.position:
            return stored.position
        last = self.last_position()
        if last is None or position > last:
            return None
        self._uow.put(self._t.consumers, key, EventConsumer(name, position, at))
        return position

    def prune(self, before: dt.datetime, limit: int) -> int:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        seqs = t.order.get(program_id, [])
        if not seqs:
            return 0
        events = t.events[program_id]
        bound = EventPosition(0, seqs[-1])
        acked = [c.position for c in self.consumers()]
        if acked:
            bound = min(bound, min(acked))
        gone: list[int] = []
        for seq in seqs:
            if len(gone) >= limit or seq > bound.seq or seq == seqs[-1]:
                break
            event = events[seq]
            if event.recorded_at < before:
                gone.append(seq)
        if not gone:
            return 0
        dropped = set(gone)
        uow.put(t.order, program_id, [s for s in seqs if s not in dropped])
        members = set()
        for seq in gone:
            members.add(events[seq].member_id)
            uow.drop(events, seq)
        for member_id in sorted(members):
            key = (program_id, member_id)
            kept = [s for s in t.by_member[key] if s not in dropped]
            if kept:
                uow.put(t.by_member, key, kept)
            else:
                uow.drop(t.by_member, key)
        return len(gone)

    def erase(self, member_id: str) -> None:
        program_id = self._uow.program_id
        events = self._t.events.get(program_id, {})
        for seq in self._t.by_member.get((program_id, member_id), ()):
            event = events[seq]
            payload = plain(event.payload)
            if payload.get("attributes"):
                self._uow.put(events, seq, KeptEvent.of(
                    event.id, *event[:5], JSONText.of({**payload, "attributes": {}})))

    def write(self, changes: OutboxChanges) -> None:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        seq = t.last.get(program_id, 0)
        events = t.events.get(program_id)
        if events is None and changes.events:
            events = {}
            uow.put(t.events, program_id, events)
        if events is not None:  # one undo-log entry per table, not one per event
            shared = self._keys.shared
            first = seq + 1
            stored = [(seq, _stored(new)) for seq, new in enumerate(changes.events, first)]
            uow.put_many(events, stored)
            uow.append_many(t.by_member, [(shared((program_id, new.member_id)), seq)
                                          for seq, new in enumerate(changes.events, first)])
            uow.append_many(t.order, [(program_id, seq) for seq, _ in stored])
            seq += len(stored)
        uow.put(t.last, program_id, seq)


def _stored(new: NewEvent) -> KeptEvent:
    return KeptEvent.of(new.id, new.type, new.version, new.member_id, new.occurred_at,
                        new.recorded_at, JSONText.of(new.payload))
