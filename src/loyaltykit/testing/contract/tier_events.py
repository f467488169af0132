"""The tiers' events part of the storage contract: ``tier.changed`` (DESIGN §8).

:class:`TierEventContract` is mixed into
:class:`loyaltykit.testing.contract.StorageContract`, so every backend runs it: every
line of a member's tier history (an upgrade, a revert on a return, an evaluation by due
work, in set-based batches, or caught up by a write, a manual assignment) is one
``tier.changed`` event of the member, with its exact payload, after the events of the
change that caused it; an enrolment appends none; a refused or replayed write appends
none.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loyaltykit import (
    IdempotencyConflict,
    InvalidInput,
    Loyalty,
    Money,
    Order,
    OrderLine,
    OutboxEvent,
    Program,
    Storage,
    TestClock,
)
from loyaltykit.testing.contract.base import ContractPart, berlin
from loyaltykit.testing.contract.tier_due_events import TierDueEventContract
from loyaltykit.testing.contract.tiers import tier_program

__all__ = ["TierEventContract", "tier_events"]

def _utc(year: int, month: int, day: int, hour: int = 0) -> str:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC).isoformat()


def tier_events(loyalty: Loyalty, member_id: str | None = None) -> list[OutboxEvent]:
    """The ``tier.changed`` events in the outbox (of ``member_id``), in order."""
    return [e for e in loyalty.events.read("tier-contract", limit=10_000)
            if e.type == "tier.changed" and member_id in (None, e.member_id)]


def _lines(loyalty: Loyalty, member_id: str) -> list[tuple[Any, ...]]:
    """The member's tier history as the events tell it, and as stored."""
    told = [(e.occurred_at, e.payload["from"], e.payload["to"], e.payload["reason"],
             e.payload["note"]) for e in tier_events(loyalty, member_id)]
    stored = [(c.at, c.from_tier, c.to_tier, c.reason, c.note)
              for c in loyalty.tiers.history(member_id)]
    assert stored == told, f"{member_id}: the events are not the tier history"
    return told


SILVER = {"earn_multiplier": "1", "discount_percent": "5", "free_shipping": False,
          "extended_returns": False, "custom": {}}


