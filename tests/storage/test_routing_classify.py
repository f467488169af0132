"""The statement classifier of a distributed engine's routing
(``loyaltykit.sql.routing.classify``): what pins a distributed table to one node, what
sends a statement to several, on a small schema of its own."""

from __future__ import annotations

import sqlalchemy as sa

from loyaltykit.sql.distribution import Distribution
from loyaltykit.sql.routing import Route, classify, statement_name, statement_text

md = sa.MetaData()
programs = sa.Table("programs", md, sa.Column("id", sa.String(8), primary_key=True))
members = sa.Table("members", md, sa.Column("member", sa.String(32), primary_key=True),
                   sa.Column("program", sa.String(8)))
txs = sa.Table("txs", md, sa.Column("member", sa.String(32), primary_key=True),
               sa.Column("id", sa.String(32), primary_key=True),
               sa.Column("amount", sa.Integer()))
legs = sa.Table("legs", md, sa.Column("member", sa.String(32), primary_key=True),
                sa.Column("tx", sa.String(32), primary_key=True),
                sa.Column("amount", sa.Integer()))
codes = sa.Table("codes", md, sa.Column("code", sa.String(32), primary_key=True),
                 sa.Column("member", sa.String(32)))

PLACED = Distribution(reference={"programs"},
                      distributed={"members": "member", "txs": "member", "legs": "member",
                                   "codes": "code"},
                      colocation={"codes": "codes"})
_m = sa.bindparam("m")


def route(stmt: sa.Executable | str) -> Route:
    return classify(stmt, PLACED).route  # type: ignore[arg-type]


def test_an_equality_on_the_distribution_column_routes_a_statement() -> None:
    assert Route.SINGLE == route(sa.select(txs.c.id).where(txs.c.member == _m))
    assert Route.SINGLE == route(sa.select(txs.c.id).where(
        txs.c.member == sa.literal_column("'x'")))
    assert Route.SINGLE == route(txs.update().where(txs.c.member == _m).values(amount=1))
    assert Route.SINGLE == route(txs.delete().where(txs.c.member == _m, txs.c.id == "t"))
    # reference tables and tables the map leaves out need nothing
    assert Route.NONE == route(sa.select(programs.c.id))


def test_a_filter_by_another_column_or_under_or_does_not() -> None:
    assert Route.SCAN == route(sa.select(txs.c.id).where(txs.c.id == sa.bindparam("id")))
    assert Route.SCAN == route(sa.select(txs.c.id).where(
        sa.or_(txs.c.member == _m, txs.c.id == "t")))
    assert Route.SCAN == route(txs.update().where(txs.c.id == "t").values(amount=1))


def test_a_list_of_values_goes_to_several_nodes() -> None:
    assert Route.MULTI == route(sa.select(txs.c.id).where(
        txs.c.member.in_(sa.bindparam("ids", expanding=True))))
    keys = sa.func.json_array_elements_text(sa.bindparam("j")).table_valued("k")
    assert Route.MULTI == route(sa.select(txs.c.id).join_from(keys, txs, txs.c.member == keys.c.k))


def test_a_join_on_the_distribution_columns_follows_the_pinned_table() -> None:
    joined = txs.join(legs, sa.and_(legs.c.member == txs.c.member, legs.c.tx == txs.c.id))
    assert Route.SINGLE == route(sa.select(legs.c.amount).select_from(joined)
                                 .where(txs.c.member == _m))
    # joined by the transaction alone: the legs are on every node
    by_id = txs.join(legs, legs.c.tx == txs.c.id)
    found = classify(sa.select(legs.c.amount).select_from(by_id).where(txs.c.member == _m),
                     PLACED)
    assert Route.SCAN == found.route
    assert ("legs: scan", "txs: single") == found.tables


def test_colocated_tables_joined_without_a_pin_are_set_based() -> None:
    joined = txs.join(legs, legs.c.member == txs.c.member)
    assert Route.COLOCATED == route(sa.select(legs.c.amount).select_from(joined))
    # a table of another colocation group is not colocated on the same value
    other = txs.join(codes, codes.c.code == txs.c.member)
    assert Route.SCAN == route(sa.select(codes.c.member).select_from(other))


def test_subqueries_and_semi_joins_carry_the_pin() -> None:
    inner = sa.select(txs.c.member.label("who"), txs.c.id).where(txs.c.member == _m).subquery()
    outer = sa.select(legs.c.amount).join_from(legs, inner, legs.c.member == inner.c.who)
    assert Route.SINGLE == route(outer)
    semi = sa.select(legs.c.amount).where(legs.c.member.in_(
        sa.select(txs.c.member).where(txs.c.member == _m)))
    assert Route.SINGLE == route(semi)
    correlated = sa.select(txs.c.id).where(txs.c.member == _m, sa.exists().where(
        legs.c.member == txs.c.member, legs.c.tx == txs.c.id))
    assert Route.SINGLE == route(correlated)


