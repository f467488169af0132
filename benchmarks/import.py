"""Benchmark the history import: the CDNOW master file through ``Loyalty.record_orders``.

Every purchase of the CDNOW master file (69,659 orders of 23,570 customers, 1997-01 to
1998-06; tests/data/cdnow/SOURCE.md) is imported with ``enrol=True`` into a program with
a points rate, a stamp card and three tiers, on each backend, each in a process of its
own (its peak RSS is the process's; the orders are streamed from the file's sorted
rows into the import, as a shop would read its history). Per backend:

* ``orders``, ``seconds``, ``orders_per_s``, ``peak_rss_mib``, ``batches``, ``rows``
  (rows the import wrote, every table) and, on SQL backends, ``raw_rows_per_s``: the
  same rows, read back after the import, inserted into an empty copy of the schema with
  one ``executemany`` per table in one transaction (the floor of writing them), and
  ``percent_of_raw`` = import rows/s / raw rows/s x 100 (target >= 50).
* ``totals``: points earned, members, members per tier at 1997-12-31, which must equal
  those of recording the same orders one by one (each member enrolled first, in memory,
  same run: ``one_by_one``); the run exits non-zero otherwise.

``--quick`` imports the first 200 purchases of the 1/10 sample shipped in tests/data
(tests/package/test_benchmarks.py runs it). The last line of output is one JSON object.
Figures are noisy on a busy machine: compare ratios of one run, not runs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loyaltykit import (
    EarningPolicy,
    LedgerPolicy,
    Loyalty,
    Money,
    Order,
    OrderLine,
    Program,
    QualificationWindow,
    RateRule,
    StampCardRule,
    Storage,
    TestClock,
    Tier,
    TierPolicy,
    WindowKind,
)

# SQLAlchemy (and the helpers that load it) only where a SQL backend runs: the memory
# backend's child measures the import's peak RSS, to which SQLAlchemy's ~15 MiB of
# modules, unused by loyaltykit.memory, do not belong
if TYPE_CHECKING:
    import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "tests" / "data" / "cdnow"
MASTER_NAMES = ("CDNOW_master.txt",)
MASTER_DIRS = (DATA, Path("/work/shared/data/cdnow"))
QUICK_ORDERS = 200
#: the instant the clock stands at: after the last purchase (1998-06-30)
NOW = dt.datetime(1998, 7, 1, tzinfo=dt.UTC)
TIERS_AT = dt.datetime(1997, 12, 31, 23, 59, tzinfo=dt.UTC)
TARGET_PERCENT = 50.0
#: the memory backend's peak RSS target for the import (issue 22), MiB
TARGET_MEMORY_MIB = 250.0
#: orders per batch: the storage's own unless --batch-size says (SQLite 5000,
#: PostgreSQL 1000, memory 500: see loyaltykit.storage.BatchingStorage)
BATCH_SIZE: int | None = None
BACKENDS = ("sqlite", "postgresql", "memory")


def program(program_id: str = "cdnow") -> Program:
    """A dollar a point, a stamp card (every 5th order: 25 points), three tiers on the
    calendar year's points."""
    return Program(
        id=program_id, time_zone="America/New_York", currency="USD",
        point_value=Money("0.01", "USD"), wallets=("points",), ledger=LedgerPolicy(),
        earning=EarningPolicy(rules=(
            RateRule(id="rate"),
            StampCardRule(id="card", every=5, points=25),
        )),
        tiers=TierPolicy(tiers=(Tier("member", 0), Tier("silver", 200), Tier("gold", 1000)),
                         window=QualificationWindow(WindowKind.CALENDAR_YEAR)),
    )


def master_file() -> Path:
    for directory in MASTER_DIRS:
        for name in MASTER_NAMES:
            if (directory / name).is_file():
                return directory / name
    raise SystemExit("CDNOW_master.txt not found in " + ", ".join(map(str, MASTER_DIRS)))


#: a purchase: its number in the file, then the file's customer, date, CDs and dollar
#: value, as one line of text (``"n customer date cds value"``)
Purchase = str


class Purchases:
    """The purchases, in order, as one text of lines (:data:`Purchase`): the benchmark
    holds every purchase while the import runs, and the memory backend's measured peak
    is the import's. 69,659 tuples of five objects took ~19 MiB, as many strings ~6,
    one text takes ~2. Iterating gives each line, cut out when asked for."""

    def __init__(self, lines: Sequence[Purchase]) -> None:
        self._text = "\n".join(lines)
        self._count = len(lines)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Purchase]:
        text, start = self._text, 0
        for _ in range(self._count):
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
            yield text[start:end]
            start = end + 1


