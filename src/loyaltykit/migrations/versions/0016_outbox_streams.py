"""The outbox per stream: positions a distributed engine can keep per node.

A distributed engine (Citus) keeps transaction ids and snapshots per node, so the
outbox's rule that no reader skips an event (an event's key comes from its writer's
transaction id; a read returns only keys below its snapshot's horizon) holds per node,
not across nodes. Each event now belongs to a **stream**, the server whose transaction
ids keyed it (PostgreSQL's system identifier; 0 on SQLite), and is read, acknowledged
and pruned per stream. Nothing is numbered by a database sequence any more, and the
primary key leads with the member (DESIGN §10):

* ``lk_outbox``: primary key ``(program_id, member_id, id)``; ``stream`` added;
  readers' index ``(program_id, stream, tx, seq, id)`` (the id breaks ties), a member's
  ``(program_id, member_id, stream, tx, seq)``. Every event keeps its ``tx``, and its
  order: on SQLite its ``seq`` too (the INSERT now gives seq, the program's largest
  plus one); on PostgreSQL a trigger keys each row (``lk_outbox_key``: stream, key, and
  ``seq``, the event's number within its key), and the events kept are numbered so.
* ``lk_outbox_consumers``: one row per consumer and stream, with the acknowledged
  event's id: every position is kept exactly.

Downgrading rebuilds the tables of 0011 (PostgreSQL's events numbered in their
position order, the sequence set after them; a consumer keeps its position in this
server's stream).

Revision ID: lk0016
Revises: lk0015
Create Date: 2027-02-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "lk0016"
down_revision: str | Sequence[str] | None = "lk0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = sa.String(length=64)
MEMBER = sa.String(length=128)
TS = sa.DateTime(timezone=True)
NO_EVENT = "00000000-0000-0000-0000-000000000000"
HERE = "(SELECT system_identifier FROM pg_control_system())"
EVENT_COLUMNS = "id, type, version, occurred_at, recorded_at, payload"

#: the key trigger's function (frozen here as 0016 made it)
KEY_FUNCTION = """CREATE OR REPLACE FUNCTION lk_outbox_key() RETURNS trigger
LANGUAGE plpgsql AS $lk$
DECLARE
    _stream bigint := nullif(current_setting('loyaltykit.stream', true), '');
    _xid bigint := CAST(CAST(pg_current_xact_id() AS text) AS bigint);
    _last bigint; _top bigint;
BEGIN
    IF _stream IS NULL THEN
        _stream := (pg_control_system()).system_identifier;
        PERFORM set_config('loyaltykit.stream', _stream::text, false);
    END IF;
    SELECT o.tx INTO _last FROM lk_outbox o WHERE o.program_id = NEW.program_id
        AND o.member_id = NEW.member_id AND o.stream = _stream
        ORDER BY o.tx DESC LIMIT 1;
    NEW.stream := _stream;
    IF _last > _xid THEN
        SELECT o.seq INTO _top FROM lk_outbox o WHERE o.program_id = NEW.program_id
            AND o.stream = _stream AND o.tx = _last ORDER BY o.seq DESC LIMIT 1;
        NEW.tx := _last;
        NEW.seq := coalesce(_top, 0) + 1;
    ELSE
        NEW.tx := _xid;
        NEW.seq := coalesce(nullif(current_setting('loyaltykit.seq', true), ''), '0')::bigint
            + 1;
        PERFORM set_config('loyaltykit.seq', NEW.seq::text, true);
    END IF;
    RETURN NEW;
