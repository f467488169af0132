"""The ledger's reads of a member's history and what is coming: the statement (keyset
pages, newest first, with the running total), sums and lots as of an instant, the next
expiry, and the program's lots expiring in a window (due work's notices). Mixed into
:class:`~loyaltykit.sql.ledger.SQLLedgerStore`; every statement but the window's names
the member, so it stays on the member's node on a distributed engine (DESIGN §10).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit._model import MEMBER_ACCOUNTS, Account, Lot, Transaction
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store
from loyaltykit.sql.schema import lot_movements, lots, postings, transactions

__all__ = ["LOT_COLS", "TX_COLS", "SQLLedgerHistory"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_w: sa.BindParameter[str] = sa.bindparam("w")
_ACCOUNTS = {a.value: a for a in Account}
_MEMBER_ACCOUNT_NAMES = sorted(a.value for a in MEMBER_ACCOUNTS)

#: a lot's and a transaction's columns as the ledger's stores read them
LOT_COLS = (
    lots.c.id,
    lots.c.program_id,
    lots.c.member_id,
    lots.c.wallet,
    lots.c.transaction_id,
    lots.c.amount,
    lots.c.remaining,
    lots.c.held,
    lots.c.earned_at,
    lots.c.activates_at,
    lots.c.expires_at,
    lots.c.pending,
)
TX_COLS = (
    transactions.c.id,
    transactions.c.program_id,
    transactions.c.member_id,
    transactions.c.wallet,
    transactions.c.kind,
    transactions.c.occurred_at,
    transactions.c.recorded_at,
    transactions.c.idempotency_key,
    transactions.c.reason,
    transactions.c["metadata"],
    transactions.c.reverses_id,
)
_at = sa.bindparam("at", type_=transactions.c.occurred_at.type)

_lot_key = (lots.c.expires_at, lots.c.member_id, lots.c.wallet, lots.c.id)
_SEL_EXPIRING = (
    sa.select(*LOT_COLS)
    .where(lots.c.program_id == _p, lots.c.expires_at.is_not(None),
           lots.c.expires_at > sa.bindparam("start", type_=lots.c.expires_at.type),
           lots.c.expires_at <= sa.bindparam("end", type_=lots.c.expires_at.type),
           lots.c.pending == sa.false(), lots.c.remaining > lots.c.held)
    .order_by(*_lot_key)
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_EXPIRING_AFTER = _SEL_EXPIRING.where(sa.tuple_(*_lot_key) > sa.tuple_(
    sa.bindparam("a_at", type_=lots.c.expires_at.type), sa.bindparam("a_m"),
    sa.bindparam("a_w"), sa.bindparam("a_id", type_=lots.c.id.type)))

_lot_of_member = (lots.c.program_id == _p, lots.c.member_id == _m, lots.c.wallet == _w)
_first_expiry = (
    sa.select(sa.func.min(lots.c.expires_at))
    .where(*_lot_of_member, lots.c.remaining > 0)
    .scalar_subquery()
)
_SEL_NEXT_EXPIRING: sa.Executable = (
    sa.select(lots.c.expires_at, sa.func.sum(lots.c.remaining))
    .where(*_lot_of_member, lots.c.remaining > 0, lots.c.expires_at == _first_expiry)
    .group_by(lots.c.expires_at)
)

_tx_of_member = (
    transactions.c.program_id == _p,
    transactions.c.member_id == _m,
    transactions.c.wallet == _w,
)
# the legs and movements joined to their transaction by its member too: the
# statement stays on the member's node on a distributed engine (DESIGN §10)
_LEGS = transactions.join(postings, sa.and_(
    postings.c.transaction_id == transactions.c.id,
    postings.c.member_id == transactions.c.member_id))
_SEL_SUMS_AS_OF: sa.Executable = (
    sa.select(postings.c.account, sa.func.sum(postings.c.amount))
    .select_from(_LEGS)
    .where(*_tx_of_member, transactions.c.occurred_at <= _at)
    .group_by(postings.c.account)
)
_remaining_as_of = (
    sa.select(
        lot_movements.c.lot_id.label("lot_id"),
        sa.func.sum(lot_movements.c.delta).label("remaining"),
    )
    .select_from(transactions.join(lot_movements, sa.and_(
        lot_movements.c.transaction_id == transactions.c.id,
        lot_movements.c.member_id == transactions.c.member_id)))
    .where(*_tx_of_member, transactions.c.occurred_at <= _at)
    .group_by(lot_movements.c.lot_id)
    .having(sa.func.sum(lot_movements.c.delta) > 0)
    .subquery("as_of")
)
_SEL_LOTS_AS_OF: sa.Executable = (
    sa.select(*LOT_COLS, _remaining_as_of.c.remaining)
    .select_from(lots.join(_remaining_as_of, _remaining_as_of.c.lot_id == lots.c.id))
    .where(lots.c.member_id == _m)  # the member's lots (each moved by its own member)
    .order_by(lots.c.earned_at, lots.c.id)
)

# keyset pagination on (occurred_at, id), newest first
_before_at = sa.bindparam("before_at", type_=transactions.c.occurred_at.type)
_before_id = sa.bindparam("before_id", type_=transactions.c.id.type)
_SEL_PAGE = (
    sa.select(*TX_COLS)
    .where(*_tx_of_member)
    .order_by(transactions.c.occurred_at.desc(), transactions.c.id.desc())
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_PAGE_BEFORE = _SEL_PAGE.where(
    transactions.c.occurred_at <= _before_at,
    sa.or_(transactions.c.occurred_at < _before_at, transactions.c.id < _before_id),
)
_SEL_TOTAL_THROUGH: sa.Executable = (
    sa.select(sa.func.coalesce(sa.func.sum(postings.c.amount), 0))
    .select_from(_LEGS)
    .where(
        *_tx_of_member,
        postings.c.account.in_(_MEMBER_ACCOUNT_NAMES),
        transactions.c.occurred_at <= _before_at,
        sa.or_(transactions.c.occurred_at < _before_at, transactions.c.id <= _before_id),
    )
)


class SQLLedgerHistory(Store):
    """A member's history and coming expiries (see the module docstring)."""

    def _transactions(self, conn: Connection, rows: Sequence[Any]) -> list[Transaction]:
        """Transactions of ``rows`` with their postings and movements (the ledger
        store's)."""
        raise NotImplementedError

    @translated
    def next_expiring(self, wallet: str, member_id: str) -> tuple[int, dt.datetime] | None:
        """Return (points, instant) of the soonest expiry among lots with points left."""
        params = {"p": self.program_id, "m": member_id, "w": wallet}
        row = self._c().execute(_SEL_NEXT_EXPIRING, params).first()
        return None if row is None else (int(row[1]), row[0])

    @translated
    def expiring_lots(
        self, start: dt.datetime, end: dt.datetime, *,
        after: tuple[dt.datetime, str, str, uuid.UUID] | None, limit: int
    ) -> list[Lot]:
        """Return up to ``limit`` active lots with unreserved points expiring in
        ``(start, end]``, by (expires_at, member_id, wallet, id), after ``after``."""
        params: dict[str, Any] = {"p": self.program_id, "start": start, "end": end,
                                  "lim": limit}
        stmt: sa.Executable = _SEL_EXPIRING
        if after is not None:
            stmt = _SEL_EXPIRING_AFTER
            params.update(zip(("a_at", "a_m", "a_w", "a_id"), after, strict=True))
        return [Lot(*row) for row in self._c().execute(stmt, params)]

    @translated
    def sums_as_of(self, wallet: str, member_id: str, at: dt.datetime) -> dict[Account, int]:
        """Return the signed sum per account of the member's postings with
        ``occurred_at <= at`` (accounts with no postings are absent)."""
        params = {"p": self.program_id, "m": member_id, "w": wallet, "at": at}
        rows = self._c().execute(_SEL_SUMS_AS_OF, params)
        return {_ACCOUNTS[account]: int(total) for account, total in rows}

    @translated
    def lots_as_of(
        self, wallet: str, member_id: str, at: dt.datetime
    ) -> list[tuple[Lot, int]]:
        """Return (lot, remaining as of ``at``) for lots whose movements up to ``at``
        leave points in them."""
        params = {"p": self.program_id, "m": member_id, "w": wallet, "at": at}
        rows = self._c().execute(_SEL_LOTS_AS_OF, params)
        return [(Lot(*row[:-1]), int(row[-1])) for row in rows]

    @translated
    def statement(
        self,
        wallet: str,
        member_id: str,
        *,
        limit: int,
        before: tuple[dt.datetime, uuid.UUID] | None,
    ) -> tuple[list[Transaction], int]:
        """Return up to ``limit`` transactions newest first (by occurred_at, then id),
        strictly before ``before`` when given, and the member's total points through
        the first transaction returned (0 if none)."""
        conn = self._c()
        params: dict[str, Any] = {"p": self.program_id, "m": member_id, "w": wallet,
                                  "lim": limit}
        if before is None:
            rows = conn.execute(_SEL_PAGE, params).all()
        else:
            params["before_at"], params["before_id"] = before
            rows = conn.execute(_SEL_PAGE_BEFORE, params).all()
        if not rows:
            return [], 0
        page = self._transactions(conn, rows)
        params["before_at"], params["before_id"] = page[0].occurred_at, page[0].id
        total = conn.scalar(_SEL_TOTAL_THROUGH, params)
        return page, int(total or 0)
