"""The due-work part of the ledger contract: stale holds, matured pending lots and
expiries posted range by range, with one worker or several.
"""

from __future__ import annotations

import datetime as dt
import threading

from loyaltykit import DueProgress, DueWorkReport, ExpiryPolicy, ExpiryStart, Loyalty, Storage
from loyaltykit.testing.contract.base import HOLD_TTL as _TTL
from loyaltykit.testing.contract.base import (
    ContractPart,
    LoyaltyFactory,
    Shop,
    berlin,
    make_program,
    statement_lines,
)

__all__ = ["LedgerDueContract"]


def due_shop(storage: Storage, program_id: str, members: int, *,
             factory: LoyaltyFactory = Loyalty) -> tuple[Shop, list[str]]:
    """A shop whose ``members`` members each have due work of their own on 1 February
    2026: a lot past its expiry, a pending lot that matured, most of them a stale
    hold, and every third one an expired lot in a second wallet (its facade built by
    ``factory``)."""
    shop = Shop(storage, make_program(
        program_id, wallets=("points", "credits"),
        expiry=ExpiryPolicy(days=30, counted_from=ExpiryStart.ACTIVATION)),
        start=berlin(2026, 1, 1, 10), factory=factory)
    ids = [f"m{i:03d}" for i in range(members)]
    for i, m in enumerate(ids):
        shop.enrol(m)
        shop.loyalty.earn(m, 10 + i, key=f"old-{m}")  # expires on 31 January
        if i % 3 == 0:
            shop.loyalty.earn(m, 5, key=f"credits-{m}", wallet="credits")
        if i % 4:
            shop.loyalty.hold(m, 1 + i % 7, key=f"hold-{m}", ttl=_TTL)
        shop.loyalty.earn(m, 100 + i, key=f"new-{m}",
                          activates_at=berlin(2026, 1, 10 + i % 5, 10))
    shop.go(2026, 2, 1, 10)
    return shop, ids


def due_ranges(storage: Storage, program_id: str, at: dt.datetime, every: int
               ) -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """The accounts due by ``at`` (stored keys), and what run_due's ranges of
    ``every`` read of them: due_bounds' ranges, each read by due_between in batches of
    ``every``."""
    with storage.unit_of_work(program_id) as uow:
        everything = uow.ledger.due_accounts(at, after=None, limit=10_000)
        ends = uow.ledger.due_bounds(at, every)
        ranges = []
        for after, upto in zip([None, *ends], ends, strict=False):
            found: list[tuple[str, str]] = []
            cursor = after
            while True:
                batch, cursor = uow.ledger.due_between(at, after=cursor, upto=upto,
                                                       limit=every)
                found += batch
                if cursor is None:
                    break
            ranges.append(found)
    return everything, ranges


class LedgerDueContract(ContractPart):
    """Ledger due work on a backend: part of :class:`LedgerContract`."""

    def test_due_work_in_parallel_ranges_equals_one_worker(self, storage: Storage) -> None:
        """run_due(workers=3) over many ranges of member wallets releases, activates
        and expires what one worker does, with the same counts (on a storage that
        cannot run units of work at once, it runs them in turn)."""
        outcomes = []
        for workers in (1, 3):
            shop, ids = due_shop(storage, f"due-{workers}", 12,
                                 factory=self.make_loyalty)
            ranges = due_ranges(storage, f"due-{workers}", shop.clock.now(), 2)
            # 12 points wallets and 4 credits wallets: 8 ranges of 2, every due wallet
            # in exactly one, in key order
            assert [2] * 8 == [len(r) for r in ranges[1]]
            assert ranges[0] == [key for r in ranges[1] for key in r]
            report = shop.loyalty.run_due(batch_size=2, workers=workers)
            again = shop.loyalty.run_due(batch_size=2, workers=workers)
            assert DueWorkReport(at=again.at) == again  # nothing left to do
            shop.check(*ids)
            outcomes.append((
                report,
                {(m, w): (shop.balance(m, wallet=w),
                          [(line.kind, line.points, line.occurred_at)
                           for line in statement_lines(shop.loyalty, m, wallet=w)],
                          [(lot.amount, lot.remaining, lot.pending, lot.expires_at)
                           for lot in shop.loyalty.lots(m, wallet=w)])
                 for m in ids for w in ("points", "credits")},
            ))
        assert outcomes[0] == outcomes[1]
        report = outcomes[0][0]
        assert 16 == report.members  # each due wallet counted once
        assert (12, 9, 16) == (report.activated_lots, report.released_holds,
                               report.expired_lots)

    def test_due_bounds_cut_the_due_wallets_into_ranges(self, storage: Storage) -> None:
        shop, _ = due_shop(storage, "bounds", 5, factory=self.make_loyalty)
        when = shop.clock.now()
        with storage.unit_of_work("bounds") as uow:  # stored keys: the cursors' terms
            everything = uow.ledger.due_accounts(when, after=None, limit=100)
            assert 7 == len(everything)  # 5 points wallets, 2 credits wallets
            ends = uow.ledger.due_bounds(when, 3)
            assert [everything[2], everything[5], everything[6]] == ends
            assert ([], None) == uow.ledger.due_between(
                when, after=ends[2], upto=ends[2], limit=3)
            assert (everything[3:5], everything[4]) == uow.ledger.due_between(
                when, after=ends[0], upto=ends[1], limit=2)
            assert (everything[3:6], None) == uow.ledger.due_between(
                when, after=ends[0], upto=ends[1], limit=4)
            assert (everything[:3], everything[2]) == uow.ledger.due_between(
                when, after=None, upto=ends[0], limit=3)
            assert [everything[-1]] == uow.ledger.due_bounds(when, 7)
            assert [] == uow.ledger.due_bounds(berlin(2026, 1, 1, 9), 3)

    def test_due_work_reports_its_progress(self, storage: Storage) -> None:
        """run_due(on_progress=) is told the work once counted, after each range of
        batch_size wallets (with the wallets so far) and after each capability's
        stage, from the calling thread, with one worker or several."""
        seen: list[DueProgress] = []
        threads: set[str] = set()

        def record(p: DueProgress) -> None:
            seen.append(p)
            threads.add(threading.current_thread().name)

        for workers in (1, 3):
            shop, _ = due_shop(storage, f"progress-{workers}", 5,  # 7 due wallets
                               factory=self.make_loyalty)
            seen.clear()
            report = shop.loyalty.run_due(batch_size=3, workers=workers, on_progress=record)
            steps = ["rewards", "events", "notices"]  # the shop's program has no tiers
            total = 3 + len(steps)  # ranges of 3, 3 and 1 wallets, then the steps
            assert [("ledger", 0, total, 0), ("ledger", 1, total, 3),
                    ("ledger", 2, total, 6), ("ledger", 3, total, 7)] + [
                (stage, 4 + i, total, 7) for i, stage in enumerate(steps)
            ] == [(p.stage, p.done, p.total, p.members) for p in seen]
            assert {report.at} == {p.at for p in seen}
            assert 7 == report.members
            assert 1 == len(threads)  # one thread: the call's own
            if isinstance(shop.loyalty, Loyalty):  # the sync facade's is the caller's
                assert {threading.current_thread().name} == threads
            # nothing due: told once with nothing to do in the ledger, then the steps
            seen.clear()
            shop.loyalty.run_due(batch_size=3, workers=workers, on_progress=record)
            assert [("ledger", 0, 3, 0)] + [
                (stage, 1 + i, 3, 0) for i, stage in enumerate(steps)
            ] == [(p.stage, p.done, p.total, p.members) for p in seen]
