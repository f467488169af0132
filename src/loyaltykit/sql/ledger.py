"""The ledger's store in SQL: members, accounts, lots, holds and transactions.

Reads are prepared statements built once (SQLAlchemy caches their compiled form); the
hot ones have a one-member variant, since an expanding ``IN`` costs a rewrite per
execution. :meth:`SQLLedgerStore.write` is one executemany per table touched.
"""

from __future__ import annotations

import datetime as dt
import functools
import operator
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit._model import (
    AccountState,
    Hold,
    HoldAllocation,
    HoldStatus,
    Kind,
    Lot,
    LotMovement,
    Member,
    MemberState,
    Posting,
    Transaction,
)
from loyaltykit.sql._errors import translated
from loyaltykit.sql._pg_probes import key_sets, probed
from loyaltykit.sql._shared import as_stored as _same
from loyaltykit.sql._shared import chunks, claimed_by
from loyaltykit.sql.ledger_due import (
    INS_MOVEMENT,
    INS_POSTING,
    INS_TX,
    UPD_ACCOUNT,
    UPD_HOLD,
    UPD_LOT,
    SQLLedgerDue,
)
from loyaltykit.sql.ledger_due_set import SQLLedgerDueSet
from loyaltykit.sql.ledger_history import _ACCOUNTS, SQLLedgerHistory, _at
from loyaltykit.sql.ledger_history import LOT_COLS as _LOT_COLS
from loyaltykit.sql.ledger_history import TX_COLS as _TX_COLS
from loyaltykit.sql.ledger_privacy import SQLLedgerPrivacy
from loyaltykit.sql.schema import (
    ACCOUNT_COLUMNS,
    accounts,
    hold_allocations,
    holds,
    lot_movements,
    lots,
    members,
    postings,
    program_versions,
    transactions,
)
from loyaltykit.storage.ledger import LedgerChanges

__all__ = ["SQLLedgerStore"]

_p: sa.BindParameter[str] = sa.bindparam("p")
_m: sa.BindParameter[str] = sa.bindparam("m")
_w: sa.BindParameter[str] = sa.bindparam("w")
_ids: sa.BindParameter[Any] = sa.bindparam("ids", expanding=True)

_KINDS = {k.value: k for k in Kind}
_STATUSES = {s.value: s for s in HoldStatus}

_ACCOUNT_STATE_COLS = (
    accounts.c.member_id,
    accounts.c.wallet,
    *(accounts.c[name] for name in ACCOUNT_COLUMNS),
    accounts.c.next_due_at,
    accounts.c.version,
    accounts.c.activity,
)
_HOLD_COLS = (
    holds.c.id,
    holds.c.program_id,
    holds.c.member_id,
    holds.c.wallet,
    holds.c.points,
    holds.c.status,
    holds.c.created_at,
    holds.c.expires_at,
    holds.c.transaction_id,
    holds.c.captured,
    holds.c.resolved_by,
    hold_allocations.c.lot_id,
    hold_allocations.c.points,
)

_SEL_MEMBER: sa.Executable = sa.select(
    members.c.program_id, members.c.member_id, members.c.enrolled_at, members.c.attributes
).where(members.c.program_id == _p, members.c.member_id == _m)

_sel_members = sa.select(
    members.c.program_id, members.c.member_id, members.c.enrolled_at, members.c.attributes
).where(members.c.program_id == _p)
_SEL_MEMBERS: sa.Executable = _sel_members.where(members.c.member_id.in_(_ids))

_SEL_ACCOUNT: sa.Executable = sa.select(*_ACCOUNT_STATE_COLS).where(
    accounts.c.program_id == _p, accounts.c.wallet == _w, accounts.c.member_id == _m
)
_lock_accounts = (
    sa.select(*_ACCOUNT_STATE_COLS)
    .where(accounts.c.program_id == _p, accounts.c.wallet == _w)
    .order_by(accounts.c.member_id)
    .with_for_update()
)
# one-member variants of the hot reads: an expanding IN costs a rewrite per execution
_LOCK_ACCOUNTS: sa.Executable = _lock_accounts.where(accounts.c.member_id.in_(_ids))
_LOCK_ACCOUNT: sa.Executable = _lock_accounts.where(accounts.c.member_id == _m)

