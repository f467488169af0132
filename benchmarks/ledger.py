#!/usr/bin/env python
"""Benchmark loyaltykit's ledger against hand-written SQLAlchemy Core doing the same work.

Run as a plain script::

    python benchmarks/ledger.py --backend sqlite|postgresql|memory [--quick]

For ``postgresql`` the server is ``--url``, else the ``LOYALTYKIT_BENCH_POSTGRESQL_URL``
environment variable, else a throwaway server started from the PostgreSQL binaries on
the machine (``tests/_postgres.py``). A given server gets the schema (Alembic) and rows
under a program id of its own, deleted again at the end: use a scratch database.

The program has one wallet and lots expiring 365 days after their earn (UTC), so an
earn works out an expiry and a spend takes the soonest-expiring lots first. Measured in
one run, side by side, in the same database:

* ``earn``, ``spend``, ``hold_capture`` (a hold and its full capture): loyaltykit
  operations per second against a *baseline* that issues the very statements
  :class:`~loyaltykit.sql.SQLStorage` issues for that operation (the idempotency-key
  SELECT, the account SELECT ... FOR UPDATE, the lot / hold loads, the INSERTs and
  UPDATEs, the outbox event's INSERT, one transaction each), written by hand with Core against
  ``SQLStorage.metadata``'s tables and computing the row values directly, without the
  loyaltykit domain. ``ratio`` = loyaltykit time / baseline time (target <= 1.2 on
  SQLite, issue 22; <= 1.5 on PostgreSQL). ``cpu_ratio`` (column ``cpu``) is the same
  ratio of the benchmark thread's CPU time: the work alone, without the waits for
  fsync, WAL checkpoints or a busy core that wall time adds to both sides (it is
  reported, not judged).
  The ``memory`` backend has no baseline: it reports loyaltykit's ops/s only.
* ``balance``: ``Loyalty.balance`` of a member with a long history (100,000
  transactions: earns and spends, nearly every lot consumed, seeded set-based through
  the storage port) against one with 10. ``ratio`` = time per read at 100,000 / time
  per read at 10 (target <= 1.5).
* ``bulk_earn``: ``Loyalty.bulk_earn`` to 100,000 members in one call against the same
  statements issued raw (key SELECT, account SELECT ... FOR UPDATE in chunks, one
  executemany per table: idempotency key, transactions, postings, lots, lot
  movements, account update, outbox events). ``percent_of_raw`` = loyaltykit awards/s as a % of the
  raw awards/s (target >= 80 on SQLite, issue 22; >= 50 on PostgreSQL).

Method: one warm-up round per side, then 7 rounds. In a round both sides get fresh
members (funded identically, untimed) so lot counts stay comparable, and run their
operations in blocks of 10, each pair ordered A B or B A by a seeded shuffle (half
each, so a periodic cost such as SQLite's WAL checkpoint cannot lock onto one side),
and load from elsewhere on a busy machine hits both sides alike; a bulk earn, being
one call, alternates whole calls (A B, B A, A B).
Figures are medians over rounds, a ratio the median of the
per-round ratios; ``extra us/op`` is loyaltykit's time per operation minus the
baseline's. ``--quick`` is a smoke run with tiny sizes (its figures mean little).
``--profile FILE`` writes a cProfile of loyaltykit's timed calls (read it with
``python -m pstats FILE``); ``--only`` picks sections.

The last line of output is one JSON object holding every figure printed.
"""

from __future__ import annotations

import contextlib
import cProfile
import datetime as dt
import functools
import gc
import hashlib
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from _shared import backend_parser, postgresql_url
from sqlalchemy.dialects.postgresql import JSONB

from loyaltykit import (
    Account,
    ExpiryPolicy,
    Kind,
    LedgerPolicy,
    Lot,
    LotMovement,
    Loyalty,
    Member,
    Money,
    Posting,
    Program,
    Storage,
    Transaction,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine
from loyaltykit.sql._many import execute_many
from loyaltykit.sql._pg_probes import keys_param, probed
from loyaltykit.sql._shared import claimed_by
from loyaltykit.sql.outbox import MANY_EVENTS, append_many, insert_statement
from loyaltykit.storage import AccountState, IdempotencyRecord
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.changes import ChangeSet, write_changes

WALLET = "points"
EXPIRY = dt.timedelta(days=365)
TTL = dt.timedelta(minutes=15)
FAR = dt.datetime.max.replace(tzinfo=dt.UTC)
CHUNK = 500  # SQLStorage's ids per IN list
#: The outbox event of each kind of transaction the benchmark posts.
EVENT_TYPES = {"earn": "points.earned", "spend": "points.spent", "hold": "points.held",
               "capture": "points.captured"}

#: Targets per backend (DESIGN / issue "PostgreSQL as a first-class backend", item 6;
#: SQLite's single operations and bulk earn: issue 22, item 6).
MAX_OP_RATIO = {"sqlite": 1.2, "postgresql": 1.5}
MAX_BALANCE_RATIO = 1.5
MIN_BULK_PERCENT = {"sqlite": 80.0, "postgresql": 50.0}

SECTIONS = ("earn", "spend", "hold_capture", "balance", "bulk_earn")


# -- sizes ------------------------------------------------------------------------------

FULL = {
    "rounds": 7,  # per side, after one warm-up round each
    "ops_per_round": 200,
    "block": 10,  # operations per side in a row before switching sides
    "members_per_round": 25,
    "lots_per_member": 10,  # funded before spend / hold rounds (10 x 100 points)
    "history": 100_000,
    "small_history": 10,
    "open_lots": 10,
    "reads_per_round": 300,
    "bulk_members": 100_000,
    "bulk_rounds": 3,  # per side
    "bulk_warmup_members": 2_000,
}
QUICK = {
    "rounds": 2,
    "ops_per_round": 20,
    "block": 5,
    "members_per_round": 5,
    "lots_per_member": 10,
    "history": 1_000,
    "small_history": 10,
    "open_lots": 10,
    "reads_per_round": 50,
    "bulk_members": 1_000,
    "bulk_rounds": 1,
    "bulk_warmup_members": 100,
}


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7), as the library generates them."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62 | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- profiling (loyaltykit's side only) ---------------------------------------------------

PROFILER: cProfile.Profile | None = None


@contextlib.contextmanager
def profiled() -> Iterator[None]:
    if PROFILER is None:
        yield
        return
    PROFILER.enable()
    try:
        yield
    finally:
        PROFILER.disable()


# -- the baseline: SQLStorage's statements, by hand ----------------------------------------

_T = SQLStorage.metadata.tables
K = _T["lk_idempotency_keys"]
A = _T["lk_accounts"]
TX = _T["lk_transactions"]
PO = _T["lk_postings"]
LO = _T["lk_lots"]
MV = _T["lk_lot_movements"]
HO = _T["lk_holds"]
AL = _T["lk_hold_allocations"]

