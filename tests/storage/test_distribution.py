"""The check of a schema distributed by member (``loyaltykit.sql.distribution``): each
rule a distributed engine keeps is reported when a table breaks it, and a schema that
keeps them all has no problem."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from loyaltykit.sql.distribution import Distribution, problems

PLACED = Distribution(reference={"programs"},
                      distributed={"members": "member", "txs": "member"})


def _schema(*, tx_pk: tuple[str, ...] = ("member", "id"), fk_member: bool = True,
            extra: tuple[sa.SchemaItem, ...] = ()) -> sa.MetaData:
    md = sa.MetaData()
    sa.Table("programs", md, sa.Column("id", sa.String(8), primary_key=True))
    sa.Table("members", md,
             sa.Column("program", sa.String(8), sa.ForeignKey("programs.id"),
                       primary_key=True),
             sa.Column("member", sa.String(32), primary_key=True))
    fk = (["program", "member"], ["members.program", "members.member"]) if fk_member \
        else (["program"], ["programs.id"])
    sa.Table("txs", md,
             sa.Column("program", sa.String(8)),
             sa.Column("member", sa.String(32), primary_key="member" in tx_pk),
             sa.Column("id", sa.String(32), primary_key="id" in tx_pk),
             sa.ForeignKeyConstraint(*fk), *extra)
    return md


def test_a_schema_that_keeps_the_rules_has_no_problem() -> None:
    assert [] == problems(_schema(), PLACED)


def test_a_primary_key_without_the_distribution_column_is_reported() -> None:
    assert ["txs: primary key (id) lacks 'member'"] == problems(_schema(tx_pk=("id",)),
                                                               PLACED)


def test_unique_constraints_and_indexes_without_it_are_reported() -> None:
    found = problems(_schema(extra=(sa.UniqueConstraint("program", "id"),
                                    sa.Index("ix_txs_id", "id", unique=True),
                                    sa.Index("ix_txs_member", "member", "id", unique=True))),
                     PLACED)
    assert ["txs: unique (program, id) lacks 'member'",
            "txs: unique index ix_txs_id (id) lacks 'member'"] == found


def test_a_row_numbered_by_the_database_is_reported() -> None:
    md = sa.MetaData()
    sa.Table("log", md, sa.Column("seq", sa.Integer(), primary_key=True),
             sa.Column("member", sa.String(32)))
    found = problems(md, Distribution(distributed={"log": "member"}))
    assert ["log: column 'seq' is numbered by the database",
            "log: primary key (seq) lacks 'member'"] == found


def test_foreign_keys_the_engine_refuses_are_reported() -> None:
    # to a table distributed by the same value, but not on it
    found = problems(_schema(extra=(sa.Column("parent", sa.String(32)),
                                    sa.ForeignKeyConstraint(["parent"], ["members.member"]))),
                     PLACED)
    assert ["txs: foreign key (parent) -> members(member): does not join txs.member to "
            "members.member"] == found
    # between tables of different colocation groups
    apart = Distribution(reference={"programs"},
                         distributed={"members": "member", "txs": "member"},
                         colocation={"txs": "orders"})
    assert ["txs: foreign key (program, member) -> members(program, member): the tables "
            "are not colocated"] == problems(_schema(), apart)
    # from a reference table to a distributed one, and to a table not placed
    assert ["members: foreign key (program) -> programs(id): from a reference table to "
            "a distributed one"] == problems(
                _schema(), Distribution(reference={"members"},
                                        distributed={"programs": "id", "txs": "member"}))
    assert ["txs: foreign key (program, member) -> members(program, member): to a table "
            "the distribution does not place"] == problems(
                _schema(), Distribution(reference={"programs"}, distributed={"txs": "member"}))


def test_a_table_or_column_the_distribution_names_but_the_schema_lacks_is_reported() -> None:
    found = problems(_schema(), Distribution(reference={"programs", "gone"},
                                             distributed={"members": "member",
                                                          "txs": "shard"}))
    assert ["gone: named by the distribution, not in the schema",
            "txs: no distribution column 'shard'"] == found


def test_a_distribution_places_each_table_once() -> None:
    with pytest.raises(ValueError, match="both reference and distributed"):
        Distribution(reference={"a"}, distributed={"a": "member"})
    with pytest.raises(ValueError, match="colocation names tables not distributed"):
        Distribution(distributed={"a": "member"}, colocation={"b": "x"})


def test_the_shipped_map_places_every_table_of_the_shipped_schema_once() -> None:
    from loyaltykit.sql.distribution import SCHEMA
    from loyaltykit.sql.schema import metadata

    placed = set(SCHEMA.reference) | set(SCHEMA.distributed)
    assert set(metadata.tables) - placed == set()
    # member rows are all in one colocation group, by the member key
    members = {t for t, c in SCHEMA.distributed.items() if SCHEMA.group(t) == "default"}
    assert {SCHEMA.distributed[t] for t in members} == {"member_id", "referee_id"}
    assert {"lk_accounts", "lk_transactions", "lk_lots", "lk_holds"} <= members


def test_the_shipped_schema_keeps_the_rules_of_its_distribution() -> None:
    """Issue 23's schema check: every member-scoped table's primary key and unique
    constraints hold its distribution column, every foreign key is colocated or to a
    reference table, no id is numbered by the database. On the schema before 0015 it
    listed 28 problems (keys and foreign keys by id alone, program-wide unique
    constraints, the history's sequence, no lk_lookups, the outbox's sequence); on
    the schema before 0016 the outbox's two."""
    from loyaltykit.sql.distribution import SCHEMA
    from loyaltykit.sql.schema import metadata

    assert [] == problems(metadata, SCHEMA)
