"""Living beside a host application's own Alembic.

A host project keeps its schema with Alembic; loyaltykit keeps its ``lk_*`` tables with
migrations of its own, recorded in its own version table
(:data:`~loyaltykit.sql.VERSION_TABLE`). Two things keep them apart:

* :func:`include_name` / :func:`include_object` (or :func:`configure_kwargs`, both at
  once) in the host's ``env.py`` keep loyaltykit's tables, their indexes and its version
  table out of the host's ``alembic revision --autogenerate``, which would otherwise
  generate a revision dropping the whole ledger.
* :func:`upgrade`, called from a host migration (``upgrade(op)``), runs
  loyaltykit's migrations on the host's connection and inside the host's transaction,
  recording them in loyaltykit's version table (never the host's ``alembic_version``),
  and leaves the host's Alembic run (``op``, ``context``) as it was. ``loyaltykit
  migrate`` afterwards finds the schema current and does nothing.

loyaltykit's revisions are ``lk0001``, ``lk0002``, ...; the first carries the branch
label :data:`BRANCH_LABEL`. Databases stamped with the ids shipped before (``0001`` ...
``0016``) are re-stamped with the new ids by the next upgrade, in its transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from loyaltykit.sql.schema import metadata
from loyaltykit.sql.storage import VERSION_TABLE, SQLStorage

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "BRANCH_LABEL",
    "TABLES",
    "configure_kwargs",
    "include_name",
    "include_object",
    "upgrade",
]

#: The branch label of loyaltykit's first revision (``alembic history -r loyaltykit@base:``
#: where a host shows loyaltykit's scripts beside its own).
BRANCH_LABEL = "loyaltykit"

#: The names of the tables loyaltykit keeps: every ``lk_*`` table of its metadata and its
#: own version table. A host's autogenerate leaves them alone through the filters below.
TABLES: frozenset[str] = frozenset(metadata.tables) | {VERSION_TABLE}

#: The revision ids shipped up to migration 16, and the ids they have now.
_RENAMED = {f"{n:04d}": f"lk{n:04d}" for n in range(1, 17)}

IncludeName = Callable[[str | None, str, Mapping[str, str | None]], bool]
IncludeObject = Callable[[Any, str | None, str, bool, Any], bool]


def include_name(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
    """For ``context.configure(include_name=...)``: False for a table of loyaltykit (so
    the host's autogenerate does not reflect it, nor its indexes and constraints)."""
    return not (type_ == "table" and name in TABLES)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool,
                   compare_to: Any) -> bool:
    """For ``context.configure(include_object=...)``: False for loyaltykit's tables and
    for the columns, indexes and constraints on them, whether reflected from the
    database or found in a target metadata that includes loyaltykit's."""
    if type_ == "table":
        return name not in TABLES
    table = getattr(obj, "table", None)
    return not (isinstance(table, sa.Table) and table.name in TABLES)


def configure_kwargs(*, include_name: IncludeName | None = None,
                     include_object: IncludeObject | None = None) -> dict[str, Any]:
    """The keyword arguments for the host's ``context.configure(...)`` that keep
    loyaltykit's tables out of its autogenerate. The host's own filters, if it has any,
    are passed here and kept: an object is included when both agree."""
    own_name, own_object = include_name, include_object

    def name_filter(name: str | None, type_: str, parent_names: Mapping[str, str | None]) -> bool:
        return _include_name(name, type_, parent_names) and (
            own_name is None or own_name(name, type_, parent_names))

    def object_filter(obj: Any, name: str | None, type_: str, reflected: bool,
                      compare_to: Any) -> bool:
        return _include_object(obj, name, type_, reflected, compare_to) and (
            own_object is None or own_object(obj, name, type_, reflected, compare_to))

    return {"include_name": name_filter, "include_object": object_filter}


_include_name, _include_object = include_name, include_object


class HasBind(Protocol):
    """Alembic's ``op`` (anything whose ``get_bind()`` gives the connection)."""

    def get_bind(self) -> Connection: ...


def upgrade(bind: Engine | Connection | HasBind, revision: str = "head") -> None:
    """Run loyaltykit's migrations up to ``revision`` on ``bind``, recording them in
    loyaltykit's version table: ``SQLStorage(bind).upgrade(revision)``.

    Inside a host migration pass ``op`` (or ``op.get_bind()``): the migrations join the
    host's transaction (a SAVEPOINT), and the host's Alembic run carries on afterwards
    with its own ``op`` and ``context``. Raises :class:`~loyaltykit.InvalidInput` for a
    bind that is neither an Engine nor a Connection (as in the host's offline mode,
    ``alembic upgrade --sql``), :class:`~loyaltykit.StorageError` when a migration
    fails."""
    if not isinstance(bind, Engine | Connection) and callable(getattr(bind, "get_bind", None)):
        bind = bind.get_bind()
    # anything else is refused by SQLStorage with InvalidInput
    SQLStorage(bind).upgrade(revision)  # type: ignore[arg-type]


def run_upgrade(conn: Connection, config: Config, revision: str) -> None:
    """Migrate through ``conn`` (already in a transaction) with loyaltykit's ``config``,
    keeping a host's Alembic run that may be going on around this call (the shipped
    ``env.py`` re-stamps ids of before the rename). Used by :meth:`SQLStorage.upgrade`."""
    from alembic import command

    config.attributes["connection"] = conn
    with _host_run_kept():
        command.upgrade(config, _RENAMED.get(revision, revision))


def restamp(conn: Connection, version_table: str = VERSION_TABLE) -> None:
    """Give a database stamped with a revision id of before the rename (``0016``) its
    new id (``lk0016``); run by the shipped ``env.py`` before Alembic reads the
    version, so the ``alembic`` command line on loyaltykit's scripts re-stamps too."""
    if not sa.inspect(conn).has_table(version_table):
        return
    versions = sa.table(version_table, sa.column("version_num", sa.String))
    for old in conn.scalars(sa.select(versions.c.version_num)).all():
        if old in _RENAMED:
            conn.execute(versions.update().where(versions.c.version_num == old)
                         .values(version_num=_RENAMED[old]))


@contextlib.contextmanager
def _host_run_kept() -> Iterator[None]:
    """Put back the ``alembic.context`` and ``alembic.op`` of a host's Alembic run that
    a nested run replaces and, on leaving, removes (the host would then fail with
    ``'NoneType' object has no attribute 'create_table'`` or ``KeyError: 'config'``)."""
    from alembic.operations import Operations
    from alembic.runtime.environment import EnvironmentContext

    saved = [_installed(cls) for cls in (EnvironmentContext, Operations)]
    try:
        yield
    finally:
        for proxy in saved:
            if proxy is not None:
                proxy._install_proxy()


def _installed(cls: Any) -> Any:
    """The instance of an Alembic proxy class installed now (None if none is)."""
    modules = cls._setups[cls][1]
    return modules[0][0].get("_proxy") if modules else None
