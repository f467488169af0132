"""Alembic environment of loyaltykit's shipped migrations.

Run programmatically by :meth:`loyaltykit.sql.SQLStorage.upgrade`, which passes an open
connection in ``config.attributes["connection"]`` (and commits it). Without one (the
``alembic`` command line with a config naming this directory), an engine is made from
the ``sqlalchemy.url`` option. Logging is left alone: a library never configures it.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from loyaltykit.sql.alembic import restamp
from loyaltykit.sql.engine import create_engine
from loyaltykit.sql.schema import UTCDateTime, metadata

config = context.config
version_table = config.get_main_option("version_table") or "loyaltykit_alembic_version"


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # migrations spell out the DDL type, not the library's live TypeDecorator
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    restamp(connection, version_table)  # stamped 0001..0016 before the ids became lk0001..
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
    )


def run_offline() -> None:
    """Emit the migrations as SQL text (``alembic upgrade --sql``)."""
    url = config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=metadata,
        version_table=version_table,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the given connection, or one of a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("loyaltykit migrations need a connection or sqlalchemy.url")
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
