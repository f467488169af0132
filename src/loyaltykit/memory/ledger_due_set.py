"""The ledger's due work posted by the memory store itself, for batches of plain wallets.

:meth:`MemoryLedgerDueSet.post_due_set` answers a
:class:`~loyaltykit.storage.ledger_due_set.DueSet` as the SQLite store does
(:mod:`loyaltykit.sql.ledger_due_set`): where every wallet of the batch is *plain* (no
debt, something to post, every stale hold's points going back to an open lot of the
wallet that does not expire by the release, no pending lot expiring by ``until``;
expiry not counted from the activation: the caller's check), the wallet's events do not
depend on one another, so they are its stale holds, matured pending lots and lots past
their expiry with unheld points (after the releases), sorted by instant, then release <
activation < expiry, then the item's id (``catch_up``'s order). Otherwise nothing is
written, no id drawn, and None returned.

Where :mod:`loyaltykit._due_bulk` builds a :class:`~loyaltykit._ledger_book.MemberBook`
per wallet (shown lots and holds, a copy of each through the member-key layer), plain
rows, then a :class:`~loyaltykit._events.DueRecord` per transaction for the outbox to
build a payload dict from and pack again, this reads the stored rows in place, draws the
batch's ids in one call (in the per-member path's order: each transaction's, then its
outbox event's), builds each transaction's kept row and each event's kept bytes straight
from the fields (:meth:`~loyaltykit.memory.ledger_rows.KeptTx.row`;
:meth:`~loyaltykit.memory.outbox.KeptEvents.fused`: one struct call an event), and
writes every table with one undo-log entry per batch. The rows are the ones ``catch_up``
writes, row for row: the contract :mod:`loyaltykit.testing.contract.ledger_due_bulk`
compares the two.
"""

from __future__ import annotations

import datetime as dt
import operator
import struct
import uuid
from typing import TYPE_CHECKING, Any

from loyaltykit._copy import evolver
from loyaltykit._model import (
    MEMBER_ACCOUNTS,
    AccountState,
    Hold,
    HoldStatus,
    Kind,
    Lot,
    Posting,
)
from loyaltykit._outbox import EVENT_VERSION
from loyaltykit.memory import due_events
from loyaltykit.memory.ledger_rows import ACCOUNT_OF, KeptTx, due_texts, shared_postings
from loyaltykit.memory.outbox import (
    KeptEvent,
    KeptEvents,
    MemoryOutboxStore,
    micros,
    payload_kept,
)
from loyaltykit.memory.tables import MemberKeys, Tables, UndoLog
from loyaltykit.storage.ledger_due_set import DueSet

if TYPE_CHECKING:
    from loyaltykit.memory.ledger import LedgerTables

__all__ = ["MemoryLedgerDueSet"]

_RELEASE, _ACTIVATE, _EXPIRE = 0, 1, 2
_KINDS = (Kind.RELEASE, Kind.ACTIVATE, Kind.EXPIRE)
_NAMES = tuple(k.value for k in _KINDS)
_RELEASED = HoldStatus.RELEASED
_REASONS = ("hold expired", "", "")
_COUNTS = (("released_holds", "released_points"), ("activated_lots", "activated_points"),
           ("expired_lots", "expired_points"))
#: the metadata's (keys, kinds) as the event layout numbers them (an id: True)
_METADATA = ((("hold_id", "cause"), (True, False)), (("lot_id", "earn_id"), (True, True)),
             (("lot_id", "earn_id"), (True, True)))
#: a kept row's texts before its ids (see :func:`due_texts`)
_RELEASE_TEXTS = due_texts(_REASONS[0], 0)
_LOT_TEXTS = due_texts("", 1)
#: the event metadata's text value "released" as the layout keeps it
_CAUSE = b"\x08released"
#: the metadata's values in the event layout: the hold's id and the cause; the lot's
#: id and its earn's
_METADATA_LAYOUT = ("16s9s", "16s16s", "16s16s")
_MARK = due_events.MARK
_new_bytes = bytes.__new__
_MEMBER_ACCOUNTS = frozenset(a.value for a in MEMBER_ACCOUNTS)
_ORDER = operator.itemgetter(0, 1, 2)
_UUID = uuid.UUID
_UNKNOWN = uuid.SafeUUID.unknown
_new_uuid = object.__new__
_set = object.__setattr__
_from_bytes = int.from_bytes

