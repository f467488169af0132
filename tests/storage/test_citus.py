"""A distribution map applied to a Citus coordinator (``loyaltykit.sql.citus``).

Without Citus: the statements' order (reference tables first, each table after every
table its foreign keys reference, a colocation group's first table first) on the
shipped schema and on random ones, and the typed refusal of a bad map. On PostgreSQL,
with a stand-in for Citus's placing functions and catalog that keeps Citus's rules
(a table placed once, unique keys with the distribution column, no table placed while
a plain table references it or while a table it references is plain): the
application in one transaction, its foreign keys set aside and put back, data kept,
idempotent. With a real Citus coordinator (``LOYALTYKIT_TEST_CITUS_URL``): the
shipped schema migrated, placed, and written through the facade.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from conftest import POSTGRESQL
from loyaltykit import InvalidDistribution, InvalidInput, LoyaltyError, Storage, StorageError
from loyaltykit.sql import citus
from loyaltykit.sql.citus import CREATE_EXTENSION, SEQUENTIAL, Placement
from loyaltykit.sql.distribution import SCHEMA, Distribution, problems
from loyaltykit.sql.outbox_key import outbox_key_function
from loyaltykit.sql.schema import metadata as shipped

#: A Citus coordinator to test against (its database is used, and left with tables)
CITUS_URL_VARIABLE = "LOYALTYKIT_TEST_CITUS_URL"


# -- order, without a database ---------------------------------------------------------

def _check_order(md: sa.MetaData, distribution: Distribution,
                 found: list[Placement]) -> None:
    """Every table of the map once, reference tables first, each after the tables its
    foreign keys reference, each colocation group started by its first table."""
    names = [p.table for p in found]
    assert sorted(names) == sorted(set(distribution.reference) | set(distribution.distributed))
    kinds = [p.column is None for p in found]
    assert kinds == sorted(kinds, reverse=True)  # reference tables, then distributed
    at = {name: i for i, name in enumerate(names)}
    for name in names:
        for fk in md.tables[name].foreign_key_constraints:
            parent = fk.referred_table.name
            if parent in at and parent != name:
                assert at[parent] < at[name], f"{name} placed before {parent}"
    first: dict[str, str] = {}
    for p in found:
        if p.column is None:
            assert p.colocate_with == "none"
            continue
        assert p.column == distribution.distributed[p.table]
        group = distribution.group(p.table)
        if group not in first:
            first[group] = p.table
            assert p.colocate_with == "none"
        else:
            assert p.colocate_with == first[group]
    assert len(first) == len({distribution.group(t) for t in distribution.distributed})


def test_the_shipped_map_is_placed_in_an_order_citus_accepts() -> None:
    md = shipped
    found = citus.placements(md, SCHEMA)
    _check_order(md, SCHEMA, found)
    assert found[0] == Placement("lk_programs")
    assert Placement("lk_accounts", "member_id", "lk_members") in found


def test_the_statements_set_the_foreign_keys_aside_around_the_placements() -> None:
    md = shipped
    lines = citus.statements(md, SCHEMA)
    placing = [p.statement() for p in citus.placements(md, SCHEMA)]
    keys = [fk for t in md.sorted_tables for fk in t.foreign_key_constraints]
    # the outbox's key trigger made to read the shard it fires on, before any placing
    assert lines[:4] == [CREATE_EXTENSION, citus.UNSAFE_TRIGGERS,
                         outbox_key_function(in_shard=True), SEQUENTIAL]
    assert "TG_TABLE_NAME" in lines[2] and "FROM lk_outbox o" not in lines[2]
    drops, rest = lines[4:4 + len(keys)], lines[4 + len(keys):]
    assert rest[:len(placing)] == placing
    adds = rest[len(placing):]
    assert all(" DROP CONSTRAINT " in line for line in drops)
    assert sorted(adds) == sorted(
        str(sa.schema.AddConstraint(fk, isolate_from_table=False).compile(
            dialect=citus._DIALECT)) for fk in keys)
    assert sorted(d.rsplit(" ", 1)[1] for d in drops) == sorted(str(fk.name) for fk in keys)


def test_the_statements_leave_the_metadata_as_it_was() -> None:
    # building them once made create_all drop every foreign key of the shipped schema
    # from its CREATE TABLEs (SQLAlchemy's AddConstraint marks the key as added apart)
    def created() -> list[str]:
        return [str(sa.schema.CreateTable(t).compile(dialect=citus._DIALECT))
                for t in shipped.sorted_tables]

    before = created()
    assert any("FOREIGN KEY" in table for table in before)
    citus.statements(shipped, SCHEMA)
    assert before == created()


@st.composite
def _schemas(draw: st.DrawFn) -> tuple[sa.MetaData, Distribution]:
    """A random schema whose foreign keys go from later tables to earlier ones (no
    cycle; a table's key to itself allowed), and a random map of it (a reference
    table's keys to reference tables only)."""
    count = draw(st.integers(1, 8))
    names = draw(st.permutations([f"t{i}" for i in range(count)]))
    md = sa.MetaData()
    reference: set[str] = set()
    distributed: dict[str, str] = {}
    colocation: dict[str, str] = {}
    for i, name in enumerate(names):
        placed = draw(st.sampled_from(["reference", "default", "a", "b", "left out"]))
        # a reference table's keys point to reference tables only (Citus's rule)
        allowed = [p for p in names[:i + 1] if placed != "reference" or p in reference
                   or p == name]
        parents = draw(st.lists(st.sampled_from(allowed), unique=True, max_size=3))
        sa.Table(name, md, sa.Column("k", sa.String(8), primary_key=True),
                 *(sa.Column(f"to_{p}", sa.String(8)) for p in parents),
                 *(sa.ForeignKeyConstraint([f"to_{p}"], [f"{p}.k"]) for p in parents))
        if placed == "reference":
            reference.add(name)
        elif placed != "left out":
            distributed[name] = "k"
            if placed != "default":
                colocation[name] = placed
    return md, Distribution(reference=reference, distributed=distributed,
                            colocation=colocation)


@given(_schemas())
def test_random_schemas_are_placed_in_an_order_citus_accepts(
        case: tuple[sa.MetaData, Distribution]) -> None:
    md, distribution = case
    _check_order(md, distribution, citus.placements(md, distribution))
    lines = citus.statements(md, distribution)
    placed = set(distribution.reference) | set(distribution.distributed)
    touching = [fk for t in md.tables.values() for fk in t.foreign_key_constraints
                if t.name in placed or fk.referred_table.name in placed]
    # every key from or to a placed table dropped once and added once
    assert len(touching) == sum(" DROP CONSTRAINT " in line for line in lines)
    assert len(touching) == sum(" ADD FOREIGN KEY" in line for line in lines)


def test_a_map_naming_a_table_or_column_the_schema_lacks_is_refused() -> None:
    md = shipped
    gone = Distribution(reference={"lk_programs", "lk_gone"})
    with pytest.raises(InvalidDistribution) as caught:
        citus.statements(md, gone)
    assert isinstance(caught.value, LoyaltyError) and isinstance(caught.value, ValueError)
    assert ["lk_gone"] == caught.value.details["tables"]
    shard = Distribution(reference={"lk_programs"},
                         distributed={"lk_members": "member_id", "lk_accounts": "shard"})
    with pytest.raises(InvalidDistribution) as caught:
        citus.placements(md, shard)
    assert ["lk_accounts.shard"] == caught.value.details["columns"]
    with pytest.raises(InvalidDistribution):
        Distribution(reference={"a"}, distributed={"a": "k"})


def test_foreign_keys_in_a_cycle_are_refused() -> None:
    md = sa.MetaData()
    sa.Table("a", md, sa.Column("k", sa.String(8), primary_key=True),
             sa.Column("b", sa.String(8), sa.ForeignKey("b.k")))
    sa.Table("b", md, sa.Column("k", sa.String(8), primary_key=True),
             sa.Column("a", sa.String(8), sa.ForeignKey("a.k")))
    with pytest.raises(InvalidDistribution, match="cycle"):
        citus.placements(md, Distribution(distributed={"a": "k", "b": "k"}))


def test_the_docs_map_is_the_shipped_map() -> None:
    # docs/scale.md's table of every table's place, row by row
    page = Path(__file__).resolve().parents[2] / "docs" / "scale.md"
    rows = [[cell.strip().strip("`") for cell in line.strip("|").split("|")]
            for line in page.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `lk_")]
    assert {t for t, placed, _, _ in rows if placed == "reference"} == SCHEMA.reference
    assert {t: by for t, placed, by, _ in rows if placed == "distributed"} == \
        dict(SCHEMA.distributed)
    assert len(rows) == len(SCHEMA.reference) + len(SCHEMA.distributed)


# -- on PostgreSQL, with a stand-in for Citus ------------------------------------------

#: Citus's placing functions and catalog, as far as the application uses them, with
#: the rules Citus keeps; ``citus_stub_refuse`` names tables to refuse (a failure
#: half-way through).
STAND_IN = r"""
CREATE TABLE pg_dist_partition (
    logicalrelid regclass PRIMARY KEY, partmethod "char" NOT NULL, partkey text,
    colocationid integer NOT NULL, repmodel "char" NOT NULL);
CREATE SEQUENCE citus_stub_colocation;
CREATE TABLE citus_stub_refuse (name text PRIMARY KEY);
CREATE FUNCTION column_to_column_name(regclass, text) RETURNS text
    LANGUAGE sql AS $$ SELECT $2 $$;
CREATE FUNCTION citus_stub_check(t regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE other regclass;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = t) THEN
        RAISE EXCEPTION 'table % is already distributed', t;
    END IF;
    IF EXISTS (SELECT 1 FROM citus_stub_refuse WHERE to_regclass(name) = t) THEN
        RAISE EXCEPTION 'refused: %', t;
    END IF;
    SELECT conrelid INTO other FROM pg_constraint
     WHERE contype = 'f' AND confrelid = t AND conrelid <> t
       AND conrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LIMIT 1;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'cannot place %: the local table % references it', t, other;
    END IF;
    SELECT confrelid INTO other FROM pg_constraint
     WHERE contype = 'f' AND conrelid = t AND confrelid <> t
       AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LIMIT 1;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION 'referenced table % must be a distributed or reference table', other;
    END IF;
END $$;
CREATE FUNCTION create_reference_table(t regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM citus_stub_check(t);
    INSERT INTO pg_dist_partition VALUES (t, 'n', NULL, 0, 't');
END $$;
CREATE FUNCTION create_distributed_table(t regclass, col text,
                                         colocate_with text DEFAULT 'default')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE num smallint; grp integer;
BEGIN
    PERFORM citus_stub_check(t);
    SELECT attnum INTO num FROM pg_attribute
     WHERE attrelid = t AND attname = col AND NOT attisdropped;
    IF num IS NULL THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', col, t;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_index WHERE indrelid = t AND indisunique
                  AND NOT num = ANY (indkey::smallint[])) THEN
        RAISE EXCEPTION 'cannot create constraint on %: it lacks the column %', t, col;
    END IF;
    IF colocate_with = 'none' THEN
        grp := nextval('citus_stub_colocation');
    ELSIF colocate_with = 'default' THEN
        grp := 0;
    ELSE
        SELECT colocationid INTO grp FROM pg_dist_partition
         WHERE logicalrelid = to_regclass(colocate_with) AND partmethod = 'h';
        IF grp IS NULL THEN
            RAISE EXCEPTION 'relation % should be a hash distributed table', colocate_with;
        END IF;
    END IF;
    INSERT INTO pg_dist_partition VALUES (t, 'h', col, grp, 's');
END $$;
"""

#: A small shop's schema that keeps the rules: programs whole on every node; members,
#: transactions and postings by the member, colocated, keys and foreign keys with it;
#: program-wide codes by the code.
SHOP = Distribution(
    reference={"programs"},
    distributed={"members": "member_id", "txs": "member_id", "postings": "member_id",
                 "codes": "code"},
    colocation={"codes": "code"})


def _shop(md: sa.MetaData | None = None) -> sa.MetaData:
    md = md or sa.MetaData()
    sa.Table("programs", md, sa.Column("id", sa.String(8), primary_key=True))
    sa.Table("members", md,
             sa.Column("program_id", sa.String(8), sa.ForeignKey("programs.id"),
                       nullable=False),
             sa.Column("member_id", sa.String(32), primary_key=True))
    sa.Table("txs", md,
             sa.Column("member_id", sa.String(32), sa.ForeignKey("members.member_id"),
                       primary_key=True),
             sa.Column("id", sa.String(32), primary_key=True))
    sa.Table("postings", md,
             sa.Column("member_id", sa.String(32), primary_key=True),
             sa.Column("tx_id", sa.String(32), primary_key=True),
             sa.Column("points", sa.Integer(), nullable=False),
             sa.ForeignKeyConstraint(["member_id", "tx_id"], ["txs.member_id", "txs.id"],
                                     ondelete="CASCADE"))
    sa.Table("codes", md,
             sa.Column("code", sa.String(16), primary_key=True),
             sa.Column("program_id", sa.String(8), sa.ForeignKey("programs.id"),
                       nullable=False),
             sa.Column("member_id", sa.String(32), nullable=False))
    return md


@pytest.fixture
def coordinator() -> Iterator[sa.Engine]:
    """A fresh PostgreSQL database with the stand-in for Citus."""
    with POSTGRESQL.empty_database() as url:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(STAND_IN.replace("%", "%%"))  # psycopg's placeholders
            yield engine
        finally:
            engine.dispose()


def _state(engine: sa.Engine) -> tuple[list[tuple[str, str, str | None, int]],
                                        list[tuple[str, str, str]]]:
    """The stand-in catalog's rows (table, method, column, colocation group) and the
    foreign keys (table, name, definition) of the database."""
    with engine.connect() as conn:
        placed = [tuple(r) for r in conn.exec_driver_sql(
            "SELECT logicalrelid::text, partmethod::text, partkey, colocationid "
            "FROM pg_dist_partition ORDER BY 1")]
        keys = [tuple(r) for r in conn.exec_driver_sql(
            "SELECT conrelid::regclass::text, conname::text, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' ORDER BY 1, 2")]
    return placed, keys  # type: ignore[return-value]


def _fill(engine: sa.Engine, md: sa.MetaData) -> None:
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(md.tables["programs"].insert(), [{"id": "shop"}])
        conn.execute(md.tables["members"].insert(),
                     [{"program_id": "shop", "member_id": f"m{i}"} for i in range(3)])
        conn.execute(md.tables["txs"].insert(),
                     [{"member_id": f"m{i}", "id": f"t{i}"} for i in range(3)])
        conn.execute(md.tables["postings"].insert(),
                     [{"member_id": f"m{i}", "tx_id": f"t{i}", "points": 10 * i}
                      for i in range(3)])


def test_apply_places_every_table_in_one_transaction_and_keeps_the_keys(
        coordinator: sa.Engine) -> None:
    md = _shop()
    _fill(coordinator, md)
    _, keys_before = _state(coordinator)
    run = citus.apply(coordinator, md, SHOP)
    assert run == [line for line in citus.statements(md, SHOP) if line != CREATE_EXTENSION]
    placed, keys_after = _state(coordinator)
    assert keys_after == keys_before  # the same foreign keys, by name and definition
    groups = {name: group for name, _, _, group in placed}
    assert [(n, m, c) for n, m, c, _ in placed] == [
        ("codes", "h", "code"), ("members", "h", "member_id"),
        ("postings", "h", "member_id"), ("programs", "n", None), ("txs", "h", "member_id")]
    assert groups["members"] == groups["txs"] == groups["postings"] != groups["codes"]
    with coordinator.connect() as conn:
        assert 30 == conn.exec_driver_sql("SELECT sum(points) FROM postings").scalar()
    # idempotent: a second run finds every table placed and runs nothing
    assert [] == citus.apply(coordinator, md, SHOP)
    assert (placed, keys_after) == _state(coordinator)


def test_apply_on_a_connection_joins_its_transaction(coordinator: sa.Engine) -> None:
    md = _shop()
    md.create_all(coordinator)
    with coordinator.connect() as conn:
        conn.begin()
        assert citus.apply(conn, md, SHOP)
        conn.rollback()  # the caller's transaction decides
    assert [] == _state(coordinator)[0]


def test_a_map_that_grew_places_only_the_new_table_in_its_group(
        coordinator: sa.Engine) -> None:
    md = _shop()
    md.create_all(coordinator)
    citus.apply(coordinator, md, SHOP)
    sa.Table("lots", md,
             sa.Column("member_id", sa.String(32), sa.ForeignKey("members.member_id"),
                       primary_key=True),
             sa.Column("id", sa.String(32), primary_key=True))
    md.tables["lots"].create(coordinator)
    grown = Distribution(reference=SHOP.reference,
                         distributed={**SHOP.distributed, "lots": "member_id"},
                         colocation=SHOP.colocation)
    run = citus.apply(coordinator, md, grown)
    assert [SEQUENTIAL,
            "ALTER TABLE lots DROP CONSTRAINT lots_member_id_fkey",
            "SELECT create_distributed_table('lots', 'member_id', "
            "colocate_with => 'members')",
            "ALTER TABLE lots ADD FOREIGN KEY(member_id) REFERENCES members (member_id)",
            ] == run
    groups = {name: group for name, _, _, group in _state(coordinator)[0]}
    assert groups["lots"] == groups["members"]
    # a new first table of a group joins the group placed already
    new_first = Distribution(reference=SHOP.reference,
                             distributed={**grown.distributed, "aaa": "member_id"},
                             colocation=SHOP.colocation)
    sa.Table("aaa", md, sa.Column("member_id", sa.String(32), primary_key=True))
    md.tables["aaa"].create(coordinator)
    assert Placement("aaa", "member_id", "none") in citus.placements(md, new_first)
    assert ["SELECT create_distributed_table('aaa', 'member_id', "
            "colocate_with => 'members')"] == citus.apply(coordinator, md, new_first)[1:]


def test_without_setting_the_keys_aside_the_stand_in_refuses_like_citus(
        coordinator: sa.Engine) -> None:
    # the stand-in keeps Citus's rule that makes the set-aside needed: with the
    # foreign keys in place no order is accepted
    md = _shop()
    md.create_all(coordinator)
    with coordinator.begin() as conn, pytest.raises(sa.exc.DBAPIError,
                                                    match="the local table members"):
        conn.exec_driver_sql("SELECT create_reference_table('programs')")
    with coordinator.begin() as conn, pytest.raises(sa.exc.DBAPIError,
                                                    match="referenced table programs"):
        conn.exec_driver_sql("SELECT create_distributed_table('codes', 'code')")


def test_a_refusal_half_way_rolls_everything_back(coordinator: sa.Engine) -> None:
    md = _shop()
    _fill(coordinator, md)
    before = _state(coordinator)
    with coordinator.begin() as conn:
        conn.exec_driver_sql("INSERT INTO citus_stub_refuse VALUES ('postings')")
    with pytest.raises(StorageError, match="refused: postings"):
        citus.apply(coordinator, md, SHOP)
    assert before == _state(coordinator)  # nothing placed, every foreign key there


def test_a_table_placed_otherwise_is_refused_before_anything_is_written(
        coordinator: sa.Engine) -> None:
    md = _shop()
    md.create_all(coordinator)
    with coordinator.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE members DROP CONSTRAINT members_program_id_fkey")
        conn.exec_driver_sql("ALTER TABLE codes DROP CONSTRAINT codes_program_id_fkey")
        conn.exec_driver_sql("SELECT create_reference_table('programs')")
        conn.exec_driver_sql("SELECT create_reference_table('codes')")
    before = _state(coordinator)
    with pytest.raises(InvalidDistribution) as caught:
        citus.apply(coordinator, md, SHOP)
    assert {"table": "codes", "placed": "reference table",
            "wanted": "distributed by code"} == caught.value.details
    assert before == _state(coordinator)


def test_a_schema_that_breaks_the_rules_is_refused_before_anything_is_written(
        coordinator: sa.Engine) -> None:
    md = _shop()
    md.create_all(coordinator)
    loose = Distribution(reference={"programs"},
                         distributed={"members": "program_id", "txs": "member_id",
                                      "postings": "member_id", "codes": "code"},
                         colocation={"codes": "code"})
    with pytest.raises(InvalidDistribution) as caught:
        citus.apply(coordinator, md, loose)
    assert caught.value.details["problems"] == problems(md, loose)
    assert [] == _state(coordinator)[0]


def test_without_citus_the_extension_cannot_be_created_and_nothing_is_written() -> None:
    md = _shop()
    with POSTGRESQL.empty_database() as url:
        engine = sa.create_engine(url)
        try:
            md.create_all(engine)
            with pytest.raises(StorageError, match="citus"):
                citus.apply(url, md, SHOP)
            with engine.connect() as conn:
                assert 4 == conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_constraint WHERE contype = 'f'").scalar()
        finally:
            engine.dispose()


def test_a_database_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    md = _shop()
    with pytest.raises(InvalidInput, match="PostgreSQL"):
        citus.apply(f"sqlite:///{tmp_path / 'shop.db'}", md, SHOP)


def test_an_unnamed_foreign_key_is_dropped_by_the_name_postgresql_gives_it(
        coordinator: sa.Engine) -> None:
    md = sa.MetaData()
    long = "a_table_name_long_enough_that_postgresql_has_to_shorten_it"
    sa.Table("p", md, sa.Column("k", sa.String(8), primary_key=True))
    sa.Table(long, md, sa.Column("k", sa.String(8), primary_key=True),
             sa.Column("a_column_with_a_long_name_too", sa.String(8)),
             sa.ForeignKeyConstraint(["a_column_with_a_long_name_too"], ["p.k"]))
    md.create_all(coordinator)
    # the drop names the key as the server did: otherwise the transaction fails
    assert citus.apply(coordinator, md, Distribution(reference={"p", long}))


def test_the_migrated_schema_names_its_foreign_keys_as_the_statements_do(
        coordinator: sa.Engine) -> None:
    from loyaltykit.sql import SQLStorage

    SQLStorage(coordinator).upgrade()
    with coordinator.connect() as conn:
        on_server = set(conn.exec_driver_sql(
            "SELECT conname::text FROM pg_constraint WHERE contype = 'f'").scalars())
    assert on_server == {citus._fk_name(fk) for t in shipped.tables.values()
                         for fk in t.foreign_key_constraints}


def _placeable() -> Distribution:
    """The shipped map: every table of the shipped schema is placeable (the check
    finds nothing)."""
    assert [] == problems(shipped, SCHEMA)
    return SCHEMA


def test_the_migrated_shipped_schema_is_placed_and_written_to(
        coordinator: sa.Engine) -> None:
    from loyaltykit.sql import SQLStorage

    storage = SQLStorage(coordinator)
    storage.upgrade()
    _, keys_before = _state(coordinator)
    placeable = _placeable()
    assert citus.apply(coordinator, distribution=placeable)
    placed, keys_after = _state(coordinator)
    assert keys_after == keys_before
    assert {n for n, m, _, _ in placed if m == "n"} == set(placeable.reference)
    assert {(n, c) for n, m, c, _ in placed if m == "h"} == set(
        placeable.distributed.items())
    with coordinator.connect() as conn:  # the key trigger reads the shard it fires on
        body = conn.exec_driver_sql(
            "SELECT prosrc FROM pg_proc WHERE proname = 'lk_outbox_key'").scalar_one()
    assert "TG_TABLE_NAME" in body
    _write_and_read(storage)


def _write_and_read(storage: Storage) -> None:
    """A few of the facade's writes and reads: enrolments, an earn, a spend, a transfer
    between two members."""
    from loyaltykit import Loyalty, Money, Program, TestClock

    at = dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC)
    program = Program(id="citus", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"))
    loyalty = Loyalty(program, storage, clock=TestClock(at))
    loyalty.enrol("ann")
    loyalty.enrol("bob")
    loyalty.earn("ann", 100, key="earn-ann")
    loyalty.spend("ann", 30, key="spend-ann")
    loyalty.transfer("ann", "bob", 20, key="move")
    assert 50 == loyalty.balance("ann").available
    assert 20 == loyalty.balance("bob").available
    events = loyalty.events.read("mailer")  # keyed by the trigger, read back in order
    assert ["member.enrolled", "member.enrolled", "points.earned", "points.spent",
            "points.transferred", "points.transferred"] == [e.type for e in events]
    # each write numbers its events under its own key, in the order it raised them
    assert [1, 1, 1, 1, 1, 2] == [e.position.seq for e in events]
    assert ["ann", "bob"] == [e.member_id for e in events[-2:]]
    assert events == sorted(events, key=lambda e: e.position)
    loyalty.events.ack("mailer", events[-1])
    assert [] == loyalty.events.read("mailer")


# -- on a real Citus coordinator -------------------------------------------------------

def test_the_shipped_schema_on_a_citus_coordinator() -> None:
    url = os.environ.get(CITUS_URL_VARIABLE)
    if not url:
        pytest.skip(f"no Citus coordinator: set {CITUS_URL_VARIABLE} (Citus is not "
                    "packaged for this machine's registries)")
    from loyaltykit.sql import SQLStorage, create_engine

    engine = create_engine(url)
    placeable = _placeable()
    try:
        storage = SQLStorage(engine)
        storage.upgrade()
        citus.apply(engine, distribution=placeable)
        with engine.connect() as conn:
            placed = dict(conn.exec_driver_sql(
                "SELECT logicalrelid::text, partmethod::text FROM pg_dist_partition"
                " WHERE partmethod = 'h' OR repmodel = 't'").all())
        assert {t: "n" for t in placeable.reference}.items() <= placed.items()
        assert {t: "h" for t in placeable.distributed}.items() <= placed.items()
        _write_and_read(storage)
    finally:
        engine.dispose()
