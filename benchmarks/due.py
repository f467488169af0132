#!/usr/bin/env python
"""Benchmark a nightly run of due work over a large program against hand-written SQL.

Run as a plain script::

    python benchmarks/due.py [--backend memory|sqlite|postgresql] [--members N]
                             [--workers W] [--url URL] [--quick]

The program: lots expire 365 days after their earn, earned points are pending for 10
days, tiers member / silver (600 points in a calendar year) / gold (2,000), Europe/
Berlin. Every member has the same history, built once through the library for a
template member and cloned row for row (fresh ids, keys and member keys) by INSERT ...
SELECT over a series of member numbers, a few dozen statements whatever the size
(seeding is not timed):

* 2025-12-30: 700 points (silver; they expire on 2026-12-30);
* 2026-03-01: 250 points (expire 2027-03-01); 2026-12-21: 200 points, pending until
  2026-12-31; 2026-12-21 10:05: a hold of 50 points for an hour, never captured.

At 2027-01-01 01:00 (Berlin) each member has a stale hold to release, a lot to expire,
a pending lot to activate and a tier evaluation (450 points in 2026: silver drops to
member). Timed in the same run, on identical seeded copies (two programs of one
database):

* ``seconds``: ``Loyalty.run_due(workers=W)`` (the ledger's due work by member ranges,
  then the tier evaluation; ``--workers``, default the machine's CPUs on PostgreSQL, 1
  elsewhere);
* ``hand_sql_seconds``: hand-written set-based SQL doing the same writes: INSERT ...
  SELECT of the release, expiry and activation transactions, their postings and lot
  movements and their outbox events (the library's documents: each event's payload
  with the transaction's changes, the wallet's balance after it, reason and metadata;
  the ``tier.changed`` payload with the tier's benefits); UPDATE of the holds, the lots
  and the accounts (running totals, next due instant, version); the tier states and
  their history. One
  transaction, a few statements, no Python per row. ``ratio`` = seconds /
  hand_sql_seconds (target <= 1.5). On ``memory`` the hand-written SQL runs on an
  in-memory SQLite database seeded the same way (the floor of set-based SQL there).

Beside them, reported and not judged: ``cpu_seconds`` and ``hand_sql_cpu_seconds``, this
process's CPU time (user and system) for each side, and their ``cpu_ratio``. Wall time
adds what a side waited for: its fsyncs and WAL checkpoints (due work commits a unit of
work per batch, the hand-written SQL once) and, on a busy machine, the disk's other
writers and a free core; at 20,000 members on SQLite here the hand-written side's CPU
time stayed within 5% across runs while its wall time moved by 40%. On PostgreSQL the
server's CPU time is in neither figure.

The benchmark checks both sides wrote the same: the counts, every member's balance
and tier, and (SQL) the rows per table and, row for row, what the run wrote to the
tables that hold documents (outbox, transactions, tier history: every column but the
positions, ids compared as ids), so neither side does less work than the other. For
``postgresql`` the server is ``--url``, else ``LOYALTYKIT_BENCH_POSTGRESQL_URL``, else a
throwaway server; a given server gets rows under program ids of its own, which are left
in place (use a scratch database).
The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from _shared import analyse, ledger_helpers

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import (  # noqa: E402
    ExpiryPolicy,
    LedgerPolicy,
    Loyalty,
    Money,
    PendingPolicy,
    Program,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit.sql import SQLStorage, schema  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
TARGET = 1.5
RUN_AT = dt.datetime(2027, 1, 1, 1, tzinfo=BERLIN)
HOLD_TTL = dt.timedelta(hours=1)
DEFAULT_MEMBERS = {"postgresql": 1_000_000, "sqlite": 100_000, "memory": 100_000}
QUICK_MEMBERS = 60


def program(program_id: str) -> Program:
    return Program(
        id=program_id, time_zone="Europe/Berlin", currency="EUR",
        point_value=Money("0.01", "EUR"),
        ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365), pending=PendingPolicy(days=10)),
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 600), Tier("gold", 2000)),
                         notice_days=0))


def history(loyalty: Loyalty, clock: TestClock, member_ids: list[str]) -> None:
    """Every member's history (see the module docstring), step by step."""
    steps: list[tuple[dt.datetime, Any]] = [
        (dt.datetime(2025, 12, 30, 10, tzinfo=BERLIN),
         lambda m: loyalty.enrol(m)),
        (dt.datetime(2025, 12, 30, 10, tzinfo=BERLIN),
         lambda m: loyalty.earn(m, 700, key=f"a-{m}", activates_at=clock.now())),
        (dt.datetime(2026, 3, 1, 10, tzinfo=BERLIN),
         lambda m: loyalty.earn(m, 250, key=f"c-{m}", activates_at=clock.now())),
        (dt.datetime(2026, 12, 21, 10, tzinfo=BERLIN),
         lambda m: loyalty.earn(m, 200, key=f"b-{m}")),
        (dt.datetime(2026, 12, 21, 10, 5, tzinfo=BERLIN),
         lambda m: loyalty.hold(m, 50, key=f"h-{m}", ttl=HOLD_TTL)),
    ]
    for at, step in steps:
        clock.set(at)
        for m in member_ids:
            step(m)


