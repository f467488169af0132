"""Registering a program version: checked when a facade is built, stored at the first write.

Building a facade reads the stored versions of its program and refuses a version that
conflicts with them (:class:`~loyaltykit.ProgramVersionConflict`); it writes nothing,
so it works on a read replica. The version is stored by :meth:`Registration.ensure`:
explicitly (``Loyalty.register()``, a deploy step) or just before the facade's first
write, in a unit of work of its own (on a host's connection, a SAVEPOINT of the host's
transaction: it commits or rolls back with the host's). Reads of a version never stored
see what they would see of an empty program.

One :class:`Registration` is shared by a facade and every facade bound from it
(``Loyalty.bind``). It remembers the databases where the version is known to be stored
and committed (an engine's, or a memory storage), so a facade bound to a request's
connection of such a database writes without a look first. Elsewhere (a storage it
cannot place, or a registration made inside a host's transaction, which may yet roll
back) each facade looks once, before its first write.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from loyaltykit._codes import CodeSpec, accepts_checks_of
from loyaltykit._errors import InvalidInput, ProgramVersionConflict
from loyaltykit._model import ProgramVersion
from loyaltykit._program import Program
from loyaltykit.storage import Storage, read_unit_of_work

if TYPE_CHECKING:
    import datetime as dt

    from loyaltykit._member_keys import KeyedStorage
    from loyaltykit._member_keys.unit import KeyedUnitOfWork

__all__ = ["Registration", "WritingStorage"]


class Registration:
    """Checks and stores one program version; shared by a facade and those bound from it."""

    def __init__(self, program: Program) -> None:
        self.program = program
        self._known: weakref.WeakSet[object] = weakref.WeakSet()
        self._lock = threading.Lock()

    def check(self, storage: Storage) -> bool:
        """Refuse the program if it conflicts with the versions ``storage`` keeps (see
        :func:`check_version`); True if this version is stored already. Only reads."""
        program = self.program
        with read_unit_of_work(storage, program.id) as uow:
            stored = uow.programs.program_versions()
            issued = uow.referrals.count_codes() if program.referrals is not None else 0
        check_version(program, stored)
        if issued:
            check_code_checks(program, stored)
        found = any(v.version == program.version for v in stored)
        if found:
            self._remember(storage)
        return found

    def known(self, storage: Storage) -> bool:
        """True if this version is known to be stored, committed, in ``storage``'s
        database (no look needed)."""
        place = _database(storage)[0]
        if place is None:  # a storage of its own kind: known as itself
            place = storage
        with self._lock:
            try:
                return place in self._known
            except TypeError:  # (no weak reference to it)
                return False

    def ensure(self, storage: Storage, now: Callable[[], dt.datetime]) -> None:
        """Store this version in ``storage`` unless it is known or found stored there,
        after checking it against every stored version: a refused version writes
        nothing. ``now`` tells the registration's instant."""
        if self.known(storage) or self.check(storage):
            return
        program = self.program
        storage.register_program(ProgramVersion(
            program.id, program.version, program.effective_from, program.to_dict(), now()))
        # another facade may have stored this version first, with another definition
        # (then ours was not written): compare with what is stored now
        self.check(storage)

    def _remember(self, storage: Storage) -> None:
        place, committed = _database(storage)
        if place is None:
            # a storage of another kind (a wrapper, a backend of its own) whose database
            # cannot be told: remembered as itself once its version was found stored
            place, committed = storage, True
        if committed:
            # (a storage no weak reference can point to is looked up again)
            with self._lock, contextlib.suppress(TypeError):
                self._known.add(place)


class WritingStorage:
    """The storage a facade writes through: the first unit of work it opens is preceded
    by :meth:`Registration.ensure` (once per facade, when it succeeds)."""

    def __init__(self, keyed: KeyedStorage, ensure: Callable[[], None]) -> None:
        self.inner = keyed
        self._ensure: Callable[[], None] | None = ensure

    @property
    def concurrent(self) -> bool:
        """The wrapped storage's :attr:`~loyaltykit.storage.Storage.concurrent`."""
        return self.inner.concurrent

    def unit_of_work(self, program_id: str) -> KeyedUnitOfWork:
        """A unit of work to write in; the program version is stored first if needed."""
        ensure = self._ensure
        if ensure is not None:
            ensure()
            self._ensure = None
        return self.inner.unit_of_work(program_id)

    def read_unit_of_work(self, program_id: str) -> KeyedUnitOfWork:
        """The wrapped storage's unit of work that only reads."""
        return self.inner.read_unit_of_work(program_id)

    def register_program(self, version: ProgramVersion) -> None:
        """Register a program version in the wrapped storage."""
        self.inner.register_program(version)

    def __repr__(self) -> str:
        return f"WritingStorage({self.inner!r})"


def _database(storage: Storage) -> tuple[object | None, bool]:
    """What stands for ``storage``'s database (None: unknown), and whether what its
    units of work write is committed when they end (not so on a host's connection)."""
    memory = sys.modules.get("loyaltykit.memory.uow")
    if memory is not None and isinstance(storage, memory.MemoryStorage):
        return storage, True
    sql = sys.modules.get("loyaltykit.sql.storage")  # loaded if storage is one
    if sql is not None and isinstance(storage, sql.SQLStorage):
        return storage.engine, storage.connection is None
    return None, False


def check_version(program: Program, stored: Sequence[ProgramVersion]) -> None:
    """Refuse ``program`` if its version is stored with another definition, or if it
    changes what every version of a program must keep."""
    definition = program.to_dict()
    for version in stored:
        if version.version == program.version and not _same(version, program):
            raise ProgramVersionConflict(
                "this version of the program is stored with another definition; "
                "give the changed program a new version",
                program_id=program.id, version=program.version)
        for name in ("time_zone", "currency", "wallets"):
            if version.definition.get(name) != definition[name]:
                raise ProgramVersionConflict(
                    f"versions of a program must keep its {name}",
                    program_id=program.id, version=version.version, field=name,
                    stored=version.definition.get(name), given=definition[name])


def check_code_checks(program: Program, stored: Sequence[ProgramVersion]) -> None:
    """Refuse ``program`` if its code spec would refuse the check character of codes an
    earlier version issues (the caller found codes issued)."""
    if program.referrals is None:
        return
    spec = program.referrals.code
    for version in stored:
        raw = version.definition.get("referrals")
        if version.version >= program.version:
            continue
        if not isinstance(raw, dict) or not isinstance(raw.get("code", {}), dict):
            continue
        try:
            earlier = CodeSpec.from_dict(dict(raw.get("code", {})))
        except InvalidInput:  # pragma: no cover - every stored version was a valid program
            continue
        if not accepts_checks_of(spec, earlier):
            raise ProgramVersionConflict(
                f"codes are issued and version {version.version} issues them with the "
                f"{earlier.issues_with} check character: keep accepting it with code.check_scheme "
                f"'{earlier.issues_with}' or 'damm32+mod37'",
                program_id=program.id, version=version.version, field="code.check_scheme",
                stored=earlier.check_scheme, given=spec.check_scheme)


def _same(stored: ProgramVersion, program: Program) -> bool:
    # compared as programs, not dicts: a definition stored by an older release lacks
    # fields that now have defaults
    try:
        return Program.from_dict(dict(stored.definition)) == program
    except InvalidInput:
        return False
