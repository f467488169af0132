"""Changes of several writes merged into one write per store (a history import's batch).

The change parts say what one unit of work writes: final states of touched rows by id
(a later write's state wins), ids to insert, rows to append, and the tiers' metric
buckets, whose amounts are added (a tier state written by several writes counts them
in its version). Writes merge into one part per kind, which the stores write with one
statement per table instead of one per write. A part whose fields are none of those
kinds is not merged (:func:`merge` returns None and the writes go one by one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import attrs

from loyaltykit.storage import TierChanges

__all__ = ["merge"]

P = TypeVar("P")

#: fields whose values are amounts added up, not final states
_ADDED = {(TierChanges, "tier_buckets"), (TierChanges, "rewrites")}
#: final states whose writes are counted (the version of a tier state counts its
#: writes): a key in n parts adds n - 1 to the counting field
_COUNTED: dict[type, tuple[str, str]] = {TierChanges: ("tier_states", "rewrites")}


def merge(parts: Sequence[P]) -> P | None:
    """One part holding what ``parts`` (of one kind, in the order written) hold, or None
    if that kind cannot be merged."""
    first = parts[0]
    kind = type(first)
    if len(parts) == 1:
        return first
    if not attrs.has(kind):
        return None
    merged: dict[str, Any] = {}
    for field in attrs.fields(kind):
        values = [getattr(p, field.name) for p in parts]
        sample = values[0]
        if (kind, field.name) in _ADDED:
            added: dict[Any, int] = {}
            for value in values:
                for key, amount in value.items():
                    added[key] = added.get(key, 0) + amount
            merged[field.name] = added
        elif isinstance(sample, list):
            merged[field.name] = [item for value in values for item in value]
        elif isinstance(sample, set):
            merged[field.name] = set().union(*values)
        elif isinstance(sample, dict):
            states: dict[Any, Any] = {}
            for value in values:
                states.update(value)
            merged[field.name] = states
        else:
            return None
    counted = _COUNTED.get(kind)
    if counted is not None:
        state_field, count_field = counted
        seen: dict[Any, int] = {}
        for part in parts:
            for key in getattr(part, state_field):
                seen[key] = seen.get(key, 0) + 1
        counts = merged[count_field]
        for key, times in seen.items():
            if times > 1:
                counts[key] = counts.get(key, 0) + times - 1
    return cast(P, kind(**merged))
