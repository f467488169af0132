"""What a batch of set-based due work writes to the ledger's store: plain rows.

:class:`DueChanges` is built by :mod:`loyaltykit._due_bulk` for the member wallets
whose due work is a plain sequence of hold releases, activations and expiries, and
written by :meth:`~loyaltykit.storage.LedgerStore.write_due` with one multi-row
statement per table. It writes exactly what :class:`~loyaltykit.storage.LedgerChanges`
would for the same transactions (the per-member path), without a
:class:`~loyaltykit.Transaction`, :class:`~loyaltykit.Lot` or
:class:`~loyaltykit.Hold` object per row.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Protocol

import attrs

from loyaltykit._model import AccountState

__all__ = ["DueChanges", "DueLot", "DuePosting", "DueTransaction"]

#: (id, member index, wallet, kind value, occurred_at, reason, metadata)
DueTransaction = tuple[uuid.UUID, int, str, str, dt.datetime, str, dict[str, Any]]
#: (transaction id, member index, wallet, account value, amount, position)
DuePosting = tuple[uuid.UUID, int, str, str, int, int]
#: (id, member index, remaining, held, pending, activates_at, expires_at): a lot's
#: final state (its member: the update is keyed by it too, the row's node on a
#: distributed engine)
DueLot = tuple[uuid.UUID, int, int, int, bool, dt.datetime | None, dt.datetime | None]


@attrs.define
class DueChanges:
    """One unit of work's set-based due writes (see the module docstring).

    Rows name their member by its index in :attr:`members` (so a store translating
    member ids translates that list only). ``movements`` are (transaction id, member
    index, lot id, delta), each its transaction's only movement (position 0);
    ``holds`` are (hold id, member index, releasing transaction id): released,
    nothing captured;
    ``accounts`` are (member index, final running totals) of the touched wallets.
    Every transaction is recorded at ``recorded_at`` (set before anything is
    written) and has no idempotency key.
    """

    recorded_at: dt.datetime | None = None
    members: list[str] = attrs.field(factory=list)
    transactions: list[DueTransaction] = attrs.field(factory=list)
    postings: list[DuePosting] = attrs.field(factory=list)
    movements: list[tuple[uuid.UUID, int, uuid.UUID, int]] = attrs.field(factory=list)
    lots: list[DueLot] = attrs.field(factory=list)
    holds: list[tuple[uuid.UUID, int, uuid.UUID]] = attrs.field(factory=list)
    accounts: list[tuple[int, AccountState]] = attrs.field(factory=list)

    @property
    def empty(self) -> bool:
        """True if there is nothing to write."""
        return not (self.transactions or self.accounts)

    def write_to(self, uow: _WithLedgerDue) -> None:
        """Hand these changes to the ledger's store in ``uow``."""
        uow.ledger.write_due(self)


class _LedgerDueStore(Protocol):
    def write_due(self, changes: DueChanges) -> None: ...


class _WithLedgerDue(Protocol):
    @property
    def ledger(self) -> _LedgerDueStore: ...
