"""The ledger's due work in SQL: which (member, wallet) accounts are due, their cut
into key ranges that workers run side by side, and the write of a batch of
set-based due rows (:class:`~loyaltykit.storage.DueChanges`). Mixed into
:class:`~loyaltykit.sql.ledger.SQLLedgerStore`.

Each read is one statement over the accounts due by an instant (their index by
``next_due_at``), ordered by the primary key (member, wallet).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from loyaltykit._errors import StorageError
from loyaltykit.sql._errors import storage_error, translated
from loyaltykit.sql._many import execute_columns
from loyaltykit.sql._pg_columns import column_params, unnest
from loyaltykit.sql._shared import Store
from loyaltykit.sql.schema import (
    ACCOUNT_COLUMNS,
    accounts,
    holds,
    lot_movements,
    lots,
    postings,
    transactions,
)
from loyaltykit.storage.ledger_due import DueChanges

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
#: the ledger's row writes, shared by its everyday writes (:mod:`loyaltykit.sql.ledger`)
#: and its due writes
INS_TX = transactions.insert()
INS_POSTING = postings.insert()
INS_MOVEMENT = lot_movements.insert()
UPD_ACCOUNT = accounts.update().where(
    accounts.c.program_id == sa.bindparam("k_program_id"),
    accounts.c.member_id == sa.bindparam("k_member_id"),
    accounts.c.wallet == sa.bindparam("k_wallet"),
)
# a lot or hold by its key and its member: the row's node on a distributed engine
UPD_LOT = lots.update().where(lots.c.id == sa.bindparam("k_id"),
                              lots.c.member_id == sa.bindparam("k_member_id"))
UPD_HOLD = holds.update().where(holds.c.id == sa.bindparam("k_id"),
                                holds.c.member_id == sa.bindparam("k_member_id"))
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

    @translated
    def write_due(self, changes: DueChanges) -> None:
        """Write a batch of set-based due work: one statement per table (the
        transactions, their postings and lot movements; then the lots, the holds and
        the accounts updated), the rows :meth:`write` writes for the same
        transactions. On PostgreSQL each is one ``INSERT ... SELECT`` or ``UPDATE ...
        FROM`` over ``unnest`` of column arrays (an executemany there is a statement
        per row); elsewhere an executemany built column by column
        (:func:`~loyaltykit.sql._many.execute_columns`)."""
        conn = self._c()
        if conn.dialect.name == "postgresql":
            _write_due_postgresql(conn, self.program_id, changes)
            return
        _write_due_sqlite(conn, self.program_id, changes)


# -- SQLite: one executemany per table, its rows built column by column ----------------
# (no dict per row; each distinct instant converted once: a batch's rows share their
# recorded_at and, mostly, their instants)

def _write_due_sqlite(conn: sa.Connection, p: str, changes: DueChanges) -> None:
    who = changes.members
    at = changes.recorded_at
    assert at is not None, "set before anything is written"
    if changes.transactions:
        ids, ms, ws, kinds, occurred, reasons, docs = zip(*changes.transactions, strict=True)
        n = len(ids)
        _insert(conn, INS_TX, {
            "id": ids, "program_id": [p] * n, "member_id": [who[m] for m in ms],
            "wallet": ws, "kind": kinds, "occurred_at": occurred, "recorded_at": [at] * n,
            "idempotency_key": [None] * n, "reason": reasons, "metadata": docs,
            "reverses_id": [None] * n})
    if changes.postings:
        txs, ms, ws, accounts_, amounts, positions = zip(*changes.postings, strict=True)
        _insert(conn, INS_POSTING, {
            "transaction_id": txs, "account": accounts_, "program_id": [p] * len(txs),
            "member_id": [who[m] for m in ms], "wallet": ws, "amount": amounts,
            "position": positions})
    if changes.movements:
        txs, ms, lot_ids, deltas = zip(*changes.movements, strict=True)
        _insert(conn, INS_MOVEMENT, {
            "transaction_id": txs, "lot_id": lot_ids, "program_id": [p] * len(txs),
            "member_id": [who[m] for m in ms], "delta": deltas, "position": [0] * len(txs)})
    if changes.lots:
        ids, ms, remaining, held, pending, activates, expires = zip(*changes.lots,
                                                                    strict=True)
        _update(conn, UPD_LOT, {
            "k_id": ids, "k_member_id": [who[m] for m in ms], "remaining": remaining,
            "held": held, "pending": pending, "activates_at": activates,
            "expires_at": expires}, "lots")
    if changes.holds:
        ids, ms, by = zip(*changes.holds, strict=True)
        n = len(ids)
        _update(conn, UPD_HOLD, {"k_id": ids, "k_member_id": [who[m] for m in ms],
                                 "status": ["released"] * n,
                                 "captured": [0] * n, "resolved_by": by}, "holds")
    if changes.accounts:
        states = [s for _, s in changes.accounts]
        columns: dict[str, Sequence[Any]] = {
            "k_program_id": [p] * len(states),
            "k_member_id": [who[m] for m, _ in changes.accounts],
            "k_wallet": [s.wallet for s in states]}
        for name in (*ACCOUNT_COLUMNS, "next_due_at", "version", "activity"):
            columns[name] = [getattr(s, name) for s in states]
        _update(conn, UPD_ACCOUNT, columns, "accounts")


def _insert(conn: sa.Connection, stmt: sa.Insert, columns: dict[str, Sequence[Any]]) -> None:
    try:
        execute_columns(conn, stmt, columns)
    except IntegrityError as exc:
        raise storage_error(exc) from exc


def _update(conn: sa.Connection, stmt: sa.Update, columns: dict[str, Sequence[Any]],
            what: str) -> None:
    n = len(next(iter(columns.values())))
    result = execute_columns(conn, stmt, columns)
    sane = (conn.dialect.supports_sane_multi_rowcount if n > 1
            else conn.dialect.supports_sane_rowcount)
    if sane and result.rowcount != n:
        raise StorageError(f"update of {what} found {result.rowcount} of {n} rows")


# -- PostgreSQL: one statement per table over JSON arrays of the rows' columns -----------
# (see loyaltykit.sql._pg_columns)

_PG_TX = f"""INSERT INTO {transactions.name} (id, program_id, member_id, wallet, kind,
        occurred_at, recorded_at, idempotency_key, reason, metadata, reverses_id)
    SELECT t.i, %(p)s, t.m, t.w, t.k, t.o, %(at)s, NULL, t.r, t.d, NULL
    FROM {unnest("t", [("i", "uuid"), ("m", "text"), ("w", "text"), ("k", "text"),
                       ("o", "timestamptz"), ("r", "text"), ("d", "json")])}"""
_PG_POSTING = f"""INSERT INTO {postings.name} (transaction_id, account, program_id,
        member_id, wallet, amount, position)
    SELECT t.t, t.a, %(p)s, t.m, t.w, t.n, t.i
    FROM {unnest("t", [("t", "uuid"), ("m", "text"), ("w", "text"), ("a", "text"),
                       ("n", "bigint"), ("i", "smallint")])}"""
_PG_MOVEMENT = f"""INSERT INTO {lot_movements.name} (transaction_id, lot_id, program_id,
        member_id, delta, position)
    SELECT t.t, t.l, %(p)s, t.m, t.d, 0
    FROM {unnest("t", [("t", "uuid"), ("m", "text"), ("l", "uuid"), ("d", "bigint")])}"""
_PG_LOT = f"""UPDATE {lots.name} SET remaining = v.r, held = v.h, pending = v.p,
        activates_at = v.a, expires_at = v.e
    FROM {unnest("v", [("i", "uuid"), ("m", "text"), ("r", "bigint"), ("h", "bigint"),
                       ("p", "boolean"), ("a", "timestamptz"), ("e", "timestamptz")])}
    WHERE {lots.name}.id = v.i AND {lots.name}.member_id = v.m"""
_PG_HOLD = f"""UPDATE {holds.name} SET status = 'released', captured = 0,
        resolved_by = v.r
    FROM {unnest("v", [("i", "uuid"), ("m", "text"), ("r", "uuid")])}
    WHERE {holds.name}.id = v.i AND {holds.name}.member_id = v.m"""
_ACCOUNT_NAMES = ("member_id", "wallet", *ACCOUNT_COLUMNS, "next_due_at", "version",
                  "activity")
_PG_ACCOUNT = f"""UPDATE {accounts.name} SET
        {", ".join(f"{c} = v.{c}" for c in _ACCOUNT_NAMES[2:])}
    FROM {unnest("v", [("member_id", "text"), ("wallet", "text"),
                       *((c, "bigint") for c in ACCOUNT_COLUMNS),
                       ("next_due_at", "timestamptz"), ("version", "bigint"),
                       ("activity", "text")])}
    WHERE {accounts.name}.program_id = %(pid)s AND {accounts.name}.member_id = v.member_id
      AND {accounts.name}.wallet = v.wallet"""


def _write_due_postgresql(conn: sa.Connection, p: str, changes: DueChanges) -> None:
    who = changes.members
    if changes.transactions:
        i, m, w, k, o, r, d = zip(*changes.transactions, strict=True)
        conn.exec_driver_sql(_PG_TX, {"p": p, "at": changes.recorded_at, **column_params(
            "imwkord", (i, [who[x] for x in m], w, k, o, r, d), documents="d")})
    if changes.postings:
        t, m, w, a, n, pos = zip(*changes.postings, strict=True)
        conn.exec_driver_sql(_PG_POSTING, {"p": p, **column_params(
            "tmwani", (t, [who[x] for x in m], w, a, n, pos))})
    if changes.movements:
        t, m, lot, d = zip(*changes.movements, strict=True)
        conn.exec_driver_sql(_PG_MOVEMENT, {"p": p, **column_params(
            "tmld", (t, [who[x] for x in m], lot, d))})
    if changes.lots:
        i, m, *state = zip(*changes.lots, strict=True)
        _updated(conn, _PG_LOT, column_params("imrhpae", [i, [who[x] for x in m], *state]),
                 len(changes.lots), "lots")
    if changes.holds:
        i, m, r = zip(*changes.holds, strict=True)
        _updated(conn, _PG_HOLD, column_params("imr", [i, [who[x] for x in m], r]),
                 len(changes.holds), "holds")
    if changes.accounts:
        states = [s for _, s in changes.accounts]
        columns = [[who[m] for m, _ in changes.accounts], [s.wallet for s in states],
                   *([getattr(s, c) for s in states] for c in _ACCOUNT_NAMES[2:])]
        _updated(conn, _PG_ACCOUNT, {"pid": p, **column_params(_ACCOUNT_NAMES, columns)},
                 len(changes.accounts), "accounts")


def _updated(conn: sa.Connection, sql: str, params: dict[str, Any], n: int,
             what: str) -> None:
    found = conn.exec_driver_sql(sql, params).rowcount
    if found != n:
        raise StorageError(f"update of {what} found {found} of {n} rows")
