"""Events: the outbox, and each consumer's position.

Revision ID: lk0011
Revises: lk0010
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0011"
down_revision: str | Sequence[str] | None = "lk0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``lk_outbox`` and ``lk_outbox_consumers``."""
    op.create_table(
        "lk_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_lk_outbox")),
    )
    op.create_index("ix_lk_outbox_position", "lk_outbox", ["program_id", "tx", "seq"])
    op.create_index("ix_lk_outbox_member", "lk_outbox", ["program_id", "member_id", "tx"])
    op.create_table(
        "lk_outbox_consumers",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("acked_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["lk_programs.id"],
                                name=op.f("fk_lk_outbox_consumers_program_id_lk_programs")),
        sa.PrimaryKeyConstraint("program_id", "name", name=op.f("pk_lk_outbox_consumers")),
    )


def downgrade() -> None:
    """Drop the outbox's tables."""
    op.drop_table("lk_outbox_consumers")
    op.drop_index("ix_lk_outbox_member", table_name="lk_outbox")
    op.drop_index("ix_lk_outbox_position", table_name="lk_outbox")
    op.drop_table("lk_outbox")