# -- seeding SQL: a template member's rows, cloned -------------------------------------


def _member_tables() -> list[sa.Table]:
    """The tables holding a program's member rows, parents first."""
    return [t for t in schema.metadata.sorted_tables
            if "program_id" in t.c and t.name not in ("lk_programs", "lk_program_versions")]


def template_rows(engine: sa.Engine, template: str) -> dict[str, list[dict[str, Any]]]:
    """The rows the library wrote for one template member (program ``template``)."""
    storage = SQLStorage(engine)
    clock = TestClock(dt.datetime(2025, 12, 30, 10, tzinfo=BERLIN))
    history(Loyalty(program(template), storage, clock=clock), clock, ["t"])
    rows: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for table in _member_tables():
            found = [dict(r._mapping) for r in conn.execute(
                sa.select(table).where(table.c.program_id == template))]
            if found:
                rows[table.name] = found
    return rows


def clone(engine: sa.Engine, program_id: str, salt: int, rows: dict[str, list[dict[str, Any]]],
          members: int) -> None:
    """Insert ``members`` copies of the template's rows under ``program_id``: one INSERT
    ... SELECT per template row over a series of member numbers (``generate_series`` on
    PostgreSQL, a recursive CTE on SQLite), so seeding a million members is a few dozen
    statements. Copy ``i`` gets fresh ids (``{salt:04x}{i:024x}{n:04x}``, n numbering the
    template's ids), member key ``{salt:02x}{i:030x}``, shop id ``m{i:07d}`` and keys
    ``<key>#i``; a text value equal to a template id or key (also inside a JSON value)
    is replaced the same way, anything else is copied as it is. On PostgreSQL the
    foreign key triggers are skipped for the seed when the role may (a superuser, as on
    the throwaway server): that halves its time (20,000 members: 39 s -> 19 s here)."""
    Loyalty(program(program_id), SQLStorage(engine)).register()
    pg = engine.dialect.name == "postgresql"
    ids: dict[uuid.UUID, int] = {}
    for table_rows in rows.values():
        for row in table_rows:
            for value in row.values():
                if isinstance(value, uuid.UUID):
                    ids.setdefault(value, len(ids))
    template_key = rows["lk_members"][0]["member_id"]
    texts = {str(u): i for u, i in ids.items()}

    def hex_i(width: int) -> str:
        return (f"lpad(to_hex(g.i), {width}, '0')" if pg
                else f"printf('%0{width}x', g.i)")

    def uuid_hex(n: int) -> str:  # 32 hex digits of copy i's id number n
        return f"'{salt:04x}' || {hex_i(24)} || '{n:04x}'"

    def uuid_text(n: int) -> str:  # the same id as str(uuid) (with hyphens)
        x = hex_i(24)
        return (f"'{salt:04x}' || substr({x}, 1, 4) || '-' || substr({x}, 5, 4) || '-' || "
                f"substr({x}, 9, 4) || '-' || substr({x}, 13, 4) || '-' || substr({x}, 17, 8)"
                f" || '{n:04x}'")

    key_expr = f"'{salt:02x}' || {hex_i(30)}"
    number = "CAST(g.i AS TEXT)"

    def json_expr(value: Any, column: sa.Column[Any]) -> Any:
        text = json.dumps(value) if pg else column.type.bind_processor(  # type: ignore
            engine.dialect)(value)
        expr = f"'{_q(text)}'"
        for found, n in texts.items():
            if found in text:
                expr = f"replace({expr}, '\"{found}\"', '\"' || {uuid_text(n)} || '\"')"
        if f'"{template_key}"' in text:
            expr = f"replace({expr}, '\"{template_key}\"', '\"' || {key_expr} || '\"')"
        return sa.literal_column(f"CAST({expr} AS JSON)" if pg else expr)

    def column_expr(table: sa.Table, name: str, value: Any, r: int) -> Any:
        column = table.c[name]
        if name == "program_id":
            return sa.literal(program_id, column.type)
        if table.name == "lk_member_ids" and name == "external_id":
            return sa.literal_column("'m' || " + (f"lpad({number}, 7, '0')" if pg
                                                   else "printf('%07d', g.i)"))
        if table.name == "lk_outbox" and name == "id":
            return sa.literal_column(_as_uuid(uuid_hex(0xFF00 | r), pg))
        if table.name == "lk_outbox" and name == "seq":  # a copy's events after the last's
            return sa.literal_column(f"(g.i * {OUTBOX_ROWS} + {r + 1})")
        if table.name == "lk_lookups" and name == "value" and _uuid_of(value) in ids:
            # a transaction's or hold's claim: the copy's id, as its hex digits
            return sa.literal_column(uuid_hex(ids[_uuid_of(value)]))
        if table.name == "lk_tier_history" and name == "id":  # (its line, per copy)
            return sa.literal_column(_as_uuid(uuid_hex(0xFE00 | r), pg))
        if (table.name == "lk_idempotency_keys" and name == "key") or (
                table.name == "lk_transactions" and name == "idempotency_key"
                and value is not None):
            return sa.literal_column(f"'{_q(value)}' || '#' || {number}")
        if isinstance(value, uuid.UUID):
            return sa.literal_column(_as_uuid(uuid_hex(ids[value]), pg))
        if isinstance(value, str) and value == template_key:
            return sa.literal_column(key_expr)
        if isinstance(value, str) and value in texts:
            return sa.literal_column(uuid_text(texts[value]))
        if isinstance(value, dict | list):
            return json_expr(value, column)
        return sa.literal(value, column.type)

    series = (f"generate_series(0, {members - 1}) AS g(i)" if pg else
              f"(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s "
              f"WHERE i < {members - 1}) SELECT i FROM s) AS g")
    with engine.begin() as conn:
        if pg:  # the copies of valid rows need no foreign key checks (superuser only)
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            except sa.exc.DBAPIError:
                pass
        for table in _member_tables():
            for r, row in enumerate(rows.get(table.name, ())):
                names = [c for c in row if not (
                    (c == "seq" and table.name != "lk_outbox")
                    or (c == "id" and table.name in ("lk_tier_history", "lk_outbox")))]
                if table.name in ("lk_outbox", "lk_tier_history"):
                    names.append("id")
                select = sa.select(*[column_expr(table, c, row.get(c), r).label(c)
                                     for c in names]).select_from(sa.text(series))
                conn.execute(table.insert().from_select(names, select))