#: one step of a wallet: (instant, kind, item's id, its row, and for a release the
#: points its allocations give back, else the lot's held points after the releases)
_Step = tuple[dt.datetime, int, uuid.UUID, Any, int]


_released = evolver(Hold, ("status", "captured", "resolved_by"))
_activated = evolver(Lot, ("held", "pending", "activates_at"))
_expired = evolver(Lot, ("remaining", "held"))
_given_back = evolver(Lot, ("held",))
_posted = evolver(AccountState, ("available", "pending", "held", "expired", "version",
                                 "next_due_at"))


class _Legs:
    """A transaction's legs, worked out once per distinct (kind, points) in a batch:
    its postings (the kept, shared tuple), its member accounts' changes (accounts,
    amounts) and its points, as the outbox event shows them."""

    __slots__ = ("accounts", "amounts", "pairs", "points", "postings")

    def __init__(self, pairs: tuple[tuple[str, int], ...]) -> None:
        self.pairs = pairs
        self.postings = shared_postings(tuple(Posting(ACCOUNT_OF[a], n) for a, n in pairs))
        changes = [(a, n) for a, n in pairs if a in _MEMBER_ACCOUNTS and n]
        self.accounts = tuple(a for a, _ in changes)
        self.amounts = tuple(n for _, n in changes)
        self.points = sum(n for a, n in pairs if a in _MEMBER_ACCOUNTS)


def _pairs(kind: int, a: int, b: int) -> tuple[tuple[str, int], ...]:
    """The legs that move points, in :class:`~loyaltykit._due_bulk.DueBulk`'s order (a
    release: ``a`` points back, ``b`` the hold's; else ``a`` the points)."""
    if kind == _RELEASE:
        return tuple(p for p in (("available", a), ("held", -b)) if p[1])
    if kind == _ACTIVATE:
        return (("pending", -a), ("available", a)) if a else ()
    return (("available", -a), ("expired", a))


