"""The shipped Alembic migrations build exactly the schema of loyaltykit's metadata
(and carry existing data forward)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from loyaltykit import StorageError
from loyaltykit._model import ProgramVersion
from loyaltykit.sql import MIGRATIONS_DIR, VERSION_TABLE, SQLStorage, create_engine
from loyaltykit.testing import by_shop_ids


@pytest.fixture
def storage(unmigrated_storage: SQLStorage) -> SQLStorage:
    """A storage on an empty database, no schema yet (SQLite file, then PostgreSQL)."""
    return unmigrated_storage


def _engine(storage: SQLStorage) -> sa.Engine:
    return storage._engine


def _differences(storage: SQLStorage) -> list[Any]:
    with _engine(storage).connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return list(compare_metadata(context, SQLStorage.metadata))


def _revision(storage: SQLStorage) -> str | None:
    with _engine(storage).connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def _tables(storage: SQLStorage) -> set[str]:
    return set(sa.inspect(_engine(storage)).get_table_names())


def test_upgrade_of_an_empty_database_matches_the_metadata(storage: SQLStorage) -> None:
    storage.upgrade()
    assert [] == _differences(storage)
    assert set(SQLStorage.metadata.tables) | {VERSION_TABLE} == _tables(storage)


def test_the_comparison_sees_a_missing_index(storage: SQLStorage) -> None:
    # control: compare_metadata really looks at the indexes upgrade() created
    storage.upgrade()
    with _engine(storage).begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_lk_lots_member_open")
    assert ["add_index"] == [diff[0] for diff in _differences(storage)]


def test_upgrade_records_the_head_revision_and_is_idempotent(storage: SQLStorage) -> None:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    storage.upgrade()
    storage.upgrade()
    assert head == _revision(storage)
    assert [] == _differences(storage)


def test_downgrade_to_base_drops_every_table(storage: SQLStorage) -> None:
    storage.upgrade()
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert {VERSION_TABLE} == _tables(storage)
    storage.upgrade()
    assert [] == _differences(storage)


def test_create_schema_builds_the_same_schema_as_the_migrations(tmp_path: Path) -> None:
    storage = SQLStorage.from_url(f"sqlite:///{tmp_path / 'created.sqlite'}")
    try:
        storage.create_schema()
        with _engine(storage).connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert [] == list(compare_metadata(context, SQLStorage.metadata))
    finally:
        storage.dispose()


def test_an_unknown_revision_is_a_storage_error(storage: SQLStorage) -> None:
    with pytest.raises(StorageError, match="migration"):
        storage.upgrade("no-such-revision")


def test_the_migrations_have_a_single_head() -> None:
    assert 1 == len(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


def test_upgrade_on_a_host_connection_joins_the_host_transaction(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'host.sqlite'}")
    try:
        with engine.connect() as conn:
            conn.begin()
            SQLStorage(conn).upgrade()
            assert "lk_lots" in sa.inspect(conn).get_table_names()
            conn.rollback()
        assert [] == sa.inspect(engine).get_table_names()
        with engine.connect() as conn:
            conn.begin()
            SQLStorage(conn).upgrade()
            conn.commit()
        assert [] == _differences(SQLStorage(engine))
    finally:
        engine.dispose()


def test_0002_gives_every_registered_program_its_definition_as_version_1(
    storage: SQLStorage,
) -> None:
    storage.upgrade("lk0001")
    created = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)
    definition = {"id": "shop", "wallets": ["points"], "currency": "EUR"}
    programs = SQLStorage.metadata.tables["lk_programs"]
    with _engine(storage).begin() as conn:
        conn.execute(programs.insert(), {"id": "shop", "definition": definition,
                                         "created_at": created})
    storage.upgrade()
    with storage.unit_of_work("shop") as uow:
        assert [ProgramVersion("shop", 1, None, definition,
                               created)] == uow.programs.program_versions()
    storage.register_program(ProgramVersion("shop", 1, None, {"changed": True}, created))
    with storage.unit_of_work("shop") as uow:
        assert [definition] == [v.definition for v in uow.programs.program_versions()]


def test_downgrade_of_0002_keeps_the_ledger(storage: SQLStorage) -> None:
    storage.upgrade()
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0001")
    new_tables = {"lk_program_versions", "lk_orders", "lk_rule_usage", "lk_tier_states",
                  "lk_tier_buckets", "lk_tier_history", "lk_tier_notices",
                  "lk_referral_codes", "lk_referrals", "lk_referral_marks",
                  "lk_member_ids", "lk_erasures", "lk_code_counters",
                  "lk_vouchers", "lk_reward_counters", "lk_outbox", "lk_outbox_consumers",
                  "lk_notices", "lk_lookups"}
    assert set(SQLStorage.metadata.tables) - new_tables | {VERSION_TABLE} == _tables(storage)
    assert "lk0001" == _revision(storage)
    storage.upgrade()
    assert [] == _differences(storage)


def test_0004_adds_account_activity_and_keeps_only_events_usage_rows(
    storage: SQLStorage,
) -> None:
    storage.upgrade("lk0003")
    created = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)
    tables = SQLStorage.metadata.tables
    account = {"program_id": "shop", "member_id": "m", "wallet": "points",
               "available": 5, "pending": 0, "held": 0, "debt": 0, "issued": -5,
               "redeemed": 0, "expired": 0, "adjustments": 0, "transfers": 0,
               "clawback_shortfall": 0, "next_due_at": None, "version": 1}
    usage = [{"program_id": "shop", "member_id": "m", "source": source, "rule_id": rule,
              "rule_group": None, "occurred_at": created, "points": "1", "stamps": 0}
             for source, rule in [("order:o1", "base"), ("order:o1", "bonus"),
                                  ("event:e1", "base"), ("event:order:x", "base"),
                                  ("orders:o2", "base")]]
    with _engine(storage).begin() as conn:
        conn.execute(tables["lk_programs"].insert(), {
            "id": "shop", "definition": {"id": "shop"}, "created_at": created})
        conn.execute(tables["lk_members"].insert(), {
            "program_id": "shop", "member_id": "m", "enrolled_at": created,
            "attributes": {}})
        conn.execute(sa.insert(sa.table("lk_accounts", *map(sa.column, account))), account)
        conn.execute(tables["lk_rule_usage"].insert(), usage)
    storage.upgrade()
    assert [] == _differences(storage)
    with _engine(storage).connect() as conn:
        rule_usage = tables["lk_rule_usage"]
        kept = conn.execute(sa.select(rule_usage.c.source).order_by(rule_usage.c.source))
        assert ["event:e1", "event:order:x", "orders:o2"] == list(kept.scalars())
    with by_shop_ids(storage).unit_of_work("shop") as uow:
        state = uow.ledger.get_account("points", "m")
        assert state is not None
        assert (5, 1, None) == (state.available, state.version, state.activity)
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0003")
    assert "lk0003" == _revision(storage)
    columns = {c["name"] for c in sa.inspect(_engine(storage)).get_columns("lk_accounts")}
    assert "activity" not in columns and "version" in columns
    storage.upgrade()
    assert [] == _differences(storage)


def test_0005_orders_keep_their_key_record_across_a_downgrade(storage: SQLStorage) -> None:
    """Since 0005 an order recorded under its default key is that key's record.
    Downgrading copies those records into lk_idempotency_keys; upgrading again leaves
    the new columns NULL, and a replay then finds the key's own record."""
    from loyaltykit import Loyalty, Money, Order, OrderLine, TestClock
    from loyaltykit.testing.contract import make_program

    storage.upgrade()
    clock = TestClock(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    loyalty = Loyalty(make_program("keys"), storage, clock=clock)
    loyalty.enrol("m")
    order = Order(id="o1", member_id="m", placed_at=clock.now(), currency="EUR",
                  lines=(OrderLine(sku="s", quantity=2, unit_price=Money("10.00", "EUR")),))
    first = loyalty.record_order(order)
    keys = SQLStorage.metadata.tables["lk_idempotency_keys"]
    with _engine(storage).connect() as conn:
        assert [] == list(conn.execute(
            sa.select(keys.c.key).where(keys.c.key.like("order:%"))).scalars())
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0004")
    with _engine(storage).connect() as conn:
        assert ["order:o1"] == list(conn.execute(
            sa.select(keys.c.key).where(keys.c.key.like("order:%"))).scalars())
    storage.upgrade()
    assert [] == _differences(storage)
    with storage.unit_of_work("keys") as uow:
        record = uow.orders.get_order("o1")
        assert record is not None and (None, None) == (record.fingerprint, record.result)
    assert first == Loyalty(make_program("keys"), storage, clock=clock).record_order(order)


def test_0008_moves_every_member_to_a_member_key_and_back(storage: SQLStorage) -> None:
    """0008 keeps the shop's id once (lk_member_ids) and rewrites every member column,
    the referral columns and the member id inside order documents to the member key;
    downgrading writes the shop's ids back. The ledger reads the same either way."""
    from loyaltykit import Identity, Loyalty, Money, Order, OrderLine, TestClock
    from loyaltykit.testing.contract.privacy import SECRET, privacy_program
    from loyaltykit.testing.stored import stored_rows

    storage.upgrade()
    clock = TestClock(dt.datetime(2026, 3, 2, 9, tzinfo=dt.UTC))
    loyalty = Loyalty(privacy_program(), storage, clock=clock, secret=SECRET)
    loyalty.enrol("ann", attributes={"a": 1}, identity=Identity(email="ann@example.com"))
    loyalty.earn("ann", 100, key="e")
    code = loyalty.referrals.issue_code("ann").code
    loyalty.enrol("ben", referral_code=code)
    loyalty.record_order(Order(
        id="o1", member_id="ben", placed_at=clock.now(), currency="EUR",
        lines=(OrderLine(line_id="l", sku="x", quantity=1, unit_price=Money("30", "EUR")),)))

    def reads() -> list[Any]:
        # without the events: downgrading below 0011 drops the outbox with them
        fresh = Loyalty(privacy_program(), storage, clock=clock, secret=SECRET)
        return [fresh.privacy.export(m) | {"exported_at": None, "events": None}
                for m in ("ann", "ben")]

    def member_columns() -> set[str]:
        values = set()
        with _engine(storage).connect() as conn:
            for table, column in (("lk_accounts", "member_id"), ("lk_orders", "member_id"),
                                  ("lk_referrals", "referrer_id"),
                                  ("lk_referral_marks", "member_id")):
                values |= set(conn.execute(sa.text(f"SELECT {column} FROM {table}")).scalars())
        return values

    before = reads()
    keys = member_columns()
    assert not keys & {"ann", "ben"} and len(keys) == 2  # member keys, since 0008
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0007")
    assert {"ann", "ben"} == member_columns()
    with _engine(storage).connect() as conn:
        documents = conn.execute(sa.text('SELECT "order" FROM lk_orders')).scalars().all()
    assert ["ben"] == [(d if isinstance(d, dict) else json.loads(d))["member_id"]
                       for d in documents]
    storage.upgrade()
    assert [] == _differences(storage)
    again = member_columns()
    assert not again & {"ann", "ben"} and len(again) == 2 and again != keys  # drawn anew
    assert before == reads()
    text = "\n".join(row for rows in stored_rows(storage).values() for row in rows)
    assert 1 == text.count("'ann'")  # its lk_member_ids row only


def test_0009_counts_the_codes_stored_before_it(storage: SQLStorage) -> None:
    """0009 adds one counter row per program, filled with the number of codes the
    program has stored; the planned volume then holds for the codes issued before it.
    Downgrading drops the counters and keeps the codes; upgrading counts them again."""
    from loyaltykit import CodeSpec, CodeVolumeExhausted, Loyalty, TestClock
    from loyaltykit.testing.contract.referrals import SECRET, referral_program

    storage.upgrade("lk0008")
    created = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)
    tables = SQLStorage.metadata.tables
    stored = {"a": 3, "b": 1, "none": 0}
    with _engine(storage).begin() as conn:
        for program_id, n in stored.items():
            conn.execute(tables["lk_programs"].insert(), {
                "id": program_id, "definition": {"id": program_id}, "created_at": created})
            conn.execute(tables["lk_members"].insert(), {
                "program_id": program_id, "member_id": "k1", "enrolled_at": created,
                "attributes": {}})
            for i in range(n):
                conn.execute(tables["lk_referral_codes"].insert(), {
                    "program_id": program_id, "code": f"C{i}", "shown": f"C{i}",
                    "member_id": "k1", "source": "customer", "created_at": created,
                    "expires_at": None, "max_uses": None, "uses": 0})
    storage.upgrade()
    assert [] == _differences(storage)
    with _engine(storage).connect() as conn:
        counters = conn.execute(sa.text(
            "SELECT program_id, issued FROM lk_code_counters ORDER BY program_id")).all()
    assert [("a", 3), ("b", 1)] == [tuple(row) for row in counters]
    for program_id, n in stored.items():
        with storage.unit_of_work(program_id) as uow:
            assert n == uow.referrals.count_codes()
            assert not uow.referrals.reserve_codes(1, n)
            assert uow.referrals.reserve_codes(1, n + 1)

    clock = TestClock(created)
    program = referral_program(code=CodeSpec(length=6, group=3, planned=2))
    loyalty = Loyalty(program, storage, clock=clock, secret=SECRET)
    loyalty.enrol("ann")
    loyalty.referrals.issue_code("ann", key="one")
    loyalty.referrals.issue_code("ann", key="two")
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0008")
    assert "lk_code_counters" not in _tables(storage)
    storage.upgrade()
    assert [] == _differences(storage)
    with pytest.raises(CodeVolumeExhausted) as refused:
        Loyalty(program, storage, clock=clock, secret=SECRET).referrals.issue_code(
            "ann", key="three")
    assert {"planned": 2, "issued": 2} == dict(refused.value.details)



