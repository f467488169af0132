"""The referrals' events part of the storage contract: ``referral.attributed``,
``.approved``, ``.rewarded`` and ``.voided`` (DESIGN §8, scenarios R1-R3).

:class:`ReferralEventContract` is mixed into
:class:`loyaltykit.testing.contract.StorageContract`, so every backend runs it: a
referral recorded and each change of its status is one event for each side, the
referrer's first, with its exact payload, after the events of the change that caused
it; the other side is named by its shop id until it is erased; a refused write appends
none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from loyaltykit import (
    AlreadyReferred,
    Identity,
    Loyalty,
    Money,
    Order,
    OrderLine,
    OutboxEvent,
    Program,
    ReferralNotFlagged,
    Storage,
    TestClock,
)
from loyaltykit.testing.contract.base import ContractPart, berlin
from loyaltykit.testing.contract.referrals import SECRET, referral_program, symbols
from loyaltykit.testing.stored import stored_rows

__all__ = ["ReferralEventContract", "referral_events"]

def _utc(month: int, day: int, hour: int) -> str:
    return dt.datetime(2026, month, day, hour, tzinfo=dt.UTC).isoformat()


def referral_events(events: list[OutboxEvent]) -> list[tuple[str, str, str]]:
    """(type, member, role) of the ``referral.*`` events among ``events``."""
    return [(e.type, e.member_id, e.payload["role"]) for e in events
            if e.type.startswith("referral.")]


def _both(kind: str, referrer: str, referee: str) -> list[tuple[str, str, str]]:
    return [(kind, referrer, "referrer"), (kind, referee, "referee")]


class ReferralEventContract(ContractPart):
    """The referral events on a backend: mixed into StorageContract."""

    def _ref(self, storage: Storage, program: Program | None = None, *,
             randbelow: Callable[[int], int] | None = None) -> tuple[Loyalty, TestClock]:
        """Scenario R's facade on ``storage``, from 1 March 2026 09:00 Berlin."""
        clock = TestClock(berlin(2026, 3, 1, 9))
        extra: dict[str, Any] = {} if randbelow is None else {"randbelow": randbelow}
        return self.make_loyalty(program or referral_program(), storage, clock=clock,
                                 secret=SECRET, **extra), clock

    @staticmethod
    def _ref_order(loyalty: Loyalty, clock: TestClock, order_id: str, member_id: str,
                   euros: str, at: dt.datetime) -> None:
        clock.set(at)
        loyalty.record_order(Order(
            id=order_id, member_id=member_id, placed_at=at, currency="EUR",
            lines=(OrderLine(line_id="l1", sku="x", quantity=1,
                             unit_price=Money(euros, "EUR")),)))

    def _r1_setup(self, storage: Storage) -> tuple[Loyalty, TestClock, str]:
        """Scenario R1 up to the order: bob enrols with alice's code."""
        loyalty, clock = self._ref(storage, randbelow=symbols("7K30DM9XWP"))
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice").shown
        loyalty.enrol("bob", referral_code=code)
        return loyalty, clock, code

    @staticmethod
    def _read(loyalty: Loyalty) -> list[OutboxEvent]:
        return loyalty.events.read("referral-contract", limit=1000)

    def test_r1_attribution_and_reward_are_told_to_both_sides(
        self, storage: Storage
    ) -> None:
        loyalty, clock, _ = self._r1_setup(storage)
        events = self._read(loyalty)
        assert ["member.enrolled", "member.enrolled", "referral.attributed",
                "referral.attributed"] == [e.type for e in events]
        to_alice, to_bob = events[2:]
        assert ("alice", "bob") == (to_alice.member_id, to_bob.member_id)
        assert berlin(2026, 3, 1, 9) == to_alice.occurred_at
        attributed: dict[str, Any] = {
            "status": "waiting", "source": "customer", "campaign": None,
            "attributed_at": _utc(3, 1, 8), "reasons": [],
            "qualify_by": _utc(3, 31, 7),  # 30 days, summer time from 29 March
            "min_net": {"amount": "20.00", "currency": "EUR"},
            "reward": {"referrer": 500, "referee": 250},
        }
        assert {"role": "referrer", "referee_id": "bob", **attributed} == to_alice.payload
        assert {"role": "referee", "referrer_id": "alice", **attributed} == to_bob.payload
        self._ref_order(loyalty, clock, "o1", "bob", "25.00", berlin(2026, 3, 6, 10))
        events = self._read(loyalty)[4:]
        assert ["order.recorded", "points.earned", "points.earned", "referral.rewarded",
                "referral.rewarded"] == [e.type for e in events]
        earned = {e.member_id: e.payload["transaction_id"] for e in events[1:3]}
        rewarded: dict[str, Any] = {
            "status": "qualified", "source": "customer", "campaign": None,
            "attributed_at": _utc(3, 1, 8), "reasons": [], "order_id": "o1",
            "qualified_at": _utc(3, 6, 9), "settles_at": _utc(3, 20, 9),
            "referrer_points": 500, "referee_points": 250,
        }
        assert {"role": "referrer", "referee_id": "bob", **rewarded, "points": 500,
                "transaction_id": earned["alice"]} == events[3].payload
        assert {"role": "referee", "referrer_id": "alice", **rewarded, "points": 250,
                "transaction_id": earned["bob"]} == events[4].payload
        assert ("alice", berlin(2026, 3, 6, 10)) == (events[3].member_id,
                                                     events[3].occurred_at)

    def test_r2_a_return_voids_both_rewards_and_tells_both_sides(
        self, storage: Storage
    ) -> None:
        loyalty, clock, _ = self._r1_setup(storage)
        self._ref_order(loyalty, clock, "o1", "bob", "25.00", berlin(2026, 3, 6, 10))
        paid = {e.member_id: e.payload["transaction_id"] for e in self._read(loyalty)
                if e.type == "referral.rewarded"}
        clock.set(berlin(2026, 3, 11, 10))
        loyalty.record_return("o1", {"l1": 1}, key="ret-1")
        events = self._read(loyalty)[9:]
        assert ["order.returned", "points.reversed", "points.reversed", "referral.voided",
                "referral.voided"] == [e.type for e in events]
        assert {"role": "referrer", "referee_id": "bob", "status": "voided",
                "source": "customer", "campaign": None, "attributed_at": _utc(3, 1, 8),
                "reasons": [], "decided_at": _utc(3, 11, 9), "cause": "returned",
                "order_id": "o1", "qualified_at": _utc(3, 6, 9),
                "settles_at": _utc(3, 20, 9), "referrer_points": 500,
                "referee_points": 250, "points": 500,
                "transaction_id": paid["alice"]} == events[3].payload
        assert ("bob", "referee", 250, paid["bob"]) == (
            events[4].member_id, events[4].payload["role"], events[4].payload["points"],
            events[4].payload["transaction_id"])

    def test_r3_a_blocked_attribution_is_told_as_voided(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage)
        loyalty.enrol("alice", identity=Identity(email="alice@gmail.com"))
        code = loyalty.referrals.issue_code("alice")
        loyalty.enrol("alice-2", referral_code=code.shown,
                      identity=Identity(email="a.lice+promo@gmail.com"))
        events = self._read(loyalty)
        assert _both("referral.voided", "alice", "alice-2") == referral_events(events)
        voided = events[-1].payload
        assert ("blocked", "blocked", ["self-referral: same e-mail as the referrer"],
                _utc(3, 1, 8)) == (voided["status"], voided["cause"], voided["reasons"],
                                   voided["decided_at"])
        assert "order_id" not in voided

    def test_flagged_then_approved_or_rejected(self, storage: Storage) -> None:
        loyalty, clock = self._ref(storage, referral_program(velocity_per_hour=1))
        loyalty.enrol("alice")
        code = loyalty.referrals.issue_code("alice").code
        for member_id in ("r0", "r1", "r2", "r3"):
            loyalty.enrol(member_id, referral_code=code)
        events = self._read(loyalty)
        told = [(e.member_id, e.payload["status"]) for e in events
                if e.type == "referral.attributed" and e.payload["role"] == "referee"]
        assert [("r0", "waiting"), ("r1", "flagged"), ("r2", "flagged"),
                ("r3", "flagged")] == told
        # approved without an order: approved; with an order noted meanwhile: also paid
        start = len(events)
        loyalty.referrals.approve("r1", reason="known")
        self._ref_order(loyalty, clock, "o2", "r2", "30.00", berlin(2026, 3, 2, 9))
        loyalty.referrals.approve("r2")
        loyalty.referrals.reject("r3", reason="same household")
        with pytest.raises(ReferralNotFlagged):
            loyalty.referrals.reject("r3", reason="again", key="again")
        events = self._read(loyalty)[start:]
        assert [*_both("referral.approved", "alice", "r1"),
                *_both("referral.approved", "alice", "r2"),
                *_both("referral.rewarded", "alice", "r2"),
                *_both("referral.voided", "alice", "r3")] == referral_events(events)
        approved = next(e for e in events if e.type == "referral.approved")
        assert ("waiting", ["velocity: more than 1 referrals in an hour", "approved: known"],
                _utc(3, 1, 8)) == (approved.payload["status"], approved.payload["reasons"],
                                   approved.payload["decided_at"])
        rejected = events[-1].payload
        assert ("rejected", "rejected", "rejected: same household") == (
            rejected["status"], rejected["cause"], rejected["reasons"][-1])

    def test_a_refused_attribution_tells_nothing(self, storage: Storage) -> None:
        loyalty, _, _ = self._r1_setup(storage)
        before = self._read(loyalty)
        with pytest.raises(AlreadyReferred):
            loyalty.referrals.refer("bob", loyalty.referrals.codes("alice")[0].code)
        after = self._read(loyalty)
        assert [] == referral_events(after[len(before):])

    def test_the_other_side_is_named_until_it_is_erased(self, storage: Storage) -> None:
        loyalty, _ = self._ref(storage, randbelow=symbols("7K30DM9XWP"))
        loyalty.enrol("alice")
        loyalty.enrol("bobby", referral_code=loyalty.referrals.issue_code("alice").code)
        assert "bobby" == self._read(loyalty)[-2].payload["referee_id"]
        erased = loyalty.privacy.erase("bobby").erased_as
        assert erased is not None
        events = self._read(loyalty)
        to_alice = [e for e in events if e.type == "referral.attributed"]
        assert [("alice", erased), (erased, "alice")] == [
            (e.member_id, e.payload.get("referee_id", e.payload.get("referrer_id")))
            for e in to_alice]
        text = "\n".join(line for name, rows in stored_rows(storage).items()
                         if name.startswith(("OutboxTables.", "lk_outbox")) for line in rows)
        assert "bobby" not in text
        assert "alice" not in text  # nor the referrer's: both are stored as member keys