#: more than a template member's events: the copies' event numbers never meet
OUTBOX_ROWS = 1024


def _uuid_of(text: Any) -> uuid.UUID | None:
    """The UUID a claimed value's text spells (a transaction's or hold's id), or None."""
    try:
        return uuid.UUID(text) if isinstance(text, str) and len(text) == 32 else None
    except ValueError:
        return None


def _q(text: str) -> str:
    return text.replace("'", "''")


def _as_uuid(hex_expr: str, pg: bool) -> str:
    return f"CAST({hex_expr} AS UUID)" if pg else hex_expr


# -- the hand-written SQL ----------------------------------------------------------------


def hand_sql(engine: sa.Engine, program_id: str, now: dt.datetime) -> None:
    """The writes of the due run, set-based, in one transaction (see the docstring):
    the run's transactions are worked out once into a temporary table, then each table
    is written from it with one INSERT ... SELECT or UPDATE ... FROM."""
    pg = engine.dialect.name == "postgresql"
    ts = schema.transactions.c.occurred_at.type
    true, false = ("true", "false") if pg else ("1", "0")
    # an event's number: PostgreSQL's outbox trigger gives it; on SQLite the program's
    # largest plus one, as the library's statements give it
    numbered = "0" if pg else (
        "(SELECT coalesce(max(o.seq), 0) FROM lk_outbox o WHERE o.program_id = :p "
        "AND o.stream = 0 AND o.tx = 0) + row_number() OVER ()")

    def derived(column: str, prefix: str) -> str:
        # a transaction id derived from the hold's or lot's id (a new first hex digit)
        return (f"CAST('{prefix}' || substr(CAST({column} AS TEXT), 2) AS UUID)" if pg
                else f"'{prefix}' || substr({column}, 2)")

    def doc(*pairs: str) -> str:
        inner = ", ".join(pairs)
        return f"jsonb_build_object({inner})" if pg else f"json_object({inner})"

    def text_id(column: str) -> str:
        # an id as the library's documents write it: str(uuid), with hyphens
        if pg:
            return f"CAST({column} AS TEXT)"
        return "||'-'||".join(f"substr({column}, {a}, {n})"
                              for a, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)))

    def iso(column: str) -> str:
        # an instant as the library's isoformat() in UTC (text(): a colon escaped, or it
        # would start a bound name)
        if pg:
            return (f"to_char({column} AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24\\:MI\\:SS') || '+00\\:00'")
        return f"strftime('%Y-%m-%dT%H\\:%M\\:%S', {column}) || '+00\\:00'"

    def meta(kind: str, row: str) -> str:
        # a due transaction's metadata (its row's and its event's), its ids as text
        if kind == "release":
            return doc("'hold_id'", f"{row}.item_text", "'cause'", "'released'")
        return doc("'lot_id'", f"{row}.item_text", "'earn_id'", f"{row}.earn_text")

    reason = "CASE r.kind WHEN 'release' THEN 'hold expired' ELSE '' END"
    metadata = f"CASE r.kind WHEN 'release' THEN {meta('release', 'r')} " \
        f"ELSE {meta('expire', 'r')} END"
    false_doc = "false" if pg else "json('false')"

    def due_doc(kind: str, prefix: str, changes: str) -> str:
        # a due transaction's event payload (of a row x of the run, its balance after)
        return doc("'transaction_id'", f"'{prefix}' || substr(x.item_text, 2)",
                   "'kind'", f"'{kind}'", "'wallet'", "x.wallet",
                   "'points'", "x.d_av + x.d_pe + x.d_he", "'changes'", changes,
                   "'balance'", doc("'available'", "x.b_av", "'pending'", "x.b_pe",
                                    "'held'", "x.b_he", "'debt'", "x.b_de",
                                    "'total'", "x.b_av + x.b_pe + x.b_he - x.b_de"),
                   "'reason'", "'hold expired'" if kind == "release" else "''",
                   "'metadata'", meta(kind, "x"))

    # one whole document per kind (no document put inside another after the fact); the
    # transaction's id is the item's with a first digit of its own (see derived)
    payload = ("CASE x.kind WHEN 'activate' THEN "
               + due_doc("activate", "c", doc("'pending'", "x.d_pe", "'available'", "x.d_av"))
               + " WHEN 'expire' THEN " + due_doc("expire", "d", doc("'available'", "x.d_av"))
               + " ELSE " + due_doc("release", "e", doc("'available'", "x.d_av",
                                                         "'held'", "x.d_he"))
               + " END")

    temp = "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS " if pg else \
        "CREATE TEMPORARY TABLE {} AS "
    statements = [
        # the run's transactions: (id, member, wallet, kind, instant, the item, points)
        temp.format("run_tx") + f"""
            SELECT {derived("h.id", "e")} AS id, h.member_id, h.wallet,
                   'release' AS kind, h.expires_at AS occurred_at, h.id AS item,
                   h.transaction_id AS earn_id, h.points - h.captured AS points,
                   'available' AS credit, 'held' AS debit,
                   {text_id("h.id")} AS item_text, NULL AS earn_text
            FROM lk_holds h
            WHERE h.program_id = :p AND h.status = 'open' AND h.expires_at <= :t
            UNION ALL
            SELECT {derived("l.id", "d")}, l.member_id, l.wallet, 'expire', l.expires_at,
                   l.id, l.transaction_id,
                   l.remaining - COALESCE(o.points, 0), 'expired', 'available',
                   {text_id("l.id")}, {text_id("l.transaction_id")}
            FROM lk_lots l LEFT JOIN (
                SELECT a.lot_id, SUM(a.points) AS points FROM lk_hold_allocations a
                JOIN lk_holds h ON h.id = a.hold_id
                WHERE h.program_id = :p AND h.status = 'open' AND h.expires_at > :t
                GROUP BY a.lot_id) o ON o.lot_id = l.id
            WHERE l.program_id = :p AND l.pending = {false} AND l.expires_at <= :t
              AND l.remaining > 0
            UNION ALL
            SELECT {derived("l.id", "c")}, l.member_id, l.wallet, 'activate',
                   l.activates_at, l.id, l.transaction_id, l.remaining, 'available',
                   'pending', {text_id("l.id")}, {text_id("l.transaction_id")}
            FROM lk_lots l
            WHERE l.program_id = :p AND l.pending = {true} AND l.activates_at <= :t""",
        f"""INSERT INTO lk_transactions (id, program_id, member_id, wallet, kind, occurred_at,
                                         recorded_at, idempotency_key, reason, metadata,
                                         reverses_id)
            SELECT r.id, :p, r.member_id, r.wallet, r.kind, r.occurred_at, :now, NULL,
                   {reason}, {metadata}, NULL
            FROM run_tx r""",
        """INSERT INTO lk_postings (transaction_id, account, program_id, member_id, wallet,
                                    amount, position)
            SELECT r.id, r.debit, :p, r.member_id, r.wallet, -r.points, 0 FROM run_tx r
            UNION ALL
            SELECT r.id, r.credit, :p, r.member_id, r.wallet, r.points, 1 FROM run_tx r""",
        """INSERT INTO lk_lot_movements (transaction_id, lot_id, program_id, member_id,
                                         delta, position)
            SELECT r.id, r.item, :p, r.member_id, -r.points, 0 FROM run_tx r
            WHERE r.kind = 'expire'""",
        # the holds, then the lots: held points given back, expired, activated
        """UPDATE lk_holds SET status = 'released', resolved_by = r.id
            FROM run_tx r WHERE r.kind = 'release' AND lk_holds.id = r.item""",
        """UPDATE lk_lots SET held = lk_lots.held - d.points
            FROM (SELECT a.lot_id, SUM(a.points) AS points FROM lk_hold_allocations a
                  JOIN run_tx r ON r.item = a.hold_id AND r.kind = 'release'
                  GROUP BY a.lot_id) d
            WHERE lk_lots.id = d.lot_id""",
        """UPDATE lk_lots SET remaining = lk_lots.remaining - r.points
            FROM run_tx r WHERE r.kind = 'expire' AND lk_lots.id = r.item""",
        f"""UPDATE lk_lots SET pending = {false}, activates_at = NULL
            FROM run_tx r WHERE r.kind = 'activate' AND lk_lots.id = r.item""",
        # the events of the run's transactions: the library's payload (the changes, the
        # balance after each transaction in the wallet's posting order, reason, metadata)
        f"""INSERT INTO lk_outbox (program_id, stream, tx, seq, id, type, version, member_id,
                                   occurred_at, recorded_at, payload)
            SELECT :p, 0, 0, {numbered}, {derived("x.id", "b")},
                   'points.' || CASE x.kind WHEN 'release' THEN 'released'
                                            WHEN 'expire' THEN 'expired'
                                            ELSE 'activated' END,
                   1, x.member_id, x.occurred_at, :now,
                   {payload}
            FROM (SELECT d.*, a.available + SUM(d.d_av) OVER w AS b_av,
                         a.pending + SUM(d.d_pe) OVER w AS b_pe,
                         a.held + SUM(d.d_he) OVER w AS b_he, -a.debt AS b_de
                  FROM (SELECT r.*,
                               CASE r.kind WHEN 'expire' THEN -r.points
                                           ELSE r.points END AS d_av,
                               CASE r.kind WHEN 'activate' THEN -r.points ELSE 0 END AS d_pe,
                               CASE r.kind WHEN 'release' THEN -r.points ELSE 0 END AS d_he
                        FROM run_tx r) d
                  JOIN lk_accounts a ON a.program_id = :p AND a.member_id = d.member_id
                   AND a.wallet = d.wallet
                  WINDOW w AS (PARTITION BY d.member_id, d.wallet
                               ORDER BY d.occurred_at, d.id ROWS UNBOUNDED PRECEDING)) x""",
        # the accounts: the run's postings summed, the next due instant, the version
        f"""UPDATE lk_accounts SET
                available = lk_accounts.available + d.available,
                pending = lk_accounts.pending + d.pending, held = lk_accounts.held + d.held,
                expired = lk_accounts.expired + d.expired,
                next_due_at = (SELECT MIN(l.expires_at) FROM lk_lots l
                    WHERE l.program_id = :p AND l.member_id = lk_accounts.member_id
                      AND l.wallet = lk_accounts.wallet AND l.remaining > 0
                      AND l.pending = {false}),
                version = lk_accounts.version + 1
            FROM (SELECT member_id, wallet,
                     SUM(CASE kind WHEN 'release' THEN points
                                   WHEN 'activate' THEN points ELSE -points END) AS available,
                     SUM(CASE kind WHEN 'activate' THEN -points ELSE 0 END) AS pending,
                     SUM(CASE kind WHEN 'release' THEN -points ELSE 0 END) AS held,
                     SUM(CASE kind WHEN 'expire' THEN points ELSE 0 END) AS expired
                  FROM run_tx GROUP BY member_id, wallet) d
            WHERE lk_accounts.program_id = :p AND lk_accounts.member_id = d.member_id
              AND lk_accounts.wallet = d.wallet""",
        # the tier evaluation: the 2026 metric decides; silver below 600 drops a level
        temp.format("run_tiers") + """
            SELECT s.member_id, s.rank, s.next_evaluation, COALESCE(b.value, 0) AS metric
            FROM lk_tier_states s LEFT JOIN lk_tier_buckets b
              ON b.program_id = s.program_id AND b.member_id = s.member_id
             AND b.period_start = s.window_start
            WHERE s.program_id = :p AND s.next_evaluation <= :t""",
        f"""INSERT INTO lk_tier_history (id, program_id, member_id, at, from_tier, to_tier,
                                         reason, metric, note, recorded_at)
            SELECT {derived("e.member_id", "b")}, :p, e.member_id, e.next_evaluation,
                   'silver', 'member', 'evaluation', e.metric, '', :now
            FROM run_tiers e WHERE e.rank = 1 AND e.metric < 600""",
        f"""INSERT INTO lk_outbox (program_id, stream, tx, seq, id, type, version, member_id,
                                   occurred_at, recorded_at, payload)
            SELECT :p, 0, 0, {numbered}, {"CAST(md5(e.member_id) AS UUID)" if pg
                           else derived("e.member_id", "a")},
                   'tier.changed', 1, e.member_id, e.next_evaluation, :now,
                   {doc("'from'", "'silver'", "'to'", "'member'", "'direction'", "'down'",
                        "'reason'", "'evaluation'", "'note'", "''",
                        "'changed_at'", iso("e.next_evaluation"), "'metric'", "'points'",
                        "'qualifying'", "e.metric", "'threshold'", "0",
                        "'protected_until'", "NULL",
                        "'next_evaluation'", "CAST(:next_iso AS TEXT)",
                        "'benefits'", doc("'earn_multiplier'", "'1'",
                                          "'discount_percent'", "'0'",
                                          "'free_shipping'", false_doc,
                                          "'extended_returns'", false_doc,
                                          "'custom'", doc()))}
            FROM run_tiers e WHERE e.rank = 1 AND e.metric < 600""",
        """UPDATE lk_tier_states SET
                rank = CASE WHEN e.rank = 1 AND e.metric < 600 THEN 0
                            ELSE lk_tier_states.rank END,
                window_start = e.next_evaluation, next_evaluation = :next_year,
                protected_until = NULL, carried = 0, carried_until = NULL,
                version = lk_tier_states.version + 1
            FROM run_tiers e
            WHERE lk_tier_states.program_id = :p AND lk_tier_states.member_id = e.member_id""",
    ]
    if not pg:
        statements += ["DROP TABLE run_tx", "DROP TABLE run_tiers"]
    params = [sa.bindparam("t", type_=ts), sa.bindparam("now", type_=ts),
              sa.bindparam("next_year", type_=ts)]
    values = {"p": program_id, "t": RUN_AT, "now": now,
              "next_year": dt.datetime(2028, 1, 1, tzinfo=BERLIN)}
    values["next_iso"] = values["next_year"].astimezone(dt.UTC).isoformat()
    with engine.begin() as conn:
        for sql in statements:
            stmt = sa.text(sql).bindparams(*[p for p in params if f":{p.key}" in sql])
            conn.execute(stmt, {k: v for k, v in values.items() if f":{k}" in sql})
            if pg and sql.startswith("CREATE"):
                conn.exec_driver_sql("ANALYZE " + sql.split()[3])