ACCOUNT_COLUMNS = ("available", "pending", "held", "debt", "issued", "redeemed", "expired",
                   "adjustments", "transfers", "clawback_shortfall")

_p = sa.bindparam("p")
_w = sa.bindparam("w")
_m = sa.bindparam("m")
_ids = sa.bindparam("ids", expanding=True)

SEL_KEY = sa.select(K.c.key, K.c.fingerprint, K.c.result, K.c.created_at, K.c.member_id).where(
    K.c.program_id == _p, K.c.key == sa.bindparam("k"))
_lock = (
    sa.select(A.c.member_id, A.c.wallet, *(A.c[n] for n in ACCOUNT_COLUMNS), A.c.next_due_at,
              A.c.version, A.c.activity)
    .where(A.c.program_id == _p, A.c.wallet == _w)
    .order_by(A.c.member_id)
    .with_for_update()
)
LOCK_ONE = _lock.where(A.c.member_id == _m)
LOCK_MANY = _lock.where(A.c.member_id.in_(_ids))
# on PostgreSQL the members go as one JSON array parameter, each probed by its key
# (what SQLLedgerStore runs: loyaltykit.sql._pg_probes)
LOCK_MANY_PG = probed(_lock, A.c.member_id)
# the shop's member id -> member key, and back (what SQLMemberKeyStore runs)
_MI = _T["lk_member_ids"]
_member_keys = sa.select(_MI.c.external_id, _MI.c.member_id).where(_MI.c.program_id == _p)
SEL_MEMBER_KEYS = _member_keys.where(_MI.c.external_id.in_(_ids))
SEL_MEMBER_KEYS_PG = probed(_member_keys, _MI.c.external_id)
SEL_SHOP_IDS = sa.select(_MI.c.member_id, _MI.c.external_id).where(
    _MI.c.program_id == _p, _MI.c.member_id.in_(_ids))
# on PostgreSQL the keys go as one parameter, their JSON array text, joined
_KEYS_GIVEN = sa.func.jsonb_array_elements_text(
    sa.cast(sa.bindparam("ids", type_=sa.Text()), JSONB)).table_valued("value").alias("k")
SEL_SHOP_IDS_PG = sa.select(_MI.c.member_id, _MI.c.external_id).select_from(
    _KEYS_GIVEN.join(_MI, sa.and_(_MI.c.program_id == _p,
                                  _MI.c.member_id == _KEYS_GIVEN.c.value)))
OPEN_LOTS = (
    sa.select(LO.c.id, LO.c.program_id, LO.c.member_id, LO.c.wallet, LO.c.transaction_id,
              LO.c.amount, LO.c.remaining, LO.c.held, LO.c.earned_at, LO.c.activates_at,
              LO.c.expires_at, LO.c.pending)
    .where(LO.c.program_id == _p, LO.c.wallet == _w, sa.or_(LO.c.remaining > 0, LO.c.pending))
    .order_by(LO.c.earned_at, LO.c.id)
    .where(LO.c.member_id == _m)
)
_holds_join = HO.join(AL, sa.and_(AL.c.hold_id == HO.c.id, AL.c.member_id == HO.c.member_id))
_hold_cols = (HO.c.id, HO.c.program_id, HO.c.member_id, HO.c.wallet, HO.c.points, HO.c.status,
              HO.c.created_at, HO.c.expires_at, HO.c.transaction_id, HO.c.captured,
              HO.c.resolved_by, AL.c.lot_id, AL.c.points)
OPEN_HOLDS = (
    sa.select(*_hold_cols)
    .select_from(_holds_join)
    .where(HO.c.program_id == _p, HO.c.wallet == _w, HO.c.status == "open")
    .order_by(HO.c.created_at, HO.c.id, AL.c.position)
    .where(HO.c.member_id == _m)
)
SEL_HOLD = (
    sa.select(*_hold_cols)
    .select_from(_holds_join)
    .where(HO.c.program_id == _p, HO.c.id == sa.bindparam("id"),
           HO.c.member_id == claimed_by("hold", sa.bindparam("hex", type_=sa.String()), _p))
    .order_by(AL.c.position)
)
_of_member = (LO.c.program_id == _p, LO.c.member_id == _m, LO.c.wallet == _w)
_first_expiry = (
    sa.select(sa.func.min(LO.c.expires_at)).where(*_of_member, LO.c.remaining > 0)
    .scalar_subquery()
)
NEXT_EXPIRING = (
    sa.select(LO.c.expires_at, sa.func.sum(LO.c.remaining))
    .where(*_of_member, LO.c.remaining > 0, LO.c.expires_at == _first_expiry)
    .group_by(LO.c.expires_at)
)
INS_KEY = K.insert()
INS_TX = TX.insert()
INS_POSTING = PO.insert()
INS_LOT = LO.insert()
INS_MOVEMENT = MV.insert()
INS_HOLD = HO.insert()
INS_ALLOCATION = AL.insert()
INS_CLAIM = _T["lk_lookups"].insert()  # transaction and hold ids claimed with their member
UPD_ACCOUNT = A.update().where(
    A.c.program_id == sa.bindparam("k_program_id"),
    A.c.member_id == sa.bindparam("k_member_id"),
    A.c.wallet == sa.bindparam("k_wallet"),
)
UPD_LOT = LO.update().where(LO.c.id == sa.bindparam("k_id"),
                            LO.c.member_id == sa.bindparam("k_member_id"))
UPD_HOLD = HO.update().where(HO.c.id == sa.bindparam("k_id"),
                             HO.c.member_id == sa.bindparam("k_member_id"))


