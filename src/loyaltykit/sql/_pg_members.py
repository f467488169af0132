"""PostgreSQL: a many-member read as one index probe per member, whatever the statistics.

A many-member read (lock the accounts of a history import's batch, read their open
lots or holds) names its members as one JSON array parameter (``idj``): one statement
whatever their number. Written as ``member_id IN (SELECT json_array_elements_text(...))``
the planner chose the join itself, from the tables' statistics; on tables that grow
faster than autovacuum analyses them (a history import writes every member's rows in
minutes), it took the program's rows as a handful and ran a nested-loop semi join
with them outside: every account row of the program compared with every member named,
the array parsed again for each. The import's two account locks per batch of 1,000
members then took 0.35 s at 1,000 accounts, 1.3 s at 2,800, 9 s at 20,000 (EXPLAIN
ANALYZE): quadratic, most of the PostgreSQL import's time.

:func:`by_members` writes the read so that the plan cannot be other than the one
wanted: the members, sorted, drive a ``LATERAL`` subquery of the read for one member,
which is probed by the table's index (its ``ORDER BY``, and a ``FOR UPDATE``, keep the
planner from flattening it into a join it could turn around). A row lock is taken as
each member's rows are read, so in member order, as ``ORDER BY member_id FOR UPDATE``
took them: two transactions locking some of the same members still meet them in the
same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

__all__ = ["MEMBERS_PARAM", "by_members"]

#: The parameter naming the members: their ids as one JSON array (text).
MEMBERS_PARAM = "idj"


def by_members(stmt: sa.Select[Any], member: sa.ColumnElement[str],
               order: Sequence[sa.ColumnElement[Any]] = ()) -> sa.Select[Any]:
    """``stmt`` for every member of the JSON array :data:`MEMBERS_PARAM`, its
    ``member`` column equal to each: the same columns, member by member in the
    members' sorted order, each member's rows in ``order`` (the columns ``stmt``
    orders by; they need not be among those it selects). ``stmt`` must have an
    ``ORDER BY`` or a ``FOR UPDATE``: either keeps its subquery from being flattened
    (tests/storage/test_pg_members.py checks the plans)."""
    names = sa.func.json_array_elements_text(
        sa.cast(sa.bindparam(MEMBERS_PARAM, type_=sa.Text()), sa.JSON())
    ).table_valued("m").render_derived(name="lk_j")
    ids = sa.select(names.c.m).order_by(names.c.m).subquery("lk_ids")
    width = len(stmt.selected_columns)
    # the order's columns under names of their own: they may be selected already, or
    # share a name with one selected (a join's ``id``)
    keyed = stmt.add_columns(*(c.label(f"lk_o{i}") for i, c in enumerate(order)))
    one = keyed.where(member == ids.c.m).lateral("lk_r")
    columns = list(one.c)
    return (sa.select(*columns[:width])
            .select_from(ids.join(one, sa.true()))
            .order_by(ids.c.m, *columns[width:]))
