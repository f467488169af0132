"""Everything a storage keeps, as plain data: for tests that compare what is stored
before and after a call, or search it (an erased member's id must appear nowhere).

Knows the library's own backends (:class:`~loyaltykit.memory.MemoryStorage` and
:class:`~loyaltykit.sql.SQLStorage`); a third-party backend's tests give their own.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from loyaltykit.storage import Storage

__all__ = ["stored_rows", "stored_text"]


def stored_rows(storage: Storage) -> dict[str, list[str]]:
    """Every stored row, by table (a memory store's table, or a SQL table): each row's
    ``repr``, sorted, so two snapshots compare equal exactly when the stored state is
    the same."""
    from loyaltykit.memory import MemoryStorage

    if isinstance(storage, MemoryStorage):
        found: dict[str, list[str]] = {}
        tables = storage._tables._by_kind  # the backend's own state
        for kind, state in sorted(tables.items(), key=lambda item: item[0].__name__):
            for name, table in sorted(vars(state).items()):
                rows = table.items() if isinstance(table, dict) else table
                found[f"{kind.__name__}.{name}"] = sorted(repr(row) for row in rows)
        return found
    from loyaltykit.sql import SQLStorage

    if isinstance(storage, SQLStorage):
        engine: sa.Engine = storage._engine
        inspector = sa.inspect(engine)
        names = sorted(inspector.get_table_names())
        meta = sa.MetaData()
        found = {}
        with engine.connect() as conn:
            for name in names:
                table = sa.Table(name, meta, autoload_with=conn)
                found[name] = sorted(repr(tuple(row)) for row in conn.execute(table.select()))
        return found
    raise TypeError(f"no snapshot of {type(storage).__name__}: give your backend's own")


def stored_text(storage: Storage) -> str:
    """All of :func:`stored_rows` as one text, to search."""
    parts: list[Any] = []
    for table, rows in stored_rows(storage).items():
        parts.append(table)
        parts.extend(rows)
    return "\n".join(parts)
