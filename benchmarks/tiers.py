#!/usr/bin/env python
"""Benchmark tier evaluation at a window's end against a hand-written SQL aggregate.

Run as a plain script::

    python benchmarks/tiers.py [--backend sqlite|postgresql|memory ...] [--members N]
        [--batch-size N] [--quick]

Program R of the scenarios (member 0 / silver 500 / gold 2000 qualifying points in the
calendar year, Europe/Berlin; kept through the next year; one level down). The
database holds ``--members`` members (default 100,000), each with three earns in 2026
as the ledger stores them (a transaction with its issued/available postings), the
metric buckets the library keeps for them, and the tier state they reached (a quarter
of them hold a tier reached in 2025 whose protection ends on 1 January 2027, so the
evaluation moves many members). Rows are seeded with plain inserts (enrolling and
earning 300,000 times through the facade would take minutes and measure nothing new).

Measured in one run, in alternating rounds:

* ``evaluation``: ``Loyalty.run_due`` at 1 January 2027 01:00 (Berlin), which
  evaluates every member set-based (the metric of 2026, the decision, the new states,
  the history of changes), from the same starting state each round. On PostgreSQL
  with ``workers`` = the machine's CPUs (one batch per worker), as the server runs the
  baseline on its parallel workers; on SQLite, whose writers take turns, with one.
  ``one_worker`` is the same with one worker and one batch, for reference.
* ``baseline``: the hand-written aggregate a shop would write for the same metric:
  ``SELECT member_id, -SUM(amount)`` of the issued postings of 2026's transactions,
  grouped by member and fetched. ``ratio`` = evaluation / baseline (target <= 2).
* ``bucket_aggregate``: the same sum over the library's own metric buckets (the floor
  of any evaluation that reads them), reported for reference.

``memory`` seeds the same rows through the memory backend's stores, and its
baseline is the same aggregate written by hand in Python over the stored
transactions. ``--batch-size`` runs the evaluation in batches of that many members
(``run_due``'s default is 500) instead of one per worker: the shape in which a due
read that scanned every state per batch was quadratic.

For ``postgresql`` the server is ``--url``, else ``LOYALTYKIT_BENCH_POSTGRESQL_URL``,
else a throwaway server. The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from _shared import analyse, ledger_helpers

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import (  # noqa: E402
    Loyalty,
    Money,
    Program,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit._model import Account, Kind, Member, Posting, Transaction  # noqa: E402
from loyaltykit._tiers import TierState, new_state  # noqa: E402
from loyaltykit.memory.ledger import LedgerTables  # noqa: E402
from loyaltykit.memory.tiers import TierTables  # noqa: E402
from loyaltykit.sql import schema  # noqa: E402
from loyaltykit.storage.ledger import LedgerChanges  # noqa: E402
from loyaltykit.storage.tiers import TierChanges  # noqa: E402

BERLIN = ZoneInfo("Europe/Berlin")
TARGET = 2.0
FULL = {"members": 100_000, "rounds": 5}
QUICK = {"members": 300, "rounds": 2}


def program(program_id: str) -> Program:
    return Program(id=program_id, time_zone="Europe/Berlin", currency="EUR",
                   point_value=Money("0.01", "EUR"),
                   tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 500),
                                           Tier("gold", 2000))))


def rows(loyalty: Loyalty, members: int) -> Iterator[tuple[list[dict[str, Any]], ...]]:
    """Members, their 2026 earns (transactions and postings), metric buckets and tier
    states, as the library would have written them, in chunks."""
    prog = loyalty.program
    policy = prog.tiers
    assert policy is not None
    enrolled = dt.datetime(2025, 6, 1, 10, tzinfo=BERLIN).astimezone(dt.UTC)
    period_2026 = dt.datetime(2026, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    protected_2027 = dt.datetime(2027, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    chunk = 5_000
    for start in range(0, members, chunk):
        ids = range(start, min(start + chunk, members))
        member_rows, state_rows, bucket_rows, tx_rows, posting_rows = [], [], [], [], []
        for i in ids:
            member_id = f"m{i:07d}"
            member_rows.append({"program_id": prog.id, "member_id": member_id,
                                "enrolled_at": enrolled, "attributes": {}})
            amounts = [1 + (i * 37 + k * 101) % 900 for k in range(3)]
            total = sum(amounts)
            for k, points in enumerate(amounts):
                tx_id = uuid.UUID(int=(i << 8) | k)
                at = dt.datetime(2026, 2 + 3 * k, 1 + i % 27, 12, tzinfo=dt.UTC)
                tx_rows.append({
                    "id": tx_id, "program_id": prog.id, "member_id": member_id,
                    "wallet": "points", "kind": "earn", "occurred_at": at,
                    "recorded_at": at, "idempotency_key": f"e{i}-{k}", "reason": "",
                    "metadata": {}, "reverses_id": None})
                posting_rows += [
                    {"transaction_id": tx_id, "account": "issued", "program_id": prog.id,
                     "member_id": member_id, "wallet": "points", "amount": -points,
                     "position": 0},
                    {"transaction_id": tx_id, "account": "available",
                     "program_id": prog.id, "member_id": member_id, "wallet": "points",
                     "amount": points, "position": 1}]
            bucket_rows.append({"program_id": prog.id, "member_id": member_id,
                                "period_start": period_2026, "value": total})
            state = new_state(policy, member_id, period_2026, prog.time_zone,
                              dt.date(2025, 6, 1))
            reached = policy.qualified(total)
            carried = 2 if i % 4 == 0 else 0  # a quarter kept gold from 2025
            rank = max(reached, carried)
            row = {
                "program_id": prog.id, "member_id": member_id, "rank": rank,
                "attained_at": None, "protected_until": protected_2027 if carried
                else None, "window_start": state.window_start,
                "next_evaluation": state.next_evaluation, "carried": carried,
                "carried_until": protected_2027 if carried else None,
                "carried_floor": 0, "floor": 0, "anchor": dt.date(2025, 6, 1),
                "manual": None, "manual_until": None, "manual_reason": "",
                "noticed_for": state.next_evaluation, "version": 1}
            if reached > carried:
                row["attained_at"] = dt.datetime(2026, 8, 1, tzinfo=dt.UTC)
                row["protected_until"] = dt.datetime(2028, 1, 1, tzinfo=BERLIN)
            state_rows.append(row)
        yield member_rows, tx_rows, posting_rows, bucket_rows, state_rows


def seed(engine: sa.Engine, loyalty: Loyalty, members: int) -> None:
    """Seed the rows of :func:`rows` with plain inserts."""
    with engine.begin() as conn:
        for member_rows, tx_rows, posting_rows, bucket_rows, state_rows in rows(
                loyalty, members):
            conn.execute(schema.members.insert(), member_rows)
            conn.execute(schema.transactions.insert(), tx_rows)
            conn.execute(schema.postings.insert(), posting_rows)
            conn.execute(schema.tier_buckets.insert(), bucket_rows)
            conn.execute(schema.tier_states.insert(), state_rows)
        conn.exec_driver_sql("CREATE TABLE bench_tier_states AS SELECT * FROM lk_tier_states")
    analyse(engine)  # (else the baseline's plan depends on autovacuum's timing)


def seed_memory(storage: Storage, loyalty: Loyalty, members: int) -> dict[Any, Any]:
    """Write the rows of :func:`rows` through the memory backend's stores (its own
    plain inserts); return the tier states to reset to."""
    program_id = loyalty.program.id
    for member_rows, tx_rows, posting_rows, bucket_rows, state_rows in rows(
            loyalty, members):
        legs: dict[uuid.UUID, list[Posting]] = {}
        for p in posting_rows:
            legs.setdefault(p["transaction_id"], []).append(
                Posting(Account(p["account"]), p["amount"]))
        with storage.unit_of_work(program_id) as uow:
            uow.ledger.write(LedgerChanges(
                members=[Member(program_id, r["member_id"], r["enrolled_at"])
                         for r in member_rows],
                transactions=[Transaction(
                    id=r["id"], program_id=program_id, member_id=r["member_id"],
                    wallet=r["wallet"], kind=Kind(r["kind"]), occurred_at=r["occurred_at"],
                    recorded_at=r["recorded_at"], postings=tuple(legs[r["id"]]),
                    idempotency_key=r["idempotency_key"]) for r in tx_rows]))
            uow.tiers.write(TierChanges(
                tier_states={r["member_id"]: TierState(**{
                    k: v for k, v in r.items() if k not in ("program_id", "version")})
                    for r in state_rows},
                new_tier_states={r["member_id"] for r in state_rows},
                tier_buckets={(r["member_id"], r["period_start"]): r["value"]
                              for r in bucket_rows}))
            uow.commit()
    return dict(storage._tables.of(TierTables).tier_states)  # type: ignore[attr-defined]


def reset_memory(storage: Storage, states: dict[Any, Any]) -> None:
    tables = storage._tables.of(TierTables)  # type: ignore[attr-defined]
    for key in list(tables.tier_states):  # (by item: the table keeps its index)
        del tables.tier_states[key]
    for key, state in states.items():
        tables.tier_states[key] = state
    tables.tier_history.clear()


def baseline_memory(storage: Storage, program_id: str) -> int:
    """The hand-written aggregate in memory: the issued points of 2026 by member, summed
    over the stored transactions."""
    start = dt.datetime(2026, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    sums: dict[str, int] = {}
    for tx in storage._tables.of(LedgerTables).transactions.values():  # type: ignore
        if tx.program_id == program_id and start <= tx.occurred_at < end:
            for p in tx.postings:
                if p.account is Account.ISSUED:
                    sums[tx.member_id] = sums.get(tx.member_id, 0) - p.amount
    return len(sums)


def reset(engine: sa.Engine, program_id: str) -> None:
    with engine.begin() as conn:
        conn.execute(schema.tier_history.delete())
        conn.execute(schema.tier_states.delete())
        conn.exec_driver_sql("INSERT INTO lk_tier_states SELECT * FROM bench_tier_states")
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE lk_tier_states")


def baseline(engine: sa.Engine, program_id: str) -> int:
    start = dt.datetime(2026, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    t, p = schema.transactions, schema.postings
    stmt = (sa.select(t.c.member_id, -sa.func.sum(p.c.amount))
            .join(p, p.c.transaction_id == t.c.id)
            .where(t.c.program_id == program_id, p.c.account == "issued",
                   t.c.occurred_at >= start, t.c.occurred_at < end)
            .group_by(t.c.member_id))
    with engine.connect() as conn:
        return len(conn.execute(stmt).all())


def bucket_aggregate(engine: sa.Engine, program_id: str) -> int:
    start = dt.datetime(2026, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    end = dt.datetime(2027, 1, 1, tzinfo=BERLIN).astimezone(dt.UTC)
    b = schema.tier_buckets
    stmt = (sa.select(b.c.member_id, sa.func.sum(b.c.value))
            .where(b.c.program_id == program_id, b.c.period_start >= start,
                   b.c.period_start < end)
            .group_by(b.c.member_id))
    with engine.connect() as conn:
        return len(conn.execute(stmt).all())


def bench(helpers: Any, backend: str, url: str | None, sizes: dict[str, int]
          ) -> dict[str, Any]:
    members = sizes["members"]
    with helpers.open_backend(backend, url) as (storage, engine, database, _owned):
        program_id = f"tiers-{uuid.uuid4().hex[:10]}"
        clock = TestClock(dt.datetime(2027, 1, 1, 1, tzinfo=BERLIN))
        loyalty = Loyalty(program(program_id), storage, clock=clock)
        loyalty.register()  # the seed writes rows around the facade
        if engine is None:  # memory
            states = seed_memory(storage, loyalty, members)
        else:
            seed(engine, loyalty, members)
        # PostgreSQL runs the batches on the machine's cores (as its own parallel
        # workers run the baseline); SQLite's writers take turns, so one worker there
        workers = 1 if backend != "postgresql" else max(1, os.cpu_count() or 1)
        batch = sizes.get("batch_size") or -(-members // workers)
        evaluation, one_worker, base, buckets, changes = [], [], [], [], 0
        for round_ in range(sizes["rounds"] + 1):  # round 0 warms up
            took = {}
            for n in sorted({1, workers}, reverse=True):
                if engine is None:
                    reset_memory(storage, states)
                else:
                    reset(engine, program_id)
                began = time.perf_counter()
                report = loyalty.run_due(
                    batch_size=batch if n > 1 or "batch_size" in sizes else members,
                    workers=n)
                took[n] = time.perf_counter() - began
                if report.tier_evaluations != members:
                    raise SystemExit(f"evaluated {report.tier_evaluations} of {members}")
                if changes and report.tier_changes != changes:
                    raise SystemExit(f"{report.tier_changes} changes, not {changes}")
                changes = report.tier_changes
            began = time.perf_counter()
            found = baseline(engine, program_id) if engine is not None \
                else baseline_memory(storage, program_id)
            if found != members:
                raise SystemExit("the baseline missed members")
            took_base = time.perf_counter() - began
            began = time.perf_counter()
            if engine is not None:
                bucket_aggregate(engine, program_id)
            took_buckets = time.perf_counter() - began
            if round_:
                evaluation.append(took[workers])
                one_worker.append(took[1])
                base.append(took_base)
                buckets.append(took_buckets)
        ratios = [e / b for e, b in zip(evaluation, base, strict=True)]
        ratio = statistics.median(ratios)
        return {
            "database": database, "members": members, "tier_changes": changes,
            "workers": workers, "evaluation_s": statistics.median(evaluation),
            "one_worker_s": statistics.median(one_worker),
            "one_worker_ratio": statistics.median(
                [e / b for e, b in zip(one_worker, base, strict=True)]),
            "baseline_s": statistics.median(base),
            "bucket_aggregate_s": statistics.median(buckets),
            "members_per_s": members / statistics.median(evaluation),
            "ratio": ratio, "target_max_ratio": TARGET, "pass": ratio <= TARGET,
            "rounds": ratios,
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append",
                        choices=("sqlite", "postgresql", "memory"))
    parser.add_argument("--members", type=int)
    parser.add_argument("--batch-size", type=int,
                        help="members per batch (default: one batch per worker)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--url", help="PostgreSQL URL (else a throwaway server)")
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.members:
        sizes["members"] = args.members
    if args.batch_size:
        sizes["batch_size"] = args.batch_size
    helpers = ledger_helpers()
    results: dict[str, Any] = {
        "quick": args.quick, "sizes": sizes,
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "evaluation": {},
    }
    started = time.perf_counter()
    for backend in args.backend or ["sqlite", "postgresql"]:
        r = results["evaluation"][backend] = bench(helpers, backend, args.url, sizes)
        print(f"tier evaluation on {r['database']}: {r['members']:,} members in "
              f"{r['evaluation_s']:.3f} s with {r['workers']} worker(s) "
              f"({r['members_per_s']:,.0f}/s, {r['tier_changes']:,} changed); hand-written "
              f"aggregate {r['baseline_s']:.3f} s; ratio {r['ratio']:.2f} (target <= "
              f"{TARGET}) -> {'PASS' if r['pass'] else 'FAIL'}; one worker "
              f"{r['one_worker_s']:.3f} s (ratio {r['one_worker_ratio']:.2f}); bucket "
              f"aggregate {r['bucket_aggregate_s']:.3f} s")
    results["seconds"] = time.perf_counter() - started
    print(json.dumps(results, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
