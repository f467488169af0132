"""Program versions, recorded orders and earning-rule usage.

Every program already registered gets its stored definition as version 1, in force
from the beginning of time (what the ledger knew of it before versions existed).

Revision ID: lk0002
Revises: lk0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0002"
down_revision: str | Sequence[str] | None = "lk0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
ORDER = sa.String(length=128)
SOURCE = sa.String(length=200)
RULE = sa.String(length=128)
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
    """Create the program versions, orders and rule usage tables."""
    op.create_table(
        "lk_program_versions",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", TS, nullable=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["lk_programs.id"],
            name=op.f("fk_lk_program_versions_program_id_lk_programs"),
        ),
        sa.PrimaryKeyConstraint("program_id", "version", name=op.f("pk_lk_program_versions")),
    )
    op.execute(
        "INSERT INTO lk_program_versions (program_id, version, effective_from, definition,"
        " created_at) SELECT id, 1, NULL, definition, created_at FROM lk_programs"
    )
    op.create_table(
        "lk_orders",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("order_id", ORDER, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("placed_at", TS, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("order", sa.JSON(), nullable=False),
        sa.Column("returned", sa.JSON(), nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("points", POINTS, nullable=False),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("earn_id", sa.Uuid(), nullable=True),
        sa.Column("payments", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('open', 'cancelled')", name=op.f("ck_lk_orders_status")),
        _member_fk("lk_orders"),
        sa.PrimaryKeyConstraint("program_id", "order_id", name=op.f("pk_lk_orders")),
    )
    op.create_index(
        "ix_lk_orders_member_status", "lk_orders", ["program_id", "member_id", "status"]
    )
    op.create_table(
        "lk_rule_usage",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("source", SOURCE, nullable=False),
        sa.Column("rule_id", RULE, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("rule_group", RULE, nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("points", sa.Text(), nullable=False),
        sa.Column("stamps", sa.Integer(), nullable=False),
        _member_fk("lk_rule_usage"),
        sa.PrimaryKeyConstraint("program_id", "source", "rule_id", name=op.f("pk_lk_rule_usage")),
    )
    op.create_index(
        "ix_lk_rule_usage_member_rule",
        "lk_rule_usage",
        ["program_id", "member_id", "rule_id", "occurred_at"],
    )
    op.create_index(
        "ix_lk_rule_usage_member_group",
        "lk_rule_usage",
        ["program_id", "member_id", "rule_group", "occurred_at"],
    )


def downgrade() -> None:
    """Drop the program versions, orders and rule usage (the ledger stays)."""
    for table in ("lk_rule_usage", "lk_orders", "lk_program_versions"):
        op.drop_table(table)
