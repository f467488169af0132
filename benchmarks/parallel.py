"""Throughput of writes to different members: 1 process vs 8 processes (PostgreSQL).

    python benchmarks/parallel.py [--url URL] [--seconds S] [--processes N]

Each process earns points for members through its own engine and ``Loyalty`` facade,
as fast as it can, for ``--seconds``. Three layouts are measured in one run, on the
same server:

* ``1 process, 1 member``   — the baseline;
* ``N processes, N members`` — one member each: writes that must not serialise;
* ``N processes, 1 member``  — all on one member: writes that must serialise.

The first ratio should be clearly above 1 (bounded by the machine's cores: client and
server share them); the last shows what serialisation on one member's row lock costs.
Output ends with one JSON line holding every figure printed. Without ``--url`` (or
``LOYALTYKIT_BENCH_POSTGRESQL_URL``) a throwaway server is started from the machine's
PostgreSQL binaries (tests/_postgres.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _shared import URL_VARIABLE, postgresql_url

ROOT = Path(__file__).resolve().parents[1]


def _program() -> Any:
    from loyaltykit import ExpiryPolicy, LedgerPolicy, Money, Program

    return Program(id="parallel", time_zone="UTC", currency="EUR",
                   point_value=Money("0.01", "EUR"),
                   ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365)))


def _worker(url: str, member_id: str, worker: int, start: Any, stop_at: Any,
            results: Any) -> None:
    from loyaltykit import Loyalty
    from loyaltykit.sql import SQLStorage, create_engine

    engine = create_engine(url, pool_size=1)
    loyalty = Loyalty(_program(), SQLStorage(engine))
    start.wait()
    done = 0
    while time.time() < stop_at.value:
        loyalty.earn(member_id, 1, key=f"w{worker}-{os.getpid()}-{done}")
        done += 1
    results.put(done)
    engine.dispose()


def measure(url: str, processes: int, members: int, seconds: float) -> float:
    """Earns per second of ``processes`` workers spread over ``members`` members."""
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(processes + 1)
    stop_at = ctx.Value("d", 0.0, lock=False)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_worker,
                    args=(url, f"m{i % members}", i, start, stop_at, results))
        for i in range(processes)
    ]
    for w in workers:
        w.start()
    stop_at.value = time.time() + 3600  # until the real deadline is set below
    start.wait()
    began = time.time()
    stop_at.value = began + seconds
    total = sum(results.get(timeout=seconds + 60) for _ in workers)
    for w in workers:
        w.join()
    elapsed = max(time.time() - began, seconds)
    return total / elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help=f"PostgreSQL URL (default: ${URL_VARIABLE} or a "
                        "throwaway server)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT / "src"))
    from loyaltykit import Loyalty, TestClock
    from loyaltykit.sql import SQLStorage, create_engine

    with postgresql_url(args.url) as (url, _throwaway):
        engine = create_engine(url)
        storage = SQLStorage(engine)
        storage.upgrade()
        setup = Loyalty(_program(), storage,
                        clock=TestClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
        for i in range(args.processes):
            setup.enrol(f"m{i}")
        engine.dispose()

        n = args.processes
        layouts = {"1x1": (1, 1), f"{n}x{n}": (n, n), f"{n}x1": (n, 1)}
        rounds: dict[str, list[float]] = {name: [] for name in layouts}
        for _ in range(args.rounds):  # interleaved, so drift hits every layout alike
            for name, (procs, members) in layouts.items():
                rounds[name].append(measure(url, procs, members, args.seconds))
        median = {name: sorted(v)[len(v) // 2] for name, v in rounds.items()}
        spread = median[f"{n}x{n}"] / median["1x1"]
        one_member = median[f"{n}x1"] / median["1x1"]
        print(f"PostgreSQL earns per second ({os.cpu_count()} cores, median of "
              f"{args.rounds} rounds of {args.seconds:g} s)")
        print(f"  1 process,  1 member:   {median['1x1']:8.0f}/s")
        print(f"  {n} processes, {n} members: {median[f'{n}x{n}']:8.0f}/s   "
              f"{spread:.2f}x one process")
        print(f"  {n} processes, 1 member:  {median[f'{n}x1']:8.0f}/s   "
              f"{one_member:.2f}x one process")
        print(json.dumps({
            "backend": "postgresql", "cpus": os.cpu_count(), "seconds": args.seconds,
            "rounds": rounds, "median": median,
            "ratio_spread_members": spread, "ratio_one_member": one_member,
        }, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
