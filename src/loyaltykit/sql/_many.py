"""Executemany of many rows with the types' conversions done once per column.

``Connection.execute(stmt, rows)`` builds each row's parameters through the compiled
statement (``construct_params``, then every bind processor looked up per value): for
the few thousand rows a batch of due work or a history import writes per table, that
is some 6 us a row on SQLite, about 40% of those calls' CPU (a tenth of a due batch).
:func:`execute_many` compiles the statement once per set of keys, keeps its positional
order and its bind processors, and hands the driver plain tuples
(``exec_driver_sql``: the same cursor ``executemany``, the same error wrapping). The
values are converted by the very processors SQLAlchemy would use, so the rows
written are the same.

An everyday write's statements have one row each (an earn's seven INSERTs and
UPDATEs): there the saving is the statement's own trip through ``execute`` (its cache
key, the compiled-cache lookup, the parameters' processing), about 110,000 CPU
instructions of SQLAlchemy per statement against 42,000 through ``exec_driver_sql``
(callgrind, Python 3.11, SQLAlchemy 2.1, a one-row INSERT of ``lk_lot_movements``):
a few rows are converted row by row, without the columns' set-up.

A plan also holds its rows' converter written out (as :mod:`loyaltykit._copy` writes
its copiers): one function building a row's parameter tuple in the statement's order,
each value by its key and through its processor, so a one-row write (a spend's seven
statements, a hold's eight) makes no pass over the getters and no test per value.

A column whose type says equal values bind to equal parameters (``memo_binds``: the
UTC timestamps, where a batch's rows share their ``recorded_at`` and many their
instants) is converted once per distinct value.

On PostgreSQL (psycopg) an everyday write's few rows take the same path: the
statement is compiled once with psycopg's positional ``%s`` parameters instead of its
``%(name)s`` ones (the same SQL, casts included) and each row handed to the driver
as a tuple, so an earn's seven INSERTs and UPDATEs (a transaction and hold id's claim
in ``lk_lookups`` among them) skip ``execute``'s work per statement (some 17 us of
CPU each, measured on a one-row INSERT of ``lk_lookups``: 61 us through ``execute``,
44 us through ``exec_driver_sql``).

Only where that holds plainly: SQLite's ``qmark`` parameters or psycopg's, a
statement with no Python-side defaults to compute per row (no prefetch) and no
expanding parameters; anything else goes through ``Connection.execute``. On
PostgreSQL, where an executemany is a statement per row, many rows of a plain INSERT
or keyed UPDATE are one statement over a JSON document of them
(:mod:`loyaltykit.sql._many_pg`); anything else keeps ``Connection.execute``.
"""

from __future__ import annotations

import copy
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from loyaltykit.sql._many_pg import MANY_ROWS, execute_json
from loyaltykit.sql._plans import Plans

__all__ = ["execute_columns", "execute_many", "execute_rows"]

#: From this many rows the values are converted column by column (fewer: row by row).
COLUMNS_FROM = 4

#: (key or None: a fixed value, the fixed value, the processor or None, whether equal
#: values convert to equal parameters: the column's type says so with ``memo_binds``)
_Getter = tuple[str | None, Any, Callable[[Any], Any] | None, bool]
#: One row (a mapping of the plan's keys) to its parameters, in the statement's order.
_Row = Callable[[Mapping[str, Any]], tuple[Any, ...]]
#: One row as a tuple (values in the plan's keys' order) to its parameters.
_TupleRow = Callable[[Sequence[Any]], tuple[Any, ...]]
_Plan = tuple[str, tuple[_Getter, ...], _Row, _TupleRow]



def _plan(dialect: sa.Dialect, stmt: sa.Executable, keys: tuple[str, ...], n: int
          ) -> _Plan | None:
    """The plan of ``n`` rows (n > 0) of ``stmt`` straight to the driver, or None:
    SQLite's, and psycopg's for fewer than ``MANY_ROWS`` rows (more are one
    statement over JSON arrays, :func:`~loyaltykit.sql._many_pg.execute_json`).
    (The callers test SQLite's ``qmark`` inline first: no call more per statement.)"""
    paramstyle = dialect.paramstyle
    if paramstyle == "qmark" or (n < MANY_ROWS and paramstyle == "pyformat"
                                 and dialect.driver == "psycopg"):
        return _plans.of(dialect, stmt, keys)
    return None