# -- checks --------------------------------------------------------------------------------


#: The columns of the rows a run writes with documents in them, compared side by side
#: (not the ids nor the outbox's positions, which each side draws its own way).
_RUN_ROWS = {
    "lk_outbox": ("type", "version", "member_id", "occurred_at", "recorded_at", "payload"),
    "lk_transactions": ("member_id", "wallet", "kind", "occurred_at", "recorded_at",
                        "idempotency_key", "reason", "metadata", "reverses_id"),
    "lk_tier_history": ("member_id", "at", "from_tier", "to_tier", "reason", "metric",
                        "note", "recorded_at"),
}
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")


def _masked(value: Any) -> Any:
    """A stored value with its ids as placeholders (a side's own ids, its members' by
    the copy's number), in the form they were written: text with hyphens or hex."""
    if isinstance(value, uuid.UUID):
        return "<uuid>"
    if isinstance(value, dict | list):  # a driver that decodes documents (PostgreSQL)
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str):
        return _HEX_ID.sub("<hex>", _UUID_TEXT.sub("<uuid>", value))
    return value


def run_rows(engine: sa.Engine, program_id: str, now: dt.datetime) -> list[tuple[Any, ...]]:
    """What the run (recorded at ``now``) wrote to the tables with documents, as the
    driver returns it (SQLite: the stored text, byte for byte), ids masked, sorted."""
    rows = []
    with engine.connect() as conn:
        for table, columns in _RUN_ROWS.items():
            stmt = sa.text(f"SELECT {', '.join(columns)} FROM {table} "
                           "WHERE program_id = :p AND recorded_at >= :now").bindparams(
                sa.bindparam("now", type_=schema.transactions.c.recorded_at.type))
            rows += [(table, *map(_masked, row))
                     for row in conn.execute(stmt, {"p": program_id, "now": now})]
    return sorted(rows, key=repr)