_open_lots = (
    sa.select(*_LOT_COLS)
    .where(lots.c.program_id == _p, lots.c.wallet == _w,
           sa.or_(lots.c.remaining > 0, lots.c.pending))
    .order_by(lots.c.earned_at, lots.c.id)
)
_SEL_OPEN_LOTS: sa.Executable = _open_lots.where(lots.c.member_id.in_(_ids))
_SEL_OPEN_LOTS_1: sa.Executable = _open_lots.where(lots.c.member_id == _m)
# lots by id are read by their member: routed by the member (DESIGN §10)
_SEL_LOTS_BY_ID_OF: sa.Executable = sa.select(*_LOT_COLS).where(
    lots.c.program_id == _p, lots.c.member_id == _m, lots.c.id.in_(_ids)
)

# each allocation joined by its member too: its rows are on its hold's node when the
# tables are distributed by member (issue 23)
_HOLDS_JOIN = holds.join(hold_allocations, sa.and_(
    hold_allocations.c.hold_id == holds.c.id,
    hold_allocations.c.member_id == holds.c.member_id))
_open_holds = (
    sa.select(*_HOLD_COLS)
    .select_from(_HOLDS_JOIN)
    .where(holds.c.program_id == _p, holds.c.wallet == _w,
           holds.c.status == HoldStatus.OPEN.value)
    .order_by(holds.c.created_at, holds.c.id, hold_allocations.c.position)
)
_SEL_OPEN_HOLDS: sa.Executable = _open_holds.where(holds.c.member_id.in_(_ids))
_SEL_OPEN_HOLDS_1: sa.Executable = _open_holds.where(holds.c.member_id == _m)
# PostgreSQL: the many-member reads name their members as one JSON array parameter
# (:func:`~loyaltykit.sql._pg_probes.key_sets`): one statement whatever their
# number, where an expanding IN of 500 parameters per chunk was rewritten per
# execution by SQLAlchemy and psycopg (a long query is not cached) and parsed and
# planned anew by the server; each
# member probed by index (:mod:`loyaltykit.sql._pg_probes`: an IN over the array
# let stale statistics make the read quadratic in the program's members)
_LOCK_ACCOUNTS_PG: sa.Executable = probed(_lock_accounts, accounts.c.member_id)
_SEL_OPEN_LOTS_PG: sa.Executable = probed(_open_lots, lots.c.member_id,
                                          (lots.c.earned_at, lots.c.id))
_SEL_MEMBERS_PG: sa.Executable = probed(_sel_members, members.c.member_id)
_SEL_OPEN_HOLDS_PG: sa.Executable = probed(
    _open_holds, holds.c.member_id,
    (holds.c.created_at, holds.c.id, hold_allocations.c.position))
#: a transaction's or hold's id as lk_lookups keeps it (its hex digits)
_hex: sa.BindParameter[str] = sa.bindparam("hex", type_=sa.String())
# a hold named by its id alone (capture, void) found through the member that claimed
# it (lk_lookups): routed to the member's node on a distributed engine
_SEL_HOLD: sa.Executable = (
    sa.select(*_HOLD_COLS)
    .select_from(_HOLDS_JOIN)
    .where(holds.c.program_id == _p, holds.c.id == sa.bindparam("id"),
           holds.c.member_id == claimed_by("hold", _hex, _p))
    .order_by(hold_allocations.c.position)
)

