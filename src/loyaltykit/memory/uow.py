"""The in-memory storage and its unit of work: one lock, an undo log, one store per
capability (each in its own module, with its own tables)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from loyaltykit._errors import ReadOnlyViolation
from loyaltykit._model import ProgramVersion
from loyaltykit.memory.keys import MemoryKeyStore, MemoryProgramStore, ProgramTables
from loyaltykit.memory.ledger import MemoryLedgerStore
from loyaltykit.memory.members import MemoryMemberKeyStore
from loyaltykit.memory.notices import MemoryNoticeStore
from loyaltykit.memory.orders import MemoryOrderStore
from loyaltykit.memory.outbox import MemoryOutboxStore
from loyaltykit.memory.referrals import MemoryReferralStore
from loyaltykit.memory.reports import MemoryReportStore
from loyaltykit.memory.rewards import MemoryRewardStore
from loyaltykit.memory.tables import SMALL_SET, KeptSet, Tables
from loyaltykit.memory.tiers import MemoryTierStore

if TYPE_CHECKING:
    from loyaltykit.storage import ReadingStorage, UnitOfWork

__all__ = ["MemoryStorage", "MemoryUnitOfWork"]

_MISSING = object()


class MemoryStorage:
    """Keeps every program's ledger in process memory. See :mod:`loyaltykit.memory`."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables = Tables()

    @property
    def concurrent(self) -> bool:
        """True: units of work may be opened from several threads (they take turns)."""
        return True

    def unit_of_work(self, program_id: str) -> MemoryUnitOfWork:
        """Return a unit of work for ``program_id``; use it as a context manager."""
        return MemoryUnitOfWork(self._lock, self._tables, program_id)

    def read_unit_of_work(self, program_id: str) -> MemoryUnitOfWork:
        """Return a unit of work for ``program_id`` that only reads: like any other
        (readers and writers take turns), but a write through it raises
        :class:`~loyaltykit.ReadOnlyViolation`."""
        return MemoryUnitOfWork(self._lock, self._tables, program_id, read_only=True)

    def register_program(self, version: ProgramVersion) -> None:
        """Store this version unless ``(program_id, version)`` is stored already (the
        stored one is then left as it is); an unknown program is registered first."""
        with self._lock:
            self._tables.of(ProgramTables).register(version)

    def __repr__(self) -> str:
        return f"MemoryStorage(programs={len(self._tables.of(ProgramTables).programs)})"


