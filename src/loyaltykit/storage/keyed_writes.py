"""A store's write naming the members by their keys itself: optional port part.

Above the stores, rows name members by their shop ids; the stores keep member keys
(:mod:`loyaltykit._member_keys`). The member-key layer used to copy every row of a
write with its member field swapped for the key before handing the changes down: a
history import's batch of 5000 orders copied some 40,000 rows (transactions, lots,
accounts, orders, events) only for the store to read each once more while building
its own parameter rows. A store that builds rows of its own anyway (SQL) can take
the mapping instead and look each row's key up as it builds the row: one lookup per
row, no copy. :class:`KeyedWrites` is that part; a store without it is handed the
copies as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["KeyedWrites"]

C = TypeVar("C", contravariant=True)


@runtime_checkable
class KeyedWrites(Protocol[C]):
    """A store that can write changes whose rows name members by shop id."""

    def write_keyed(self, changes: C, keys: Mapping[str, str]) -> None:
        """Write ``changes`` as ``write`` would write them with every member field
        (``member_id`` of each row, the member of each keyed entry) replaced by
        ``keys[member_id]`` (an order document's ``member_id`` too, as its row's);
        ``keys`` holds every member the changes name. The members an event's payload
        names are the caller's to have converted."""
        ...
