"""The outbox: every change a program makes, as events a shop reads in a safe order.

An :class:`OutboxEvent` is appended in the same unit of work as the change it
describes (a subscriber to the domain events, :mod:`loyaltykit._services.events`), so
it exists exactly when the change does. Consumers read events in position order from a
stored position and acknowledge what they handled (at-least-once delivery).

**Positions never skip** (DESIGN §8). A position is the pair ``(tx, seq)``:

* On SQLite and in memory, writers take turns (one write lock), so ``seq``, assigned
  when an event is inserted (one more than the largest so far: pruning always keeps
  each program's last event, so no number is given twice), grows in commit order;
  ``tx`` is 0. A reader that has
  seen position ``p`` can never meet a later commit with a position below ``p``.
* On PostgreSQL writers run side by side and a sequence value is taken before its
  transaction commits, so ``seq`` alone is *not* safe: a reader could pass ``seq`` 11
  while ``seq`` 10 is still uncommitted and never come back for it (kamu-cli #1398,
  Eventuous #222). ``tx`` is an *ordering key* computed by the INSERT itself::

      tx = greatest(own transaction id,
                    max(tx) of the member's events already stored)

  and a reader only returns events with ``tx`` below the **snapshot horizon**
  ``xmin`` of its own statement (``pg_snapshot_xmin(pg_current_snapshot())``: the
  oldest transaction id still running when the statement's snapshot was taken), in
  ``(tx, seq)`` order.

  *Never skip.* Every transaction that has not finished when the reader's snapshot is
  taken has, or will get, a transaction id ``>= xmin``; every event's ``tx`` is ``>=``
  its own writer's id. So no event with ``tx < xmin`` can be inserted after the read:
  all events with ``tx < xmin`` come from transactions that had finished, and are
  visible to the read (committed) or gone for good (rolled back). The next read starts
  after the last position returned and finds everything committed later at a higher
  ``(tx, seq)``.

  *A member's order.* A writer holds the member's account lock while it appends the
  member's events (the write pipeline locks the member first), so the member's earlier
  events are committed and visible to the INSERT's snapshot: ``tx`` never decreases
  along a member's events (it is at least their maximum), and ``seq`` is taken in
  insert order under the lock. So ``(tx, seq)`` orders each member's events as they
  were written.

  *Never block.* No counter row, no table lock: writers of different members share
  only the sequence (which never waits) and read only their own member's events.

  The price: a transaction that stays open (of the library or of anything else on the
  server) holds the horizon back, and readers see nothing newer until it ends.

Events of one write are in the order they were raised. Positions are opaque to
consumers: compare them, store them with :meth:`EventPosition.to_str` and read them
back with :meth:`EventPosition.from_str`.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from loyaltykit._errors import InvalidPosition, shown
from loyaltykit._json import JsonForm
from loyaltykit._validate import check_bool, check_int, field_name, invalid

__all__ = [
    "EVENT_VERSION",
    "MAX_NOTICE_DAYS",
    "MAX_POSITION",
    "MAX_STREAM",
    "MIN_STREAM",
    "NO_EVENT",
    "EventConsumer",
    "EventDraft",
    "EventPolicy",
    "EventPosition",
    "NewEvent",
    "OutboxEvent",
    "stored_position",
]

#: The payload schema version of every event type defined so far.
EVENT_VERSION = 1
#: The most days ahead a notice may be emitted (``EventPolicy.*_days``).
MAX_NOTICE_DAYS = 366
#: The largest ``tx`` or ``seq`` of a position (both are 64-bit signed in SQL).
MAX_POSITION = 2**63 - 1
#: The smallest and largest stream a position can name (a 64-bit signed integer: the
#: system identifier of the PostgreSQL server whose transaction ids keyed the events).
MIN_STREAM, MAX_STREAM = -(2**63), 2**63 - 1
#: The event id of a position that names no event: before every event at its
#: ``(tx, seq)`` (library ids are never nil).
NO_EVENT = uuid.UUID(int=0)
_NUMBER = r"(0|[1-9][0-9]{0,18})"
_POSITION = re.compile(r"^(?:(0|-?[1-9][0-9]{0,18}):)?"
                       rf"{_NUMBER}\.{_NUMBER}(?:\.([0-9a-f]{{32}}))?\Z")


@functools.total_ordering
@attrs.frozen(eq=True, order=False)
class EventPosition(JsonForm):
    """Where an event stands in its program's outbox: events are read in position
    order, and a consumer's position in a stream is the last event it acknowledged
    there.

    Opaque to consumers: compare positions (``<``), store one with :meth:`to_str` and
    read it back with :meth:`from_str`. A position belongs to one **stream**: the
    events whose ordering keys one database server drew (0 where writers take turns:
    SQLite, memory; on PostgreSQL the server's system identifier, so a distributed
    engine's nodes, or a database restored on another server, each keep a stream of
    their own). Within a stream, ``tx`` is the event's ordering key (0 where writers
    take turns), ``seq`` its number (the program's on SQLite and in memory, the
    member's on PostgreSQL) and ``event`` its id, which breaks ties. Positions of
    different streams compare by stream first: an order, not a meaning.

    >>> p = EventPosition.from_str("0.42")
    >>> p.to_str(), p < EventPosition.from_str("0.43")
    ('0.42', True)

    .. versionadded:: 0.4
    .. versionchanged:: 0.9
       ``event`` and ``stream`` (the outbox is read per stream: see
       docs/events.md); a text without them (``"tx.seq"``) still reads.
    """

    tx: int
    seq: int
    event: uuid.UUID = NO_EVENT
    stream: int = 0

    def __attrs_post_init__(self) -> None:
        for name in ("tx", "seq"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value <= MAX_POSITION:
                raise InvalidPosition(f"an event position's {name} must be an int from 0 "
                                      f"to {MAX_POSITION}", **{name: shown(value)})
        if not isinstance(self.event, uuid.UUID):
            raise InvalidPosition("an event position's event must be a UUID",
                                  event=shown(self.event))
        stream = self.stream
        if isinstance(stream, bool) or not isinstance(stream, int) \
                or not MIN_STREAM <= stream <= MAX_STREAM:
            raise InvalidPosition(f"an event position's stream must be an int from "
                                  f"{MIN_STREAM} to {MAX_STREAM}", stream=shown(stream))

    def _key(self) -> tuple[int, int, int, int]:
        return self.stream, self.tx, self.seq, self.event.int

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, EventPosition):
            return NotImplemented
        return self._key() < other._key()

    def to_str(self) -> str:
        """This position as text (:meth:`from_str` reads it back)."""
        text = f"{self.tx}.{self.seq}"
        if self.event != NO_EVENT:
            text = f"{text}.{self.event.hex}"
        return text if self.stream == 0 else f"{self.stream}:{text}"

    def to_dict(self) -> dict[str, Any]:
        """``{"position": <to_str() text>}``: a position is opaque, its text is its JSON
        form (an event's or a consumer's dict holds that text)."""
        return {"position": self.to_str()}

    @classmethod
    def from_str(cls, text: str) -> EventPosition:
        """The position :meth:`to_str` wrote; anything else raises
        :class:`~loyaltykit.InvalidPosition`."""
        found = _POSITION.match(text) if isinstance(text, str) else None
        if found is None:
            raise InvalidPosition("not an event position (EventPosition.to_str() text)",
                                  position=shown(text))
        stream, tx, seq, event = found.groups()
        return cls(int(tx), int(seq), NO_EVENT if event is None else uuid.UUID(hex=event),
                   0 if stream is None else int(stream))

    def __str__(self) -> str:
        return self.to_str()


def stored_position(tx: int, seq: int, event: uuid.UUID, stream: int = 0) -> EventPosition:
    """The position a store read back: in range, not checked again (a reader builds
    thousands a second)."""
    position = object.__new__(EventPosition)
    object.__setattr__(position, "tx", tx)
    object.__setattr__(position, "seq", seq)
    object.__setattr__(position, "event", event)
    object.__setattr__(position, "stream", stream)
    return position


@attrs.frozen
class EventDraft:
    """An event a subscriber wants appended (what a mapper of
    :meth:`loyaltykit._services.events.EventService.map` returns): its ``type``, the
    shop's ``member_id``, the business instant and the JSON-compatible ``payload``,
    which must not repeat the member's id (the event carries it)."""

    type: str
    member_id: str
    occurred_at: dt.datetime
    payload: Mapping[str, Any]
    version: int = EVENT_VERSION


@attrs.frozen
class NewEvent:
    """An event to append: a draft with its id and the instant it was recorded (what
    :class:`~loyaltykit.storage.OutboxChanges` carries; the store gives it its
    position)."""

    id: uuid.UUID
    type: str
    version: int
    member_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    payload: Mapping[str, Any]

    def stored(self, position: EventPosition) -> OutboxEvent:
        """This event as read back from ``position``."""
        return OutboxEvent(id=self.id, type=self.type, version=self.version,
                           member_id=self.member_id, occurred_at=self.occurred_at,
                           recorded_at=self.recorded_at, payload=self.payload,
                           position=position)


@attrs.frozen
class OutboxEvent(JsonForm):
    """One change of a program, as a consumer reads it from ``loyalty.events``.

    ``id`` is stable (the same event read twice has the same id: de-duplicate on it
    downstream); ``type`` names the change (``"points.earned"``, see docs/events.md)
    and ``version`` its payload's schema; ``member_id`` is the shop's id of the member
    (``"erased:<key>"`` once the member is erased); ``occurred_at`` is the change's
    business instant and ``recorded_at`` when it was written (both UTC); ``payload``
    is JSON-compatible data complete enough to write an e-mail without another read;
    ``position`` is where it stands in the outbox.

    .. versionadded:: 0.4
    """

    id: uuid.UUID
    type: str
    version: int
    member_id: str
    occurred_at: dt.datetime
    recorded_at: dt.datetime
    payload: Mapping[str, Any]
    position: EventPosition

    def to_dict(self) -> dict[str, Any]:
        """This event as JSON-compatible data (a webhook's body): instants in ISO 8601,
        the position as its :meth:`EventPosition.to_str` text."""
        return {
            "id": str(self.id),
            "type": self.type,
            "version": self.version,
            "member_id": self.member_id,
            "occurred_at": self.occurred_at.isoformat(),
            "recorded_at": self.recorded_at.isoformat(),
            "payload": dict(self.payload),
            "position": self.position.to_str(),
        }


@attrs.frozen
class EventConsumer(JsonForm):
    """A named consumer of the outbox: the position it acknowledged last and when.

    .. versionadded:: 0.4
    """

    name: str
    position: EventPosition
    acked_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """This consumer as JSON-compatible data, the position as its
        :meth:`EventPosition.to_str` text (as in :meth:`OutboxEvent.to_dict`)."""
        return {"name": self.name, "position": self.position.to_str(),
                "acked_at": self.acked_at.isoformat()}


_POLICY_KEYS = frozenset({"retention_days", "points_expiring_days", "voucher_expiring_days",
                          "tier_will_drop"})


@attrs.frozen
class EventPolicy(JsonForm):
    """What a program keeps of its outbox and which notices its due work emits
    (versioned with the program).

    ``retention_days``: due work deletes events recorded more than this many days
    before it runs, once every consumer has acknowledged them (None: events are kept
    until :meth:`loyaltykit._services.events.EventService.prune` is called).

    The notices (docs/events.md, "Notices"), each emitted exactly once per subject:

    * ``points_expiring_days``: a ``points.expiring`` event for the points of lots
      that expire within this many calendar days (in the program's time zone) after
      due work runs (None: none);
    * ``voucher_expiring_days``: a ``voucher.expiring`` event for an issued voucher
      that expires within this many calendar days (None: none);
    * ``tier_will_drop``: a ``tier.will_drop`` event for every "will downgrade" notice
      the tiers record (``tiers.notice_days`` before an evaluation that would drop the
      member; False: none).

    >>> EventPolicy(retention_days=30).to_dict()["retention_days"]
    30

    .. versionadded:: 0.4
    """

    retention_days: int | None = None
    points_expiring_days: int | None = None
    voucher_expiring_days: int | None = None
    tier_will_drop: bool = False

    def __attrs_post_init__(self) -> None:
        if self.retention_days is not None:
            check_int(self.retention_days, "events.retention_days", 1, 36_500)
        for name in ("points_expiring_days", "voucher_expiring_days"):
            if getattr(self, name) is not None:
                check_int(getattr(self, name), f"events.{name}", 1, MAX_NOTICE_DAYS)
        check_bool(self.tier_will_drop, "events.tier_will_drop")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {"retention_days": self.retention_days,
                "points_expiring_days": self.points_expiring_days,
                "voucher_expiring_days": self.voucher_expiring_days,
                "tier_will_drop": self.tier_will_drop}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EventPolicy:
        """Build the policy from :meth:`to_dict` output; bad fields raise
        :class:`~loyaltykit.InvalidProgram`."""
        if not isinstance(data, Mapping):
            raise invalid("events", "must be a table", shown(data))
        for key in data:
            if key not in _POLICY_KEYS:
                raise invalid(f"events.{field_name(key)}",
                              f"unknown field (known: {sorted(_POLICY_KEYS)})", None)
        return cls(retention_days=data.get("retention_days"),
                   points_expiring_days=data.get("points_expiring_days"),
                   voucher_expiring_days=data.get("voucher_expiring_days"),
                   tier_will_drop=data.get("tier_will_drop", False))