# a transaction named by its id alone (reverse, activate) found through the member
# that claimed it: every transaction a write posts is claimed (lk_lookups); due work's
# set-based expiries, activations and releases (never reversible) are not, and are
# read by their id alone, on every node, when named (_SEL_TX_ANY)
_SEL_TX: sa.Executable = sa.select(*_TX_COLS).where(
    transactions.c.program_id == _p, transactions.c.id == sa.bindparam("id"),
    transactions.c.member_id == claimed_by("tx", _hex, _p)
)
_SEL_TX_ANY: sa.Executable = sa.select(*_TX_COLS).where(
    transactions.c.program_id == _p, transactions.c.id == sa.bindparam("id")
)
_SEL_TX_OF: sa.Executable = sa.select(*_TX_COLS).where(
    transactions.c.program_id == _p, transactions.c.member_id == _m,
    transactions.c.id == sa.bindparam("id")
)
# a transaction's legs and lot movements read by its member too, so a distributed
# engine reads them on the member's node (DESIGN §10)
_SEL_POSTINGS: sa.Executable = (
    sa.select(postings.c.transaction_id, postings.c.account, postings.c.amount)
    .where(postings.c.member_id == _m, postings.c.transaction_id.in_(_ids))
    .order_by(postings.c.transaction_id, postings.c.position)
)
_SEL_MOVEMENTS: sa.Executable = (
    sa.select(lot_movements.c.transaction_id, lot_movements.c.lot_id, lot_movements.c.delta)
    .where(lot_movements.c.member_id == _m, lot_movements.c.transaction_id.in_(_ids))
    .order_by(lot_movements.c.transaction_id, lot_movements.c.position)
)
# a reversal is its original's member's (a transaction never claimed is not reversible)
_SEL_REVERSAL: sa.Executable = sa.select(transactions.c.id).where(
    transactions.c.program_id == _p, transactions.c.reverses_id == sa.bindparam("id"),
    transactions.c.member_id == claimed_by("tx", _hex, _p)
)
_SEL_REVERSAL_OF: sa.Executable = sa.select(transactions.c.id).where(
    transactions.c.program_id == _p, transactions.c.member_id == _m,
    transactions.c.reverses_id == sa.bindparam("id")
)
# a member's refunds (rare), read by the member's index; which debit each gives back
# part of is in its metadata, matched in Python the same way on every database
_SEL_REFUNDS: sa.Executable = (
    sa.select(transactions.c.id, transactions.c["metadata"])
    .where(transactions.c.program_id == _p, transactions.c.member_id == _m,
           transactions.c.wallet == sa.bindparam("w"),
           transactions.c.kind == Kind.REFUND.value)
    .order_by(transactions.c.occurred_at, transactions.c.id)
)

# the number of the version in force at :at (program_version_at's rule), as a column
_version_in_force = sa.type_coerce(
    sa.select(sa.func.max(program_versions.c.version))
    .where(program_versions.c.program_id == _p,
           sa.or_(program_versions.c.effective_from.is_(None),
                  program_versions.c.effective_from <= _at))
    .scalar_subquery(),
    sa.Integer(),
)
_MEMBER_STATE_COLS = (members.c.member_id, members.c.enrolled_at, members.c.attributes,
                      _version_in_force)
_SEL_MEMBER_VERSION: sa.Executable = sa.select(*_MEMBER_STATE_COLS).where(
    members.c.program_id == _p, members.c.member_id == _m
)
_w2: sa.BindParameter[str] = sa.bindparam("w2")


@functools.cache
def _sel_member_state(wallets: int, lock: bool) -> sa.Executable:
    """``load_member``'s one statement: the member's account rows of the wallets asked
    for, each joined with the member and the version in force, in wallet order.
    ``wallets`` is 1 (bound as :w), 2 (:w, :w2) or 3 for any number (an expanding
    :ws); with ``lock`` the account rows, and only they, are locked as lock_accounts
    locks them (``FOR UPDATE OF lk_accounts``; SQLite renders no lock clause)."""
    if wallets == 1:
        which = accounts.c.wallet == _w
    elif wallets == 2:
        which = accounts.c.wallet.in_([_w, _w2])
    else:
        which = accounts.c.wallet.in_(sa.bindparam("ws", expanding=True))
    stmt = (
        sa.select(*_MEMBER_STATE_COLS, *_ACCOUNT_STATE_COLS)
        .select_from(accounts.join(members, sa.and_(
            members.c.program_id == accounts.c.program_id,
            members.c.member_id == accounts.c.member_id)))
        .where(accounts.c.program_id == _p, accounts.c.member_id == _m, which)
        .order_by(accounts.c.wallet)
    )
    return stmt.with_for_update(of=accounts) if lock else stmt