def load_purchases(quick: bool, limit: int | None = None) -> Purchases:
    """The purchases as numbered rows, sorted by time (a history is imported oldest
    first; ``limit``: only the first ones)."""
    rows: list[tuple[str, str, str, str]] = []
    if quick:
        for line in (DATA / "CDNOW_sample.txt").read_text().split("\n"):
            if line.strip():
                customer, _, date, cds, value = line.split()
                rows.append((customer, date, cds, value))
    else:
        for line in master_file().read_text().split("\n")[1:]:
            if line.strip():
                customer, date, cds, value = line.split()
                rows.append((customer, date, cds, value))
    numbered = sorted(enumerate(rows), key=lambda r: (r[1][1], r[0]))
    if quick or limit is not None:
        numbered = numbered[:QUICK_ORDERS if limit is None else limit]
    return Purchases([" ".join((str(n), *row)) for n, row in numbered])


def orders_of(purchases: Iterable[Purchase]) -> Iterator[Order]:
    """Each purchase as an order, made when asked for (an import streams its history
    rather than holding it): one line of the CDs bought for their dollar value, placed
    at noon in New York."""
    for purchase in purchases:
        n, customer, date, cds, value = purchase.split()
        day = dt.date(int(date[:4]), int(date[4:6]), int(date[6:]))
        placed = dt.datetime.combine(day, dt.time(17), dt.UTC)  # noon in New York
        yield Order(
            id=f"cdnow-{n}", member_id=f"c{customer}", placed_at=placed, currency="USD",
            lines=(OrderLine(sku="cds", quantity=1, unit_price=Money(Decimal(value), "USD"),
                             category=f"{int(cds)} cds"),))


def load_orders(quick: bool, limit: int | None = None) -> list[Order]:
    """The purchases as orders, sorted by time (see :func:`orders_of`)."""
    return list(orders_of(load_purchases(quick, limit)))


def totals(loyalty: Loyalty) -> dict[str, Any]:
    """Points earned, members and members per tier at 1997-12-31."""
    found, = loyalty.reports.totals(as_of=NOW)
    tiers = loyalty.reports.tiers(as_of=TIERS_AT)
    return {"points": found.issued, "outstanding": found.outstanding,
            "members": found.members,
            "tiers_1997_12_31": {str(t.tier): t.members for t in tiers.tiers}}


# -- the raw floor: the import's rows, inserted with executemany ---------------------------

