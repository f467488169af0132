"""What the stores of the SQL backend share: their base class, chunked ``IN`` lists,
the insert and update helpers and the dialect's upserts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple, NoReturn, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from loyaltykit._errors import DuplicateKey, StorageError
from loyaltykit.sql._errors import is_unique_violation, storage_error, violated
from loyaltykit.sql._many import execute_many, execute_rows
from loyaltykit.sql.schema import (
    code_counters,
    lookups,
    program_versions,
    programs,
    referral_marks,
    reward_counters,
    rule_usage,
    tier_buckets,
)

__all__ = ["CHUNK", "Session", "Store", "Upserts", "as_stored", "chunks", "claimed_by",
           "supported_dialect", "upserts_for"]

#: Ids per statement in ``IN (...)`` lists (well below every engine's parameter limit).
CHUNK = 500


def as_stored(member_id: str) -> str:
    """A member field as a plain ``write`` stores it: as given (the member-key layer
    converted it); ``write_keyed`` looks it up instead (see
    :mod:`loyaltykit.storage.keyed_writes`)."""
    return member_id


def _all_found(conn: Connection, result: Any, n: int, what: str) -> None:
    """Refuse an update of ``n`` rows that found fewer (where the driver counts)."""
    sane = (conn.dialect.supports_sane_multi_rowcount if n > 1
            else conn.dialect.supports_sane_rowcount)
    if sane and result.rowcount != n:
        raise StorageError(f"update of {what} found {result.rowcount} of {n} rows")


def chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


_INS_LOOKUP = lookups.insert()
_LOOKUP_KEYS = ("program_id", "kind", "value", "member_id")


def claimed_by(kind: str, value: sa.ColumnElement[Any], program: sa.ColumnElement[Any]
               ) -> sa.ScalarSelect[Any]:
    """The member key that claimed ``value`` of ``kind`` in ``program`` (lk_lookups),
    as a scalar subquery: a statement on the member's rows compares its ``member_id``
    with it, so that on a distributed engine the subquery is answered first on the
    value's node and the statement routed to the member's (Citus plans an
    uncorrelated subquery on its own); on one server it is one index lookup more."""
    return (sa.select(lookups.c.member_id)
            .where(lookups.c.program_id == program, lookups.c.kind == kind,
                   lookups.c.value == value)
            .scalar_subquery())


class Upserts(NamedTuple):
    """The statements that need a dialect's ``INSERT .. ON CONFLICT``."""

    program: sa.Executable  # insert the program unless known
    version: sa.Executable  # insert the version unless stored
    usage: sa.Executable  # insert or overwrite a usage row
    bucket: sa.Executable  # add to a tier metric bucket (created at the value given)
    mark: sa.Executable  # keep an identity mark unless kept
    code_count: sa.Executable  # add :n to a program's code counter if within :planned
    reward_counter: sa.Executable  # create a reward's counter row (0, 0) unless there


def _upserts(insert: Callable[[sa.Table], Any]) -> Upserts:
    usage = insert(rule_usage)
    # (a source is one member's: its order or event)
    overwritten = ("rule_group", "occurred_at", "points", "stamps")
    bucket = insert(tier_buckets)
    count = insert(code_counters).values(
        program_id=sa.bindparam("p"), issued=sa.bindparam("n", type_=sa.BigInteger()))
    return Upserts(
        program=insert(programs).on_conflict_do_nothing(index_elements=["id"]),
        version=insert(program_versions).on_conflict_do_nothing(
            index_elements=["program_id", "version"]),
        usage=usage.on_conflict_do_update(
            index_elements=["program_id", "source", "rule_id", "member_id"],
            set_={name: usage.excluded[name] for name in overwritten},
        ),
        bucket=bucket.on_conflict_do_update(
            index_elements=["program_id", "member_id", "period_start"],
            set_={"value": tier_buckets.c.value + bucket.excluded.value},
        ),
        mark=insert(referral_marks).on_conflict_do_nothing(
            index_elements=["program_id", "member_id", "kind", "digest"]),
        code_count=count.on_conflict_do_update(
            index_elements=["program_id"],
            set_={"issued": code_counters.c.issued + count.excluded.issued},
            where=code_counters.c.issued + count.excluded.issued
            <= sa.bindparam("planned", type_=sa.BigInteger()),
        ).execution_options(preserve_rowcount=True),  # 1 if added, 0 if refused
        reward_counter=insert(reward_counters).values(
            program_id=sa.bindparam("p"), reward_id=sa.bindparam("r"), held=0, redeemed=0,
        ).on_conflict_do_nothing(index_elements=["program_id", "reward_id"]),
    )


_UPSERTS = {"postgresql": _upserts(postgresql.insert), "sqlite": _upserts(sqlite.insert)}


