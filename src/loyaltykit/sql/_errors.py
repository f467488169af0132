"""Driver errors translated at the edge of the SQL backend.

A unique violation of one of the ledger's rules becomes :class:`~loyaltykit.DuplicateKey`
where a store writes (see :meth:`loyaltykit.sql._shared.Store._insert`); a concurrent
unit of work that made the database abort this one becomes
:class:`~loyaltykit.SerializationFailure`; a write in a read-only one
:class:`~loyaltykit.ReadOnlyViolation`; anything else
:class:`~loyaltykit.StorageError`. Every public method of a store is wrapped in
:func:`translated`, so no SQLAlchemy or driver exception escapes the backend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

from loyaltykit._errors import ReadOnlyViolation, SerializationFailure, StorageError

__all__ = [
    "READ_ONLY_SQLSTATE",
    "RETRYABLE_SQLSTATES",
    "is_unique_violation",
    "storage_error",
    "translated",
    "violated",
]

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def is_unique_violation(exc: sa_exc.IntegrityError) -> bool:
    orig = exc.orig
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:
        return name in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY")
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:
        return bool(state == "23505")
    text = str(orig).lower()
    return "unique" in text or "duplicate" in text


def violated(exc: sa_exc.IntegrityError, column: str) -> bool:
    """True if the unique constraint ``exc`` reports is the one on ``column``."""
    diag = getattr(exc.orig, "diag", None)  # psycopg names the constraint
    name = getattr(diag, "constraint_name", None)
    if name:
        return str(name).endswith(f"_{column}")
    return column in str(exc.orig)  # SQLite: "UNIQUE constraint failed: table.column"


#: SQLSTATEs after which the whole unit of work may simply be tried again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})
#: PostgreSQL's read_only_sql_transaction: a write in a READ ONLY transaction.
READ_ONLY_SQLSTATE = "25006"


def storage_error(exc: sa_exc.SQLAlchemyError) -> StorageError:
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).splitlines()
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return SerializationFailure(
            "the database aborted the unit of work because of a concurrent one",
            sqlstate=sqlstate, detail=lines[0] if lines else "",
        )
    if sqlstate == READ_ONLY_SQLSTATE or getattr(orig, "sqlite_errorname", None) == \
            "SQLITE_READONLY":
        return ReadOnlyViolation(
            "a write through a read-only unit of work", detail=lines[0] if lines else "")
    return StorageError(
        "the database failed", error=type(orig).__name__, detail=lines[0] if lines else ""
    )


def translated(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], R]:
    """Turn SQLAlchemy errors raised by ``method`` into StorageError."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except sa_exc.SQLAlchemyError as exc:
            raise storage_error(exc) from exc

    return wrapper
