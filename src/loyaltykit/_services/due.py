"""Due work: everything that falls due with time, for every member, batch by batch.

The ledger's part (release stale holds, activate matured pending lots, expire lots)
runs here, set-based for the wallets :mod:`loyaltykit._due_bulk` covers (plain rows,
one statement per table) and through ``Ledger.catch_up`` for the others; each
capability with due work of its own adds a step (tiers: evaluate windows that ended,
record "will downgrade" notices) with :meth:`DueWork.add`, so a new capability's due
work needs no edit here.

A run reports its progress to an ``on_progress`` callable, if given, as
:class:`~loyaltykit.DueProgress` values: once the ledger's ranges are read (nothing
done yet), after each range and after each capability's step; always from the
calling thread, with counts it has at hand (no query of its own).
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from loyaltykit._collector import collector_paused
from loyaltykit._due_bulk import DueBulk
from loyaltykit._errors import InvalidInput, shown
from loyaltykit._events import DuePosted
from loyaltykit._model import Account, Kind
from loyaltykit._pipeline import Work
from loyaltykit._program import ExpiryStart
from loyaltykit._results import DueProgress, DueWorkReport
from loyaltykit._services.context import Context
from loyaltykit._services.events import POINTS_EVENTS
from loyaltykit._services.ledger import LedgerService
from loyaltykit.storage import DueChanges, long_run
from loyaltykit.storage.ledger_due_set import DueSet, DueSetStore

__all__ = ["MAX_BATCH_SIZE", "DueStep", "DueWork"]

logger = logging.getLogger("loyaltykit")

#: The most member wallets one batch of due work may take.
MAX_BATCH_SIZE = 1_000_000

#: A capability's due work: ``step(at, batch_size, workers)`` returns its counts.
DueStep = Callable[[dt.datetime, int, int], dict[str, int]]


class DueWork:
    """Runs the due work of one program (see the module docstring)."""

    def __init__(self, c: Context, ledger: LedgerService) -> None:
        self.c = c
        self._ledger = ledger
        self._steps: list[tuple[str, DueStep]] = []

    def add(self, step: DueStep, name: str) -> None:
        """Run ``step`` after the ledger's due work, in the order added; ``name`` is
        its stage in :class:`~loyaltykit.DueProgress` (the capability's)."""
        self._steps.append((name, step))

    def run_due(self, at: dt.datetime | None = None, *, batch_size: int = 500,
                workers: int = 1,
                on_progress: Callable[[DueProgress], object] | None = None
                ) -> DueWorkReport:
        """Post everything due up to ``at`` (default: now) for every member: release
        stale holds, activate matured pending lots, expire lots past their expiry;
        evaluate tiers whose window ended and record "will downgrade" notices.

        Each transaction is dated at the instant it fell due, not when the job ran.
        Idempotent and resumable: work is done in batches of ``batch_size`` member
        wallets, each its own unit of work, and a second run finds nothing to do.

        ``workers`` > 1 runs up to that many batches at once, each on its own thread
        and connection (disjoint ranges of member ids, read before the batches run):
        the ledger's part (holds, activation, expiry) and the tier evaluation of a
        large program on PostgreSQL then use the server's cores. The result is the
        same as with one worker. It needs a storage whose units of work may run
        concurrently (``storage.concurrent``; not a SQL storage bound to a host
        connection, which then works with one); on SQLite, whose writers take turns,
        it gains nothing.

        ``on_progress``, if given, is called with a :class:`~loyaltykit.DueProgress` once
        the work is counted (``done == 0``), then after each range of ``batch_size``
        member wallets and after each capability's stage (tiers, rewards, events,
        notices), always from the calling thread: enough for a progress bar or a log
        line per stage, at no cost of its own. What it raises stops the run there and
        propagates; the batches done so far stay committed, and the next run goes on
        from where this one stopped.
        """
        when = self.c.instant(at)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) \
                or not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise InvalidInput(f"batch_size must be an int in 1..{MAX_BATCH_SIZE}",
                               batch_size=batch_size)
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 64:
            raise InvalidInput("workers must be an int in 1..64", workers=workers)
        if on_progress is not None:
            _check_progress(on_progress)
        totals: dict[str, int] = {}
        members = 0
        # the cyclic collector is paused for the whole run, not batch by batch: re-enabled
        # between batches it walked each batch's new rows again and again, and now and
        # then the whole heap (full collections over every stored row, the memory
        # backend's ~10% of a run); the run's writes leave no cycles (_collector's doc)
        # (a long run: the storage may prepare for many units of work, e.g. SQLite
        # checkpoints its WAL less often meanwhile and once at the end)
        with collector_paused(), long_run(self.c.storage):
            with self.c.read() as uow:
                ends = uow.ledger.due_bounds(when, batch_size)
            stages = len(ends) + len(self._steps)
            finished = 0

            def tell(stage: str) -> None:
                if on_progress is not None:
                    on_progress(DueProgress(at=when, stage=stage, done=finished,
                                         total=stages, members=members))

            tell("ledger")
            for done, counts in self._ledger_due(when, ends, batch_size, workers):
                members += done
                for name, n in counts.items():
                    totals[name] = totals.get(name, 0) + n
                finished += 1
                tell("ledger")
            for stage, step in self._steps:
                totals.update(step(when, batch_size, workers))
                finished += 1
                tell(stage)
        report = DueWorkReport(at=when, members=members, **totals)
        level = logging.INFO if members else logging.DEBUG
        logger.log(level, "due work at %s: %s", when.isoformat(), report)
        return report

    def _ledger_due(self, when: dt.datetime, ends: list[tuple[str, str]], batch_size: int,
                    workers: int) -> Iterator[tuple[int, dict[str, int]]]:
        """The ledger's due work, range by range: the ranges of ``batch_size`` due
        wallets end at ``ends`` (read first, one statement), and run in turn or, with
        ``workers`` > 1 on a concurrent storage, at once (disjoint members: no two
        batches touch one wallet). Yield (wallets, counts) per range, in order."""
        ranges = list(zip([None, *ends], ends, strict=False))  # (after, upto]
        if workers > 1 and self.c.storage.concurrent and len(ranges) > 1:
            with ThreadPoolExecutor(min(workers, len(ranges)),
                                    thread_name_prefix="loyaltykit-due") as pool:
                yield from pool.map(
                    lambda r: self._range(when, r[0], r[1], batch_size), ranges)
            return
        for after, upto in ranges:
            yield self._range(when, after, upto, batch_size)

    def _range(self, when: dt.datetime, after: tuple[str, str] | None,
               upto: tuple[str, str], batch_size: int) -> tuple[int, dict[str, int]]:
        """Post what is due in the wallets of one range, a unit of work per batch of
        ``batch_size`` (one, unless wallets fell due since the ranges were read)."""
        members = 0
        totals: dict[str, int] = {}
        cursor: tuple[str, str] | None = after

        def batch(work: Work) -> tuple[int, dict[str, int], tuple[str, str] | None]:
            due, nxt = work.uow.ledger.due_between(when, after=cursor, upto=upto,
                                                   limit=batch_size)
            by_wallet: dict[str, list[str]] = {}
            for member_id, wallet in due:
                by_wallet.setdefault(wallet, []).append(member_id)
            counts = self._post(work, by_wallet)
            for tx in work.ledger.changes.transactions:
                _count(counts, tx.kind, tx.amount)
            return len(due), counts, nxt

        # (the cyclic collector is paused by run_due, the only caller, for the whole run)
        while True:  # a batch retried after a conflict is counted once
            done, counts, cursor = self.c.pipeline.batch(when, batch, retry=True,
                                                         what="ledger due work")
            members += done
            for name, n in counts.items():
                totals[name] = totals.get(name, 0) + n
            # a full batch ending on the range's last key leaves nothing after it: no
            # empty unit of work (a read and a commit) to find that out
            if cursor is None or cursor == upto:
                return members, totals

    def _post(self, work: Work, by_wallet: dict[str, list[str]]) -> dict[str, int]:
        """Post what is due in these wallets: set-based where :class:`DueBulk` covers
        the wallet, else through ``catch_up``, wallet after wallet in the order given
        (so ids are drawn as the per-member path draws them, and the outbox events
        come in the same order). Return the set-based part's counts."""
        done = self._set_based(work, by_wallet)
        if done is not None:
            return done
        ledger = work.ledger
        events = self.c.bus.listens(DuePosted)
        bulk = DueBulk(self.c.program, work.part(DueChanges), until=ledger.at,
                       new_id=ledger.new_id, events=events, new_ids=self.c.new_ids)
        bulk.changes.recorded_at = work.recorded_at

        def publish() -> None:
            records = bulk.take_records()
            if records:
                work.publish(DuePosted(records))

        for wallet, ids in by_wallet.items():
            books = self._ledger.books(work.uow, ledger, wallet, ids, need_lots=True,
                                       register=False)
            for book in books.values():
                if not bulk.post(book):
                    publish()  # the events before this wallet's come first
                    ledger.add_book(book)
                    ledger.catch_up(book, ledger.at)
        publish()
        return bulk.counts

    def _set_based(self, work: Work, by_wallet: dict[str, list[str]]) -> dict[str, int] | None:
        """Have the store post the whole batch itself where it can (a SQL store, every
        wallet plain: :mod:`loyaltykit.storage.ledger_due_set`), in the order
        :meth:`_post` posts it; its counts, or None (nothing written) to go on as
        before. Not with expiry counted from the activation (an activated lot's new
        expiry is the program's calendar, worked out in Python)."""
        store = work.uow.ledger
        if (self.c.program.ledger.expiry.counted_from is ExpiryStart.ACTIVATION
                or not isinstance(store, DueSetStore)):
            return None
        events = None
        if self.c.bus.listens(DuePosted):
            if not self.c.bus.only_recorded(DuePosted):
                return None  # a subscriber beyond the outbox gets its DuePosted raised
            events = _DUE_EVENTS
        return store.post_due_set(DueSet(
            wallets=[(m, wallet) for wallet, ids in by_wallet.items() for m in ids],
            until=work.ledger.at, recorded_at=work.recorded_at,
            new_ids_hex=self.c.new_ids_hex, new_ids=self.c.new_ids,
            event_types=events))


