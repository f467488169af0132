"""Random operation sequences against the ledger, checking every invariant after each step.

The machine (``loyaltykit.testing.machine.LedgerMachine``) runs on the in-memory
backend alone, on SQLite alone, on PostgreSQL alone, and on memory together with each
of them, where the two must agree on every outcome, balance, statement and stored row.
Budgets are sized for CI (a few minutes in all); raise them locally by editing the
settings below when hunting bugs. Minimal failing examples the machine found are kept
below as plain regression tests.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from conftest import make_storage_factory
from loyaltykit import LedgerPolicy, Loyalty, Money, PendingPolicy, Program, TestClock
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.invariants import check_invariants, find_due_work, read_ledger
from loyaltykit.testing.machine import CounterIds, LedgerMachine

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}

MEMORY = settings(max_examples=150, stateful_step_count=50, **_COMMON)
SQLITE = settings(max_examples=50, stateful_step_count=40, **_COMMON)
BOTH = settings(max_examples=50, stateful_step_count=40, **_COMMON)


@pytest.mark.slow
def test_memory_backend_keeps_the_invariants() -> None:
    run_state_machine_as_test(LedgerMachine.using(MemoryStorage), settings=MEMORY)


@pytest.mark.slow
def test_sqlite_backend_keeps_the_invariants(tmp_path: Path) -> None:
    factory, cleanups = make_storage_factory("sqlite", tmp_path)
    try:
        run_state_machine_as_test(LedgerMachine.using(factory), settings=SQLITE)
    finally:
        for cleanup in cleanups:
            cleanup()


@pytest.mark.slow
def test_memory_and_sqlite_agree(tmp_path: Path) -> None:
    factory, cleanups = make_storage_factory("sqlite", tmp_path)
    try:
        run_state_machine_as_test(LedgerMachine.using(MemoryStorage, factory), settings=BOTH)
    finally:
        for cleanup in cleanups:
            cleanup()


POSTGRESQL = settings(max_examples=25, stateful_step_count=40, **_COMMON)


@pytest.mark.slow
def test_postgresql_backend_keeps_the_invariants(tmp_path: Path) -> None:
    factory, _ = make_storage_factory("postgresql", tmp_path)
    run_state_machine_as_test(LedgerMachine.using(factory), settings=POSTGRESQL)


@pytest.mark.slow
def test_memory_and_postgresql_agree(tmp_path: Path) -> None:
    factory, _ = make_storage_factory("postgresql", tmp_path)
    run_state_machine_as_test(LedgerMachine.using(MemoryStorage, factory), settings=POSTGRESQL)


# -- regressions found by the machine -------------------------------------------------


def test_an_emptied_pending_lot_still_activates_when_due() -> None:
    # A pending lot clawed back to zero was left out of next_due_at, so it stayed
    # pending past its activation until some write happened to load the lots.
    program = Program(id="p", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      ledger=LedgerPolicy(pending=PendingPolicy(days=1)))
    clock = TestClock(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
    storage = MemoryStorage()
    loyalty = Loyalty(program, storage, clock=clock, new_id=CounterIds())
    loyalty.enrol("m")
    loyalty.earn("m", 1, key="earn")
    loyalty.clawback("m", 1, key="claw")
    clock.advance(days=1)
    loyalty.earn("m", 1, key="earn again")
    snapshot = read_ledger(storage, program, ["m"])
    assert [] == find_due_work(snapshot, clock.now())
    overdue = [lot for lot in loyalty.lots("m")
               if lot.pending and lot.activates_at is not None
               and lot.activates_at <= clock.now()]
    assert [] == overdue
    check_invariants(storage, program, ["m"], at=clock.now())
