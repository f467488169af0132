"""Keep an order's breakdown as first recorded once a return changes it.

Replaying ``record_order`` returns the first result; its idempotency record refers to
the order's stored breakdown instead of holding a second copy, so the first return
keeps the original in ``recorded_evaluation`` before overwriting ``evaluation``.

Revision ID: lk0003
Revises: lk0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0003"
down_revision: str | Sequence[str] | None = "lk0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lk_orders") as batch:
        batch.add_column(sa.Column("recorded_evaluation", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lk_orders") as batch:
        batch.drop_column("recorded_evaluation")
