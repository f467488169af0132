"""The in-memory outbox: events in insertion order (writers take turns under the
storage's one lock, so insertion order is commit order), and consumers' positions."""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from loyaltykit._outbox import (
    NO_EVENT,
    EventConsumer,
    EventPosition,
    NewEvent,
    OutboxEvent,
    stored_position,
)
from loyaltykit.memory import due_events
from loyaltykit.memory.tables import JSONText, MemberKeys, Tables, UndoLog, plain
from loyaltykit.storage.outbox import OutboxChanges

__all__ = ["KeptEvent", "KeptEvents", "MemoryOutboxStore", "OutboxTables", "micros",
           "payload_kept"]

#: a kept event's fixed part: its id's 16 bytes, its version, its two instants (UTC
#: microseconds since the epoch), its type's code (:func:`_type_code`) and the length of
#: its member id (UTF-8)
_HEAD = struct.Struct("<16sqqqHH")
#: a type's code with this bit: the number of a type in :data:`_TYPES` (nothing inline);
#: without: the length of the type's UTF-8, kept after the fixed part
_NAMED = 0x8000
#: the event types met, each numbered once for the process (a handful: loyaltykit's
#: own and a shop's mapped domain events), so an event keeps two bytes, not its type's
#: text; immutable strings, so sharing them across storages changes nothing a reader
#: sees. Beyond :data:`_NAMED` types, further ones are kept inline.
_TYPES: list[str] = []
_TYPE_CODES: dict[str, int] = {}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICRO = dt.timedelta(microseconds=1)


def micros(at: dt.datetime) -> int:
    """``at`` as a kept event keeps it: UTC microseconds since the epoch."""
    return (at - _EPOCH) // _MICRO


def _type_code(type_: str) -> tuple[int, bytes]:
    """The code of ``type_`` in a kept event's fixed part and what follows it inline."""
    code = _TYPE_CODES.get(type_)
    if code is None and len(_TYPES) < _NAMED:
        code = _TYPE_CODES[type_] = len(_TYPES) | _NAMED
        _TYPES.append(type_)
    if code is not None:
        return code, b""
    inline = type_.encode()
    return len(inline), inline


def _instant(micros: int) -> dt.datetime:
    """The UTC instant of ``micros`` (as the SQL backend reads its UTC columns back)."""
    return _EPOCH + dt.timedelta(microseconds=micros)


class KeptEvent(bytes):
    """An event as the outbox keeps it: one bytes object (:data:`_HEAD`, its member id
    as UTF-8, then its payload's packed JSON text), where a tuple of six and its bytes
    took two objects and ~90 bytes more an event; the position is its place in the
    program's list (:class:`OutboxTables`)."""

    __slots__ = ()

    @classmethod
    def of(cls, id_: uuid.UUID, type_: str, version: int, member_id: str,
           occurred_at: dt.datetime, recorded_at: dt.datetime,
           payload: JSONText) -> KeptEvent:
        code, kind = _type_code(type_)
        member = member_id.encode()
        head = _HEAD.pack(id_.bytes, version, micros(occurred_at), micros(recorded_at),
                          code, len(member))
        return bytes.__new__(cls, b"".join((head, kind, member, payload)))

    def _fields(self) -> tuple[bytes, int, int, int, int, int]:
        """The fixed part, its type's code as the length of the type kept inline."""
        id_, version, occurred, recorded, code, member = _HEAD.unpack_from(self)
        return id_, version, occurred, recorded, 0 if code & _NAMED else code, member

    def _type(self) -> str:
        code: int = _HEAD.unpack_from(self)[4]
        if code & _NAMED:
            return _TYPES[code & ~_NAMED]
        return self[_HEAD.size:_HEAD.size + code].decode()

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(bytes=self[:16])

    @property
    def type(self) -> str:
        return self._type()

    @property
    def member_id(self) -> str:
        _, _, _, _, kind, member = self._fields()
        start = _HEAD.size + kind
        return self[start:start + member].decode()

    @property
    def recorded_at(self) -> dt.datetime:
        return _instant(self._fields()[3])

    @property
    def payload(self) -> JSONText:
        _, _, _, _, kind, member = self._fields()
        return JSONText.packed(self[_HEAD.size + kind + member:])

    def read(self, seq: int) -> OutboxEvent:
        """A fresh event of what is kept (its payload as SQL reads its JSON column)."""
        id_, version, occurred, recorded, kind, member = self._fields()
        start = _HEAD.size + kind
        return OutboxEvent(id=uuid.UUID(bytes=id_), type=self._type(),
                           version=version, member_id=self[start:start + member].decode(),
                           occurred_at=_instant(occurred), recorded_at=_instant(recorded),
                           payload=self.payload.value(),
                           position=stored_position(0, seq, uuid.UUID(bytes=id_)))

    def erased(self, payload: JSONText) -> KeptEvent:
        """This event with ``payload`` in place of its own."""
        _, _, _, _, kind, member = self._fields()
        return bytes.__new__(KeptEvent, self[:_HEAD.size + kind + member] + payload)

    def __repr__(self) -> str:  # as a SQL row shows it: its id, then its columns
        event = self.read(0)
        return repr((event.id, event.type, event.version, event.member_id,
                     event.occurred_at, event.recorded_at, self.payload))


