"""Code counters: how many codes each program has issued, kept on one row per program.

``issue_code`` checks the code spec's planned volume with a guarded increment of this
row instead of counting the program's codes under a lock on every call. The upgrade
fills it from the codes stored (one row per program that has any); downgrading drops it
(the codes stay, and are counted again if upgraded).

Revision ID: lk0009
Revises: lk0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0009"
down_revision: str | Sequence[str] | None = "lk0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)


def upgrade() -> None:
    """Create ``lk_code_counters`` and count each program's stored codes into it."""
    op.create_table(
        "lk_code_counters",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("issued >= 0",
                           name=op.f("ck_lk_code_counters_issued_not_negative")),
        sa.ForeignKeyConstraint(["program_id"], ["lk_programs.id"],
                                name=op.f("fk_lk_code_counters_program_id_lk_programs")),
        sa.PrimaryKeyConstraint("program_id", name=op.f("pk_lk_code_counters")),
    )
    op.execute(
        "INSERT INTO lk_code_counters (program_id, issued) "
        "SELECT program_id, COUNT(*) FROM lk_referral_codes GROUP BY program_id")


def downgrade() -> None:
    """Drop ``lk_code_counters`` (the codes stay)."""
    op.drop_table("lk_code_counters")