def supported_dialect(conn: Connection) -> str:
    """The name of ``conn``'s dialect; StorageError unless PostgreSQL or SQLite."""
    name = conn.dialect.name
    if name not in _UPSERTS:
        raise StorageError("the SQL backend supports PostgreSQL and SQLite only",
                           dialect=name)
    return name


def upserts_for(conn: Connection) -> Upserts:
    return _UPSERTS[supported_dialect(conn)]


class Session(Protocol):
    """What a store needs of its unit of work (:class:`~loyaltykit.sql.SQLUnitOfWork`)."""

    program_id: str
    #: True: the unit of work only reads (it takes no row locks; writes are refused)
    read_only: bool

    def connection(self) -> Connection:
        """The unit of work's connection, inside an open transaction."""


class Store:
    """One store of a :class:`~loyaltykit.sql.SQLUnitOfWork`: its program, and its
    connection through the unit of work (which begins the transaction when first
    asked, and again after a commit)."""

    def __init__(self, uow: Session) -> None:
        self._uow = uow
        self.program_id = uow.program_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._uow!r})"

    def _c(self) -> Connection:
        """The unit of work's connection, inside an open transaction."""
        return self._uow.connection()

    def _insert(self, conn: Connection, stmt: sa.Insert, rows: list[dict[str, Any]],
                duplicate: str | None = None, field: str = "", only: str | None = None
                ) -> None:
        """Insert ``rows`` in one executemany. A unique violation is DuplicateKey (with
        ``duplicate`` as its message and the rows' ``field`` as detail) when
        ``duplicate`` is given and, with ``only``, the violated constraint is that one;
        anything else is StorageError."""
        try:
            execute_many(conn, stmt, rows)
        except sa_exc.IntegrityError as exc:
            self._refused(exc, duplicate, field, only, lambda: [row[field] for row in rows])

    def _claim(self, conn: Connection, kind: str, pairs: Sequence[tuple[str, str]],
               duplicate: str | None, field: str = "") -> None:
        """Claim each ``(value, member key)`` of ``pairs`` as the program's one
        ``kind`` value (an order id, a code, a transaction or hold id's hex) in
        ``lk_lookups``, in one executemany: a value claimed before (or twice in
        ``pairs``) is DuplicateKey with ``duplicate`` as its message and the values as
        ``field`` (StorageError without ``duplicate``: an id drawn twice)."""
        self._claims(conn, [(kind, value, member) for value, member in pairs], duplicate,
                     field)

    def _claims(self, conn: Connection, claims: Sequence[tuple[str, str, str]],
                duplicate: str | None, field: str = "") -> None:
        """:meth:`_claim` of ``(kind, value, member key)`` claims of several kinds, in
        one executemany."""
        program_id = self.program_id
        try:
            execute_rows(conn, _INS_LOOKUP, _LOOKUP_KEYS,
                         [(program_id, kind, value, member) for kind, value, member in claims])
        except sa_exc.IntegrityError as exc:
            self._refused(exc, duplicate, field, None, lambda: [v for _, v, _ in claims])

    def _insert_rows(self, conn: Connection, stmt: sa.Insert, keys: tuple[str, ...],
                     rows: Sequence[tuple[Any, ...]], duplicate: str | None = None,
                     field: str = "", only: str | None = None) -> None:
        """:meth:`_insert` of rows given as tuples, each value in ``keys``' order
        (:func:`~loyaltykit.sql._many.execute_rows`): a batch's rows (a history import
        writes tens of thousands a table) need no dict each, an everyday write's one
        row no dict either."""
        try:
            execute_rows(conn, stmt, keys, rows)
        except sa_exc.IntegrityError as exc:
            self._refused(exc, duplicate, field, only,
                          lambda: [row[keys.index(field)] for row in rows])

    def _refused(self, exc: sa_exc.IntegrityError, duplicate: str | None, field: str,
                 only: str | None, values: Callable[[], list[Any]]) -> NoReturn:
        """Raise what an insert's integrity error means (see :meth:`_insert`);
        ``values``: the rows' ``field``."""
        if duplicate is not None and is_unique_violation(exc) and (
            only is None or violated(exc, only)
        ):
            found = values()
            detail = found[0] if len(found) == 1 else found
            raise DuplicateKey(duplicate, program_id=self.program_id,
                               **{field: detail}) from exc
        raise storage_error(exc) from exc

    @staticmethod
    def _update_rows(conn: Connection, stmt: sa.Update, keys: tuple[str, ...],
                     rows: Sequence[tuple[Any, ...]], what: str) -> None:
        """:meth:`_update` of rows given as tuples (see :meth:`_insert_rows`)."""
        _all_found(conn, execute_rows(conn, stmt, keys, rows), len(rows), what)

    @staticmethod
    def _update(conn: Connection, stmt: sa.Update, rows: list[dict[str, Any]],
                what: str) -> None:
        _all_found(conn, execute_many(conn, stmt, rows), len(rows), what)
