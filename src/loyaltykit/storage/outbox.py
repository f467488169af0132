"""The outbox's store: events in position order, and each consumer's position.

:class:`OutboxChanges` is what one unit of work appends (built by the events service,
a subscriber to the domain events); :class:`OutboxStore` reads events in position order
and keeps the consumers' positions. The rule a backend must keep is in
:meth:`OutboxStore.read`: **never return an event after one that may still commit with
a lower position** (see :mod:`loyaltykit._outbox` for how the SQL backend keeps it on
PostgreSQL).
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import attrs

from loyaltykit._outbox import EventConsumer, EventPosition, NewEvent, OutboxEvent

__all__ = ["EventWaiter", "OutboxChanges", "OutboxStore"]


@attrs.define
class OutboxChanges:
    """What one unit of work appends to the outbox: ``events`` in the order they were
    raised (the store gives them positions in that order)."""

    events: list[NewEvent] = attrs.field(factory=list)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not self.events

    def write_to(self, uow: _WithOutbox) -> None:
        """Hand these changes to their store in ``uow``."""
        uow.outbox.write(self)


class OutboxStore(Protocol):
    """The outbox of one unit of work's program.

    Positions (:class:`~loyaltykit.EventPosition`) are given by the store when it
    writes; the events of one write get increasing positions in the order given.
    Events belong to **streams** (0 where writers take turns; on PostgreSQL the
    server that keyed them): the never-skip rule holds per stream, so every read and
    position is of one stream.
    """

    def streams(self) -> list[int]:
        """The streams holding the program's events, ascending."""

    def read(self, stream: int, after: EventPosition | None,
             limit: int) -> list[OutboxEvent]:
        """Return up to ``limit`` events of ``stream`` after ``after`` (None: from
        its first), in position order, and only events *safe to read*: no event this
        read skips may ever be committed later in the stream with a position at or
        below one it returns. Where writers take turns every committed event is safe;
        on PostgreSQL only events whose ordering key is below the read's snapshot
        horizon are (events of a stream another server keyed are all final)."""

    def last_position(self, stream: int) -> EventPosition | None:
        """The position of the last event :meth:`read` could return now from
        ``stream`` (None: none)."""

    def member_events(self, member_id: str) -> list[OutboxEvent]:
        """Every stored event of the member (its ``member_id``), in position order,
        whether a read could return it yet or not (a member's export)."""

    def consumer_positions(self, name: str) -> list[EventConsumer]:
        """Consumer ``name``'s positions, one a stream it acknowledged something in,
        by stream."""

    def consumers(self) -> list[EventConsumer]:
        """Every consumer's positions (one a stream it acknowledged something in), by
        name and stream."""

    def set_consumer_position(self, name: str, position: EventPosition,
                              at: dt.datetime) -> EventPosition | None:
        """Move consumer ``name`` to ``position`` (acknowledged at ``at``) and return
        its position after the call. Written at once, in this unit of work.

        Never backwards: a position at or below the stored one changes nothing (the
        stored one is returned; concurrent acknowledgements keep the highest). A
        position past :meth:`last_position` (not yet readable) is refused: nothing is
        written and None is returned. The position's stream is the one moved."""

    def prune(self, before: dt.datetime, limit: int) -> int:
        """Delete up to ``limit`` events recorded before ``before`` that every consumer
        has acknowledged (all such events when there is no consumer; none of a stream
        no consumer acknowledged anything in while there are consumers), oldest
        position first in each stream, and return how many. The event at each
        stream's :meth:`last_position` is kept, so positions never start over."""

    def erase(self, member_id: str) -> None:
        """Empty the ``attributes`` (the member's attributes, as enrolled) in the
        payloads of the member's events; the events stay."""

    def write(self, changes: OutboxChanges) -> None:
        """Append the events, giving each the next position (event ids are unique by
        construction: time-ordered UUIDs; the store does not check them)."""


class EventWaiter(Protocol):
    """What a storage that can wake a waiting consumer gives
    (``storage.event_waiter(program_id)``, optional: without it consumers poll)."""

    def wait(self, timeout: float) -> bool:
        """Block until an event may have been appended to the program's outbox since
        the waiter was made or last returned, or ``timeout`` seconds passed; True if
        woken."""

    def close(self) -> None:
        """Stop listening and release the connection."""


class _WithOutbox(Protocol):
    """A unit of work with this capability's store (see :class:`~loyaltykit.storage.UnitOfWork`)."""

    @property
    def outbox(self) -> OutboxStore: ...
