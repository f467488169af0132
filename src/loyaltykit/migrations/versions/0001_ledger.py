"""The points ledger: programs, members, accounts, transactions, lots and holds.

Revision ID: lk0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("loyaltykit",)
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
WALLET = sa.String(length=32)
KEY = sa.String(length=200)
ENUM = sa.String(length=32)
POINTS = sa.BigInteger()
TS = sa.DateTime(timezone=True)

ACCOUNT_COLUMNS = (
    "available",
    "pending",
    "held",
    "debt",
    "issued",
    "redeemed",
    "expired",
    "adjustments",
    "transfers",
    "clawback_shortfall",
)


def _member_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["program_id", "member_id"],
        ["lk_members.program_id", "lk_members.member_id"],
        name=op.f(f"fk_{table}_program_id_lk_members"),
    )


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}")
    )


def upgrade() -> None:
    """Create the ledger's tables."""
    op.create_table(
        "lk_programs",
        sa.Column("id", PROGRAM, nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_programs")),
    )
    op.create_table(
        "lk_members",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("enrolled_at", TS, nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["lk_programs.id"], name=op.f("fk_lk_members_program_id_lk_programs")
        ),
        sa.PrimaryKeyConstraint("program_id", "member_id", name=op.f("pk_lk_members")),
    )
    op.create_table(
        "lk_accounts",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("wallet", WALLET, nullable=False),
        *(sa.Column(name, POINTS, nullable=False) for name in ACCOUNT_COLUMNS),
        sa.Column("next_due_at", TS, nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("held >= 0", name=op.f("ck_lk_accounts_held_not_negative")),
        sa.CheckConstraint("pending >= 0", name=op.f("ck_lk_accounts_pending_not_negative")),
        sa.CheckConstraint("debt <= 0", name=op.f("ck_lk_accounts_debt_not_positive")),
        _member_fk("lk_accounts"),
        sa.PrimaryKeyConstraint("program_id", "member_id", "wallet", name=op.f("pk_lk_accounts")),
    )
    op.create_index("ix_lk_accounts_due", "lk_accounts", ["program_id", "next_due_at"])
    op.create_table(
        "lk_transactions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("wallet", WALLET, nullable=False),
        sa.Column("kind", ENUM, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("idempotency_key", KEY, nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("reverses_id", sa.Uuid(), nullable=True),
        _member_fk("lk_transactions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_transactions")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_lk_transactions_reverses_id")),
    )
    op.create_index(
        "ix_lk_transactions_member_time",
        "lk_transactions",
        ["program_id", "member_id", "wallet", "occurred_at", "id"],
    )
    op.create_table(
        "lk_postings",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("account", ENUM, nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("wallet", WALLET, nullable=False),
        sa.Column("amount", POINTS, nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_lk_postings_amount_not_zero")),
        _fk("lk_postings", "transaction_id", "lk_transactions"),
        sa.PrimaryKeyConstraint("transaction_id", "account", name=op.f("pk_lk_postings")),
    )
    op.create_table(
        "lk_lots",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("wallet", WALLET, nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("amount", POINTS, nullable=False),
        sa.Column("remaining", POINTS, nullable=False),
        sa.Column("held", POINTS, nullable=False),
        sa.Column("earned_at", TS, nullable=False),
        sa.Column("activates_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_lk_lots_amount_positive")),
        sa.CheckConstraint(
            "0 <= held AND held <= remaining AND remaining <= amount",
            name=op.f("ck_lk_lots_bounds"),
        ),
        _member_fk("lk_lots"),
        _fk("lk_lots", "transaction_id", "lk_transactions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_lots")),
    )
    op.create_index(
        "ix_lk_lots_member_open", "lk_lots", ["program_id", "member_id", "wallet", "remaining"]
    )
    op.create_table(
        "lk_lot_movements",
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("delta", POINTS, nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("delta <> 0", name=op.f("ck_lk_lot_movements_delta_not_zero")),
        _fk("lk_lot_movements", "transaction_id", "lk_transactions"),
        _fk("lk_lot_movements", "lot_id", "lk_lots"),
        sa.PrimaryKeyConstraint("transaction_id", "lot_id", name=op.f("pk_lk_lot_movements")),
    )
    op.create_table(
        "lk_holds",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("wallet", WALLET, nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("captured", POINTS, nullable=False),
        sa.Column("resolved_by", sa.Uuid(), nullable=True),
        sa.CheckConstraint("points > 0", name=op.f("ck_lk_holds_points_positive")),
        sa.CheckConstraint(
            "captured >= 0 AND captured <= points", name=op.f("ck_lk_holds_captured_bounds")
        ),
        _member_fk("lk_holds"),
        _fk("lk_holds", "transaction_id", "lk_transactions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_holds")),
    )
    op.create_index(
        "ix_lk_holds_member_status", "lk_holds", ["program_id", "member_id", "wallet", "status"]
    )
    op.create_table(
        "lk_hold_allocations",
        sa.Column("hold_id", sa.Uuid(), nullable=False),
        sa.Column("lot_id", sa.Uuid(), nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_lk_hold_allocations_points_positive")),
        _fk("lk_hold_allocations", "hold_id", "lk_holds"),
        _fk("lk_hold_allocations", "lot_id", "lk_lots"),
        sa.PrimaryKeyConstraint("hold_id", "lot_id", name=op.f("pk_lk_hold_allocations")),
    )
    op.create_table(
        "lk_idempotency_keys",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("member_id", MEMBER, nullable=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("program_id", "key", name=op.f("pk_lk_idempotency_keys")),
    )


def downgrade() -> None:
    """Drop the ledger's tables (and every point in them)."""
    for table in (
        "lk_idempotency_keys",
        "lk_hold_allocations",
        "lk_holds",
        "lk_lot_movements",
        "lk_lots",
        "lk_postings",
        "lk_transactions",
        "lk_accounts",
        "lk_members",
        "lk_programs",
    ):
        op.drop_table(table)
