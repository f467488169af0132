"""The ledger service's building blocks: a write's member books (locked account
states, the lots and holds it needs, the member's own due work caught up), balances and
a write's result.

:class:`LedgerBase` is the base of :class:`~loyaltykit._services.ledger.LedgerService`;
other services post points through :meth:`LedgerBase.books` and the
:class:`~loyaltykit._ledger.Ledger` of their :class:`~loyaltykit._pipeline.Work`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from loyaltykit._errors import MemberNotFound
from loyaltykit._ledger import Ledger, MemberBook
from loyaltykit._model import Account, AccountState, Lot, Transaction
from loyaltykit._program import ClawbackPolicy
from loyaltykit._results import Balance, TransactionResult
from loyaltykit._services.context import Context
from loyaltykit._validate import check_json, check_reason
from loyaltykit._values import check_key
from loyaltykit.storage import UnitOfWork

__all__ = ["LedgerBase", "lots_by_member"]


def lots_by_member(transactions: Iterable[Transaction]) -> dict[str, list[uuid.UUID]]:
    """The lots these transactions moved, by the member whose they are (a transaction's
    lots are its member's): what :meth:`LedgerBase.books` reads besides the open
    ones, each member's in a read routed by the member."""
    out: dict[str, list[uuid.UUID]] = {}
    for tx in transactions:
        out.setdefault(tx.member_id, []).extend(m.lot_id for m in tx.movements)
    return out


class LedgerBase:
    """Books, balances and results of one program's ledger writes (see the module
    docstring)."""

    def __init__(self, c: Context) -> None:
        self.c = c
        self.program = c.program


    def books(
        self,
        uow: UnitOfWork,
        ledger: Ledger,
        wallet: str,
        member_ids: list[str],
        *,
        need_lots: bool,
        extra_lots: Mapping[str, Iterable[uuid.UUID]] | None = None,
        locked: Mapping[str, AccountState] | None = None,
        register: bool = True,
    ) -> dict[str, MemberBook]:
        states = uow.ledger.lock_accounts(wallet, member_ids) if locked is None else locked
        missing = [m for m in member_ids if m not in states]
        if missing:
            raise MemberNotFound("member is not enrolled", member_ids=missing[:10],
                                 missing=len(missing))
        books = {m: MemberBook(states[m]) for m in member_ids}
        due = [m for m, s in states.items()
               if s.next_due_at is not None and s.next_due_at <= ledger.at]
        loaded = member_ids if need_lots else due
        if loaded:
            lots = uow.ledger.load_lots(wallet, loaded)
            # an open hold keeps its points on the held account (never 0 points), so a
            # wallet with nothing held has no open hold to load
            holding = [m for m in loaded if states[m].held]
            holds = uow.ledger.load_open_holds(wallet, holding) if holding else []
            for m in loaded:
                books[m].lots = {}
                books[m].holds = {}
            for lot in lots:
                lots_of = books[lot.member_id].lots
                assert lots_of is not None
                lots_of[lot.id] = lot
            # lots besides the open ones (those a reversal or clawback restores), read
            # member by member, each read routed by its member (DESIGN §10); only a
            # loaded member's are kept
            for m, lot_ids in (extra_lots or {}).items():
                book = books.get(m)
                wanted = list(lot_ids)
                if book is None or book.lots is None or not wanted:
                    continue
                for lot in uow.ledger.load_lots_by_id(wanted, member_id=m):
                    if lot.wallet == wallet:
                        book.lots.setdefault(lot.id, lot)
            for hold in holds:
                holds_of = books[hold.member_id].holds
                assert holds_of is not None
                holds_of[hold.id] = hold
        if not register:  # the caller posts their due work (set-based due work)
            return books
        for book in books.values():
            ledger.add_book(book)
            if book.lots is not None:
                ledger.catch_up(book, ledger.at)
        return books

    def balance_of(
        self, state: AccountState, as_of: dt.datetime, nxt: tuple[int, dt.datetime] | None
    ) -> Balance:
        # the state's fields are the signed sums: read as they are, not through sums()
        # (a dict built per result, then read account by account)
        return self._balance(state.member_id, state.wallet, state.available, state.pending,
                             state.held, state.debt, state.issued + state.clawback_shortfall,
                             state.redeemed, state.expired, state.adjustments, state.transfers,
                             as_of, nxt)

    def balance_from_sums(
        self,
        member_id: str,
        wallet: str,
        sums: Mapping[Account, int],
        as_of: dt.datetime,
        nxt: tuple[int, dt.datetime] | None,
    ) -> Balance:
        s = sums.get
        return self._balance(member_id, wallet, s(Account.AVAILABLE, 0), s(Account.PENDING, 0),
                             s(Account.HELD, 0), s(Account.DEBT, 0),
                             s(Account.ISSUED, 0) + s(Account.CLAWBACK_SHORTFALL, 0),
                             s(Account.REDEEMED, 0), s(Account.EXPIRED, 0),
                             s(Account.ADJUSTMENTS, 0), s(Account.TRANSFERS, 0), as_of, nxt)

    def _balance(self, member_id: str, wallet: str, available: int, pending: int, held: int,
                 debt: int, issued: int, redeemed: int, expired: int, adjustments: int,
                 transfers: int, as_of: dt.datetime, nxt: tuple[int, dt.datetime] | None
                 ) -> Balance:
        """The balance of the signed sums given (``issued``: with ``clawback_shortfall``)."""
        debt = -debt
        total = available + pending + held - debt
        if self.program.ledger.clawback is ClawbackPolicy.ALLOW_NEGATIVE:
            available -= debt
        return Balance(
            member_id=member_id,
            wallet=wallet,
            as_of=as_of,
            available=available,
            pending=pending,
            held=held,
            debt=debt,
            total=total,
            # points a PENDING_ONLY clawback could not take were once booked against
            # issued and written off to clawback_shortfall: read such old rows net
            earned=-issued,
            spent=redeemed,
            expired=expired,
            adjusted=-adjustments,
            transferred=-transfers,
            next_expiring_points=nxt[0] if nxt else 0,
            next_expiring_at=nxt[1] if nxt else None,
        )

    @staticmethod
    def next_expiring(uow: UnitOfWork, state: AccountState) -> tuple[int, dt.datetime] | None:
        """The stored (points, instant) of the wallet's soonest expiry, read only when
        it can exist: a wallet with a lot that has points left and an expiry has a
        ``next_due_at`` (that lot's expiry, or an open hold's end if it is all held),
        so a wallet without one (a program that never expires points, or no live lot
        of an expiring version) needs no query."""
        if state.next_due_at is None:
            return None
        return uow.ledger.next_expiring(state.wallet, state.member_id)

    def _next_expiring_after(
        self, uow: UnitOfWork, ledger: Ledger, book: MemberBook
    ) -> tuple[int, dt.datetime] | None:
        if book.lots is not None:
            lots: Iterable[Lot] = book.lots.values()
        else:
            # the book's state only gained instants since it was read (its lots were
            # not loaded), so its next_due_at is None only if the stored one is
            stored = self.next_expiring(uow, book.state)
            new = [lot for i, lot in ledger.changes.lots.items()
                   if lot.member_id == book.member_id and lot.wallet == book.wallet]
            if stored is not None:
                points, when = stored
                new_at = [lot for lot in new if lot.expires_at is not None and lot.remaining > 0]
                first = min([when, *[lot.expires_at for lot in new_at if lot.expires_at]])
                extra = sum(lot.remaining for lot in new_at if lot.expires_at == first)
                return ((points if when == first else 0) + extra, first)
            lots = new
        live = [lot for lot in lots if lot.expires_at is not None and lot.remaining > 0]
        if not live:
            return None
        first = min(lot.expires_at for lot in live if lot.expires_at is not None)
        return sum(lot.remaining for lot in live if lot.expires_at == first), first

    def tx_result(
        self, uow: UnitOfWork, ledger: Ledger, book: MemberBook, tx: Transaction,
        related: tuple[uuid.UUID, ...] = (),
    ) -> TransactionResult:
        balance = self.balance_of(book.state, ledger.at,
                                   self._next_expiring_after(uow, ledger, book))
        return TransactionResult(
            transaction_id=tx.id, kind=tx.kind, member_id=tx.member_id, wallet=tx.wallet,
            points=tx.points, occurred_at=tx.occurred_at, balance=balance,
            related_ids=related,
        )

    def _common(
        self, key: object, wallet: str | None, reason: object, metadata: object, at: object
    ) -> tuple[str, str, str, dict[str, Any], dt.datetime]:
        """Validate the arguments most writes share: key, wallet, reason, metadata, at."""
        return (
            check_key(key),
            self.program.wallet(wallet),
            check_reason(reason),
            check_json(metadata, "metadata"),
            self.c.instant(at),
        )
