"""Referral properties under random operations (Hypothesis state machine).

After every step: no referee has two referrers; no referrer is paid more often than the
cap allows in any calendar month; every voided referral's rewards are reversed; the
ledger invariants of DESIGN.md hold. After a full return of a qualifying order within
its return window, both rewards are voided at once.
"""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from tempfile import TemporaryDirectory
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from loyaltykit import (
    CapPeriod,
    Loyalty,
    Money,
    Order,
    OrderLine,
    ReferralCap,
    ReferralRefused,
    ReferralStatus,
    Storage,
    TestClock,
)
from loyaltykit.memory import MemoryStorage
from loyaltykit.testing.contract.referrals import SECRET, referral_program
from loyaltykit.testing.invariants import check_invariants

# Hypothesis state machines: the fast loop leaves them out.
pytestmark = pytest.mark.slow

BERLIN = ZoneInfo("Europe/Berlin")
REFERRERS = ("a0", "a1")
CAP = 1


class ReferralMachine(RuleBasedStateMachine):
    def make_storage(self) -> Storage:
        return MemoryStorage()

    def __init__(self) -> None:
        super().__init__()
        self.storage = self.make_storage()
        self.program = referral_program(cap=ReferralCap(CAP, CapPeriod.MONTH),
                                        velocity_per_hour=None, velocity_per_day=None,
                                        existing_customers=True)
        self.clock = TestClock(dt.datetime(2026, 1, 20, 9, tzinfo=BERLIN))
        self.loyalty = Loyalty(self.program, self.storage, clock=self.clock, secret=SECRET)
        self.codes = {}
        for r in REFERRERS:
            self.loyalty.enrol(r)
            self.codes[r] = self.loyalty.referrals.issue_code(r).code
        self.members: list[str] = list(REFERRERS)
        self.referees: list[str] = []
        self.orders: list[str] = []
        self.returned: set[str] = set()
        self.ids = itertools.count()

    # -- steps ----------------------------------------------------------------------------

    @rule(referrer=st.sampled_from(REFERRERS), with_code=st.booleans())
    def join(self, referrer: str, with_code: bool) -> None:
        member = f"n{next(self.ids)}"
        self.loyalty.enrol(member, referral_code=self.codes[referrer] if with_code else None)
        self.members.append(member)
        self.referees.append(member)

    @precondition(lambda self: self.referees)
    @rule(data=st.data(), referrer=st.sampled_from(REFERRERS))
    def attach(self, data: st.DataObject, referrer: str) -> None:
        member = data.draw(st.sampled_from(self.referees))
        before = self._referral(member)
        try:
            self.loyalty.referrals.refer(member, self.codes[referrer],
                                         key=f"refer-{next(self.ids)}")
        except ReferralRefused:  # already referred, or past the window: nothing written
            assert before == self._referral(member)
        else:
            assert before is None

    @precondition(lambda self: self.referees)
    @rule(data=st.data(), euros=st.sampled_from(["9.99", "19.99", "20.00", "55.00"]))
    def order(self, data: st.DataObject, euros: str) -> None:
        member = data.draw(st.sampled_from(self.referees))
        order_id = f"o{next(self.ids)}"
        self.loyalty.record_order(Order(
            id=order_id, member_id=member, placed_at=self.clock.now(), currency="EUR",
            lines=(OrderLine(line_id="l", sku="x", quantity=1,
                             unit_price=Money(euros, "EUR")),)))
        self.orders.append(order_id)

    @precondition(lambda self: len(self.returned) < len(self.orders))
    @rule(data=st.data())
    def full_return(self, data: st.DataObject) -> None:
        order_id = data.draw(st.sampled_from([o for o in self.orders
                                              if o not in self.returned]))
        member = self.loyalty.order(order_id).member_id
        before = self._referral(member)
        self.loyalty.record_return(order_id, {"l": 1}, key=f"ret-{order_id}")
        self.returned.add(order_id)
        now = self.clock.now()
        if (before is not None and before.status is ReferralStatus.QUALIFIED
                and before.order_id == order_id and before.settles_at is not None
                and now < before.settles_at):
            after = self._referral(member)
            assert after is not None and ReferralStatus.VOIDED == after.status
            with self.storage.unit_of_work(self.program.id) as uow:
                for tx in (before.referrer_tx, before.referee_tx):
                    if tx is not None:
                        assert uow.ledger.find_reversal(tx) is not None

    @rule(hours=st.integers(min_value=1, max_value=24 * 6))
    def advance(self, hours: int) -> None:
        self.clock.set(self.clock.now() + dt.timedelta(hours=hours))

    @rule()
    def run_due(self) -> None:
        self.loyalty.run_due()

    # -- invariants -----------------------------------------------------------------------

    def _referral(self, member: str):  # type: ignore[no-untyped-def]
        with self.storage.unit_of_work(self.program.id) as uow:
            return uow.referrals.get_referral(member)

    @invariant()
    def one_referrer_per_referee(self) -> None:
        seen: dict[str, str] = {}
        for referrer in self.members:
            for r in self.loyalty.referrals.made_by(referrer):
                assert r.referee_id not in seen, (r.referee_id, seen[r.referee_id], referrer)
                seen[r.referee_id] = referrer
                assert referrer == self.loyalty.referrals.get(r.referee_id).referrer_id

    @invariant()
    def caps_are_never_exceeded(self) -> None:
        for referrer in REFERRERS:
            per_month: dict[tuple[int, int], int] = {}
            for r in self.loyalty.referrals.made_by(referrer):
                if r.status is ReferralStatus.QUALIFIED and r.referrer_points > 0:
                    local = r.qualified_at.astimezone(BERLIN)
                    month = (local.year, local.month)
                    per_month[month] = per_month.get(month, 0) + 1
            assert all(n <= CAP for n in per_month.values()), per_month

    @invariant()
    def voided_rewards_are_reversed(self) -> None:
        with self.storage.unit_of_work(self.program.id) as uow:
            for referee in self.referees:
                r = uow.referrals.get_referral(referee)
                if r is not None and r.status is ReferralStatus.VOIDED:
                    for tx in (r.referrer_tx, r.referee_tx):
                        assert tx is None or uow.ledger.find_reversal(tx) is not None

    @invariant()
    def ledger_invariants(self) -> None:
        check_invariants(self.storage, self.program, self.members, at=self.clock.now())

    def teardown(self) -> None:
        dispose = getattr(self.storage, "dispose", None)
        if dispose is not None:
            dispose()


TestReferralsInMemory = ReferralMachine.TestCase
TestReferralsInMemory.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])


class SQLiteReferralMachine(ReferralMachine):
    def make_storage(self) -> Storage:
        from loyaltykit.sql import SQLStorage

        self._dir = TemporaryDirectory()
        storage = SQLStorage.from_url(f"sqlite:///{Path(self._dir.name) / 'r.sqlite'}")
        storage.create_schema()
        return storage

    def teardown(self) -> None:
        super().teardown()
        self._dir.cleanup()


TestReferralsOnSQLite = SQLiteReferralMachine.TestCase
TestReferralsOnSQLite.settings = settings(
    max_examples=10, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
