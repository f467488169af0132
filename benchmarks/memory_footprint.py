#!/usr/bin/env python
"""Measure what the memory backend keeps: replay the CDNOW orders into a MemoryStorage.

Run as a plain script::

    python benchmarks/memory_footprint.py [--data PATH] [--orders N] [--quick]

Every order of the CDNOW master file (69,659 purchases of 23,570 customers, 1997-1998;
``--data``, default ``/work/shared/data/cdnow/CDNOW_master.txt``, else the 1/10 sample
shipped in tests/data/cdnow/) is recorded one by one with ``record_order`` (each
customer enrolled at its first purchase), on a program with one base rate (1 point per
dollar) and three tiers over the calendar year, then the due work of 1 January 1998 runs
(the year-end tier evaluation). ``--quick`` replays the first 2,000 orders of the
sample.

Measured in this process (nothing else has run in it):

* ``peak_rss_mib``: the process's peak resident set (``resource.getrusage``), the
  interpreter, the library and the parsed input included;
* ``before_mib``: the resident set before the first order (interpreter, library,
  parsed input): ``kept_mib`` = RSS after the replay - ``before_mib``, and
  ``bytes_per_order`` = that over the orders: what the storage keeps per order;
* ``orders_per_s`` of the replay, and ``due_s``: the year-end due work.

The last line of output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import (  # noqa: E402
    Base,
    EarningPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit.memory import MemoryStorage  # noqa: E402

MASTER = Path("/work/shared/data/cdnow/CDNOW_master.txt")
SAMPLE = ROOT / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"
QUICK_ORDERS = 2_000


def program() -> Program:
    return Program(
        id="cdnow", time_zone="America/New_York", currency="USD",
        point_value=Money("0.01", "USD"),
        earning=EarningPolicy(rules=(RateRule(
            id="base", description="1 point per dollar", points=Decimal(1),
            per=Decimal("1.00"), base=Base.NET_GOODS),)),
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 100), Tier("gold", 500))))


def read_orders(path: Path, limit: int | None) -> list[tuple[str, dt.datetime, int, str]]:
    """(customer, placed at, CDs, dollars) per purchase; the sample's first column is
    the master file's customer id."""
    out = []
    with path.open() as lines:
        for row in lines:
            parts = row.split()
            if not parts or not parts[0].isdigit():
                continue
            customer, day = parts[0], parts[-3]
            placed = dt.datetime(int(day[:4]), int(day[4:6]), int(day[6:]), 17,
                                 tzinfo=dt.UTC)
            out.append((customer, placed, int(parts[-2]), parts[-1]))
            if limit is not None and len(out) >= limit:
                break
    return out


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def replay(rows: Sequence[tuple[str, dt.datetime, int, str]]) -> dict[str, Any]:
    clock = TestClock(rows[0][1])
    loyalty = Loyalty(program(), MemoryStorage(), clock=clock)
    gc.collect()
    before = rss_mib()
    enrolled: set[str] = set()
    points = 0
    began = time.perf_counter()
    for n, (customer, placed, cds, dollars) in enumerate(rows):
        clock.set(placed)
        if customer not in enrolled:
            loyalty.enrol(customer)
            enrolled.add(customer)
        order = Order(id=str(n), member_id=customer, placed_at=placed, currency="USD",
                      lines=(OrderLine(sku="cd", quantity=1, category="music",
                                       unit_price=Money(dollars, "USD")),),
                      attributes={"cds": cds})
        points += loyalty.record_order(order).points
    took = time.perf_counter() - began
    clock.set(dt.datetime(1998, 1, 1, 6, tzinfo=dt.UTC))
    began = time.perf_counter()
    due = loyalty.run_due(batch_size=5_000)
    due_s = time.perf_counter() - began
    gc.collect()
    kept = rss_mib() - before
    return {"orders": len(rows), "members": len(enrolled), "points": points,
            "seconds": took, "orders_per_s": len(rows) / took,
            "tier_evaluations": due.tier_evaluations, "due_s": due_s,
            "before_mib": before, "kept_mib": kept,
            "bytes_per_order": kept * 2**20 / len(rows)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="a CDNOW file (master or sample)")
    parser.add_argument("--orders", type=int, help="replay only the first N orders")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    path = args.data or (SAMPLE if args.quick or not MASTER.exists() else MASTER)
    limit = args.orders or (QUICK_ORDERS if args.quick else None)
    rows = read_orders(path, limit)
    result = replay(rows)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.update(data=path.name, quick=args.quick, backend="memory",
                  environment={"python": platform.python_version(), "cpus": os.cpu_count()})
    print(f"{result['orders']:,} orders of {result['members']:,} members in memory: "
          f"{result['seconds']:.1f} s ({result['orders_per_s']:,.0f}/s); peak RSS "
          f"{result['peak_rss_mib']:.0f} MiB, {result['kept_mib']:.0f} MiB kept "
          f"({result['bytes_per_order']:,.0f} bytes per order); year-end due work "
          f"{result['due_s']:.2f} s")
    print(json.dumps(result, separators=(",", ":"), default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
