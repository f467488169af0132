"""The history import pauses Python's cyclic garbage collector for each batch only (its
checks and its writes): it is back as it was after every batch, after a batch that
raised, and an application's own choice to turn it off stands."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from _small_shop import small_loyalty, small_orders
from loyaltykit._services import order_import
from loyaltykit._services.order_import import OrderImport


@pytest.fixture
def collector() -> Iterator[list[bool]]:
    """gc.isenabled() as each batch saw it; the collector restored after the test."""
    was = gc.isenabled()
    seen: list[bool] = []
    batch = OrderImport._batch

    def spy(self: OrderImport, *args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return batch(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OrderImport, "_batch", spy)
        try:
            yield seen
        finally:
            (gc.enable if was else gc.disable)()


def test_the_collector_is_paused_for_each_batch_and_back_after_it(
        collector: list[bool]) -> None:
    gc.enable()
    after: list[bool] = []
    result = small_loyalty().record_orders(small_orders(5), enrol=True, batch_size=2,
                                      on_progress=lambda done, total: after.append(
                                          gc.isenabled()))
    assert 5 == result.recorded
    assert [False, False, False] == collector
    assert [True, True, True] == after
    assert gc.isenabled()


def test_the_collector_is_back_after_a_batch_that_raised(collector: list[bool]) -> None:
    gc.enable()

    def stop(done: int, total: int | None) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):  # after the first batch
        small_loyalty().record_orders(small_orders(4), enrol=True, batch_size=2, on_progress=stop)
    assert gc.isenabled()

    def broken(self: OrderImport, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken")

    with pytest.MonkeyPatch.context() as patch:  # inside a batch
        patch.setattr(OrderImport, "_batch", broken)
        with pytest.raises(RuntimeError):
            small_loyalty().record_orders(small_orders(4), enrol=True, batch_size=2)
    assert gc.isenabled()


def test_a_collector_turned_off_stays_off(collector: list[bool]) -> None:
    gc.disable()
    small_loyalty().record_orders(small_orders(3), enrol=True, batch_size=2)
    assert [False, False] == collector
    assert not gc.isenabled()


def test_a_batch_is_checked_with_the_collector_paused(
        collector: list[bool], monkeypatch: pytest.MonkeyPatch) -> None:
    # its checked orders live until it is written, as its changes do
    gc.enable()
    checked: list[bool] = []
    check = order_import.check_order

    def spy(currency: str, order: object) -> Any:
        checked.append(gc.isenabled())
        return check(currency, order)

    monkeypatch.setattr(order_import, "check_order", spy)
    small_loyalty().record_orders(small_orders(3), enrol=True, batch_size=2)
    assert [False, False, False] == checked
    assert gc.isenabled()