def execute_many(conn: Connection, stmt: sa.Executable, rows: Sequence[dict[str, Any]]
                 ) -> CursorResult[Any]:
    """``conn.execute(stmt, rows)``, faster where it can be (see the module docstring).
    Every row must have the keys of the first (as ``execute`` requires too)."""
    dialect = conn.dialect
    keys = tuple(rows[0]) if rows else ()
    plan = (None if not rows else _plans.of(dialect, stmt, keys)
            if dialect.paramstyle == "qmark" else _plan(dialect, stmt, keys, len(rows)))
    if plan is None:
        if dialect.name == "postgresql" and len(rows) >= MANY_ROWS:
            done = execute_json(conn, stmt, rows)
            if done is not None:
                return done
        return conn.execute(stmt, list(rows))
    sql, getters, one, _ = plan
    width = len(keys)
    if len(rows) == 1:  # the plan takes exactly the keys of this row
        return conn.exec_driver_sql(sql, [one(rows[0])])
    if len(rows) < COLUMNS_FROM:
        try:
            if any(len(row) != width for row in rows):
                raise KeyError(width)
            values = [one(row) for row in rows]
        except KeyError:  # a row without a key of the first: let execute explain
            return conn.execute(stmt, list(rows))
        return conn.exec_driver_sql(sql, values)
    try:
        if any(len(row) != width for row in rows):
            raise KeyError(width)
        # column by column: one map per converted column instead of a call per value
        picks = [key for key, _, _, _ in getters if key is not None]
        pick = itemgetter(*picks)
        picked = (list(zip(*map(pick, rows), strict=True)) if len(picks) > 1
                  else [tuple(map(pick, rows))])
    except KeyError:  # a row without a key of the first: let execute explain
        return conn.execute(stmt, list(rows))
    return conn.exec_driver_sql(sql, _converted(getters, picked, len(rows)))


