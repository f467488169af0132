"""The write pipeline: the one place that opens a unit of work to write.

:meth:`WritePipeline.run` takes a use case's ``apply`` and does the rest: check the
idempotency key (replay the stored result, or refuse a different request under it),
open the unit of work, build the :class:`Work` the use case writes through, publish
its domain events to the subscribers (same unit of work), run the hooks subscribers
left for just before commit, write every change part to its store (the key's record
first, then the ledger's part, then the others in the order they were first
touched), commit, and retry the whole on a serialization failure or a lost unique
race (with jittered backoff). :meth:`WritePipeline.batch` is the same without a key,
for due work; :meth:`WritePipeline.steps` runs several writes, each its own
:class:`Work`, in one unit of work (a history import's batch of orders).

Services never open a write unit of work themselves; a new capability brings its
change part (:class:`~loyaltykit.storage.ChangePart`) and its subscribers, and this
module does not change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

from loyaltykit._errors import (
    DuplicateKey,
    IdempotencyConflict,
    InvalidInput,
    LoyaltyError,
    RetryLimitExceeded,
    SerializationFailure,
)
from loyaltykit._events import PointsPosted
from loyaltykit._ledger import Ledger
from loyaltykit._ledger_book import Expiries
from loyaltykit._merge import merge
from loyaltykit._model import IdempotencyRecord, Transaction
from loyaltykit._program import Program
from loyaltykit._results import decode_result, encode_result
from loyaltykit._values import json_bytes
from loyaltykit._waiting import wait
from loyaltykit.storage import ChangePart, LedgerChanges, Storage, UnitOfWork

__all__ = ["EventBus", "KeyHolder", "Steps", "Work", "WritePipeline", "fingerprint"]

logger = logging.getLogger("loyaltykit")

R = TypeVar("R")
E = TypeVar("E")
P = TypeVar("P", bound=ChangePart)

#: How many codes a write draws before giving up on a crowded keyspace.
MAX_DRAWS = 64
#: Ids a batch of writes (:class:`Steps`) draws at a time.
POOLED = 256


def fingerprint(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request's canonical JSON (keys sorted)."""
    return hashlib.sha256(json_bytes(request, sort_keys=True, default=str)).hexdigest()


Handler = Callable[["Work", Any], None]


class EventBus:
    """Subscribers by event type, called in the order they subscribed."""

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = {}
        # per event type, how many subscribers do more than record it in the outbox
        self._reacting: dict[type, int] = {}

    def subscribe(self, event_type: type[E], handler: Callable[[Work, E], None], *,
                  records: bool = False) -> None:
        """Call ``handler(work, event)`` for every event of ``event_type`` raised.
        ``records``: the handler only appends the event to the outbox (a store that
        writes such events itself may then skip raising them: :meth:`only_recorded`)."""
        self._handlers.setdefault(event_type, []).append(handler)
        if not records:
            self._reacting[event_type] = self._reacting.get(event_type, 0) + 1

    def publish(self, work: Work, event: object) -> None:
        """Hand ``event`` to its subscribers now, inside ``work``'s unit of work."""
        for handler in self._handlers.get(type(event), ()):
            handler(work, event)

    def listens(self, event_type: type) -> bool:
        """True if anything subscribes to ``event_type``."""
        return bool(self._handlers.get(event_type))

    def only_recorded(self, event_type: type) -> bool:
        """True if something subscribes to ``event_type`` and every subscriber only
        records it in the outbox: a store that appends those outbox events itself may
        then raise none (no other subscriber would miss one)."""
        return bool(self._handlers.get(event_type)) and not self._reacting.get(event_type)


