"""loyaltykit beside a host project's own Alembic (issue 24 item 1).

Each test builds a real host Alembic project in a temporary directory (``alembic.ini``,
an ``env.py``, a host model table, the host's revisions) and drives it through
``alembic.command`` on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.operations import ops
from alembic.script import ScriptDirectory

from loyaltykit.sql import MIGRATIONS_DIR, VERSION_TABLE, SQLStorage

ENV_PY = '''
import sqlalchemy as sa
from alembic import context

config = context.config
target_metadata = sa.MetaData()
sa.Table("shop_orders", target_metadata,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("total", sa.Numeric(12, 2), nullable=False))
{extra_tables}


def keep_directives(context_, revision, directives):
    config.attributes["upgrade_ops"] = directives[0].upgrade_ops


def configure_kwargs():
{configure_kwargs}


engine = sa.create_engine(config.get_main_option("sqlalchemy.url"), poolclass=sa.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=target_metadata,
                      process_revision_directives=keep_directives, **configure_kwargs())
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
'''

WITH_HELPER = '''    from loyaltykit.sql import alembic as lk_alembic
    return lk_alembic.configure_kwargs()'''
WITHOUT_HELPER = "    return {}"

SHOP_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "shop1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("shop_orders", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("total", sa.Numeric(12, 2), nullable=False))


def downgrade():
    op.drop_table("shop_orders")
'''

# the host's revision that brings loyaltykit's schema in; afterwards the host's own
# op must still work (a nested Alembic run used to leave it None)
LOYALTYKIT_REVISION = '''
import sqlalchemy as sa
from alembic import op

revision = "shop2"
down_revision = "shop1"
branch_labels = None
depends_on = None


def upgrade():
    {call}
    op.create_table("shop_rewards", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("member_id", sa.String(128), nullable=False))


def downgrade():
    op.drop_table("shop_rewards")
'''

CALLS = {
    "helper": "from loyaltykit.sql import alembic as lk_alembic\n"
              "    lk_alembic.upgrade(op.get_bind())",
    "op": "from loyaltykit.sql import alembic as lk_alembic\n"
          "    lk_alembic.upgrade(op)",
    "storage": "from loyaltykit.sql import SQLStorage\n"
               "    SQLStorage(op.get_bind()).upgrade()",
}

SHOP_REWARDS = '''sa.Table("shop_rewards", target_metadata,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("member_id", sa.String(128), nullable=False))'''


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of the host's (a SQLite file, then PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shop.sqlite'}"
        return
    from conftest import POSTGRESQL

    with POSTGRESQL.empty_database() as made:
        yield made


def host_project(root: Path, url: str, *, helper: bool = True,
                 loyaltykit_revision: str | None = None) -> Config:
    """Write a host Alembic project under ``root`` and return its configuration."""
    scripts = root / "migrations"
    (scripts / "versions").mkdir(parents=True)
    (root / "alembic.ini").write_text(textwrap.dedent(f"""\
        [alembic]
        script_location = {scripts}
        sqlalchemy.url = {url.replace("%", "%%")}
        """))
    (scripts / "script.py.mako").write_text(textwrap.dedent('''\
        """${message}"""
        import sqlalchemy as sa
        from alembic import op
        ${imports if imports else ""}
        revision = ${repr(up_revision)}
        down_revision = ${repr(down_revision)}
        branch_labels = ${repr(branch_labels)}
        depends_on = ${repr(depends_on)}


        def upgrade():
            ${upgrades if upgrades else "pass"}


        def downgrade():
            ${downgrades if downgrades else "pass"}
        '''))
    (scripts / "env.py").write_text(ENV_PY.format(
        configure_kwargs=WITH_HELPER if helper else WITHOUT_HELPER,
        extra_tables=SHOP_REWARDS if loyaltykit_revision else ""))
    (scripts / "versions" / "shop1.py").write_text(SHOP_REVISION)
    if loyaltykit_revision is not None:
        (scripts / "versions" / "shop2.py").write_text(
            LOYALTYKIT_REVISION.format(call=CALLS[loyaltykit_revision]))
    return Config(str(root / "alembic.ini"))


def autogenerate(config: Config) -> ops.UpgradeOps:
    """Run the host's ``alembic revision --autogenerate`` and return its upgrade ops
    (the revision file is written as well)."""
    config.attributes.pop("upgrade_ops", None)
    command.revision(config, message="no model change", autogenerate=True)
    found: ops.UpgradeOps = config.attributes["upgrade_ops"]
    return found


def dropped_tables(upgrade_ops: ops.UpgradeOps) -> set[str]:
    return {op.table_name for op in upgrade_ops.ops if isinstance(op, ops.DropTableOp)}


def versions(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return sorted(conn.scalars(sa.text(f"SELECT version_num FROM {table}")))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@contextlib.contextmanager
def loyaltykit_storage(url: str) -> Iterator[SQLStorage]:
    storage = SQLStorage.from_url(url)
    try:
        yield storage
    finally:
        storage.dispose()


def loyaltykit_scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return ScriptDirectory.from_config(config)


LOYALTYKIT_TABLES = set(SQLStorage.metadata.tables) | {VERSION_TABLE}
HEAD = loyaltykit_scripts().get_current_head()


def test_revisions_are_one_labelled_branch_of_prefixed_ids() -> None:
    scripts = loyaltykit_scripts()
    chain = [r.revision for r in reversed(list(scripts.walk_revisions()))]
    assert [f"lk{n:04d}" for n in range(1, len(chain) + 1)] == chain
    assert "lk0001" == scripts.get_revision("loyaltykit").revision  # type: ignore[union-attr]
    assert (HEAD,) == tuple(r.revision for r in scripts.get_revisions("loyaltykit@head")
                            if r is not None)


def test_autogenerate_after_migrate_drops_the_ledger_without_the_helper_and_nothing_with_it(
        url: str, tmp_path: Path) -> None:
    # the host at its head, then `loyaltykit migrate`
    bare = host_project(tmp_path / "bare", url, helper=False)
    command.upgrade(bare, "head")
    with loyaltykit_storage(url) as storage:
        storage.upgrade()
    assert LOYALTYKIT_TABLES <= table_names(url)

    # the bug: without the helper, no model change generates a revision dropping the ledger
    assert LOYALTYKIT_TABLES == dropped_tables(autogenerate(bare))

    # with the helper in env.py: an empty revision
    helped = host_project(tmp_path / "helped", url)
    upgrade_ops = autogenerate(helped)
    assert upgrade_ops.is_empty(), upgrade_ops.ops


@pytest.mark.parametrize("call", sorted(CALLS))
def test_upgrading_through_the_host_keeps_loyaltykit_in_its_own_version_table(
        url: str, tmp_path: Path, call: str) -> None:
    config = host_project(tmp_path, url, loyaltykit_revision=call)
    command.upgrade(config, "head")

    assert {"shop_orders", "shop_rewards"} | LOYALTYKIT_TABLES <= table_names(url)
    assert ["shop2"] == versions(url, "alembic_version")
    assert [HEAD] == versions(url, VERSION_TABLE)

    # `loyaltykit migrate` afterwards changes nothing
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with loyaltykit_storage(url) as storage:
        sa.event.listen(storage._engine, "before_cursor_execute", seen)
        storage.upgrade()
    assert statements  # the listener saw the version read
    changing = [s for s in statements if s.lstrip().split()[0].upper() in
                {"CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE"}]
    assert [] == changing
    assert [HEAD] == versions(url, VERSION_TABLE)
    assert ["shop2"] == versions(url, "alembic_version")

    # and the host's autogenerate stays empty
    upgrade_ops = autogenerate(config)
    assert upgrade_ops.is_empty(), upgrade_ops.ops


def test_a_database_stamped_with_the_old_ids_upgrades(url: str) -> None:
    # a database migrated to 0008 by the ids shipped before the rename
    with loyaltykit_storage(url) as storage:
        storage.upgrade("0008")
        assert ["lk0008"] == versions(url, VERSION_TABLE)
        with storage._engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0008'"))
        storage.upgrade()
    assert [HEAD] == versions(url, VERSION_TABLE)
    assert LOYALTYKIT_TABLES <= table_names(url)


def test_a_database_stamped_with_the_old_head_is_current(url: str) -> None:
    with loyaltykit_storage(url) as storage:
        storage.upgrade()
        with storage._engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0016'"))
        storage.upgrade()
    assert [HEAD] == versions(url, VERSION_TABLE)


def test_the_filters_leave_out_loyaltykit_objects_only() -> None:
    from loyaltykit.sql import alembic as lk_alembic

    accounts = SQLStorage.metadata.tables["lk_accounts"]
    index = next(iter(SQLStorage.metadata.tables["lk_transactions"].indexes))
    host = sa.Table("shop_orders", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    assert not lk_alembic.include_object(accounts, "lk_accounts", "table", False, None)
    assert not lk_alembic.include_object(index, index.name, "index", True, None)
    assert not lk_alembic.include_object(accounts.c.program_id, "program_id", "column", False, None)
    assert lk_alembic.include_object(host, "shop_orders", "table", False, None)
    assert lk_alembic.include_object(host.c.id, "id", "column", False, None)
    assert not lk_alembic.include_name(VERSION_TABLE, "table", {"schema_name": None})
    assert lk_alembic.include_name("shop_orders", "table", {"schema_name": None})
    assert lk_alembic.include_name("lk_accounts", "column", {"table_name": "lk_accounts"})

    # the host's own filters are kept: included only where both agree
    kwargs = lk_alembic.configure_kwargs(
        include_name=lambda name, type_, parents: name != "shop_scratch",
        include_object=lambda obj, name, type_, reflected, compare_to: name != "shop_scratch")
    assert kwargs["include_name"]("shop_orders", "table", {})
    assert not kwargs["include_name"]("shop_scratch", "table", {})
    assert not kwargs["include_name"]("lk_accounts", "table", {})
    assert not kwargs["include_object"](host, "shop_scratch", "table", True, None)
    assert not kwargs["include_object"](accounts, "lk_accounts", "table", False, None)
    assert kwargs["include_object"](host, "shop_orders", "table", False, None)


def test_the_alembic_command_line_on_our_scripts_restamps_too(url: str) -> None:
    with loyaltykit_storage(url) as storage:
        storage.upgrade("lk0015")
        with storage._engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0015'"))
        config = storage.alembic_config()
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, "head")  # env.py makes an engine of its own
    assert [HEAD] == versions(url, VERSION_TABLE)


@pytest.mark.parametrize("bad", [None, "sqlite://", object()])
def test_upgrade_refuses_what_is_not_a_bind(bad: Any) -> None:
    from loyaltykit import InvalidInput
    from loyaltykit.sql import alembic as lk_alembic

    with pytest.raises(InvalidInput):
        lk_alembic.upgrade(bad)