class OutboxTables:
    def __init__(self) -> None:
        # program_id -> its events by seq: ``events[p][seq - first[p]]``, None where one
        # was pruned (a list: no dict entry nor int object per event)
        self.events: dict[str, list[KeptEvent | None]] = {}
        # program_id -> the seq of the first event in ``events`` (pruned ones at the
        # front are dropped from the list)
        self.first: dict[str, int] = {}
        # program_id -> the last seq given (never goes back, even when pruned)
        self.last: dict[str, int] = {}
        # (program_id, member_id) -> seqs of the member's events, ascending (an array of
        # machine integers: no int object per event, no hash table per member)
        self.by_member: dict[tuple[str, str], array[int]] = {}
        # (program_id, name) -> consumer
        self.consumers: dict[tuple[str, str], EventConsumer] = {}


class MemoryOutboxStore:
    """The outbox of one unit of work's program."""

    def __init__(self, uow: UndoLog, tables: Tables) -> None:
        self._uow = uow
        self._t = tables.of(OutboxTables)
        self._keys = tables.of(MemberKeys)

    def _events(self) -> tuple[list[KeptEvent | None], int]:
        """The program's events and the seq of the first."""
        program_id = self._uow.program_id
        return self._t.events.get(program_id, []), self._t.first.get(program_id, 1)

    def streams(self) -> list[int]:
        # one stream: writers take turns
        return [0] if self._events()[0] else []

    def read(self, stream: int, after: EventPosition | None,
             limit: int) -> list[OutboxEvent]:
        events, first = self._events()
        if stream != 0 or (after is not None and (after.stream != 0 or after.tx > 0)):
            return []  # a stream or position of no event of this backend
        start = 0
        if after is not None:  # after the event at ``after.seq`` (or before it: no id)
            start = max(after.seq - first + (after.event != NO_EVENT), 0)
        found: list[OutboxEvent] = []
        for at in range(start, len(events)):
            if len(found) >= limit:
                break
            kept = events[at]
            if kept is not None:
                found.append(kept.read(first + at))
        return found

    def member_events(self, member_id: str) -> list[OutboxEvent]:
        events, first = self._events()
        seqs = self._t.by_member.get((self._uow.program_id, member_id), ())
        return [_present(events[s - first]).read(s) for s in seqs]

    def last_position(self, stream: int) -> EventPosition | None:
        # the last event is never pruned: the list's end is the last seq given
        events, first = self._events()
        if stream != 0 or not events:
            return None
        return _present(events[-1]).read(first + len(events) - 1).position

    def consumer_positions(self, name: str) -> list[EventConsumer]:
        found = self._t.consumers.get((self._uow.program_id, name))
        return [] if found is None else [found]

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
        last = self.last_position(position.stream)
        if last is None or position > last:
            return None
        self._uow.put(self._t.consumers, key, EventConsumer(name, position, at))
        return position

    def prune(self, before: dt.datetime, limit: int) -> int:
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        events, first = self._events()
        if not events:
            return 0
        last = first + len(events) - 1
        bound = last  # the last event stays (below: ``seq == last``)
        acked = [c.position for c in self.consumers()]
        if acked:  # every consumer's position: an event at or before it (its id: at)
            lowest = min(acked)
            bound = min(bound, lowest.seq - (lowest.event == NO_EVENT))
        gone: list[int] = []
        for at, event in enumerate(events):
            seq = first + at
            if len(gone) >= limit or seq > bound or seq == last:
                break
            if event is not None and event.recorded_at < before:
                gone.append(seq)
        if not gone:
            return 0
        kept = list(events)
        members = set()
        for seq in gone:
            members.add(_present(kept[seq - first]).member_id)
            kept[seq - first] = None
        lead = 0
        while kept[lead] is None:  # stops at the last event, never pruned
            lead += 1
        uow.put(t.events, program_id, kept[lead:])
        uow.put(t.first, program_id, first + lead)
        dropped = set(gone)
        for member_id in sorted(members):
            key = (program_id, member_id)
            seqs = array("q", (s for s in t.by_member[key] if s not in dropped))
            if seqs:
                uow.put(t.by_member, key, seqs)
            else:
                uow.drop(t.by_member, key)
        return len(gone)

    def erase(self, member_id: str) -> None:
        program_id = self._uow.program_id
        events, first = self._events()
        erased, changed = list(events), False
        for seq in self._t.by_member.get((program_id, member_id), ()):
            event = _present(events[seq - first])
            payload = plain(event.payload)
            if payload.get("attributes"):
                erased[seq - first] = event.erased(
                    JSONText.of({**payload, "attributes": {}}))
                changed = True
        if changed:
            self._uow.put(self._t.events, program_id, erased)

    def write(self, changes: OutboxChanges) -> None:
        self.append_kept([(new.member_id, _stored(new)) for new in changes.events])

    def append_kept(self, kept: Sequence[tuple[str, KeptEvent]]) -> None:
        """Append events as kept, each with its member (a key), in this order: what
        :meth:`write` does with its events once kept; set-based due work
        (:mod:`loyaltykit.memory.ledger_due_set`) builds its events kept already."""
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        seq = t.last.get(program_id, 0)
        if kept:  # one undo-log entry per table, not one per event
            if program_id not in t.events:
                uow.put(t.events, program_id, [])
                uow.put(t.first, program_id, seq + 1)
            shared = self._keys.shared
            seqs: dict[tuple[str, str], list[int]] = {}
            for at, (member_id, _) in enumerate(kept, seq + 1):
                seqs.setdefault(shared((program_id, member_id)), []).append(at)
            by_member = t.by_member
            fresh = [(key, array("q", found)) for key, found in seqs.items()
                     if key not in by_member]
            more = [(key, at) for key, found in seqs.items() if key in by_member
                    for at in found]
            uow.extend(t.events, program_id, [event for _, event in kept])
            uow.put_many(by_member, fresh)
            uow.append_many(by_member, more)
            seq += len(kept)
        uow.put(t.last, program_id, seq)