def _probe(table: sa.Table, columns: Sequence[str]) -> sa.Select[Any]:
    """What a database runs to check a foreign key when a referenced row is deleted:
    the referencing rows of one key (sample values of the columns' types)."""
    samples = {sa.Uuid: uuid.UUID(int=1), sa.String: "x"}
    where = []
    for name in columns:
        column = table.c[name]
        value = next(v for kind, v in samples.items() if isinstance(column.type, kind))
        where.append(column == value)
    return sa.select(sa.literal_column("1")).select_from(table).where(*where)


def _unindexed_foreign_keys(storage: SQLStorage) -> dict[str, str]:
    """The foreign keys of the migrated database with no index (primary key, unique
    constraint or index) leading with their columns, and on SQLite those whose check
    the planner runs as a scan; each with what was found."""
    found = {}
    with _engine(storage).connect() as conn:
        inspector = sa.inspect(conn)
        for table in SQLStorage.metadata.sorted_tables:
            leads = [inspector.get_pk_constraint(table.name)["constrained_columns"]]
            leads += [ix["column_names"] for ix in inspector.get_indexes(table.name)]
            leads += [uq["column_names"] for uq in inspector.get_unique_constraints(table.name)]
            for fk in inspector.get_foreign_keys(table.name):
                columns = fk["constrained_columns"]
                name = f"{table.name}({', '.join(columns)})"
                if not any(set(lead[:len(columns)]) == set(columns) for lead in leads):
                    found[name] = "no index"
                if conn.dialect.name == "sqlite":
                    sql = str(_probe(table, columns).compile(
                        dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
                    plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
                    if any(step.startswith("SCAN") for step in plan):
                        found[name] = " / ".join(plan)
    return found


def test_every_foreign_key_is_checked_through_an_index(storage: SQLStorage) -> None:
    # deleting a referenced row (a program's lots, transactions, codes) checks each
    # referencing table for that key: without an index leading with the key's columns
    # that is a scan of the table per deleted row (issue 22: lk_lot_movements.lot_id)
    storage.upgrade()
    assert {} == _unindexed_foreign_keys(storage)


def test_a_foreign_key_without_its_index_is_seen(storage: SQLStorage) -> None:
    # control: the check above really looks at the indexes and (SQLite) at the plans
    storage.upgrade()
    with _engine(storage).begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_lk_lot_movements_lot")
    found = _unindexed_foreign_keys(storage)
    assert ["lk_lot_movements(lot_id, member_id)"] == list(found)
    if _engine(storage).dialect.name == "sqlite":
        assert found["lk_lot_movements(lot_id, member_id)"].startswith("SCAN lk_lot_movements")


def _everything(storage: SQLStorage, clock: Any) -> Any:
    """A program with every capability (earning rule, expiry, tiers, rewards,
    referrals) and a facade on it."""
    import attrs

    from loyaltykit import EarningPolicy, Loyalty, RateRule
    from loyaltykit.testing.contract.referrals import referral_program
    from loyaltykit.testing.contract.rewards import reward_program

    base = reward_program(program_id="all")
    program = attrs.evolve(base, earning=EarningPolicy(rules=(RateRule(id="rate"),)),
                           referrals=referral_program().referrals)
    return Loyalty(program, storage, clock=clock)


def test_0015_keeps_every_row_and_read_of_a_populated_database(storage: SQLStorage) -> None:
    """0015 rebuilds the member tables with the member in their keys and claims the
    program-wide values in lk_lookups: on a database with every kind of row, every
    row is kept (a tier history line's id becomes the UUID of its number, in the same
    order), every member's export (balances, lots, holds, statements, orders, tiers,
    referrals, vouchers, events) reads the same after a downgrade to 0014 and the
    upgrade, and the values claimed stay unique."""
    from loyaltykit import IdempotencyConflict, Money, Order, OrderLine, TestClock
    from loyaltykit.testing.stored import stored_rows

    storage.upgrade()
    clock = TestClock(dt.datetime(2026, 4, 6, 9, tzinfo=dt.UTC))
    shop = _everything(storage, clock)

    def order(order_id: str, member_id: str, euros: str) -> Order:
        return Order(id=order_id, member_id=member_id, placed_at=clock.now(), currency="EUR",
                     lines=(OrderLine(line_id="l", sku="x", quantity=2,
                                      unit_price=Money(euros, "EUR")),))

    shop.enrol("ann")
    shop.earn("ann", 6000, key="e1")  # gold: a history line written by the write
    code = shop.referrals.issue_code("ann").code
    shop.enrol("ben", referral_code=code)
    shop.record_order(order("o1", "ben", "30.00"))
    shop.record_return("o1", {"l": 1}, key="r1")
    spent = shop.spend("ann", 100, key="s1")
    hold = shop.hold("ann", 200, key="h1", ttl=dt.timedelta(hours=1))
    shop.capture(hold.hold_id, 150, key="c1")
    void = shop.hold("ann", 50, key="h2", ttl=dt.timedelta(hours=1))
    shop.void(void.hold_id, key="v1")
    shop.reverse(spent.transaction_id, key="x1")
    shop.transfer("ann", "ben", 100, key="t1")
    voucher = shop.rewards.redeem("ann", "coffee", key="d1")
    shop.rewards.use(voucher.voucher.code, order_id="o9", key="u1")
    shop.rewards.redeem("ann", "mug", key="d2")
    clock.advance(days=800)
    shop.run_due()  # expiry; an evaluation drops ann: a line written set-based
    members = ("ann", "ben")

    def reads() -> list[Any]:
        fresh = _everything(storage, clock)
        return [fresh.privacy.export(m) | {"exported_at": None} for m in members]

    def rows() -> dict[str, list[str]]:
        found = stored_rows(storage)
        found.pop(VERSION_TABLE)
        return found

    def history() -> list[tuple[Any, ...]]:
        with _engine(storage).connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "SELECT id, member_id, from_tier, to_tier FROM lk_tier_history "
                "ORDER BY member_id, id"))]

    before, stored, lines = reads(), rows(), history()
    assert 2 == len(lines)  # ann's rise to gold by the earn, her drop by the evaluation
    with _engine(storage).connect() as conn:
        claimed = sorted(tuple(r) for r in conn.execute(sa.text(
            "SELECT kind, count(*) FROM lk_lookups GROUP BY kind")))
    # an order, a referral code, two voucher codes, two holds; every transaction a write
    # posted (due work's set-based expiry is not: named by its id alone, it is looked for
    # on every node)
    with _engine(storage).connect() as conn:
        posted = conn.execute(sa.text("SELECT count(*) FROM lk_transactions")).scalar()
    assert [("hold", 2), ("order", 1), ("referral", 1), ("voucher", 2)] == [
        c for c in claimed if c[0] != "tx"]
    assert 0 < dict(claimed)["tx"] < posted
    config = storage.alembic_config()
    with _engine(storage).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "lk0014")
    assert "lk_lookups" not in _tables(storage)
    numbered = history()
    assert [1, 2] == sorted(int(r[0]) for r in numbered)
    assert [r[1:] for r in lines] == [r[1:] for r in numbered]  # in the same order
    storage.upgrade()
    assert [] == _differences(storage)
    assert before == reads()
    again = rows()
    kept = ("lk_tier_history", "lk_lookups")
    assert {t: r for t, r in stored.items() if t not in kept} == {
        t: r for t, r in again.items() if t not in kept}
    # every claim kept, and every transaction claimed since (due work's too)
    assert set(stored["lk_lookups"]) < set(again["lk_lookups"])
    assert len(again["lk_lookups"]) == posted + 6
    upgraded = history()
    assert [r[1:] for r in lines] == [r[1:] for r in upgraded]
    assert {f"{n:032x}" for n in (1, 2)} == {uuid.UUID(str(r[0])).hex for r in upgraded}

    # the claims hold after the upgrade: a recorded order id, a code, for any member
    shop = _everything(storage, clock)
    with pytest.raises(IdempotencyConflict):  # (the order's own key is met first)
        shop.record_order(order("o1", "ann", "10.00"))
    for kind, value in (("order", "o1"), ("voucher", voucher.voucher.code)):
        with _engine(storage).begin() as conn, pytest.raises(sa.exc.IntegrityError):
            conn.execute(sa.text(
                "INSERT INTO lk_lookups (program_id, kind, value, member_id) "
                "VALUES ('all', :kind, :value, 'someone')"), {"kind": kind, "value": value})
    # a line written now sorts after the numbered ones: the library's ids are time-ordered
    shop.tiers.assign("ann", "gold", key="g1", reason="goodwill")
    assert ["gold", "member", "gold"] == [r[3] for r in history() if r[1] == lines[0][1]]
    assert before[1] == reads()[1]  # ben's export is untouched
