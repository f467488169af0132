"""Due work's tier evaluations on memory and SQLite: their ``tier.changed`` events are
appended by the store itself, with no domain event raised nor mapped per member
(:mod:`loyaltykit.storage.tier_due_set`; the contract part
``loyaltykit.testing.contract.tier_due_events`` checks the events are the raised ones)."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from loyaltykit import Loyalty, Storage, TestClock
from loyaltykit._services.tier_events import TierEvents
from loyaltykit._tiers import TierChanged
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract.tiers import _berlin, tier_program


@pytest.fixture(params=["memory", "sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    """The stores that append due work's tier events themselves (conftest's
    ``storage`` of each)."""
    return str(request.param)


def _silver_members(storage: Storage, count: int) -> tuple[Loyalty, TestClock]:
    """``count`` members on silver by 2026's points, none earning in 2027."""
    clock = TestClock(_berlin(2026, 3, 1, 9))
    loyalty = Loyalty(tier_program(notice_days=0), storage, clock=clock)
    for i in range(count):
        loyalty.enrol(f"m{i:03d}")
        loyalty.earn(f"m{i:03d}", 600, key=f"e{i}")
    return loyalty, clock


def test_due_evaluations_map_no_event_per_member(storage: Storage) -> None:
    loyalty, clock = _silver_members(storage, 25)
    clock.set(_berlin(2028, 1, 1, 1))  # 2027 keeps silver (grace), 2028 drops it
    mapped = 0
    mapper = TierEvents.__call__

    def counted(self: TierEvents, work: Any, event: TierChanged) -> Any:
        nonlocal mapped
        mapped += 1
        return mapper(self, work, event)

    with mock.patch.object(TierEvents, "__call__", counted):
        report = loyalty.run_due(batch_size=10)
    assert 25 == report.tier_changes
    # each change is one event, appended by the store: none raised and mapped
    assert 0 == mapped
    events = [e for e in loyalty.events.read("check", limit=1000)
              if e.type == "tier.changed" and e.payload["reason"] == "evaluation"]
    assert [f"m{i:03d}" for i in range(25)] == [e.member_id for e in events]


def test_the_outbox_is_the_only_listener_of_tier_changes() -> None:
    # the facade's own wiring: the outbox records TierChanged and nothing reacts to it,
    # which is what lets a store append due work's tier.changed events itself
    loyalty = Loyalty(tier_program(), MemoryStorage(), clock=TestClock(_berlin(2026, 3, 1)))
    assert loyalty._c.bus.only_recorded(TierChanged)


def test_a_subscriber_beyond_the_outbox_gets_every_due_change(storage: Storage) -> None:
    # another subscriber (a capability reacting to tier changes) must see each change
    # of due work: the store then does not append the events in its place
    loyalty, clock = _silver_members(storage, 12)
    seen: list[str] = []
    loyalty._c.bus.subscribe(TierChanged, lambda work, event: seen.append(event.change.member_id))
    assert not loyalty._c.bus.only_recorded(TierChanged)
    clock.set(_berlin(2028, 1, 1, 1))
    report = loyalty.run_due(batch_size=5)
    assert 12 == report.tier_changes
    assert [f"m{i:03d}" for i in range(12)] == sorted(seen)
    events = [e for e in loyalty.events.read("check", limit=1000)
              if e.type == "tier.changed" and e.payload["reason"] == "evaluation"]
    assert sorted(seen) == [e.member_id for e in events]
