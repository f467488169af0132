"""The notices part of the storage contract (DESIGN §8, scenario O2).

:class:`NoticeContract` is mixed into :class:`loyaltykit.testing.contract.StorageContract`:
due work emits "points expiring soon", "voucher expiring" and "tier will drop" events
when the program's :class:`~loyaltykit.EventPolicy` asks for them, each exactly once
per subject however often due work runs, counting days ahead on the program's
calendar; and the notices' store claims a subject once, even against a unit of work
claiming it at the same time.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import attrs

from loyaltykit import (
    EventPolicy,
    ExpiryPolicy,
    OutboxEvent,
    Program,
    Storage,
    TestClock,
)
from loyaltykit._notices import NoticeClaim
from loyaltykit.testing.contract.base import L_EXPIRY, ContractPart, LoyaltyFactory, berlin
from loyaltykit.testing.contract.outbox import o_program
from loyaltykit.testing.contract.rewards import reward_program, v_coffee
from loyaltykit.testing.contract.tiers import tier_program
from loyaltykit.testing.notices import check_notices_once

__all__ = ["NoticeContract", "notice_program"]


def notice_program(expiry: ExpiryPolicy = L_EXPIRY, **policy: Any) -> Program:
    """Scenario O's program P with lots expiring by ``expiry`` (default: 12 months,
    rounded up to the month) and ``EventPolicy(**policy)``."""
    base = o_program()
    return attrs.evolve(base, ledger=attrs.evolve(base.ledger, expiry=expiry),
                        events=EventPolicy(**policy))


class _Reader:
    """A facade with a test clock, and the events it has not read yet."""

    def __init__(self, factory: LoyaltyFactory, storage: Storage, program: Program,
                 start: dt.datetime) -> None:
        self.clock = TestClock(start)
        self.loyalty = factory(program, storage, clock=self.clock)
        self.all: list[OutboxEvent] = []

    def due(self, at: dt.datetime, **kwargs: Any) -> tuple[int, list[OutboxEvent]]:
        """Run due work at ``at``; its report's notice count and the events since the
        last call."""
        self.clock.set(at)
        report = self.loyalty.run_due(**kwargs)
        return (report.points_expiring_notices + report.voucher_expiring_notices
                + report.tier_will_drop_notices), self.new()

    def new(self) -> list[OutboxEvent]:
        events = self.loyalty.events.read("contract", limit=10_000)
        if events:
            self.loyalty.events.ack("contract", events[-1])
        self.all.extend(events)
        return events


def _notices(events: list[OutboxEvent], type_: str = "points.expiring"
             ) -> list[OutboxEvent]:
    return [e for e in events if e.type == type_]


class NoticeContract(ContractPart):
    """Notices from due work on a backend; see the module docstring."""

    def test_o2_points_expiring_once_thirty_days_ahead(self, storage: Storage) -> None:
        """Scenario O2, exactly."""
        r = _Reader(self.make_loyalty, storage, notice_program(points_expiring_days=30),
                    berlin(2026, 1, 15, 9))
        r.loyalty.enrol("alice")
        r.loyalty.earn("alice", 100, key="e1")
        (lot,) = r.loyalty.lots("alice")
        r.new()
        assert (0, []) == r.due(berlin(2027, 1, 1, 23, 30))  # 31 Jan 23:30: not yet
        count, events = r.due(berlin(2027, 1, 2, 0, 30))
        assert (1, ["points.expiring"]) == (count, [e.type for e in events])
        (notice,) = events
        assert "alice" == notice.member_id
        assert berlin(2027, 1, 2, 0, 30) == notice.occurred_at
        assert {"wallet": "points", "points": 100, "expires_at": "2027-02-01T00:00:00+01:00",
                "lots": [{"lot_id": str(lot.id), "points": 100,
                          "earned_at": "2026-01-15T09:00:00+01:00"}]} == notice.payload
        assert (0, []) == r.due(berlin(2027, 1, 3))  # nothing new
        count, events = r.due(berlin(2027, 2, 1, 0, 30))
        assert 0 == count
        assert [("points.expired", "alice", -100)] == [
            (e.type, e.member_id, e.payload["points"]) for e in events]
        check_notices_once(r.all)

    def test_one_event_per_member_wallet_and_expiry_never_twice(
            self, storage: Storage) -> None:
        """The lots of one member and expiry make one event, across batches too; a
        spent lot, a later expiry and repeated or earlier runs add nothing."""
        r = _Reader(self.make_loyalty, storage, notice_program(points_expiring_days=30),
                    berlin(2026, 1, 10, 9))
        for member_id in ("dave", "alice", "bob"):  # dave's key sorts first
            r.loyalty.enrol(member_id)
        r.loyalty.earn("alice", 100, key="a1")
        r.loyalty.earn("dave", 7, key="d1")
        r.loyalty.earn("bob", 30, key="b1")
        r.loyalty.spend("bob", 30, key="b2")  # nothing left in bob's lot
        r.clock.set(berlin(2026, 1, 20, 9))
        r.loyalty.earn("alice", 50, key="a2")  # the same expiry: 1 February 2027
        r.clock.set(berlin(2026, 2, 3, 9))
        r.loyalty.earn("alice", 5, key="a3")  # 1 March 2027
        r.new()
        count, events = r.due(berlin(2027, 1, 5), batch_size=2)
        assert 2 == count
        assert {("alice", 150, 2), ("dave", 7, 1)} == {
            (e.member_id, e.payload["points"], len(e.payload["lots"])) for e in events}
        for at in (berlin(2027, 1, 5), berlin(2027, 1, 4), berlin(2027, 1, 20)):
            assert (0, []) == r.due(at, batch_size=1)
        count, events = r.due(berlin(2027, 2, 1, 0, 30), batch_size=1)
        assert 1 == count
        assert [("alice", 5, "2027-03-01T00:00:00+01:00")] == [
            (e.member_id, e.payload["points"], e.payload["expires_at"])
            for e in _notices(events)]
        check_notices_once(r.all)

    def test_nothing_without_the_policy(self, storage: Storage) -> None:
        program = attrs.evolve(notice_program(), events=EventPolicy(retention_days=30))
        r = _Reader(self.make_loyalty, storage, program, berlin(2026, 1, 15, 9))
        r.loyalty.enrol("alice")
        r.loyalty.earn("alice", 100, key="e1")
        r.new()
        assert (0, []) == r.due(berlin(2027, 1, 20))

    def test_days_ahead_are_calendar_days_across_daylight_saving(
            self, storage: Storage) -> None:
        """30 days after 1 March 2027 00:30 (winter time) is 31 March 00:30 (summer
        time), 23 hours short of 30 x 24 hours: a lot expiring at 01:00 that day is
        not yet noticed at 00:30, and is at 01:30."""
        program = notice_program(ExpiryPolicy(days=365), points_expiring_days=30)
        r = _Reader(self.make_loyalty, storage, program, berlin(2026, 3, 31, 1))
        r.loyalty.enrol("alice")
        r.loyalty.earn("alice", 10, key="e1")
        assert [berlin(2027, 3, 31, 1)] == [lot.expires_at for lot in r.loyalty.lots("alice")]
        r.new()
        assert (0, []) == r.due(berlin(2027, 3, 1, 0, 30))
        count, events = r.due(berlin(2027, 3, 1, 1, 30))
        assert (1, "2027-03-31T01:00:00+02:00") == (count, events[0].payload["expires_at"])

    def test_an_erased_member_gets_no_notice(self, storage: Storage) -> None:
        r = _Reader(self.make_loyalty, storage, notice_program(points_expiring_days=30),
                    berlin(2026, 1, 15, 9))
        r.loyalty.enrol("alice")
        r.loyalty.enrol("bob")
        r.loyalty.earn("alice", 100, key="e1")
        r.loyalty.earn("bob", 20, key="e2")
        r.loyalty.privacy.erase("alice")
        r.new()
        _, events = r.due(berlin(2027, 1, 10))
        assert [("bob", 20)] == [(e.member_id, e.payload["points"]) for e in events]

    def test_voucher_expiring_once(self, storage: Storage) -> None:
        program = attrs.evolve(reward_program(v_coffee(valid_days=30)),
                               events=EventPolicy(voucher_expiring_days=7))
        r = _Reader(self.make_loyalty, storage, program, berlin(2026, 3, 1))
        for member_id in ("M", "N"):
            r.loyalty.enrol(member_id)
            r.loyalty.earn(member_id, 1500, key=f"earn:{member_id}")
        r.clock.set(berlin(2026, 4, 10, 10))
        kept = r.loyalty.rewards.redeem("M", "coffee", key="r1").voucher
        used = r.loyalty.rewards.redeem("N", "coffee", key="r2").voucher
        r.loyalty.rewards.use(used.code, order_id="1001", key="u1")
        assert kept.expires_at is not None
        r.new()
        assert (0, []) == r.due(kept.expires_at - dt.timedelta(days=8))
        count, events = r.due(kept.expires_at - dt.timedelta(days=6))
        assert (1, ["M"]) == (count, [e.member_id for e in events])
        payload = events[0].payload
        assert (str(kept.id), kept.shown, "coffee", "Coffee voucher", 500) == (
            payload["voucher_id"], payload["code"], payload["reward_id"],
            payload["reward_name"], payload["cost"])
        assert kept.expires_at == dt.datetime.fromisoformat(payload["expires_at"])
        assert (0, []) == r.due(kept.expires_at - dt.timedelta(days=1))
        check_notices_once(r.all)

    def test_tier_will_drop_once_before_the_evaluation(self, storage: Storage) -> None:
        program = attrs.evolve(tier_program(grace_periods=0),
                               events=EventPolicy(tier_will_drop=True))
        r = _Reader(self.make_loyalty, storage, program, berlin(2026, 1, 1, 9))
        r.loyalty.enrol("keeps")
        r.loyalty.enrol("drops")
        r.clock.set(berlin(2026, 3, 1, 10))
        r.loyalty.earn("keeps", 2100, key="a")
        r.loyalty.earn("drops", 2100, key="b")
        r.due(berlin(2027, 1, 1, 1))
        r.clock.set(berlin(2027, 6, 1, 10))
        r.loyalty.earn("keeps", 2000, key="c")
        r.loyalty.earn("drops", 300, key="d")
        r.new()
        assert (0, []) == r.due(berlin(2027, 11, 15, 10))
        count, events = r.due(berlin(2027, 12, 10, 10))
        assert (1, ["tier.will_drop"]) == (count, [e.type for e in events])
        assert ("drops", {"tier": "gold", "would_be": "silver",
                          "evaluation_at": "2028-01-01T00:00:00+01:00", "metric": "points",
                          "value": 300, "needed": 1700, "currency": None}) == (
            events[0].member_id, events[0].payload)
        assert (0, []) == r.due(berlin(2027, 12, 20, 10))
        check_notices_once(r.all)

    def test_tier_will_drop_off_by_default(self, storage: Storage) -> None:
        r = _Reader(self.make_loyalty, storage, tier_program(grace_periods=0),
                    berlin(2026, 1, 1, 9))
        r.loyalty.enrol("drops")
        r.clock.set(berlin(2026, 3, 1, 10))
        r.loyalty.earn("drops", 2100, key="b")
        r.due(berlin(2027, 1, 1, 1))
        r.new()
        assert (0, []) == r.due(berlin(2027, 12, 10, 10))
        assert r.loyalty.tiers.notices()  # the tiers recorded theirs

    # -- the store ----------------------------------------------------------------------------

    def test_a_subject_is_claimed_once(self, storage: Storage) -> None:
        self.make_loyalty(notice_program(), storage, clock=TestClock(berlin(2026, 1, 1)))
        at = berlin(2026, 1, 2)
        a = NoticeClaim("points.expiring", "k1", "lot-1")
        b = NoticeClaim("points.expiring", "k1", "lot-2")
        other = NoticeClaim("voucher.expiring", "k1", "lot-1")
        with storage.unit_of_work("shop") as uow:
            assert [a, b] == uow.notices.claim([a, b, a], at)
            assert [other] == uow.notices.claim([a, other], at)
            uow.commit()
        with storage.unit_of_work("shop") as uow:
            assert [] == uow.notices.claim([b], at)
            c = NoticeClaim("points.expiring", "k1", "lot-3")
            assert [c] == uow.notices.claim([c], at)  # not committed: rolled back
        with storage.unit_of_work("other") as uow:
            assert [a] == uow.notices.claim([a], at)  # another program's own
        with storage.unit_of_work("shop") as uow:
            assert ["lot-1", "lot-2"] == uow.notices.claimed("points.expiring", "k1")

    def test_concurrent_claims_of_one_subject_give_it_once(self, storage: Storage) -> None:
        """A unit of work claiming a subject another has claimed but not committed
        waits, then finds it taken. (A storage whose units of work cannot run at once
        from two threads has nothing to race.)"""
        if not storage.concurrent:
            return
        self.make_loyalty(notice_program(), storage, clock=TestClock(berlin(2026, 1, 1)))
        claim = NoticeClaim("points.expiring", "k1", "lot-1")
        at = berlin(2026, 1, 2)
        second: list[list[NoticeClaim]] = []
        started = threading.Event()

        def rival() -> None:
            with storage.unit_of_work("shop") as uow:
                started.set()
                second.append(uow.notices.claim([claim], at))
                uow.commit()

        with storage.unit_of_work("shop") as uow:
            assert [claim] == uow.notices.claim([claim], at)
            thread = threading.Thread(target=rival)
            thread.start()
            started.wait(0.5)  # (memory: blocked before it opens)
            thread.join(0.3)
            assert not second  # it waits for this one
            uow.commit()
        thread.join(10)
        assert [[]] == second
