"""Keep each member's earning counters on its account; usage rows for events only.

``lk_accounts.activity`` holds opaque JSON text the service keeps on the member's
default-wallet account. An order's rule usage is now derived from its own ``lk_orders``
row, so ``lk_rule_usage`` keeps only events' rows: the orders' rows are deleted.

Revision ID: lk0004
Revises: lk0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0004"
down_revision: str | Sequence[str] | None = "lk0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lk_accounts") as batch:
        batch.add_column(sa.Column("activity", sa.Text(), nullable=True))
    rule_usage = sa.table("lk_rule_usage", sa.column("source", sa.String()))
    op.execute(rule_usage.delete().where(rule_usage.c.source.like("order:%")))


def downgrade() -> None:
    # The usage rows of orders deleted by upgrade() are not restored: they were
    # derived data (an order's usage follows from its own lk_orders row). Code of
    # revision 0003 then no longer counts the orders recorded before in caps and
    # stamp cards.
    with op.batch_alter_table("lk_accounts") as batch:
        batch.drop_column("activity")
