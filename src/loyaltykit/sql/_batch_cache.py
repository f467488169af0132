"""A SQLite page cache as large as one batch of due work dirties, for that batch.

A batch of set-based due work on SQLite (:mod:`loyaltykit.sql.ledger_due_set`, the
tier evaluation of :mod:`loyaltykit.sql.tiers`) writes every row of its transactions,
postings, outbox events, lots, holds, accounts and tier states in one unit of work:
about 2,900 dirty pages (11 MiB) for 1,000 wallets of the due benchmark. SQLite's
default page cache is 2 MiB (``cache_size = -2000``). Once it is full, SQLite *spills*
dirty pages into the WAL in the middle of the transaction, evicts clean ones and reads
them back for the next statement, and at commit writes each spilled page again (a
spilled page stays dirty: the batch's next statement changes it anew). Measured on the
due benchmark at 20,000 members: 465 MiB written and 299 MiB read for the run with the
default cache, 380 MiB and 233 MiB with room for a batch. One big transaction (the
hand-written SQL) spills whatever the cache, batches need not.

:func:`batch_cache` gives the batch's connection a cache of :data:`KIB_PER_WALLET` KiB
per wallet (at most :data:`MAX_KIB`) while the batch's statements run, and sets the
connection's own size back afterwards. A cache size is a memory limit, not an
allocation (pages are taken as the batch touches them), and it changes nothing about
durability: the commit writes and syncs the same pages as before (``synchronous`` is
left as it is). Setting the size back before the commit spills nothing: SQLite frees
only clean, unused pages to honour a smaller cache, never a dirty one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

__all__ = ["KIB_PER_WALLET", "MAX_KIB", "batch_cache"]

#: Cache per wallet of a batch, in KiB: about 1.5x the 11 KiB (2.9 pages) a wallet of
#: the due benchmark dirties (a wallet with more history dirties more).
KIB_PER_WALLET = 16
#: The most cache a batch gets, in KiB (64 MiB: a batch of 4,000 wallets); a larger
#: batch spills beyond it, as every batch did before.
MAX_KIB = 64 * 1024


def _kib(cache_size: int, page_size: int) -> int:
    """A ``PRAGMA cache_size`` value in KiB (negative: KiB already; else pages)."""
    return -cache_size if cache_size < 0 else cache_size * page_size // 1024


@contextlib.contextmanager
def batch_cache(conn: sa.Connection, wallets: int) -> Iterator[None]:
    """Run the block with a SQLite page cache of room for a batch of ``wallets``
    wallets (see the module docstring), then set the connection's size back; on any
    other database, or when the cache is that large already, change nothing."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    page_size = int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
    wanted = min(MAX_KIB, KIB_PER_WALLET * wallets)
    if _kib(before, page_size) >= wanted:
        yield
        return
    conn.exec_driver_sql(f"PRAGMA cache_size = {-wanted}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size = {before}")
