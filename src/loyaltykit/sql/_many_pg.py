"""An executemany on PostgreSQL as one statement over JSON arrays of the rows' values.

psycopg's ``executemany`` runs the statement once per row (pipelined, but a parse,
bind and execute each on the server): a history import's batch writes some ten
thousand rows over a dozen tables, and each table's rows were as many statements.
:func:`execute_json` runs a plain INSERT (``INSERT ... SELECT``) or an UPDATE keyed
by its WHERE parameters (``UPDATE ... FROM``) once, over the ``unnest`` of one JSON
array per parameter (written by orjson; :mod:`loyaltykit.sql._pg_columns`), in the
statement's own SQL: each parameter becomes its column of the unnest, read as
``type[]`` (strings as ``text``, so a value too long for its ``varchar`` column is
refused, as the row by row statement refuses it), a JSON document column as
``json[]`` (each document as written; ``None`` as JSON ``null``, as SQLAlchemy's
JSON type writes it). Values go through the very bind processors SQLAlchemy would
apply first (a naive datetime is refused as before). INSERT rows keep their order
(``WITH ORDINALITY``: a serial column numbers them as it would row by row).

Column by column, not an array of rows: ``json_array_elements`` of the rows with
``(e.r->>i)`` per value parsed each row's text again for every value it took, so a
row cost its width times its columns; the history import's orders (a document of
the order and one of its pricing in each row) took 150 us a row on the server, as
much as the rest of the batch's writes together. An array per column is parsed once.

Only where that holds plainly; anything else returns None and the caller runs the
executemany: a statement other than exactly ``INSERT INTO t (...) VALUES (...)`` or
``UPDATE t SET ... WHERE ...`` with every parameter a row's key (no ON CONFLICT, no
RETURNING, no constant parameter), a parameter of a type without a plain cast, an
UPDATE whose rows repeat a key (one statement would update the row once, and its
row count would differ).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql.dml import OnConflictDoNothing, OnConflictDoUpdate
from sqlalchemy.engine import Connection, CursorResult

from loyaltykit._values import json_bytes
from loyaltykit.sql._pg_columns import unnest
from loyaltykit.sql._plans import Plans

__all__ = ["MANY_ROWS", "execute_json"]

#: From this many rows a statement runs over a JSON document (fewer: an executemany).
MANY_ROWS = 4

#: a parameter, with the cast psycopg's dialect renders after it (``::UUID``, ...)
_BIND_SQL = (r"%\((\w+)\)s(?:::[A-Z]+(?: (?:WITH|WITHOUT|TIME|ZONE|VARYING|PRECISION))*"
             r"(?:\(\d+(?:, ?\d+)?\))?)?")
_BIND = re.compile(_BIND_SQL)
_INSERT = re.compile(r"INSERT INTO (\S+) \(([^()]*)\) VALUES \(")
_VALUES = re.compile(f"{_BIND_SQL}(?:, {_BIND_SQL})*")
_UPDATE = re.compile(r"UPDATE (\S+) SET (.*) WHERE (.*)", re.S)
#: types cast by their own name (strings are cast to text, documents kept as JSON)
_CASTS: tuple[tuple[type[sa.types.TypeEngine[Any]], str], ...] = (
    (sa.Boolean, "boolean"), (sa.SmallInteger, "smallint"), (sa.BigInteger, "bigint"),
    (sa.Integer, "integer"), (sa.DateTime, ""), (sa.Date, "date"), (sa.Uuid, "uuid"),
    (sa.String, "text"),
)

#: the parameters' (and the unnest's columns') names: this, then the column's number
_COLUMN = "lk_c"

_Column = tuple[str, Callable[[Any], Any] | None, bool]  # key, processor, document
#: sql, columns, the positions of the key that rows must not repeat, constant parameters
_Plan = tuple[str, tuple[_Column, ...], tuple[int, ...], dict[str, Any]]



def execute_json(conn: Connection, stmt: sa.Executable, rows: Sequence[dict[str, Any]]
                 ) -> CursorResult[Any] | None:
    """``conn.execute(stmt, rows)`` as one statement on PostgreSQL, or None where the
    module docstring says it does not hold (nothing was run)."""
    keys = tuple(rows[0])
    plan = _plans.of(conn.dialect, stmt, keys)
    if plan is None:
        return None
    sql, columns, keyed, constants = plan
    width = len(keys)
    try:
        if any(len(row) != width for row in rows):
            return None
        values = [[row[key] for row in rows] if proc is None
                  else [proc(row[key]) for row in rows] for key, proc, _ in columns]
    except Exception:  # a row without a key of the first, a value a processor refuses
        return None  # (a naive datetime): execute raises as it did
    if keyed and len(set(zip(*(values[i] for i in keyed), strict=True))) < len(rows):
        return None  # rows repeat a key: one statement would meet a row twice
    # orjson writes instants and UUIDs as PostgreSQL reads them; str: what it refuses
    params = {f"{_COLUMN}{i}": json_bytes(column, default=str).decode()
              for i, column in enumerate(values)}
    return conn.exec_driver_sql(sql, {**constants, **params})


def _compile(dialect: sa.Dialect, stmt: sa.Executable, keys: tuple[str, ...]
             ) -> _Plan | None:
    upsert = isinstance(stmt, postgresql.Insert) and isinstance(
        stmt._post_values_clause, OnConflictDoUpdate | OnConflictDoNothing)
    if (not isinstance(stmt, sa.Insert | sa.Update) or dialect.paramstyle != "pyformat"
            or not (type(stmt) in (sa.Insert, sa.Update) or upsert)):
        return None
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys),
                                 for_executemany=True)
    if (compiled.insert_prefetch or compiled.update_prefetch or compiled.returning
            or compiled.literal_execute_params or compiled.post_compile_params
            or getattr(compiled, "escaped_bind_names", None)):
        return None
    text: str = compiled.string
    found = _BIND.findall(text)
    names = [name for name in found if name in keys]
    if sorted(names) != sorted(keys):  # each key once
        return None
    processors = compiled._bind_processors
    constants: dict[str, Any] = {}
    for name in found:  # a parameter bound in the statement itself: passed once
        bind = compiled.binds.get(name)
        if name in keys:
            continue
        if (name.startswith(_COLUMN) or bind is None or bind.required
                or bind.callable is not None):
            return None
        proc = processors.get(name)
        constants[name] = proc(bind.value) if proc is not None else bind.value
    columns: list[_Column] = []
    at: dict[str, str] = {}
    typed: list[tuple[str, str]] = []  # the unnest's columns: name, SQL type
    for i, name in enumerate(names):
        cast = _cast(compiled.binds[name].type, dialect)
        if cast is None:
            return None
        columns.append((name, processors.get(name) if cast != "json" else None,
                        cast == "json"))
        typed.append((f"{_COLUMN}{i}", cast))
        at[name] = f"lk_e.{_COLUMN}{i}"

    def sub(sql: str) -> str:
        return _BIND.sub(lambda m: at.get(m.group(1), m.group(0)), sql)

    rows = unnest("lk_e", typed, ordinality=True)
    keyed: tuple[int, ...] = ()
    if isinstance(stmt, sa.Insert):
        head = _INSERT.match(text)
        values = _VALUES.match(text, head.end()) if head is not None else None
        if head is None or values is None or text[values.end():values.end() + 1] != ")":
            return None
        tail = text[values.end() + 1:]
        if upsert:  # rows repeating the conflict's key would meet their own row
            conflict: Any = stmt._post_values_clause
            target = conflict.inferred_target_elements
            targets = [t if isinstance(t, str) else getattr(t, "key", None)
                       for t in target or ()]
            if not targets or any(t not in names for t in targets):
                return None
            keyed = tuple(names.index(str(t)) for t in targets)
        elif tail:
            return None
        sql = (f"INSERT INTO {head.group(1)} ({head.group(2)}) SELECT {sub(values.group(0))} "
               f"FROM {rows} ORDER BY lk_e.n{tail}")
    else:
        update = _UPDATE.fullmatch(text)
        if update is None or " FROM " in text or " WHERE " in update.group(3):
            return None
        table, set_sql, where_sql = update.groups()
        keyed = tuple(names.index(n) for n in _BIND.findall(where_sql) if n in at)
        if not keyed:
            return None
        sql = f"UPDATE {table} SET {sub(set_sql)} FROM {rows} WHERE {sub(where_sql)}"
    return sql, tuple(columns), keyed, constants


def _cast(type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str | None:
    """What a parameter of ``type_`` is read as from the JSON document: a cast, or
    ``"json"`` for a document; None for a type without a plain one."""
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, sa.TypeDecorator):
        impl = impl.impl_instance
    if isinstance(impl, sa.JSON):
        return "json"
    for kind, cast in _CASTS:
        if isinstance(impl, kind):
            if kind is sa.DateTime:
                return "timestamptz" if getattr(impl, "timezone", False) else "timestamp"
            return cast
    return None


_plans: Plans[_Plan] = Plans(_compile)
