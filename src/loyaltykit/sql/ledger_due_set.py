"""The ledger's due work posted by SQLite itself, for batches of plain wallets.

:meth:`SQLLedgerDueSet.post_due_set` answers a :class:`~loyaltykit.storage.ledger_due_set.DueSet`:
the batch's due transactions are worked out into temporary tables with a few
``INSERT ... SELECT`` (the stale holds to release, the matured pending lots to
activate, the lots past their expiry with unheld points) into one table of the
batch's transactions in posting order, each row with all its writes need; their ids
(drawn in Python in one call, in the per-member path's order) bound as one value and
cut out by the transaction's number; and every table written from them with one
statement: the transactions, postings and lot movements (``INSERT ... SELECT``), the
holds, lots and accounts (``UPDATE ... FROM``) and the outbox events. No Python per
row, and a batch is a fixed number of statements whatever its size.

It is the rows :mod:`loyaltykit._due_bulk` builds (and ``catch_up`` posts) for the
same wallets, row for row, where each wallet is *plain*: no debt, no wallet with
nothing to post, every stale hold's points going back to an open lot of the wallet
that does not expire by the release, no pending lot expiring by ``until``, expiry
not counted from the activation (the caller's check). Then a wallet's events do not
depend on one another (a release only lowers its lots' held points before they
expire) and each is one row of a join. A batch with any other wallet is left whole
to the Python path (nothing written, no id drawn). The contract
:mod:`loyaltykit.testing.contract.ledger_due_bulk` compares the two.

SQLite only: PostgreSQL's batches are already written with one statement per table
from column arrays, and there due work is as fast as hand-written SQL.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import sqlalchemy as sa

from loyaltykit._errors import StorageError
from loyaltykit._outbox import EVENT_VERSION
from loyaltykit.sql._batch_cache import batch_cache
from loyaltykit.sql._errors import translated
from loyaltykit.sql._shared import Store
from loyaltykit.sql.outbox import NEXT_SEQ
from loyaltykit.sql.schema import transactions
from loyaltykit.storage.ledger_due_set import DueSet

__all__ = ["SQLLedgerDueSet"]

_TEMP = ("_lk_due_w", "_lk_due_rel", "_lk_due_back", "_lk_due_lot", "_lk_due_tx")
_TS = transactions.c.occurred_at.type
_PARAM = re.compile(r":(\w+)")


@functools.cache
def _statement(sql: str) -> tuple[sa.TextClause, frozenset[str]]:
    """The statement of one of this module's SQL texts, its instants typed (so they
    are bound as the schema stores them), and the names it binds: made once, not per
    batch."""
    names = frozenset(_PARAM.findall(sql))
    return sa.text(sql).bindparams(
        *(sa.bindparam(k, type_=_TS) for k in ("t", "now") if k in names)), names


def _uuid_text(x: str) -> str:
    """SQL for str(uuid) of a stored id (32 hex digits on SQLite)."""
    return (f"(substr({x}, 1, 8) || '-' || substr({x}, 9, 4) || '-' || substr({x}, 13, 4)"
            f" || '-' || substr({x}, 17, 4) || '-' || substr({x}, 21, 12))")


# the batch's wallets, in posting order (k)
_CREATE_W = """CREATE TEMP TABLE IF NOT EXISTS _lk_due_w (
    k INTEGER PRIMARY KEY, member_id TEXT NOT NULL,
    wallet TEXT NOT NULL, UNIQUE (member_id, wallet))"""
# The stored tables are read by the batch's member range (:lo..:hi) and joined to the
# wallets (CROSS JOIN: in that order). Looked up wallet by wallet instead, SQLite
# builds a Bloom filter over the whole stored table (every lot, hold or account of
# the database) before each statement: a batch cost grew with the database, the run
# with its square.
_INSERT_W = "INSERT INTO _lk_due_w (k, member_id, wallet) VALUES (?, ?, ?)"
# the stale holds: released at their expiry; ``back`` the points their allocations
# give back; ``bad`` if one goes to a lot that is not open in the wallet or expired by
# then (the points would expire in the release: catch_up's case)
_CREATE_REL = """CREATE TEMP TABLE IF NOT EXISTS _lk_due_rel (k, member_id, wallet, item,
    at, points, back, bad)"""
_REL = """INSERT INTO _lk_due_rel
    SELECT w.k, h.member_id, h.wallet, h.id AS item, h.expires_at AS at, h.points,
           COALESCE(SUM(a.points), 0) AS back,
           COALESCE(MAX(a.hold_id IS NOT NULL
                        AND (l.id IS NULL OR l.expires_at <= h.expires_at)), 0) AS bad
    FROM lk_holds h CROSS JOIN _lk_due_w w
      ON w.member_id = h.member_id AND w.wallet = h.wallet
    LEFT JOIN lk_hold_allocations a ON a.hold_id = h.id
    LEFT JOIN lk_lots l ON l.id = a.lot_id AND l.program_id = h.program_id
     AND l.member_id = h.member_id AND l.wallet = h.wallet
     AND (l.remaining > 0 OR l.pending)
    WHERE h.program_id = :p AND h.member_id >= :lo AND h.member_id <= :hi
      AND h.status = 'open' AND h.expires_at <= :t
    GROUP BY h.id"""
# the points the releases give back, by lot (a key to join the lots on)
_CREATE_BACK = """CREATE TEMP TABLE IF NOT EXISTS _lk_due_back (lot_id TEXT PRIMARY KEY,
    points INTEGER NOT NULL)"""
_BACK = """INSERT INTO _lk_due_back (lot_id, points)
    SELECT a.lot_id, SUM(a.points) FROM _lk_due_rel r
    JOIN lk_hold_allocations a ON a.hold_id = r.item GROUP BY a.lot_id"""
# the open lots (the ones catch_up loads), their held points after the releases, and
# what falls due: ``act`` activation, ``exp`` expiry of the unheld points; ``bad`` a
# lot whose events would depend on each other (a pending lot expiring by ``until``)
_CREATE_LOT = """CREATE TEMP TABLE IF NOT EXISTS _lk_due_lot (k, member_id, wallet, item,
    earn_id, remaining, pending, activates_at, expires_at, held_before, held, act, exp,
    bad)"""
_LOT = """INSERT INTO _lk_due_lot
    SELECT d.*,
           d.pending AND d.activates_at IS NOT NULL AND d.activates_at <= :t AS act,
           NOT d.pending AND d.expires_at <= :t AND d.remaining - d.held > 0 AS exp,
           d.pending AND d.expires_at <= :t AS bad
    FROM (SELECT w.k, l.member_id, l.wallet, l.id AS item, l.transaction_id AS earn_id,
                 l.remaining, l.pending, l.activates_at, l.expires_at,
                 l.held AS held_before, l.held - COALESCE(b.points, 0) AS held
          FROM lk_lots l CROSS JOIN _lk_due_w w
            ON w.member_id = l.member_id AND w.wallet = l.wallet
          LEFT JOIN _lk_due_back b ON b.lot_id = l.id
          WHERE l.program_id = :p AND l.member_id >= :lo AND l.member_id <= :hi
            AND (l.remaining > 0 OR l.pending)
            -- only the lots something happens to (or that make the batch not plain)
            AND (l.activates_at <= :t OR l.expires_at <= :t OR b.lot_id IS NOT NULL)) d"""
_META = f"""CASE t.kind WHEN 'release'
        THEN json_object('hold_id', {_uuid_text("t.item")}, 'cause', 'released')
        ELSE json_object('lot_id', {_uuid_text("t.item")},
                         'earn_id', {_uuid_text("t.earn_id")}) END"""
_REASON = "CASE t.kind WHEN 'release' THEN 'hold expired' ELSE '' END"
# The batch's transactions, one row each, in posting order (n): wallet by wallet, each
# wallet's by instant, then release < activation < expiry, then the item's id
# (catch_up's order). n is the rowid, numbered in the order the rows are inserted
# (one INSERT: consecutive rowids, from 1 in the emptied table), so every later
# statement scans them in that order without a sort. Everything the writes need is
# here, worked out once: the member and wallet (no join to the wallets), the deltas of
# the member's buckets (available, pending, held) and of expired, the metadata, and
# the balance after the transaction for its outbox event (the account's before, plus
# the wallet's deltas so far).
_CREATE_TX = """CREATE TEMP TABLE IF NOT EXISTS _lk_due_tx (
    n INTEGER PRIMARY KEY, k INTEGER NOT NULL, member_id TEXT NOT NULL,
    wallet TEXT NOT NULL, item TEXT NOT NULL, at TEXT NOT NULL, ord INTEGER NOT NULL,
    kind TEXT NOT NULL, earn_id TEXT, points INTEGER NOT NULL, da INTEGER NOT NULL,
    dp INTEGER NOT NULL, dh INTEGER NOT NULL, dx INTEGER NOT NULL, ra INTEGER NOT NULL,
    rp INTEGER NOT NULL, rh INTEGER NOT NULL, meta TEXT NOT NULL)"""
_TX = f"""INSERT INTO _lk_due_tx (k, member_id, wallet, item, at, ord, kind, earn_id,
        points, da, dp, dh, dx, ra, rp, rh, meta)
    SELECT t.*, a.available + SUM(t.da) OVER win, a.pending + SUM(t.dp) OVER win,
           a.held + SUM(t.dh) OVER win, {_META}
    FROM (SELECT k, member_id, wallet, item, at, 0 AS ord, 'release' AS kind,
                 NULL AS earn_id, points, back AS da, 0 AS dp, -points AS dh, 0 AS dx
          FROM _lk_due_rel
          UNION ALL
          SELECT k, member_id, wallet, item, activates_at, 1, 'activate', earn_id,
                 remaining, remaining, -remaining, 0, 0 FROM _lk_due_lot WHERE act
          UNION ALL
          SELECT k, member_id, wallet, item, expires_at, 2, 'expire', earn_id,
                 remaining - held, held - remaining, 0, 0, remaining - held
          FROM _lk_due_lot WHERE exp) t
    JOIN lk_accounts a
      ON a.program_id = :p AND a.member_id = t.member_id AND a.wallet = t.wallet
    WINDOW win AS (PARTITION BY t.k ORDER BY t.at, t.ord, t.item
                   ROWS UNBOUNDED PRECEDING)
    ORDER BY t.k, t.at, t.ord, t.item"""
# a wallet the batch may not post (debt, a dependent event, nothing to post: a wallet
# without an account has no transaction), the number of transactions, the first one's
# n, and the report's counts by kind
_CHECK = """SELECT
    (SELECT COUNT(*) FROM _lk_due_rel WHERE bad)
    + (SELECT COUNT(*) FROM _lk_due_lot WHERE bad)
    + (SELECT COUNT(*) FROM lk_accounts a CROSS JOIN _lk_due_w w
         ON w.member_id = a.member_id AND w.wallet = a.wallet
       WHERE a.program_id = :p AND a.member_id >= :lo AND a.member_id <= :hi
         AND a.debt != 0)
    + (SELECT COUNT(*) FROM _lk_due_w) - COUNT(DISTINCT k),
    COUNT(*), MIN(n),
    TOTAL(kind = 'release'), TOTAL(CASE kind WHEN 'release' THEN points END),
    TOTAL(kind = 'activate'), TOTAL(CASE kind WHEN 'activate' THEN points END),
    TOTAL(kind = 'expire'), TOTAL(CASE kind WHEN 'expire' THEN points END)
    FROM _lk_due_tx"""
# The ids drawn in Python come in as one parameter, :ids, a blob of each id's 32 hex
# digits (as stored) one after the other in the order drawn: a transaction's, then
# (with events) its event's. An id is cut out of it by the transaction's number
# counted from the batch's first (:first; substr of a blob: by bytes, no scan): one
# bound value, not a table of ids filled row by row and joined in each statement, and
# no Python text per id.
_ID_AT = "(t.n - :first) * :stride + 1"
_TX_ID = f"CAST(substr(:ids, {_ID_AT}, 32) AS TEXT)"
_EVENT_ID = f"CAST(substr(:ids, {_ID_AT} + 32, 32) AS TEXT)"
# the transaction id's text for its event (str(uuid)): cut from :texts, the texts of
# the transactions' ids (36 bytes each) that Python builds from :ids a column at a
# time (_id_texts): formatted in SQL, five cuts and four concatenations a row, a
# fifth of the statement
_TX_TEXT = "CAST(substr(:texts, (t.n - :first) * 36 + 1, 36) AS TEXT)"
_INS_TX = f"""INSERT INTO lk_transactions (id, program_id, member_id, wallet, kind,
        occurred_at, recorded_at, idempotency_key, reason, metadata, reverses_id)
    SELECT {_TX_ID}, :p, t.member_id, t.wallet, t.kind, t.at, :now, NULL, {_REASON},
           t.meta, NULL
    FROM _lk_due_tx t"""
# The legs that move points, in DueBulk's order and positions, a zero leg left out:
# each transaction's first leg (position 0) and its second (1): a release's available
# points given back (if any), then its held points; an activation's pending, then its
# available points; an expiry's available, then its expired points.
_INS_POSTING = f"""INSERT INTO lk_postings (transaction_id, account, program_id,
        member_id, wallet, amount, position)
    SELECT {_TX_ID}, CASE t.kind WHEN 'release'
                         THEN CASE WHEN t.da != 0 THEN 'available' ELSE 'held' END
                         WHEN 'activate' THEN 'pending' ELSE 'available' END,
           :p, t.member_id, t.wallet,
           CASE WHEN t.kind = 'release' AND t.da != 0 THEN t.da ELSE -t.points END, 0
    FROM _lk_due_tx t WHERE t.points != 0 OR (t.kind = 'release' AND t.da != 0)
    UNION ALL
    SELECT {_TX_ID}, CASE t.kind WHEN 'release' THEN 'held' WHEN 'activate' THEN 'available'
                         ELSE 'expired' END,
           :p, t.member_id, t.wallet,
           CASE t.kind WHEN 'release' THEN -t.points ELSE t.points END, 1
    FROM _lk_due_tx t WHERE t.points != 0 AND (t.kind != 'release' OR t.da != 0)"""
_INS_MOVEMENT = f"""INSERT INTO lk_lot_movements (transaction_id, lot_id, program_id,
        member_id, delta, position)
    SELECT {_TX_ID}, t.item, :p, t.member_id, -t.points, 0
    FROM _lk_due_tx t WHERE t.kind = 'expire'"""
_UPD_HOLD = f"""UPDATE lk_holds SET status = 'released', captured = 0,
        resolved_by = {_TX_ID}
    FROM _lk_due_tx t
    WHERE t.kind = 'release' AND lk_holds.id = t.item"""
# the lots an event touched: held points given back, expired, activated
_UPD_LOT = """UPDATE lk_lots SET held = d.held,
        remaining = CASE WHEN d.exp THEN d.held ELSE lk_lots.remaining END,
        pending = CASE WHEN d.act THEN 0 ELSE lk_lots.pending END,
        activates_at = CASE WHEN d.act THEN NULL ELSE lk_lots.activates_at END
    FROM _lk_due_lot d
    WHERE lk_lots.id = d.item AND (d.act OR d.exp OR d.held != d.held_before)"""
# the running totals, the version (one per transaction) and the next due instant
# (the earliest activation to come, expiry of unheld points, open hold's expiry; a
# lot's activation and expiry from one pass over the wallet's lots, not two: 2-argument
# min() is NULL if either is)
_UPD_ACCOUNT = """UPDATE lk_accounts SET
        available = lk_accounts.available + d.da, pending = lk_accounts.pending + d.dp,
        held = lk_accounts.held + d.dh, expired = lk_accounts.expired + d.dx,
        version = lk_accounts.version + d.n,
        next_due_at = (SELECT MIN(x) FROM (
            SELECT COALESCE(min(l.a, l.e), l.a, l.e) AS x FROM (
                SELECT CASE WHEN l.pending THEN l.activates_at END AS a,
                       CASE WHEN l.remaining > l.held THEN l.expires_at END AS e
                FROM lk_lots l
                WHERE l.program_id = :p AND l.member_id = d.member_id
                  AND l.wallet = d.wallet AND (l.pending OR l.remaining > l.held)) l
            UNION ALL
            SELECT h.expires_at FROM lk_holds h
            WHERE h.program_id = :p AND h.member_id = d.member_id AND h.wallet = d.wallet
              AND h.status = 'open'))
    FROM (SELECT t.member_id, t.wallet, SUM(t.da) AS da, SUM(t.dp) AS dp,
                 SUM(t.dh) AS dh, SUM(t.dx) AS dx, COUNT(*) AS n
          FROM _lk_due_tx t GROUP BY t.k) d
    WHERE lk_accounts.program_id = :p AND lk_accounts.member_id = d.member_id
      AND lk_accounts.wallet = d.wallet"""
# the outbox events: the payload EventService._due_posted builds, key for key (no debt
# in a plain wallet: shown available is available, total the sum), as the text
# json_object would make of it (compact, keys in this order), written by one printf:
# no JSON value built and copied per key. Only the wallet is a text of the caller's
# (json_quote escapes it as json_object would); the kinds, the reason and the id are
# known texts, the numbers integers, the metadata the transaction's own JSON text.
# (No colon before a digit in the SQL: a text statement would read it as a parameter.)
_CHANGES = """CASE t.kind
        WHEN 'release' THEN CASE
            WHEN t.da != 0 AND t.points != 0
                THEN printf('{"available":%d,"held":%d}', t.da, -t.points)
            WHEN t.da != 0 THEN printf('{"available":%d}', t.da)
            WHEN t.points != 0 THEN printf('{"held":%d}', -t.points)
            ELSE '{}' END
        WHEN 'activate' THEN CASE WHEN t.points != 0
            THEN printf('{"pending":%d,"available":%d}', -t.points, t.points)
            ELSE '{}' END
        ELSE printf('{"available":%d}', -t.points) END"""
_PAYLOAD = ('{"transaction_id":"%s","kind":"%s","wallet":%s,"points":%d,"changes":%s,'
            '"balance":{"available":%d,"pending":%d,"held":%d,"debt":%d,"total":%d},'
            '"reason":"%s","metadata":%s}')
_INS_OUTBOX = f"""INSERT INTO lk_outbox (program_id, stream, tx, seq, id, type, version,
        member_id, occurred_at, recorded_at, payload)
    SELECT :p, 0, 0, {NEXT_SEQ} + row_number() OVER (ORDER BY t.n), {_EVENT_ID},
           CASE t.kind WHEN 'release' THEN :ev_release WHEN 'activate' THEN :ev_activate
                ELSE :ev_expire END,
           :version, t.member_id, t.at, :now,
           printf('{_PAYLOAD}', {_TX_TEXT}, t.kind, json_quote(t.wallet),
                  t.da + t.dp + t.dh, {_CHANGES}, t.ra, t.rp, t.rh, 0, t.ra + t.rp + t.rh,
                  {_REASON}, t.meta)
    FROM _lk_due_tx t ORDER BY t.n"""
_CREATES = (_CREATE_W, _CREATE_REL, _CREATE_BACK, _CREATE_LOT, _CREATE_TX)
_NAMES = (("released_holds", "released_points"), ("activated_lots", "activated_points"),
          ("expired_lots", "expired_points"))


class SQLLedgerDueSet(Store):
    """Due work posted by SQLite itself (see the module docstring). Mixed into
    :class:`~loyaltykit.sql.ledger.SQLLedgerStore`."""

    @translated
    def post_due_set(self, request: DueSet) -> dict[str, int] | None:
        """Post the batch's due work set-based and return its counts; None (nothing
        written, no id drawn) on PostgreSQL or when a wallet is not plain."""
        conn = self._c()
        if conn.dialect.name != "sqlite" or not request.wallets:
            return None
        # the batch's dirty pages kept in memory until the commit, not spilled into the
        # WAL mid-batch and written again (sql/_batch_cache.py)
        with batch_cache(conn, len(request.wallets)):
            return self._post(conn, request)

    def _post(self, conn: sa.Connection, request: DueSet) -> dict[str, int] | None:
        """:meth:`post_due_set` on SQLite, for a batch with wallets."""
        members = [m for m, _ in request.wallets]
        params: dict[str, Any] = {"p": self.program_id, "t": request.until,
                                  "now": request.recorded_at, "lo": min(members),
                                  "hi": max(members)}

        def run(sql: str) -> Any:  # a CursorResult
            stmt, names = _statement(sql)
            return conn.execute(stmt, {k: v for k, v in params.items() if k in names})

        _prepare(conn)
        conn.exec_driver_sql(_INSERT_W, [(k, m, w) for k, (m, w)
                                         in enumerate(request.wallets)])
        run(_REL)
        run(_BACK)
        run(_LOT)
        run(_TX)
        row = run(_CHECK).one()
        not_plain, n, first = int(row[0]), int(row[1]), row[2]
        if not_plain:
            _empty(conn)
            return None
        types = request.event_types
        events = types is not None
        params.update(ids=request.new_ids_hex(n * (2 if events else 1)),
                      stride=64 if events else 32, first=first)
        for sql in (_INS_TX, _INS_POSTING, _INS_MOVEMENT, _UPD_HOLD, _UPD_LOT):
            run(sql)
        if types is not None:
            params.update(ev_release=types["release"], ev_activate=types["activate"],
                          ev_expire=types["expire"], version=EVENT_VERSION,
                          texts=_id_texts(params["ids"], 64))
            run(_INS_OUTBOX)
        accounts = run(_UPD_ACCOUNT).rowcount
        if accounts != len(request.wallets):
            raise StorageError(f"update of accounts found {accounts} of "
                               f"{len(request.wallets)} rows")
        counts: dict[str, int] = {}
        for (lots_name, points_name), found, points in zip(
                _NAMES, row[3::2], row[4::2], strict=True):
            if found:  # (a kind with no transaction is not counted, as in the Python path)
                counts[lots_name], counts[points_name] = int(found), int(points)
        _empty(conn)
        return counts


def _id_texts(ids: bytes, stride: int) -> bytes:
    """str(uuid) of the first id of each ``stride`` bytes of ``ids`` (32 hex digits
    an id), 36 bytes each, one after the other: built a digit column at a time (32
    slice copies whatever the number of ids), not a text per id."""
    n = len(ids) // stride
    made = bytearray(b"-" * (36 * n))
    digit = 0
    for at, size in ((0, 8), (9, 4), (14, 4), (19, 4), (24, 12)):
        for j in range(size):
            made[at + j::36] = ids[digit + j::stride]
        digit += size
    return bytes(made)


def _prepare(conn: sa.Connection) -> None:
    """The batch's temporary tables, empty. Made once per connection and emptied after
    each batch, not dropped and made again: each CREATE or DROP changed the
    connection's schema, and SQLite prepared every statement of the next batch anew."""
    for create in _CREATES:  # (made in a transaction rolled back: made again here)
        conn.exec_driver_sql(create)
    _empty(conn)  # (what a failed batch wrote is rolled back: a no-op, for safety)


def _empty(conn: sa.Connection) -> None:
    """Empty the batch's temporary tables (kept for the connection's next batch)."""
    for name in _TEMP:
        conn.exec_driver_sql(f"DELETE FROM temp.{name}")
