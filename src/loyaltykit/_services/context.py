"""What every service shares: the program, the storage, the clock and the pipeline."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from loyaltykit._activity import Retention, retention
from loyaltykit._clock import Clock
from loyaltykit._errors import InvalidInput, InvalidProgram
from loyaltykit._member_keys import KeyedStorage
from loyaltykit._pipeline import EventBus, WritePipeline
from loyaltykit._program import Program
from loyaltykit._services.registration import Registration, WritingStorage
from loyaltykit._validate import check_instant
from loyaltykit._values import new_id as _default_id
from loyaltykit.storage import Storage, UnitOfWork

__all__ = ["Context"]


class Context:
    """The wiring one facade's services share (built by :class:`~loyaltykit.Loyalty`)."""

    def __init__(self, program: Program, storage: Storage, clock: Clock, *,
                 new_id: Callable[[], uuid.UUID], max_retries: int,
                 registration: Registration | None = None,
                 versions: dict[int, Program] | None = None) -> None:
        self.program = program
        self.storage = storage
        self._given_id = new_id
        #: checks and stores the program version (shared with facades bound from this one)
        self.registration = registration if registration is not None else Registration(program)
        #: the storage as the services use it: shop ids in, member keys stored
        self.keyed = KeyedStorage(storage, new_key=lambda: self.new_id().hex)
        self.clock = clock
        self.bus = EventBus()
        # the pipeline's first write stores the program version first (if need be)
        self.pipeline = WritePipeline(
            program, WritingStorage(self.keyed, self.register), self.bus, now=self.now,
            new_id=self.new_id,
            max_retries=max_retries,
            # the default source draws many ids at once cheaper than one by one; an
            # injected one is called once per id, when it is needed, as it always was
            new_ids=_default_id.many if new_id is _default_id else None)
        # stored versions never change: parsed once
        #: parsed stored versions by number (shared with facades bound from this one)
        self.versions: dict[int, Program] = versions if versions is not None else {}
        self.versions[program.version] = program
        self._retentions: dict[int, Retention] = {}

    def new_id(self) -> uuid.UUID:
        """A new id from the id source given to the facade, checked."""
        value = self._given_id()
        if not isinstance(value, uuid.UUID):
            raise InvalidInput("new_id() must return a uuid.UUID",
                               returned=type(value).__name__)
        return value

    def new_ids(self, n: int) -> list[uuid.UUID]:
        """``n`` new ids, as ``n`` calls of :meth:`new_id` draw them (the default
        source draws them under one taking of its lock)."""
        if self._given_id is _default_id:
            return _default_id.many(n)
        return [self.new_id() for _ in range(n)]

    def new_ids_hex(self, n: int) -> bytes:
        """The ids :meth:`new_ids` draws, as their hex digits one after the other (32
        ASCII bytes an id): the default source makes no UUID object for them."""
        if self._given_id is _default_id:
            return _default_id.many_hex(n)
        return b"".join([u.bytes for u in self.new_ids(n)]).hex().encode()

    def register(self) -> None:
        """Store the program version unless it is stored already (see
        :mod:`loyaltykit._services.registration`)."""
        self.registration.ensure(self.storage, self.now)

    def now(self) -> dt.datetime:
        """The clock's now, checked (a supported instant) and in UTC."""
        return check_instant(self.clock.now(), "clock.now()")

    def instant(self, at: object, name: str = "at") -> dt.datetime:
        """``at`` checked (a supported instant) and in UTC (None: now); never later
        than now."""
        now = self.now()
        if at is None:
            return now
        value = check_instant(at, name)
        if value > now:
            raise InvalidInput(f"{name} is later than the clock's now", **{
                name: value.isoformat(), "now": now.isoformat()})
        return value

    def read(self) -> UnitOfWork:
        """A unit of work to read in (never committed): the storage's read-only one
        (on SQLite it runs alongside writers), which refuses writes."""
        return self.keyed.read_unit_of_work(self.program.id)

    def version(self, number: int, uow: UnitOfWork) -> Program:
        """The program as it was in its version ``number``."""
        # stored versions never change, so a parsed one is kept for good
        program = self.versions.get(number)
        if program is not None:
            return program
        found = [v for v in uow.programs.program_versions() if v.version == number]
        if not found:  # pragma: no cover - an order's version is stored before the order
            raise InvalidProgram("the program version is not stored", field="version",
                                 value=number)
        program = Program.from_dict(dict(found[0].definition))
        self.versions[number] = program
        return program

    def retention(self, program: Program) -> Retention:
        """What the earning counters of ``program`` (a version) keep."""
        kept = self._retentions.get(program.version)
        if kept is None:
            kept = self._retentions[program.version] = retention(program.earning)
        return kept

    @staticmethod
    def request(op: str, at: object, when: dt.datetime, **fields: Any) -> dict[str, Any]:
        """The request a write's key fingerprints. An ``at`` defaulted from the clock is
        not part of it: a retry a second later with the same key is the same request.
        ``when`` is ``at`` validated."""
        request = {"op": op, **fields}
        if at is not None:
            request["at"] = when.isoformat()
        return request
