#!/usr/bin/env python
"""Benchmark a facade per request: binding one, against a balance read.

Run as a plain script::

    python benchmarks/binding.py --backend sqlite|postgresql|memory [--quick] [--url URL]

For ``postgresql`` the server is ``--url``, else the ``LOYALTYKIT_BENCH_POSTGRESQL_URL``
environment variable, else a throwaway server started from the PostgreSQL binaries on
the machine (``tests/_postgres.py``), as ``benchmarks/ledger.py`` does. A web app joins
each request's transaction with a facade of its own; this measures what that costs,
every figure per request, in alternating blocks against the baseline in the same run:

* ``read_per_s`` (the baseline): one ``balance()`` on a facade built once.
* ``bind_and_read_per_s``: ``loyalty.bind(storage)`` then one ``balance()`` on the
  bound facade (no check of the program, no query); ``bind_overhead_ratio`` = time
  per request bound / the baseline's (``..._cpu_ratio``: the same of the thread's CPU
  time, steadier on a busy machine).
* ``build_and_read_per_s``: ``Loyalty(program, storage)`` then one ``balance()``:
  building checks the program against the stored versions (one read; no write since
  issue 24, when it also registered the program); ``build_overhead_ratio`` likewise.

The member read holds a few postings. Figures are medians over rounds. ``--quick`` is a
smoke run with tiny sizes. The last line of output is one JSON object holding every
figure printed.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _shared import backend_parser, ledger_helpers

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from loyaltykit import Loyalty, Money, Program, Storage  # noqa: E402
from loyaltykit.sql import SQLStorage  # noqa: E402

#: benchmarks/ledger.py: its backends and its interleaved measuring.
L = ledger_helpers()

FULL = {"rounds": 7, "ops_per_round": 400, "block": 20, "members": 50}
QUICK = {"rounds": 2, "ops_per_round": 20, "block": 5, "members": 5}


def program(pid: str) -> Program:
    return Program(id=pid, time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"))


class Bench:
    def __init__(self, storage: Storage, engine: sa.Engine | None,
                 sizes: dict[str, Any]) -> None:
        self.storage = storage
        self.engine = engine
        self.sizes = sizes
        self.pid = f"bench-binding-{uuid.uuid4().hex[:10]}"
        self.program = program(self.pid)
        self.loyalty = Loyalty(self.program, storage)
        self.members = [f"m{i}" for i in range(sizes["members"])]
        for member in self.members:
            self.loyalty.enrol(member)
            for n in range(3):
                self.loyalty.earn(member, 10 + n, key=f"{member}-{n}")

    def _read(self) -> Callable[[list[str], int], None]:
        loyalty = self.loyalty

        def run(members: list[str], i: int) -> None:
            loyalty.balance(members[i % len(members)])
        return run

    def versus(self, per_request: Callable[[list[str], int], None]) -> dict[str, Any]:
        """``per_request`` against one balance read on the facade built once."""
        members = self.members
        result: dict[str, Any] = L.interleaved(
            (lambda tag: members, per_request), (lambda tag: members, self._read()),
            self.sizes["ops_per_round"], self.sizes["block"], self.sizes["rounds"])
        return result

    def bind(self) -> dict[str, Any]:
        loyalty, storage = self.loyalty, self.storage

        def run(members: list[str], i: int) -> None:
            loyalty.bind(storage).balance(members[i % len(members)])
        return self.versus(run)

    def build(self) -> dict[str, Any]:
        prog, storage = self.program, self.storage

        def run(members: list[str], i: int) -> None:
            Loyalty(prog, storage).balance(members[i % len(members)])
        return self.versus(run)

    def cleanup(self) -> None:
        if self.engine is None:
            return
        with self.engine.begin() as conn:
            for table in reversed(SQLStorage.metadata.sorted_tables):
                column = table.c.id if table.name == "lk_programs" else table.c.program_id
                conn.execute(table.delete().where(column == self.pid))


def report(results: dict[str, Any]) -> None:
    print(f"\nloyaltykit binding benchmark: backend={results['backend']}"
          f"{' (quick)' if results['quick'] else ''}  [{results['environment']['database']}]")
    print(f"one balance read (facade built once)  {results['read_per_s']:,.0f}/s")
    print(f"bind + one balance read               {results['bind_and_read_per_s']:,.0f}/s"
          f"   {results['bind_overhead_ratio']:.3f}x the read")
    print(f"build + one balance read              {results['build_and_read_per_s']:,.0f}/s"
          f"   {results['build_overhead_ratio']:.3f}x the read")
    print(json.dumps(results, separators=(",", ":"), default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = backend_parser(__doc__)
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    started = time.perf_counter()
    with L.open_backend(args.backend, args.url) as (storage, engine, database, owned):
        bench = Bench(storage, engine, sizes)
        try:
            bind = bench.bind()
            build = bench.build()
        finally:
            if not owned:
                bench.cleanup()
    results: dict[str, Any] = {
        "backend": args.backend, "quick": args.quick,
        "environment": {"database": database, "python": platform.python_version(),
                        "sqlalchemy": sa.__version__, "cpus": os.cpu_count()},
        "sizes": sizes,
        # the baseline, measured beside the bound side (the build side's is its own)
        "read_per_s": bind["b"],
        "bind_and_read_per_s": bind["a"],
        "bind_overhead_ratio": bind["ratio"],
        "bind_overhead_cpu_ratio": bind["cpu_ratio"],
        "bind_overhead_rounds": bind["ratios"],
        "build_and_read_per_s": build["a"],
        "build_read_per_s": build["b"],
        "build_overhead_ratio": build["ratio"],
        "build_overhead_cpu_ratio": build["cpu_ratio"],
        "build_overhead_rounds": build["ratios"],
        "seconds": time.perf_counter() - started,
    }
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
