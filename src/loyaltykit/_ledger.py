"""The pure ledger core: turns a request and a member's current state into changes.

No I/O and no clock: the facade loads a :class:`MemberBook` per member (its stored
totals and, when the operation needs them, its open lots and holds), calls one
operation on a :class:`Ledger`, and hands the resulting
:class:`~loyaltykit.storage.LedgerChanges` to storage.

Rules kept here (DESIGN §3):

* every transaction's postings sum to zero (checked by :class:`Transaction`);
* a lot's ``0 <= held <= remaining <= amount``;
* available never goes below zero except through clawback debt;
* lots are consumed in the program's spend order and every consumption is recorded,
  so a reversal restores exactly those lots;
* points held by an open hold are protected from expiry until the hold is resolved;
  what then returns to a lot past its expiry expires at once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loyaltykit._copy import evolve
from loyaltykit._errors import (
    HoldExpired,
    HoldNotOpen,
    InsufficientPoints,
    InvalidPoints,
    NotReversible,
)
from loyaltykit._ledger_book import Draft, Expiries, MemberBook, bucket_of
from loyaltykit._model import (
    Account,
    AccountState,
    Hold,
    HoldAllocation,
    HoldStatus,
    Kind,
    Lot,
    Transaction,
)
from loyaltykit._program import ClawbackPolicy, ExpiryStart, Program, SpendOrder
from loyaltykit._values import MAX_TOTAL
from loyaltykit.storage.ledger import LedgerChanges

__all__ = ["Ledger", "MemberBook"]

_FAR_FUTURE = dt.datetime.max.replace(tzinfo=dt.UTC)
_NOT_REVERSIBLE = {Kind.EXPIRE, Kind.ACTIVATE, Kind.HOLD, Kind.RELEASE, Kind.REVERSE,
                   Kind.REFUND}
#: What a refund may give part of back.
_REFUNDABLE = frozenset({Kind.SPEND, Kind.CAPTURE})
#: What brings points (or debt) into a wallet: each total it posts to stays within
#: MAX_TOTAL. Everything else only moves what these brought in (an expiry, a spend,
#: a reversal), so no stored total can pass a few times MAX_TOTAL, far inside the
#: 64-bit columns of the SQL backends.
_BRINGS_IN = frozenset({Kind.EARN, Kind.ADJUST, Kind.TRANSFER, Kind.CLAWBACK})


class Ledger:
    """Builds the changes of one unit of work for one program.

    ``at`` is the business instant of the request, ``recorded_at`` the clock's now,
    ``new_id`` the id source, ``key`` the request's idempotency key (stored on every
    transaction the request writes).
    """

    def __init__(
        self,
        program: Program,
        *,
        at: dt.datetime,
        recorded_at: dt.datetime,
        new_id: Callable[[], uuid.UUID],
        key: str | None = None,
        on_posted: Callable[[Transaction], None] | None = None,
        expiries: Expiries | None = None,
    ) -> None:
        self.program = program
        #: called with every transaction this ledger posts (the write pipeline raises
        #: :class:`~loyaltykit._events.PointsPosted` from it)
        self.on_posted = on_posted
        self.at = at
        self.recorded_at = recorded_at
        self.new_id = new_id
        self.key = key
        self.changes = LedgerChanges()
        self._books: dict[tuple[str, str], MemberBook] = {}
        self._touched: set[tuple[str, str]] = set()  # accounts changed without postings
        #: lot expiries by start (a bulk earn's lots share one: worked out once);
        #: ``expiries`` of ``program`` shared by several writes (a history import's
        #: orders: each its own ledger, many of a day)
        self._expiry = Expiries(program) if expiries is None else expiries

    # -- books ---------------------------------------------------------------------------

    def add_book(self, book: MemberBook) -> MemberBook:
        """Register a member wallet's working state with this ledger."""
        self._books[(book.member_id, book.wallet)] = book
        return book

    def book(self, member_id: str, wallet: str) -> MemberBook:
        return self._books[(member_id, wallet)]

    def set_activity(self, state: AccountState, activity: str) -> None:
        """Keep ``activity`` (the member's earning counters, stored form) on the account
        ``state`` stands for: on its book if this ledger has one, else on a new book."""
        key = (state.member_id, state.wallet)
        book = self._books.get(key)
        if book is None:
            book = self.add_book(MemberBook(state))
        if book.state.activity != activity:
            book.state = evolve(book.state, activity=activity, version=book.state.version + 1)
            self._touched.add(key)

    def finish(self) -> LedgerChanges:
        """Finalise running totals (including ``next_due_at``) and return the changes.

        A wallet whose lots were loaded gets an exact ``next_due_at``; one whose lots
        were not only ever gains lots and holds, so the earliest new instant is kept.
        """
        touched = {(t.member_id, t.wallet) for t in self.changes.transactions}
        touched |= self.changes.new_accounts
        touched |= self._touched
        for key, book in self._books.items():
            if book.lots is not None and book.holds is not None:
                exact = _next_due(book)
                if exact != book.state.next_due_at:
                    book.state = evolve(book.state, next_due_at=exact)
                    touched.add(key)
        self.changes.accounts = {key: self._books[key].state for key in touched}
        return self.changes

    # -- low-level helpers ------------------------------------------------------------------

    def _commit(
        self,
        book: MemberBook,
        kind: Kind,
        draft: Draft,
        *,
        occurred_at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        reverses_id: uuid.UUID | None = None,
        tx_id: uuid.UUID | None = None,
    ) -> Transaction:
        tx = Transaction(
            id=tx_id or self.new_id(),
            program_id=self.program.id,
            member_id=book.member_id,
            wallet=book.wallet,
            kind=kind,
            occurred_at=occurred_at or self.at,
            recorded_at=self.recorded_at,
            postings=draft.postings(),
            movements=draft.movements(),
            idempotency_key=self.key,
            reason=reason,
            metadata=dict(metadata or {}),
            reverses_id=reverses_id,
        )
        state = book.state.apply(tx.postings)
        if kind in _BRINGS_IN:
            for posting in tx.postings:
                if abs(getattr(state, posting.account.value)) > MAX_TOTAL:
                    raise InvalidPoints(
                        f"this would take the member's {posting.account.value} points past "
                        f"{MAX_TOTAL}, the most a wallet's totals may hold",
                        member_id=book.member_id, wallet=book.wallet,
                        account=posting.account.value, points=abs(posting.amount))
        book.state = state
        self.changes.transactions.append(tx)
        if self.on_posted is not None:
            self.on_posted(tx)
        return tx

    def _put_lot(self, book: MemberBook, lot: Lot, *, new: bool = False) -> None:
        if not 0 <= lot.held <= lot.remaining <= lot.amount:  # domain bug guard
            raise AssertionError(f"lot out of bounds: {lot}")
        if book.lots is not None:
            book.lots[lot.id] = lot
        self.changes.lots[lot.id] = lot
        if new:
            self.changes.new_lots.add(lot.id)
            self._bump_due(book, lot.activates_at if lot.pending else None)
            self._bump_due(book, lot.expires_at)

    def _put_hold(self, book: MemberBook, hold: Hold, *, new: bool = False) -> None:
        if book.holds is not None:
            if hold.status is HoldStatus.OPEN:
                book.holds[hold.id] = hold
            else:
                book.holds.pop(hold.id, None)
        self.changes.holds[hold.id] = hold
        if new:
            self.changes.new_holds.add(hold.id)
            self._bump_due(book, hold.expires_at)

    def _bump_due(self, book: MemberBook, instant: dt.datetime | None) -> None:
        if instant is None:
            return
        current = book.state.next_due_at
        if current is None or instant < current:
            book.state = evolve(book.state, next_due_at=instant)

    def _ordered_lots(self, book: MemberBook) -> list[Lot]:
        lots, _ = book.require_lots()
        order = self.program.ledger.spend_order
        values = list(lots.values())
        if order is SpendOrder.SOONEST_EXPIRING:
            values.sort(key=lambda lot: (lot.expires_at or _FAR_FUTURE, lot.earned_at, lot.id))
        elif order is SpendOrder.OLDEST_FIRST:
            values.sort(key=lambda lot: (lot.earned_at, lot.id))
        else:
            values.sort(key=lambda lot: (lot.earned_at, lot.id), reverse=True)
        return values

    def spendable(self, book: MemberBook) -> int:
        """Points the member can spend or hold right now."""
        lots, _ = book.require_lots()
        return sum(lot.spendable(self.at) for lot in lots.values())

    def _take_spendable(
        self, book: MemberBook, points: int, draft: Draft, *, hold: bool = False
    ) -> list[HoldAllocation]:
        """Consume (or, with ``hold``, reserve) ``points`` in spend order."""
        available = self.spendable(book)
        if available < points:
            raise InsufficientPoints(
                "not enough available points",
                member_id=book.member_id,
                wallet=book.wallet,
                available=available,
                requested=points,
            )
        taken: list[HoldAllocation] = []
        left = points
        for lot in self._ordered_lots(book):
            if left == 0:
                break
            take = min(lot.spendable(self.at), left)
            if take <= 0:
                continue
            left -= take
            taken.append(HoldAllocation(lot.id, take))
            if hold:
                self._put_lot(book, evolve(lot, held=lot.held + take))
            else:
                draft.move(lot.id, -take)
                self._put_lot(book, evolve(lot, remaining=lot.remaining - take))
        return taken

    def _new_lot(
        self,
        book: MemberBook,
        draft: Draft,
        tx_id: uuid.UUID,
        points: int,
        *,
        pending: bool,
        activates_at: dt.datetime | None,
        expires_at: dt.datetime | None,
        credit: Account,
    ) -> Lot:
        """Create a lot of ``points``; an active lot settles debt first."""
        owed = book.debt - draft.amounts.get(Account.DEBT, 0)
        settle = 0 if pending else min(owed, points)
        lot = Lot(
            id=self.new_id(),
            program_id=self.program.id,
            member_id=book.member_id,
            wallet=book.wallet,
            transaction_id=tx_id,
            amount=points,
            remaining=points - settle,
            held=0,
            earned_at=self.at,
            activates_at=activates_at if pending else None,
            expires_at=expires_at,
            pending=pending,
        )
        draft.post(credit, -points)
        draft.post(Account.PENDING if pending else Account.AVAILABLE, points - settle)
        draft.post(Account.DEBT, settle)
        draft.move(lot.id, points - settle)
        self._put_lot(book, lot, new=True)
        return lot

    # -- operations -----------------------------------------------------------------------

    def earn(
        self,
        book: MemberBook,
        points: int,
        *,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        activates_at: dt.datetime | None = None,
        pending: bool | None = None,
        credit: Account = Account.ISSUED,
        kind: Kind = Kind.EARN,
        expires_at: dt.datetime | None = None,
        keep_expiry: bool = False,
    ) -> Transaction:
        """Credit ``points`` as a new lot (pending per the program's policy)."""
        policy = self.program.ledger
        if pending is None:
            pending = policy.pending.is_pending
        if pending and activates_at is None:
            activates_at = policy.pending.activates_at(self.at, self.program.time_zone)
        if activates_at is not None and activates_at <= self.at:
            pending, activates_at = False, None
        if not keep_expiry:
            from_activation = policy.expiry.counted_from is ExpiryStart.ACTIVATION
            expires_at = None if (pending and from_activation) else self._expiry(self.at)
        tx_id = self.new_id()
        draft = Draft()
        self._new_lot(
            book, draft, tx_id, points, pending=pending, activates_at=activates_at,
            expires_at=expires_at, credit=credit,
        )
        return self._commit(book, kind, draft, reason=reason, metadata=metadata, tx_id=tx_id)

    def spend(
        self,
        book: MemberBook,
        points: int,
        *,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
        kind: Kind = Kind.SPEND,
        contra: Account = Account.REDEEMED,
    ) -> Transaction:
        """Consume ``points`` of available lots in spend order."""
        draft = Draft()
        self._take_spendable(book, points, draft)
        draft.post(Account.AVAILABLE, -points)
        draft.post(contra, points)
        return self._commit(book, kind, draft, reason=reason, metadata=metadata)

    def hold(
        self,
        book: MemberBook,
        points: int,
        *,
        ttl: dt.timedelta,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[Transaction, Hold]:
        """Reserve ``points`` of available lots until ``at + ttl``."""
        draft = Draft()
        allocations = self._take_spendable(book, points, draft, hold=True)
        draft.post(Account.AVAILABLE, -points)
        draft.post(Account.HELD, points)
        hold_id = self.new_id()
        meta = {**(metadata or {}), "hold_id": str(hold_id)}
        tx = self._commit(book, Kind.HOLD, draft, reason=reason, metadata=meta)
        hold = Hold(
            id=hold_id,
            program_id=self.program.id,
            member_id=book.member_id,
            wallet=book.wallet,
            points=points,
            status=HoldStatus.OPEN,
            created_at=self.at,
            expires_at=self.at + ttl,
            transaction_id=tx.id,
            allocations=tuple(allocations),
        )
        self._put_hold(book, hold, new=True)
        return tx, hold

    def resolve_hold(
        self,
        book: MemberBook,
        hold: Hold,
        *,
        capture: int,
        status: HoldStatus,
        occurred_at: dt.datetime | None = None,
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Transaction:
        """Capture ``capture`` points of an open hold and return the rest.

        Returned points go back to their lots; points returning to a lot already past
        its expiry expire in the same transaction.
        """
        lots, _ = book.require_lots()
        when = occurred_at or self.at
        if hold.status is not HoldStatus.OPEN:
            raise HoldNotOpen("the hold is no longer open", hold_id=str(hold.id),
                              status=hold.status.value)
        if status is HoldStatus.CAPTURED and hold.expires_at <= when:
            raise HoldExpired("the hold expired before capture", hold_id=str(hold.id),
                              expires_at=hold.expires_at.isoformat())
        if capture > hold.points:
            raise InsufficientPoints(
                "cannot capture more than the hold reserved",
                hold_id=str(hold.id), held=hold.points, requested=capture,
            )
        draft = Draft()
        left = capture
        for alloc in hold.allocations:
            lot = lots[alloc.lot_id]
            take = min(alloc.points, left)
            left -= take
            back = alloc.points - take
            remaining = lot.remaining - take
            draft.move(lot.id, -take)
            if back and lot.expired_at(when):
                draft.move(lot.id, -back)
                draft.post(Account.EXPIRED, back)
                remaining -= back
            elif back:
                draft.post(Account.AVAILABLE, back)
            lot = evolve(lot, remaining=remaining, held=lot.held - alloc.points)
            self._put_lot(book, lot)
        draft.post(Account.HELD, -hold.points)
        draft.post(Account.REDEEMED, capture)
        kind = Kind.CAPTURE if status is HoldStatus.CAPTURED else Kind.RELEASE
        meta = {**(metadata or {}), "hold_id": str(hold.id), "cause": status.value}
        tx = self._commit(book, kind, draft, occurred_at=when, reason=reason, metadata=meta)
        self._put_hold(
            book, evolve(hold, status=status, captured=capture, resolved_by=tx.id)
        )
        return tx

    def activate(
        self, book: MemberBook, lot: Lot, *, occurred_at: dt.datetime | None = None,
        reason: str = "",
    ) -> Transaction:
        """Make a pending lot spendable; activated points settle debt first."""
        when = occurred_at or self.at
        policy = self.program.ledger.expiry
        expires_at = lot.expires_at
        if policy.counted_from is ExpiryStart.ACTIVATION:
            expires_at = self._expiry(when)
        settle = min(book.debt, lot.remaining)
        draft = Draft()
        draft.post(Account.PENDING, -lot.remaining)
        draft.post(Account.AVAILABLE, lot.remaining - settle)
        draft.post(Account.DEBT, settle)
        draft.move(lot.id, -settle)
        # an activation that moves nothing still flips the lot's state
        if not draft.amounts:
            draft.post(Account.AVAILABLE, 0)
        tx = self._commit(
            book, Kind.ACTIVATE, draft, occurred_at=when, reason=reason,
            metadata={"lot_id": str(lot.id), "earn_id": str(lot.transaction_id)},
        )
        self._put_lot(
            book,
            evolve(lot, pending=False, remaining=lot.remaining - settle,
                   activates_at=None, expires_at=expires_at),
        )
        self._bump_due(book, expires_at)
        return tx

    def expire(self, book: MemberBook, lot: Lot) -> Transaction | None:
        """Expire the unheld remainder of a lot at its expiry instant."""
        points = lot.remaining - lot.held
        if points <= 0 or lot.expires_at is None:
            return None
        draft = Draft()
        draft.post(bucket_of(lot), -points)
        draft.post(Account.EXPIRED, points)
        draft.move(lot.id, -points)
        tx = self._commit(
            book, Kind.EXPIRE, draft, occurred_at=lot.expires_at,
            metadata={"lot_id": str(lot.id), "earn_id": str(lot.transaction_id)},
        )
        self._put_lot(book, evolve(lot, remaining=lot.held))
        return tx

    def catch_up(self, book: MemberBook, until: dt.datetime) -> list[Transaction]:
        """Post everything due for this wallet up to ``until``, in time order:
        releases of stale holds, activations of matured lots, expiries."""
        lots, holds = book.require_lots()
        done: list[Transaction] = []
        while True:
            events: list[tuple[dt.datetime, int, uuid.UUID]] = []
            for hold in holds.values():
                if hold.status is HoldStatus.OPEN and hold.expires_at <= until:
                    events.append((hold.expires_at, 0, hold.id))
            for lot in lots.values():
                if lot.pending and lot.activates_at is not None and lot.activates_at <= until:
                    events.append((lot.activates_at, 1, lot.id))
                elif (lot.expires_at is not None and lot.expires_at <= until
                      and lot.remaining - lot.held > 0):
                    events.append((lot.expires_at, 2, lot.id))
            if not events:
                return done
            when, order, item = min(events)
            if order == 0:
                tx: Transaction | None = self.resolve_hold(
                    book, holds[item], capture=0, status=HoldStatus.RELEASED,
                    occurred_at=when, reason="hold expired",
                )
            elif order == 1:
                tx = self.activate(book, lots[item], occurred_at=when)
            else:
                tx = self.expire(book, lots[item])
            if tx is not None:
                done.append(tx)

    def _claw(self, book: MemberBook, points: int, draft: Draft,
              first: Iterable[uuid.UUID] = ()) -> int:
        """Take ``points`` back from the member under the program's clawback policy.

        Lots in ``first`` are tried first; then (unless the policy is PENDING_ONLY)
        available lots in spend order and pending lots; what is still missing becomes
        debt. Under PENDING_ONLY what is missing is not taken at all: it is returned
        (the shortfall), and the caller books against issued points only what was
        taken. Nothing is posted to ``clawback_shortfall`` any more (rows written
        before are read with it: see ``Balance.earned``).
        """
        lots, _ = book.require_lots()
        policy = self.program.ledger.clawback
        pending_only = policy is ClawbackPolicy.PENDING_ONLY
        order: list[Lot] = [lots[i] for i in first if i in lots]
        rest = self._ordered_lots(book)
        if not pending_only:
            order += [lot for lot in rest if not lot.pending]
        order += sorted((lot for lot in rest if lot.pending),
                        key=lambda lot: (lot.activates_at or _FAR_FUTURE, lot.id))
        left = points
        seen: set[uuid.UUID] = set()
        for candidate in order:
            if left == 0:
                break
            if candidate.id in seen:
                continue
            seen.add(candidate.id)
            lot = lots[candidate.id]
            if pending_only and not lot.pending:
                continue
            usable = lot.remaining - lot.held if lot.pending else lot.spendable(self.at)
            take = min(usable, left)
            if take <= 0:
                continue
            left -= take
            draft.post(bucket_of(lot), -take)
            draft.move(lot.id, -take)
            self._put_lot(book, evolve(lot, remaining=lot.remaining - take))
        if left and not pending_only:
            draft.post(Account.DEBT, -left)
            return 0
        return left

    def clawback(
        self,
        book: MemberBook,
        points: int,
        *,
        earn_lots: Iterable[uuid.UUID] = (),
        reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> Transaction:
        """Take back ``points`` (e.g. for a returned order) under the clawback policy.

        Issued points are reduced by what is taken back (or owed as debt); under
        PENDING_ONLY what could not be taken is not a ledger movement: it is written
        off, and recorded as ``metadata["shortfall"]`` of the transaction.
        """
        draft = Draft()
        shortfall = self._claw(book, points, draft, first=earn_lots)
        draft.post(Account.ISSUED, points - shortfall)
        return self._commit(book, Kind.CLAWBACK, draft, reason=reason,
                            metadata=_with_shortfall(metadata, shortfall))

    def adjust(
        self, book: MemberBook, points: int, *, reason: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> Transaction:
        """A manual correction: credit (new lot) or debit (spend order) ``points``."""
        if points > 0:
            return self.earn(
                book, points, reason=reason, metadata=metadata, pending=False,
                credit=Account.ADJUSTMENTS, kind=Kind.ADJUST,
            )
        return self.spend(
            book, -points, reason=reason, metadata=metadata, kind=Kind.ADJUST,
            contra=Account.ADJUSTMENTS,
        )

    def transfer(
        self, source: MemberBook, target: MemberBook, points: int, *, reason: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[Transaction, Transaction]:
        """Move ``points`` from one member to another, keeping each lot's expiry."""
        transfer_id = self.new_id()
        out_id, in_id = self.new_id(), self.new_id()
        draft = Draft()
        taken = self._take_spendable(source, points, draft)
        draft.post(Account.AVAILABLE, -points)
        draft.post(Account.TRANSFERS, points)
        base = dict(metadata or {})
        out_meta = {**base, "transfer_id": str(transfer_id), "direction": "out",
                    "counterpart_member_id": target.member_id, "counterpart_id": str(in_id)}
        outgoing = self._commit(source, Kind.TRANSFER, draft, reason=reason,
                                metadata=out_meta, tx_id=out_id)
        source_lots, _ = source.require_lots()
        draft = Draft()
        for alloc in taken:
            origin = source_lots[alloc.lot_id]
            self._new_lot(
                target, draft, in_id, alloc.points, pending=False, activates_at=None,
                expires_at=origin.expires_at, credit=Account.TRANSFERS,
            )
        in_meta = {**base, "transfer_id": str(transfer_id), "direction": "in",
                   "counterpart_member_id": source.member_id, "counterpart_id": str(out_id)}
        incoming = self._commit(target, Kind.TRANSFER, draft, reason=reason,
                                metadata=in_meta, tx_id=in_id)
        return outgoing, incoming

    def reverse(self, book: MemberBook, original: Transaction, *, reason: str = "",
                metadata: Mapping[str, Any] | None = None) -> Transaction:
        """Post the exact opposite of ``original``, restoring the lots it touched.

        Points a credit put into a lot that are no longer there are taken under the
        clawback policy; points restored to a lot past its expiry expire at once;
        debt the original settled is owed again, debt it created is forgiven (what was
        already settled comes back as a new lot).
        """
        if original.kind in _NOT_REVERSIBLE:
            raise NotReversible(
                f"a {original.kind.value} transaction cannot be reversed",
                transaction_id=str(original.id), kind=original.kind.value,
            )
        lots, _ = book.require_lots()
        draft = Draft()
        for p in original.postings:
            if not p.account.is_member:
                draft.post(p.account, -p.amount)
        shortfall = 0
        for move in original.movements:
            lot = lots.get(move.lot_id)
            if lot is None:
                raise AssertionError(f"lot {move.lot_id} of a reversal was not loaded")
            if move.delta < 0:  # the original consumed: give back
                back = -move.delta
                if lot.expired_at(self.at):
                    draft.post(Account.EXPIRED, back)
                else:
                    draft.post(bucket_of(lot), back)
                    draft.move(lot.id, back)
                    lot = evolve(lot, remaining=lot.remaining + back)
                    self._put_lot(book, lot)
            else:  # the original credited: take back what is still there
                usable = lot.remaining - lot.held
                take = min(usable, move.delta)
                shortfall += move.delta - take
                if take:
                    draft.post(bucket_of(lot), -take)
                    draft.move(lot.id, -take)
                    self._put_lot(book, evolve(lot, remaining=lot.remaining - take))
        debt_change = original.amount(Account.DEBT)
        if debt_change > 0:  # the original settled debt: owe it again
            draft.post(Account.DEBT, -debt_change)
        elif debt_change < 0:  # the original created debt: forgive what is still owed
            forgive = min(-debt_change, book.debt)
            draft.post(Account.DEBT, forgive)
            refund = -debt_change - forgive
            if refund:
                tx_id = self.new_id()
                self._new_lot(
                    book, draft, tx_id, refund, pending=False, activates_at=None,
                    expires_at=self._expiry(self.at), credit=Account.ADJUSTMENTS,
                )
                draft.post(Account.ADJUSTMENTS, refund)  # the lot's credit came from the reversal
                return self._finish_reversal(book, original, draft, shortfall, reason,
                                             metadata, tx_id)
        return self._finish_reversal(book, original, draft, shortfall, reason, metadata, None)

    def refund(self, book: MemberBook, original: Transaction, points: int, *,
               already: int = 0, reason: str = "",
               metadata: Mapping[str, Any] | None = None) -> Transaction:
        """Give ``points`` of a spend or capture back to the lots it took them from,
        with their original expiry (a partial return of an order paid with points).

        The lots the debit consumed last come back first; ``already`` points were
        given back by earlier refunds of the same debit (so they came from its last
        lots) and are skipped. Points going back to a lot past its expiry expire at
        once, as a reversal's do. The caller keeps ``already`` (the orders' service
        keeps it on the order); a refund never gives back more than the debit took.
        """
        if original.kind not in _REFUNDABLE:
            raise NotReversible(
                f"a {original.kind.value} transaction cannot be refunded",
                transaction_id=str(original.id), kind=original.kind.value)
        # what the debit redeemed from each lot, in the order it took them: a capture's
        # movement of a lot may also hold held points that expired on their way back,
        # but it takes its points from the first allocations, so the first REDEEMED
        # points of the movements are exactly what it took
        total = original.amount(Account.REDEEMED)
        taken: list[tuple[uuid.UUID, int]] = []
        rest = total
        for m in original.movements:
            if m.delta < 0 and rest > 0:
                taken.append((m.lot_id, min(-m.delta, rest)))
                rest -= taken[-1][1]
        if not 0 < points <= total - already or already < 0:  # domain bug guard
            raise AssertionError(f"refund of {points} after {already} of a debit of {total}")
        lots, _ = book.require_lots()
        draft = Draft()
        skip, left = already, points
        for lot_id, consumed in reversed(taken):
            if left == 0:
                break
            passed = min(skip, consumed)
            skip -= passed
            back = min(consumed - passed, left)
            if back <= 0:
                continue
            left -= back
            lot = lots.get(lot_id)
            if lot is None:
                raise AssertionError(f"lot {lot_id} of a refund was not loaded")
            if lot.expired_at(self.at):
                draft.post(Account.EXPIRED, back)
            else:
                draft.post(bucket_of(lot), back)
                draft.move(lot.id, back)
                self._put_lot(book, evolve(lot, remaining=lot.remaining + back))
        draft.post(Account.REDEEMED, -points)
        meta = {**(metadata or {}), "refunds_id": str(original.id),
                "refunded_before": already}
        return self._commit(book, Kind.REFUND, draft, reason=reason, metadata=meta)

    def _finish_reversal(
        self, book: MemberBook, original: Transaction, draft: Draft, shortfall: int,
        reason: str, metadata: Mapping[str, Any] | None, tx_id: uuid.UUID | None,
    ) -> Transaction:
        written_off = 0
        if shortfall:
            written_off = self._claw(book, shortfall, draft)
            # under PENDING_ONLY what is not there any more stays issued (the member
            # spent it or gave it away); the reversal records it as its shortfall
            draft.post(Account.ISSUED, -written_off)
        meta = {**_with_shortfall(metadata, written_off), "reversed_kind": original.kind.value}
        return self._commit(
            book, Kind.REVERSE, draft, reason=reason, metadata=meta,
            reverses_id=original.id, tx_id=tx_id,
        )


def _with_shortfall(metadata: Mapping[str, Any] | None, shortfall: int) -> dict[str, Any]:
    """``metadata`` with ``shortfall`` (points a PENDING_ONLY clawback or reversal could
    not take back) when there is one."""
    meta = dict(metadata or {})
    if shortfall:
        meta["shortfall"] = shortfall
    return meta


def _next_due(book: MemberBook) -> dt.datetime | None:
    """The earliest instant due work may act on this wallet (exact; lots loaded)."""
    lots, holds = book.require_lots()
    candidates: list[dt.datetime] = []
    for lot in lots.values():
        # an emptied pending lot still activates (catch_up does it), or it stays open
        if lot.pending and lot.activates_at is not None:
            candidates.append(lot.activates_at)
        if lot.expires_at is not None and lot.remaining - lot.held > 0:
            candidates.append(lot.expires_at)
    for hold in holds.values():
        if hold.status is HoldStatus.OPEN:
            candidates.append(hold.expires_at)
    return min(candidates) if candidates else None
