"""The in-memory backend's state: one tables object per capability, and JSON copies.

Each store module defines the class of its own tables (``LedgerTables``, ...);
:class:`Tables` creates one of each kind on first use and keeps it for the storage's
lifetime, so a new capability brings its tables without editing a shared class.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, cast

import attrs

from loyaltykit._errors import StorageError
from loyaltykit._model import OrderRecord, ProgramVersion

__all__ = ["Tables", "UndoLog", "json_copy", "order_copy", "version_copy"]

T = TypeVar("T")


class UndoLog(Protocol):
    """What a store needs of its unit of work (:class:`~loyaltykit.memory.MemoryUnitOfWork`):
    its program and the undo-logged writes."""

    program_id: str

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Set ``table[key] = value`` (undo-logged)."""

    def drop(self, table: dict[Any, Any], key: Any) -> None:
        """Delete ``table[key]`` if present (undo-logged)."""

    def append(self, table: dict[Any, list[Any]], key: Any, value: Any) -> None:
        """Append ``value`` to the list ``table[key]`` (undo-logged)."""

    def track(self, index: dict[Any, set[Any]], key: Any, item: Any, is_open: bool) -> None:
        """Keep ``item`` in ``index[key]`` exactly while it is open (undo-logged)."""


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
        with self._lock:
            found = self._by_kind.get(kind)
            if found is None:
                found = self._by_kind[kind] = kind()
            return cast(T, found)


def json_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``value`` as the SQL backend's JSON columns give it back."""
    try:
        copy: dict[str, Any] = json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise StorageError("a value is not JSON", detail=str(exc)) from exc
    return copy


def version_copy(version: ProgramVersion) -> ProgramVersion:
    """``version`` with its definition as the SQL backend gives it back."""
    return attrs.evolve(version, definition=json_copy(version.definition))


def order_copy(order: OrderRecord) -> OrderRecord:
    """``order`` with its JSON fields as the SQL backend gives them back."""
    return attrs.evolve(order, order=json_copy(order.order), returned=json_copy(order.returned),
                        evaluation=json_copy(order.evaluation), payments=tuple(order.payments),
                        refunded=dict(order.refunded))
