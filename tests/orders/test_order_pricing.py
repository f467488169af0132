"""Pricing an order reads its member's context from checked values: a stored member
and the tier its program's tier policy gives are not checked again per order (in a
history import that cost as much as the rules), and the breakdown's context is the
one a checked ``MemberContext`` gives."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loyaltykit import (
    EarningPolicy,
    Loyalty,
    MemberContext,
    Money,
    Order,
    OrderLine,
    Program,
    RateRule,
    TestClock,
    Tier,
    TierPolicy,
)
from loyaltykit.memory import MemoryStorage

T0 = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _loyalty(tiers: bool) -> Loyalty:
    program = Program(id="shop", time_zone="UTC", currency="EUR",
                      point_value=Money("0.01", "EUR"),
                      earning=EarningPolicy(rules=(RateRule(id="rate"),)),
                      tiers=(TierPolicy(tiers=(Tier("base", 0), Tier("silver", 50)))
                             if tiers else None))
    return Loyalty(program, MemoryStorage(), clock=TestClock(T0.replace(year=2027)))


def _orders(n: int) -> list[Order]:
    return [Order(id=f"o{i}", member_id=f"m{i % 3}", currency="EUR",
                  placed_at=T0 + dt.timedelta(minutes=i),
                  lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),))
            for i in range(n)]


def test_a_tier_policys_orders_build_no_checked_context_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    checks: list[str] = []
    checked = MemberContext.__attrs_post_init__

    def counted(self: MemberContext) -> None:
        checks.append(self.member_id)
        checked(self)

    monkeypatch.setattr(MemberContext, "__attrs_post_init__", counted)
    loyalty = _loyalty(tiers=True)
    loyalty.enrol("m0", attributes={"b": 1, "a": [1, 2]})
    result = loyalty.record_orders(_orders(6), enrol=True)
    single = loyalty.record_order(Order(
        id="one", member_id="m0", currency="EUR", placed_at=T0 + dt.timedelta(hours=1),
        lines=(OrderLine(sku="x", quantity=1, unit_price=Money("20.00", "EUR")),)))
    assert (6, 0) == (result.recorded, len(result.failed))
    assert [] == checks
    # the breakdown's context is the checked one's, attributes and tier included
    member: Any = single.evaluation.context["member"]
    assert ["a", "b"] == list(member["attributes"])  # as checked: keys sorted
    assert {"b": 1, "a": [1, 2]} == member["attributes"]
    assert ("m0", "base", "1") == (member["member_id"], member["tier"],
                                   member["earn_multiplier"])


def test_a_tier_set_as_an_attribute_is_still_checked() -> None:
    loyalty = _loyalty(tiers=False)
    loyalty.enrol("m0", attributes={"tier": "Not A Tier"})
    result = loyalty.record_orders(_orders(1), enrol=True)
    assert 1 == len(result.failed)
