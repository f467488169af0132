"""The ledger's due work runs by member ranges: in turn with one worker, on a pool of
threads with several, which book every due wallet once (the contract's
test_due_work_in_parallel_ranges_equals_one_worker shows the results are the same)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

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
    report = shop.loyalty.run_due(batch_size=2, workers=workers)
    assert 16 == report.members
    due = [(m, "points") for m in ids] + [(m, "credits") for m in ids[::3]]
    assert sorted(due) == sorted(booked)  # every due wallet booked, each once
    names = set(threads)
    if workers == 1:
        assert {threading.current_thread().name} == names
    else:
        assert 1 < len(names) <= 3 and all(n.startswith("loyaltykit-due") for n in names)

