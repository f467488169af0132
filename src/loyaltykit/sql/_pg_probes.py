"""PostgreSQL: a read of many keys as one index probe per key, whatever the statistics.

A batch's reads (a history import's: its orders already recorded, its members, their
accounts locked, their tier states and buckets; a set-based write's open lots and
holds) name their keys (order ids, member ids) as one JSON array parameter: one
statement whatever their number. Written as ``key IN (...)`` they left the join to the
planner, which chose it from the tables' statistics; on tables that grow faster than
autovacuum analyses them (a history import writes a program's members and orders in
minutes) it took the program's rows for a handful and read all of them, comparing
each with every key named: a nested-loop semi join re-reading the array for each
account row (the import's two account locks per batch of 1,000 members: 0.35 s at
1,000 accounts, 1.3 s at 2,800, 9 s at 20,000), or a scan of the program's orders
filtered by the batch's 500 ids per statement (0.2-0.3 s at 10,000 orders). Each
read's time grew with the program, the import's with its square.

:func:`probed` writes the read so that the plan cannot be other than the one wanted:
the keys, distinct and sorted, drive a ``LATERAL`` subquery of the read for one key,
which the table's index answers; ``OFFSET 0`` keeps the planner from flattening it into
a join it could turn around. A row lock (``FOR UPDATE`` in the read) is taken as each
key's rows are read, so in key order, as ``ORDER BY key FOR UPDATE`` took them: two
transactions locking some of the same members meet them in the same order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit.sql._shared import chunks

__all__ = ["key_sets", "probed"]

#: The parameter naming the keys: their JSON array (text: the driver sends one string
#: as it is, where it would dump a list element by element in Python).
KEYS_PARAM = "idj"


def keys_param(keys: Iterable[str]) -> dict[str, str]:
    """The parameter of a :func:`probed` read of ``keys``."""
    return {KEYS_PARAM: orjson.dumps(list(keys)).decode()}


def probed(stmt: sa.Select[Any], key: sa.ColumnElement[str],
           order: Sequence[sa.ColumnElement[Any]] = ()) -> sa.Select[Any]:
    """``stmt`` for every key of the JSON array :data:`KEYS_PARAM`, its ``key``
    column equal to each: the same columns, key by key in the keys' sorted order, each
    key's rows in ``order`` (columns of ``stmt``'s tables, selected or not)."""
    names = sa.func.json_array_elements_text(
        sa.cast(sa.bindparam(KEYS_PARAM, type_=sa.Text()), sa.JSON())
    ).table_valued("k").render_derived(name="lk_j")
    keys = sa.select(names.c.k).distinct().order_by(names.c.k).subquery("lk_keys")
    width = len(stmt.selected_columns)
    # the order's columns under names of their own: they may be selected already, or
    # share a name with one selected (a join's ``id``)
    one = (stmt.add_columns(*(c.label(f"lk_o{i}") for i, c in enumerate(order)))
           .where(key == keys.c.k).offset(sa.literal_column("0")).lateral("lk_r"))
    columns = list(one.c)
    return (sa.select(*columns[:width])
            .select_from(keys.join(one, sa.true()))
            .order_by(keys.c.k, *columns[width:]))


def key_sets(conn: Connection, keys: Sequence[str]) -> Iterator[tuple[bool, dict[str, Any]]]:
    """The parameters naming ``keys`` in a read of many, with True for its
    :func:`probed` variant: on PostgreSQL with more than one key one JSON array
    (:data:`KEYS_PARAM`), else chunks of :data:`~loyaltykit.sql._shared.CHUNK` keys, in
    the order given, for an expanding IN named ``ids``."""
    if len(keys) > 1 and conn.dialect.name == "postgresql":
        yield True, keys_param(keys)
        return
    for chunk in chunks(keys):
        yield False, {"ids": chunk}
