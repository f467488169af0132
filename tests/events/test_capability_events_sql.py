"""Tier and referral events inside a host's transaction (SQL backend): they are
committed exactly when the change is, and gone with it when the host rolls back."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
import sqlalchemy as sa

from loyaltykit import Loyalty, MemberNotFound, Money, Order, OrderLine, Program, TestClock
from loyaltykit.sql import SQLStorage
from loyaltykit.sql.schema import outbox
from loyaltykit.testing.contract import berlin
from loyaltykit.testing.contract.referrals import referral_program
from loyaltykit.testing.contract.tiers import tier_program


def _program() -> Program:
    """Program R's tiers with scenario R's referral policy."""
    return attrs.evolve(tier_program(), referrals=referral_program().referrals)


def _changes(loyalty: Loyalty, clock: TestClock) -> None:
    """alice refers bob, whose first order (600.00 EUR) pays both: 500 points make
    alice silver, the order bob."""
    loyalty.enrol("alice")
    loyalty.enrol("bob", referral_code=loyalty.referrals.issue_code("alice").code)
    clock.set(clock.now() + dt.timedelta(days=1))
    loyalty.record_order(Order(
        id="o1", member_id="bob", placed_at=clock.now(), currency="EUR",
        lines=(OrderLine(sku="x", quantity=1, unit_price=Money("600.00", "EUR")),)))


CAPABILITY_EVENTS = ["referral.attributed", "referral.attributed", "referral.rewarded",
                     "referral.rewarded", "tier.changed", "tier.changed"]


def test_inside_a_host_transaction_that_rolls_back_no_event_exists(
        engine: sa.Engine) -> None:
    clock = TestClock(berlin(2026, 3, 1, 9))
    with engine.connect() as conn:
        conn.begin()
        loyalty = Loyalty(_program(), SQLStorage(conn), clock=clock)
        _changes(loyalty, clock)
        # (readers do not see them yet on PostgreSQL: the transaction is still open)
        inside = conn.scalars(sa.select(outbox.c.type).order_by(outbox.c.seq)).all()
        assert CAPABILITY_EVENTS == [t for t in inside if t.startswith(("tier.", "referral."))]
        conn.rollback()
    after = Loyalty(_program(), SQLStorage(engine), clock=clock)
    with pytest.raises(MemberNotFound):
        after.tiers.status("bob")
    assert [] == after.events.read("mailer")
    with engine.connect() as conn:
        assert 0 == conn.scalar(sa.select(sa.func.count()).select_from(outbox))


def test_inside_a_host_transaction_that_commits_the_events_come_with_it(
        engine: sa.Engine) -> None:
    clock = TestClock(berlin(2026, 3, 1, 9))
    with engine.connect() as conn, conn.begin():
        _changes(Loyalty(_program(), SQLStorage(conn), clock=clock), clock)
    after = Loyalty(_program(), SQLStorage(engine), clock=clock)
    assert CAPABILITY_EVENTS == [e.type for e in after.events.read("mailer", limit=100)
                                 if e.type.startswith(("tier.", "referral."))]
    assert "silver" == after.tiers.status("bob").tier
