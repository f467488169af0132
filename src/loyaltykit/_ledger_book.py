"""A member wallet's working state and the small pieces the ledger's operations share
(:mod:`loyaltykit._ledger` for everyday writes, :mod:`loyaltykit._due_bulk` for due
work): a transaction's draft, the bucket a lot sits in, a program's cached expiries."""

from __future__ import annotations

import datetime as dt
import uuid

import attrs

from loyaltykit._model import Account, AccountState, Hold, Lot, LotMovement, Posting
from loyaltykit._program import Program

__all__ = ["Draft", "Expiries", "MemberBook", "bucket_of"]


@attrs.define
class MemberBook:
    """The working state of one member's wallet during a unit of work.

    ``lots`` / ``holds`` are None when they were not loaded; operations that need them
    say so (the facade loads them first).
    """

    state: AccountState
    lots: dict[uuid.UUID, Lot] | None = None
    holds: dict[uuid.UUID, Hold] | None = None

    @property
    def member_id(self) -> str:
        return self.state.member_id

    @property
    def wallet(self) -> str:
        return self.state.wallet

    @property
    def debt(self) -> int:
        """Points owed (a positive number)."""
        return -self.state.debt

    def require_lots(self) -> tuple[dict[uuid.UUID, Lot], dict[uuid.UUID, Hold]]:
        if self.lots is None or self.holds is None:
            raise AssertionError("operation needs the member's lots and holds loaded")
        return self.lots, self.holds


class Draft:
    """Postings and lot movements of one transaction being built."""

    def __init__(self) -> None:
        self.amounts: dict[Account, int] = {}
        self.moves: dict[uuid.UUID, int] = {}

    def post(self, account: Account, amount: int) -> None:
        if amount:
            self.amounts[account] = self.amounts.get(account, 0) + amount

    def move(self, lot_id: uuid.UUID, delta: int) -> None:
        if delta:
            self.moves[lot_id] = self.moves.get(lot_id, 0) + delta

    def postings(self) -> tuple[Posting, ...]:
        return tuple(Posting(a, n) for a, n in self.amounts.items() if n)

    def movements(self) -> tuple[LotMovement, ...]:
        return tuple(LotMovement(lot, d) for lot, d in self.moves.items() if d)


def bucket_of(lot: Lot) -> Account:
    """The account a lot's points sit in: pending until activated, then available."""
    return Account.PENDING if lot.pending else Account.AVAILABLE


class Expiries:
    """A program's lot expiries by start instant, each worked out once (a time-zone
    calculation; the lots of one request or due run mostly share a start)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._known: dict[dt.datetime, dt.datetime | None] = {}

    def __call__(self, start: dt.datetime) -> dt.datetime | None:
        """When a lot starting at ``start`` expires (None: never)."""
        known = self._known
        if start not in known:
            known[start] = self.program.ledger.expiry.expiry_for(
                start, self.program.time_zone)
        return known[start]
