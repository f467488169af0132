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
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection, Engine

from loyaltykit._errors import StorageError

__all__ = ["LONG_RUN_PAGES", "checkpoint", "set_threshold"]

#: The log size (pages) that starts a checkpoint while a long run lasts: about seven
#: batches of the due benchmark, or one of a history import.
LONG_RUN_PAGES = 16_384

#: In a pooled connection's ``info``: the connection's own threshold while it has
#: :data:`LONG_RUN_PAGES` (absent otherwise).
_OWN = "loyaltykit.wal_autocheckpoint"


def set_threshold(conn: Connection, long_run: bool) -> None:
    """Give ``conn`` (a SQLite connection of the engine, before its transaction begins)
    the long run's checkpoint threshold, or its own back; a dict lookup when it has
    the one wanted already."""
    info = conn.connection.info
    own = info.get(_OWN)
    if long_run is (own is not None):
        return
    driver: Any = conn.connection.driver_connection  # outside a transaction: no BEGIN
    try:
        if long_run:
            info[_OWN] = int(driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            driver.execute(f"PRAGMA wal_autocheckpoint = {LONG_RUN_PAGES}")
        else:
            driver.execute(f"PRAGMA wal_autocheckpoint = {int(info.pop(_OWN))}")
    except conn.dialect.loaded_dbapi.Error as exc:
        raise StorageError("could not set the WAL checkpoint threshold",
                           error=str(exc)) from exc


def checkpoint(engine: Engine) -> None:
    """Copy the log back into the database file as far as no reader needs it
    (``PRAGMA wal_checkpoint(PASSIVE)``, on a connection outside any transaction)."""
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except engine.dialect.loaded_dbapi.Error as exc:
        raise StorageError("could not checkpoint the WAL", error=str(exc)) from exc
    finally:
        raw.close()