class Work:
    """One write in progress: its unit of work, the ledger it posts through, the change
    parts of the other capabilities, and the event bus of its subscribers.

    The request's business instant, the clock's now when the attempt began
    (:attr:`recorded_at`), the id source and the idempotency key (None for due work) are
    the :attr:`ledger`'s.
    """

    def __init__(self, uow: UnitOfWork, program: Program, bus: EventBus, *,
                 at: dt.datetime, recorded_at: dt.datetime,
                 new_id: Callable[[], uuid.UUID], key: str | None,
                 expiries: Expiries | None = None) -> None:
        self.uow = uow
        self._bus = bus
        posted = _Posted(self) if bus.listens(PointsPosted) else None
        self.ledger = Ledger(program, at=at, recorded_at=recorded_at, new_id=new_id,
                             key=key, on_posted=posted, expiries=expiries)
        self._parts: dict[type, ChangePart] = {}
        self._hooks: dict[object, Callable[[Work], None]] = {}
        #: per-capability scratch space for this write (e.g. rows already read)
        self.scratch: dict[str, Any] = {}

    @property
    def recorded_at(self) -> dt.datetime:
        """The clock's now when this attempt began (every row it writes carries it)."""
        return self.ledger.recorded_at

    def part(self, kind: type[P]) -> P:
        """This write's change part of ``kind`` (created empty on first use)."""
        found = self._parts.get(kind)
        if found is None:
            found = self._parts[kind] = kind()
        assert isinstance(found, kind)
        return found

    def changed(self, kind: type[P]) -> P | None:
        """This write's change part of ``kind`` if it has one (None: it touched none)."""
        found = self._parts.get(kind)
        assert found is None or isinstance(found, kind)
        return found

    def publish(self, event: object) -> None:
        """Raise a domain event: its subscribers run now, in this unit of work."""
        self._bus.publish(self, event)

    def before_commit(self, owner: object, hook: Callable[[Work], None]) -> None:
        """Run ``hook(work)`` once, after the use case and before anything is written
        (a second call with the same ``owner`` keeps the first hook)."""
        self._hooks.setdefault(owner, hook)

    def _close(self) -> None:
        """Run the before-commit hooks, then finalise the ledger's running totals."""
        while self._hooks:  # a hook may leave another
            owner = next(iter(self._hooks))
            self._hooks.pop(owner)(self)
        self.ledger.finish()

    def _write(self, record: IdempotencyRecord | None) -> None:
        _write(self.uow, [record] if record is not None else [], self.ledger.changes,
               self._parts.values())


class _Posted:
    """The ledger's ``on_posted`` of a :class:`Work`: publishes :class:`PointsPosted` to
    the work's subscribers. It holds the work weakly, so a work and its ledger form no
    reference cycle and a write's objects are freed when it ends (without the cyclic
    garbage collector, whose collections cost single writes a tenth of their time)."""

    __slots__ = ("_work",)

    def __init__(self, work: Work) -> None:
        self._work = weakref.ref(work)

    def __call__(self, tx: Transaction) -> None:
        work = self._work()
        if work is None:  # pragma: no cover - a ledger posts only during its work
            raise RuntimeError("a ledger posted after its write ended")
        work._bus.publish(work, PointsPosted(tx))


def _write(uow: UnitOfWork, records: list[IdempotencyRecord], ledger: LedgerChanges,
           parts: Iterable[ChangePart]) -> None:
    """Write a write's changes: the keys' records first, then the ledger's part, then
    the others in the order given (first touched)."""
    if records:
        uow.keys.write(records)
    if not ledger.empty:
        uow.ledger.write(ledger)
    for part in parts:
        if not part.empty:
            part.write_to(uow)


class KeyHolder(Protocol):
    """A use case whose own row keeps its idempotency record (an order under its
    default key): the pipeline writes optimistically, without reading the key first,
    and the row's unique id catches a repeat."""

    def lookup(self, uow: UnitOfWork, key: str) -> IdempotencyRecord | None:
        """The record kept for ``key``, or None."""

    def keep(self, work: Work, fingerprint: str, result: str) -> None:
        """Keep the request's fingerprint and encoded result on the row."""


class Steps:
    """Several writes in one unit of work (see :meth:`WritePipeline.steps`)."""

    def __init__(self, pipeline: WritePipeline, uow: UnitOfWork) -> None:
        self._pipeline = pipeline
        #: the unit of work every step writes to (for set-based reads between steps)
        self.uow = uow
        # a batch's writes draw thousands of ids: a few hundred at a time where the
        # source can (a tenth of what drawing them one by one cost), inside the unit of
        # work, so they still sort after any write committed before it
        self._new_id = (pipeline.new_id if pipeline.new_ids is None
                        else _IdPool(pipeline.new_ids))
        # the steps' lot expiries, each start's worked out once for all of them (a
        # time-zone calculation per order, else: most orders of a batch share a day)
        self._expiries = Expiries(pipeline.program)
        # what each deferred step writes (its records, ledger changes and other parts),
        # not the step's Work: its ledger's books, scratch and hooks are freed as soon
        # as the step ends, so a batch holds only its changes until it is written
        self._deferred: list[tuple[list[IdempotencyRecord], LedgerChanges,
                                   list[ChangePart]]] = []
        #: the members whose accounts the deferred steps changed (see :meth:`run`)
        self.deferred_members: set[str] = set()

    def run(self, at: dt.datetime, key: str | None, step: Callable[[Work], R], *,
            keep: Callable[[Work, R], IdempotencyRecord | list[IdempotencyRecord] | None]
            | None = None) -> R:
        """Run ``step`` on a fresh :class:`Work` of this unit of work, dated ``at`` with
        the idempotency ``key`` its transactions carry, and run its hooks. Its changes,
        with the keys' records that ``keep(work, result)`` returns (one, a list for a
        step that does the work of several keys, or None: kept on a row, as a
        :class:`KeyHolder` does), wait to be written (not committed) merged with
        those of the next steps (one statement per table: see :mod:`loyaltykit._merge`)
        by :meth:`flush`, which the batch's end calls too. A step that raises writes
        nothing, as long as it only reads before returning (every use case does: its
        changes are written after it). A step must not read what the steps before it
        changed and not yet written: the caller flushes before a step of a member in
        :attr:`deferred_members`."""
        work = self._pipeline._work(self.uow, at, key, self._new_id, self._expiries)
        result = step(work)
        work._close()
        kept = keep(work, result) if keep is not None else None
        changes = work.ledger.changes
        self._deferred.append((kept if isinstance(kept, list)
                               else [kept] if kept is not None else [],
                               changes, list(work._parts.values())))
        self.deferred_members.update(m for m, _ in changes.accounts)
        self.deferred_members.update(m.member_id for m in changes.members)
        return result

    def flush(self) -> None:
        """Write the deferred steps' changes: merged, one part per store, when every
        kind merges; else step by step."""
        deferred, self._deferred = self._deferred, []
        self.deferred_members = set()
        if not deferred:
            return
        parts: dict[type, list[ChangePart]] = {}
        for _, _, step_parts in deferred:
            for part in step_parts:
                if not part.empty:
                    parts.setdefault(type(part), []).append(part)
        ledger = merge([changes for _, changes, _ in deferred])
        merged = [merge(found) for found in parts.values()]
        whole = [m for m in merged if m is not None]
        if ledger is None or len(whole) < len(merged):  # a kind that does not merge
            for records, changes, step_parts in deferred:
                _write(self.uow, records, changes, step_parts)
        else:
            _write(self.uow, [r for records, _, _ in deferred for r in records], ledger,
                   whole)


