"""Rewards: vouchers, and one counter row per reward (stock taken, redemptions).

Revision ID: lk0010
Revises: lk0009
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0010"
down_revision: str | Sequence[str] | None = "lk0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
REWARD = sa.String(length=64)
CODE = sa.String(length=48)
ENUM = sa.String(length=32)
POINTS = sa.BigInteger()
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``lk_vouchers`` and ``lk_reward_counters``."""
    op.create_table(
        "lk_vouchers",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("code", CODE, nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("reward_id", REWARD, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("wallet", sa.String(length=32), nullable=False),
        sa.Column("cost", POINTS, nullable=False),
        sa.Column("transaction_id", sa.Uuid(), nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("expired_at", TS, nullable=True),
        sa.Column("refund_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("status IN ('issued', 'used', 'cancelled', 'expired')",
                           name=op.f("ck_lk_vouchers_status")),
        sa.ForeignKeyConstraint(["program_id", "member_id"],
                                ["lk_members.program_id", "lk_members.member_id"],
                                name=op.f("fk_lk_vouchers_program_id_lk_members")),
        sa.ForeignKeyConstraint(["transaction_id"], ["lk_transactions.id"],
                                name=op.f("fk_lk_vouchers_transaction_id_lk_transactions")),
        sa.PrimaryKeyConstraint("program_id", "id", name=op.f("pk_lk_vouchers")),
        sa.UniqueConstraint("program_id", "code", name=op.f("uq_lk_vouchers_program_id_code")),
    )
    op.create_index("ix_lk_vouchers_member", "lk_vouchers",
                    ["program_id", "member_id", "reward_id", "issued_at"])
    op.create_index("ix_lk_vouchers_due", "lk_vouchers", ["program_id", "status", "expires_at"])
    op.create_table(
        "lk_reward_counters",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("reward_id", REWARD, nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("held >= 0", name=op.f("ck_lk_reward_counters_held_not_negative")),
        sa.CheckConstraint("redeemed >= held",
                           name=op.f("ck_lk_reward_counters_redeemed_covers_held")),
        sa.ForeignKeyConstraint(["program_id"], ["lk_programs.id"],
                                name=op.f("fk_lk_reward_counters_program_id_lk_programs")),
        sa.PrimaryKeyConstraint("program_id", "reward_id", name=op.f("pk_lk_reward_counters")),
    )


def downgrade() -> None:
    """Drop the rewards' tables."""
    op.drop_table("lk_reward_counters")
    op.drop_index("ix_lk_vouchers_due", table_name="lk_vouchers")
    op.drop_index("ix_lk_vouchers_member", table_name="lk_vouchers")
    op.drop_table("lk_vouchers")
