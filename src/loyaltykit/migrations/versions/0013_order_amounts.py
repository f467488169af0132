"""Order amounts: what each order counts for in reports, readable set-based.

``lk_orders.currency`` (the order's currency) and ``lk_orders.net_amount`` (its net
goods after the returns so far, shipping excluded, as exact decimal text; NULL when it
does not count: cancelled, or everything returned; both NULL for a document that is no
order, which only rows written by hand have), filled here for the orders stored
before, from each order's document and returns with the library's own order arithmetic
(the same the orders' store writes them with). An index by member and time serves the
reports that page through orders.

Revision ID: lk0013
Revises: lk0012
Create Date: 2027-01-20
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0013"
down_revision: str | Sequence[str] | None = "lk0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def _document(value: Any) -> Any:
    if isinstance(value, str):  # SQLite hands JSON back as text through sa.text
        import json

        return json.loads(value)
    return value


def upgrade() -> None:
    """Add and fill ``currency`` and ``net_amount``; index orders by member and time."""
    from loyaltykit._reports_orders import counted_net

    op.add_column("lk_orders", sa.Column("currency", sa.String(3), nullable=True))
    op.add_column("lk_orders", sa.Column("net_amount", sa.Text(), nullable=True))
    conn = op.get_bind()
    orders = sa.table("lk_orders", sa.column("program_id"), sa.column("order_id"),
                      sa.column("order"), sa.column("returned"), sa.column("status"),
                      sa.column("currency"), sa.column("net_amount"))
    update = (orders.update()
              .where(orders.c.program_id == sa.bindparam("k_program_id"),
                     orders.c.order_id == sa.bindparam("k_order_id"))
              .values(currency=sa.bindparam("v_currency"),
                      net_amount=sa.bindparam("v_net_amount")))
    after: tuple[str, str] = ("", "")
    while True:  # keyset pages: never every order in memory at once
        rows = conn.execute(
            sa.select(orders.c.program_id, orders.c.order_id, orders.c.order,
                      orders.c.returned, orders.c.status)
            .where(sa.tuple_(orders.c.program_id, orders.c.order_id)
                   > sa.tuple_(sa.literal(after[0]), sa.literal(after[1])))
            .order_by(orders.c.program_id, orders.c.order_id)
            .limit(_BATCH)).all()
        if not rows:
            break
        params = []
        for program_id, order_id, document, returned, status in rows:
            order = _document(document)
            net = counted_net(order, _document(returned), status == "cancelled")
            currency = order.get("currency") if isinstance(order, dict) else None
            params.append({"k_program_id": program_id, "k_order_id": order_id,
                           "v_currency": currency if isinstance(currency, str)
                           and len(currency) == 3 else None,
                           "v_net_amount": None if net is None else str(net)})
        conn.execute(update, params)
        after = (rows[-1][0], rows[-1][1])
    op.create_index("ix_lk_orders_member_placed", "lk_orders",
                    ["program_id", "member_id", "placed_at", "order_id"])


def downgrade() -> None:
    """Drop the index and the two columns (they are derived from the order rows)."""
    op.drop_index("ix_lk_orders_member_placed", table_name="lk_orders")
    with op.batch_alter_table("lk_orders") as batch:
        batch.drop_column("net_amount")
        batch.drop_column("currency")