class Baseline:
    """What a careful hand-written ledger would do per operation, with the statements
    SQLStorage issues (same order, same shapes), on a plain Core engine."""

    def __init__(self, engine: sa.Engine, program_id: str) -> None:
        self.engine = engine
        self.p = program_id

    # helpers
    def _fingerprint(self, *parts: object) -> str:
        return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()

    def _account(self, acc: Any, **delta: int) -> dict[str, Any]:
        row = {"k_program_id": self.p, "k_member_id": acc[0], "k_wallet": WALLET}
        row.update(zip(ACCOUNT_COLUMNS, acc[2:12], strict=True))
        for name, change in delta.items():
            row[name] += change
        row["next_due_at"] = acc[12]
        row["version"] = acc[13] + 1
        row["activity"] = acc[14]
        return row

    def _result(self, kind: str, tx_id: uuid.UUID, member: str, points: int,
                now: dt.datetime, account: dict[str, Any], nxt: tuple[int, Any]) -> str:
        balance = {n: account[n] for n in ACCOUNT_COLUMNS}
        balance.update(member_id=member, wallet=WALLET, as_of=now.isoformat(),
                       next_expiring_points=nxt[0],
                       next_expiring_at=nxt[1].isoformat() if nxt[1] else None)
        return json.dumps({"transaction_id": str(tx_id), "kind": kind, "member_id": member,
                           "wallet": WALLET, "points": points, "occurred_at": now.isoformat(),
                           "balance": balance}, sort_keys=True, separators=(",", ":"))

    def _tx(self, tx_id: uuid.UUID, member: str, kind: str, now: dt.datetime, key: str,
            metadata: dict[str, Any]) -> dict[str, Any]:
        return {"id": tx_id, "program_id": self.p, "member_id": member, "wallet": WALLET,
                "kind": kind, "occurred_at": now, "recorded_at": now, "idempotency_key": key,
                "reason": "", "metadata": metadata, "reverses_id": None}

    def _legs(self, tx_id: uuid.UUID, member: str,
              legs: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
        return [{"transaction_id": tx_id, "account": account, "program_id": self.p,
                 "member_id": member, "wallet": WALLET, "amount": amount, "position": i}
                for i, (account, amount) in enumerate(legs)]

    def _event(self, member: str, kind: str, tx_id: uuid.UUID, points: int,
               changes: dict[str, int], account: dict[str, Any], now: dt.datetime,
               metadata: dict[str, Any], lots: Sequence[dict[str, Any]] = (),
               reason: str = "") -> dict[str, Any]:
        """The outbox row of one transaction (the payload loyaltykit writes)."""
        debt = -account["debt"]
        balance = {"available": account["available"], "pending": account["pending"],
                   "held": account["held"], "debt": debt,
                   "total": account["available"] + account["pending"] + account["held"] - debt}
        payload: dict[str, Any] = {"transaction_id": str(tx_id), "kind": kind,
                                   "wallet": WALLET, "points": points, "changes": changes,
                                   "balance": balance}
        if lots:
            payload["lots"] = list(lots)
        payload.update(reason=reason, metadata=metadata)
        row = {"program_id": self.p, "id": uuid7(), "type": EVENT_TYPES[kind], "version": 1,
               "member_id": member, "occurred_at": now, "recorded_at": now,
               "payload": payload}
        if self.engine.dialect.name != "postgresql":  # the statement numbers it
            row["k_p"] = self.p
        return row

    def _events(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        if self.engine.dialect.name == "postgresql" and len(rows) >= MANY_EVENTS:
            append_many(conn, rows[0]["program_id"], [
                (r["id"], r["type"], r["version"], r["member_id"], r["occurred_at"],
                 r["recorded_at"], r["payload"]) for r in rows])
            return
        conn.execute(insert_statement(self.engine.dialect.name), rows)

    def _key(self, key: str, member: str | None, fingerprint: str, result: str,
             now: dt.datetime) -> list[dict[str, Any]]:
        return [{"program_id": self.p, "key": key, "member_id": member,
                 "fingerprint": fingerprint, "result": result, "created_at": now}]

    @staticmethod
    def _due_and_next(lots: dict[uuid.UUID, list[Any]], holds: Sequence[Any],
                      ) -> tuple[dt.datetime | None, tuple[int, Any]]:
        """next_due_at (exact) and (points, instant) expiring next, from lot rows
        [id, remaining, held, expires_at, pending, activates_at]."""
        due: list[dt.datetime] = [h[7] for h in holds]
        first, points = None, 0
        for _, remaining, held, expires_at, pending, activates_at in lots.values():
            if pending and activates_at is not None:
                due.append(activates_at)
            if expires_at is not None and remaining - held > 0:
                due.append(expires_at)
            if expires_at is not None and remaining > 0:
                if first is None or expires_at < first:
                    first, points = expires_at, remaining
                elif expires_at == first:
                    points += remaining
        return (min(due) if due else None), (points, first)

    def _member_key(self, conn: sa.Connection, shop_id: str) -> str:
        """The member key of a shop id (lk_member_ids keeps the mapping)."""
        row = conn.execute(SEL_MEMBER_KEYS, {"p": self.p, "ids": [shop_id]}).first()
        if row is None:
            raise RuntimeError("baseline: member not enrolled")
        return str(row[1])

    def _shop_id(self, conn: sa.Connection, member_key: str) -> str:
        """The shop id of a member key."""
        if conn.dialect.name == "postgresql":
            row = conn.execute(SEL_SHOP_IDS_PG, {"p": self.p,
                                                 "ids": json.dumps([member_key])}).first()
        else:
            row = conn.execute(SEL_SHOP_IDS, {"p": self.p, "ids": [member_key]}).first()
        return member_key if row is None else str(row[1])

    def _load(self, conn: sa.Connection, member: str
              ) -> tuple[Any, list[Any], dict[uuid.UUID, list[Any]], list[Any]]:
        one = {"p": self.p, "w": WALLET, "m": member}
        acc = conn.execute(LOCK_ONE, one).first()
        lot_rows = conn.execute(OPEN_LOTS, one).all()
        # like loyaltykit: a wallet with nothing held has no open hold to load
        hold_rows = conn.execute(OPEN_HOLDS, one).all() if acc._mapping["held"] else []
        state = {r[0]: [r[0], r[6], r[7], r[10], r[11], r[9]] for r in lot_rows}
        return acc, lot_rows, state, hold_rows

    @staticmethod
    def _take(lot_rows: Sequence[Any], state: dict[uuid.UUID, list[Any]], points: int,
              now: dt.datetime, hold: bool) -> list[tuple[uuid.UUID, int]]:
        """Consume (or reserve) points soonest-expiring first, ties oldest first."""
        taken = []
        left = points
        for r in sorted(lot_rows, key=lambda r: (r[10] or FAR, r[8], r[0])):
            if left == 0:
                break
            if r[11] or (r[10] is not None and r[10] <= now):
                continue
            take = min(r[6] - r[7], left)
            if take <= 0:
                continue
            left -= take
            taken.append((r[0], take))
            state[r[0]][2 if hold else 1] += take if hold else -take
        if left:
            raise RuntimeError("baseline: not enough points")
        return taken

    def _lot_updates(self, state: dict[uuid.UUID, list[Any]],
                     ids: Sequence[uuid.UUID], member: str) -> list[dict[str, Any]]:
        return [{"k_id": i, "k_member_id": member, "remaining": state[i][1], "held": state[i][2],
                 "pending": state[i][4], "activates_at": state[i][5],
                 "expires_at": state[i][3]} for i in ids]

    # operations
    def _claims(self, member: str, *, tx: uuid.UUID,
                hold: uuid.UUID | None = None) -> list[dict[str, Any]]:
        """The lk_lookups rows of a write's transaction (and hold) ids, as SQLStorage
        claims them: its member found from the id alone (reverse, capture)."""
        rows = [{"program_id": self.p, "kind": "tx", "value": tx.hex, "member_id": member}]
        if hold is not None:
            rows.append({"program_id": self.p, "kind": "hold", "value": hold.hex,
                         "member_id": member})
        return rows

    def earn(self, shop_id: str, points: int, key: str) -> None:
        now = utcnow()
        fingerprint = self._fingerprint("earn", shop_id, points, WALLET)
        with self.engine.begin() as conn:
            if conn.execute(SEL_KEY, {"p": self.p, "k": key}).first() is not None:
                raise RuntimeError("baseline: key replayed")
            member = self._member_key(conn, shop_id)
            acc = conn.execute(LOCK_ONE, {"p": self.p, "w": WALLET, "m": member}).first()
            nxt = conn.execute(NEXT_EXPIRING, {"p": self.p, "m": member, "w": WALLET}).first()
            tx_id, lot_id = uuid7(), uuid7()
            expires = now + EXPIRY
            account = self._account(acc, available=points, issued=-points)
            if account["next_due_at"] is None or expires < account["next_due_at"]:
                account["next_due_at"] = expires
            if nxt is None or expires < nxt[0]:
                shown = (points, expires)
            else:
                shown = (int(nxt[1]) + (points if expires == nxt[0] else 0), nxt[0])
            result = self._result("earn", tx_id, shop_id, points, now, account, shown)
            conn.execute(INS_KEY, self._key(key, member, fingerprint, result, now))
            conn.execute(INS_TX, [self._tx(tx_id, member, "earn", now, key, {})])
            conn.execute(INS_POSTING, self._legs(tx_id, member,
                                                 [("issued", -points), ("available", points)]))
            conn.execute(INS_LOT, [{
                "id": lot_id, "program_id": self.p, "member_id": member, "wallet": WALLET,
                "transaction_id": tx_id, "amount": points, "remaining": points, "held": 0,
                "earned_at": now, "activates_at": None, "expires_at": expires,
                "pending": False}])
            conn.execute(INS_MOVEMENT, [{"transaction_id": tx_id, "lot_id": lot_id,
                                         "program_id": self.p, "member_id": member,
                                         "delta": points, "position": 0}])
            conn.execute(INS_CLAIM, self._claims(member, tx=tx_id))
            conn.execute(UPD_ACCOUNT, [account])
            self._events(conn, [self._event(
                member, "earn", tx_id, points, {"available": points}, account, now, {},
                [{"lot_id": str(lot_id), "points": points, "pending": False,
                  "activates_at": None, "expires_at": expires.isoformat()}])])

    def spend(self, shop_id: str, points: int, key: str) -> None:
        now = utcnow()
        fingerprint = self._fingerprint("spend", shop_id, points, WALLET)
        with self.engine.begin() as conn:
            if conn.execute(SEL_KEY, {"p": self.p, "k": key}).first() is not None:
                raise RuntimeError("baseline: key replayed")
            member = self._member_key(conn, shop_id)
            acc, lot_rows, state, hold_rows = self._load(conn, member)
            taken = self._take(lot_rows, state, points, now, hold=False)
            tx_id = uuid7()
            account = self._account(acc, available=-points, redeemed=points)
            account["next_due_at"], shown = self._due_and_next(state, hold_rows)
            result = self._result("spend", tx_id, shop_id, -points, now, account, shown)
            conn.execute(INS_KEY, self._key(key, member, fingerprint, result, now))
            conn.execute(INS_TX, [self._tx(tx_id, member, "spend", now, key, {})])
            conn.execute(INS_POSTING, self._legs(tx_id, member,
                                                 [("available", -points), ("redeemed", points)]))
            conn.execute(INS_MOVEMENT, [
                {"transaction_id": tx_id, "lot_id": lot_id, "program_id": self.p,
                 "member_id": member, "delta": -take, "position": i}
                for i, (lot_id, take) in enumerate(taken)])
            conn.execute(INS_CLAIM, self._claims(member, tx=tx_id))
            conn.execute(UPD_ACCOUNT, [account])
            conn.execute(UPD_LOT, self._lot_updates(state, [i for i, _ in taken], member))
            self._events(conn, [self._event(member, "spend", tx_id, -points,
                                            {"available": -points}, account, now, {})])

    def hold(self, shop_id: str, points: int, key: str) -> uuid.UUID:
        now = utcnow()
        fingerprint = self._fingerprint("hold", shop_id, points, TTL, WALLET)
        with self.engine.begin() as conn:
            if conn.execute(SEL_KEY, {"p": self.p, "k": key}).first() is not None:
                raise RuntimeError("baseline: key replayed")
            member = self._member_key(conn, shop_id)
            acc, lot_rows, state, hold_rows = self._load(conn, member)
            taken = self._take(lot_rows, state, points, now, hold=True)
            hold_id, tx_id = uuid7(), uuid7()
            expires = now + TTL
            account = self._account(acc, available=-points, held=points)
            due, shown = self._due_and_next(state, hold_rows)
            account["next_due_at"] = expires if due is None or expires < due else due
            result = self._result("hold", tx_id, shop_id, 0, now, account, shown)
            conn.execute(INS_KEY, self._key(key, member, fingerprint, result, now))
            conn.execute(INS_TX, [self._tx(tx_id, member, "hold", now, key,
                                           {"hold_id": str(hold_id)})])
            conn.execute(INS_POSTING, self._legs(tx_id, member,
                                                 [("available", -points), ("held", points)]))
            conn.execute(INS_HOLD, [{
                "id": hold_id, "program_id": self.p, "member_id": member, "wallet": WALLET,
                "points": points, "status": "open", "created_at": now, "expires_at": expires,
                "transaction_id": tx_id, "captured": 0, "resolved_by": None}])
            conn.execute(INS_ALLOCATION, [
                {"hold_id": hold_id, "lot_id": lot_id, "program_id": self.p,
                 "member_id": member, "points": take, "position": i}
                for i, (lot_id, take) in enumerate(taken)])
            conn.execute(INS_CLAIM, self._claims(member, tx=tx_id, hold=hold_id))
            conn.execute(UPD_ACCOUNT, [account])
            conn.execute(UPD_LOT, self._lot_updates(state, [i for i, _ in taken], member))
            self._events(conn, [self._event(member, "hold", tx_id, 0,
                                            {"available": -points, "held": points}, account,
                                            now, {"hold_id": str(hold_id)})])
        return hold_id

    def capture(self, hold_id: uuid.UUID, key: str) -> None:
        now = utcnow()
        fingerprint = self._fingerprint("capture", hold_id, None)
        with self.engine.begin() as conn:
            if conn.execute(SEL_KEY, {"p": self.p, "k": key}).first() is not None:
                raise RuntimeError("baseline: key replayed")
            rows = conn.execute(SEL_HOLD, {"p": self.p, "id": hold_id,
                                           "hex": hold_id.hex}).all()
            if not rows or rows[0][5] != "open" or rows[0][7] <= now:
                raise RuntimeError("baseline: hold not capturable")
            member, points = rows[0][2], rows[0][4]
            shop_id = self._shop_id(conn, member)
            acc, _, state, hold_rows = self._load(conn, member)
            tx_id = uuid7()
            moves = []
            for lot_id, reserved in ((r[11], r[12]) for r in rows):
                state[lot_id][1] -= reserved
                state[lot_id][2] -= reserved
                moves.append((lot_id, reserved))
            account = self._account(acc, held=-points, redeemed=points)
            others = [h for h in hold_rows if h[0] != hold_id]
            account["next_due_at"], shown = self._due_and_next(state, others)
            result = self._result("capture", tx_id, shop_id, -points, now, account, shown)
            conn.execute(INS_KEY, self._key(key, None, fingerprint, result, now))
            conn.execute(INS_TX, [self._tx(tx_id, member, "capture", now, key,
                                           {"hold_id": str(hold_id), "cause": "captured"})])
            conn.execute(INS_POSTING, self._legs(tx_id, member,
                                                 [("held", -points), ("redeemed", points)]))
            conn.execute(INS_MOVEMENT, [
                {"transaction_id": tx_id, "lot_id": lot_id, "program_id": self.p,
                 "member_id": member, "delta": -take, "position": i}
                for i, (lot_id, take) in enumerate(moves)])
            conn.execute(INS_CLAIM, self._claims(member, tx=tx_id))
            conn.execute(UPD_ACCOUNT, [account])
            conn.execute(UPD_LOT, self._lot_updates(state, [i for i, _ in moves], member))
            conn.execute(UPD_HOLD, [{"k_id": hold_id, "k_member_id": member, "status": "captured",
                                     "captured": points, "resolved_by": tx_id}])
            self._events(conn, [self._event(member, "capture", tx_id, -points,
                                            {"held": -points}, account, now,
                                            {"hold_id": str(hold_id), "cause": "captured"})])

    def bulk_earn(self, members: Sequence[str], points: int, key: str) -> None:
        now = utcnow()
        fingerprint = self._fingerprint("bulk_earn", len(members), points, WALLET)
        with self.engine.begin() as conn:
            if conn.execute(SEL_KEY, {"p": self.p, "k": key}).first() is not None:
                raise RuntimeError("baseline: key replayed")
            keys: dict[str, str] = {}
            shop_ids = sorted(set(members))
            pg = conn.dialect.name == "postgresql"
            if pg:
                params = {"p": self.p, **keys_param(shop_ids)}
                keys.update((r[0], r[1]) for r in conn.execute(SEL_MEMBER_KEYS_PG, params))
            for start in range(0, len(shop_ids) if not pg else 0, CHUNK):
                params = {"p": self.p, "ids": shop_ids[start:start + CHUNK]}
                keys.update((r[0], r[1]) for r in conn.execute(SEL_MEMBER_KEYS, params))
            if len(keys) != len(shop_ids):
                raise RuntimeError("baseline: member not enrolled")
            accounts: dict[str, Any] = {}
            ordered = sorted(keys.values())
            if pg:
                params = {"p": self.p, "w": WALLET, **keys_param(ordered)}
                accounts.update((row[0], row) for row in conn.execute(LOCK_MANY_PG, params))
            for start in range(0, len(ordered) if not pg else 0, CHUNK):
                params = {"p": self.p, "w": WALLET, "ids": ordered[start:start + CHUNK]}
                for row in conn.execute(LOCK_MANY, params):
                    accounts[row[0]] = row
            if len(accounts) != len(ordered):
                raise RuntimeError("baseline: member not enrolled")
            batch_id = uuid7()
            expires = now + EXPIRY
            txs, legs, lots, moves, updates, events = [], [], [], [], [], []
            for member in (keys[m] for m in members):
                tx_id, lot_id = uuid7(), uuid7()
                txs.append(self._tx(tx_id, member, "earn", now, key,
                                    {"batch_id": str(batch_id)}))
                legs.append({"transaction_id": tx_id, "account": "issued", "program_id": self.p,
                             "member_id": member, "wallet": WALLET, "amount": -points,
                             "position": 0})
                legs.append({"transaction_id": tx_id, "account": "available",
                             "program_id": self.p, "member_id": member, "wallet": WALLET,
                             "amount": points, "position": 1})
                lots.append({"id": lot_id, "program_id": self.p, "member_id": member,
                             "wallet": WALLET, "transaction_id": tx_id, "amount": points,
                             "remaining": points, "held": 0, "earned_at": now,
                             "activates_at": None, "expires_at": expires, "pending": False})
                moves.append({"transaction_id": tx_id, "lot_id": lot_id, "program_id": self.p,
                              "member_id": member, "delta": points, "position": 0})
                account = self._account(accounts[member], available=points, issued=-points)
                if account["next_due_at"] is None or expires < account["next_due_at"]:
                    account["next_due_at"] = expires
                updates.append(account)
                events.append(self._event(
                    member, "earn", tx_id, points, {"available": points}, account, now,
                    {"batch_id": str(batch_id)},
                    [{"lot_id": str(lot_id), "points": points, "pending": False,
                      "activates_at": None, "expires_at": expires.isoformat()}]))
            result = json.dumps({"batch_id": str(batch_id), "members": len(members),
                                 "points": points * len(members),
                                 "occurred_at": now.isoformat()})
            conn.execute(INS_KEY, self._key(key, None, fingerprint, result, now))
            # on PostgreSQL, many rows go as one statement over JSON arrays of their
            # columns (sql/_many_pg.py), as loyaltykit writes them: psycopg's executemany
            # runs a statement per row
            write: Callable[[Any, list[dict[str, Any]]], object] = (
                functools.partial(execute_many, conn) if pg else conn.execute)
            write(INS_TX, txs)
            write(INS_POSTING, legs)
            write(INS_LOT, lots)
            write(INS_MOVEMENT, moves)
            write(INS_CLAIM, [{"program_id": self.p, "kind": "tx", "value": tx["id"].hex,
                               "member_id": tx["member_id"]} for tx in txs])
            write(UPD_ACCOUNT, updates)
            self._events(conn, events)



# -- seeding through the storage port ------------------------------------------------------


def enrol_many(storage: Storage, program_id: str, members: Sequence[str],
               at: dt.datetime) -> None:
    """Enrol ``members`` in one set-based write (members and empty accounts)."""
    changes = ChangeSet(
        members=[Member(program_id, m, at, {}) for m in members],
        accounts={(m, WALLET): AccountState(m, WALLET) for m in members},
        new_accounts={(m, WALLET) for m in members},
    )
    with by_shop_ids(storage).unit_of_work(program_id) as uow:
        write_changes(uow, changes)
        uow.commit()


def seed_history(storage: Storage, program_id: str, member: str, transactions: int,
                 open_lots: int, end: dt.datetime) -> None:
    """Enrol ``member`` with a consistent history of ``transactions``: earns of 10
    points a minute apart, each consumed by the next minute's spend, except the last
    ``open_lots`` earns (so nearly every lot is consumed)."""
    spends = (transactions - open_lots) // 2
    earns = transactions - spends
    step = dt.timedelta(minutes=1)
    start = end - step * (transactions + 1)
    txs: list[Transaction] = []
    lots: dict[uuid.UUID, Lot] = {}
    keys: list[IdempotencyRecord] = []
    minute = 0

    def add(kind: Kind, at: dt.datetime, postings: tuple[Posting, ...],
            move: LotMovement) -> uuid.UUID:
        tx_id = uuid7()
        key = f"seed-{member}-{len(txs)}"
        txs.append(Transaction(tx_id, program_id, member, WALLET, kind, at, at, postings,
                               (move,), key))
        keys.append(IdempotencyRecord(key, "seed", "{}", at, member))
        return tx_id

    earn_legs = (Posting(Account.ISSUED, -10), Posting(Account.AVAILABLE, 10))
    spend_legs = (Posting(Account.AVAILABLE, -10), Posting(Account.REDEEMED, 10))
    for i in range(earns):
        at = start + step * minute
        minute += 1
        lot_id = uuid7()
        tx_id = add(Kind.EARN, at, earn_legs, LotMovement(lot_id, 10))
        consumed = i < spends
        lots[lot_id] = Lot(lot_id, program_id, member, WALLET, tx_id, 10,
                           0 if consumed else 10, 0, at, None, at + EXPIRY, False)
        if consumed:
            add(Kind.SPEND, start + step * minute, spend_legs, LotMovement(lot_id, -10))
            minute += 1
    live = [lot.expires_at for lot in lots.values() if lot.remaining and lot.expires_at]
    state = AccountState(member, WALLET, available=10 * (earns - spends), issued=-10 * earns,
                         redeemed=10 * spends, next_due_at=min(live) if live else None,
                         version=len(txs))
    changes = ChangeSet(
        transactions=txs, lots=lots, new_lots=set(lots),
        accounts={(member, WALLET): state}, new_accounts={(member, WALLET)},
        members=[Member(program_id, member, start, {})], idempotency=keys,
    )
    with by_shop_ids(storage).unit_of_work(program_id) as uow:
        write_changes(uow, changes)
        uow.commit()


# -- measuring ------------------------------------------------------------------------------


Run = Callable[[str], tuple[float, int]]  # (round tag) -> (seconds, operations)
Prepare = Callable[[str], Any]  # (round tag) -> state, untimed
Step = Callable[[Any, int], None]  # (state, operation index): one timed operation


def _summary(rate_a: list[float], rate_b: list[float], ratios: list[float],
             cpu_ratios: Sequence[float] = ()) -> dict[str, Any]:
    return {
        "a": statistics.median(rate_a),
        "b": statistics.median(rate_b) if rate_b else None,
        "ratio": statistics.median(ratios) if ratios else None,
        "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else None,
        "a_rounds": rate_a,
        "b_rounds": rate_b,
        "ratios": ratios,
        "cpu_ratios": list(cpu_ratios),
    }


def interleaved(a: tuple[Prepare, Step], b: tuple[Prepare, Step] | None, ops: int, block: int,
                rounds: int, warmup: int = 1) -> dict[str, Any]:
    """Rounds of ``ops`` operations per side, run in alternating blocks (A B, B A, ...) so
    both sides see the same machine, even on a busy one. Each round prepares fresh
    state (untimed); its rate per side is ops / summed block times, its ratio
    time(A) / time(B), and its CPU ratio the same of the thread's CPU time (work only:
    no waiting for fsync or for a core). One warm-up round first."""
    rate_a: list[float] = []
    rate_b: list[float] = []
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    for r in range(-warmup, rounds):
        tag = f"w{-r}" if r < 0 else f"r{r}"
        sides: list[tuple[str, Step, Any]] = [("a", a[1], a[0](tag))]
        if b is not None:
            sides.append(("b", b[1], b[0](tag)))
        spent = {"a": 0.0, "b": 0.0}
        cpu = {"a": 0.0, "b": 0.0}
        # Which side goes first in each pair of blocks is a seeded shuffle (half each), not a
        # strict A B, B A cycle: SQLite's WAL auto-checkpoint (every ~1000 frames, i.e. about
        # every 4 blocks here) phase-locked with that cycle and landed on one side for whole
        # runs (21 checkpoints in a row on loyaltykit's blocks), charging it ~3x the
        # checkpoint copying although both sides write the same WAL bytes.
        blocks = range(0, ops, block)
        flips = [j % 2 == 0 for j in range(len(blocks))]
        random.Random(r).shuffle(flips)
        gc.collect()
        for j, first in enumerate(blocks):
            last = min(first + block, ops)
            for label, step, state in (sides if flips[j] else sides[::-1]):
                with profiled() if label == "a" else contextlib.nullcontext():
                    started, working = time.perf_counter(), time.thread_time()
                    for i in range(first, last):
                        step(state, i)
                    spent[label] += time.perf_counter() - started
                    cpu[label] += time.thread_time() - working
        if r < 0:
            continue
        rate_a.append(ops / spent["a"])
        if b is not None:
            rate_b.append(ops / spent["b"])
            ratios.append(spent["a"] / spent["b"])
            cpu_ratios.append(cpu["a"] / cpu["b"])
    return _summary(rate_a, rate_b, ratios, cpu_ratios)


def ab(run_a: Run, run_b: Run | None, rounds: int, warmup: int = 1) -> dict[str, Any]:
    """Warm up, then whole runs alternating A B / B A for ``rounds`` (for work that is
    one call, like a bulk earn)."""
    for w in range(warmup):
        gc.collect()
        run_a(f"w{w}")
        if run_b is not None:
            gc.collect()
            run_b(f"w{w}")
    rate_a: list[float] = []
    rate_b: list[float] = []
    ratios: list[float] = []
    for r in range(rounds):
        order: list[tuple[str, Run]] = [("a", run_a)]
        if run_b is not None:
            order = [("a", run_a), ("b", run_b)] if r % 2 == 0 else [("b", run_b), ("a", run_a)]
        per_op: dict[str, float] = {}
        for side, run in order:
            gc.collect()
            seconds, ops = run(f"r{r}")
            per_op[side] = seconds / ops
            (rate_a if side == "a" else rate_b).append(ops / seconds)
        if run_b is not None:
            ratios.append(per_op["a"] / per_op["b"])
    return _summary(rate_a, rate_b, ratios)


class Bench:
    def __init__(self, backend: str, storage: Storage, engine: sa.Engine | None,
                 sizes: dict[str, int], rounds: int | None) -> None:
        self.backend = backend
        self.storage = storage
        self.engine = engine
        self.sizes = sizes
        self.rounds = rounds or sizes["rounds"]
        self.program = Program(
            id=f"bench-{uuid.uuid4().hex[:12]}", time_zone="UTC", currency="EUR",
            point_value=Money("0.01", "EUR"),
            ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365)),
        )
        self.loyalty = Loyalty(self.program, storage)
        self.loyalty.register()  # the rows below are written around the facade
        self.baseline = Baseline(engine, self.program.id) if engine is not None else None

    @property
    def pid(self) -> str:
        return self.program.id

    def _members(self, tag: str, funded: bool) -> list[str]:
        """Fresh enrolled members; funded with lots of 100 points when asked."""
        n = self.sizes["members_per_round"]
        members = [f"{tag}-{j}" for j in range(n)]
        now = utcnow()
        enrol_many(self.storage, self.pid, members, now - dt.timedelta(hours=1))
        if funded:
            lots = self.sizes["lots_per_member"]
            for j in range(lots):
                at = now - dt.timedelta(minutes=lots - j)
                self.loyalty.bulk_earn([(m, 100) for m in members], key=f"{tag}-fund-{j}",
                                       at=at)
        return members

    def operation(self, name: str) -> dict[str, Any]:
        lk = self.loyalty
        base = self.baseline
        funded = name != "earn"

        def prepare(label: str) -> Prepare:
            def make(tag: str) -> tuple[list[str], str]:
                prefix = f"{name}-{label}-{tag}"
                return self._members(prefix, funded), prefix
            return make

        def member(state: tuple[list[str], str], i: int) -> str:
            return state[0][i % len(state[0])]

        if name == "earn":
            def lk_step(state: tuple[list[str], str], i: int) -> None:
                lk.earn(member(state, i), 100, key=f"{state[1]}-{i}")

            def base_step(state: tuple[list[str], str], i: int) -> None:
                assert base is not None
                base.earn(member(state, i), 100, f"{state[1]}-{i}")
        elif name == "spend":
            def lk_step(state: tuple[list[str], str], i: int) -> None:
                lk.spend(member(state, i), 30, key=f"{state[1]}-{i}")

            def base_step(state: tuple[list[str], str], i: int) -> None:
                assert base is not None
                base.spend(member(state, i), 30, f"{state[1]}-{i}")
        else:
            def lk_step(state: tuple[list[str], str], i: int) -> None:
                held = lk.hold(member(state, i), 30, key=f"{state[1]}-h{i}", ttl=TTL)
                lk.capture(held.hold_id, key=f"{state[1]}-c{i}")

            def base_step(state: tuple[list[str], str], i: int) -> None:
                assert base is not None
                hold_id = base.hold(member(state, i), 30, f"{state[1]}-h{i}")
                base.capture(hold_id, f"{state[1]}-c{i}")

        result = interleaved((prepare("lk"), lk_step),
                             (prepare("base"), base_step) if base else None,
                             self.sizes["ops_per_round"], self.sizes["block"], self.rounds)
        target = MAX_OP_RATIO.get(self.backend)
        ok = None if result["ratio"] is None or target is None else result["ratio"] <= target
        extra = None if result["b"] is None else 1e6 * (1 / result["a"] - 1 / result["b"])
        return {
            "loyaltykit_ops_per_s": result["a"],
            "baseline_ops_per_s": result["b"],
            "ratio": result["ratio"],
            "cpu_ratio": result["cpu_ratio"],
            "extra_us_per_op": extra,
            "target_max_ratio": target if base else None,
            "pass": ok,
            "rounds": {"loyaltykit": result["a_rounds"], "baseline": result["b_rounds"],
                       "ratio": result["ratios"], "cpu_ratio": result["cpu_ratios"]},
        }

    def balance(self) -> dict[str, Any]:
        big, small = "history-large", "history-small"
        now = utcnow()
        seed_history(self.storage, self.pid, big, self.sizes["history"],
                     self.sizes["open_lots"], now)
        seed_history(self.storage, self.pid, small, self.sizes["small_history"],
                     self.sizes["open_lots"], now)
        self.analyze()
        lk = self.loyalty
        expected = 10 * self.sizes["open_lots"]

        def read(member: str, i: int) -> None:
            if lk.balance(member).available != expected:
                raise RuntimeError(f"seeded history of {member} reads wrong")

        result = interleaved((lambda tag: big, read), (lambda tag: small, read),
                             self.sizes["reads_per_round"], 2 * self.sizes["block"],
                             self.rounds)
        return {
            "history_transactions": self.sizes["history"],
            "small_history_transactions": self.sizes["small_history"],
            "reads_per_s_large": result["a"],
            "reads_per_s_small": result["b"],
            "ratio": result["ratio"],
            "target_max_ratio": MAX_BALANCE_RATIO,
            "pass": result["ratio"] <= MAX_BALANCE_RATIO,
            "rounds": {"large": result["a_rounds"], "small": result["b_rounds"],
                       "ratio": result["ratios"]},
        }

    def bulk_earn(self) -> dict[str, Any]:
        size = self.sizes["bulk_members"]
        members = [f"bulk-{j:06d}" for j in range(size)]
        warm = [f"bulk-warm-{j:06d}" for j in range(self.sizes["bulk_warmup_members"])]
        enrol_many(self.storage, self.pid, members + warm, utcnow() - dt.timedelta(hours=1))
        self.analyze()
        lk = self.loyalty
        base = self.baseline

        def lk_run(tag: str) -> tuple[float, int]:
            who = warm if tag.startswith("w") else members
            awards = [(m, 10) for m in who]
            with profiled():
                started = time.perf_counter()
                lk.bulk_earn(awards, key=f"bulk-lk-{tag}")
            return time.perf_counter() - started, len(who)

        def base_run(tag: str) -> tuple[float, int]:
            assert base is not None
            who = warm if tag.startswith("w") else members
            started = time.perf_counter()
            base.bulk_earn(who, 10, f"bulk-raw-{tag}")
            return time.perf_counter() - started, len(who)

        result = ab(lk_run, base_run if base else None, self.sizes["bulk_rounds"])
        percent = None if result["ratio"] is None else 100.0 / result["ratio"]
        floor = MIN_BULK_PERCENT.get(self.backend)
        extra = None if result["b"] is None else 1e6 * (1 / result["a"] - 1 / result["b"])
        return {
            "members": size,
            "loyaltykit_awards_per_s": result["a"],
            "raw_awards_per_s": result["b"],
            "extra_us_per_award": extra,
            "percent_of_raw": percent,
            "target_min_percent": floor if base else None,
            "pass": None if percent is None or floor is None else percent >= floor,
            "rounds": {"loyaltykit": result["a_rounds"], "raw": result["b_rounds"],
                       "ratio": result["ratios"]},
        }

    def analyze(self) -> None:
        """Refresh the planner's statistics after a set-based seed (as autovacuum
        would shortly), so plans reflect the data."""
        if self.engine is not None:
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")

    def cleanup(self) -> dict[str, Any] | None:
        """Delete this run's rows (on a server given by URL): one set-based DELETE per
        table, children before their parents, each found through an index (every
        foreign key has one, so a deleted row's checks are lookups too). Returns the
        rows deleted per table and the seconds it took."""
        if self.engine is None:
            return None
        started = time.perf_counter()
        deleted: dict[str, int] = {}
        with self.engine.begin() as conn:
            for table in reversed(SQLStorage.metadata.sorted_tables):
                count = conn.execute(cleanup_statement(table), {"p": self.pid}).rowcount
                if count:
                    deleted[table.name] = count
        return {"seconds": time.perf_counter() - started, "rows": deleted}


