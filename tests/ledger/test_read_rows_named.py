"""The member-key layer names the rows a SQL store reads in place (the store builds
them for that read and shares them with nothing) instead of copying each: a spend or
a capture copies no lot, account or hold it read, however many lots the member has.
The memory store hands out the rows it keeps, so there they are still copied (and the
kept rows keep their member keys). That the results stay the same is in the shipped
contract on every backend."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from loyaltykit import ExpiryPolicy, LedgerPolicy, Loyalty, Money, Program, TestClock
from loyaltykit._member_keys import names
from loyaltykit.memory import MemoryStorage
from loyaltykit.sql import SQLStorage, create_engine

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _loyalty(storage: Any, lots: int) -> Loyalty:
    program = Program(id="shop", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      ledger=LedgerPolicy(expiry=ExpiryPolicy(days=365)))
    loyalty = Loyalty(program, storage, clock=TestClock(T0))
    loyalty.enrol("m")
    for i in range(lots):
        loyalty.earn("m", 100, key=f"earn-{i}")
    return loyalty


def _copies(monkeypatch: pytest.MonkeyPatch, work: Callable[[], Any]) -> int:
    """How many rows the member-key layer copied while ``work`` ran."""
    copied = 0
    real = names.copy_with

    def counting(row: Any, changes: Any) -> Any:
        nonlocal copied
        copied += 1
        return real(row, changes)

    monkeypatch.setattr(names, "copy_with", counting)
    try:
        work()
    finally:
        monkeypatch.setattr(names, "copy_with", real)
    return copied


def _spend_and_capture(loyalty: Loyalty) -> Callable[[], None]:
    def work() -> None:
        loyalty.spend("m", 30, key="spend")
        held = loyalty.hold("m", 30, key="hold", ttl=dt.timedelta(minutes=5))
        loyalty.capture(held.hold_id, key="capture")
    return work


def test_a_sql_store_s_rows_are_named_in_place(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Any) -> None:
    copies = []
    for lots in (2, 12):
        engine = create_engine(f"sqlite:///{tmp_path / f'lots-{lots}.sqlite'}")
        storage = SQLStorage(engine)
        storage.create_schema()
        loyalty = _loyalty(storage, lots)
        copies.append(_copies(monkeypatch, _spend_and_capture(loyalty)))
        assert 100 * lots - 60 == loyalty.balance("m").available
        engine.dispose()
    # what is copied is what the writes store (keys in), not one copy per lot read
    assert copies[0] == copies[1]


def test_the_memory_store_s_kept_rows_are_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = MemoryStorage()
    loyalty = _loyalty(storage, 3)
    with storage.unit_of_work("shop") as uow:
        kept = uow.ledger.load_lots("points", [k for k in uow.members.keys_of(["m"]).values()])
    copies = _copies(monkeypatch, _spend_and_capture(loyalty))
    assert copies >= 3  # the lots read, at least
    with storage.unit_of_work("shop"):
        assert kept and all(lot.member_id != "m" for lot in kept)  # still keys
