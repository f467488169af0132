"""Sorted indexes of the in-memory tables, for the due queries (what falls due by an
instant, in key order, batch after batch) to find their rows without scanning a table.

:class:`IndexedTable` is a table (a dict) that keeps a :class:`SortedKeys` of one key
per row, worked out by a function of the row (or no key: the row is not indexed). The
index is changed only through the table's own item writes, so the unit of work's undo
log, which writes the table back item by item, restores the index with it.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["IndexedTable", "SortedKeys"]

K = TypeVar("K")
V = TypeVar("V")

_LOAD = 512  # items per bucket (a bucket of twice as many is split)


class SortedKeys:
    """A sorted set of tuples in buckets (a list of sorted lists): adding, removing and
    finding a place cost ``O(log n + bucket)``, not ``O(n)`` as one sorted list would.

    Each of :meth:`add` and :meth:`discard` first tries the place after its last one (a
    hint, checked against its neighbours, so a stale one costs a few comparisons and
    changes nothing): a batch of due work adds and removes runs of neighbouring keys
    (its members' accounts, in key order, from one due instant to the next), and each
    found by bisection compared ~20 tuples.
    """

    __slots__ = ("_add_at", "_gone_at", "_len", "_lists", "_maxes")

    def __init__(self) -> None:
        self._lists: list[list[Any]] = []
        self._maxes: list[Any] = []
        self._len = 0
        self._add_at = (0, 0)  # (bucket, place) where the key after the last added goes
        self._gone_at = (0, 0)  # (bucket, place) of the key after the last discarded

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Any]:
        for items in self._lists:
            yield from items

    def _hinted(self, hint: tuple[int, int], item: Any) -> tuple[int, int] | None:
        """``hint`` if it is the (bucket, place) bisection finds for ``item``: the
        bucket's own (``item`` above the one before's max, at most its own, or the
        last bucket) and the first place in it not below ``item``; else None."""
        i, j = hint
        lists, maxes = self._lists, self._maxes
        if i >= len(maxes) or (i and not maxes[i - 1] < item) \
                or (i < len(maxes) - 1 and not item <= maxes[i]):
            return None
        items = lists[i]
        if j > len(items) or (j and not items[j - 1] < item) \
                or (j < len(items) and not item <= items[j]):
            return None
        return hint

    def add(self, item: Any) -> None:
        """Add ``item`` (nothing if it is there already)."""
        lists, maxes = self._lists, self._maxes
        if not maxes:
            lists.append([item])
            maxes.append(item)
            self._len = 1
            self._add_at = (0, 1)
            return
        found = self._hinted(self._add_at, item)
        if found is None:
            i = bisect.bisect_left(maxes, item)
            if i == len(maxes):
                i -= 1
            j = bisect.bisect_left(lists[i], item)
        else:
            i, j = found
        items = lists[i]
        if j < len(items) and items[j] == item:
            return
        items.insert(j, item)
        maxes[i] = items[-1]
        self._len += 1
        self._add_at = (i, j + 1)
        if len(items) > 2 * _LOAD:
            lists[i:i + 1] = [items[:_LOAD], items[_LOAD:]]
            maxes[i:i + 1] = [items[_LOAD - 1], items[-1]]
            self._add_at = (i, j + 1) if j + 1 <= _LOAD else (i + 1, j + 1 - _LOAD)

    def discard(self, item: Any) -> None:
        """Remove ``item`` if it is there."""
        lists, maxes = self._lists, self._maxes
        found = self._hinted(self._gone_at, item)
        if found is None:
            i = bisect.bisect_left(maxes, item)
            if i == len(maxes):
                return
            items = lists[i]
            j = bisect.bisect_left(items, item)
        else:
            i, j = found
            items = lists[i]
        if j == len(items) or items[j] != item:
            return
        del items[j]
        self._len -= 1
        self._gone_at = (i, j)
        if items:
            maxes[i] = items[-1]
        else:
            del lists[i], maxes[i]

    def after(self, low: Any) -> Iterator[Any]:
        """The items greater than ``low``, ascending (do not change the keys while
        iterating)."""
        lists, maxes = self._lists, self._maxes
        i = bisect.bisect_right(maxes, low)
        if i == len(maxes):
            return
        items = lists[i]
        yield from items[bisect.bisect_right(items, low):]
        for items in lists[i + 1:]:
            yield from items


class IndexedTable(dict[K, V], Generic[K, V]):
    """A table (``dict``) that keeps ``index``: ``key_of(key, row)`` for each row whose
    key is not None. Write it by item only (``t[k] = v``, ``del t[k]``, ``t.pop(k)``),
    as the unit of work's undo log does; the other ways to change a dict are refused.
    """

    def __init__(self, key_of: Callable[[K, V], Any | None]) -> None:
        super().__init__()
        self.key_of = key_of
        self.index = SortedKeys()

    def __setitem__(self, key: K, value: V) -> None:
        old = self.get(key)
        found = None if old is None else self.key_of(key, old)
        super().__setitem__(key, value)
        new = self.key_of(key, value)
        if new == found:  # (a row whose place stays: a lot whose hold was released)
            return
        if found is not None:
            self.index.discard(found)
        if new is not None:
            self.index.add(new)

    def __delitem__(self, key: K) -> None:
        found = self.key_of(key, self[key])
        super().__delitem__(key)
        if found is not None:
            self.index.discard(found)

    def pop(self, key: K, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)
        value = self[key]
        del self[key]
        return value

    def _refused(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("an IndexedTable is written by item only")

    update = setdefault = popitem = clear = __ior__ = _refused