def execute_columns(conn: Connection, stmt: sa.Executable,
                    columns: Mapping[str, Sequence[Any]]) -> CursorResult[Any]:
    """:func:`execute_many` of rows given column by column (each column's values in
    row order, all of one length): a batch built as columns needs no dict per row."""
    keys = tuple(columns)
    lengths = {len(column) for column in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    n = lengths.pop()
    dialect = conn.dialect
    plan = _plan(dialect, stmt, keys, n) if n else None
    if plan is None:
        return execute_many(conn, stmt, [dict(zip(keys, row, strict=True))
                                         for row in zip(*columns.values(), strict=True)])
    sql, getters, one, _ = plan
    if n < COLUMNS_FROM:  # a few rows (an everyday write's one event): row by row
        return conn.exec_driver_sql(sql, [one(dict(zip(keys, row, strict=True)))
                                          for row in zip(*columns.values(), strict=True)])
    picked = [columns[key] for key, _, _, _ in getters if key is not None]
    return conn.exec_driver_sql(sql, _converted(getters, picked, n))


def execute_rows(conn: Connection, stmt: sa.Executable, keys: tuple[str, ...],
                 rows: Sequence[Sequence[Any]]) -> CursorResult[Any]:
    """:func:`execute_many` of rows given as tuples, each value in ``keys``' order: no
    dict per row to build and read back by key. A few rows (an everyday write's one
    transaction, one lot) go through the plan's positional converter as they are;
    many (a history import's batch) are turned into columns and converted column by
    column."""
    n = len(rows)
    dialect = conn.dialect
    plan = (None if not n else _plans.of(dialect, stmt, keys) if dialect.paramstyle == "qmark"
            else _plan(dialect, stmt, keys, n))
    if plan is None:
        return execute_many(conn, stmt, [dict(zip(keys, row, strict=True)) for row in rows])
    sql, getters, _, by_position = plan
    width = len(keys)
    if n < COLUMNS_FROM:
        if any(len(row) != width for row in rows):
            raise ValueError(f"rows of other than {width} values")
        return conn.exec_driver_sql(sql, [by_position(row) for row in rows])
    # the strict zips refuse rows of other than ``width`` values (ValueError), as the
    # check above: no pass over the rows of its own
    columns = dict(zip(keys, zip(*rows, strict=True), strict=True))
    picked = [columns[key] for key, _, _, _ in getters if key is not None]
    return conn.exec_driver_sql(sql, _converted(getters, picked, n))


def _converted(getters: tuple[_Getter, ...], picked: Sequence[Sequence[Any]], n: int
               ) -> list[tuple[Any, ...]]:
    """The rows' parameters, in the statement's order, from ``picked`` (the values of
    each key the statement takes, column by column), converted column by column."""
    columns: list[Iterable[Any]] = []
    at = 0
    for key, fixed, proc, memo in getters:
        if key is None:
            columns.append(repeat(fixed, n))
            continue
        column = picked[at]
        at += 1
        if proc is not None and memo:  # each distinct value converted once
            converted = {value: proc(value) for value in dict.fromkeys(column)}
            columns.append(map(converted.__getitem__, column))
        elif proc is _uuid_hex:  # a whole column in one comprehension, no call a value
            columns.append(_uuid_hex_column(column))
        else:
            columns.append(map(proc, column) if proc is not None else column)
    return list(zip(*columns, strict=True))


def _uuid_hex(value: uuid.UUID | None) -> str | None:
    """A UUID as SQLAlchemy's ``Uuid`` binds it where the database has no UUID type
    (SQLite): its 32 hex digits (what ``UUID.hex`` gives), None as NULL; in one call
    instead of the type's processor calling the ``hex`` property."""
    return None if value is None else f"{value.int:032x}"


def _uuid_hex_column(column: Iterable[uuid.UUID | None]) -> list[str | None]:
    """:func:`_uuid_hex` of each value (a batch's id columns: tens of thousands)."""
    return [None if value is None else f"{value.int:032x}" for value in column]



def _character_uuid(dialect: sa.Dialect, type_: Any) -> bool:
    """True if ``type_`` is a ``Uuid`` of UUID objects bound as hex text on
    ``dialect`` (its processor gives ``value.hex``)."""
    return (isinstance(type_, sa.Uuid) and type_.as_uuid
            and (not dialect.supports_native_uuid or not type_.native_uuid))


def _row_converter(getters: tuple[_Getter, ...], keys: tuple[str, ...] | None = None
                   ) -> Any:
    """The function building one row's parameters from ``getters``, written out: each
    value read by its key (a literal; with ``keys``: by its position among them, for
    rows given as tuples) and passed through its processor if it has one, a fixed
    value bound by name."""
    namespace: dict[str, Any] = {}
    parts = []
    for i, (key, fixed, proc, _) in enumerate(getters):
        if key is None:
            namespace[f"f{i}"] = fixed
            parts.append(f"f{i}")
            continue
        value = f"row[{key!r}]" if keys is None else f"row[{keys.index(key)}]"
        if proc is None:
            parts.append(value)
        else:
            namespace[f"p{i}"] = proc
            parts.append(f"p{i}({value})")
    source = f"def one(row):\n    return ({', '.join(parts)}{',' if len(parts) == 1 else ''})"
    exec(source, namespace)  # keys are repr()-quoted, positions ints: no name runs as code
    return namespace["one"]


#: psycopg's dialects, each with its twin of positional (``format``) parameters
_FORMAT_TWINS: weakref.WeakKeyDictionary[sa.Dialect, sa.Dialect] = weakref.WeakKeyDictionary()


def _format_twin(dialect: sa.Dialect) -> sa.Dialect:
    """``dialect`` (psycopg's, ``%(name)s`` parameters) compiling ``%s`` ones: the same
    SQL and bind processors (a shallow copy shares its types' processors), its
    parameters in ``positiontup`` order, which psycopg takes as a tuple."""
    twin = _FORMAT_TWINS.get(dialect)
    if twin is None:
        twin = copy.copy(dialect)
        twin.paramstyle = "format"
        twin.positional = True
        _FORMAT_TWINS[dialect] = twin
    return twin


def _compile(dialect: sa.Dialect, stmt: sa.Executable, keys: tuple[str, ...]
             ) -> _Plan | None:
    if not isinstance(stmt, sa.Insert | sa.Update | sa.Delete):
        return None
    if dialect.paramstyle == "pyformat":
        dialect = _format_twin(dialect)
    compiled: Any = stmt.compile(dialect=dialect, column_keys=list(keys),
                                 for_executemany=True)
    if (compiled.insert_prefetch or compiled.update_prefetch or compiled.returning
            or compiled.literal_execute_params or compiled.post_compile_params
            or compiled.positiontup is None):
        return None
    processors = compiled._bind_processors
    getters: list[_Getter] = []
    wanted = set(keys)
    for name in compiled.positiontup:
        proc = processors.get(name)
        bind = compiled.binds.get(name)
        if name in wanted:
            memo = bind is not None and getattr(bind.type, "memo_binds", False) is True
            if proc is not None and bind is not None and _character_uuid(dialect, bind.type):
                proc = _uuid_hex  # the same text as the type's processor, cheaper
            getters.append((name, None, proc, memo))
            continue
        if bind is None or bind.required or bind.callable is not None:
            return None
        value = bind.value
        getters.append((None, proc(value) if proc is not None else value, None, False))
    used = {g[0] for g in getters if g[0] is not None}
    if used != wanted:  # a key the statement does not take: execute would refuse it
        return None
    return (compiled.string, tuple(getters), _row_converter(tuple(getters)),
            _row_converter(tuple(getters), keys))


_plans: Plans[_Plan] = Plans(_compile)