class TierEventContract(TierDueEventContract, ContractPart):
    """``tier.changed`` on a backend: mixed into StorageContract (with due work's
    events appended by the store: :mod:`loyaltykit.testing.contract.tier_due_events`)."""

    def _tier_events_loyalty(self, storage: Storage, program: Program | None = None
                             ) -> tuple[Loyalty, TestClock]:
        clock = TestClock(berlin(2026, 1, 10, 9))
        return self.make_loyalty(program or tier_program(), storage, clock=clock), clock

    def test_t1_each_change_of_tier_is_one_event_with_its_payload(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._tier_events_loyalty(storage)
        loyalty.enrol("m")
        assert [] == tier_events(loyalty)  # a member starts on the base tier
        clock.set(berlin(2026, 2, 1, 10))
        loyalty.earn("m", 600, key="e1")
        events = loyalty.events.read("tier-contract")
        assert ["member.enrolled", "points.earned", "tier.changed"] == [
            e.type for e in events]
        up = events[-1]
        assert ("m", berlin(2026, 2, 1, 10)) == (up.member_id, up.occurred_at)
        assert 1 == up.version
        assert {
            "from": "member", "to": "silver", "direction": "up", "reason": "qualified",
            "note": "", "changed_at": _utc(2026, 2, 1, 9), "metric": "points",
            "qualifying": 600, "threshold": 500,
            # earned in 2026: kept through 2027, evaluated first at 2027's start
            "protected_until": _utc(2027, 12, 31, 23),
            "next_evaluation": _utc(2026, 12, 31, 23),
            "benefits": SILVER,
        } == up.payload
        clock.set(berlin(2026, 11, 30, 10))
        loyalty.earn("m", 1500, key="e2")
        clock.set(berlin(2027, 1, 1, 0))
        loyalty.run_due()  # keeps gold: no change, no event
        clock.set(berlin(2027, 5, 1, 10))
        loyalty.earn("m", 100, key="e3")
        clock.set(berlin(2028, 1, 1, 0))
        loyalty.run_due()
        down = tier_events(loyalty)[-1]
        assert {
            "from": "gold", "to": "silver", "direction": "down", "reason": "evaluation",
            "note": "", "changed_at": _utc(2027, 12, 31, 23), "metric": "points",
            "qualifying": 100, "threshold": 500, "protected_until": None,
            "next_evaluation": _utc(2028, 12, 31, 23), "benefits": SILVER,
        } == down.payload
        assert berlin(2028, 1, 1) == down.occurred_at  # the evaluation's instant
        assert [("member", "silver"), ("silver", "gold"), ("gold", "silver")] == [
            (line[1], line[2]) for line in _lines(loyalty, "m")]
        loyalty.run_due()  # nothing more to do: nothing more to tell
        assert 3 == len(tier_events(loyalty))

    def test_t2_a_revert_on_a_return_comes_after_the_returns_events(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._tier_events_loyalty(storage)
        loyalty.enrol("m")
        for order_id, euros, at in (("o1", "600.00", berlin(2026, 2, 1, 10)),
                                    ("o2", "1500.00", berlin(2026, 11, 30, 10))):
            clock.set(at)
            loyalty.record_order(Order(
                id=order_id, member_id="m", placed_at=at, currency="EUR",
                lines=(OrderLine(sku="x", quantity=1, unit_price=Money(euros, "EUR")),)))
        clock.set(berlin(2026, 12, 5, 12))
        loyalty.record_return("o2", {"x": 1}, key="r1")
        events = loyalty.events.read("tier-contract", limit=100)
        assert ["order.returned", "points.clawed_back", "tier.changed"] == [
            e.type for e in events[-3:]]
        assert {"from": "gold", "to": "silver", "direction": "down", "reason": "reverted",
                "qualifying": 600, "changed_at": _utc(2026, 12, 5, 11)} == {
            k: events[-1].payload[k] for k in ("from", "to", "direction", "reason",
                                               "qualifying", "changed_at")}
        assert 3 == len(_lines(loyalty, "m"))

    def test_manual_changes_and_evaluations_a_write_catches_up_on(
        self, storage: Storage
    ) -> None:
        loyalty, clock = self._tier_events_loyalty(storage)
        loyalty.enrol("vip")
        loyalty.enrol("m")
        clock.set(berlin(2026, 3, 1, 10))
        loyalty.tiers.assign("vip", "gold", key="a1", reason="VIP by contract",
                             until=berlin(2026, 6, 1))
        manual = tier_events(loyalty, "vip")[-1].payload
        assert ("member", "gold", "up", "manual", "VIP by contract", None, 2000) == (
            manual["from"], manual["to"], manual["direction"], manual["reason"],
            manual["note"], manual["qualifying"], manual["threshold"])
        loyalty.tiers.assign("vip", "gold", key="a2", reason="renewed")
        assert ("gold", "gold", "same") == tuple(
            tier_events(loyalty, "vip")[-1].payload[k] for k in ("from", "to", "direction"))
        loyalty.earn("m", 2500, key="gold")
        # no due work ran at the year's end: the next write evaluates 2026 first
        clock.set(berlin(2028, 2, 1, 10))
        loyalty.earn("m", 1, key="later")
        events = loyalty.events.read("tier-contract", limit=100)
        assert ["points.earned", "tier.changed"] == [e.type for e in events[-2:]]
        assert [("gold", "silver", "evaluation", berlin(2028, 1, 1))] == [
            (e.payload["from"], e.payload["to"], e.payload["reason"], e.occurred_at)
            for e in events[-1:]]
        assert 0 == loyalty.run_due().tier_changes  # (the vip is gold for good now)
        assert 2 == len(_lines(loyalty, "m"))
        assert 2 == len(_lines(loyalty, "vip"))

    def test_due_work_in_batches_tells_every_change_once(self, storage: Storage) -> None:
        loyalty, clock = self._tier_events_loyalty(storage)
        members = [f"m{i:02d}" for i in range(12)]
        for i, m in enumerate(members):
            loyalty.enrol(m)
            loyalty.earn(m, [0, 600, 2100][i % 3] or 1, key=m)
        clock.set(berlin(2028, 1, 1, 1))
        report = loyalty.run_due(batch_size=5)  # 2027's evaluations, then 2028's
        # 2027 keeps what 2026 reached; 2028 drops gold to silver, silver to member
        assert 8 == report.tier_changes
        for m in members:
            _lines(loyalty, m)
        assert 8 == sum(1 for e in tier_events(loyalty) if e.payload["reason"] == "evaluation")
        assert 0 == loyalty.run_due().tier_changes
        assert 8 + 8 == len(tier_events(loyalty))  # the upgrades and the evaluations

    def test_a_spend_metric_tells_its_figures_as_money(self, storage: Storage) -> None:
        from loyaltykit import Tier, TierMetric, TierPolicy

        spend = TierPolicy(tiers=(Tier("member", Money("0", "EUR")),
                                  Tier("silver", Money("500", "EUR"))),
                           metric=TierMetric.SPEND)
        loyalty, clock = self._tier_events_loyalty(
            storage, Program(id="spend", time_zone="Europe/Berlin", currency="EUR",
                             point_value=Money("0.01", "EUR"), tiers=spend))
        loyalty.enrol("m")
        clock.set(berlin(2026, 2, 1, 10))
        loyalty.record_order(Order(
            id="o1", member_id="m", placed_at=clock.now(), currency="EUR",
            lines=(OrderLine(sku="x", quantity=1, unit_price=Money("612.50", "EUR")),)))
        payload = tier_events(loyalty)[-1].payload
        assert ("spend", {"amount": "612.5", "currency": "EUR"},
                {"amount": "500", "currency": "EUR"}) == (
            payload["metric"], payload["qualifying"], payload["threshold"])

    def test_a_refused_or_replayed_write_tells_no_change(self, storage: Storage) -> None:
        loyalty, clock = self._tier_events_loyalty(storage)
        loyalty.enrol("m")
        clock.set(berlin(2026, 2, 1, 10))
        loyalty.earn("m", 600, key="e1")
        loyalty.earn("m", 600, key="e1")  # a replay
        with pytest.raises(IdempotencyConflict):
            loyalty.earn("m", 2000, key="e1")  # the key of another request
        with pytest.raises(InvalidInput):
            loyalty.tiers.assign("m", "platinum", key="a", reason="no such tier")
        assert 1 == len(tier_events(loyalty))
        assert "silver" == loyalty.tiers.status("m").tier
