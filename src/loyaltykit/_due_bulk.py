"""Set-based due work: the due transactions of many member wallets as plain rows.

:meth:`Ledger.catch_up <loyaltykit._ledger.Ledger.catch_up>` posts a wallet's due work
one :class:`~loyaltykit.Transaction` at a time (its postings, movements, the lots and
holds it changes as new objects, an outbox event built from each); for a batch of
thousands of wallets that Python per row is most of due work's time.
:meth:`DueBulk.post` replays the very same sequence on light state (ints and
instants per lot) and appends plain rows to a
:class:`~loyaltykit.storage.DueChanges` and :class:`~loyaltykit._events.DueRecord`
rows for the outbox, which the stores write with one statement per table.

Same result, row for row: the events are found as ``catch_up`` finds them (the
earliest of stale open holds, matured pending lots, lots past their expiry with unheld
points, again after each one), each transaction gets the same postings in the same
order, the same metadata and reason, bumps the account's version once, and the ids
are drawn from the same source in the same order (the transaction's, then its outbox
event's, transaction after transaction), so the ids' order is the one readers see on
the per-member path.

A wallet this does not cover is left to ``catch_up`` (:meth:`DueBulk.post` returns
False having drawn no id): one with debt (an activation settles it first) and one with
a hold whose points return to a lot already past its expiry (they expire in the
release). A wallet with nothing to post goes there too (only its next due instant
may change).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from loyaltykit._copy import evolve
from loyaltykit._events import DueRecord
from loyaltykit._ledger_book import Expiries, MemberBook
from loyaltykit._model import HoldStatus, Kind
from loyaltykit._program import ClawbackPolicy, ExpiryStart, Program
from loyaltykit.storage.ledger_due import DueChanges

__all__ = ["DueBulk"]

_RELEASE, _ACTIVATE, _EXPIRE = Kind.RELEASE.value, Kind.ACTIVATE.value, Kind.EXPIRE.value
_OPEN = HoldStatus.OPEN
_RELEASED = HoldStatus.RELEASED.value
# a lot's working state: [remaining, held, pending, activates_at, expires_at]
_REM, _HELD, _PENDING, _ACTIVATES, _EXPIRES = range(5)


class DueBulk:
    """Builds one unit of work's set-based due rows (see the module docstring).

    ``until`` is the instant due work runs to (the ledger's ``at``), ``recorded_at``
    the attempt's now, ``new_id`` the write's id source (``new_ids``: the same, many
    at once); with ``events`` an outbox event id is drawn after each transaction's id
    (as the per-member path draws one when the outbox listens).
    """

    def __init__(self, program: Program, changes: DueChanges, *, until: dt.datetime,
                 new_id: Callable[[], uuid.UUID], events: bool,
                 new_ids: Callable[[int], list[uuid.UUID]] | None = None) -> None:
        self.program = program
        self.changes = changes
        self.until = until
        self.new_id = new_id
        #: ``n`` ids at once, as ``n`` calls of ``new_id`` draw them (a wallet's)
        self.new_ids = new_ids or (lambda n: [new_id() for _ in range(n)])
        self.events = events
        #: the outbox's rows of the transactions posted and not yet taken
        self.records: list[DueRecord] = []
        #: the report's counts (as :func:`loyaltykit._services.due._count` adds them)
        self.counts: dict[str, int] = {}
        self._from_activation = (program.ledger.expiry.counted_from
                                 is ExpiryStart.ACTIVATION)
        self._expiry = Expiries(program)

    def take_records(self) -> list[DueRecord]:
        """The outbox rows built since the last call, in posting order."""
        found, self.records = self.records, []
        return found

    def post(self, book: MemberBook) -> bool:
        """Post what is due in ``book``'s wallet up to ``until`` as rows; False (and
        nothing drawn or written) if it is a wallet for ``catch_up``."""
        state = book.state
        if state.debt:
            return False
        lots, holds = book.require_lots()
        until = self.until
        work: dict[uuid.UUID, list[Any]] = {
            lot.id: [lot.remaining, lot.held, lot.pending, lot.activates_at, lot.expires_at]
            for lot in lots.values()}
        open_holds = {h.id: h for h in holds.values() if h.status is _OPEN}
        steps: list[tuple[int, Any, dt.datetime, int]] = []
        touched: dict[uuid.UUID, None] = {}
        while True:  # the events catch_up finds, in its order
            best: tuple[dt.datetime, int, uuid.UUID] | None = None
            for hold_id, hold in open_holds.items():
                if hold.expires_at <= until:
                    e = (hold.expires_at, 0, hold_id)
                    if best is None or e < best:
                        best = e
            for lot_id, s in work.items():
                if s[_PENDING] and s[_ACTIVATES] is not None and s[_ACTIVATES] <= until:
                    e = (s[_ACTIVATES], 1, lot_id)
                elif (s[_EXPIRES] is not None and s[_EXPIRES] <= until
                      and s[_REM] - s[_HELD] > 0):
                    e = (s[_EXPIRES], 2, lot_id)
                else:
                    continue
                if best is None or e < best:
                    best = e
            if best is None:
                break
            when, order, item = best
            if order == 0:
                hold = open_holds.pop(item)
                for alloc in hold.allocations:
                    back = work.get(alloc.lot_id)
                    if back is None or (back[_EXPIRES] is not None
                                        and back[_EXPIRES] <= when):
                        return False  # points returning to an expired lot expire at once
                    back[_HELD] -= alloc.points
                    touched[alloc.lot_id] = None
                steps.append((0, hold, when, 0))
            elif order == 1:
                s = work[item]
                s[_PENDING], s[_ACTIVATES] = False, None
                if self._from_activation:
                    s[_EXPIRES] = self._expiry(when)
                touched[item] = None
                steps.append((1, item, when, s[_REM]))
            else:
                s = work[item]
                points = s[_REM] - s[_HELD]
                s[_REM] = s[_HELD]
                touched[item] = None
                steps.append((2 if not s[_PENDING] else 3, item, when, points))
        if not steps:
            return False
        self._emit(book, lots, steps)
        changes = self.changes
        ix = len(changes.members) - 1  # the wallet's member, named by _emit
        for lot_id in touched:
            s = work[lot_id]
            changes.lots.append((lot_id, ix, s[_REM], s[_HELD], s[_PENDING], s[_ACTIVATES],
                                 s[_EXPIRES]))
        nxt: dt.datetime | None = None
        for s in work.values():
            if s[_PENDING] and s[_ACTIVATES] is not None and (nxt is None
                                                             or s[_ACTIVATES] < nxt):
                nxt = s[_ACTIVATES]
            if s[_EXPIRES] is not None and s[_REM] - s[_HELD] > 0 and (
                    nxt is None or s[_EXPIRES] < nxt):
                nxt = s[_EXPIRES]
        for hold in open_holds.values():
            if nxt is None or hold.expires_at < nxt:
                nxt = hold.expires_at
        changes.accounts[-1] = (changes.accounts[-1][0],
                                evolve(changes.accounts[-1][1], next_due_at=nxt))
        return True

    def _emit(self, book: MemberBook, lots: dict[uuid.UUID, Any],
              steps: list[tuple[int, Any, dt.datetime, int]]) -> None:
        """Draw the ids and write the rows of ``steps`` (one transaction each)."""
        changes = self.changes
        state = book.state
        member_id, wallet = state.member_id, state.wallet
        ix = len(changes.members)
        changes.members.append(member_id)
        available, pending, held, expired = (state.available, state.pending, state.held,
                                             state.expired)
        events, counts = self.events, self.counts
        # the wallet's ids, drawn in the per-member path's order (each transaction's,
        # then its outbox event's)
        ids = iter(self.new_ids(len(steps) * (2 if events else 1)))
        txs, legs, moves = changes.transactions, changes.postings, changes.movements
        records = self.records
        negative = self.program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE
        debt = -state.debt  # 0: a wallet with debt is catch_up's
        for kind, item, when, points in steps:
            tx_id = next(ids)
            event_id = next(ids) if events else None
            postings: tuple[tuple[str, int], ...]
            if kind == 0:
                hold = item
                back = 0
                for alloc in hold.allocations:
                    back += alloc.points
                # the legs that move points, in this order
                if back and hold.points:
                    postings = (("available", back), ("held", -hold.points))
                else:
                    postings = tuple(p for p in (("available", back), ("held", -hold.points))
                                     if p[1])
                available += back
                held -= hold.points
                changes.holds.append((hold.id, ix, tx_id))
                name, reason = _RELEASE, "hold expired"
                metadata: dict[str, Any] = {"hold_id": str(hold.id), "cause": _RELEASED}
                _add(counts, "released_holds", 1)
                _add(counts, "released_points", hold.points)
            else:
                lot = lots[item]
                metadata = {"lot_id": str(item), "earn_id": str(lot.transaction_id)}
                reason = ""
                if kind == 1:
                    postings = (("pending", -points), ("available", points)) if points else ()
                    pending -= points
                    available += points
                    name = _ACTIVATE
                    _add(counts, "activated_lots", 1)
                    _add(counts, "activated_points", points)
                else:
                    bucket = "available" if kind == 2 else "pending"
                    postings = ((bucket, -points), ("expired", points))
                    if kind == 2:
                        available -= points
                    else:
                        pending -= points
                    expired += points
                    moves.append((tx_id, ix, item, -points))
                    name = _EXPIRE
                    _add(counts, "expired_lots", 1)
                    _add(counts, "expired_points", points)
            txs.append((tx_id, ix, wallet, name, when, reason, metadata))
            for position, (account, amount) in enumerate(postings):
                legs.append((tx_id, ix, wallet, account, amount, position))
            if events:
                shown = available - (debt if negative else 0)
                records.append((event_id, tx_id, member_id, wallet, name, when, postings,
                                (shown, pending, held, debt), reason, dict(metadata)))
        changes.accounts.append((ix, evolve(
            state, available=available, pending=pending, held=held, expired=expired,
            version=state.version + len(steps))))


def _add(counts: dict[str, int], name: str, n: int) -> None:
    counts[name] = counts.get(name, 0) + n
