"""Referrals: issued codes, one referral per referee, and identity marks (keyed hashes).

Revision ID: lk0007
Revises: lk0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0007"
down_revision: str | Sequence[str] | None = "lk0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
CODE = sa.String(length=48)
ENUM = sa.String(length=32)
POINTS = sa.BigInteger()
TS = sa.DateTime(timezone=True)


def _member_fk(table: str, column: str = "member_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["program_id", column],
        ["lk_members.program_id", "lk_members.member_id"],
        name=op.f(f"fk_{table}_program_id_lk_members"),
    )


def upgrade() -> None:
    """Create the referral tables."""
    op.create_table(
        "lk_referral_codes",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("code", CODE, nullable=False),
        sa.Column("shown", sa.String(length=64), nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("source", ENUM, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        _member_fk("lk_referral_codes"),
        sa.PrimaryKeyConstraint("program_id", "code", name=op.f("pk_lk_referral_codes")),
    )
    op.create_index("ix_lk_referral_codes_member", "lk_referral_codes",
                    ["program_id", "member_id"])
    op.create_table(
        "lk_referrals",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("referee_id", MEMBER, nullable=False),
        sa.Column("referrer_id", MEMBER, nullable=False),
        sa.Column("code", CODE, nullable=False),
        sa.Column("source", ENUM, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("attributed_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("campaign", sa.String(length=64), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("qualified_at", TS, nullable=True),
        sa.Column("settles_at", TS, nullable=True),
        sa.Column("referrer_points", POINTS, nullable=False),
        sa.Column("referee_points", POINTS, nullable=False),
        sa.Column("referrer_tx", sa.Uuid(), nullable=True),
        sa.Column("referee_tx", sa.Uuid(), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        _member_fk("lk_referrals", "referee_id"),
        sa.ForeignKeyConstraint(
            ["program_id", "code"],
            ["lk_referral_codes.program_id", "lk_referral_codes.code"],
            name=op.f("fk_lk_referrals_code_lk_referral_codes"),
        ),
        sa.PrimaryKeyConstraint("program_id", "referee_id", name=op.f("pk_lk_referrals")),
    )
    op.create_index("ix_lk_referrals_referrer", "lk_referrals",
                    ["program_id", "referrer_id", "attributed_at"])
    op.create_table(
        "lk_referral_marks",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        _member_fk("lk_referral_marks"),
        sa.PrimaryKeyConstraint("program_id", "member_id", "kind", "digest",
                                name=op.f("pk_lk_referral_marks")),
    )
    op.create_index("ix_lk_referral_marks_digest", "lk_referral_marks",
                    ["program_id", "kind", "digest"])


def downgrade() -> None:
    """Drop the referral tables (codes, referrals and marks are lost)."""
    op.drop_index("ix_lk_referral_marks_digest", table_name="lk_referral_marks")
    op.drop_table("lk_referral_marks")
    op.drop_index("ix_lk_referrals_referrer", table_name="lk_referrals")
    op.drop_table("lk_referrals")
    op.drop_index("ix_lk_referral_codes_member", table_name="lk_referral_codes")
    op.drop_table("lk_referral_codes")
