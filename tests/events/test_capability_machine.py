"""The state machine with tiers and referrals (``loyaltykit.testing.capability_machine``):
every step's tier and referral events equal the changes stored, each once, on memory,
on SQLite and PostgreSQL next to memory (the backends agreeing on every event)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from conftest import make_storage_factory
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.capability_machine import CapabilityMachine

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}


def test_memory_tells_every_tier_and_referral_change_once() -> None:
    run_state_machine_as_test(CapabilityMachine.using(MemoryStorage), settings=settings(
        max_examples=15, stateful_step_count=30, **_COMMON))


@pytest.mark.slow
def test_memory_at_length() -> None:
    run_state_machine_as_test(CapabilityMachine.using(MemoryStorage), settings=settings(
        max_examples=150, stateful_step_count=50, **_COMMON))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_memory_and_sql_agree(backend: str, tmp_path: Path) -> None:
    factory, cleanups = make_storage_factory(backend, tmp_path)
    try:
        run_state_machine_as_test(CapabilityMachine.using(MemoryStorage, factory),
                                  settings=settings(max_examples=20, stateful_step_count=30,
                                                    **_COMMON))
    finally:
        for cleanup in cleanups:
            cleanup()
