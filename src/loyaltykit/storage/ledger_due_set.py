"""A batch of due work the database may post on its own: the request.

:mod:`loyaltykit._due_bulk` builds the due rows of a batch in Python, wallet by wallet,
and the store writes them with one statement per table. For the plainest wallets (no
debt, each hold release, activation and expiry independent of the others) the rows
follow from the stored lots and holds by a few joins, so a SQL store can compute and
write them itself (``INSERT ... SELECT`` / ``UPDATE ... FROM``, no Python per row):
:class:`DueSet` is what it is asked, and a store that can answers it with
``ledger.post_due_set(request)`` (see :class:`DueSetStore`).

The store posts the batch only if *every* wallet of it is plain, so a batch is posted
one way or the other (its ids and outbox events then come in the per-member path's
order without interleaving two writers); otherwise it writes nothing, draws no id and
returns None, and due work goes on as before.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["DueSet", "DueSetStore"]


@attrs.frozen
class DueSet:
    """One batch of due work for :meth:`DueSetStore.post_due_set`.

    ``wallets`` are the batch's due (member id, wallet) pairs in the order due work
    posts them (the per-member path's: ids are drawn wallet after wallet, each
    transaction's then its outbox event's); ``until`` the instant due work runs to,
    ``recorded_at`` the write's now; the write's id source as ``new_ids(n)`` (``n``
    new ids) and as ``new_ids_hex(n)`` (the same draw as their hex digits, 32 ASCII
    bytes an id, for a store that binds them as text: no UUID object per id); with
    ``event_types`` (kind value -> outbox event type) an outbox event is appended
    after each transaction, as the outbox records a :class:`~loyaltykit._events.DuePosted`.
    """

    wallets: Sequence[tuple[str, str]]
    until: dt.datetime
    recorded_at: dt.datetime
    new_ids_hex: Callable[[int], bytes]
    new_ids: Callable[[int], list[uuid.UUID]]
    event_types: Mapping[str, str] | None


@runtime_checkable
class DueSetStore(Protocol):
    """A ledger store that can post a :class:`DueSet` itself."""

    def post_due_set(self, request: DueSet) -> dict[str, int] | None:
        """Post the batch set-based and return the report's counts (as
        :class:`~loyaltykit._due_bulk.DueBulk` counts them), or None having written
        nothing and drawn no id when a wallet of it is not plain."""
        ...
