""":class:`CapabilityMachine`: the ledger's state machine on a program with tiers and a
referral policy, so that the checks of :mod:`loyaltykit.testing.capability_events`
bite: every write that moves points may change a tier (upgrades, reverts, evaluations
caught up on, due work's evaluations in batches), and members issue codes, refer each
other (velocity flags every second referral within an hour), get paid on a qualifying
order, voided on its return, approved and rejected.

Run it like :class:`~loyaltykit.testing.machine.LedgerMachine`::

    run_state_machine_as_test(CapabilityMachine.using(MemoryStorage, my_factory),
                              settings=settings(max_examples=50, deadline=None))
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import initialize, precondition, rule

from loyaltykit._facade import Loyalty
from loyaltykit._orders import Order, OrderLine
from loyaltykit._payment import PaymentPolicy
from loyaltykit._program import Program
from loyaltykit._referrals import (
    Referral,
    ReferralCode,
    ReferralPolicy,
    ReferralReward,
    ReferralStatus,
)
from loyaltykit._tiers import Downgrade, QualificationWindow, Tier, TierPolicy, WindowKind
from loyaltykit._values import Money
from loyaltykit.testing import strategies as lst
from loyaltykit.testing.machine import LedgerMachine

__all__ = ["CapabilityMachine", "referral_policies", "tier_policies"]


def tier_policies() -> st.SearchStrategy[TierPolicy]:
    """Three-tier points ladders within reach of the machine's earns, on every kind of
    window, either downgrade and 0-2 grace periods."""
    windows = st.one_of(
        st.sampled_from([WindowKind.CALENDAR_YEAR, WindowKind.ANNIVERSARY_YEAR,
                         WindowKind.LIFETIME]).map(QualificationWindow),
        st.integers(1, 3).map(lambda n: QualificationWindow(WindowKind.ROLLING_MONTHS, n)))
    return st.builds(
        lambda silver, gold, window, downgrade, grace: TierPolicy(
            tiers=(Tier("member", 0), Tier("silver", silver),
                   Tier("gold", silver + gold)),
            window=window, downgrade=downgrade, grace_periods=grace),
        st.integers(1, 400), st.integers(1, 800), windows, st.sampled_from(Downgrade),
        st.integers(0, 2))


def referral_policies() -> st.SearchStrategy[ReferralPolicy]:
    """Two-sided rewards on a first order of at least a little money, existing
    customers referable, at most one referral an hour before the next is flagged."""
    return st.builds(
        lambda referrer, referee, days: ReferralPolicy(
            reward=ReferralReward(referrer=referrer, referee=referee),
            min_net=Money("1.00", "EUR"), qualify_within_days=days, return_window_days=days,
            attach_within_days=365, existing_customers=True, velocity_per_hour=1),
        st.integers(0, 300), st.integers(0, 300), st.integers(1, 30))


class CapabilityMachine(LedgerMachine):
    """The ledger's machine with tiers and referrals (see the module docstring)."""

    #: more members, so that referrers refer several (and velocity flags some)
    max_members = 6

    def __init__(self) -> None:
        super().__init__()
        #: codes issued (the reference's), to refer with
        self.referral_codes: list[str] = []
        #: referees by the status of their referral when last written
        self.referees: dict[str, ReferralStatus] = {}

    @initialize(
        program=lst.programs(ids=st.just("machine")),
        payments=lst.payment_policies(),
        start=lst.instants(),
        members=st.lists(lst.member_ids(), min_size=2, max_size=3, unique=True),
        data=st.data(),
        tiers=tier_policies(),
        referrals=referral_policies(),
    )
    def start_with_capabilities(self, program: Program, payments: PaymentPolicy,
                                start: dt.datetime, members: list[str],
                                data: st.DataObject, tiers: TierPolicy,
                                referrals: ReferralPolicy) -> None:
        """:meth:`LedgerMachine.start` on ``program`` with ``tiers`` and ``referrals``."""
        LedgerMachine.start(self, attrs.evolve(program, tiers=tiers, referrals=referrals),
                            payments, start, members, data)

    # the ledger machine's own initialize rule would start it without the capabilities
    start = None  # type: ignore[assignment]

    @rule(data=st.data())
    def issue_code(self, data: st.DataObject) -> None:
        """Issue a referral code to a member."""
        member_id = self._member(data)
        key = self._key("code")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.referrals.issue_code(member_id, key=key)

        issued = self._run(f"issue_code({member_id!r})", call, key=key)
        if isinstance(issued, ReferralCode):
            self.referral_codes.append(issued.code)

    @precondition(lambda self: bool(self.referral_codes))
    @rule(data=st.data())
    def refer(self, data: st.DataObject) -> None:
        """Attach a code to a member (its owner's own: SelfReferral; a second one:
        AlreadyReferred)."""
        referee_id = self._member(data, "referee")
        code = data.draw(st.sampled_from(self.referral_codes), label="code")
        key = self._key("refer")

        def call(loyalty: Loyalty) -> Any:
            return loyalty.referrals.refer(referee_id, code, key=key)

        self._note(self._run(f"refer({referee_id!r}, {code!r})", call, key=key))

    def _note(self, referral: object) -> None:
        if isinstance(referral, Referral):
            self.referees[referral.referee_id] = referral.status

    def _referee(self, data: st.DataObject, status: ReferralStatus) -> str:
        """Mostly a referee whose referral was last written with ``status``."""
        pool = sorted(m for m, s in self.referees.items() if s is status)
        if pool and data.draw(st.integers(0, 3), label="a referee so") > 0:
            return data.draw(st.sampled_from(pool), label="referee")
        return self._member(data, "referee")

    @precondition(lambda self: bool(self.referees))
    @rule(data=st.data())
    def referee_orders(self, data: st.DataObject) -> None:
        """A referee places an order (that may qualify its referral); it may be
        returned or cancelled later."""
        member_id = self._referee(data, ReferralStatus.WAITING)
        order = Order(id=self._key("ref-order"), member_id=member_id,
                      placed_at=self.clock.now(), currency="EUR",
                      lines=(OrderLine(sku="a", quantity=2, unit_price=Money("5.00", "EUR"),
                                       line_id="l1"),))

        def call(loyalty: Loyalty) -> Any:
            return loyalty.record_order(order)

        if self._run(f"record_order({order.id}, referee {member_id!r})", call,
                     key=f"order:{order.id}") is not None:
            self.orders[order.id] = {"l1": 2}

    @rule(data=st.data(), approve=st.booleans())
    def decide(self, data: st.DataObject, approve: bool) -> None:
        """Approve or reject a member's referral (only a flagged one can be)."""
        referee_id = self._referee(data, ReferralStatus.FLAGGED)
        key = self._key("decide")

        def call(loyalty: Loyalty) -> Any:
            if approve:
                return loyalty.referrals.approve(referee_id, key=key)
            return loyalty.referrals.reject(referee_id, key=key, reason="machine")

        self._note(self._run(f"{'approve' if approve else 'reject'}({referee_id!r})", call,
                             key=key))