class MemoryLedgerDueSet:
    """Due work posted by the memory store itself (see the module docstring). Mixed
    into :class:`~loyaltykit.memory.ledger.MemoryLedgerStore`."""

    _uow: UndoLog
    _t: LedgerTables
    _keys: MemberKeys
    _tables: Tables

    def post_due_set(self, request: DueSet) -> dict[str, int] | None:
        """Post the batch's due work from the stored rows and return its counts; None
        (nothing written, no id drawn) when a wallet is not plain."""
        if not request.wallets:
            return None
        plans = self._plan(request)
        if plans is None:
            return None
        return self._post(request, plans)

    def _plan(self, request: DueSet) -> list[tuple[Any, ...]] | None:
        """Each wallet's steps in posting order, the lots only given points back, the
        next due instant after the batch; None if a wallet is not plain. Reads only."""
        t, program_id, until = self._t, self._uow.program_id, request.until
        accounts, lots_of, holds_of = t.accounts, t.lots, t.holds
        member_lots, member_holds = t.member_lots, t.member_holds
        plans = []
        for member_id, wallet in request.wallets:
            key = (program_id, wallet, member_id)
            state = accounts.get(key)
            if state is None or state.debt:  # debt: an activation settles it first
                return None
            lot_ids = member_lots.get(key, ())
            steps: list[_Step] = []
            back: dict[uuid.UUID, int] = {}
            nxt: dt.datetime | None = None
            hold_ids = member_holds.get(key)
            if hold_ids:
                for hold_id in hold_ids:
                    hold = holds_of[hold_id]
                    at = hold.expires_at
                    if at > until:  # open after the batch
                        if nxt is None or at < nxt:
                            nxt = at
                        continue
                    given = 0
                    for alloc in hold.allocations:
                        lot_id = alloc.lot_id
                        if lot_id not in lot_ids:  # not an open lot of the wallet
                            return None
                        expires = lots_of[lot_id].expires_at
                        if expires is not None and expires <= at:  # they would expire
                            return None  # in the release: catch_up's case
                        back[lot_id] = back.get(lot_id, 0) + alloc.points
                        given += alloc.points
                    steps.append((at, _RELEASE, hold_id, hold, given))
            only_back: list[tuple[uuid.UUID, Lot, int]] = []
            for lot_id in lot_ids:
                lot = lots_of[lot_id]
                given = back.get(lot_id, 0) if back else 0
                held = lot.held - given
                expires = lot.expires_at
                unheld = lot.remaining - held > 0
                if lot.pending:
                    if expires is not None and expires <= until:
                        return None  # its activation and expiry would depend on each other
                    activates = lot.activates_at
                    if activates is not None and activates <= until:
                        steps.append((activates, _ACTIVATE, lot_id, lot, held))
                    else:
                        if activates is not None and (nxt is None or activates < nxt):
                            nxt = activates
                        if given:
                            only_back.append((lot_id, lot, held))
                elif expires is not None and unheld and expires <= until:
                    steps.append((expires, _EXPIRE, lot_id, lot, held))
                    continue  # no unheld points after: not due again
                elif given:
                    only_back.append((lot_id, lot, held))
                if expires is not None and unheld and (nxt is None or expires < nxt):
                    nxt = expires
            if not steps:  # only its next due instant may change: catch_up's
                return None
            if len(steps) > 1:
                steps.sort(key=_ORDER)
            plans.append((key, state, steps, only_back, nxt))
        return plans

    def _post(self, request: DueSet, plans: list[tuple[Any, ...]]) -> dict[str, int]:
        """Draw the ids and write the rows of ``plans`` (see :meth:`_plan`)."""
        t, uow, program_id = self._t, self._uow, self._uow.program_id
        recorded_at, types = request.recorded_at, request.event_types
        events = types is not None
        steps_n = sum(len(plan[2]) for plan in plans)
        # the ids as one bytes object (the draw new_ids makes, as hex digits): a UUID
        # object for each transaction's id only (a row's key), the event's id packed
        # from its bytes (a UUID object and a .bytes call an id were a tenth of the run)
        drawn = bytes.fromhex(request.new_ids_hex(steps_n * 2 if events else steps_n)
                              .decode("ascii"))
        at_byte = 0
        shared = self._keys.shared
        legs_of: dict[tuple[int, int, int], _Legs] = {}
        fused_of: dict[tuple[_Legs, str, int], tuple[Any, ...]] = {}
        micros_of: dict[dt.datetime, int] = {}
        makers = [KeptEvents(types[name], EVENT_VERSION, recorded_at)
                  for name in _NAMES] if types is not None else []
        counts = [0, 0, 0]
        points_moved = [0, 0, 0]
        states: list[tuple[tuple[str, str, str], AccountState]] = []
        txs: list[tuple[uuid.UUID, KeptTx]] = []
        by_member: list[tuple[tuple[str, str, str], uuid.UUID]] = []
        lots: list[tuple[uuid.UUID, Lot]] = []
        closed_lots: list[tuple[tuple[str, str, str], uuid.UUID]] = []
        holds: list[tuple[uuid.UUID, Hold]] = []
        closed_holds: list[tuple[tuple[str, str, str], uuid.UUID]] = []
        kept: list[tuple[str, KeptEvent]] = []
        row = KeptTx.row
        for key, state, steps, only_back, nxt in plans:
            key = shared(key)
            _, wallet, member_id = key
            member = member_id.encode()
            size = len(member)
            available, pending, held, expired = (state.available, state.pending,
                                                 state.held, state.expired)
            for at, kind, item, stored, number in steps:
                tx_bytes = drawn[at_byte:at_byte + 16]
                at_byte += 16
                tx_id = _new_uuid(_UUID)
                _set(tx_id, "int", _from_bytes(tx_bytes, "big"))
                _set(tx_id, "is_safe", _UNKNOWN)
                item_bytes = item.int.to_bytes(16, "big")
                if kind == _RELEASE:
                    hold: Hold = stored
                    legs_key = (kind, number, hold.points)
                    available += number
                    held -= hold.points
                    holds.append((item, _released(hold, _RELEASED, 0, tx_id)))
                    closed_holds.append((key, item))
                    texts = _RELEASE_TEXTS + item_bytes
                    moved, moved_points = None, hold.points
                else:
                    lot: Lot = stored
                    earn_bytes = lot.transaction_id.int.to_bytes(16, "big")
                    texts = b"".join((_LOT_TEXTS, item_bytes, earn_bytes))
                    if kind == _ACTIVATE:
                        moved_points = lot.remaining
                        legs_key = (kind, moved_points, 0)
                        pending -= moved_points
                        available += moved_points
                        lots.append((item, _activated(lot, number, False, None)))
                        if lot.remaining <= 0:
                            closed_lots.append((key, item))
                        moved = None
                    else:
                        moved_points = lot.remaining - number
                        legs_key = (kind, moved_points, 0)
                        available -= moved_points
                        expired += moved_points
                        lots.append((item, _expired(lot, number, number)))
                        if number <= 0:
                            closed_lots.append((key, item))
                        moved = item
                legs = legs_of.get(legs_key)
                if legs is None:
                    legs = legs_of[legs_key] = _Legs(_pairs(*legs_key))
                counts[kind] += 1
                points_moved[kind] += moved_points
                txs.append((tx_id, row(tx_id, program_id, member_id, wallet, _KINDS[kind],
                                       at, recorded_at, legs.postings, moved,
                                       -moved_points, texts)))
                by_member.append((key, tx_id))
                if events:
                    occurred = micros_of.get(at)
                    if occurred is None:
                        occurred = micros_of[at] = micros(at)
                    event_bytes = drawn[at_byte:at_byte + 16]
                    at_byte += 16
                    fused = fused_of.get((legs, wallet, size))
                    if fused is None:
                        fused = fused_of[legs, wallet, size] = _fused(
                            makers[kind], kind, wallet, size, legs)
                    meta_b = _CAUSE if kind == _RELEASE else earn_bytes
                    data = None
                    if fused:
                        pack, version, recorded, code, inline, c0, c1, c2, c3, reason = fused
                        try:
                            data = pack(event_bytes, version, occurred, recorded, code,
                                        size, inline, member, _MARK, tx_bytes, c0, c1,
                                        c2, c3, len(reason), legs.points, available,
                                        pending, held, 0, available + pending + held,
                                        *legs.amounts, reason, item_bytes, meta_b)
                        except struct.error:  # an int beyond the layout's
                            data = None
                    if data is None:  # beyond the layout: as the outbox keeps it
                        kept.append((member_id, makers[kind](
                            uuid.UUID(bytes=event_bytes), member, occurred, payload_kept(_payload(
                                tx_id, kind, wallet, legs, (available, pending, held),
                                item, stored)))))
                    else:
                        kept.append((member_id, _new_bytes(KeptEvent, data)))
            for lot_id, lot, number in only_back:
                lots.append((lot_id, _given_back(lot, number)))
            states.append((key, _posted(state, available, pending, held, expired,
                                        state.version + len(steps), nxt)))
        # the order write() keeps: accounts, transactions, lots, holds
        uow.put_many(t.accounts, states)
        uow.put_many(t.transactions, txs)
        uow.append_many(t.member_transactions, by_member)
        uow.put_many(t.lots, lots)
        uow.close_many(t.member_lots, closed_lots)
        uow.put_many(t.holds, holds)
        uow.close_many(t.member_holds, closed_holds)
        if kept:
            MemoryOutboxStore(uow, self._tables).append_kept(kept)
        found: dict[str, int] = {}
        for kind, (lots_name, points_name) in enumerate(_COUNTS):
            if counts[kind]:
                found[lots_name], found[points_name] = counts[kind], points_moved[kind]
        return found


