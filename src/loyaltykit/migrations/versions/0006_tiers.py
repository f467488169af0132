"""Tiers: each member's standing on the ladder, the metric's period buckets, the tier
history and "will downgrade" notices.

Members enrolled before get their tier state on their next write (or evaluation
read): nothing is backfilled here.

Revision ID: lk0006
Revises: lk0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0006"
down_revision: str | Sequence[str] | None = "lk0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
TIER = sa.String(length=32)
ENUM = sa.String(length=32)
POINTS = sa.BigInteger()
TS = sa.DateTime(timezone=True)


def _member_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["program_id", "member_id"],
        ["lk_members.program_id", "lk_members.member_id"],
        name=op.f(f"fk_{table}_program_id_lk_members"),
    )


def upgrade() -> None:
    """Create the tier tables."""
    op.create_table(
        "lk_tier_states",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("attained_at", TS, nullable=True),
        sa.Column("protected_until", TS, nullable=True),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("next_evaluation", TS, nullable=True),
        sa.Column("carried", sa.Integer(), nullable=False),
        sa.Column("carried_until", TS, nullable=True),
        sa.Column("carried_floor", sa.Integer(), nullable=False),
        sa.Column("floor", sa.Integer(), nullable=False),
        sa.Column("anchor", sa.Date(), nullable=False),
        sa.Column("manual", sa.Integer(), nullable=True),
        sa.Column("manual_until", TS, nullable=True),
        sa.Column("manual_reason", sa.Text(), nullable=False),
        sa.Column("noticed_for", TS, nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        _member_fk("lk_tier_states"),
        sa.PrimaryKeyConstraint("program_id", "member_id", name=op.f("pk_lk_tier_states")),
    )
    op.create_index("ix_lk_tier_states_due", "lk_tier_states",
                    ["program_id", "next_evaluation", "member_id"])
    op.create_table(
        "lk_tier_buckets",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("period_start", TS, nullable=False),
        sa.Column("value", POINTS, nullable=False),
        _member_fk("lk_tier_buckets"),
        sa.PrimaryKeyConstraint("program_id", "member_id", "period_start",
                                name=op.f("pk_lk_tier_buckets")),
    )
    op.create_table(
        "lk_tier_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("from_tier", TIER, nullable=False),
        sa.Column("to_tier", TIER, nullable=False),
        sa.Column("reason", ENUM, nullable=False),
        sa.Column("metric", POINTS, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", TS, nullable=True),
        _member_fk("lk_tier_history"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lk_tier_history")),
    )
    op.create_index("ix_lk_tier_history_member", "lk_tier_history",
                    ["program_id", "member_id", "id"])
    op.create_table(
        "lk_tier_notices",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("evaluation_at", TS, nullable=False),
        sa.Column("tier", TIER, nullable=False),
        sa.Column("would_be", TIER, nullable=False),
        sa.Column("metric", POINTS, nullable=False),
        sa.Column("needed", POINTS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _member_fk("lk_tier_notices"),
        sa.PrimaryKeyConstraint("program_id", "member_id", "evaluation_at",
                                name=op.f("pk_lk_tier_notices")),
    )
    op.create_index("ix_lk_tier_notices_created", "lk_tier_notices",
                    ["program_id", "created_at"])


def downgrade() -> None:
    """Drop the tier tables (tier states, history and notices are lost)."""
    op.drop_index("ix_lk_tier_notices_created", table_name="lk_tier_notices")
    op.drop_table("lk_tier_notices")
    op.drop_index("ix_lk_tier_history_member", table_name="lk_tier_history")
    op.drop_table("lk_tier_history")
    op.drop_table("lk_tier_buckets")
    op.drop_index("ix_lk_tier_states_due", table_name="lk_tier_states")
    op.drop_table("lk_tier_states")
