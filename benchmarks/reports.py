#!/usr/bin/env python
"""Benchmark loyaltykit's reports against hand-written SQL aggregates on the same data.

Run as a plain script::

    python benchmarks/reports.py [--members 100000] [--url URL] [--quick]

On PostgreSQL (``--url``, else ``LOYALTYKIT_BENCH_POSTGRESQL_URL``, else a throwaway
server started from the machine's binaries, ``tests/_postgres.py``), a program gets
``--members`` members with history, seeded set-based through the storage port: each
has 1-6 orders over 18 months (one line, 5.00-200.00 EUR), each order an earn of one
point per euro as a lot expiring after a year (expired lots are expired), and about a
third of the members spent their first lot. Then, alternating sides over rounds:

* **loyaltykit**: ``loyalty.reports.totals()``, ``loyalty.reports.kpis(Period.QUARTER,
  ...)`` over the 18 months and ``loyalty.reports.rfm()``;
* **hand-written SQL**: the same figures from plain aggregates over ``lk_postings``,
  ``lk_transactions`` and ``lk_orders`` (GROUP BY, window functions; the KPIs' points
  issued and redeemed per quarter too), written for this data, fetched and assembled
  minimally.

``ratio`` = loyaltykit seconds / hand-written seconds (median of rounds; target <= 2).
loyaltykit runs its report statements with PostgreSQL's JIT compilation off (it cost
more than it saved, see ``loyaltykit/sql/reports.py``); the hand-written side runs
with the server's setting (``ratio``) and, timed too, with JIT off
(``ratio_vs_jit_off``), so neither figure hides the other.
Both sides' answers are compared (members, issued points, orders, revenue) so the
ratio compares the same work. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from _shared import URL_VARIABLE, ledger_helpers

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
    Order,
    OrderLine,
    Period,
    Posting,
    Program,
    TestClock,
    Transaction,
)
from loyaltykit.sql import SQLStorage
from loyaltykit.storage import AccountState, OrderRecord, OrderStatus
from loyaltykit.testing import by_shop_ids
from loyaltykit.testing.changes import ChangeSet, write_changes

WALLET = "points"
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)
EXPIRY = dt.timedelta(days=365)
TARGET_RATIO = 2.0
BATCH = 2_000  # members per seeding unit of work


def program(pid: str) -> Program:
    """One wallet, a point per euro, lots expiring a year after their earn."""
    return Program(id=pid, currency="EUR", time_zone="Europe/Berlin",
                   point_value=Money("0.01", "EUR"),
                   ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365)))


def seed(storage: SQLStorage, pid: str, members: int, rng: random.Random) -> dict[str, Any]:
    """Seed ``members`` members with orders, earns, spends and expiries through the
    storage port, in batches; return the counts written."""
    span = (END - START).total_seconds()
    counts = {"members": 0, "orders": 0, "transactions": 0}
    for first in range(0, members, BATCH):
        changes = ChangeSet()
        for n in range(first, min(first + BATCH, members)):
            member = f"m{n:07d}"
            times = sorted(START + dt.timedelta(seconds=rng.random() * span)
                           for _ in range(rng.choice((1, 1, 2, 2, 3, 4, 5, 6))))
            enrolled = times[0] - dt.timedelta(days=1)
            state = AccountState(member, WALLET)
            lots: list[Lot] = []
            for i, at in enumerate(times):
                amount = Decimal(rng.randrange(500, 20_000)) / 100
                points = int(amount)
                order = Order(f"o-{member}-{i}", member, at, "EUR",
                              (OrderLine("sku", 1, Money(amount, "EUR")),))
                tx_id, lot_id = uuid.uuid4(), uuid.uuid4()
                legs = (Posting(Account.ISSUED, -points), Posting(Account.AVAILABLE, points))
                changes.transactions.append(Transaction(
                    tx_id, pid, member, WALLET, Kind.EARN, at, at, legs,
                    (LotMovement(lot_id, points),), None))
                lot = Lot(lot_id, pid, member, WALLET, tx_id, points, points, 0, at, None,
                          at + EXPIRY, False)
                lots.append(lot)
                state = state.apply(legs)
                changes.orders[order.id] = OrderRecord(
                    pid, order.id, member, at, 1, order.to_dict(), {}, OrderStatus.OPEN,
                    points, {}, tx_id, (), at, at)
                changes.new_orders.add(order.id)
            if n % 3 == 0:  # spends its first lot a week after earning it
                lot = lots[0]
                at = lot.earned_at + dt.timedelta(days=7)
                legs = (Posting(Account.AVAILABLE, -lot.amount),
                        Posting(Account.REDEEMED, lot.amount))
                changes.transactions.append(Transaction(
                    uuid.uuid4(), pid, member, WALLET, Kind.SPEND, at, at, legs,
                    (LotMovement(lot.id, -lot.amount),), None))
                lots[0] = Lot(lot.id, pid, member, WALLET, lot.transaction_id, lot.amount, 0,
                              0, lot.earned_at, None, lot.expires_at, False)
                state = state.apply(legs)
            for i, lot in enumerate(lots):
                if lot.remaining and lot.expires_at is not None and lot.expires_at <= END:
                    legs = (Posting(Account.AVAILABLE, -lot.remaining),
                            Posting(Account.EXPIRED, lot.remaining))
                    changes.transactions.append(Transaction(
                        uuid.uuid4(), pid, member, WALLET, Kind.EXPIRE, lot.expires_at,
                        lot.expires_at, legs, (LotMovement(lot.id, -lot.remaining),), None))
                    lots[i] = Lot(lot.id, pid, member, WALLET, lot.transaction_id,
                                  lot.amount, 0, 0, lot.earned_at, None, lot.expires_at,
                                  False)
                    state = state.apply(legs)
            live = [lot.expires_at for lot in lots if lot.remaining and lot.expires_at]
            changes.accounts[(member, WALLET)] = AccountState(
                member, WALLET, available=state.available, issued=state.issued,
                redeemed=state.redeemed, expired=state.expired,
                next_due_at=min(live) if live else None, version=len(times))
            changes.new_accounts.add((member, WALLET))
            changes.members.append(Member(pid, member, enrolled, {}))
            changes.lots.update({lot.id: lot for lot in lots})
            changes.new_lots.update(lot.id for lot in lots)
            counts["members"] += 1
            counts["orders"] += len(times)
        counts["transactions"] += len(changes.transactions)
        with by_shop_ids(storage).unit_of_work(pid) as uow:
            write_changes(uow, changes)
            uow.commit()
    return counts


# -- the two sides --------------------------------------------------------------------------


PARTS: dict[str, list[float]] = {}


def _part(name: str, began: float) -> float:
    now = time.perf_counter()
    PARTS.setdefault(name, []).append(now - began)
    return now


def loyaltykit_side(loyalty: Loyalty) -> dict[str, Any]:
    """Totals, quarterly KPIs and RFM through ``loyalty.reports``."""
    began = time.perf_counter()
    totals = loyalty.reports.totals(as_of=END)
    began = _part("loyaltykit_totals", began)
    kpis = loyalty.reports.kpis(Period.QUARTER, START, END)
    began = _part("loyaltykit_kpis", began)
    rfm = loyalty.reports.rfm(as_of=END)
    _part("loyaltykit_rfm", began)
    [wallet] = totals
    return {"issued": wallet.issued, "outstanding": wallet.outstanding,
            "period_issued": sum(k.points_issued for k in kpis),
            "orders": sum(k.orders for k in kpis),
            "revenue": sum((k.revenue.amount for k in kpis), Decimal(0)),
            "rfm_members": len(rfm)}


HAND_TOTALS = sa.text("""
    SELECT p.account, sum(p.amount) FROM lk_postings p
    JOIN lk_transactions t ON t.id = p.transaction_id
    WHERE p.program_id = :pid AND t.occurred_at <= :end
    GROUP BY p.account""")
HAND_KPIS = sa.text("""
    WITH q AS (
        SELECT o.member_id, o.net_amount::numeric AS amount,
               date_trunc('quarter', o.placed_at AT TIME ZONE 'Europe/Berlin') AS quarter
        FROM lk_orders o
        WHERE o.program_id = :pid AND o.status <> 'cancelled'
          AND o.placed_at >= :start AND o.placed_at < :end),
    firsts AS (
        SELECT member_id, min(placed_at AT TIME ZONE 'Europe/Berlin') AS first
        FROM lk_orders WHERE program_id = :pid AND status <> 'cancelled' GROUP BY member_id),
    per AS (
        SELECT quarter, member_id, count(*) AS n, sum(amount) AS spent
        FROM q GROUP BY quarter, member_id)
    SELECT per.quarter, count(*) AS active, sum(per.n) AS orders, sum(per.spent) AS revenue,
           count(*) FILTER (WHERE per.n >= 2) AS repeaters,
           count(*) FILTER (WHERE date_trunc('quarter', f.first) = per.quarter) AS new,
           count(prev.member_id) AS retained
    FROM per JOIN firsts f USING (member_id)
    LEFT JOIN per prev ON prev.member_id = per.member_id
                      AND prev.quarter = per.quarter - interval '3 months'
    GROUP BY per.quarter ORDER BY per.quarter""")
HAND_POINTS = sa.text("""
    SELECT date_trunc('quarter', t.occurred_at AT TIME ZONE 'Europe/Berlin') AS quarter,
           p.account, sum(p.amount)
    FROM lk_postings p JOIN lk_transactions t ON t.id = p.transaction_id
    WHERE p.program_id = :pid AND p.account IN ('issued', 'redeemed')
      AND t.occurred_at >= :start AND t.occurred_at < :end
    GROUP BY 1, 2""")
HAND_RFM = sa.text("""
    WITH m AS (
        SELECT member_id, max(placed_at) AS last, count(*) AS f,
               sum(net_amount::numeric) AS m
        FROM lk_orders WHERE program_id = :pid AND status <> 'cancelled'
          AND placed_at < :end GROUP BY member_id)
    SELECT i.external_id, m.last, m.f, m.m,
           ntile(5) OVER (ORDER BY m.last) AS r,
           ntile(5) OVER (ORDER BY m.f) AS fs,
           ntile(5) OVER (ORDER BY m.m) AS ms
    FROM m JOIN lk_member_ids i ON i.program_id = :pid AND i.member_id = m.member_id""")


def hand_side(engine: sa.Engine, pid: str, jit: bool = True) -> dict[str, Any]:
    """The same figures from hand-written aggregates (with the server's JIT setting, or
    with JIT off as loyaltykit's report statements run)."""
    with engine.connect() as conn:
        if not jit:
            conn.exec_driver_sql("SET jit = off")
        began = time.perf_counter()
        sums = dict(conn.execute(HAND_TOTALS, {"pid": pid, "end": END}).all())
        began = _part("hand_totals" if jit else "hand_nojit_totals", began)
        kpis = conn.execute(HAND_KPIS, {"pid": pid, "start": START, "end": END}).all()
        points = conn.execute(HAND_POINTS, {"pid": pid, "start": START, "end": END}).all()
        began = _part("hand_kpis" if jit else "hand_nojit_kpis", began)
        rfm = conn.execute(HAND_RFM, {"pid": pid, "end": END}).all()
        _part("hand_rfm" if jit else "hand_nojit_rfm", began)
        if not jit:
            conn.exec_driver_sql("RESET jit")
    outstanding = sum(int(sums.get(a, 0)) for a in ("available", "pending", "held", "debt"))
    issued = -sum(int(total) for _, account, total in points if account == "issued")
    return {"issued": -int(sums.get("issued", 0)), "outstanding": outstanding,
            "period_issued": issued,
            "orders": sum(int(k.orders) for k in kpis),
            "revenue": sum((Decimal(k.revenue) for k in kpis), Decimal(0)),
            "rfm_members": len(rfm)}


def timed(fn: Callable[[], dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def run(url: str | None, members: int, rounds: int, seed_value: int = 7) -> dict[str, Any]:
    """Seed and measure; return the ``reports_100k`` figures."""
    times: dict[str, list[float]] = {"ours": [], "theirs": [], "nojit": []}
    answers: list[tuple[dict[str, Any], dict[str, Any]]] = []
    with ledger_helpers().open_backend("postgresql", url) as (storage, engine, _, _):
        pid = f"bench-reports-{uuid.uuid4().hex[:8]}"
        loyalty = Loyalty(program(pid), storage, clock=TestClock(END))
        loyalty.register()  # seed() writes rows around the facade
        began = time.perf_counter()
        counts = seed(storage, pid, members, random.Random(seed_value))
        seeded_s = time.perf_counter() - began
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        sides: dict[str, Callable[[], dict[str, Any]]] = {
            "ours": lambda: loyaltykit_side(loyalty),
            "theirs": lambda: hand_side(engine, pid),
            "nojit": lambda: hand_side(engine, pid, jit=False),
        }
        timed(sides["ours"])  # warm-up, both sides
        timed(sides["theirs"])
        for i in range(rounds):
            got: dict[str, dict[str, Any]] = {}
            # alternate which side goes first, so load from elsewhere hits both alike
            for side in ("ours", "theirs", "nojit") if i % 2 == 0 else (
                    "theirs", "ours", "nojit"):
                seconds, got[side] = timed(sides[side])
                times[side].append(seconds)
            answers += [(got["ours"], got["theirs"]), (got["ours"], got["nojit"])]
    ours, theirs, theirs_nojit = times["ours"], times["theirs"], times["nojit"]
    same = all(a == b for a, b in answers)
    seconds = statistics.median(ours)
    hand = statistics.median(theirs)
    ratio = statistics.median(x / y for x, y in zip(ours, theirs, strict=True))
    ratio_nojit = statistics.median(x / y for x, y in zip(ours, theirs_nojit, strict=True))
    return {"members": counts["members"], "orders": counts["orders"],
            "transactions": counts["transactions"], "seed_s": round(seeded_s, 1),
            "seconds": round(seconds, 3), "hand_sql_seconds": round(hand, 3),
            "ratio": round(ratio, 3), "target_max_ratio": TARGET_RATIO,
            "hand_sql_jit_off_seconds": round(statistics.median(theirs_nojit), 3),
            "ratio_vs_jit_off": round(ratio_nojit, 3),
            "same_answers": same, "pass": same and ratio <= TARGET_RATIO, "rounds": rounds,
            "parts_s": {k: round(statistics.median(v), 3) for k, v in PARTS.items()},
            "answer": {k: str(v) for k, v in answers[-1][0].items()}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", help=f"a PostgreSQL URL (else ${URL_VARIABLE}, else a "
                        "throwaway server)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 members")
    args = parser.parse_args(argv)
    members, rounds = (2_000, 2) if args.quick else (args.members, args.rounds)
    result = run(args.url, members, rounds)
    print(f"reports over {result['members']:,} members ({result['orders']:,} orders, "
          f"{result['transactions']:,} transactions; seeded in {result['seed_s']} s)")
    print(f"  loyaltykit {result['seconds']} s, hand-written SQL "
          f"{result['hand_sql_seconds']} s: ratio {result['ratio']} "
          f"(target <= {TARGET_RATIO}; same answers: {result['same_answers']})")
    print(f"  hand-written SQL with JIT off as loyaltykit runs it: "
          f"{result['hand_sql_jit_off_seconds']} s, ratio {result['ratio_vs_jit_off']}")
    print(json.dumps({"reports_100k": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
