"""Changes of several writes merged into one write per store (a history import's batch).

The change parts say what one unit of work writes: final states of touched rows by id
(a later write's state wins), ids to insert, rows to append, and the tiers' metric
buckets, whose amounts are added (a tier state written by several writes counts them
in its version). Writes merge into one part per kind, which the stores write with one
statement per table instead of one per write. A part whose fields are none of those
kinds is not merged (:func:`merge` returns None and the writes go one by one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, TypeVar

import attrs

from loyaltykit.storage import TierChanges

__all__ = ["merge"]

P = TypeVar("P")

#: fields whose values are amounts added up, not final states
_ADDED = {(TierChanges, "tier_buckets"), (TierChanges, "rewrites")}
#: final states whose writes are counted (the version of a tier state counts its
#: writes): a key in n parts adds n - 1 to the counting field
_COUNTED: dict[type, tuple[str, str]] = {TierChanges: ("tier_states", "rewrites")}


_Fields = tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]
#: per attrs class: its field names and a function reading them all, as a tuple
_read: dict[type, _Fields] = {}


def _fields_of(kind: type) -> _Fields | None:
    """``kind``'s field names and their reader, or None if it is no attrs class."""
    found = _read.get(kind)
    if found is None:
        if not attrs.has(kind):
            return None
        names = tuple(f.name for f in attrs.fields(kind))
        if len(names) == 1:  # attrgetter of one name gives the value, not a tuple
            one = attrgetter(names[0])
            found = names, lambda part: (one(part),)
        else:
            found = names, attrgetter(*names)
        _read[kind] = found
    return found


def merge(parts: Sequence[P]) -> P | None:
    """One part holding what ``parts`` (of one kind, in the order written) hold, or None
    if that kind cannot be merged."""
    first = parts[0]
    kind = type(first)
    if len(parts) == 1:
        return first
    read = _fields_of(kind)
    if read is None:
        return None
    names, fields = read
    merged: dict[str, Any] = {}
    # each part's fields read by one attrgetter call, then field by field (a batch
    # merges thousands of parts of four or five fields: a getattr each cost a tenth
    # of the merge)
    for name, values in zip(names, zip(*map(fields, parts), strict=True), strict=True):
        sample = values[0]
        if (kind, name) in _ADDED:
            added: dict[Any, int] = {}
            for value in values:
                for key, amount in value.items():
                    added[key] = added.get(key, 0) + amount
            merged[name] = added
        elif isinstance(sample, list):
            merged[name] = list(chain.from_iterable(values))
        elif isinstance(sample, set):
            merged[name] = set().union(*values)
        elif isinstance(sample, dict):
            states: dict[Any, Any] = {}
            for value in values:
                states.update(value)
            merged[name] = states
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
    return kind(**merged)
