"""Member keys in every key: a schema a distributed engine can place by member.

A distributed engine (Citus) places a table by one column and accepts a primary key,
unique constraint or foreign key only when it holds that column (DESIGN §10). Every
member-scoped table's keys now include the member key: ``lk_transactions``,
``lk_lots``, ``lk_holds`` and ``lk_tier_history`` are keyed by ``(id, member_id)``, the
rows that point at them (postings, lot movements, hold allocations, vouchers) by foreign
keys of ``(id, member_id)``, and ``lk_orders``, ``lk_rule_usage``,
``lk_referral_codes``, ``lk_vouchers`` carry the member in their primary keys; a
reversal is unique per ``(reverses_id, member_id)``. A tier history line's id becomes a
library-drawn UUID (no database sequence): the lines stored before get the UUID of
their number (zero-padded hex), which sorts before every drawn id, so each member's
lines keep their order.

What must stay unique across a program although it belongs to one member (order ids,
voucher codes, referral codes) is claimed in the new ``lk_lookups`` (filled here from
the rows stored), which a distributed engine places by the value; so is each
transaction's and hold's id, so a call naming only the id finds its member. ``lk_member_ids``
(placed by the shop's id) loses its unique constraint and foreign key on the member key
(a key is drawn fresh for one shop id; an index serves the reverse lookup), and
``lk_referrals`` its foreign key to the code (the code lives with its owner).

The tables are rebuilt, their rows kept: copied aside, dropped children first,
created anew and filled parents first (SQLite cannot alter a primary key in place, and
its foreign keys, enforced during the migration, stay satisfied throughout).
Downgrading rebuilds them as they were (the history lines numbered in their ids'
order) and drops ``lk_lookups``.

Revision ID: lk0015
Revises: lk0014
Create Date: 2027-02-17
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0015"
down_revision: str | Sequence[str] | None = "lk0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)

#: the tables rebuilt, each after the tables its foreign keys point to
TABLES = (
    "lk_transactions",
    "lk_postings",
    "lk_lots",
    "lk_lot_movements",
    "lk_holds",
    "lk_hold_allocations",
    "lk_vouchers",
    "lk_orders",
    "lk_rule_usage",
    "lk_referral_codes",
    "lk_referrals",
    "lk_member_ids",
    "lk_tier_history",
)

#: what each program-wide value lk_lookups claims is read from: (kind, table, column);
#: a transaction's or hold's id is claimed as its hex digits
CLAIMED = (
    ("order", "lk_orders", "order_id"),
    ("voucher", "lk_vouchers", "code"),
    ("referral", "lk_referral_codes", "code"),
    ("tx", "lk_transactions", "id"),
    ("hold", "lk_holds", "id"),
)


def _rebuild(
    create_tables: Callable[[], None],
    create_indexes: Callable[[], None],
    history_id: Callable[[str], str],
) -> None:
    """Copy :data:`TABLES` aside, drop them (children first), create them with
    ``create_tables``, fill them back (parents first; a history line's id through
    ``history_id``, given the dialect), then ``create_indexes``."""
    conn = op.get_bind()
    inspector = sa.inspect(conn)
    columns = {t: [c["name"] for c in inspector.get_columns(t)] for t in TABLES}
    for table in TABLES:
        conn.exec_driver_sql(f"CREATE TEMP TABLE lk15_{table} AS SELECT * FROM {table}")
    for table in reversed(TABLES):
        op.drop_table(table)
    create_tables()
    for table in TABLES:
        names = columns[table]
        quoted = ", ".join(f'"{n}"' for n in names)
        picked = ", ".join(
            history_id(conn.dialect.name) if (table, n) == ("lk_tier_history", "id") else f'"{n}"'
            for n in names
        )
        conn.exec_driver_sql(f"INSERT INTO {table} ({quoted}) SELECT {picked} FROM lk15_{table}")
        conn.exec_driver_sql(f"DROP TABLE lk15_{table}")
    create_indexes()


def _uuid_of_number(dialect: str) -> str:
    if dialect == "postgresql":
        return "CAST(lpad(to_hex(id), 32, '0') AS uuid)"
    return "printf('%032x', id)"  # SQLite keeps a UUID as its 32 hex digits


def _number_of_uuid(dialect: str) -> str:
    return "row_number() OVER (ORDER BY id)"


def upgrade() -> None:
    """Rebuild the tables with the member in their keys; claim the program-wide
    values in lk_lookups."""
    _rebuild(_tables, _indexes, _uuid_of_number)
    op.create_table(
        "lk_lookups",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("program_id", "kind", "value", name=op.f("pk_lk_lookups")),
    )
    conn = op.get_bind()
    for kind, table, column in CLAIMED:
        value = column
        if column == "id" and conn.dialect.name == "postgresql":  # SQLite keeps the hex
            value = "replace(CAST(id AS text), '-', '')"
        conn.execute(
            sa.text(
                f"INSERT INTO lk_lookups (program_id, kind, value, member_id) "
                f"SELECT program_id, :kind, {value}, member_id FROM {table}"
            ),
            {"kind": kind},
        )


def downgrade() -> None:
    """Drop lk_lookups; rebuild the tables with their keys of 0014 (the history lines
    numbered in the order of their ids)."""
    op.drop_table("lk_lookups")
    _rebuild(_old_tables, _old_indexes, _number_of_uuid)
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":  # the numbering goes on after the lines kept
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('lk_tier_history', 'id'), "
            "coalesce(max(id), 0) + 1, false) FROM lk_tier_history"
        )


def _tables() -> None:
    op.create_table(
        "lk_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_transactions_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("id", "member_id", name=op.f("pk_lk_transactions")),
        sa.UniqueConstraint(
            "reverses_id", "member_id", name=op.f("uq_lk_transactions_reverses_id_member_id")
        ),
    )
    op.create_table(
        "lk_postings",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_lk_postings_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["transaction_id", "member_id"],
            ["lk_transactions.id", "lk_transactions.member_id"],
            name=op.f("fk_lk_postings_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint(
            "transaction_id", "member_id", "account", name=op.f("pk_lk_postings")
        ),
    )
    op.create_table(
        "lk_lots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", TS, nullable=False),
        sa.Column("activates_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "0 <= held AND held <= remaining AND remaining <= amount",
            name=op.f("ck_lk_lots_bounds"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_lk_lots_amount_positive")),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_lots_program_id_lk_members"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id", "member_id"],
            ["lk_transactions.id", "lk_transactions.member_id"],
            name=op.f("fk_lk_lots_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", "member_id", name=op.f("pk_lk_lots")),
    )
    op.create_table(
        "lk_lot_movements",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_lk_lot_movements_delta_not_zero")),
        sa.ForeignKeyConstraint(
            ["lot_id", "member_id"],
            ["lk_lots.id", "lk_lots.member_id"],
            name=op.f("fk_lk_lot_movements_lot_id_lk_lots"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id", "member_id"],
            ["lk_transactions.id", "lk_transactions.member_id"],
            name=op.f("fk_lk_lot_movements_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint(
            "transaction_id", "member_id", "lot_id", name=op.f("pk_lk_lot_movements")
        ),
    )
    op.create_table(
        "lk_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "captured >= 0 AND captured <= points", name=op.f("ck_lk_holds_captured_bounds")
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_lk_holds_points_positive")),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_holds_program_id_lk_members"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id", "member_id"],
            ["lk_transactions.id", "lk_transactions.member_id"],
            name=op.f("fk_lk_holds_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", "member_id", name=op.f("pk_lk_holds")),
    )
    op.create_table(
        "lk_hold_allocations",
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_lk_hold_allocations_points_positive")),
        sa.ForeignKeyConstraint(
            ["hold_id", "member_id"],
            ["lk_holds.id", "lk_holds.member_id"],
            name=op.f("fk_lk_hold_allocations_hold_id_lk_holds"),
        ),
        sa.ForeignKeyConstraint(
            ["lot_id", "member_id"],
            ["lk_lots.id", "lk_lots.member_id"],
            name=op.f("fk_lk_hold_allocations_lot_id_lk_lots"),
        ),
        sa.PrimaryKeyConstraint(
            "hold_id", "member_id", "lot_id", name=op.f("pk_lk_hold_allocations")
        ),
    )
    op.create_table(
        "lk_vouchers",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("reward_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("expired_at", TS, nullable=True),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('issued', 'used', 'cancelled', 'expired')",
            name=op.f("ck_lk_vouchers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_vouchers_program_id_lk_members"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id", "member_id"],
            ["lk_transactions.id", "lk_transactions.member_id"],
            name=op.f("fk_lk_vouchers_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("program_id", "id", "member_id", name=op.f("pk_lk_vouchers")),
    )
    op.create_table(
        "lk_orders",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("order", sa.JSON(), nullable=False),
        sa.Column("returned", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("earn_id", sa.Uuid(), nullable=True),
        sa.Column("payments", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("recorded_evaluation", sa.JSON(), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("net_amount", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'cancelled')", name=op.f("ck_lk_orders_status")),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_orders_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "order_id", "member_id", name=op.f("pk_lk_orders")),
    )
    op.create_table(
        "lk_rule_usage",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("rule_group", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("points", sa.Text(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_rule_usage_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint(
            "program_id", "source", "rule_id", "member_id", name=op.f("pk_lk_rule_usage")
        ),
    )
    op.create_table(
        "lk_referral_codes",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_referral_codes_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint(
            "program_id", "code", "member_id", name=op.f("pk_lk_referral_codes")
        ),
    )
    op.create_table(
        "lk_referrals",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("referee_id", sa.String(length=128), nullable=False),
        sa.Column("referrer_id", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attributed_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("qualified_at", TS, nullable=True),
        sa.Column("settles_at", TS, nullable=True),
        sa.Column("referrer_points", sa.BigInteger(), nullable=False),
        sa.Column("referee_points", sa.BigInteger(), nullable=False),
        sa.Column("referrer_tx", sa.Uuid(), nullable=True),
        sa.Column("referee_tx", sa.Uuid(), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id", "referee_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_referrals_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "referee_id", name=op.f("pk_lk_referrals")),
    )
    op.create_table(
        "lk_member_ids",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("program_id", "external_id", name=op.f("pk_lk_member_ids")),
    )
    op.create_table(
        "lk_tier_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("from_tier", sa.String(length=32), nullable=False),
        sa.Column("to_tier", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_tier_history_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("id", "member_id", name=op.f("pk_lk_tier_history")),
    )


def _indexes() -> None:
    op.create_index(
        "ix_lk_transactions_member_time",
        "lk_transactions",
        ["program_id", "member_id", "wallet", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_lk_lots_expiring",
        "lk_lots",
        ["program_id", "expires_at", "member_id", "wallet", "id"],
        unique=False,
        postgresql_where=sa.text("expires_at IS NOT NULL"),
        sqlite_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_lk_lots_member_open",
        "lk_lots",
        ["program_id", "member_id", "wallet", "remaining"],
        unique=False,
    )
    op.create_index(
        "ix_lk_lots_transaction", "lk_lots", ["transaction_id", "member_id"], unique=False
    )
    op.create_index(
        "ix_lk_lot_movements_lot", "lk_lot_movements", ["lot_id", "member_id"], unique=False
    )
    op.create_index(
        "ix_lk_holds_member_status",
        "lk_holds",
        ["program_id", "member_id", "wallet", "status"],
        unique=False,
    )
    op.create_index(
        "ix_lk_holds_transaction", "lk_holds", ["transaction_id", "member_id"], unique=False
    )
    op.create_index(
        "ix_lk_hold_allocations_lot", "lk_hold_allocations", ["lot_id", "member_id"], unique=False
    )
    op.create_index("ix_lk_vouchers_code", "lk_vouchers", ["program_id", "code"], unique=False)
    op.create_index(
        "ix_lk_vouchers_due", "lk_vouchers", ["program_id", "status", "expires_at"], unique=False
    )
    op.create_index(
        "ix_lk_vouchers_member",
        "lk_vouchers",
        ["program_id", "member_id", "reward_id", "issued_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_vouchers_transaction", "lk_vouchers", ["transaction_id", "member_id"], unique=False
    )
    op.create_index(
        "ix_lk_orders_member_placed",
        "lk_orders",
        ["program_id", "member_id", "placed_at", "order_id"],
        unique=False,
    )
    op.create_index(
        "ix_lk_orders_member_status",
        "lk_orders",
        ["program_id", "member_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_lk_rule_usage_member_group",
        "lk_rule_usage",
        ["program_id", "member_id", "rule_group", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_rule_usage_member_rule",
        "lk_rule_usage",
        ["program_id", "member_id", "rule_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_referral_codes_member",
        "lk_referral_codes",
        ["program_id", "member_id"],
        unique=False,
    )
    op.create_index("ix_lk_referrals_code", "lk_referrals", ["program_id", "code"], unique=False)
    op.create_index(
        "ix_lk_referrals_referrer",
        "lk_referrals",
        ["program_id", "referrer_id", "attributed_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_member_ids_member", "lk_member_ids", ["program_id", "member_id"], unique=False
    )
    op.create_index(
        "ix_lk_tier_history_member",
        "lk_tier_history",
        ["program_id", "member_id", "id"],
        unique=False,
    )


def _old_tables() -> None:
    op.create_table(
        "lk_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_transactions_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_transactions")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_lk_transactions_reverses_id")),
    )
    op.create_table(
        "lk_postings",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_lk_postings_amount_not_zero")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["lk_transactions.id"],
            name=op.f("fk_lk_postings_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("transaction_id", "account", name=op.f("pk_lk_postings")),
    )
    op.create_table(
        "lk_lots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("earned_at", TS, nullable=False),
        sa.Column("activates_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "0 <= held AND held <= remaining AND remaining <= amount",
            name=op.f("ck_lk_lots_bounds"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_lk_lots_amount_positive")),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_lots_program_id_lk_members"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["lk_transactions.id"],
            name=op.f("fk_lk_lots_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_lots")),
    )
    op.create_table(
        "lk_lot_movements",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("delta", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_lk_lot_movements_delta_not_zero")),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lk_lots.id"], name=op.f("fk_lk_lot_movements_lot_id_lk_lots")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["lk_transactions.id"],
            name=op.f("fk_lk_lot_movements_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("transaction_id", "lot_id", name=op.f("pk_lk_lot_movements")),
    )
    op.create_table(
        "lk_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("captured", sa.BigInteger(), nullable=False),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "captured >= 0 AND captured <= points", name=op.f("ck_lk_holds_captured_bounds")
        ),
        sa.CheckConstraint("points > 0", name=op.f("ck_lk_holds_points_positive")),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_holds_program_id_lk_members"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["lk_transactions.id"],
            name=op.f("fk_lk_holds_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_holds")),
    )
    op.create_table(
        "lk_hold_allocations",
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_lk_hold_allocations_points_positive")),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["lk_holds.id"], name=op.f("fk_lk_hold_allocations_hold_id_lk_holds")
        ),
        sa.ForeignKeyConstraint(
            ["lot_id"], ["lk_lots.id"], name=op.f("fk_lk_hold_allocations_lot_id_lk_lots")
        ),
        sa.PrimaryKeyConstraint("hold_id", "lot_id", name=op.f("pk_lk_hold_allocations")),
    )
    op.create_table(
        "lk_vouchers",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("reward_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("cost", sa.BigInteger(), nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("expired_at", TS, nullable=True),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('issued', 'used', 'cancelled', 'expired')",
            name=op.f("ck_lk_vouchers_status"),
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_vouchers_program_id_lk_members"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["lk_transactions.id"],
            name=op.f("fk_lk_vouchers_transaction_id_lk_transactions"),
        ),
        sa.PrimaryKeyConstraint("program_id", "id", name=op.f("pk_lk_vouchers")),
        sa.UniqueConstraint("program_id", "code", name=op.f("uq_lk_vouchers_program_id_code")),
    )
    op.create_table(
        "lk_orders",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("order", sa.JSON(), nullable=False),
        sa.Column("returned", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("earn_id", sa.Uuid(), nullable=True),
        sa.Column("payments", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("recorded_evaluation", sa.JSON(), nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("net_amount", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'cancelled')", name=op.f("ck_lk_orders_status")),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_orders_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "order_id", name=op.f("pk_lk_orders")),
    )
    op.create_table(
        "lk_rule_usage",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("rule_group", sa.String(length=128), nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("points", sa.Text(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_rule_usage_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "source", "rule_id", name=op.f("pk_lk_rule_usage")),
    )
    op.create_table(
        "lk_referral_codes",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_referral_codes_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "code", name=op.f("pk_lk_referral_codes")),
    )
    op.create_table(
        "lk_referrals",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("referee_id", sa.String(length=128), nullable=False),
        sa.Column("referrer_id", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=48), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attributed_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("qualified_at", TS, nullable=True),
        sa.Column("settles_at", TS, nullable=True),
        sa.Column("referrer_points", sa.BigInteger(), nullable=False),
        sa.Column("referee_points", sa.BigInteger(), nullable=False),
        sa.Column("referrer_tx", sa.Uuid(), nullable=True),
        sa.Column("referee_tx", sa.Uuid(), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id", "code"],
            ["lk_referral_codes.program_id", "lk_referral_codes.code"],
            name="fk_lk_referrals_code_lk_referral_codes",
        ),
        sa.ForeignKeyConstraint(
            ["program_id", "referee_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_referrals_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "referee_id", name=op.f("pk_lk_referrals")),
    )
    op.create_table(
        "lk_member_ids",
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_member_ids_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("program_id", "external_id", name=op.f("pk_lk_member_ids")),
        sa.UniqueConstraint(
            "program_id", "member_id", name=op.f("uq_lk_member_ids_program_id_member_id")
        ),
    )
    op.create_table(
        "lk_tier_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("program_id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.String(length=128), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("from_tier", sa.String(length=32), nullable=False),
        sa.Column("to_tier", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["program_id", "member_id"],
            ["lk_members.program_id", "lk_members.member_id"],
            name=op.f("fk_lk_tier_history_program_id_lk_members"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_tier_history")),
    )


def _old_indexes() -> None:
    op.create_index(
        "ix_lk_transactions_member_time",
        "lk_transactions",
        ["program_id", "member_id", "wallet", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_lk_lots_expiring",
        "lk_lots",
        ["program_id", "expires_at", "member_id", "wallet", "id"],
        unique=False,
        postgresql_where=sa.text("expires_at IS NOT NULL"),
        sqlite_where=sa.text("expires_at IS NOT NULL"),
    )
    op.create_index(
        "ix_lk_lots_member_open",
        "lk_lots",
        ["program_id", "member_id", "wallet", "remaining"],
        unique=False,
    )
    op.create_index("ix_lk_lots_transaction", "lk_lots", ["transaction_id"], unique=False)
    op.create_index("ix_lk_lot_movements_lot", "lk_lot_movements", ["lot_id"], unique=False)
    op.create_index(
        "ix_lk_holds_member_status",
        "lk_holds",
        ["program_id", "member_id", "wallet", "status"],
        unique=False,
    )
    op.create_index("ix_lk_holds_transaction", "lk_holds", ["transaction_id"], unique=False)
    op.create_index("ix_lk_hold_allocations_lot", "lk_hold_allocations", ["lot_id"], unique=False)
    op.create_index(
        "ix_lk_vouchers_due", "lk_vouchers", ["program_id", "status", "expires_at"], unique=False
    )
    op.create_index(
        "ix_lk_vouchers_member",
        "lk_vouchers",
        ["program_id", "member_id", "reward_id", "issued_at"],
        unique=False,
    )
    op.create_index("ix_lk_vouchers_transaction", "lk_vouchers", ["transaction_id"], unique=False)
    op.create_index(
        "ix_lk_orders_member_placed",
        "lk_orders",
        ["program_id", "member_id", "placed_at", "order_id"],
        unique=False,
    )
    op.create_index(
        "ix_lk_orders_member_status",
        "lk_orders",
        ["program_id", "member_id", "status"],
        unique=False,
    )
    op.create_index(
        "ix_lk_rule_usage_member_group",
        "lk_rule_usage",
        ["program_id", "member_id", "rule_group", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_rule_usage_member_rule",
        "lk_rule_usage",
        ["program_id", "member_id", "rule_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_referral_codes_member",
        "lk_referral_codes",
        ["program_id", "member_id"],
        unique=False,
    )
    op.create_index("ix_lk_referrals_code", "lk_referrals", ["program_id", "code"], unique=False)
    op.create_index(
        "ix_lk_referrals_referrer",
        "lk_referrals",
        ["program_id", "referrer_id", "attributed_at"],
        unique=False,
    )
    op.create_index(
        "ix_lk_tier_history_member",
        "lk_tier_history",
        ["program_id", "member_id", "id"],
        unique=False,
    )
