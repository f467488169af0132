"""The ledger's due-work reads in SQL: which (member, wallet) accounts are due, and
their cut into key ranges that workers run side by side. Mixed into
:class:`~loyaltykit.sql.ledger.SQLLedgerStore`.

Each is one statement over the accounts due by an instant (their index by
``next_due_at``), ordered by the primary key (member, wallet).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store
from loyaltykit.sql.schema import accounts, transactions

__all__ = ["SQLLedgerDue"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_at = sa.bindparam("at", type_=transactions.c.occurred_at.type)
_after_m: sa.BindParameter[str] = sa.bindparam("after_m")
_SEL_DUE = (
    sa.select(accounts.c.member_id, accounts.c.wallet)
    .where(accounts.c.program_id == _p, accounts.c.next_due_at <= _at)
    .order_by(accounts.c.member_id, accounts.c.wallet)
    .limit(sa.bindparam("lim", type_=sa.Integer()))
)
_SEL_DUE_AFTER = _SEL_DUE.where(
    accounts.c.member_id >= _after_m,
    sa.or_(accounts.c.member_id > _after_m, accounts.c.wallet > sa.bindparam("after_w")),
)
# due work's ranges: every n-th due key and the last, in one pass over the due
# accounts (their index by next_due_at); each range is then read by the primary key
_due_rows = (
    sa.select(accounts.c.member_id, accounts.c.wallet,
              sa.func.row_number().over(
                  order_by=(accounts.c.member_id, accounts.c.wallet)).label("rn"),
              sa.func.count().over().label("n"))
    .where(accounts.c.program_id == _p, accounts.c.next_due_at <= _at)
    .subquery()
)
_SEL_DUE_BOUNDS = (
    sa.select(_due_rows.c.member_id, _due_rows.c.wallet)
    .where(sa.or_(_due_rows.c.rn % sa.bindparam("every", type_=sa.Integer()) == 0,
                  _due_rows.c.rn == _due_rows.c.n))
    .order_by(_due_rows.c.rn)
)
_upto_m: sa.BindParameter[str] = sa.bindparam("upto_m")
_SEL_DUE_UPTO = _SEL_DUE.where(
    accounts.c.member_id <= _upto_m,
    sa.or_(accounts.c.member_id < _upto_m, accounts.c.wallet <= sa.bindparam("upto_w")),
)
_SEL_DUE_BETWEEN = _SEL_DUE_AFTER.where(
    accounts.c.member_id <= _upto_m,
    sa.or_(accounts.c.member_id < _upto_m, accounts.c.wallet <= sa.bindparam("upto_w")),
)


class SQLLedgerDue(Store):
    """The due-work reads of the ledger's store."""

    @translated
    def due_accounts(
        self, at: dt.datetime, *, after: tuple[str, str] | None, limit: int
    ) -> list[tuple[str, str]]:
        """Return up to ``limit`` (member_id, wallet) pairs whose ``next_due_at <= at``,
        ordered by (member_id, wallet) and strictly after ``after`` when given."""
        params: dict[str, Any] = {"p": self.program_id, "at": at, "lim": limit}
        if after is None:
            stmt = _SEL_DUE
        else:
            stmt = _SEL_DUE_AFTER
            params["after_m"], params["after_w"] = after
        return [(row[0], row[1]) for row in self._c().execute(stmt, params)]

    @translated
    def due_bounds(self, at: dt.datetime, every: int) -> list[tuple[str, str]]:
        """Return the last key of each range of ``every`` due accounts, in order."""
        params = {"p": self.program_id, "at": at, "every": every}
        return [(row[0], row[1]) for row in self._c().execute(_SEL_DUE_BOUNDS, params)]

    @translated
    def due_between(
        self, at: dt.datetime, *, after: tuple[str, str] | None, upto: tuple[str, str],
        limit: int,
    ) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
        """Return up to ``limit`` due (member_id, wallet) pairs in ``(after, upto]``
        and the cursor to go on from if ``limit`` were found."""
        params: dict[str, Any] = {"p": self.program_id, "at": at, "lim": limit,
                                  "upto_m": upto[0], "upto_w": upto[1]}
        stmt = _SEL_DUE_UPTO
        if after is not None:
            stmt = _SEL_DUE_BETWEEN
            params["after_m"], params["after_w"] = after
        found = [(row[0], row[1]) for row in self._c().execute(stmt, params)]
        return found, (found[-1] if len(found) == limit else None)
