"""Member keys: the shop's member id kept once, every other row carrying a member key.

Each enrolled member gets a random member key; ``lk_member_ids`` maps the shop's id to
it and every member column (``member_id``, ``referrer_id``, ``referee_id``, and the
``member_id`` inside an order's document) is rewritten from the shop's id to the key.
``lk_erasures`` records erased members. Downgrading maps the keys back (an erased
member keeps its key as its id) and drops both tables.

Revision ID: lk0008
Revises: lk0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0008"
down_revision: str | Sequence[str] | None = "lk0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
TS = sa.DateTime(timezone=True)

#: every member column outside lk_members and lk_member_ids
MEMBER_COLUMNS = (
    ("lk_accounts", "member_id"),
    ("lk_transactions", "member_id"),
    ("lk_postings", "member_id"),
    ("lk_lots", "member_id"),
    ("lk_lot_movements", "member_id"),
    ("lk_holds", "member_id"),
    ("lk_hold_allocations", "member_id"),
    ("lk_idempotency_keys", "member_id"),
    ("lk_orders", "member_id"),
    ("lk_rule_usage", "member_id"),
    ("lk_tier_states", "member_id"),
    ("lk_tier_buckets", "member_id"),
    ("lk_tier_history", "member_id"),
    ("lk_tier_notices", "member_id"),
    ("lk_referral_codes", "member_id"),
    ("lk_referral_marks", "member_id"),
    ("lk_referrals", "referee_id"),
    ("lk_referrals", "referrer_id"),
)


def _member_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["program_id", "member_id"],
        ["lk_members.program_id", "lk_members.member_id"],
        name=op.f(f"fk_{table}_program_id_lk_members"),
    )


def _copy_members(conn: sa.Connection, pairs: list[dict[str, str]]) -> None:
    """Insert a copy of member ``old`` as member ``new`` for each pair."""
    if pairs:
        conn.execute(sa.text(
            "INSERT INTO lk_members (program_id, member_id, enrolled_at, attributes) "
            "SELECT program_id, :new, enrolled_at, attributes FROM lk_members "
            "WHERE program_id = :p AND member_id = :old"), pairs)


def _rewrite(conn: sa.Connection, source: str, target: str) -> None:
    """Rewrite every member column (and order document) from the mapping's ``source``
    column to its ``target`` column."""
    for table, column in MEMBER_COLUMNS:
        found = (f"SELECT m.{target} FROM lk_member_ids m WHERE m.program_id = "
                 f"{table}.program_id AND m.{source} = {table}.{column}")
        conn.execute(sa.text(
            f"UPDATE {table} SET {column} = ({found}) WHERE EXISTS ({found})"))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(
            "UPDATE lk_orders SET \"order\" = jsonb_set(\"order\"::jsonb, '{member_id}', "
            "to_jsonb(member_id), false)::json"))
    else:
        conn.execute(sa.text(
            "UPDATE lk_orders SET \"order\" = json_replace(\"order\", '$.member_id', member_id)"))


def upgrade() -> None:
    """Create lk_member_ids and lk_erasures; move every member to a new key."""
    op.create_table(
        "lk_member_ids",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("external_id", MEMBER, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        _member_fk("lk_member_ids"),
        sa.PrimaryKeyConstraint("program_id", "external_id", name=op.f("pk_lk_member_ids")),
        sa.UniqueConstraint("program_id", "member_id",
                            name=op.f("uq_lk_member_ids_program_id_member_id")),
    )
    op.create_table(
        "lk_erasures",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("erased_at", TS, nullable=False),
        _member_fk("lk_erasures"),
        sa.PrimaryKeyConstraint("program_id", "member_id", name=op.f("pk_lk_erasures")),
    )
    conn = op.get_bind()
    members = conn.execute(sa.text("SELECT program_id, member_id FROM lk_members")).all()
    pairs = [{"p": p, "old": m, "new": uuid.uuid4().hex} for p, m in members]
    _copy_members(conn, pairs)
    if pairs:
        conn.execute(sa.text(
            "INSERT INTO lk_member_ids (program_id, external_id, member_id) "
            "VALUES (:p, :old, :new)"), pairs)
    _rewrite(conn, "external_id", "member_id")
    conn.execute(sa.text(
        "DELETE FROM lk_members WHERE NOT EXISTS (SELECT 1 FROM lk_member_ids m "
        "WHERE m.program_id = lk_members.program_id AND m.member_id = lk_members.member_id)"))


def downgrade() -> None:
    """Move every mapped member back to the shop's id; drop both tables."""
    conn = op.get_bind()
    mapped = conn.execute(sa.text(
        "SELECT program_id, member_id, external_id FROM lk_member_ids")).all()
    pairs = [{"p": p, "old": k, "new": m} for p, k, m in mapped]
    _copy_members(conn, pairs)
    _rewrite(conn, "member_id", "external_id")
    op.drop_table("lk_erasures")
    op.drop_table("lk_member_ids")
    if pairs:
        conn.execute(sa.text("DELETE FROM lk_members WHERE program_id = :p AND member_id = :old"),
                     pairs)