#: Tables whose rows carry ``program_id`` but no index leading with it: their run's rows
#: are those of the run's parent rows, by the (indexed) foreign key.
_BY_PARENT = {"lk_postings": ("transaction_id", TX), "lk_lot_movements": ("transaction_id", TX),
              "lk_hold_allocations": ("hold_id", HO)}


def cleanup_statement(table: sa.Table) -> sa.Delete:
    """The DELETE of one run's rows of ``table`` (program id bound as ``:p``)."""
    if table.name == "lk_programs":
        return table.delete().where(table.c.id == _p)
    if table.name in _BY_PARENT:
        column, parent = _BY_PARENT[table.name]
        of_run = sa.select(parent.c.id).where(parent.c.program_id == _p)
        return table.delete().where(table.c[column].in_(of_run))
    return table.delete().where(table.c.program_id == _p)


# -- output ---------------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, Any]) -> None:
    print(f"\nloyaltykit ledger benchmark: backend={results['backend']}"
          f"{' (quick)' if results['quick'] else ''}  [{results['environment']['database']}]")
    ops = results["operations"]
    if ops:
        print(f"\n{'operation':<14}{'loyaltykit/s':>14}{'baseline/s':>13}{'extra us/op':>13}"
              f"{'ratio':>9}{'cpu':>8}{'target':>9}  verdict")
        for name, r in ops.items():
            target = "-" if r["target_max_ratio"] is None else f"<={r['target_max_ratio']}x"
            ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            cpu = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}x"
            print(f"{name:<14}{_num(r['loyaltykit_ops_per_s']):>14}"
                  f"{_num(r['baseline_ops_per_s']):>13}{_num(r['extra_us_per_op']):>13}"
                  f"{ratio:>9}{cpu:>8}{target:>9}  {_verdict(r['pass'])}")
    b = results.get("balance")
    if b:
        print(f"\nbalance read   {b['history_transactions']:,} tx: "
              f"{_num(b['reads_per_s_large'])} reads/s   {b['small_history_transactions']:,} tx: "
              f"{_num(b['reads_per_s_small'])} reads/s   ratio {b['ratio']:.2f}x "
              f"(<= {b['target_max_ratio']}x)  {_verdict(b['pass'])}")
    k = results.get("bulk_earn")
    if k:
        line = (f"\nbulk earn      {k['members']:,} members: loyaltykit "
                f"{_num(k['loyaltykit_awards_per_s'])} awards/s")
        if k["raw_awards_per_s"] is not None:
            line += (f"   raw executemany {_num(k['raw_awards_per_s'])} awards/s   "
                     f"(+{_num(k['extra_us_per_award'], 1)} us/award)   "
                     f"{k['percent_of_raw']:.0f}% of raw (>= {k['target_min_percent']:.0f}%)")
        print(f"{line}  {_verdict(k['pass'])}")
    print(f"\ntargets: {len(results['targets']['passed'])} PASS, "
          f"{len(results['targets']['missed'])} MISS"
          + (f" ({', '.join(results['targets']['missed'])})" if results["targets"]["missed"]
             else ""))
    print(json.dumps(results, separators=(",", ":"), default=str))


