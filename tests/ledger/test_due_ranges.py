"""The ledger's due work runs by member ranges: in turn with one worker, on a pool of
threads with several (the contract's test_due_work_in_parallel_ranges_equals_one_worker
shows the results are the same)."""

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
    shop, _ = due_shop(MemoryStorage(), "threads", 12)
    threads: list[str] = []
    books = LedgerService.books

    def recording(self: LedgerService, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return books(self, *args, **kwargs)

    monkeypatch.setattr(LedgerService, "books", recording)
    report = shop.loyalty.run_due(batch_size=2, workers=workers)
    assert 16 == report.members
    names = set(threads)
    if workers == 1:
        assert {threading.current_thread().name} == names
    else:
        assert 1 < len(names) <= 3 and all(n.startswith("loyaltykit-due") for n in names)