def _present(event: KeptEvent | None) -> KeptEvent:
    """An event an index points to (never a pruned one: pruning drops its seqs)."""
    assert event is not None, "an index points to a pruned event"
    return event


def _stored(new: NewEvent) -> KeptEvent:
    return KeptEvent.of(new.id, new.type, new.version, new.member_id, new.occurred_at,
                        new.recorded_at, payload_kept(new.payload))


def payload_kept(payload: Mapping[str, Any]) -> JSONText:
    """A payload as an event keeps it: a due transaction's in its fixed layout, without
    JSON nor deflate (most of due work's outbox time); any other as JSON text."""
    packed = due_events.pack(payload)
    return JSONText.of(payload) if packed is None else JSONText.packed(packed)


class KeptEvents:
    """Builds kept events of one type and version written at ``recorded_at`` (set-based
    due work's thousands: the type's code and the write's instant worked out once), as
    :meth:`KeptEvent.of` keeps them."""

    __slots__ = ("code", "inline", "recorded", "version")

    def __init__(self, type_: str, version: int, recorded_at: dt.datetime) -> None:
        self.code, self.inline = _type_code(type_)
        self.version = version
        self.recorded = micros(recorded_at)

    def __call__(self, id_: uuid.UUID, member: bytes, occurred: int,
                 payload: bytes) -> KeptEvent:
        """The event ``id_`` of ``member`` (its key's UTF-8) at ``occurred``
        (:func:`micros`) with ``payload`` (its packed bytes)."""
        return bytes.__new__(KeptEvent, b"".join((
            _HEAD.pack(id_.bytes, self.version, occurred, self.recorded, self.code,
                       len(member)), self.inline, member, payload)))

    def fused(self, member_size: int, payload_format: str) -> struct.Struct:
        """One struct for a whole kept event (a batch's events in one call each): of a
        member of ``member_size`` bytes, with a payload laid out as ``payload_format``
        (:mod:`struct` codes, no byte order). Its values: the id's bytes,
        :attr:`version`, the occurred instant (:func:`micros`), :attr:`recorded`,
        :attr:`code`, ``member_size``, :attr:`inline`, the member, then the payload's;
        its bytes are the event's (``bytes.__new__(KeptEvent, packed)``)."""
        return struct.Struct(f"{_HEAD.format}{len(self.inline)}s{member_size}s"
                             f"{payload_format}")
