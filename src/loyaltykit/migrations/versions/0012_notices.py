"""Notices: the claimed notices of due work, and the indexes that find their subjects.

Revision ID: lk0012
Revises: lk0011
Create Date: 2027-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0012"
down_revision: str | Sequence[str] | None = "lk0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``lk_notices``; index lots by expiry and tier notices by evaluation."""
    op.create_table(
        "lk_notices",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("emitted_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("program_id", "type", "member_id", "subject",
                                name=op.f("pk_lk_notices")),
    )
    op.create_index("ix_lk_lots_expiring", "lk_lots",
                    ["program_id", "expires_at", "member_id", "wallet", "id"],
                    postgresql_where=sa.text("expires_at IS NOT NULL"),
                    sqlite_where=sa.text("expires_at IS NOT NULL"))
    op.create_index("ix_lk_tier_notices_evaluation", "lk_tier_notices",
                    ["program_id", "evaluation_at", "member_id"])


def downgrade() -> None:
    """Drop the notices' table and indexes."""
    op.drop_index("ix_lk_tier_notices_evaluation", table_name="lk_tier_notices")
    op.drop_index("ix_lk_lots_expiring", table_name="lk_lots")
    op.drop_table("lk_notices")