# -- backends -------------------------------------------------------------------------------


@contextlib.contextmanager
def open_backend(backend: str, url: str | None
                 ) -> Iterator[tuple[Storage, sa.Engine | None, str, bool]]:
    """Yield (storage, engine or None, description, owns the database)."""
    if backend == "memory":
        yield MemoryStorage(), None, "in-memory", True
        return
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="loyaltykit-bench-") as directory:
            engine = create_engine(f"sqlite:///{directory}/ledger.sqlite")
            storage = SQLStorage(engine)
            storage.upgrade()
            try:
                yield storage, engine, f"SQLite {sqlite3.sqlite_version} file (WAL)", True
            finally:
                engine.dispose()
        return
    with postgresql_url(url) as (url, throwaway):
        engine = create_engine(url)
        storage = SQLStorage(engine)
        storage.upgrade()
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        where = "throwaway server, Unix socket" if throwaway else "given server"
        try:
            yield storage, engine, f"PostgreSQL {version} ({where})", throwaway
        finally:
            engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    global PROFILER
    parser = backend_parser(__doc__)
    parser.add_argument("--only", help="comma-separated sections of: " + ", ".join(SECTIONS))
    parser.add_argument("--rounds", type=int, help="rounds per side (default 7, quick 2)")
    parser.add_argument("--profile", metavar="FILE",
                        help="write a cProfile of loyaltykit's timed calls to FILE "
                             "(slows loyaltykit's side: ratios are then meaningless)")
    args = parser.parse_args(argv)
    only = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(","))
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    sizes = QUICK if args.quick else FULL
    if args.profile:
        PROFILER = cProfile.Profile()

    with open_backend(args.backend, args.url) as (storage, engine, database, owned):
        bench = Bench(args.backend, storage, engine, sizes, args.rounds)
        results: dict[str, Any] = {
            "backend": args.backend,
            "quick": args.quick,
            "environment": {
                "database": database,
                "python": platform.python_version(),
                "sqlalchemy": sa.__version__,
                "cpus": os.cpu_count(),
                "profiled": bool(args.profile),
            },
            "sizes": {**sizes, "rounds": bench.rounds},
            "operations": {},
            "balance": None,
            "bulk_earn": None,
        }
        started = time.perf_counter()
        try:
            for name in ("earn", "spend", "hold_capture"):
                if name in only:
                    results["operations"][name] = bench.operation(name)
                    print(f"  {name} done ({time.perf_counter() - started:.0f}s)",
                          file=sys.stderr)
            if "balance" in only:
                results["balance"] = bench.balance()
                print(f"  balance done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            if "bulk_earn" in only:
                results["bulk_earn"] = bench.bulk_earn()
                print(f"  bulk_earn done ({time.perf_counter() - started:.0f}s)",
                      file=sys.stderr)
        finally:
            if not owned:
                cleaned = bench.cleanup()
                print(f"  cleanup done ({cleaned['seconds'] if cleaned else 0:.1f}s)",
                      file=sys.stderr)
        results["seconds"] = time.perf_counter() - started

    checks = {f"{name}_ratio": r["pass"] for name, r in results["operations"].items()}
    if results["balance"]:
        checks["balance_ratio"] = results["balance"]["pass"]
    if results["bulk_earn"]:
        checks["bulk_earn_percent"] = results["bulk_earn"]["pass"]
    results["targets"] = {
        "passed": sorted(k for k, v in checks.items() if v is True),
        "missed": sorted(k for k, v in checks.items() if v is False),
    }
    if PROFILER is not None:
        PROFILER.dump_stats(args.profile)
        print(f"  profile written to {args.profile}", file=sys.stderr)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
