"""The in-memory backend's state: one tables object per capability, and JSON copies.

Each store module defines the class of its own tables (``LedgerTables``, ...);
:class:`Tables` creates one of each kind on first use and keeps it for the storage's
lifetime, so a new capability brings its tables without editing a shared class.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, cast

import attrs

from loyaltykit._errors import StorageError
from loyaltykit._model import ProgramVersion
from loyaltykit.memory import due_events
from loyaltykit.memory.compact import pack, unpack

__all__ = ["JSONText", "KeptSet", "MemberKeys", "SMALL_SET", "Tables", "UndoLog", "json_copy",
           "json_text", "plain", "version_copy", "version_stored"]

T = TypeVar("T")
K = TypeVar("K", bound=tuple[str, ...])

#: An index's items of one key (:meth:`UndoLog.track`): a list while small, then a set.
KeptSet = list[T] | set[T]
#: The most items an index keeps in a list (looked through on each write) before a set.
SMALL_SET = 16


class UndoLog(Protocol):
    """What a store needs of its unit of work (:class:`~loyaltykit.memory.MemoryUnitOfWork`):
    its program and the undo-logged writes."""

    program_id: str

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Set ``table[key] = value`` (undo-logged)."""

    def drop(self, table: dict[Any, Any], key: Any) -> None:
        """Delete ``table[key]`` if present (undo-logged)."""

    def append(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Append ``value`` to the list (or array) ``table[key]`` (undo-logged; a new
        entry is a list)."""

    def put_many(self, table: dict[Any, Any], items: Iterable[tuple[Any, Any]]) -> None:
        """:meth:`put` of each (key, value) in turn, undo-logged as one entry."""

    def append_many(self, table: dict[Any, Any],
                    items: Iterable[tuple[Any, Any]]) -> None:
        """:meth:`append` of each (key, value) in turn, undo-logged as one entry."""

    def extend(self, table: dict[Any, Any], key: Any, values: list[Any]) -> None:
        """Extend the list ``table[key]`` (there already) by ``values`` (undo-logged as
        one entry)."""

    def close_many(self, index: dict[Any, KeptSet[Any]],
                   items: Iterable[tuple[Any, Any]]) -> None:
        """:meth:`track` of each (key, item) as no longer open, undo-logged as one
        entry."""

    def track(self, index: dict[Any, KeptSet[Any]], key: Any, item: Any,
              is_open: bool) -> None:
        """Keep ``item`` in ``index[key]`` exactly while it is open (undo-logged): see
        :meth:`~loyaltykit.memory.MemoryUnitOfWork.track`."""


class Tables:
    """Every capability's tables of one :class:`~loyaltykit.memory.MemoryStorage`."""

    def __init__(self) -> None:
        # its own lock, not the storage's: opening a unit of work or printing the
        # storage must not wait for another thread's unit of work to end
        self._lock = threading.Lock()
        self._by_kind: dict[type[Any], Any] = {}

    def of(self, kind: type[T]) -> T:
        """Return the tables of ``kind`` (a class built without arguments), created
        empty on first use."""
        found = self._by_kind.get(kind)  # created already (every unit of work but the
        if found is not None:  # first): no lock (a dict read is atomic)
            return cast(T, found)
        with self._lock:
            found = self._by_kind.get(kind)
            if found is None:
                found = self._by_kind[kind] = kind()
            return cast(T, found)


class MemberKeys:
    """The keys of a member's rows, ``(program, member)`` and ``(program, wallet,
    member)``, each one tuple shared by every table keyed by it (members, tier states,
    orders, buckets, events...), where each table kept a tuple of its own (56 bytes a
    member a table). A store passes the key of a row it adds through :meth:`shared`;
    reads look up with any equal tuple. Kept for the storage's lifetime (a key whose
    rows are gone costs its entry here)."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, ...], tuple[str, ...]] = {}

    def shared(self, key: K) -> K:
        """The one tuple equal to ``key``."""
        return cast(K, self._keys.setdefault(key, key))


#: what ``json.dumps(value, ensure_ascii=False, separators=(",", ":"))`` writes, without
#: building an encoder per call (most of the call's time for a small value)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class JSONText(bytes, Mapping[str, Any]):
    """A JSON object kept as its compact text, as a SQL backend's JSON column keeps it.

    Stored once per record (the text deflated: tens of bytes, where the dicts it stands
    for take kilobytes) and immutable, so a store may keep it and hand it around without
    copying; :meth:`value` gives a fresh dict exactly as the SQL backend's column reads
    back (tuples come back as lists, keys as strings). The Mapping methods decode the
    text on every call: for the stores' rare own reads, not for hot paths.

    It is its packed bytes (one object, where a wrapper and its bytes took two): a
    first byte of 1, then the text deflated (:mod:`loyaltykit.memory.compact`), or 0,
    then the text as UTF-8 (a text too short to gain), or 2: a due transaction's event
    payload in a fixed layout (:mod:`loyaltykit.memory.due_events`, no text kept: it
    is built when read). Only its Mapping face is meant for use: the bytes' own
    methods it does not override are not.
    """

    __slots__ = ()

    def __new__(cls, text: str, *, deflate: bool = True) -> JSONText:
        packed = pack(text) if deflate else text
        if isinstance(packed, str):
            return bytes.__new__(cls, b"\x00" + packed.encode())
        return bytes.__new__(cls, b"\x01" + packed)

    @classmethod
    def packed(cls, data: bytes) -> JSONText:
        """The JSON text whose packed bytes are ``data`` (``bytes(text)`` of one)."""
        return bytes.__new__(cls, data)

    @property
    def text(self) -> str:
        """The compact JSON text."""
        data = memoryview(self)
        if data[0] == 0:
            return bytes(data[1:]).decode()
        if data[0] in due_events.MARKS:
            return json_text(due_events.unpack(bytes(data)))
        return unpack(bytes(data[1:]))

    @classmethod
    def of(cls, value: Mapping[str, Any], *, deflate: bool = True) -> JSONText:
        """``value`` as JSON text; :class:`~loyaltykit.StorageError` if it is no JSON.
        ``deflate=False``: kept as UTF-8 (a short value of ids, which deflate would not
        shrink, without the cost of trying)."""
        if isinstance(value, JSONText):
            return value
        text = json_text(value)
        if text == "{}":
            return _EMPTY
        return cls(text, deflate=deflate)

    def value(self) -> dict[str, Any]:
        """A fresh dict of the text (the caller may change it)."""
        # (the bytes' own indexing: self[0] is the Mapping's)
        if bytes.__getitem__(self, 0) in due_events.MARKS:  # no text: the fields
            return due_events.unpack(bytes(self))
        found: dict[str, Any] = json.loads(self.text)
        return found

    def __getitem__(self, key: str) -> Any:  # type: ignore[override]
        return self.value()[key]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self.value())

    def __len__(self) -> int:
        return len(self.value())

    def __contains__(self, key: object) -> bool:
        return key in self.value()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JSONText):
            return bytes.__eq__(self, other)
        return Mapping.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return bytes.__hash__(self)

    def __repr__(self) -> str:
        return f"JSONText({self.text!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[Any, tuple[Any]]:  # copies and pickles
        if bytes.__getitem__(self, 0) in due_events.MARKS:  # the same bytes back (its
            # codes are the process's, as the outbox's type codes: kept rows do not
            # leave the process)
            return JSONText.packed, (bytes(self),)
        return JSONText, (self.text,)


_EMPTY = JSONText("{}")


def json_text(value: Mapping[str, Any]) -> str:
    """``value`` as compact JSON text (as :class:`JSONText` keeps it);
    :class:`~loyaltykit.StorageError` if it is no JSON."""
    if isinstance(value, JSONText):
        return value.text
    try:
        return _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise StorageError("a value is not JSON", detail=str(exc)) from exc


def plain(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """``value`` decoded once if it is :class:`JSONText` (else as it is): for a store's
    own reads of several keys."""
    return value.value() if isinstance(value, JSONText) else value


def json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` as the SQL backend's JSON columns give it back."""
    return JSONText.of(value).value()


def version_copy(version: ProgramVersion) -> ProgramVersion:
    """``version`` with its definition as the SQL backend gives it back."""
    return attrs.evolve(version, definition=json_copy(version.definition))


def version_stored(version: ProgramVersion) -> ProgramVersion:
    """``version`` as the store keeps it: its definition as JSON text."""
    return attrs.evolve(version, definition=JSONText.of(version.definition))
