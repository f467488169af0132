"""run_due's progress hook: checked before any work, and a way to stop a run."""

from __future__ import annotations

import pytest

from loyaltykit import DueProgress, InvalidInput, LoyaltyError
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract.ledger_due import due_shop


@pytest.mark.parametrize("progress", ["bar", 1, True, lambda done, total: None])
def test_a_progress_that_cannot_take_a_due_progress_is_refused_first(progress: object) -> None:
    shop, _ = due_shop(MemoryStorage(), "refused", 3)
    with pytest.raises(InvalidInput) as caught:
        shop.loyalty.run_due(on_progress=progress)  # type: ignore[arg-type]
    assert isinstance(caught.value, LoyaltyError) and caught.value.code == "invalid_input"
    assert "progress" in str(caught.value)
    # nothing was done: all 4 wallets (3 points, 1 credits) are still due
    assert 4 == shop.loyalty.run_due().members


class Stop(Exception):
    pass


def test_what_progress_raises_stops_the_run_and_the_next_run_goes_on() -> None:
    shop, ids = due_shop(MemoryStorage(), "stopped", 5)  # 7 due wallets

    def stop_after_first_range(p: DueProgress) -> None:
        if p.done == 1:
            raise Stop

    with pytest.raises(Stop):
        shop.loyalty.run_due(batch_size=3, on_progress=stop_after_first_range)
    rest = shop.loyalty.run_due(batch_size=3)
    assert 4 == rest.members  # the first range's 3 wallets were done and committed
    shop.check(*ids)
