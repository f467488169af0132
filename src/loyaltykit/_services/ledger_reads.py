"""The ledger's reads: a member, balances (now or as of an instant), statements,
transactions, holds and lots. Each opens a unit of work to read in and writes nothing."""

from __future__ import annotations

import datetime as dt
import uuid

from loyaltykit._errors import HoldNotFound, InvalidInput, MemberNotFound, TransactionNotFound
from loyaltykit._model import Hold, Lot, Member, Transaction
from loyaltykit._results import Balance, StatementLine, StatementPage
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import LedgerService
from loyaltykit._validate import check_id, check_instant, check_member_id

__all__ = ["MAX_STATEMENT_PAGE", "LedgerReads"]

MAX_STATEMENT_PAGE = 1000


class LedgerReads:
    """Reads of members' wallets (see the module docstring)."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger

    def member(self, member_id: str) -> Member:
        """Return the enrolled member or raise MemberNotFound."""
        member_id = check_member_id(member_id)
        with self.c.read() as uow:
            member = uow.ledger.get_member(member_id)
        if member is None:
            raise MemberNotFound("member is not enrolled", member_ids=[member_id])
        return member

    def balance(
        self,
        member_id: str,
        *,
        wallet: str | None = None,
        as_of: dt.datetime | None = None,
    ) -> Balance:
        """The member's balance in ``wallet``, now or as of a past instant.

        "Now" is the ledger as last written: expiries and activations appear once due
        work (or the member's next write) has posted them. ``as_of`` sums the postings
        whose business time is at or before it.
        """
        member_id = check_member_id(member_id)
        wallet_ = self.program.wallet(wallet)
        when = self.c.instant(as_of, "as_of")
        with self.c.read() as uow:
            state = uow.ledger.get_account(wallet_, member_id)
            if state is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            if as_of is None:
                return self._ledger.balance_of(
                    state, when, self._ledger.next_expiring(uow, state))
            sums = uow.ledger.sums_as_of(wallet_, member_id, when)
            live = [(lot, n) for lot, n in uow.ledger.lots_as_of(wallet_, member_id, when)
                    if lot.expires_at is not None and lot.expires_at > when]
        nxt = None
        if live:
            first = min(lot.expires_at for lot, _ in live if lot.expires_at is not None)
            nxt = (sum(n for lot, n in live if lot.expires_at == first), first)
        return self._ledger.balance_from_sums(member_id, wallet_, sums, when, nxt)

    def statement(
        self,
        member_id: str,
        *,
        wallet: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> StatementPage:
        """A page of the member's transactions, newest first, each with the member's
        total points right after it. Pass ``next_cursor`` back for the next page."""
        member_id = check_member_id(member_id)
        wallet_ = self.program.wallet(wallet)
        if isinstance(limit, bool) or not isinstance(limit, int) or not (
            1 <= limit <= MAX_STATEMENT_PAGE
        ):
            raise InvalidInput(f"limit must be an int in 1..{MAX_STATEMENT_PAGE}", limit=limit)
        before = None
        if cursor is not None:
            try:
                stamp, _, ident = cursor.partition("|")
                before = (check_instant(dt.datetime.fromisoformat(stamp), "cursor"),
                          uuid.UUID(ident))
            except (ValueError, AttributeError, TypeError, InvalidInput):
                raise InvalidInput("malformed statement cursor", cursor=cursor) from None
        with self.c.read() as uow:
            if uow.ledger.get_account(wallet_, member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            txs, total = uow.ledger.statement(wallet_, member_id, limit=limit, before=before)
        lines = []
        running = total
        for tx in txs:
            lines.append(StatementLine(
                transaction_id=tx.id, kind=tx.kind, occurred_at=tx.occurred_at,
                points=tx.points, balance=running, reason=tx.reason,
                reverses_id=tx.reverses_id,
            ))
            running -= tx.points
        next_cursor = None
        if len(txs) == limit:
            last = txs[-1]
            next_cursor = f"{last.occurred_at.isoformat()}|{last.id}"
        return StatementPage(member_id=member_id, wallet=wallet_, lines=tuple(lines),
                             next_cursor=next_cursor)

    def transaction(self, transaction_id: uuid.UUID | str) -> Transaction:
        """Return a transaction with its postings and lot movements."""
        tid = check_id(transaction_id, "transaction_id")
        with self.c.read() as uow:
            tx = uow.ledger.get_transaction(tid)
        if tx is None:
            raise TransactionNotFound("no such transaction", transaction_id=str(tid))
        return tx

    def hold_info(self, hold_id: uuid.UUID | str) -> Hold:
        """Return a hold (any status)."""
        hid = check_id(hold_id, "hold_id")
        with self.c.read() as uow:
            hold = uow.ledger.get_hold(hid)
        if hold is None:
            raise HoldNotFound("no such hold", hold_id=str(hid))
        return hold

    def lots(self, member_id: str, *, wallet: str | None = None) -> list[Lot]:
        """The member's open lots (points left or pending), soonest-expiring first."""
        member_id = check_member_id(member_id)
        wallet_ = self.program.wallet(wallet)
        with self.c.read() as uow:
            if uow.ledger.get_account(wallet_, member_id) is None:
                raise MemberNotFound("member is not enrolled", member_ids=[member_id])
            lots = uow.ledger.load_lots(wallet_, [member_id])
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        return sorted(lots, key=lambda lot: (lot.expires_at or far, lot.earned_at, lot.id))

