"""Set-based edits of JSON documents in place, for erasure (DESIGN §11): one UPDATE
replaces values at given paths in every matching row, on PostgreSQL and SQLite alike.

Only paths that exist are replaced (PostgreSQL ``jsonb_set`` without creating missing
keys, and only inside an object; SQLite ``json_replace``); a NULL document stays NULL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = ["EMPTY_OBJECT", "replaced"]

#: The value that replaces a path with an empty JSON object.
EMPTY_OBJECT = object()


def replaced(column: Any, dialect: str,
             changes: Sequence[tuple[Sequence[str], sa.BindParameter[Any] | object]]
             ) -> Any:
    """``column`` (a JSON document) with each ``(path, value)`` of ``changes`` replaced
    where the path exists: ``value`` is a text bind parameter or :data:`EMPTY_OBJECT`."""
    if dialect == "postgresql":
        doc: Any = sa.cast(column, postgresql.JSONB)
        for path, value in changes:
            new = (sa.cast(sa.literal("{}"), postgresql.JSONB) if value is EMPTY_OBJECT
                   else sa.func.to_jsonb(sa.cast(value, sa.Text)))
            parent = sa.cast(sa.literal(list(path[:-1])), postgresql.ARRAY(sa.Text))
            # jsonb_set refuses to set a path inside a scalar (a JSON null document)
            doc = sa.case((sa.func.jsonb_typeof(doc.op("#>")(parent)) == "object",
                           sa.func.jsonb_set(doc, sa.cast(sa.literal(list(path)),
                                                          postgresql.ARRAY(sa.Text)),
                                             new, False)), else_=doc)
        # a row with nothing to replace keeps its text (jsonb would reorder its keys)
        return sa.case((doc == sa.cast(column, postgresql.JSONB), column),
                       else_=sa.cast(doc, postgresql.JSON))
    args: list[Any] = [column]
    for path, value in changes:
        args += ["$." + ".".join(path),
                 sa.func.json("{}") if value is EMPTY_OBJECT else value]
    return sa.func.json_replace(*args)