def rows_of(engine: sa.Engine, program_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the program in every table (tables without a program id: all)."""
    import sqlalchemy as sa

    from loyaltykit.sql.schema import metadata

    found = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            stmt = sa.select(table)
            if "program_id" in table.c:
                stmt = stmt.where(table.c.program_id == program_id)
            rows = [dict(r._mapping) for r in conn.execute(stmt)]
            if rows:
                found[table.name] = rows
    return found


def raw_insert(engine: sa.Engine, rows: dict[str, list[dict[str, Any]]]) -> float:
    """Seconds to insert ``rows`` into the empty schema of ``engine``: one executemany
    per table, parents first, one transaction."""
    from loyaltykit.sql.schema import metadata

    start = time.perf_counter()
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            if table.name in rows:
                conn.execute(table.insert(), rows[table.name])
    return time.perf_counter() - start


def raw_copy(backend: str, engine: sa.Engine, rows: dict[str, list[dict[str, Any]]],
             directory: str) -> float:
    import sqlalchemy as sa

    from loyaltykit.sql import SQLStorage, create_engine

    if backend == "sqlite":
        copy = create_engine(f"sqlite:///{directory}/raw.sqlite")
        SQLStorage(copy).create_schema()
        try:
            return raw_insert(copy, rows)
        finally:
            copy.dispose()
    name = f"lk_import_raw_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(engine.url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        copy = create_engine(engine.url.set(database=name))
        try:
            SQLStorage(copy).create_schema()
            return raw_insert(copy, rows)
        finally:
            copy.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        admin.dispose()


# -- one backend, in a process of its own --------------------------------------------------

@contextlib.contextmanager
def open_backend(backend: str, url: str | None
                 ) -> Iterator[tuple[Storage, sa.Engine | None, str]]:
    """Yield (storage, engine or None, description): the memory backend without loading
    SQLAlchemy, a SQL one through benchmarks/ledger.py's set-up."""
    if backend == "memory":
        from loyaltykit.memory import MemoryStorage

        yield MemoryStorage(), None, "in-memory"
        return
    from _shared import ledger_helpers

    with ledger_helpers().open_backend(backend, url) as (storage, engine, where, _):
        yield storage, engine, where


def run_import(backend: str, url: str | None, quick: bool, batch_size: int | None,
               limit: int | None) -> dict[str, Any]:
    purchases = load_purchases(quick, limit)
    program_id = f"cdnow-{uuid.uuid4().hex[:8]}"  # never meets a given server's data
    with (open_backend(backend, url) as (storage, engine, where),
          tempfile.TemporaryDirectory(prefix="loyaltykit-import-") as directory):
        loyalty = Loyalty(program(program_id), storage, clock=TestClock(NOW))
        if batch_size is None:  # the storage's own, if it names one (else null: the import's)
            batch_size = getattr(storage, "import_batch_size", None)
        start = time.perf_counter()
        # streamed, as a shop reads its history: the process never holds every order
        result = loyalty.record_orders(orders_of(purchases), enrol=True,
                                       batch_size=batch_size)
        seconds = time.perf_counter() - start
        peak = _peak_rss_mib()  # the import's (reading the rows back below takes more)
        if result.failed or result.recorded != len(purchases):
            raise SystemExit(f"{backend}: import failed: {result}")
        figures: dict[str, Any] = {
            "backend": backend, "storage": where, "orders": len(purchases),
            "seconds": round(seconds, 3), "orders_per_s": round(len(purchases) / seconds, 1),
            "batches": result.batches, "batch_size": batch_size,
            "enrolled": result.enrolled, "totals": totals(loyalty),
        }
        if engine is not None:
            rows = rows_of(engine, program_id)
            count = sum(len(r) for r in rows.values())
            raw_seconds = raw_copy(backend, engine, rows, directory)
            figures.update(rows=count, rows_per_table={k: len(v) for k, v in rows.items()},
                           rows_per_s=round(count / seconds, 1),
                           raw_seconds=round(raw_seconds, 3),
                           raw_rows_per_s=round(count / raw_seconds, 1),
                           percent_of_raw=round(raw_seconds / seconds * 100, 1))
        figures["peak_rss_mib"] = round(peak, 1)
        return figures


def run_one_by_one(quick: bool, limit: int | None) -> dict[str, Any]:
    """The reference: every member enrolled first, then one record_order per order, in
    memory."""
    from loyaltykit.memory import MemoryStorage

    orders = load_orders(quick, limit)
    loyalty = Loyalty(program(), MemoryStorage(), clock=TestClock(NOW))
    start = time.perf_counter()
    first: dict[str, dt.datetime] = {}
    for order in orders:
        first.setdefault(order.member_id, order.placed_at)
    for member_id, at in first.items():
        loyalty.enrol(member_id, at=at)
    for order in orders:
        loyalty.record_order(order)
    seconds = time.perf_counter() - start
    return {"backend": "memory", "orders": len(orders), "seconds": round(seconds, 3),
            "orders_per_s": round(len(orders) / seconds, 1), "totals": totals(loyalty),
            "peak_rss_mib": round(_peak_rss_mib(), 1)}


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def child(args: list[str]) -> dict[str, Any]:
    """Run ``--child ...`` in a fresh interpreter; its last line of output is its JSON."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed ({proc.returncode})")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_ORDERS} orders of the shipped sample")
    parser.add_argument("--backend", action="append", choices=BACKENDS,
                        help="a backend to run (repeatable; default: all three)")
    parser.add_argument("--url", help="a PostgreSQL URL (else a throwaway server)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help="orders per batch (default: the storage's own)")
    parser.add_argument("--orders", type=int,
                        help="only the first N orders (by time) of the file")
    parser.add_argument("--child", choices=(*BACKENDS, "one-by-one"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "one-by-one":
        print(json.dumps(run_one_by_one(args.quick, args.orders)))
        return 0
    if args.child is not None:
        print(json.dumps(run_import(args.child, args.url, args.quick, args.batch_size,
                                    args.orders)))
        return 0
    started = time.perf_counter()
    common = (["--quick"] if args.quick else []) + (
        [] if args.batch_size is None else ["--batch-size", str(args.batch_size)])
    if args.orders is not None:
        common += ["--orders", str(args.orders)]
    results: dict[str, Any] = {}
    for backend in args.backend or BACKENDS:
        extra = ["--url", args.url] if args.url and backend == "postgresql" else []
        print(f"importing on {backend}...", file=sys.stderr)
        results[backend] = child(["--child", backend, *common, *extra])
        figures = results[backend]
        print(f"  {figures['orders']} orders in {figures['seconds']} s: "
              f"{figures['orders_per_s']}/s, peak RSS {figures['peak_rss_mib']} MiB"
              + (f", {figures['percent_of_raw']}% of raw executemany"
                 if "percent_of_raw" in figures else ""), file=sys.stderr)
    print("recording one by one in memory...", file=sys.stderr)
    reference = child(["--child", "one-by-one", *common])
    print(f"  {reference['orders']} orders in {reference['seconds']} s", file=sys.stderr)
    same = {b: f["totals"] == reference["totals"] for b, f in results.items()}
    percents = {b: f["percent_of_raw"] for b, f in results.items() if "percent_of_raw" in f}
    # a backend meets its target: SQL ones by percent of raw, memory by its peak RSS
    met = {b: p >= TARGET_PERCENT for b, p in percents.items()}
    if "memory" in results:
        met["memory"] = results["memory"]["peak_rss_mib"] <= TARGET_MEMORY_MIB
    out = {
        "quick": args.quick, "orders_limit": args.orders,
        "environment": {"python": platform.python_version(), "machine": platform.machine()},
        **results,
        "one_by_one": reference,
        "same_totals": same,
        "targets": {"percent_of_raw_min": TARGET_PERCENT,
                    "memory_peak_rss_mib_max": TARGET_MEMORY_MIB,
                    "passed": sorted(b for b, ok in met.items() if ok),
                    "missed": sorted(b for b, ok in met.items() if not ok)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out))
    if not all(same.values()):
        print(f"the import's totals differ from one by one: {same}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