class _IdPool:
    """An id source handing out ids drawn :data:`POOLED` at a time, in order."""

    __slots__ = ("_drawn", "_new_ids")

    def __init__(self, new_ids: Callable[[int], list[uuid.UUID]]) -> None:
        self._new_ids = new_ids
        self._drawn: list[uuid.UUID] = []

    def __call__(self) -> uuid.UUID:
        drawn = self._drawn
        if not drawn:
            drawn = self._drawn = self._new_ids(POOLED)
            drawn.reverse()  # popped from the end: in the order drawn
        return drawn.pop()


class WritePipeline:
    """Runs writes for one program on one storage; see the module docstring."""

    def __init__(self, program: Program, storage: Storage, bus: EventBus, *,
                 now: Callable[[], dt.datetime], new_id: Callable[[], uuid.UUID],
                 max_retries: int,
                 new_ids: Callable[[int], list[uuid.UUID]] | None = None) -> None:
        self.program = program
        self.storage = storage
        self.bus = bus
        self.now = now
        self.new_id = new_id
        #: ``n`` ids as ``n`` calls of ``new_id`` would draw them, cheaper (None: none)
        self.new_ids = new_ids
        self.max_retries = max_retries
        #: key prefixes kept for a use case's default keys (``"order:"``)
        self.reserved: dict[str, str] = {}

    def reserve(self, prefix: str, owner: str) -> None:
        """Keep keys starting with ``prefix`` for ``owner``'s default keys."""
        self.reserved[prefix] = owner

    def run(
        self,
        key: str,
        request: dict[str, Any],
        at: dt.datetime,
        member_id: str | None,
        apply: Callable[[Work], R],
        *,
        encode: Callable[[R], str] | None = None,
        replay: Callable[[UnitOfWork, str], R] | None = None,
        holder: KeyHolder | None = None,
        on_duplicate: Callable[[DuplicateKey], LoyaltyError | None] | None = None,
        redraw: str | None = None,
    ) -> R:
        """Run ``apply`` in a unit of work under the idempotency ``key``. The result is
        stored for replay with :func:`encode_result`, or with ``encode`` whose
        ``replay`` rebuilds it from the stored text (reading what was left out).

        With ``holder`` the use case's own row keeps the key's record (see
        :class:`KeyHolder`); other writes may not use a reserved key prefix.
        ``on_duplicate`` turns a unique violation that no retry resolves into the
        error to raise (None: retry). With ``redraw``, a unique violation whose details
        name that field (a drawn code that is taken) runs ``apply`` again, which draws
        another, up to :data:`MAX_DRAWS` times; those are not retries of a conflict."""
        if holder is None:
            for prefix, owner in self.reserved.items():
                if key.startswith(prefix):
                    raise InvalidInput(f"keys starting with {prefix!r} are kept for "
                                       f"{owner}'s default key", key=key)
        print_ = fingerprint(request)
        # A key holder is written optimistically, without a read first: its row's unique
        # id catches a repeat, and only then (or when the request is refused: a repeat
        # replays whatever holds now) is the row looked up, to replay or refuse the
        # request. That switch is not a retry.
        optimistic = holder is not None
        attempt = draws = 0
        while True:
            try:
                with self.storage.unit_of_work(self.program.id) as uow:
                    if holder is None:
                        record = uow.keys.get_idempotency(key)
                    elif optimistic:
                        record = None
                    else:
                        record = holder.lookup(uow, key)
                    if record is not None:
                        if record.fingerprint != print_:
                            raise IdempotencyConflict(
                                "idempotency key reused for a different request",
                                key=key, operation=request.get("op"),
                            )
                        if replay is not None:
                            return replay(uow, record.result)
                        replayed: R = decode_result(record.result)
                        return replayed
                    work = self._work(uow, at, key)
                    result = apply(work)
                    work._close()
                    encoded = encode_result(result) if encode is None else encode(result)
                    own = None
                    if holder is None:
                        own = IdempotencyRecord(
                            key=key, fingerprint=print_, result=encoded,
                            created_at=work.recorded_at, member_id=member_id)
                    else:
                        holder.keep(work, print_, encoded)
                    work._write(own)
                    uow.commit()
                    return result
            except SerializationFailure as exc:
                logger.debug("%s on %s, retrying", exc.details.get("sqlstate"),
                             request.get("op"))
                self.backoff(attempt)
            except LoyaltyError as exc:
                if optimistic:  # a repeat (duplicate row id) or a refusal: look it up
                    optimistic = False
                    continue
                if not isinstance(exc, DuplicateKey):
                    raise
                if redraw is not None and redraw in exc.details:
                    draws += 1
                    logger.debug("drawn %s %s is taken, drawing another", redraw,
                                 exc.details[redraw])
                    if draws >= MAX_DRAWS:
                        raise RetryLimitExceeded(
                            f"every {redraw} drawn was taken: the {redraw} spec's keyspace "
                            "is nearly used up", key=key, draws=draws) from None
                    continue
                refused = on_duplicate(exc) if on_duplicate is not None else None
                if refused is not None:
                    raise refused from None
                logger.debug("unique conflict on %s, retrying", request.get("op"))
            attempt += 1
            if attempt > self.max_retries:
                raise RetryLimitExceeded("write kept conflicting", key=key,
                                         operation=request.get("op"),
                                         attempts=self.max_retries + 1)

    def batch(self, at: dt.datetime, apply: Callable[[Work], R], *,
              retry: bool = False, what: str = "due work") -> R:
        """Run ``apply`` in a unit of work of its own without an idempotency key (a
        batch of due work, which is idempotent by what it finds), publish, write and
        commit. With ``retry`` a serialization failure runs the batch again."""
        attempt = 0
        while True:
            try:
                with self.storage.unit_of_work(self.program.id) as uow:
                    work = self._work(uow, at, None)
                    result = apply(work)
                    work._close()
                    work._write(None)
                    uow.commit()
                    return result
            except SerializationFailure:
                if not retry:
                    raise
                self.backoff(attempt)
            attempt += 1
            if attempt > self.max_retries:
                raise RetryLimitExceeded(f"{what} kept conflicting",
                                         attempts=self.max_retries + 1)

    def steps(self, apply: Callable[[Steps], R], *, what: str) -> R:
        """Run ``apply`` in a unit of work of its own without a key of its own: it runs
        any number of writes through :meth:`Steps.run`, written (not committed) by
        :meth:`Steps.flush`, and everything is written and committed together when
        ``apply`` returns.
        A serialization failure or a lost unique race runs the whole of ``apply`` again
        (its reads then see the winner's rows): ``apply`` must decide what to write from
        what it reads, as due work does."""
        attempt = 0
        while True:
            try:
                with self.storage.unit_of_work(self.program.id) as uow:
                    steps = Steps(self, uow)
                    result = apply(steps)
                    steps.flush()
                    uow.commit()
                    return result
            except SerializationFailure:
                self.backoff(attempt)
            except DuplicateKey:
                logger.debug("unique conflict in %s, retrying", what)
            attempt += 1
            if attempt > self.max_retries:
                raise RetryLimitExceeded(f"{what} kept conflicting",
                                         attempts=self.max_retries + 1)

    def _work(self, uow: UnitOfWork, at: dt.datetime, key: str | None,
              new_id: Callable[[], uuid.UUID] | None = None,
              expiries: Expiries | None = None) -> Work:
        """A write's Work, its ids from ``new_id`` (default: the pipeline's source), its
        lot expiries from ``expiries`` (default: its own)."""
        return Work(uow, self.program, self.bus, at=at, recorded_at=self.now(),
                    new_id=self.new_id if new_id is None else new_id, key=key,
                    expiries=expiries)

    @staticmethod
    def backoff(attempt: int) -> None:
        """Sleep a jittered, exponentially growing moment, so retried writers do not
        collide again in step (or hand the pause to the context's waiter: see
        :mod:`loyaltykit._waiting`)."""
        wait(attempt)