_INS_MEMBER = members.insert()
_INS_ACCOUNT = accounts.insert()
_INS_LOT = lots.insert()
_INS_HOLD = holds.insert()
_INS_ALLOCATION = hold_allocations.insert()


def _hold(rows: Sequence[Any]) -> Hold:
    first = rows[0]
    return Hold(
        id=first[0],
        program_id=first[1],
        member_id=first[2],
        wallet=first[3],
        points=first[4],
        status=_STATUSES[first[5]],
        created_at=first[6],
        expires_at=first[7],
        transaction_id=first[8],
        allocations=tuple(HoldAllocation(r[11], r[12]) for r in rows),
        captured=first[9],
        resolved_by=first[10],
    )


#: The columns of the rows the store's write builds as tuples (see Store._insert_rows), in
#: their tuples' order.
_MEMBER_KEYS = ("program_id", "member_id", "enrolled_at", "attributes")
_STATE_KEYS = (*ACCOUNT_COLUMNS, "next_due_at", "version", "activity")
_ACCOUNT_KEYS = ("program_id", "member_id", "wallet", *_STATE_KEYS)
_ACCOUNT_UPDATE_KEYS = ("k_program_id", "k_member_id", "k_wallet", *_STATE_KEYS)
_TX_KEYS = ("id", "program_id", "member_id", "wallet", "kind", "occurred_at", "recorded_at",
            "idempotency_key", "reason", "metadata", "reverses_id")
_POSTING_KEYS = ("transaction_id", "account", "program_id", "member_id", "wallet", "amount",
                 "position")
_LOT_KEYS = ("id", "program_id", "member_id", "wallet", "transaction_id", "amount",
             "remaining", "held", "earned_at", "activates_at", "expires_at", "pending")
_MOVEMENT_KEYS = ("transaction_id", "lot_id", "program_id", "member_id", "delta", "position")

#: An account state's stored values, in _STATE_KEYS' order.
_account_values = operator.attrgetter(*_STATE_KEYS)
_lot_head = operator.attrgetter("id", "program_id")
_lot_tail = operator.attrgetter("wallet", "transaction_id", "amount", "remaining", "held",
                                "earned_at", "activates_at", "expires_at", "pending")


def _lot_values(lot: Lot, member_id: str) -> tuple[Any, ...]:
    """A new lot's row, in _LOT_KEYS' order (its member as stored: ``member_id``)."""
    return (*_lot_head(lot), member_id, *_lot_tail(lot))


