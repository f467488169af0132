"""What a schema must keep to be distributed by member (Citus; DESIGN §10), checked.

A distributed engine such as Citus spreads a table over nodes by one column and keeps
a *reference* table whole on every node. It accepts a table's keys and foreign keys
only when they keep each row's checks on one node:

* a primary key or unique constraint (or unique index) of a distributed table includes
  its distribution column;
* a foreign key joins two tables distributed by the same kind of value, the
  distribution column of one matched to the other's (colocated), or points to a
  reference table;
* no row is numbered by a database sequence: sequences are per node, ids are drawn by
  the library.

:func:`problems` lists what a schema (SQLAlchemy :class:`~sqlalchemy.MetaData`) breaks
of these rules under a :class:`Distribution` (which tables are reference tables, which
are distributed and by which column), each as one line of text naming the table and
the constraint; a schema ready for the engine has none. It reads the metadata only:
no database, and no Citus, is needed to check a schema (the suite runs it on every
change).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs
import sqlalchemy as sa

from loyaltykit._errors import InvalidDistribution

__all__ = ["SCHEMA", "Distribution", "problems"]


def _names(tables: Iterable[str]) -> frozenset[str]:
    return frozenset(tables)


@attrs.frozen
class Distribution:
    """How a schema's tables are to be placed: ``reference`` names the tables kept
    whole on every node, ``distributed`` maps each distributed table to its
    distribution column, ``colocation`` (optional) maps a distributed table to the
    name of its colocation group (tables of one group hold the same values in their
    distribution columns; a table not named is in the group ``"default"``). A table
    in neither mapping is left out of the check (it is no concern of the engine's,
    e.g. the migrations' version table). A table placed both ways, or a colocation
    entry for a table not distributed, is refused with
    :class:`~loyaltykit.InvalidDistribution`.

    :mod:`loyaltykit.sql.citus` applies a distribution to a Citus coordinator."""

    reference: frozenset[str] = attrs.field(converter=_names, default=frozenset())
    distributed: Mapping[str, str] = attrs.field(factory=dict)
    colocation: Mapping[str, str] = attrs.field(factory=dict)

    def __attrs_post_init__(self) -> None:
        both = self.reference & set(self.distributed)
        if both:
            raise InvalidDistribution("tables both reference and distributed",
                                      tables=sorted(both))
        stray = set(self.colocation) - set(self.distributed)
        if stray:
            raise InvalidDistribution("colocation names tables not distributed",
                                      tables=sorted(stray))

    def group(self, table: str) -> str:
        """The colocation group of the distributed ``table``."""
        return self.colocation.get(table, "default")


def problems(metadata: sa.MetaData, distribution: Distribution) -> list[str]:
    """What ``metadata``'s tables break of the rules of a schema distributed as
    ``distribution`` says (see the module docstring), one line each, in table order;
    an empty list if nothing. A table ``distribution`` names that ``metadata`` lacks,
    or a distribution column a table lacks, is a problem too."""
    found: list[str] = []
    tables = metadata.tables
    named = set(distribution.reference) | set(distribution.distributed)
    for name in sorted(named - set(tables)):
        found.append(f"{name}: named by the distribution, not in the schema")
    for table in metadata.sorted_tables:
        name = table.name
        if name not in named:
            continue
        column = distribution.distributed.get(name)
        if column is not None and column not in table.c:
            found.append(f"{name}: no distribution column {column!r}")
            continue
        found.extend(f"{name}: {line}" for line in _sequences(table))
        if column is not None:
            found.extend(f"{name}: {line}" for line in _keys(table, column))
        found.extend(f"{name}: {line}" for line in _foreign_keys(table, distribution))
    return found


def _sequences(table: sa.Table) -> list[str]:
    """The columns a database sequence numbers (an integer primary key of its own,
    autoincrementing, or a column with a Sequence)."""
    found = []
    auto = table.autoincrement_column
    if auto is not None:
        found.append(f"column {auto.name!r} is numbered by the database")
    for col in table.c:
        if isinstance(col.default, sa.Sequence) and col is not auto:
            found.append(f"column {col.name!r} is numbered by a sequence")
    return found


def _keys(table: sa.Table, column: str) -> list[str]:
    """The primary key and unique constraints or indexes without ``column``."""
    found = []
    pk = [c.name for c in table.primary_key.columns]
    if pk and column not in pk:
        found.append(f"primary key ({', '.join(pk)}) lacks {column!r}")
    for constraint in sorted(table.constraints, key=_constraint_name):
        if isinstance(constraint, sa.UniqueConstraint):
            cols = [c.name for c in constraint.columns]
            if column not in cols:
                found.append(f"unique ({', '.join(cols)}) lacks {column!r}")
    for index in sorted(table.indexes, key=lambda i: i.name or ""):
        if index.unique:
            cols = [c.name for c in index.columns]
            if column not in cols:
                found.append(f"unique index {index.name} ({', '.join(cols)}) lacks "
                             f"{column!r}")
    return found


def _constraint_name(constraint: sa.Constraint) -> str:
    """A sort key of ``constraint``: its name, then its columns (a stable order)."""
    columns = getattr(constraint, "columns", ())
    return f"{constraint.name or ''}:{','.join(c.name for c in columns)}"


def _foreign_keys(table: sa.Table, distribution: Distribution) -> list[str]:
    """The foreign keys the engine refuses: from a reference table to a distributed
    one, or between distributed tables that are not colocated on the key."""
    found = []
    name = table.name
    own = distribution.distributed.get(name)
    for fk in sorted(table.foreign_key_constraints, key=_constraint_name):
        target = fk.referred_table.name
        pairs = [(e.parent.name, e.column.name) for e in fk.elements]
        shown = (f"foreign key ({', '.join(p for p, _ in pairs)}) -> {target}"
                 f"({', '.join(c for _, c in pairs)})")
        if target in distribution.reference:
            continue  # a reference table is on every node
        theirs = distribution.distributed.get(target)
        if theirs is None:
            found.append(f"{shown}: to a table the distribution does not place")
        elif own is None:
            found.append(f"{shown}: from a reference table to a distributed one")
        elif distribution.group(name) != distribution.group(target):
            found.append(f"{shown}: the tables are not colocated")
        elif (own, theirs) not in pairs:
            found.append(f"{shown}: does not join {name}.{own} to {target}.{theirs}")
    return found


#: How loyaltykit's own tables are placed on a distributed engine (DESIGN §10; the
#: table ``docs/scale.md`` explains): program-level tables are reference tables; a
#: member's rows are distributed by its member key (``member_id``; ``referee_id`` for a
#: referral, the referee's row) and colocated, so a member's write and its joins stay
#: on one node; what is unique across a program (the shop's member ids, idempotency
#: keys, order ids and codes through ``lk_lookups``) is distributed by the unique value
#: itself, so its uniqueness is checked on one node too.
SCHEMA = Distribution(
    reference=frozenset({
        "lk_programs", "lk_program_versions", "lk_code_counters", "lk_reward_counters",
        "lk_outbox_consumers",
    }),
    distributed={
        **{name: "member_id" for name in (
            "lk_members", "lk_accounts", "lk_erasures", "lk_transactions", "lk_postings",
            "lk_lots", "lk_lot_movements", "lk_holds", "lk_hold_allocations", "lk_orders",
            "lk_rule_usage", "lk_tier_states", "lk_tier_buckets", "lk_tier_history",
            "lk_tier_notices", "lk_referral_codes", "lk_referral_marks", "lk_vouchers",
            "lk_notices", "lk_outbox")},
        "lk_referrals": "referee_id",
        "lk_member_ids": "external_id",
        "lk_idempotency_keys": "key",
        "lk_lookups": "value",
    },
    colocation={"lk_member_ids": "external_id", "lk_idempotency_keys": "key",
                "lk_lookups": "value"},
)