END
$lk$"""
KEY_TRIGGER = ("CREATE TRIGGER lk_outbox_key BEFORE INSERT ON lk_outbox "
               "FOR EACH ROW EXECUTE FUNCTION lk_outbox_key()")


def _aside() -> None:
    conn = op.get_bind()
    for table in ("lk_outbox", "lk_outbox_consumers"):
        conn.exec_driver_sql(f"CREATE TEMP TABLE lk16_{table} AS SELECT * FROM {table}")
    op.drop_table("lk_outbox_consumers")
    op.drop_table("lk_outbox")


def _done() -> None:
    conn = op.get_bind()
    for table in ("lk_outbox", "lk_outbox_consumers"):
        conn.exec_driver_sql(f"DROP TABLE lk16_{table}")


def upgrade() -> None:
    """Rebuild the outbox's tables per stream, their rows kept."""
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    _aside()
    op.create_table(
        "lk_outbox",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("member_id", MEMBER, nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.BigInteger(), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("program_id", "member_id", "id", name=op.f("pk_lk_outbox")),
    )
    op.create_index("ix_lk_outbox_position", "lk_outbox",
                    ["program_id", "stream", "tx", "seq", "id"])
    op.create_index("ix_lk_outbox_member", "lk_outbox",
                    ["program_id", "member_id", "stream", "tx", "seq"])
    op.create_table(
        "lk_outbox_consumers",
        sa.Column("program_id", PROGRAM, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("stream", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event", sa.Uuid(), nullable=False),
        sa.Column("acked_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["lk_programs.id"],
                                name=op.f("fk_lk_outbox_consumers_program_id_lk_programs")),
        sa.PrimaryKeyConstraint("program_id", "name", "stream",
                                name=op.f("pk_lk_outbox_consumers")),
    )
    # every event keeps its key; its number: on SQLite the same, on PostgreSQL its
    # place within its key (in the order of its old number, as the trigger numbers a
    # key's events); a consumer keeps its position, with the id of the event there
    # (none if it was pruned: then before any event left at that key or number)
    if postgres:
        number = "row_number() OVER (PARTITION BY program_id, tx ORDER BY seq)"
        stream, nothing = HERE, NO_EVENT
        at_key = f"c.tx, coalesce(o.n, 0), coalesce(o.id, '{NO_EVENT}')"
    else:
        number, stream, nothing = "seq", "0", NO_EVENT.replace("-", "")
        at_key = f"c.tx, c.seq, coalesce(o.id, '{nothing}')"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE lk16_numbered AS SELECT *, {number} AS n FROM lk16_lk_outbox")
    conn.exec_driver_sql(
        f"INSERT INTO lk_outbox (program_id, member_id, seq, stream, tx, {EVENT_COLUMNS}) "
        f"SELECT program_id, member_id, n, {stream}, tx, {EVENT_COLUMNS} FROM lk16_numbered")
    conn.exec_driver_sql(
        "INSERT INTO lk_outbox_consumers (program_id, name, stream, tx, seq, event, "
        f"acked_at) SELECT c.program_id, c.name, {stream}, {at_key}, c.acked_at "
        "FROM lk16_lk_outbox_consumers c LEFT JOIN lk16_numbered o "
        "ON o.program_id = c.program_id AND o.seq = c.seq")
    conn.exec_driver_sql("DROP TABLE lk16_numbered")
    if postgres:
        conn.exec_driver_sql(KEY_FUNCTION)
        conn.exec_driver_sql(KEY_TRIGGER)
    _done()


def downgrade() -> None:
    """Rebuild the outbox's tables of 0011."""
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    _aside()
    if postgres:
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS lk_outbox_key()")
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
    if postgres:  # numbered in position order; a consumer at the last event it passed
        conn.exec_driver_sql(
            "CREATE TEMP TABLE lk16_numbered AS SELECT *, row_number() OVER (ORDER BY "
            "program_id, stream, tx, seq, id) AS n FROM lk16_lk_outbox")
        conn.exec_driver_sql(
            f"INSERT INTO lk_outbox (seq, program_id, tx, member_id, {EVENT_COLUMNS}) "
            f"SELECT n, program_id, tx, member_id, {EVENT_COLUMNS} FROM lk16_numbered")
        conn.exec_driver_sql(
            "INSERT INTO lk_outbox_consumers (program_id, name, tx, seq, acked_at) "
            "SELECT c.program_id, c.name, c.tx, coalesce((SELECT max(o.n) FROM "
            "lk16_numbered o WHERE o.program_id = c.program_id AND o.stream = c.stream "
            "AND (o.tx, o.seq, o.id) <= (c.tx, c.seq, c.event)), 0), c.acked_at "
            f"FROM lk16_lk_outbox_consumers c WHERE c.stream = {HERE}")
        conn.exec_driver_sql("DROP TABLE lk16_numbered")
        conn.exec_driver_sql(
            "SELECT setval(pg_get_serial_sequence('lk_outbox', 'seq'), "
            "coalesce(max(seq), 0) + 1, false) FROM lk_outbox")
    else:
        conn.exec_driver_sql(
            f"INSERT INTO lk_outbox (seq, program_id, tx, member_id, {EVENT_COLUMNS}) "
            f"SELECT seq, program_id, 0, member_id, {EVENT_COLUMNS} FROM lk16_lk_outbox")
        conn.exec_driver_sql(
            "INSERT INTO lk_outbox_consumers (program_id, name, tx, seq, acked_at) "
            "SELECT program_id, name, tx, seq, acked_at FROM lk16_lk_outbox_consumers "
            "WHERE stream = 0")
    _done()
