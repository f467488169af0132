"""The ``tier.changed`` events of a due tier evaluation, appended by SQLite itself.

:meth:`~loyaltykit.sql.tiers.SQLTierStore.evaluate_tiers_recorded` moves a batch of
tier states on and appends the history lines of their changes with a few statements;
:func:`append_events` then appends one outbox event per line with one
``INSERT ... SELECT`` from those lines (the rows numbered after :func:`history_end`),
the states after them and the ladder (a ``VALUES`` list): the payload
:class:`~loyaltykit._services.tier_events.TierEvents` builds, key for key (see
:mod:`loyaltykit.storage.tier_due_set`), as ``json_object``. No Python per member.

SQLite only: there the outbox's position is ``seq``, one more than the program's
largest (writers take turns), so rows appended in history order are read in that
order. PostgreSQL's events are keyed by the outbox's trigger: its evaluations raise
their events.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from loyaltykit.sql.outbox import NEXT_SEQ
from loyaltykit.sql.schema import outbox, tier_history, tier_states
from loyaltykit.storage.tier_due_set import TierOutbox

__all__ = ["append_events"]

_TS = outbox.c.recorded_at.type

#: a stored instant (naive UTC text, "YYYY-MM-DD HH:MM:SS.ffffff") as the payload
#: shows it: ``datetime.isoformat()`` of the aware UTC instant (no fraction when it is 0)
_ISO = """(substr({x}, 1, 10) || 'T' || substr({x}, 12, 8)
    || CASE WHEN substr({x}, 20) IN ('', '.000000') THEN '' ELSE substr({x}, 20) END
    || '+00:00')"""


@functools.cache
def _insert(ranks: int) -> sa.TextClause:
    """The INSERT of the events of the history lines whose ids lead ``:hids`` (32 hex
    digits an id, one after the other, in the lines' order) for a ladder of ``ranks``
    tiers (``:n<i>``, ``:t<i>``, ``:b<i>``: each rank's name, threshold and benefits'
    JSON); ``:ids`` the events' ids (a JSON array, one a line: the caller counts the
    events against the lines).

    The ids' array leads the join (CROSS JOIN: in that order), each line a lookup of
    its id (the primary key leads with it); a window over the lines joined to the
    array was a nested loop, quadratic in the batch."""
    ladder = ", ".join(f"({i}, :n{i}, :t{i}, :b{i})" for i in range(ranks))
    protected = "s.protected_until"
    # (INSERT first, its SELECT's WITH after: the driver counts the rows of a
    # statement that starts with INSERT only)
    sql = f"""INSERT INTO {outbox.name} (program_id, stream, tx, seq, id, type, version,
        member_id, occurred_at, recorded_at, payload)
    WITH ladder (rank, name, threshold, benefits) AS (VALUES {ladder})
    SELECT :p, 0, 0, {NEXT_SEQ} + e.key + 1, e.value, :type, :version, h.member_id, h.at,
        :now, json_object(
        'from', h.from_tier, 'to', h.to_tier,
        'direction', CASE WHEN t.rank > f.rank THEN 'up' WHEN t.rank < f.rank THEN 'down'
                          ELSE 'same' END,
        'reason', h.reason, 'note', h.note, 'changed_at', :changed_at, 'metric', :metric,
        'qualifying', h.metric, 'threshold', t.threshold,
        -- (run out: protects nothing, as TierChanged.of says)
        'protected_until', CASE WHEN {protected} > h.at THEN {_ISO.format(x=protected)}
                                END,
        'next_evaluation', :next_evaluation, 'benefits', json(t.benefits))
    FROM json_each(:ids) e
      CROSS JOIN {tier_history.name} h ON h.id = substr(:hids, e.key * 32 + 1, 32)
      JOIN ladder f ON f.name = h.from_tier JOIN ladder t ON t.name = h.to_tier
      JOIN {tier_states.name} s ON s.program_id = :p AND s.member_id = h.member_id
    ORDER BY e.key"""
    return sa.text(sql).bindparams(sa.bindparam("now", type_=_TS))


def append_events(conn: Connection, program_id: str, line_ids: str, lines: int,
                  request: TierOutbox) -> int:
    """Append the outbox events of the ``lines`` history lines whose ids lead
    ``line_ids`` (hex digits, 32 an id; their states moved on already), in their
    order; return how many."""
    ids = request.new_ids(lines)
    params: dict[str, Any] = {
        "p": program_id, "hids": line_ids, "ids": json.dumps([i.hex for i in ids]),
        "type": request.type, "version": request.version, "now": request.recorded_at,
        "changed_at": request.changed_at, "metric": request.metric,
        "next_evaluation": request.next_evaluation}
    for i, rung in enumerate(request.ladder):
        params[f"n{i}"], params[f"t{i}"] = rung.name, rung.threshold
        params[f"b{i}"] = json.dumps(rung.benefits, ensure_ascii=False,
                                     separators=(",", ":"))
    written = conn.execute(_insert(len(request.ladder)), params).rowcount
    return int(written)
