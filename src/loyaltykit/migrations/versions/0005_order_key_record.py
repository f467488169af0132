"""Let an order row be its default idempotency key's record.

``lk_orders.fingerprint`` and ``lk_orders.result`` hold what an ``lk_idempotency_keys``
row would for the key ``"order:<order id>"``: recording an order under its default
key then writes one row, not two. Orders recorded before keep their key rows (the
columns stay NULL) and replay from those.

Revision ID: lk0005
Revises: lk0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0005"
down_revision: str | Sequence[str] | None = "lk0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("lk_orders") as batch:
        batch.add_column(sa.Column("fingerprint", sa.Text(), nullable=True))
        batch.add_column(sa.Column("result", sa.Text(), nullable=True))


def downgrade() -> None:
    # Orders recorded under their default key since the upgrade lose their key record
    # on downgrade: copy it back into lk_idempotency_keys first.
    orders = sa.table(
        "lk_orders", sa.column("program_id", sa.String()), sa.column("order_id", sa.String()),
        sa.column("member_id", sa.String()), sa.column("fingerprint", sa.Text()),
        sa.column("result", sa.Text()), sa.column("created_at", sa.DateTime()),
    )
    keys = sa.table(
        "lk_idempotency_keys", sa.column("program_id", sa.String()),
        sa.column("key", sa.String()), sa.column("member_id", sa.String()),
        sa.column("fingerprint", sa.Text()), sa.column("result", sa.Text()),
        sa.column("created_at", sa.DateTime()),
    )
    op.execute(keys.insert().from_select(
        ["program_id", "key", "member_id", "fingerprint", "result", "created_at"],
        sa.select(orders.c.program_id, sa.literal("order:") + orders.c.order_id,
                  orders.c.member_id, orders.c.fingerprint, orders.c.result,
                  orders.c.created_at).where(orders.c.fingerprint.is_not(None)),
    ))
    with op.batch_alter_table("lk_orders") as batch:
        batch.drop_column("result")
        batch.drop_column("fingerprint")
