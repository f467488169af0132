"""The ledger's due work runs by member ranges: in turn with one worker, on a pool of
threads with several, which book every due wallet once (the contract's
test_due_work_in_parallel_ranges_equals_one_worker shows the results are the same)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from loyaltykit._services.due import DueWork
from loyaltykit._services.ledger import LedgerService
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract.ledger_due import due_shop


@pytest.mark.parametrize("workers", [1, 3])
def test_ledger_batches_run_on_the_workers(monkeypatch: pytest.MonkeyPatch,
                                           workers: int) -> None:
    shop, ids = due_shop(MemoryStorage(), "threads", 12)
    threads: list[str] = []
    booked: list[tuple[str, str]] = []
    books = LedgerService.books

    def recording(self: LedgerService, uow: Any, ledger: Any, wallet: str,
                  member_ids: list[str], **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        booked.extend((m, wallet) for m in member_ids)
        return books(self, uow, ledger, wallet, member_ids, **kwargs)

    monkeypatch.setattr(LedgerService, "books", recording)
    if workers > 1:
        # The first two ranges meet before either books (outside the storage's lock):
        # they can only if two threads run ranges at once. Without this, one quick
        # thread could take every range of a loaded machine's pool and the thread-name
        # check below would fail by scheduling, not by the code.
        meet = threading.Barrier(2, timeout=30)
        met: list[str] = []
        run_range = DueWork._range

        def meeting(self: DueWork, *args: Any) -> Any:
            with lock:
                first_two = len(met) < 2
                met.append(threading.current_thread().name)
            if first_two:
                meet.wait()  # BrokenBarrierError after 30 s if ranges ran in turn
            return run_range(self, *args)

        lock = threading.Lock()
        monkeypatch.setattr(DueWork, "_range", meeting)
    report = shop.loyalty.run_due(batch_size=2, workers=workers)
    assert 16 == report.members
    due = [(m, "points") for m in ids] + [(m, "credits") for m in ids[::3]]
    assert sorted(due) == sorted(booked)  # every due wallet booked, each once
    names = set(threads)
    if workers == 1:
        assert {threading.current_thread().name} == names
    else:
        assert 1 < len(names) <= 3 and all(n.startswith("loyaltykit-due") for n in names)