def row_counts(engine: sa.Engine, program_id: str) -> dict[str, int]:
    counts = {}
    with engine.connect() as conn:
        for table in _member_tables():
            counts[table.name] = conn.execute(
                sa.select(sa.func.count()).select_from(table)
                .where(table.c.program_id == program_id)).scalar_one()
    return counts


def totals(engine: sa.Engine, program_id: str) -> tuple[Any, ...]:
    a, s = schema.accounts, schema.tier_states
    with engine.connect() as conn:
        sums = conn.execute(sa.select(
            sa.func.sum(a.c.available), sa.func.sum(a.c.pending), sa.func.sum(a.c.held),
            sa.func.sum(a.c.expired)).where(a.c.program_id == program_id)).one()
        ranks = conn.execute(sa.select(s.c.rank, sa.func.count()).where(
            s.c.program_id == program_id).group_by(s.c.rank).order_by(s.c.rank)).all()
    return tuple(int(x) for x in sums), tuple(tuple(r) for r in ranks)


# -- the run -------------------------------------------------------------------------------


def timed_run_due(loyalty: Loyalty, workers: int, batch: int) -> tuple[float, Any]:
    began = time.perf_counter()
    report = loyalty.run_due(batch_size=batch, workers=workers)
    return time.perf_counter() - began, report


