#!/usr/bin/env python
"""How long ``issue_code`` takes when the program has many codes stored already.

Run as a plain script::

    python benchmarks/code_volume.py [--backend sqlite|postgresql ...] [--stored N]
        [--issued M] [--url URL]

The program plans for ``--stored`` + ``--issued`` codes (``CodeSpec(length=10,
planned=...)``). ``--stored`` codes (default a million) are seeded with bulk inserts
straight into ``lk_referral_codes`` (one member holds them all; on a schema with the
per-program counter, ``lk_code_counters`` is set to their number as migration 0009
would), then ``Loyalty.issue_code`` is timed once for each of ``--issued`` members
(default 200) enrolled beforehand (untimed). Printed: the median and mean time per
call, and the same for ``--issued`` calls on a program with no codes stored, so the
difference is what the stored codes cost. The issue guard (``CodeSpec.planned``) must
know how many codes the program has: before migration 0009 it counted them on every
call; since, it reads and bumps one counter row.

For ``postgresql`` the server is ``--url``, else ``LOYALTYKIT_BENCH_POSTGRESQL_URL``,
else a throwaway server started from the machine's binaries (``tests/_postgres.py``).
Use a scratch database: the seeded rows stay. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _shared import ledger_helpers

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import (  # noqa: E402
    CodeSpec,
    Loyalty,
    Money,
    Program,
    ReferralPolicy,
    ReferralReward,
    TestClock,
)
from loyaltykit._codes import ALPHABET  # noqa: E402

START = dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)
CHUNK = 20_000


def program(program_id: str, planned: int) -> Program:
    policy = ReferralPolicy(reward=ReferralReward(referrer=500, referee=250),
                            code=CodeSpec(length=10, group=5, check=False, planned=planned))
    return Program(id=program_id, time_zone="UTC", currency="EUR",
                   point_value=Money("0.01", "EUR"), referrals=policy)


def seed(engine: sa.Engine, loyalty: Loyalty, stored: int) -> float:
    """Insert ``stored`` codes for one member in bulk; return the seconds it took."""
    started = time.perf_counter()
    program_id = loyalty.program.id
    loyalty.enrol("seed")
    meta = sa.MetaData()
    with engine.begin() as conn:
        meta.reflect(conn, only=lambda name, _: name in {
            "lk_member_ids", "lk_referral_codes", "lk_code_counters"})
        ids = meta.tables["lk_member_ids"]
        key = conn.scalar(sa.select(ids.c.member_id).where(
            ids.c.program_id == program_id, ids.c.external_id == "seed"))
        codes = meta.tables["lk_referral_codes"]
        # codes of 11 symbols: never one that a 10-symbol spec draws
        drawn: set[str] = set()
        while len(drawn) < stored:
            drawn.add("".join(secrets.choice(ALPHABET) for _ in range(11)))
        rows = [{"program_id": program_id, "code": c, "shown": c, "member_id": key,
                 "source": "customer", "created_at": START, "expires_at": None,
                 "max_uses": None, "uses": 0} for c in drawn]
        for at in range(0, len(rows), CHUNK):
            conn.execute(codes.insert(), rows[at:at + CHUNK])
        counters = meta.tables.get("lk_code_counters")
        if counters is not None:
            conn.execute(counters.insert(), {"program_id": program_id, "issued": stored})
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE lk_referral_codes")
        else:
            conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def time_issues(loyalty: Loyalty, issued: int, tag: str) -> list[float]:
    members = [f"{tag}-{i}" for i in range(issued)]
    for m in members:
        loyalty.enrol(m)
    times = []
    for m in members:
        started = time.perf_counter()
        loyalty.referrals.issue_code(m)
        times.append(time.perf_counter() - started)
    return times


def bench(helpers: Any, backend: str, url: str | None, stored: int, issued: int
          ) -> dict[str, Any]:
    with helpers.open_backend(backend, url) as (storage, engine, database, _owned):
        planned = stored + 2 * issued
        run = uuid.uuid4().hex[:8]
        empty = Loyalty(program(f"empty-{run}", planned), storage, clock=TestClock(START))
        full = Loyalty(program(f"full-{run}", planned), storage, clock=TestClock(START))
        full.register()  # the seed writes rows around the facade
        seeded_s = seed(engine, full, stored)
        time_issues(empty, 20, "warm")
        base = time_issues(empty, issued, "e")
        timed = time_issues(full, issued, "f")
        ms = 1000.0
        return {"database": database, "stored": stored, "issued": issued,
                "seed_s": round(seeded_s, 1),
                "median_ms": round(statistics.median(timed) * ms, 2),
                "mean_ms": round(statistics.fmean(timed) * ms, 2),
                "empty_median_ms": round(statistics.median(base) * ms, 2),
                "empty_mean_ms": round(statistics.fmean(base) * ms, 2)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", action="append", choices=("sqlite", "postgresql"),
                        help="repeatable; default sqlite and postgresql")
    parser.add_argument("--stored", type=int, default=1_000_000,
                        help="codes seeded before timing")
    parser.add_argument("--issued", type=int, default=200, help="issue_code calls timed")
    parser.add_argument("--url", help="PostgreSQL URL (else $LOYALTYKIT_BENCH_POSTGRESQL_URL, "
                                      "else a throwaway server)")
    args = parser.parse_args(argv)
    if args.stored < 0 or args.issued < 1:
        parser.error("--stored must be >= 0 and --issued >= 1")
    helpers = ledger_helpers()
    results = {}
    for backend in args.backend or ["sqlite", "postgresql"]:
        r = results[backend] = bench(helpers, backend, args.url, args.stored, args.issued)
        print(f"{r['database']}: issue_code with {r['stored']:,} codes stored: median "
              f"{r['median_ms']} ms, mean {r['mean_ms']} ms ({r['issued']} calls); with "
              f"none stored: median {r['empty_median_ms']} ms, mean {r['empty_mean_ms']} ms "
              f"(seeded in {r['seed_s']} s)")
    print(json.dumps(results, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
