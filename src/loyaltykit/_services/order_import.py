"""History import: a stream of orders recorded in batches, as one by one.

:meth:`OrderImport.record_orders` checks each batch of orders up front, then runs the
batch in one unit of work (:meth:`~loyaltykit._pipeline.WritePipeline.steps`): one read
of which of its orders are recorded already, if asked one of which of its members are
enrolled and the enrolment of the unknown ones, the batch's reads of its members
(:mod:`~loyaltykit._services.preload`: their accounts locked), then for
each order, in stream order, the very use case of ``record_order``
(:meth:`~loyaltykit._services.orders.OrderService.record_in`) on a fresh write of that
unit of work, whose changes the next order reads. The batch's orders are written
together (their changes merged: one statement per table), as no order reads what
another member's order changed, and a member's next order reads its member's reads as
its last order left them (kept current: see :mod:`~loyaltykit._services.preload`); an
order that reads storage for a member with changes not yet written writes them first.
In a program with referrals (an order can reward its referrer) each order is written
before the next. The batch commits at its end: a crash
loses at most the batch in progress, and running the import again skips what was
recorded (an order is idempotent by its id, as under ``record_order``'s default key).
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

import attrs

from loyaltykit._collector import collector_paused
from loyaltykit._errors import (
    InvalidInput,
    LoyaltyError,
    OrderAlreadyRecorded,
    StorageError,
    shown,
)
from loyaltykit._json import JsonForm
from loyaltykit._model import IdempotencyRecord, Member, OrderRecord
from loyaltykit._orders import Order, check_order
from loyaltykit._pipeline import Steps, Work, fingerprint
from loyaltykit._results import OrderResult, encode_order_result, encode_result
from loyaltykit._services.context import Context
from loyaltykit._services.ledger import ENROL_KEY, LedgerService
from loyaltykit._services.orders import ORDER_KEY, OrderKey, OrderService, order_request
from loyaltykit._services.preload import PRELOAD, BatchReads, ReadGuard
from loyaltykit._validate import check_member_id
from loyaltykit.storage import TierChanges, UnitOfWork, long_run

__all__ = ["DEFAULT_BATCH_SIZE", "MAX_BATCH_SIZE", "ImportResult", "OrderImport"]

#: Orders per batch (one unit of work, one commit) unless told otherwise, on a storage
#: that names no batch size of its own (see :class:`~loyaltykit.storage.BatchingStorage`).
DEFAULT_BATCH_SIZE = 500
#: The largest batch accepted (a batch's reads name all of its orders and members).
MAX_BATCH_SIZE = 10_000

Progress = Callable[[int, "int | None"], object]


@attrs.frozen
class ImportResult(JsonForm):
    """What :meth:`~loyaltykit.Loyalty.record_orders` did.

    ``recorded`` orders were recorded now, earning ``points`` in all; ``skipped`` were
    recorded already with the same content (by an earlier run, ``record_order`` or
    earlier in the stream) and were left as they are; ``enrolled`` members were
    enrolled for their orders. ``failed`` lists the orders refused, in stream order,
    each with its typed error (nothing was written for them): a member not enrolled
    (:class:`~loyaltykit.MemberNotFound`, without ``enrol``), no program version in
    force at the order's instant (:class:`~loyaltykit.InvalidOrder`), or an order id
    recorded with other content (:class:`~loyaltykit.OrderAlreadyRecorded`).
    ``batches`` counts the units of work committed.
    """

    recorded: int = 0
    skipped: int = 0
    enrolled: int = 0
    points: int = 0
    failed: tuple[tuple[str, LoyaltyError], ...] = ()
    batches: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(
            recorded=self.recorded + other.recorded, skipped=self.skipped + other.skipped,
            enrolled=self.enrolled + other.enrolled, points=self.points + other.points,
            failed=self.failed + other.failed, batches=self.batches + other.batches)


@attrs.frozen
class _Item:
    """One order of a batch, checked: the order, its instant and its request's
    fingerprint (what ``record_order`` keeps on the row under the default key)."""

    order: Order
    when: dt.datetime
    placed: dict[str, Any]
    print_: str

    @property
    def key(self) -> str:
        """The order's default key (``record_order``'s)."""
        return f"{ORDER_KEY}{self.order.id}"


class OrderImport:
    """The history import of one program (see the module docstring)."""

    def __init__(self, c: Context, ledger: LedgerService, orders: OrderService) -> None:
        self.c = c
        self.program = c.program
        self._ledger = ledger
        self._orders = orders

    def record_orders(
        self,
        orders: Iterable[Order],
        *,
        wallet: str | None = None,
        enrol: bool = False,
        batch_size: int | None = None,
        on_progress: Callable[[int, int | None], object] | None = None,
    ) -> ImportResult:
        """Record a stream of orders (a shop's order history), in batches of
        ``batch_size`` orders, each in one unit of work committed at its end (None:
        the storage's own batch size, 10,000 on SQLite and 1000 on PostgreSQL with
        :class:`~loyaltykit.sql.SQLStorage`, else :data:`DEFAULT_BATCH_SIZE`).

        The result is the one recording the orders one by one with
        :meth:`record_order` (default keys, ``wallet``) would give: each order is priced
        with the rules in force at its instant, after the orders before it in the
        stream (caps, stamp cards, first order, tiers), and a later ``record_order`` of
        the same order replays it. An order recorded already with the same content is
        skipped, so running the import again after a crash goes on where it stopped;
        one recorded with other content is refused. With ``enrol`` a member not
        enrolled is enrolled, as :meth:`enrol` would under its default key, at the
        earliest instant of its orders in the batch where it first appears (import a
        stream sorted by time, as a history is). An order refused (see
        :class:`~loyaltykit.ImportResult`'s ``failed``) writes nothing; the others are
        recorded.

        Each batch's orders are checked before it writes anything: an object that is
        no valid order (:class:`~loyaltykit.InvalidOrder`,
        :class:`~loyaltykit.CurrencyMismatch`), an instant later than now
        (:class:`~loyaltykit.InvalidInput`) raises, the batches before it staying
        committed. ``on_progress(done, total)`` is called after each batch commits,
        with the orders handled so far and the stream's length (None if it has none);
        what it raises stops the import (the committed batches stay).
        """
        wallet_ = self.program.wallet(wallet)
        if not isinstance(enrol, bool):
            raise InvalidInput("enrol must be True or False", enrol=shown(enrol))
        if batch_size is None:
            batch_size = storage_batch_size(self.c.storage)
        if (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                or not 1 <= batch_size <= MAX_BATCH_SIZE):
            raise InvalidInput(f"batch_size must be an int from 1 to {MAX_BATCH_SIZE}",
                               batch_size=shown(batch_size))
        if on_progress is not None:
            _check_progress(on_progress)
        if isinstance(orders, Order | str | bytes) or not isinstance(orders, Iterable):
            raise InvalidInput("orders must be an iterable of Orders", orders=shown(orders))
        total = len(orders) if isinstance(orders, Sized) else None
        result, done = ImportResult(), 0
        # (a long run: the storage may prepare for many units of work, e.g. SQLite
        # checkpoints its WAL less often meanwhile and once at the end)
        with long_run(self.c.storage):
            for batch in _batches(iter(orders), batch_size):
                # a batch's checked orders and changes live until it writes: the cyclic
                # collector, paused, does not walk them again and again meanwhile (it
                # ran while the orders were checked: a tenth of what checking cost).
                # The shop's stream is read with it running, as the shop's code expects.
                with collector_paused():
                    items = [self._check(order, wallet_, enrol) for order in batch]
                    result += self.c.pipeline.steps(
                        functools.partial(self._batch, items=items, wallet_=wallet_,
                                          enrol=enrol),
                        what="record_orders")
                done += len(items)
                if on_progress is not None:
                    on_progress(done, total)
        return result

    def _check(self, order: object, wallet_: str, enrol: bool) -> _Item:
        order = check_order(self.program.currency, order)
        if enrol:  # an unknown member is enrolled: refused as enrol refuses its id
            self._ledger.check_new_member(order.member_id)
        else:
            check_member_id(order.member_id)
        when = self.c.instant(order.placed_at, "placed_at")
        placed = order.to_dict()
        return _Item(order, when, placed, fingerprint(order_request(placed, wallet_)))

    def _batch(self, steps: Steps, items: list[_Item], wallet_: str,
               enrol: bool) -> ImportResult:
        uow = steps.uow
        stored = {r.order_id: r for r in uow.orders.get_orders([i.order.id for i in items])}
        recorded: dict[str, str] = {}  # order id -> fingerprint, recorded in this batch
        failed: list[tuple[str, LoyaltyError]] = []  # in stream order, as met below
        skipped = 0

        def repeated(item: _Item) -> bool:
            """True if the order's id is recorded (skipped, or refused: other content)."""
            nonlocal skipped
            order_id = item.order.id
            if order_id not in recorded and order_id not in stored:
                return False
            if self._same(uow, stored.get(order_id), recorded.get(order_id), item):
                skipped += 1
            else:
                failed.append((order_id, OrderAlreadyRecorded(
                    "an order with this id is already recorded", order_id=order_id)))
            return True

        todo = [item for item in items if item.order.id not in stored]
        members = list(dict.fromkeys(item.order.member_id for item in todo))
        first: dict[str, dt.datetime] = {}  # an unknown member's earliest instant
        enrolled: Work | None = None
        if enrol:
            # which members are enrolled (the batch's reads below lock their accounts)
            known = uow.ledger.lock_accounts(self.program.default_wallet, members)
            for item in todo:
                member_id = item.order.member_id
                if member_id not in known:
                    first[member_id] = min(item.when, first.get(member_id, item.when))
            if first:
                enrolled = self._enrol(steps, first)
        # what the orders' use case reads of their members, for all of them at once; the
        # members enrolled just now are not written yet: their reads are the enrolment's
        # (their rows are inserted with their orders' final states, not inserted, read
        # back and updated)
        default = self.program.default_wallet
        reads = BatchReads.read(
            uow, members, sorted({wallet_, default}), tiers=self.program.tiers is not None,
            inserted=enrolled.ledger.changes if enrolled is not None else None,
            inserted_tiers=enrolled.changed(TierChanges) if enrolled is not None else None)
        reading: list[str] = [""]  # the member of the order being recorded

        def before_read() -> None:
            if reading[0] in steps.deferred_members:
                steps.flush()  # this order reads what the deferred ones changed

        guard = ReadGuard(uow, before_read).unit_of_work
        points = 0
        done = 0
        # a referral's reward touches the referrer: then every order is written at once
        together = self.program.referrals is None
        for item in items:
            if repeated(item):  # recorded before, or earlier in this batch
                continue
            reading[0] = item.order.member_id
            try:  # the step only reads: its changes are written by flush, below
                outcome = self._record(steps, item, wallet_, reads, guard)
            except StorageError:  # the unit of work's own trouble: the batch stops
                raise
            except LoyaltyError as exc:  # a refusal: nothing of it is written
                failed.append((item.order.id, exc))
                continue
            if not together:
                steps.flush()
            recorded[item.order.id] = item.print_
            points += outcome.points
            done += 1
        return ImportResult(recorded=done, skipped=skipped, enrolled=len(first), points=points,
                            failed=tuple(failed), batches=1)

    @staticmethod
    def _same(uow: UnitOfWork, stored: OrderRecord | None, now: str | None,
              item: _Item) -> bool:
        """True if the order recorded under this id is this one (same request), as
        ``record_order`` under the default key decides it."""
        if now is not None:
            return now == item.print_
        assert stored is not None
        try:
            record = OrderKey(item.order.id).record_of(uow, item.key, stored)
        except OrderAlreadyRecorded:  # recorded under another key
            return False
        return record.fingerprint == item.print_

    def _record(self, steps: Steps, item: _Item, wallet_: str, reads: BatchReads,
                guard: UnitOfWork) -> OrderResult:
        """Record one order of the batch in a step of its own, reading its member's
        reads (kept current for the next order of the member) and, through ``guard``,
        storage."""
        order = item.order
        member_id = order.member_id
        holder = OrderKey(order.id)
        taken = reads.take(member_id)

        def keep(work: Work, result: OrderResult) -> None:
            holder.keep(work, item.print_, encode_order_result(result))
            reads.advance(member_id, taken, work.ledger.changes, work.changed(TierChanges))

        def step(work: Work) -> OrderResult:
            work.uow = guard  # its reads of storage (and its hooks') see what it must
            if taken is not None:
                work.scratch[PRELOAD] = taken
            return self._orders.record_in(work, order, member_id, wallet_, item.when,
                                          placed=item.placed)

        try:
            return steps.run(item.when, item.key, step, keep=keep)
        except LoyaltyError:  # nothing of it is written: its reads still stand
            if taken is not None:
                reads.put(taken)
            raise

    def _enrol(self, steps: Steps, first: dict[str, dt.datetime]) -> Work:
        """Enrol the members ``first`` names, each at its instant, as :meth:`enrol`
        would under its default key, in one write: the enrolments' use case adds each
        member to that write's changes (the subscribers gather them alike), and each
        member's key keeps its own record. An enrolment posts nothing, so the write's
        own instant and key are no enrolment's. Returns that write (not written yet:
        its changes are the new members' reads)."""
        done: list[Work] = []

        def step(work: Work) -> list[Member]:
            return [self._ledger.enrol_in(work, member_id, when, {})
                    for member_id, when in first.items()]

        def keep(work: Work, members: list[Member]) -> list[IdempotencyRecord]:
            done.append(work)
            return [IdempotencyRecord(
                key=f"{ENROL_KEY}{m.member_id}",
                fingerprint=fingerprint(self._ledger.enrol_request(
                    m.member_id, m.enrolled_at, m.enrolled_at, {})),
                result=encode_result(m), created_at=work.recorded_at, member_id=m.member_id)
                for m in members]

        steps.run(min(first.values()), None, step, keep=keep)
        return done[0]


def storage_batch_size(storage: object) -> int:
    """The orders per batch ``storage`` names (its ``import_batch_size``, see
    :class:`~loyaltykit.storage.BatchingStorage`), or :data:`DEFAULT_BATCH_SIZE`; a
    size out of range is the backend's bug, refused as bad input would be."""
    size = getattr(storage, "import_batch_size", None)
    if size is None:
        return DEFAULT_BATCH_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_BATCH_SIZE:
        raise InvalidInput(f"the storage's import_batch_size must be an int from 1 to "
                           f"{MAX_BATCH_SIZE}", import_batch_size=shown(size))
    return size


def _check_progress(on_progress: object) -> None:
    """Refuse an ``on_progress`` that cannot be called with ``(done, total)`` (it is
    first called after a batch committed)."""
    if not callable(on_progress):
        raise InvalidInput("on_progress must be callable", on_progress=shown(on_progress))
    try:
        signature = inspect.signature(on_progress)
    except (TypeError, ValueError):  # no signature to check (some builtins)
        return
    try:
        signature.bind(0, None)
    except TypeError:
        raise InvalidInput("on_progress must take (done, total)",
                           on_progress=shown(on_progress)) from None


def _batches(orders: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for order in orders:
        batch.append(order)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
