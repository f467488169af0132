"""A declared distribution (:mod:`loyaltykit.sql.distribution`) applied to a Citus
coordinator: the statements, in an order Citus accepts, and a function that runs them.

Citus places a table with ``create_reference_table('t')`` (a copy on every node) or
``create_distributed_table('t', 'column', colocate_with => ...)`` (shards by the
column's hash). It accepts a distributed table only when every table its foreign keys
reference is placed already, and a foreign key between a placed table and a plain one
neither way; with the whole foreign-key graph in place there is no order it accepts
(issue 23's trial on Citus 13.2: a reference table made first pulls the tables
referencing it into Citus "local tables", which then cannot be distributed one by
one). So :func:`statements` sets the foreign keys from and to the tables it places
aside, places the tables, and adds the same foreign keys back, all in
one transaction:

1. ``CREATE EXTENSION IF NOT EXISTS citus``;
2. ``SET LOCAL citus.multi_shard_modify_mode TO 'sequential'``: a transaction that
   writes a reference table and the distributed tables pointing to it must run their
   shard commands one connection at a time (Citus refuses the parallel mode there);
3. ``ALTER TABLE .. DROP CONSTRAINT`` for each foreign key from or to a placed table;
4. the reference tables, then the distributed tables, each after every table its
   foreign keys reference (ties by name); the first table of a colocation group is
   created with ``colocate_with => 'none'`` (a group of its own) and the rest of the
   group with ``colocate_with`` that table;
5. ``ALTER TABLE .. ADD CONSTRAINT`` for each foreign key set aside (Citus checks it
   shard by shard: the tables are colocated, or the target is a reference table).

Placing loyaltykit's outbox also replaces its key trigger's function with one that
reads the member's last event in the shard the trigger fires on (a query of the
distributed table from a shard is refused), so each node keys its events with its own
transaction ids, and sets ``citus.enable_unsafe_triggers`` for the transaction (Citus
places a table with a trigger only then); see docs/scale.md.

>>> import sqlalchemy as sa
>>> from loyaltykit.sql.distribution import Distribution
>>> md = sa.MetaData()
>>> _ = sa.Table("programs", md, sa.Column("id", sa.String(8), primary_key=True))
>>> _ = sa.Table("members", md,
...              sa.Column("program_id", sa.String(8), sa.ForeignKey("programs.id")),
...              sa.Column("member_id", sa.String(32), primary_key=True))
>>> for line in statements(md, Distribution(reference={"programs"},
...                                         distributed={"members": "member_id"})):
...     print(line)
CREATE EXTENSION IF NOT EXISTS citus
SET LOCAL citus.multi_shard_modify_mode TO 'sequential'
ALTER TABLE members DROP CONSTRAINT members_program_id_fkey
SELECT create_reference_table('programs')
SELECT create_distributed_table('members', 'member_id', colocate_with => 'none')
ALTER TABLE members ADD FOREIGN KEY(program_id) REFERENCES programs (id)

:func:`apply` runs them on a coordinator (an engine, a URL or a connection), after
:func:`~loyaltykit.sql.distribution.problems` finds nothing in the schema. It is
idempotent: a table Citus has placed as the map says already is skipped (and its
foreign keys are left alone), so a second run does nothing and a run after a
migration that added a table places only the new one. A table placed otherwise (a
reference table the map distributes, another column) is refused with
:class:`~loyaltykit.InvalidDistribution` before anything is written.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql.base import PGDialect

from loyaltykit._errors import InvalidDistribution, InvalidInput
from loyaltykit.sql._errors import storage_error
from loyaltykit.sql.distribution import SCHEMA, Distribution, problems
from loyaltykit.sql.engine import create_engine
from loyaltykit.sql.outbox_key import outbox_key_function
from loyaltykit.sql.schema import metadata as _METADATA
from loyaltykit.sql.schema import outbox

__all__ = ["Placement", "apply", "placements", "statements"]

#: PostgreSQL's longest identifier, in bytes (NAMEDATALEN - 1).
_MAX_NAME = 63

# the statements are PostgreSQL's whatever the driver (PGDialect has no typed __init__)
_DIALECT: sa.Dialect = PGDialect()  # type: ignore[no-untyped-call]

CREATE_EXTENSION = "CREATE EXTENSION IF NOT EXISTS citus"
SEQUENTIAL = "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"
#: what lets Citus place a table that has a trigger (the outbox's key trigger)
UNSAFE_TRIGGERS = "SET LOCAL citus.enable_unsafe_triggers TO on"

#: How Citus has placed a table: (distributed, its distribution column).
_Place = tuple[bool, str | None]


@attrs.frozen
class Placement:
    """One table's place on Citus: a reference table (``column`` is None) or a table
    distributed by ``column``, colocated with the table ``colocate_with`` (``"none"``
    for the first table of its colocation group)."""

    table: str
    column: str | None = None
    colocate_with: str = "none"

    def statement(self) -> str:
        """The ``SELECT create_..._table(..)`` that places the table."""
        table = _literal(_qualified(self.table))
        if self.column is None:
            return f"SELECT create_reference_table({table})"
        colocate = self.colocate_with if self.colocate_with == "none" \
            else _qualified(self.colocate_with)
        return (f"SELECT create_distributed_table({table}, {_literal(self.column)}, "
                f"colocate_with => {_literal(colocate)})")


def placements(metadata: sa.MetaData = _METADATA,
               distribution: Distribution = SCHEMA) -> list[Placement]:
    """Every table ``distribution`` names, in the order Citus is to place them: the
    reference tables, then the distributed ones, each after every table its foreign
    keys reference (ties broken by name); a colocation group's first table is
    colocated with ``"none"`` and the rest of the group with it.

    Raises :class:`~loyaltykit.InvalidDistribution` when ``distribution`` names a
    table ``metadata`` lacks or a distribution column a table lacks, or when the
    foreign keys between the tables it names form a cycle."""
    tables = _placed_tables(metadata, distribution)
    reference = _fk_order([t for t in tables if t.name in distribution.reference])
    distributed = _fk_order([t for t in tables if t.name in distribution.distributed])
    found = [Placement(t.key) for t in reference]
    anchors: dict[str, str] = {}
    for table in distributed:
        group = distribution.group(table.name)
        found.append(Placement(table.key, distribution.distributed[table.name],
                               anchors.get(group, "none")))
        anchors.setdefault(group, table.key)
    return found


def statements(metadata: sa.MetaData = _METADATA,
               distribution: Distribution = SCHEMA) -> list[str]:
    """The statements that place ``metadata``'s tables on a Citus coordinator as
    ``distribution`` says, in order, to run in one transaction (see the module
    docstring): the extension, the sequential mode, the foreign keys set aside, the
    :func:`placements`, the foreign keys added back. The defaults are loyaltykit's own
    schema and :data:`~loyaltykit.sql.distribution.SCHEMA`.

    Raises :class:`~loyaltykit.InvalidDistribution` as :func:`placements` does."""
    return _script(metadata, placements(metadata, distribution), extension=True)


def apply(bind: sa.Engine | sa.Connection | str, metadata: sa.MetaData = _METADATA,
          distribution: Distribution = SCHEMA) -> list[str]:
    """Place the tables on the Citus coordinator ``bind`` (an engine, a URL, or a
    connection: its open transaction is joined and left for the caller to commit;
    else one is begun and committed) as ``distribution`` says, in one transaction;
    return the statements run (none if every table is placed already).

    Migrate the database first (:meth:`loyaltykit.sql.SQLStorage.upgrade`): the tables
    must exist. A table Citus has placed as the map says is skipped; the extension is
    created only if Citus's catalog is missing.

    Raises :class:`~loyaltykit.InvalidInput` when ``bind`` is not PostgreSQL's, and
    :class:`~loyaltykit.InvalidDistribution` (nothing written) when the schema
    breaks the engine's rules (``details["problems"]``, from
    :func:`~loyaltykit.sql.distribution.problems`), as :func:`placements` does, or
    when a table is placed otherwise on the server; :class:`~loyaltykit.StorageError`
    when the server refuses a statement (the transaction is rolled back)."""
    found = problems(metadata, distribution)
    if found:
        raise InvalidDistribution("the schema cannot be distributed as the map says",
                                  problems=found)
    wanted = placements(metadata, distribution)
    if isinstance(bind, str):
        engine = create_engine(bind)
        try:
            return _apply_on_engine(engine, metadata, wanted)
        finally:
            engine.dispose()
    if isinstance(bind, sa.Engine):
        return _apply_on_engine(bind, metadata, wanted)
    try:
        if bind.in_transaction():
            return _apply(bind, metadata, wanted)
        with bind.begin():
            return _apply(bind, metadata, wanted)
    except sa_exc.SQLAlchemyError as exc:
        raise storage_error(exc) from exc


def _apply_on_engine(engine: sa.Engine, metadata: sa.MetaData,
                     wanted: list[Placement]) -> list[str]:
    try:
        with engine.begin() as conn:
            return _apply(conn, metadata, wanted)
    except sa_exc.SQLAlchemyError as exc:
        raise storage_error(exc) from exc


def _apply(conn: sa.Connection, metadata: sa.MetaData,
           wanted: list[Placement]) -> list[str]:
    """Run the statements for the tables of ``wanted`` that Citus has not placed."""
    if conn.dialect.name != "postgresql":
        raise InvalidInput("a Citus coordinator is a PostgreSQL server",
                           dialect=conn.dialect.name)
    # Citus's own catalog: present once the extension is; the extension itself needs
    # rights an application's role may lack, so it is created only when missing
    has_citus = conn.scalar(sa.text("SELECT to_regclass('pg_dist_partition') IS NOT NULL"))
    placed = _placed_on_server(conn, [p.table for p in wanted]) if has_citus else {}
    todo = []
    # a colocation group's first table, mapped to a table of its group placed already
    anchors: dict[str, str] = {}
    for placement in wanted:
        now = placed.get(placement.table)
        if now is None:
            todo.append(placement)
            continue
        if now != (placement.column is not None, placement.column):
            raise InvalidDistribution(
                "a table is placed otherwise on the server", table=placement.table,
                placed=_shown(now),
                wanted=_shown((placement.column is not None, placement.column)))
        if placement.column is not None:
            first = placement.table if placement.colocate_with == "none" \
                else placement.colocate_with
            anchors.setdefault(first, placement.table)
    if not todo:
        return []
    # a group's first table that is new while others of its group are placed (a map
    # that grew) joins their colocation group rather than starting one of its own
    todo = [attrs.evolve(p, colocate_with=anchors[p.table])
            if p.column is not None and p.table in anchors else p for p in todo]
    run = _script(metadata, todo, extension=not has_citus)
    # the driver reads % as a placeholder where its parameters are %-style (psycopg)
    percent = conn.dialect.paramstyle in ("format", "pyformat")
    for line in run:
        conn.exec_driver_sql(line.replace("%", "%%") if percent else line)
    return run


def _placed_on_server(conn: sa.Connection, tables: Sequence[str]) -> dict[str, _Place]:
    """How Citus has placed each of ``tables`` that it has: (distributed, column).
    A Citus "local table" (what a table referencing a reference table becomes) is not
    placed: it is to be distributed still."""
    rows = conn.execute(sa.text(
        "SELECT t.name, p.partmethod, "
        "CASE WHEN p.partmethod = 'h' "
        "THEN column_to_column_name(p.logicalrelid, p.partkey) END "
        "FROM unnest(CAST(:names AS text[])) AS t(name) "
        "JOIN pg_dist_partition p ON p.logicalrelid = to_regclass(t.name) "
        "WHERE p.partmethod = 'h' OR p.repmodel = 't'"),
        {"names": [_qualified(t) for t in tables]})
    by_name = dict(zip([_qualified(t) for t in tables], tables, strict=True))
    return {by_name[name]: (method == "h", column) for name, method, column in rows}


def _shown(place: _Place) -> str:
    return f"distributed by {place[1]}" if place[0] else "reference table"


def _placed_tables(metadata: sa.MetaData, distribution: Distribution) -> list[sa.Table]:
    """The tables of ``metadata`` that ``distribution`` names, after checking it names
    no table or column that ``metadata`` lacks."""
    by_name = {t.name: t for t in metadata.tables.values()}
    named = set(distribution.reference) | set(distribution.distributed)
    missing = sorted(named - set(by_name))
    if missing:
        raise InvalidDistribution("the distribution names tables the schema lacks",
                                  tables=missing)
    lacking = sorted(f"{name}.{column}" for name, column in distribution.distributed.items()
                     if column not in by_name[name].c)
    if lacking:
        raise InvalidDistribution("the distribution names columns the tables lack",
                                  columns=lacking)
    return [by_name[name] for name in sorted(named)]


def _fk_order(tables: Sequence[sa.Table]) -> list[sa.Table]:
    """``tables`` with each after every one of them its foreign keys reference (a
    table's key to itself aside); among the tables ready at a step, by name."""
    names = {t.name for t in tables}
    parents = {t.name: {fk.referred_table.name for fk in t.foreign_key_constraints}
               & names - {t.name} for t in tables}
    by_name = {t.name: t for t in tables}
    order: list[sa.Table] = []
    done: set[str] = set()
    while len(order) < len(tables):
        ready = sorted(n for n in names - done if parents[n] <= done)
        if not ready:
            raise InvalidDistribution("the foreign keys between the tables form a cycle",
                                      tables=sorted(names - done))
        order.append(by_name[ready[0]])
        done.add(ready[0])
    return order


def _script(metadata: sa.MetaData, todo: Sequence[Placement], *,
            extension: bool) -> list[str]:
    """The statements that place ``todo``, with the foreign keys from or to its tables
    set aside around the placements."""
    placing = {p.table for p in todo}
    keys = sorted(
        (fk for table in (metadata.tables[p.table] for p in todo)
         for fk in table.foreign_key_constraints),
        key=lambda fk: (fk.table.key, _fk_name(fk)))
    # a key from a table not placed now to one placed now is set aside too (Citus
    # refuses to place a table a plain table references)
    keys += sorted(
        (fk for table in metadata.tables.values() if table.key not in placing
         for fk in table.foreign_key_constraints if fk.referred_table.key in placing),
        key=lambda fk: (fk.table.key, _fk_name(fk)))
    head = [CREATE_EXTENSION] if extension else []
    if any(p.table == outbox.name for p in todo) and metadata.tables.get(
            outbox.name) is outbox:
        # the outbox's key trigger reads the member's last event in the shard it
        # fires on, on the node that holds it (see OUTBOX_KEY); Citus places a table
        # with a trigger only when told it is safe
        head += [UNSAFE_TRIGGERS, outbox_key_function(in_shard=True)]
    return [*head, SEQUENTIAL,
            *(f"ALTER TABLE {_qualified(fk.table.key)} DROP CONSTRAINT "
              f"{_DIALECT.identifier_preparer.quote(_fk_name(fk))}" for fk in keys),
            *(p.statement() for p in todo),
            # isolate_from_table=False: AddConstraint would otherwise mark each key as
            # "added apart", and a later create_all of the same metadata (the shipped
            # schema's create_schema) would build its tables without foreign keys
            *(str(sa.schema.AddConstraint(fk, isolate_from_table=False).compile(
                dialect=_DIALECT)) for fk in keys)]


def _fk_name(fk: sa.ForeignKeyConstraint) -> str:
    """The foreign key's name on the server: its own (or its naming convention's), or
    the one PostgreSQL gives an unnamed key (``<table>_<columns>_fkey``, shortened to
    63 bytes as PostgreSQL shortens it)."""
    name = fk.name
    if isinstance(name, str) and name:  # not None, nor the convention's "no name"
        return str(name)
    return _pg_name(fk.table.name, "_".join(c.name for c in fk.columns), "fkey")


def _pg_name(first: str, second: str, label: str) -> str:
    """PostgreSQL's ``makeObjectName``: ``first_second_label``, the longer of the two
    names cut a character at a time until the whole fits (ASCII names)."""
    room = _MAX_NAME - len(label) - 2
    while len(first) + len(second) > room:
        if len(first) > len(second):
            first = first[:-1]
        else:
            second = second[:-1]
    return f"{first}_{second}_{label}"


def _qualified(key: str) -> str:
    """A table's key (``name`` or ``schema.name``) as PostgreSQL reads it, each part
    quoted where it must be."""
    quote = _DIALECT.identifier_preparer.quote
    return ".".join(quote(part) for part in key.split(".", 1))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