#: the outbox event type of each due transaction's kind (what the outbox records of a
#: DuePosted), as a store that posts a due batch itself is handed them
_DUE_EVENTS = {k.value: POINTS_EVENTS[k] for k in (Kind.RELEASE, Kind.ACTIVATE, Kind.EXPIRE)}


def _check_progress(on_progress: object) -> None:
    """Refuse an ``on_progress`` that cannot be called with one :class:`DueProgress`."""
    if not callable(on_progress):
        raise InvalidInput("on_progress must be callable (or None)",
                           on_progress=shown(on_progress))
    try:
        signature = inspect.signature(on_progress)
    except (TypeError, ValueError):  # no signature to check (some builtins)
        return
    try:
        signature.bind(None)
    except TypeError:
        raise InvalidInput("on_progress must take one argument (a DueProgress)",
                           on_progress=shown(on_progress)) from None


def _count(totals: dict[str, int], kind: Kind, amount: Callable[[Account], int]) -> None:
    """Add one due transaction to the report's counts."""
    name = {Kind.ACTIVATE: "activated", Kind.EXPIRE: "expired",
            Kind.RELEASE: "released"}[kind]
    unit = "holds" if kind is Kind.RELEASE else "lots"
    moved = -amount(Account.HELD) if kind is Kind.RELEASE else (
        amount(Account.EXPIRED) if kind is Kind.EXPIRE else -amount(Account.PENDING))
    totals[f"{name}_{unit}"] = totals.get(f"{name}_{unit}", 0) + 1
    totals[f"{name}_points"] = totals.get(f"{name}_points", 0) + moved
    if kind is Kind.RELEASE:
        # points a release returns to a lot past its expiry expire at once
        totals["expired_points"] = totals.get("expired_points", 0) + amount(Account.EXPIRED)