def bench(backend: str, url: str | None, members: int, workers: int,
          batch: int) -> dict[str, Any]:
    helpers = ledger_helpers()
    stamp = uuid.uuid4().hex[:8]
    with helpers.open_backend(backend, url) as (storage, engine, database, _owned):
        hand_engine = engine
        if backend == "memory":  # the floor: set-based SQL on an in-memory SQLite
            hand_engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
            SQLStorage(hand_engine).create_schema()
        began = time.perf_counter()
        assert hand_engine is not None
        rows = template_rows(hand_engine, f"template-{stamp}")
        lib_id, hand_id = f"due-{stamp}", f"hand-{stamp}"
        clock = TestClock(RUN_AT)
        if backend == "memory":
            history(Loyalty(program(lib_id), storage, clock=clock), clock,
                    [f"m{i:07d}" for i in range(members)])
        else:
            assert engine is not None
            clone(engine, lib_id, 1, rows, members)
        clone(hand_engine, hand_id, 2, rows, members)
        analyse(hand_engine)
        seeded = time.perf_counter() - began
        clock.set(RUN_AT)
        loyalty = Loyalty(program(lib_id), storage, clock=clock)
        cpu = time.process_time()
        seconds, report = timed_run_due(loyalty, workers, batch)
        cpu = time.process_time() - cpu
        began, hand_cpu = time.perf_counter(), time.process_time()
        hand_sql(hand_engine, hand_id, clock.now())
        hand_seconds = time.perf_counter() - began
        hand_cpu = time.process_time() - hand_cpu
        check(report, members)
        hand_totals = totals(hand_engine, hand_id)
        if engine is not None:
            lib_totals = totals(engine, lib_id)
            lib_rows, hand_rows = row_counts(engine, lib_id), row_counts(hand_engine, hand_id)
            if lib_rows != hand_rows:
                raise SystemExit(f"rows differ: {lib_rows} != {hand_rows}")
            lib_docs = run_rows(engine, lib_id, clock.now())
            hand_docs = run_rows(hand_engine, hand_id, clock.now())
            if lib_docs != hand_docs:
                diff = next((a, b) for a, b in zip(lib_docs, hand_docs, strict=False)
                            if a != b)
                raise SystemExit(f"the run's rows differ: {diff[0]} != {diff[1]}")
        else:
            lib_totals = memory_totals(loyalty, members)
        if lib_totals != hand_totals:
            raise SystemExit(f"totals differ: {lib_totals} != {hand_totals}")
        again = loyalty.run_due(batch_size=batch, workers=workers)
        if again.members or again.tier_evaluations:
            raise SystemExit(f"a second run found work: {again}")
        return {
            "database": database, "members": members, "workers": workers,
            "batch_size": batch, "lots_expired": report.expired_lots,
            "points_expired": report.expired_points,
            "lots_activated": report.activated_lots,
            "points_activated": report.activated_points,
            "holds_released": report.released_holds,
            "tier_evaluations": report.tier_evaluations,
            "tier_changes": report.tier_changes, "seconds": seconds,
            "hand_sql_seconds": hand_seconds, "ratio": seconds / hand_seconds,
            "cpu_seconds": cpu, "hand_sql_cpu_seconds": hand_cpu,
            "cpu_ratio": cpu / hand_cpu if hand_cpu else None,
            "members_per_s": members / seconds, "seed_seconds": seeded,
            "target_max_ratio": TARGET, "pass": seconds / hand_seconds <= TARGET,
        }