def test_inserts_are_routed_by_their_rows_or_by_their_select() -> None:
    assert Route.SINGLE == route(txs.insert())
    assert Route.SINGLE == route(legs.insert().from_select(
        ["member", "tx", "amount"],
        sa.select(txs.c.member, txs.c.id, txs.c.amount).where(txs.c.member == _m)))
    assert Route.COLOCATED == route(legs.insert().from_select(
        ["member", "tx", "amount"], sa.select(txs.c.member, txs.c.id, txs.c.amount)))
    assert Route.SCAN == route(legs.insert().from_select(
        ["member", "tx", "amount"], sa.select(txs.c.id, txs.c.id, txs.c.amount)))


def test_sql_text_naming_a_distributed_table_is_not_read() -> None:
    assert Route.TEXT == classify("SELECT id FROM lk_txs WHERE member = ?",
                                  Distribution(distributed={"lk_txs": "member"})).route
    found = classify("UPDATE lk_lots SET held = 0 WHERE id = ?")
    assert (Route.TEXT, ("lk_lots: text",)) == (found.route, found.tables)
    assert Route.NONE == classify('PRAGMA main.table_info("lk_lots")').route
    assert Route.NONE == classify("SELECT 1").route


def test_a_statement_is_named_by_its_function_and_normalised_text() -> None:
    one = sa.select(txs.c.id).where(txs.c.member == sa.bindparam("m"))
    same = sa.select(txs.c.id).where(txs.c.member == sa.bindparam("other_name"))
    assert "SELECT txs.id FROM txs WHERE txs.member = ?" == statement_text(one)
    assert statement_name("sql.x:f", one) == statement_name("sql.x:f", same)
    assert statement_name("sql.x:f", one) != statement_name("sql.x:g", one)
    rows = sa.values(sa.column("a", sa.Integer()), name="v").data([(1,), (2,), (3,)])
    assert "(?), ..." in statement_text(sa.select(rows.c.a))


def test_the_ledgers_reads_and_updates_of_a_member_name_it() -> None:
    # what the member-known statements of the ledger's store name since issue 23: a
    # transaction's legs and movements, the as-of sums and lots, a hold's allocations,
    # the lot and hold updates (the capture test sees them run; this is the fast loop's)
    from loyaltykit.sql import ledger, ledger_due, ledger_history

    single = {name: classify(getattr(module, name)) for module, names in (
        (ledger, ("_SEL_POSTINGS", "_SEL_MOVEMENTS", "_SEL_OPEN_HOLDS_1", "_SEL_OPEN_LOTS_1",
                  "_LOCK_ACCOUNT")),
        (ledger_history, ("_SEL_SUMS_AS_OF", "_SEL_LOTS_AS_OF", "_SEL_TOTAL_THROUGH")),
        (ledger_due, ("UPD_LOT", "UPD_HOLD", "UPD_ACCOUNT"))) for name in names}
    assert {n: r for n, r in single.items() if r.route is not Route.SINGLE} == {}
    assert Route.MULTI == classify(ledger._SEL_OPEN_HOLDS_PG).route


def test_a_routed_uncorrelated_scalar_subquery_is_one_value() -> None:
    """The member that claimed a code, as a scalar subquery: the engine answers it
    first on the code's node and routes the statement with its value (Citus plans an
    uncorrelated subquery on its own); correlated or not routed itself, it pins
    nothing."""
    owner = sa.select(codes.c.member).where(codes.c.code == sa.bindparam("c"))
    assert Route.SINGLE == route(sa.select(txs.c.id).where(
        txs.c.member == owner.scalar_subquery()))
    assert Route.SINGLE == route(txs.update().where(
        txs.c.member == owner.scalar_subquery(), txs.c.id == "t").values(amount=1))
    # the subquery itself on every node (no code given): nothing pinned
    anyone = sa.select(sa.func.max(codes.c.member))
    assert Route.SCAN == route(sa.select(txs.c.id).where(
        txs.c.member == anyone.scalar_subquery()))
    # routed itself but correlated with the statement's table: evaluated row by row
    mine = sa.select(codes.c.member).where(codes.c.code == sa.bindparam("c"),
                                           codes.c.member == txs.c.id)
    assert Route.SCAN == route(sa.select(txs.c.id).where(
        txs.c.member == mine.scalar_subquery()))
