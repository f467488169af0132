"""The PostgreSQL trigger that keys each outbox event where it is stored.

An event's stream, ordering key and number come from the server that stores the row
(see :mod:`loyaltykit._outbox` and docs/events.md), so the INSERTs of the store name
none of them and the same statement runs on one server and on a distributed engine's
nodes. :func:`outbox_key_function` is the trigger's function (reading the member's
last key in ``lk_outbox``, or, for a distributed engine, in the shard the trigger
fires on); :data:`OUTBOX_KEY` creates the trigger. The schema creates both on
PostgreSQL, migration 0016 as it was then, :mod:`loyaltykit.sql.citus` replaces the
function with the shard's.
"""

from __future__ import annotations

__all__ = ["OUTBOX_KEY", "outbox_key_function"]

#: What the PostgreSQL trigger of ``lk_outbox`` runs for each row inserted: ``{last}``
#: finds the member's last key in this stream (``_last``), ``{top}`` the highest seq of
#: key ``_last`` (``_top``). The stream is the server's system identifier, kept in a
#: session setting once read (reading the control file costs more than the rest; a
#: setting made in a transaction that rolled back reads as empty, so read again); a
#: transaction numbers its own events with a setting local to it. The key is at least
#: the writer's transaction id (the never-skip rule, loyaltykit._outbox) and never
#: below the member's last (a member's events keep their order).
_OUTBOX_KEY_BODY = """DECLARE
    _stream bigint := nullif(current_setting('loyaltykit.stream', true), '');
    _xid bigint := CAST(CAST(pg_current_xact_id() AS text) AS bigint);
    _last bigint; _top bigint;
BEGIN
    IF _stream IS NULL THEN
        _stream := (pg_control_system()).system_identifier;
        PERFORM set_config('loyaltykit.stream', _stream::text, false);
    END IF;
    {last}
    NEW.stream := _stream;
    IF _last > _xid THEN
        {top}
        NEW.tx := _last;
        NEW.seq := coalesce(_top, 0) + 1;
    ELSE
        NEW.tx := _xid;
        NEW.seq := coalesce(nullif(current_setting('loyaltykit.seq', true), ''), '0')::bigint
            + 1;
        PERFORM set_config('loyaltykit.seq', NEW.seq::text, true);
    END IF;
    RETURN NEW;
END"""
#: the member's last key and a key's highest seq, in the table itself (one server)
_LAST_HERE = """SELECT o.tx INTO _last FROM lk_outbox o WHERE o.program_id = NEW.program_id
        AND o.member_id = NEW.member_id AND o.stream = _stream
        ORDER BY o.tx DESC LIMIT 1;"""
_TOP_HERE = """SELECT o.seq INTO _top FROM lk_outbox o WHERE o.program_id = NEW.program_id
            AND o.stream = _stream AND o.tx = _last ORDER BY o.seq DESC LIMIT 1;"""
#: the same in the table the trigger fires on (a distributed engine's shard, on the
#: node that holds it: a query of the distributed table from a shard is refused)
_LAST_IN_SHARD = """EXECUTE format('SELECT o.tx FROM %I.%I o WHERE o.program_id = $1 '
        'AND o.member_id = $2 AND o.stream = $3 ORDER BY o.tx DESC LIMIT 1',
        TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO _last
        USING NEW.program_id, NEW.member_id, _stream;"""
_TOP_IN_SHARD = """EXECUTE format('SELECT o.seq FROM %I.%I o WHERE o.program_id = $1 '
            'AND o.stream = $2 AND o.tx = $3 ORDER BY o.seq DESC LIMIT 1',
            TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO _top
            USING NEW.program_id, _stream, _last;"""


def outbox_key_function(in_shard: bool = False) -> str:
    """The ``CREATE OR REPLACE FUNCTION`` of the outbox's key trigger on PostgreSQL:
    finding the member's last event in ``lk_outbox`` (one server), or, ``in_shard``,
    in the table the trigger fires on (what :mod:`loyaltykit.sql.citus` installs)."""
    body = _OUTBOX_KEY_BODY.format(last=_LAST_IN_SHARD if in_shard else _LAST_HERE,
                                   top=_TOP_IN_SHARD if in_shard else _TOP_HERE)
    return (f"CREATE OR REPLACE FUNCTION lk_outbox_key() RETURNS trigger "
            f"LANGUAGE plpgsql AS $lk$\n{body}\n$lk$")


#: The trigger that keys each event (PostgreSQL): a statement that inserts events
#: names none of stream, tx, seq (it gives 0s), so the same INSERT runs on one server
#: and on a distributed engine's nodes, where the key must come from the node's own
#: transaction ids.
OUTBOX_KEY = ("CREATE TRIGGER lk_outbox_key BEFORE INSERT ON lk_outbox "
              "FOR EACH ROW EXECUTE FUNCTION lk_outbox_key()")
