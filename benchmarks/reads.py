"""Reads beside a writer on a SQLite file, measured in one run against a baseline.

loyaltykit's reads use the storage's read-only unit of work: on SQLite a deferred
``BEGIN`` that takes no write lock, so in WAL mode they run while a writer holds it. The
*baseline* is the same facade on the same kind of database whose storage offers no
``read_unit_of_work``, so its reads run in ordinary units of work (``BEGIN IMMEDIATE``,
queueing behind writers: how every read ran before). Each side has its own database file.

* ``read_during_write_ms``: one ``balance()`` while another connection holds the write
  lock (an uncommitted UPDATE) for ``--hold`` seconds; the baseline waits for it.
* ``reads_per_s``: ``balance()`` calls per second of ``--readers`` threads while one
  writer thread earns points for ``--seconds``; ``writes_per_s``: the writer's earns
  per second meanwhile. ``reads_ratio`` = loyaltykit's reads per second / the
  baseline's (above 1: reads no longer wait for the writer).

Usage: ``python benchmarks/reads.py [--quick] [--readers N] [--seconds S] [--hold S]``.
Figures on a busy machine are noisy. The last line of output is one JSON object:
``{"sqlite": {...every figure above, the baseline's prefixed "baseline_"...}}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from loyaltykit import Loyalty, Money, Program
from loyaltykit.sql import SQLStorage
from loyaltykit.storage import ProgramVersion, Storage, UnitOfWork

PROGRAM = Program(id="reads", time_zone="UTC", currency="EUR",
                  point_value=Money("0.01", "EUR"))
MEMBERS = 100  # (--quick: 20)


class OrdinaryReads:
    """The baseline's storage: the SQL storage without ``read_unit_of_work``, so the
    facade reads in ordinary units of work (``BEGIN IMMEDIATE`` on SQLite)."""

    def __init__(self, inner: SQLStorage) -> None:
        self.inner = inner

    @property
    def concurrent(self) -> bool:
        return self.inner.concurrent

    def unit_of_work(self, program_id: str) -> UnitOfWork:
        return self.inner.unit_of_work(program_id)

    def register_program(self, version: ProgramVersion) -> None:
        self.inner.register_program(version)


def _side(path: Path, baseline: bool, members: int) -> tuple[SQLStorage, Loyalty]:
    storage = SQLStorage.from_url(f"sqlite:///{path}")
    storage.create_schema()
    used: Storage = OrdinaryReads(storage) if baseline else storage
    loyalty = Loyalty(PROGRAM, used)
    for i in range(members):
        loyalty.enrol(f"m{i}")
    loyalty.bulk_earn([(f"m{i}", 100) for i in range(members)], key="seed")
    return storage, loyalty


def read_during_write(path: Path, loyalty: Loyalty, hold: float) -> float:
    """Milliseconds of one balance() while another connection holds the write lock."""
    ready, done = threading.Event(), threading.Event()

    def writer() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE lk_accounts SET available = 0")
            ready.set()
            done.wait(hold)
            other.execute("ROLLBACK")
        finally:
            other.close()

    thread = threading.Thread(target=writer)
    thread.start()
    ready.wait()
    began = time.perf_counter()
    balance = loyalty.balance("m0")
    took = time.perf_counter() - began
    done.set()
    thread.join()
    if balance.available != 100:  # the writer's uncommitted UPDATE must not show
        raise SystemExit(f"read saw uncommitted state: {balance.available}")
    return took * 1000


def mixed(loyalty: Loyalty, members: int, readers: int, seconds: float
          ) -> tuple[float, float]:
    """(reads per second, writes per second) of reader threads beside one writer."""
    stop = threading.Event()
    reads = [0] * readers
    writes = [0]

    def read(n: int) -> None:
        rng = random.Random(n)
        while not stop.is_set():
            loyalty.balance(f"m{rng.randrange(members)}")
            reads[n] += 1

    def write() -> None:
        rng = random.Random(-1)
        while not stop.is_set():
            loyalty.earn(f"m{rng.randrange(members)}", 1, key=f"w{writes[0]}")
            writes[0] += 1

    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    threads.append(threading.Thread(target=write))
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return sum(reads) / elapsed, writes[0] / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--readers", type=int, default=None)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--hold", type=float, default=None)
    args = parser.parse_args(argv)
    readers = args.readers or (2 if args.quick else 4)
    seconds = args.seconds or (0.5 if args.quick else 3.0)
    hold = args.hold or (0.2 if args.quick else 1.0)
    members = 20 if args.quick else MEMBERS
    figures: dict[str, Any] = {"members": members, "readers": readers, "seconds": seconds,
                               "hold_s": hold}
    with tempfile.TemporaryDirectory() as folder:
        for baseline in (False, True):
            path = Path(folder) / ("baseline.sqlite" if baseline else "loyaltykit.sqlite")
            storage, loyalty = _side(path, baseline, members)
            try:
                prefix = "baseline_" if baseline else ""
                waited = read_during_write(path, loyalty, hold)
                reads, writes = mixed(loyalty, members, readers, seconds)
            finally:
                storage.dispose()
            figures[f"{prefix}read_during_write_ms"] = round(waited, 2)
            figures[f"{prefix}reads_per_s"] = round(reads, 1)
            figures[f"{prefix}writes_per_s"] = round(writes, 1)
            print(f"{'baseline ' if baseline else 'loyaltykit'}: a read during a "
                  f"{hold:g} s write transaction took {waited:.1f} ms; {reads:.0f} reads/s "
                  f"beside {writes:.0f} writes/s ({readers} readers)")
    base = figures["baseline_reads_per_s"]
    figures["reads_ratio"] = round(figures["reads_per_s"] / base, 3) if base else None
    figures["at"] = dt.datetime.now(dt.UTC).isoformat()
    print(json.dumps({"sqlite": figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
