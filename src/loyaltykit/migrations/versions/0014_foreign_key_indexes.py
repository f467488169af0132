"""Foreign key indexes: every referencing column gets an index leading with it.

``lk_lot_movements.lot_id`` and ``lk_hold_allocations.lot_id`` (their primary keys lead
with the transaction and the hold), ``lk_lots.transaction_id``,
``lk_holds.transaction_id``, ``lk_vouchers.transaction_id`` and ``lk_referrals``'
``(program_id, code)`` had none: deleting a referenced lot, transaction or code then
checked its foreign keys by scanning the referencing table, once per deleted row (a
program's cleanup ran for over ten minutes on PostgreSQL). The lot indexes also serve
"which transactions moved this lot" and "which holds reserve it".

Revision ID: lk0014
Revises: lk0013
Create Date: 2027-02-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0014"
down_revision: str | Sequence[str] | None = "lk0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index, table, columns)
INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ("ix_lk_lot_movements_lot", "lk_lot_movements", ["lot_id"]),
    ("ix_lk_hold_allocations_lot", "lk_hold_allocations", ["lot_id"]),
    ("ix_lk_lots_transaction", "lk_lots", ["transaction_id"]),
    ("ix_lk_holds_transaction", "lk_holds", ["transaction_id"]),
    ("ix_lk_vouchers_transaction", "lk_vouchers", ["transaction_id"]),
    ("ix_lk_referrals_code", "lk_referrals", ["program_id", "code"]),
)


def upgrade() -> None:
    """Index the referencing columns of the foreign keys that had no index."""
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    """Drop those indexes."""
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