def check(report: Any, members: int) -> None:
    wanted = (members, members, 700 * members, members, 200 * members,
              members, members, members)
    got = (report.members, report.expired_lots, report.expired_points,
           report.activated_lots, report.activated_points, report.released_holds,
           report.tier_evaluations, report.tier_changes)
    if got != wanted:
        raise SystemExit(f"the run did {got}, not {wanted}")


def memory_totals(loyalty: Loyalty, members: int) -> tuple[Any, ...]:
    sums = [0, 0, 0, 0]
    ranks: dict[int, int] = {}
    names = [t.name for t in loyalty.program.tiers.tiers] if loyalty.program.tiers else []
    for i in range(members):
        b = loyalty.balance(f"m{i:07d}")
        for n, v in enumerate((b.available, b.pending, b.held, b.expired)):
            sums[n] += v
        rank = names.index(loyalty.tiers.status(f"m{i:07d}").tier)
        ranks[rank] = ranks.get(rank, 0) + 1
    return tuple(sums), tuple(sorted(ranks.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("memory", "sqlite", "postgresql"),
                        default="postgresql")
    parser.add_argument("--members", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--url", help="PostgreSQL URL (else a throwaway server)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    members = args.members or (QUICK_MEMBERS if args.quick else DEFAULT_MEMBERS[args.backend])
    workers = args.workers or (max(1, os.cpu_count() or 1)
                               if args.backend == "postgresql" else 1)
    batch = min(args.batch_size, 16) if args.quick else args.batch_size
    r = bench(args.backend, args.url, members, workers, batch)
    print(f"due work on {r['database']}: {members:,} members in {r['seconds']:.2f} s with "
          f"{workers} worker(s), batches of {batch} ({r['members_per_s']:,.0f} members/s; "
          f"{r['lots_expired']:,} lots expired, {r['points_activated']:,} points activated, "
          f"{r['holds_released']:,} holds released, {r['tier_evaluations']:,} tier "
          f"evaluations); hand-written SQL {r['hand_sql_seconds']:.2f} s; ratio "
          f"{r['ratio']:.2f} (target <= {TARGET}) -> {'PASS' if r['pass'] else 'FAIL'} "
          f"(CPU {r['cpu_seconds']:.2f} s vs {r['hand_sql_cpu_seconds']:.2f} s; seeding "
          f"{r['seed_seconds']:.1f} s, not timed)")
    r.update(backend=args.backend, quick=args.quick,
             environment={"python": platform.python_version(), "cpus": os.cpu_count()})
    print(json.dumps(r, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