class MemoryUnitOfWork:
    """A unit of work of :class:`MemoryStorage` (serialised, undo-logged)."""

    def __init__(self, lock: threading.RLock, tables: Tables, program_id: str, *,
                 read_only: bool = False) -> None:
        self._lock = lock
        self.program_id = program_id
        #: True: every write (through the undo log below) raises ReadOnlyViolation
        self.read_only = read_only
        self._undo: list[Callable[[], None]] = []
        self._committed = False
        self._entered = False
        self.keys = MemoryKeyStore(self, tables)
        self.programs = MemoryProgramStore(self, tables)
        self.ledger = MemoryLedgerStore(self, tables)
        self.orders = MemoryOrderStore(self, tables)
        self.tiers = MemoryTierStore(self, tables)
        self.referrals = MemoryReferralStore(self, tables)
        self.rewards = MemoryRewardStore(self, tables)
        self.members = MemoryMemberKeyStore(self, tables)
        self.outbox = MemoryOutboxStore(self, tables)
        self.notices = MemoryNoticeStore(self, tables)
        self.reports = MemoryReportStore(self, tables)

    def __enter__(self) -> Self:
        self._lock.acquire()
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # whatever is still in the undo log was written after the last commit
            for undo in reversed(self._undo):
                undo()
        finally:
            self._undo.clear()
            self._entered = False
            self._lock.release()

    def commit(self) -> None:
        """Keep every write made so far; later writes need another commit."""
        self._undo.clear()
        self._committed = True

    # -- the undo log, written to by the stores of this package ----------------------------

    def _writing(self) -> None:
        if self.read_only:
            raise ReadOnlyViolation("a write through a read-only unit of work",
                                    program_id=self.program_id)

    def put(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Set ``table[key] = value`` (undo-logged)."""
        self._writing()
        old = table.get(key, _MISSING)
        table[key] = value

        def undo() -> None:
            if old is _MISSING:
                del table[key]
            else:
                table[key] = old

        self._undo.append(undo)

    def drop(self, table: dict[Any, Any], key: Any) -> None:
        """Delete ``table[key]`` if present (undo-logged)."""
        self._writing()
        if key not in table:
            return
        old = table.pop(key)
        self._undo.append(lambda: table.__setitem__(key, old))

    def append(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Append ``value`` to the list (or array) ``table[key]`` (undo-logged; a new
        entry is a list)."""
        self._writing()
        items = table.get(key)
        if items is None:
            self.put(table, key, [value])
            return
        items.append(value)
        self._undo.append(items.pop)

    def put_many(self, table: dict[Any, Any], items: Iterable[tuple[Any, Any]]) -> None:
        """:meth:`put` of each (key, value) in turn, undo-logged as one entry (a batch's
        thousands of rows, without a closure each)."""
        self._writing()
        olds: list[tuple[Any, Any]] = []

        def undo() -> None:
            for key, old in reversed(olds):
                if old is _MISSING:
                    del table[key]
                else:
                    table[key] = old

        self._undo.append(undo)  # first: a row that fails midway leaves none written
        get = table.get
        for key, value in items:
            olds.append((key, get(key, _MISSING)))
            table[key] = value

    def append_many(self, table: dict[Any, Any],
                    items: Iterable[tuple[Any, Any]]) -> None:
        """:meth:`append` of each (key, value) in turn, undo-logged as one entry."""
        self._writing()
        done: list[tuple[Any, Any]] = []  # (key, the list or array; None: it was new)

        def undo() -> None:
            for key, items_of in reversed(done):
                if items_of is None:
                    del table[key]
                else:
                    items_of.pop()

        self._undo.append(undo)
        for key, value in items:
            found = table.get(key)
            if found is None:
                table[key] = [value]
                done.append((key, None))
            else:
                found.append(value)
                done.append((key, found))

    def extend(self, table: dict[Any, Any], key: Any, values: list[Any]) -> None:
        """Extend the list ``table[key]`` (there already) by ``values`` (undo-logged as
        one entry: a batch's events, without a (key, list) pair each to undo)."""
        self._writing()
        items = table[key]
        size = len(items)

        def undo() -> None:
            del items[size:]

        self._undo.append(undo)
        items.extend(values)

    def close_many(self, index: dict[Any, KeptSet[Any]],
                   items: Iterable[tuple[Any, Any]]) -> None:
        """:meth:`track` of each (key, item) in turn as no longer open, undo-logged as
        one entry (a batch's released holds and emptied lots)."""
        self._writing()
        done: list[tuple[KeptSet[Any], int, Any]] = []  # (kept, place: -1 a set, item)

        def undo() -> None:
            for members, at, item in reversed(done):
                if isinstance(members, set):
                    members.add(item)
                else:
                    members.insert(at, item)

        self._undo.append(undo)
        for key, item in items:
            members = index.get(key)
            if members is None or item not in members:
                continue
            if isinstance(members, set):
                members.discard(item)
                done.append((members, -1, item))
            else:
                at = members.index(item)
                del members[at]
                done.append((members, at, item))

    def track(self, index: dict[Any, KeptSet[Any]], key: Any, item: Any,
              is_open: bool) -> None:
        """Keep ``item`` in ``index[key]`` exactly while it is open (undo-logged): a list
        while it holds at most :data:`~loyaltykit.memory.tables.SMALL_SET` items (a few
        machine words each, where a set takes a hash table per key), a set from then on;
        no entry until the first item."""
        self._writing()
        members = index.get(key)
        if members is None:
            if is_open:
                self.put(index, key, [item])
            return
        if is_open:
            if item in members:
                return
            if isinstance(members, set):
                members.add(item)
                self._undo.append(lambda: members.discard(item))
            elif len(members) < SMALL_SET:
                members.append(item)
                self._undo.append(members.pop)
            else:  # grown: a set from now on (the put restores the list)
                self.put(index, key, {*members, item})
        elif item in members:
            if isinstance(members, set):
                members.discard(item)
                self._undo.append(lambda: members.add(item))
            else:
                at = members.index(item)
                del members[at]
                self._undo.append(lambda: members.insert(at, item))

if TYPE_CHECKING:
    def _conforms(u: MemoryUnitOfWork, s: MemoryStorage) -> tuple[UnitOfWork, ReadingStorage]:
        return u, s