class SQLLedgerStore(SQLLedgerDue, SQLLedgerDueSet, SQLLedgerPrivacy, SQLLedgerHistory):
    """Members, accounts, lots, holds and transactions of one program (the due work's
    reads from :class:`~loyaltykit.sql.ledger_due.SQLLedgerDue`, its batches posted by
    SQLite itself from :class:`~loyaltykit.sql.ledger_due_set.SQLLedgerDueSet`, erasure
    from :class:`~loyaltykit.sql.ledger_privacy.SQLLedgerPrivacy`)."""

    #: Every row a read returns is built from its result for that read and shared with
    #: nothing: the member-key layer names the rows in place instead of copying them
    #: (:meth:`loyaltykit._member_keys.Names.shown`).
    fresh_reads = True

    @translated
    def get_member(self, member_id: str) -> Member | None:
        """Return the member, or None if not enrolled."""
        row = self._c().execute(_SEL_MEMBER, {"p": self.program_id, "m": member_id}).first()
        return None if row is None else Member(*row)

    @translated
    def lock_accounts(self, wallet: str, member_ids: Sequence[str]) -> dict[str, AccountState]:
        """Lock (``SELECT ... FOR UPDATE``; SQLite's write lock is already held) and
        return the running totals of these members' ``wallet``, in member-id order."""
        conn = self._c()
        found: dict[str, AccountState] = {}
        if len(member_ids) == 1:
            one = {"p": self.program_id, "w": wallet, "m": member_ids[0]}
            for row in conn.execute(_LOCK_ACCOUNT, one).all():
                found[row[0]] = AccountState(*row)
            return found
        for pg, ids in key_sets(conn, sorted(set(member_ids))):
            params: dict[str, Any] = {"p": self.program_id, "w": wallet, **ids}
            # .all(): one fetch of the rows (iterating fetches them one by one)
            for row in conn.execute(_LOCK_ACCOUNTS_PG if pg else _LOCK_ACCOUNTS, params).all():
                found[row[0]] = AccountState(*row)
        return found

    @translated
    def get_account(self, wallet: str, member_id: str) -> AccountState | None:
        """Return the running totals without locking, or None if not enrolled."""
        params = {"p": self.program_id, "w": wallet, "m": member_id}
        row = self._c().execute(_SEL_ACCOUNT, params).first()
        return None if row is None else AccountState(*row)

    @translated
    def load_member(
        self, member_id: str, wallets: Sequence[str], at: dt.datetime, *, lock: bool
    ) -> MemberState | None:
        """Return the member, its account rows of ``wallets`` (locked with ``lock``:
        ``SELECT ... FOR UPDATE OF lk_accounts``, the member row stays unlocked; SQLite's
        write lock is already held) and the version in force at ``at``, in one
        statement; None if not enrolled. Only a member without an account row in any
        of ``wallets`` takes a second statement."""
        conn = self._c()
        program_id = self.program_id
        params: dict[str, Any] = {"p": program_id, "m": member_id, "at": at}
        asked = sorted(set(wallets))
        if len(asked) == 1:
            params["w"] = asked[0]
        elif len(asked) == 2:
            params["w"], params["w2"] = asked
        else:
            params["ws"] = asked
        rows = (conn.execute(_sel_member_state(min(len(asked), 3), lock), params).all()
                if asked else [])
        head = rows[0] if rows else conn.execute(_SEL_MEMBER_VERSION, params).first()
        if head is None:
            return None
        return MemberState(
            member=Member(program_id, head[0], head[1], head[2]),
            accounts={row[5]: AccountState(*row[4:]) for row in rows},
            version=None if head[3] is None else int(head[3]),
        )

    @translated
    def load_members(self, member_ids: Sequence[str], wallets: Sequence[str]
                     ) -> dict[str, tuple[Member, dict[str, AccountState]]]:
        """One statement per 500 members for the members (one on PostgreSQL), then
        per wallet for their accounts (locked: :meth:`lock_accounts`)."""
        conn = self._c()
        found: dict[str, tuple[Member, dict[str, AccountState]]] = {}
        for pg, named in key_sets(conn, sorted(set(member_ids))):
            for row in conn.execute(_SEL_MEMBERS_PG if pg else _SEL_MEMBERS,
                                    {"p": self.program_id, **named}).all():
                found[row[1]] = (Member(*row), {})
        ids = sorted(found)
        for wallet in sorted(set(wallets)):
            for member_id, state in self.lock_accounts(wallet, ids).items():
                found[member_id][1][wallet] = state
        return found

    @translated
    def load_lots(self, wallet: str, member_ids: Sequence[str]) -> list[Lot]:
        """Return the open lots (remaining > 0 or pending) of these members' wallet,
        member by member in the order given, each member's oldest first."""
        conn = self._c()
        if len(member_ids) == 1:
            one = {"p": self.program_id, "w": wallet, "m": member_ids[0]}
            return [Lot(*row) for row in conn.execute(_SEL_OPEN_LOTS_1, one).all()]
        by_member: dict[str, list[Lot]] = {}
        for pg, ids in key_sets(conn, list(dict.fromkeys(member_ids))):
            params: dict[str, Any] = {"p": self.program_id, "w": wallet, **ids}
            for row in conn.execute(_SEL_OPEN_LOTS_PG if pg else _SEL_OPEN_LOTS,
                                    params).all():
                by_member.setdefault(row[2], []).append(Lot(*row))
        return [lot for m in member_ids for lot in by_member.get(m, ())]

    @translated
    def load_lots_by_id(self, lot_ids: Sequence[uuid.UUID], *,
                        member_id: str) -> list[Lot]:
        """Return these lots of this member whatever their state, in the order given;
        unknown ids and other members' lots are absent (one statement routed by the
        member on a distributed engine)."""
        conn = self._c()
        found: dict[uuid.UUID, Lot] = {}
        params: dict[str, Any] = {"p": self.program_id, "m": member_id}
        for chunk in chunks(list(dict.fromkeys(lot_ids))):
            for row in conn.execute(_SEL_LOTS_BY_ID_OF, {**params, "ids": chunk}):
                found[row[0]] = Lot(*row)
        return [found[i] for i in lot_ids if i in found]

    @translated
    def load_open_holds(self, wallet: str, member_ids: Sequence[str]) -> list[Hold]:
        """Return the open holds of these members' wallet, member by member in the
        order given, each member's oldest first."""
        conn = self._c()
        rows_of: dict[uuid.UUID, list[Any]] = {}
        if len(member_ids) == 1:
            batches: Iterable[tuple[sa.Executable, dict[str, Any]]] = [
                (_SEL_OPEN_HOLDS_1, {"p": self.program_id, "w": wallet, "m": member_ids[0]})
            ]
        else:
            batches = (
                (_SEL_OPEN_HOLDS_PG if pg else _SEL_OPEN_HOLDS,
                 {"p": self.program_id, "w": wallet, **ids})
                for pg, ids in key_sets(conn, list(dict.fromkeys(member_ids)))
            )
        for stmt, params in batches:
            for row in conn.execute(stmt, params).all():
                rows_of.setdefault(row[0], []).append(row)
        by_member: dict[str, list[Hold]] = {}
        for rows in rows_of.values():
            hold = _hold(rows)
            by_member.setdefault(hold.member_id, []).append(hold)
        return [hold for m in member_ids for hold in by_member.get(m, ())]

    @translated
    def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        """Return the hold (any status) of this program, or None."""
        rows = self._c().execute(_SEL_HOLD, {"p": self.program_id, "id": hold_id,
                                             "hex": hold_id.hex}).all()
        return _hold(rows) if rows else None

    def _transactions(self, conn: Connection, rows: Sequence[Any]) -> list[Transaction]:
        """Build transactions from their rows, loading their postings and movements."""
        legs: dict[uuid.UUID, list[Posting]] = {}
        moves: dict[uuid.UUID, list[LotMovement]] = {}
        ids_of: dict[str, list[uuid.UUID]] = {}  # by member (a page has one)
        for row in rows:
            ids_of.setdefault(row[2], []).append(row[0])
        for member_id, ids in ids_of.items():
            for chunk in chunks(ids):
                params = {"m": member_id, "ids": chunk}
                for tid, account, amount in conn.execute(_SEL_POSTINGS, params):
                    legs.setdefault(tid, []).append(Posting(_ACCOUNTS[account], amount))
                for tid, lot_id, delta in conn.execute(_SEL_MOVEMENTS, params):
                    moves.setdefault(tid, []).append(LotMovement(lot_id, delta))
        return [
            Transaction(
                id=r[0],
                program_id=r[1],
                member_id=r[2],
                wallet=r[3],
                kind=_KINDS[r[4]],
                occurred_at=r[5],
                recorded_at=r[6],
                postings=tuple(legs.get(r[0], ())),
                movements=tuple(moves.get(r[0], ())),
                idempotency_key=r[7],
                reason=r[8],
                metadata=r[9],
                reverses_id=r[10],
            )
            for r in rows
        ]

    @translated
    def get_transaction(self, transaction_id: uuid.UUID, *,
                        member_id: str | None = None) -> Transaction | None:
        """Return the transaction with its postings and lot movements, or None; with
        ``member_id``, None unless it is that member's (read by the member)."""
        conn = self._c()
        params = {"p": self.program_id, "id": transaction_id, "m": member_id,
                  "hex": transaction_id.hex}
        row = conn.execute(_SEL_TX if member_id is None else _SEL_TX_OF, params).first()
        if row is None and member_id is None:  # never claimed: due work's, or none
            row = conn.execute(_SEL_TX_ANY, params).first()
        return None if row is None else self._transactions(conn, [row])[0]

    @translated
    def find_reversal(self, transaction_id: uuid.UUID, *,
                      member_id: str | None = None) -> uuid.UUID | None:
        """Return the id of the transaction reversing ``transaction_id``, or None; with
        ``member_id``, among that member's transactions (read by the member)."""
        if member_id is None:
            found: uuid.UUID | None = self._c().scalar(_SEL_REVERSAL, {
                "p": self.program_id, "id": transaction_id, "hex": transaction_id.hex})
            return found
        params = {"p": self.program_id, "m": member_id, "id": transaction_id}
        found = self._c().scalar(_SEL_REVERSAL_OF, params)
        return found

    @translated
    def find_refunds(self, wallet: str, member_id: str,
                     transaction_id: uuid.UUID) -> list[uuid.UUID]:
        """Return the ids of the member's refunds of ``transaction_id``, oldest first."""
        wanted = str(transaction_id)
        rows = self._c().execute(_SEL_REFUNDS, {"p": self.program_id, "m": member_id,
                                                "w": wallet})
        return [row[0] for row in rows if dict(row[1]).get("refunds_id") == wanted]

    @translated
    def write(self, changes: LedgerChanges) -> None:
        """Persist ``changes`` set-based: one executemany per table touched, inserts
        ordered so foreign keys hold (members, new accounts, transactions, postings, new
        lots, lot movements, new holds, hold allocations), then the updates of the
        touched accounts, lots and holds. Raise DuplicateKey on a broken unique rule (a
        member id enrolled twice, a second reversal of one transaction); the caller
        must then roll the unit of work back."""
        self._write(changes, _same)

    @translated
    def write_keyed(self, changes: LedgerChanges, keys: Mapping[str, str]) -> None:
        """:meth:`write` with each row's member looked up in ``keys`` as its row is
        built (see :mod:`loyaltykit.storage.keyed_writes`)."""
        self._write(changes, keys.__getitem__)

    def _write(self, changes: LedgerChanges, key: Callable[[str], str]) -> None:
        conn = self._c()
        program_id = self.program_id
        # the tables a batch (a history import's) writes thousands of rows to get their
        # rows as tuples (Store._insert_rows), not a dict per row
        if changes.members:
            self._insert_rows(conn, _INS_MEMBER, _MEMBER_KEYS, [
                (program_id, key(m.member_id), m.enrolled_at, dict(m.attributes))
                for m in changes.members
            ], "member already enrolled", "member_id")
        new_accounts = changes.new_accounts
        if new_accounts:
            self._insert_rows(conn, _INS_ACCOUNT, _ACCOUNT_KEYS, [
                (program_id, key(member_id), wallet, *_account_values(state))
                for (member_id, wallet), state in changes.accounts.items()
                if (member_id, wallet) in new_accounts
            ])
        txs = changes.transactions
        if txs:
            # an enum's ``_value_`` is its value as an attribute (``.value`` is a
            # property: a Python call per row, a posting's and a transaction's)
            self._insert_rows(conn, INS_TX, _TX_KEYS, [
                (tx.id, tx.program_id, key(tx.member_id), tx.wallet, tx.kind._value_,
                 tx.occurred_at, tx.recorded_at, tx.idempotency_key, tx.reason,
                 dict(tx.metadata), tx.reverses_id)
                for tx in txs
            ], "transaction already reversed", "reverses_id", only="reverses_id")
            legs = [
                (tx.id, p.account._value_, tx.program_id, member, tx.wallet, p.amount, i)
                for tx in txs for member in (key(tx.member_id),)
                for i, p in enumerate(tx.postings)
            ]
            if legs:
                self._insert_rows(conn, INS_POSTING, _POSTING_KEYS, legs)
        new_lots = changes.new_lots
        if new_lots:
            self._insert_rows(conn, _INS_LOT, _LOT_KEYS, [
                _lot_values(lot, key(lot.member_id)) for lot_id, lot in changes.lots.items()
                if lot_id in new_lots
            ])
        moves = [
            (tx.id, mv.lot_id, tx.program_id, member, mv.delta, i)
            for tx in txs if tx.movements for member in (key(tx.member_id),)
            for i, mv in enumerate(tx.movements)
        ]
        if moves:
            self._insert_rows(conn, INS_MOVEMENT, _MOVEMENT_KEYS, moves)
        new_holds = changes.new_holds
        if new_holds:
            created = [h for hold_id, h in changes.holds.items() if hold_id in new_holds]
            self._insert(conn, _INS_HOLD, [
                {"id": h.id, "program_id": h.program_id, "member_id": key(h.member_id),
                 "wallet": h.wallet, "points": h.points, "status": h.status.value,
                 "created_at": h.created_at, "expires_at": h.expires_at,
                 "transaction_id": h.transaction_id, "captured": h.captured,
                 "resolved_by": h.resolved_by}
                for h in created
            ])
            self._insert(conn, _INS_ALLOCATION, [
                {"hold_id": h.id, "lot_id": a.lot_id, "program_id": h.program_id,
                 "member_id": key(h.member_id), "points": a.points, "position": i}
                for h in created for i, a in enumerate(h.allocations)
            ])
        else:
            created = []
        if txs or created:
            # each transaction and hold id claimed with its member (lk_lookups), so a
            # call that names only the id (reverse, activate, capture, void) finds the
            # member's node; one id drawn twice is a StorageError
            self._claims(conn, [
                *(("tx", tx.id.hex, key(tx.member_id)) for tx in txs),
                *(("hold", h.id.hex, key(h.member_id)) for h in created)], None)
        touched_accounts = [
            (program_id, key(member_id), wallet, *_account_values(state))
            for (member_id, wallet), state in changes.accounts.items()
            if (member_id, wallet) not in new_accounts
        ]
        if touched_accounts:
            self._update_rows(conn, UPD_ACCOUNT, _ACCOUNT_UPDATE_KEYS, touched_accounts,
                              "accounts")
        touched_lots = [
            {"k_id": lot.id, "k_member_id": key(lot.member_id), "remaining": lot.remaining,
             "held": lot.held, "pending": lot.pending, "activates_at": lot.activates_at,
             "expires_at": lot.expires_at}
            for lot_id, lot in changes.lots.items() if lot_id not in new_lots
        ]
        if touched_lots:
            self._update(conn, UPD_LOT, touched_lots, "lots")
        touched_holds = [
            {"k_id": h.id, "k_member_id": key(h.member_id), "status": h.status.value,
             "captured": h.captured, "resolved_by": h.resolved_by}
            for hold_id, h in changes.holds.items() if hold_id not in new_holds
        ]
        if touched_holds:
            self._update(conn, UPD_HOLD, touched_holds, "holds")