def _fused(maker: KeptEvents, kind: int, wallet: str, size: int, legs: _Legs
           ) -> tuple[Any, ...]:
    """What one call packs a kept event with (see :meth:`KeptEvents.fused`): the struct's
    pack, the event's fixed values, the payload's codes and reason; () where the
    layout would leave the payload to JSON (a table of codes full)."""
    codes = due_events.points_codes(_NAMES[kind], wallet, legs.accounts, _METADATA[kind])
    if codes is None:
        return ()
    reason = _REASONS[kind].encode()
    layout = maker.fused(size, due_events.points_format(
        len(legs.amounts), len(reason), _METADATA_LAYOUT[kind]))
    return (layout.pack, maker.version, maker.recorded, maker.code, maker.inline, *codes,
            reason)


def _payload(tx_id: uuid.UUID, kind: int, wallet: str, legs: _Legs,
             balance: tuple[int, int, int], item: uuid.UUID, stored: Any) -> dict[str, Any]:
    """The payload EventService._due_posted builds for the transaction (an event beyond
    the fixed layout, kept as JSON text: an int beyond 32 bits, a table of codes full)."""
    available, pending, held = balance
    metadata = ({"hold_id": str(item), "cause": _RELEASED.value} if kind == _RELEASE
                else {"lot_id": str(item), "earn_id": str(stored.transaction_id)})
    return {"transaction_id": str(tx_id), "kind": _NAMES[kind], "wallet": wallet,
            "points": legs.points, "changes": dict(zip(legs.accounts, legs.amounts,
                                                       strict=True)),
            "balance": {"available": available, "pending": pending, "held": held,
                        "debt": 0, "total": available + pending + held},
            "reason": _REASONS[kind], "metadata": metadata}
