#!/usr/bin/env python
"""Benchmark the outbox: what it costs writers, and how fast one consumer reads.

Run as a plain script::

    python benchmarks/events.py --backend sqlite|postgresql [--quick]

For ``postgresql`` the server is ``--url``, else the ``LOYALTYKIT_BENCH_POSTGRESQL_URL``
environment variable, else a throwaway server started from the PostgreSQL binaries on
the machine (``tests/_postgres.py``), as ``benchmarks/ledger.py`` does. Measured:

* ``earn_with_outbox_per_s`` / ``earn_without_outbox_per_s``: ``Loyalty.earn`` on one
  connection, with the outbox (every earn appends its ``points.earned`` event) and
  without it (the same facade with the events service's subscribers taken off the
  bus), in alternating blocks of 10 on fresh members each round;
  ``outbox_overhead_ratio`` = time with / time without (target <= 1.15).
* ``read_events_per_s``: one consumer reading and acknowledging every event of a
  program holding ``read_events`` of them (``read`` 1,000 at a time, ``ack`` after
  each batch) (target >= 20,000 on PostgreSQL). The events are seeded just before
  (bulk earns), so on PostgreSQL the run then runs ``ANALYZE lk_outbox``, as
  autovacuum does on a live server within its naptime (a minute) and as PostgreSQL
  advises after a bulk load: a table read before any statistics exist gets a plan
  that sorts every event after the position for each batch (about 13,000/s here
  against 21,000/s with statistics).
* ``parallel_8_members_ratio``: 8 processes, each earning on a member of its own, all
  at once: earns per second with the outbox / without (target >= 0.9 on PostgreSQL:
  writers of different members do not wait for one another because of the outbox).
  On SQLite every write takes the database's one write lock, so the writers take
  turns with or without the outbox and the ratio is about 1 / ``outbox_overhead_ratio``
  (printed, no target).

Figures are medians over rounds. ``--quick`` is a smoke run with tiny sizes. The last
line of output is one JSON object holding every figure printed.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import sys
import time
import traceback
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

MAX_OVERHEAD = 1.15
MIN_READ_PER_S = 20_000.0
MIN_PARALLEL_RATIO = 0.9

FULL = {
    "rounds": 7,
    "ops_per_round": 200,
    "block": 10,
    "read_events": 50_000,
    "read_batch": 1_000,
    "processes": 8,
    "per_process": 300,
    "parallel_rounds": 3,
}
QUICK = {
    "rounds": 2,
    "ops_per_round": 20,
    "block": 5,
    "read_events": 500,
    "read_batch": 100,
    "processes": 8,
    "per_process": 10,
    "parallel_rounds": 1,
}


def program(pid: str) -> Program:
    return Program(id=pid, time_zone="UTC", currency="EUR", point_value=Money("0.01", "EUR"))


def without_outbox(loyalty: Loyalty) -> Loyalty:
    """``loyalty`` with the events service's subscribers taken off its bus: its writes
    append no event (for comparison only; the library has no such switch)."""
    handlers = loyalty._c.bus._handlers
    for kind, found in handlers.items():
        handlers[kind] = [h for h in found
                          if not getattr(h, "__qualname__", "").startswith("EventService.")]
    return loyalty


class Bench:
    def __init__(self, backend: str, storage: Storage, engine: sa.Engine | None,
                 sizes: dict[str, Any]) -> None:
        self.backend = backend
        self.storage = storage
        self.engine = engine
        self.sizes = sizes
        self.pid = f"bench-events-{uuid.uuid4().hex[:10]}"
        self.program = program(self.pid)
        self.with_ = Loyalty(self.program, storage)
        self.without = without_outbox(Loyalty(self.program, storage))
        self._serial = 0

    def members(self, prefix: str, n: int) -> list[str]:
        ids = [f"{prefix}-{i}" for i in range(n)]
        for member in ids:
            self.with_.enrol(member)
        return ids

    def earn(self) -> dict[str, Any]:
        n = self.sizes["ops_per_round"]

        def prepare(label: str) -> Callable[[str], list[str]]:
            return lambda tag: self.members(f"earn-{label}-{tag}", 10)

        def step(loyalty: Loyalty, label: str) -> Callable[[list[str], int], None]:
            def run(members: list[str], i: int) -> None:
                self._serial += 1
                loyalty.earn(members[i % 10], 10, key=f"{label}-{self._serial}")
            return run

        result = L.interleaved((prepare("with"), step(self.with_, "with")),
                               (prepare("without"), step(self.without, "without")),
                               n, self.sizes["block"], self.sizes["rounds"])
        return {"with_per_s": result["a"], "without_per_s": result["b"],
                "ratio": result["ratio"], "rounds": result["ratios"]}

    def read(self) -> dict[str, Any]:
        """Seed ``read_events`` events (bulk earns: one event per member) under a
        program of their own, then time one consumer through all of them."""
        total = self.sizes["read_events"]
        pid = f"{self.pid}-read"
        loyalty = Loyalty(program(pid), self.storage)
        members = [f"r-{i}" for i in range(min(1_000, total // 2))]
        for member in members:
            loyalty.enrol(member)
        made = len(members)  # the enrolments' events
        while made < total:
            chunk = members[:min(len(members), total - made)]
            loyalty.bulk_earn([(m, 1) for m in chunk], key=f"seed-{made}")
            made += len(chunk)
        if self.engine is not None and self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:  # what autovacuum does after a bulk load
                conn.exec_driver_sql("ANALYZE lk_outbox")
        rates = []
        for r in range(self.sizes["rounds"]):
            consumer, read = f"reader-{r}", 0
            started = time.perf_counter()
            while batch := loyalty.events.read(consumer, limit=self.sizes["read_batch"]):
                read += len(batch)
                loyalty.events.ack(consumer, batch[-1])
            rates.append(read / (time.perf_counter() - started))
            if read != total:
                raise RuntimeError(f"read {read} events of {total}")
        return {"per_s": statistics.median(rates), "rounds": rates, "events": total}

    def parallel(self) -> dict[str, Any] | None:
        if self.engine is None:
            return None
        url = self.engine.url.render_as_string(hide_password=False)
        ratios, with_rates, without_rates = [], [], []
        for r in range(self.sizes["parallel_rounds"] + 1):  # round 0 warms up
            sides = [("with", True), ("without", False)]
            rates = {}
            for name, outbox in (sides if r % 2 == 0 else sides[::-1]):
                members = self.members(f"par-{name}-{r}", self.sizes["processes"])
                rates[name] = _run_processes(url, self.program, members,
                                             self.sizes["per_process"], outbox, self.engine)
            if r == 0:
                continue
            with_rates.append(rates["with"])
            without_rates.append(rates["without"])
            ratios.append(rates["with"] / rates["without"])
        return {"with_per_s": statistics.median(with_rates),
                "without_per_s": statistics.median(without_rates),
                "ratio": statistics.median(ratios), "rounds": ratios}

    def cleanup(self) -> None:
        if self.engine is None:
            return
        with self.engine.begin() as conn:
            for pid in (self.pid, f"{self.pid}-read"):
                for table in reversed(SQLStorage.metadata.sorted_tables):
                    column = table.c.id if table.name == "lk_programs" else table.c.program_id
                    conn.execute(table.delete().where(column == pid))


def _worker(url: str, prog: Program, member: str, writes: int, outbox: bool,
            barrier: Any, results: Any) -> None:
    try:
        storage = SQLStorage.from_url(url)
        try:
            loyalty = Loyalty(prog, storage)
            if not outbox:
                without_outbox(loyalty)
            loyalty.balance(member)
            barrier.wait(timeout=120)
            started = time.perf_counter()
            for i in range(writes):
                loyalty.earn(member, 1, key=f"{member}-{i}")
            results.put((True, started, time.perf_counter()))
        finally:
            storage.dispose()
    except BaseException:
        results.put((False, traceback.format_exc(), 0.0))


def _run_processes(url: str, prog: Program, members: Sequence[str], writes: int,
                   outbox: bool, engine: sa.Engine) -> float:
    """Earns per second of one process per member, all started together."""
    engine.dispose()  # no open connection (SQLite's above all) while forking
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(members))
    results = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(url, prog, m, writes, outbox, barrier,
                                                 results)) for m in members]
    for w in workers:
        w.start()
    try:
        reports = [results.get(timeout=600) for _ in workers]
    finally:
        for w in workers:
            w.join(timeout=60)
    failed = [r[1] for r in reports if not r[0]]
    if failed:
        raise RuntimeError("a worker failed:\n" + failed[0])
    seconds = max(r[2] for r in reports) - min(r[1] for r in reports)
    return len(members) * writes / seconds


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(results: dict[str, Any]) -> None:
    import json

    print(f"\nloyaltykit events benchmark: backend={results['backend']}"
          f"{' (quick)' if results['quick'] else ''}  [{results['environment']['database']}]")
    print(f"earn with the outbox    {_num(results['earn_with_outbox_per_s'])}/s")
    print(f"earn without it         {_num(results['earn_without_outbox_per_s'])}/s   "
          f"overhead {results['outbox_overhead_ratio']:.3f}x (<= {MAX_OVERHEAD}x)")
    print(f"one consumer reads      {_num(results['read_events_per_s'])} events/s"
          f" (of {results['sizes']['read_events']:,})")
    if results["parallel_8_members_ratio"] is not None:
        print(f"{results['sizes']['processes']} processes, a member each: with "
              f"{_num(results['parallel_with_outbox_per_s'])}/s, without "
              f"{_num(results['parallel_without_outbox_per_s'])}/s, ratio "
              f"{results['parallel_8_members_ratio']:.3f} (>= {MIN_PARALLEL_RATIO})")
    print(json.dumps(results, separators=(",", ":"), default=str))


def main(argv: Sequence[str] | None = None) -> int:
    parser = backend_parser(__doc__)
    args = parser.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    started = time.perf_counter()
    with L.open_backend(args.backend, args.url) as (storage, engine, database, owned):
        bench = Bench(args.backend, storage, engine, sizes)
        try:
            earn = bench.earn()
            print(f"  earn done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            read = bench.read()
            print(f"  read done ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
            parallel = bench.parallel()
        finally:
            if not owned:
                bench.cleanup()
    targets = {"outbox_overhead_ratio": earn["ratio"] <= MAX_OVERHEAD}
    if args.backend == "postgresql":
        targets["read_events_per_s"] = read["per_s"] >= MIN_READ_PER_S
    if parallel is not None and args.backend == "postgresql":
        targets["parallel_8_members_ratio"] = parallel["ratio"] >= MIN_PARALLEL_RATIO
    results: dict[str, Any] = {
        "backend": args.backend, "quick": args.quick,
        "environment": {"database": database, "python": platform.python_version(),
                        "sqlalchemy": sa.__version__, "cpus": os.cpu_count()},
        "sizes": sizes,
        "earn_with_outbox_per_s": earn["with_per_s"],
        "earn_without_outbox_per_s": earn["without_per_s"],
        "outbox_overhead_ratio": earn["ratio"],
        "outbox_overhead_rounds": earn["rounds"],
        "read_events_per_s": read["per_s"],
        "read_rounds": read["rounds"],
        "parallel_with_outbox_per_s": parallel["with_per_s"] if parallel else None,
        "parallel_without_outbox_per_s": parallel["without_per_s"] if parallel else None,
        "parallel_8_members_ratio": parallel["ratio"] if parallel else None,
        "parallel_rounds": parallel["rounds"] if parallel else None,
        "targets": {"passed": sorted(k for k, v in targets.items() if v),
                    "missed": sorted(k for k, v in targets.items() if not v)},
        "seconds": time.perf_counter() - started,
    }
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
