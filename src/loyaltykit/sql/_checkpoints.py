"""SQLite WAL checkpoints during a long run of units of work (due work, a history import).

In WAL mode SQLite copies the log back into the database file (a *checkpoint*: the
pages written, then an fsync of the file) on the first commit after the log passes
``wal_autocheckpoint`` pages, 1000 (4 MiB) by default. A batch of due work or of a
history import dirties far more than that (about 2,200 pages a batch of 1,000 members
of the due benchmark), so at the default every batch's commit ran a checkpoint of its
own, copying the pages the batches share (the indexes' leaf pages, the accounts) again
and again and waiting for the database file's fsync each time. Measured on this
machine: the SQLite due benchmark at 100,000 members 13.2 -> 12.1 s, the CDNOW import
31.1 -> 28.0 s with checkpoints every :data:`LONG_RUN_PAGES` pages.

:meth:`~loyaltykit.sql.SQLStorage.long_run` raises the threshold to
:data:`LONG_RUN_PAGES` (64 MiB at SQLite's 4 KiB pages) for the units of work that
begin while a run lasts, puts each connection's own threshold back on its next unit of
work after the run, and ends the run with one checkpoint (``PASSIVE``: it never waits
for readers), so the run's time includes copying its log back. Durability is
unchanged: every commit still syncs the log as before (``synchronous`` is left as it
is); a checkpoint only moves committed pages from the log into the database file.

The same units of work also get a page cache of :data:`LONG_RUN_CACHE_KIB` (64 MiB)
where the connection's own is smaller (SQLite's default is 2 MiB), put back with the
threshold. A history import's batch inserts thousands of rows at scattered places of
every index (order ids, members); with the default cache the batch's statements evict
pages they dirtied and read them back, SQLite spills dirty pages into the log in the
middle of the transaction and writes them again at the commit (see
:mod:`loyaltykit.sql._batch_cache`, which gives a due batch a cache its size). A cache
size is a limit, not an allocation: pages are taken as the run touches them. Measured on
the CDNOW import (69,659 orders in batches of 5,000): its batches' writes and commits
12.6 -> 11.3 s (two runs each, interleaved, same machine).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine

from loyaltykit._errors import StorageError

__all__ = ["LONG_RUN_CACHE_KIB", "LONG_RUN_PAGES", "checkpoint", "set_long_run"]

#: The log size (pages) that starts a checkpoint while a long run lasts: about seven
#: batches of the due benchmark, or one of a history import.
LONG_RUN_PAGES = 16_384

#: The page cache (KiB) of a long run's units of work, where the connection's own is
#: smaller.
LONG_RUN_CACHE_KIB = 64 * 1024

#: In a pooled connection's ``info``: the connection's own threshold while it has
#: :data:`LONG_RUN_PAGES` (absent otherwise).
_OWN = "loyaltykit.wal_autocheckpoint"
#: In a pooled connection's ``info``: the connection's own ``cache_size`` while it has
#: the long run's (absent otherwise, or when its own was as large).
_OWN_CACHE = "loyaltykit.cache_size"


def set_long_run(conn: Connection, long_run: bool) -> None:
    """Give ``conn`` (a SQLite connection of the engine, before its transaction begins)
    the long run's checkpoint threshold and page cache, or its own back; a dict lookup
    when it has the ones wanted already."""
    info = conn.connection.info
    own = info.get(_OWN)
    if long_run is (own is not None):
        return
    # a DB-API cursor, outside a transaction (no BEGIN): pysqlite's own, or SQLAlchemy's
    # adapter of aiosqlite (whose driver connection is async: loyaltykit.aio)
    cursor: Any = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if long_run:
            info[_OWN] = int(_one(cursor, "PRAGMA wal_autocheckpoint"))
            cursor.execute(f"PRAGMA wal_autocheckpoint = {LONG_RUN_PAGES}")
            cache = int(_one(cursor, "PRAGMA cache_size"))
            page = int(_one(cursor, "PRAGMA page_size"))
            # (negative: KiB; else pages)
            if (-cache if cache < 0 else cache * page // 1024) < LONG_RUN_CACHE_KIB:
                info[_OWN_CACHE] = cache
                cursor.execute(f"PRAGMA cache_size = {-LONG_RUN_CACHE_KIB}")
        else:
            cursor.execute(f"PRAGMA wal_autocheckpoint = {int(info.pop(_OWN))}")
            if _OWN_CACHE in info:
                cursor.execute(f"PRAGMA cache_size = {int(info.pop(_OWN_CACHE))}")
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError("could not set the long run's WAL checkpoint threshold and cache",
                           error=str(exc)) from exc
    finally:
        cursor.close()


def _one(cursor: Any, statement: str) -> Any:
    """The first column of the one row ``statement`` returns."""
    cursor.execute(statement)
    return cursor.fetchone()[0]


def checkpoint(engine: Engine) -> None:
    """Copy the log back into the database file as far as no reader needs it
    (``PRAGMA wal_checkpoint(PASSIVE)``, on a connection outside any transaction)."""
    raw = engine.raw_connection()
    try:
        cursor: Any = raw.cursor()  # (DB-API: also aiosqlite's adapter, see set_long_run)
        try:
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.fetchall()
        finally:
            cursor.close()
    except engine.dialect.loaded_dbapi.Error as exc:
        raise StorageError("could not checkpoint the WAL", error=str(exc)) from exc
    finally:
        raw.close()
