"""The earning-rule engine on its own (pure, no storage): scenarios E1-E5 of
SCENARIOS.md, stacking, priorities, caps, stamp cards, windows across daylight-saving
changes, rounding, re-evaluation after returns, and definitions as data."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import _fuzz
from loyaltykit._errors import InvalidInput, InvalidProgram
from loyaltykit._model import RuleUsage
from loyaltykit._orders import Event, Order, OrderLine
from loyaltykit._rules import (
    AllOf,
    AnyOf,
    Attribute,
    Base,
    Cap,
    CapPeriod,
    ChannelIn,
    EarningPolicy,
    Evaluation,
    EventBonusRule,
    FirstOrder,
    FixedRule,
    LineMatch,
    MemberContext,
    MinNet,
    MinTenure,
    MultiplierRule,
    Not,
    RateRule,
    Rounding,
    Rule,
    RuleGroup,
    Stacking,
    StampCardRule,
    StoreIn,
    TierIn,
    UsageQuery,
    Window,
    evaluate_event,
    evaluate_order,
    usage_queries,
    usage_rows,
)
from loyaltykit._values import Money
from loyaltykit.testing.strategies import earning_policies, instants, orders

TZ = "Europe/Berlin"
BERLIN = ZoneInfo(TZ)
UTC = dt.UTC
ANN = MemberContext("ann", dt.datetime(2025, 1, 10, 9, tzinfo=UTC))
GUS = MemberContext("gus", dt.datetime(2025, 1, 10, 9, tzinfo=UTC), tier="gold")


def berlin(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN)  # type: ignore[misc]


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def eur(amount: str) -> Money:
    return Money(amount, "EUR")


def q_policy(**changes: Any) -> EarningPolicy:
    return EarningPolicy(
        rules=(
            RateRule(id="base", description="1 point per 1.00 EUR of net goods"),
            MultiplierRule(id="beans", factor=Decimal(2), match=LineMatch(categories=("beans",))),
            MultiplierRule(id="gold", factor=Decimal("1.25"), condition=TierIn(("gold",))),
            FixedRule(id="weekend", points=50, condition=MinNet(Decimal("30.00")),
                      window=Window(weekdays=(6, 7)), caps=(Cap(500, CapPeriod.MONTH),)),
        ),
        **changes,
    )


Q = q_policy()


E1_AT = berlin(2026, 3, 14, 18)
MONDAY = utc(2026, 5, 4, 10)


def e1_order(at: dt.datetime = E1_AT, *, order_id: str = "o1",
             beans: int = 2, member_id: str = "ann") -> Order:
    return Order(
        id=order_id, member_id=member_id, placed_at=at, currency="EUR",
        lines=(
            OrderLine(sku="beans-sku", category="beans", quantity=beans,
                      unit_price=eur("12.50")),
            OrderLine(sku="mug", category="mug", quantity=1, unit_price=eur("9.99")),
        ),
        shipping=eur("4.90"),
    )


def simple_order(amount: str, at: dt.datetime = MONDAY, *, order_id: str = "s",
                 quantity: int = 1, category: str | None = None,
                 channel: str | None = None, attributes: dict[str, Any] | None = None
                 ) -> Order:
    return Order(id=order_id, member_id="ann", placed_at=at, currency="EUR",
                 lines=(OrderLine(sku="x", quantity=quantity, unit_price=eur(amount),
                                  category=category),),
                 channel=channel, attributes=attributes or {})


def points_by_rule(evaluation: Evaluation) -> dict[str, Decimal]:
    return {o.rule_id: o.points for o in evaluation.outcomes if o.applied}


class Member:
    """A member's usage rows, fed back evaluation after evaluation (what storage does)."""

    def __init__(self, policy: EarningPolicy, context: MemberContext = ANN) -> None:
        self.policy = policy
        self.context = context
        self.rows: dict[tuple[str, str], RuleUsage] = {}
        self.evaluations: dict[str, Evaluation] = {}
        self.orders: dict[str, Order] = {}

    def usage(self, at: dt.datetime, event_type: str | None = None) -> list[RuleUsage]:
        """The rows usage_queries asks for (one row may come back more than once)."""
        found = []
        for q in usage_queries(self.policy, TZ, at, event_type=event_type):
            for row in self.rows.values():
                if not (row.rule_id in q.rule_ids or row.group in q.groups):
                    continue
                if q.since is not None and row.occurred_at < q.since:
                    continue
                if q.until is not None and row.occurred_at >= q.until:
                    continue
                found.append(row)
        return found

    def keep(self, rows: Iterable[RuleUsage]) -> None:
        for row in rows:
            self.rows[(row.source, row.rule_id)] = row

    def order(self, order: Order) -> Evaluation:
        evaluation = evaluate_order(self.policy, TZ, order, self.context,
                                    usage=self.usage(order.placed_at))
        self.keep(usage_rows(evaluation, program_id="Q", member_id="ann",
                             source=f"order:{order.id}", occurred_at=order.placed_at))
        self.evaluations[order.id] = evaluation
        self.orders[order.id] = order
        return evaluation

    def give_back(self, order_id: str, returned: dict[str, int]) -> Evaluation:
        original = self.orders[order_id]
        previous = self.evaluations[order_id]
        evaluation = evaluate_order(self.policy, TZ, original.after_returns(returned),
                                    MemberContext("ann", original.placed_at),
                                    previous=previous)
        self.keep(usage_rows(evaluation, program_id="Q", member_id="ann",
                             source=f"order:{order_id}", occurred_at=original.placed_at,
                             previous=previous))
        self.evaluations[order_id] = evaluation
        return evaluation

    def event(self, event: Event) -> Evaluation:
        evaluation = evaluate_event(self.policy, TZ, event, self.context,
                                    usage=self.usage(event.occurred_at, event.type))
        self.keep(usage_rows(evaluation, program_id="Q", member_id="ann",
                             source=f"event:{event.id}", occurred_at=event.occurred_at))
        return evaluation


# -- E1-E5 --------------------------------------------------------------------------------


def test_e1_breakdown_and_floor_once() -> None:
    evaluation = evaluate_order(Q, TZ, e1_order(), ANN)
    assert 109 == evaluation.points
    assert Decimal("109.99") == evaluation.unrounded
    assert Decimal("34.99") == evaluation.net
    assert {"base": Decimal("34.99"), "beans": Decimal("25.00"),
            "weekend": Decimal(50)} == points_by_rule(evaluation)
    assert ["base", "beans", "gold", "weekend"] == [o.rule_id for o in evaluation.outcomes]
    base, beans, gold, weekend = evaluation.outcomes
    assert "1 point per 1.00 EUR on 34.99 EUR net goods = 34.99" == base.explanation
    assert "x2 on 25.00 points of matching lines = +25.00" == beans.explanation
    assert "not applied: tier (none) is not gold" == gold.explanation
    assert "50 points per order" == weekend.explanation
    assert "1 point per 1.00 EUR of net goods" == base.description
    assert (True, False) == (weekend.tracked, base.tracked)


def test_e2_gold_multiplier_applies_after_category() -> None:
    evaluation = evaluate_order(Q, TZ, e1_order(), GUS)
    assert Decimal("124.9875") == evaluation.unrounded
    assert 124 == evaluation.points
    assert Decimal("14.9975") == points_by_rule(evaluation)["gold"]


def test_e3_return_reevaluates_the_order_as_it_stands() -> None:
    order = e1_order()
    placed = evaluate_order(Q, TZ, order, ANN)
    after = evaluate_order(Q, TZ, order.after_returns({"beans-sku": 1}),
                           MemberContext("someone else", utc(2020, 1, 1), tier="gold"),
                           previous=placed)
    assert 34 == after.points
    assert Decimal("34.99") == after.unrounded
    assert 75 == placed.points - after.points
    assert {"base": Decimal("22.49"), "beans": Decimal("12.50")} == points_by_rule(after)
    assert "not applied: net goods 22.49 EUR < 30.00 EUR" == after.outcome(
        "weekend").explanation  # type: ignore[union-attr]
    assert placed.context == after.context


def test_e4_weekend_is_berlin_time() -> None:
    saturday = evaluate_order(Q, TZ, e1_order(utc(2026, 3, 13, 23, 30)), ANN)
    monday = evaluate_order(Q, TZ, e1_order(utc(2026, 3, 15, 23, 30)), ANN)
    assert 109 == saturday.points
    assert 59 == monday.points
    assert "not applied: Mon is not one of Sat, Sun" == monday.outcome(
        "weekend").explanation  # type: ignore[union-attr]


def test_e5_monthly_cap_on_the_weekend_bonus() -> None:
    member = Member(Q)
    days = [(7, 10), (7, 11), (7, 12), (8, 9), (14, 10), (14, 15), (15, 9), (21, 8),
            (22, 20), (28, 11), (29, 12)]
    bonuses = [points_by_rule(member.order(e1_order(berlin(2026, 3, d, h), order_id=f"m{n}")))
               .get("weekend", Decimal(0)) for n, (d, h) in enumerate(days)]
    assert [Decimal(50)] * 10 + [Decimal(0)] == bonuses
    eleventh = member.evaluations["m10"]
    assert 59 == eleventh.points
    assert "50 points per order; capped at 500 per calendar month: 0 of 50" == \
        eleventh.outcome("weekend").explanation  # type: ignore[union-attr]
    april = member.order(e1_order(berlin(2026, 4, 4, 10), order_id="apr"))
    assert Decimal(50) == points_by_rule(april)["weekend"]


def test_a_return_frees_cap_room() -> None:
    member = Member(Q)
    for n in range(10):
        member.order(e1_order(berlin(2026, 3, 7, 10 + n), order_id=f"c{n}"))
    assert 0 == member.give_back("c0", {"beans-sku": 2}).outcome(
        "weekend").points  # type: ignore[union-attr]
    later = member.order(e1_order(berlin(2026, 3, 8, 10), order_id="c10"))
    assert Decimal(50) == points_by_rule(later)["weekend"]


# -- stacking, priority, exclusivity ------------------------------------------------------


def two_multipliers(stacking: Stacking) -> EarningPolicy:
    return EarningPolicy(rules=(
        RateRule(id="base"),
        MultiplierRule(id="double", factor=Decimal(2)),
        MultiplierRule(id="half_more", factor=Decimal("1.5")),
    ), stacking=stacking)


@pytest.mark.parametrize(("stacking", "expected"), [
    (Stacking.MULTIPLY, {"base": Decimal(100), "double": Decimal(100),
                         "half_more": Decimal(100)}),
    (Stacking.ADD, {"base": Decimal(100), "double": Decimal(100), "half_more": Decimal(50)}),
])
def test_stacking(stacking: Stacking, expected: dict[str, Decimal]) -> None:
    evaluation = evaluate_order(two_multipliers(stacking), TZ, simple_order("100.00"), ANN)
    assert expected == points_by_rule(evaluation)
    assert sum(expected.values()) == evaluation.points


def test_factors_below_one_take_points_away_but_never_below_zero() -> None:
    policy = EarningPolicy(rules=(
        RateRule(id="base"),
        MultiplierRule(id="none", factor=Decimal(0)),
        MultiplierRule(id="half", factor=Decimal("0.5")),
    ), stacking=Stacking.ADD)
    evaluation = evaluate_order(policy, TZ, simple_order("10.00"), ANN)
    assert {"base": Decimal(10), "none": Decimal(-10), "half": Decimal(-5)} == \
        points_by_rule(evaluation)
    assert (0, Decimal(-5)) == (evaluation.points, evaluation.unrounded)
    assert "x0.5 on 10.00 points = -5.000" == evaluation.outcomes[2].explanation


def test_a_return_never_adds_points_even_when_a_reduction_lapses() -> None:
    policy = EarningPolicy(rules=(
        RateRule(id="base"),
        MultiplierRule(id="big_orders_earn_nothing", factor=Decimal(0),
                       condition=MinNet(Decimal(30))),
    ))
    order = Order(id="o", member_id="ann", placed_at=MONDAY, currency="EUR", lines=(
        OrderLine(sku="a", quantity=2, unit_price=eur("20.00")),))
    placed = evaluate_order(policy, TZ, order, ANN)
    assert 0 == placed.points
    after = evaluate_order(policy, TZ, order.after_returns({"a": 1}), ANN, previous=placed)
    assert (0, Decimal(20)) == (after.points, after.unrounded)


def test_multipliers_touch_only_their_lines_and_shipping_with_the_base() -> None:
    policy = EarningPolicy(rules=(
        RateRule(id="base", base=Base.NET_GOODS_AND_SHIPPING),
        MultiplierRule(id="tea", factor=Decimal(3), match=LineMatch(skus=("tea",))),
        MultiplierRule(id="all", factor=Decimal("1.1")),
    ))
    order = Order(id="o", member_id="ann", placed_at=utc(2026, 5, 4), currency="EUR", lines=(
        OrderLine(sku="tea", quantity=1, unit_price=eur("10.00")),
        OrderLine(sku="cup", quantity=2, unit_price=eur("5.00")),
    ), shipping=eur("5.00"))
    evaluation = evaluate_order(policy, TZ, order, ANN)
    # base 25 (tea 10 + cups 10 + shipping 5); tea +20; all: (30 + 10 + 5) x 0.1
    assert {"base": Decimal(25), "tea": Decimal(20), "all": Decimal("4.5")} == \
        points_by_rule(evaluation)
    assert 49 == evaluation.points
    assert ("1 point per 1.00 EUR on 25.00 EUR net goods and shipping = 25.00"
            == evaluation.outcomes[0].explanation)


def test_multipliers_never_touch_fixed_points() -> None:
    policy = EarningPolicy(rules=(
        FixedRule(id="bonus", points=10),
        MultiplierRule(id="double", factor=Decimal(2)),
    ))
    evaluation = evaluate_order(policy, TZ, simple_order("1.00"), ANN)
    assert ["double", "bonus"] == [o.rule_id for o in evaluation.outcomes]
    assert 10 == evaluation.points


def test_priority_then_definition_order_and_exclusive() -> None:
    policy = EarningPolicy(rules=(
        RateRule(id="base"),
        MultiplierRule(id="low", factor=Decimal(2)),
        MultiplierRule(id="promo", factor=Decimal(3), priority=5, exclusive=True,
                       condition=ChannelIn(("app",))),
        MultiplierRule(id="also_low", factor=Decimal(2)),
        FixedRule(id="fixed", points=1),
    ))
    app = evaluate_order(policy, TZ, simple_order("10.00", channel="app"), ANN)
    assert ["base", "promo", "low", "also_low", "fixed"] == [o.rule_id for o in app.outcomes]
    assert {"base": Decimal(10), "promo": Decimal(20), "fixed": Decimal(1)} == \
        points_by_rule(app)
    assert "skipped: exclusive rule promo applied" == app.outcomes[2].explanation
    assert 31 == app.points
    web = evaluate_order(policy, TZ, simple_order("10.00", channel="web"), ANN)
    assert {"base": Decimal(10), "low": Decimal(10), "also_low": Decimal(20),
            "fixed": Decimal(1)} == points_by_rule(web)
    assert "not applied: channel web is not app" == web.outcomes[1].explanation


def test_rate_rules_add_up_per_line() -> None:
    policy = EarningPolicy(rules=(
        RateRule(id="base", points=Decimal(1), per=Decimal(10)),
        RateRule(id="tea", points=Decimal(5), per=Decimal(1), match=LineMatch(
            categories=("tea",))),
        MultiplierRule(id="tea_double", factor=Decimal(2), match=LineMatch(
            categories=("tea",))),
    ))
    order = Order(id="o", member_id="ann", placed_at=utc(2026, 5, 4), currency="EUR", lines=(
        OrderLine(sku="t", quantity=1, unit_price=eur("2.00"), category="tea"),
        OrderLine(sku="c", quantity=1, unit_price=eur("30.00"), category="cake"),
    ))
    evaluation = evaluate_order(policy, TZ, order, ANN)
    assert {"base": Decimal("3.2"), "tea": Decimal(10), "tea_double": Decimal("10.2")} == \
        points_by_rule(evaluation)
    assert 23 == evaluation.points


def test_a_rate_that_does_not_divide_evenly() -> None:
    policy = EarningPolicy(rules=(RateRule(id="base", per=Decimal(3)),),
                           rounding=Rounding.HALF_UP)
    order = Order(id="o", member_id="ann", placed_at=utc(2026, 5, 4), currency="EUR",
                  lines=tuple(OrderLine(sku=f"s{i}", quantity=1, unit_price=eur("1.00"))
                              for i in range(3)))
    assert 1 == evaluate_order(policy, TZ, order, ANN).points


# -- rounding, maximum, empty orders ------------------------------------------------------


@pytest.mark.parametrize(("rounding", "amount", "expected"), [
    (Rounding.FLOOR, "109.50", 109),
    (Rounding.HALF_UP, "109.50", 110),
    (Rounding.HALF_EVEN, "109.50", 110),
    (Rounding.CEILING, "109.50", 110),
    (Rounding.FLOOR, "108.50", 108),
    (Rounding.HALF_UP, "108.50", 109),
    (Rounding.HALF_EVEN, "108.50", 108),
    (Rounding.CEILING, "108.01", 109),
    (Rounding.HALF_UP, "108.49", 108),
])
def test_rounding_modes(rounding: Rounding, amount: str, expected: int) -> None:
    policy = EarningPolicy(rules=(RateRule(id="base"),), rounding=rounding)
    evaluation = evaluate_order(policy, TZ, simple_order(amount), ANN)
    assert (expected, Decimal(amount)) == (evaluation.points, evaluation.unrounded)


def test_max_points_per_order() -> None:
    assert 100 == evaluate_order(q_policy(max_points_per_order=100), TZ, e1_order(),
                                 ANN).points
    assert 109 == evaluate_order(q_policy(max_points_per_order=109), TZ, e1_order(),
                                 ANN).points


def test_an_order_with_nothing_left_is_worth_nothing() -> None:
    order = e1_order()
    placed = evaluate_order(Q, TZ, order, ANN)
    nothing = evaluate_order(Q, TZ, order.after_returns({"beans-sku": 2, "mug": 1}), ANN,
                             previous=placed)
    assert (0, Decimal(0)) == (nothing.points, nothing.unrounded)
    assert {"nothing left of the order"} == {o.explanation for o in nothing.outcomes}
    rows = usage_rows(nothing, program_id="Q", member_id="ann", source="order:o1",
                      occurred_at=order.placed_at, previous=placed)
    assert [("weekend", Decimal(0))] == [(r.rule_id, r.points) for r in rows]


# -- caps ---------------------------------------------------------------------------------


def test_order_caps_and_per_item_points() -> None:
    policy = EarningPolicy(rules=(
        FixedRule(id="per_cup", points=5, per_item=True, match=LineMatch(categories=("cup",)),
                  caps=(Cap(20, CapPeriod.ORDER),)),
    ))
    three = evaluate_order(policy, TZ, simple_order("1.00", quantity=3, category="cup"), ANN)
    ten = evaluate_order(policy, TZ, simple_order("1.00", quantity=10, category="cup"), ANN)
    none = evaluate_order(policy, TZ, simple_order("1.00", quantity=10, category="tea"), ANN)
    assert (15, 20, 0) == (three.points, ten.points, none.points)
    assert "5 points x 10 items = 50; capped at 20 per order: 20 of 50" == \
        ten.outcomes[0].explanation
    assert "not applied: no matching line" == none.outcomes[0].explanation


def test_group_caps_are_shared_in_evaluation_order() -> None:
    policy = EarningPolicy(
        rules=(
            FixedRule(id="a", points=80, group="promo"),
            FixedRule(id="b", points=50, group="promo"),
            FixedRule(id="c", points=10),
        ),
        groups=(RuleGroup("promo", (Cap(100, CapPeriod.ORDER), Cap(150, CapPeriod.WEEK))),),
    )
    assert frozenset({"a", "b"}) == policy.tracked_rule_ids
    member = Member(policy)
    first = member.order(simple_order("1.00", utc(2026, 5, 4, 10), order_id="1"))
    assert {"a": Decimal(80), "b": Decimal(20), "c": Decimal(10)} == points_by_rule(first)
    assert ("50 points per order; group promo capped at 100 per order: 20 of 50"
            == first.outcome("b").explanation)  # type: ignore[union-attr]
    second = member.order(simple_order("1.00", utc(2026, 5, 10, 10), order_id="2"))
    assert {"a": Decimal(50), "b": Decimal(0), "c": Decimal(10)} == points_by_rule(second)
    next_week = member.order(simple_order("1.00", utc(2026, 5, 11, 10), order_id="3"))
    assert {"a": Decimal(80), "b": Decimal(20), "c": Decimal(10)} == points_by_rule(next_week)


def test_a_capped_rate_shares_its_room_over_the_lines() -> None:
    policy = EarningPolicy(rules=(
        RateRule(id="base", caps=(Cap(10, CapPeriod.ORDER),)),
        MultiplierRule(id="tea", factor=Decimal(2), match=LineMatch(skus=("tea",))),
    ))
    order = Order(id="o", member_id="ann", placed_at=utc(2026, 5, 4), currency="EUR", lines=(
        OrderLine(sku="tea", quantity=1, unit_price=eur("15.00")),
        OrderLine(sku="cup", quantity=1, unit_price=eur("5.00")),
    ))
    evaluation = evaluate_order(policy, TZ, order, ANN)
    assert {"base": Decimal(10), "tea": Decimal("7.5")} == points_by_rule(evaluation)


def test_rolling_caps_hold_for_orders_that_arrive_out_of_order() -> None:
    policy = EarningPolicy(rules=(
        FixedRule(id="bonus", points=60, caps=(Cap(100, CapPeriod.ROLLING, days=7),)),
    ))
    member = Member(policy)
    assert 60 == member.order(simple_order("1", utc(2026, 5, 10), order_id="a")).points
    # five days earlier: the window (May 3, May 10] would hold both
    assert 40 == member.order(simple_order("1", utc(2026, 5, 5), order_id="b")).points
    assert 0 == member.order(simple_order("1", utc(2026, 5, 6), order_id="c")).points
    # May 12: windows ending May 12..18 see "a" (60) but not "b"
    assert 40 == member.order(simple_order("1", utc(2026, 5, 12), order_id="d")).points
    assert 60 == member.order(simple_order("1", utc(2026, 5, 17), order_id="e")).points
    # May 17 + 7 days: "e" has left the window
    assert 60 == member.order(simple_order("1", utc(2026, 5, 24), order_id="f")).points


def test_lifetime_caps_and_event_bonuses() -> None:
    policy = EarningPolicy(rules=(
        EventBonusRule(id="welcome", event="sign_up", points=250,
                       caps=(Cap(250, CapPeriod.LIFETIME),)),
        EventBonusRule(id="birthday", event="birthday", points=100,
                       caps=(Cap(100, CapPeriod.YEAR),)),
        EventBonusRule(id="loyal", event="anniversary", points=500, condition=MinTenure(2)),
        RateRule(id="base"),
    ))
    member = Member(policy, MemberContext("ann", berlin(2024, 3, 1, 12)))

    def event(event_id: str, kind: str, at: dt.datetime) -> int:
        return member.event(Event(id=event_id, type=kind, member_id="ann",
                                  occurred_at=at)).points

    assert 250 == event("s1", "sign_up", berlin(2024, 3, 1, 12))
    assert 0 == event("s2", "sign_up", berlin(2025, 3, 1))
    assert 100 == event("b1", "birthday", berlin(2026, 5, 4))
    assert 0 == event("b2", "birthday", berlin(2026, 12, 31, 23, 59))
    assert 100 == event("b3", "birthday", berlin(2027, 1, 1, 0, 0))
    assert 0 == event("r", "review", berlin(2026, 5, 4))
    assert 0 == event("a1", "anniversary", berlin(2026, 3, 1, 11, 59))
    assert 500 == event("a2", "anniversary", berlin(2026, 3, 1, 12))
    review = evaluate_event(policy, TZ, Event(id="r", type="review", member_id="ann",
                                              occurred_at=berlin(2026, 5, 4)), ANN)
    assert ((), 0, "") == (review.outcomes, review.points, review.currency)
    too_new = evaluate_event(policy, TZ, Event(id="a", type="anniversary", member_id="ann",
                                               occurred_at=berlin(2026, 3, 1)),
                             MemberContext("ann", berlin(2025, 6, 1)))
    assert "not applied: member for 0 full years < 2" == too_new.outcomes[0].explanation


def test_usage_of_the_source_itself_is_ignored_and_duplicates_count_once() -> None:
    policy = EarningPolicy(rules=(FixedRule(id="bonus", points=60,
                                            caps=(Cap(100, CapPeriod.MONTH),)),))
    order = simple_order("1", utc(2026, 5, 10), order_id="a")
    own = RuleUsage("Q", "ann", "order:a", "bonus", None, utc(2026, 5, 10), Decimal(60))
    other = RuleUsage("Q", "ann", "order:b", "bonus", None, utc(2026, 5, 11), Decimal(50))
    assert 60 == evaluate_order(policy, TZ, order, ANN, usage=[own]).points
    same_again = attrs.evolve(other)  # two queries may return the same row
    assert 50 == evaluate_order(policy, TZ, order, ANN, usage=[own, other, same_again]).points


# -- stamp cards --------------------------------------------------------------------------


def test_stamp_card_counting_items() -> None:
    policy = EarningPolicy(rules=(
        StampCardRule(id="coffee", every=10, points=30, reward="free_coffee", counts="items",
                      match=LineMatch(categories=("coffee",))),
    ))
    member = Member(policy)
    results = [member.order(simple_order("3.20", utc(2026, 5, d), order_id=f"c{d}",
                                         quantity=q, category="coffee"))
               for d, q in ((1, 4), (2, 5), (3, 3), (4, 9), (5, 1))]
    assert [0, 0, 30, 30, 0] == [r.points for r in results]
    assert [(), (), ("free_coffee",), ("free_coffee",), ()] == [r.rewards for r in results]
    assert ("3 stamps (9 -> 12, a card of 10): 1 reward = 30 points"
            == results[2].outcomes[0].explanation)
    assert {"coffee": 21} == results[4].context["stamps_before"]
    tea = member.order(simple_order("3.20", utc(2026, 5, 6), order_id="t", category="tea"))
    assert "not applied: no matching line" == tea.outcomes[0].explanation
    back = member.give_back("c3", {"x": 2})  # 1 cup kept: 9 -> 10 still fills the card
    assert (30, ("free_coffee",)) == (back.points, back.rewards)
    back = member.give_back("c3", {"x": 3})  # 0 stamps: the reward is gone
    assert (0, (), 0) == (back.points, back.rewards, back.outcomes[0].stamps)


def test_stamp_card_every_tenth_order_and_reward_only() -> None:
    policy = EarningPolicy(rules=(StampCardRule(id="tenth", every=10, reward="gift"),))
    member = Member(policy)
    rewards = [member.order(simple_order("1.00", utc(2026, 5, 1, n), order_id=f"o{n}",
                                         quantity=3)).rewards for n in range(21)]
    assert [i for i, r in enumerate(rewards) if r] == [9, 19]
    assert ("gift",) == rewards[9]


def test_stamp_card_counting_visits() -> None:
    policy = EarningPolicy(rules=(
        StampCardRule(id="visits", every=10, points=100, counts="events", event="visit"),
        StampCardRule(id="orders", every=2, points=1),
    ))
    member = Member(policy)
    points = [member.event(Event(id=f"v{n}", type="visit", member_id="ann",
                                 occurred_at=utc(2026, 5, 1, n))).points for n in range(12)]
    assert [0] * 9 + [100, 0, 0] == points
    order = member.order(simple_order("1.00", utc(2026, 5, 2), order_id="o"))
    assert ["orders"] == [o.rule_id for o in order.outcomes]


# -- windows and the time zone -------------------------------------------------------------


NIGHT = EarningPolicy(rules=(FixedRule(id="night", points=7, window=Window(
    hours=((dt.time(2), dt.time(3)),))),))


@pytest.mark.parametrize(("at", "expected"), [
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST, the hour never happens
    (utc(2026, 3, 29, 0, 30), 0),   # 01:30 CET
    (utc(2026, 3, 29, 0, 59), 0),   # 01:59 CET
    (utc(2026, 3, 29, 1, 0), 0),    # 03:00 CEST
    (utc(2026, 3, 29, 1, 30), 0),   # 03:30 CEST
    (utc(2026, 3, 30, 0, 30), 7),   # 02:30 CEST the next day
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET, the hour happens twice
    (utc(2026, 10, 24, 23, 59), 0),  # 01:59 CEST
    (utc(2026, 10, 25, 0, 30), 7),   # 02:30 CEST
    (utc(2026, 10, 25, 1, 30), 7),   # 02:30 CET
    (utc(2026, 10, 25, 2, 0), 0),    # 03:00 CET
])
def test_hours_across_daylight_saving_changes(at: dt.datetime, expected: int) -> None:
    assert expected == evaluate_order(NIGHT, TZ, simple_order("1", at), ANN).points


SUNDAY = EarningPolicy(rules=(FixedRule(id="sunday", points=3, window=Window(weekdays=(7,))),))


@pytest.mark.parametrize(("at", "expected"), [
    (utc(2026, 3, 28, 22, 59), 0),  # Sat 23:59 CET
    (utc(2026, 3, 28, 23, 0), 3),   # Sun 00:00 CET
    (utc(2026, 3, 29, 21, 59), 3),  # Sun 23:59 CEST
    (utc(2026, 3, 29, 22, 0), 0),   # Mon 00:00 CEST
    (utc(2026, 10, 24, 21, 59), 0),  # Sat 23:59 CEST
    (utc(2026, 10, 24, 22, 0), 3),  # Sun 00:00 CEST
    (utc(2026, 10, 25, 22, 59), 3),  # Sun 23:59 CET
    (utc(2026, 10, 25, 23, 0), 0),  # Mon 00:00 CET
])
def test_weekdays_at_local_midnight_around_daylight_saving(at: dt.datetime,
                                                           expected: int) -> None:
    assert expected == evaluate_order(SUNDAY, TZ, simple_order("1", at), ANN).points


def test_dates_and_late_hours() -> None:
    policy = EarningPolicy(rules=(FixedRule(id="late", points=1, window=Window(
        start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 31),
        hours=((dt.time(22), dt.time(0)),))),))

    def points(at: dt.datetime) -> int:
        return evaluate_order(policy, TZ, simple_order("1", at), ANN).points

    assert [0, 1, 1, 0, 0] == [points(berlin(2026, 5, 1, 21, 59)), points(berlin(2026, 5, 1, 22)),
                               points(berlin(2026, 5, 31, 23, 59)), points(berlin(2026, 6, 1, 22)),
                               points(berlin(2026, 4, 30, 23))]
    out = evaluate_order(policy, TZ, simple_order("1", berlin(2026, 6, 1, 22)), ANN)
    assert ("not applied: 2026-06-01 is outside 2026-05-01 to 2026-05-31"
            == out.outcomes[0].explanation)


def test_day_periods_follow_the_local_calendar_across_daylight_saving() -> None:
    policy = EarningPolicy(rules=(FixedRule(id="daily", points=5,
                                            caps=(Cap(5, CapPeriod.DAY),)),))
    spring = usage_queries(policy, TZ, utc(2026, 3, 29, 12))
    autumn = usage_queries(policy, TZ, utc(2026, 10, 25, 12))
    assert [UsageQuery(("daily",), (), utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))] == spring
    assert [UsageQuery(("daily",), (), utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))] == autumn


@pytest.mark.parametrize(("period", "days", "at", "since", "until"), [
    (CapPeriod.WEEK, None, berlin(2026, 3, 15, 23), berlin(2026, 3, 9), berlin(2026, 3, 16)),
    (CapPeriod.MONTH, None, berlin(2026, 12, 31, 23), berlin(2026, 12, 1), berlin(2027, 1, 1)),
    (CapPeriod.QUARTER, None, berlin(2026, 5, 4), berlin(2026, 4, 1), berlin(2026, 7, 1)),
    (CapPeriod.YEAR, None, berlin(2026, 1, 1), berlin(2026, 1, 1), berlin(2027, 1, 1)),
    (CapPeriod.ROLLING, 30, utc(2026, 5, 4), utc(2026, 4, 4), utc(2026, 6, 3)),
    (CapPeriod.LIFETIME, None, utc(2026, 5, 4), None, None),
])
def test_usage_queries_cover_the_period(period: CapPeriod, days: int | None, at: dt.datetime,
                                        since: dt.datetime | None,
                                        until: dt.datetime | None) -> None:
    policy = EarningPolicy(rules=(FixedRule(id="f", points=1, caps=(Cap(9, period, days),)),))
    assert [UsageQuery(("f",), (), since, until)] == usage_queries(policy, TZ, at)


def test_usage_queries_only_for_tracked_rules_of_the_source_kind() -> None:
    policy = EarningPolicy(
        rules=(
            RateRule(id="base"),
            FixedRule(id="order_cap_only", points=1, caps=(Cap(1, CapPeriod.ORDER),)),
            EventBonusRule(id="bday", event="birthday", points=1, group="g"),
            StampCardRule(id="card", every=3, points=1),
        ),
        groups=(RuleGroup("g", (Cap(5, CapPeriod.YEAR),)),),
    )
    at = berlin(2026, 5, 4)
    assert [UsageQuery(("card",), (), None, None)] == usage_queries(policy, TZ, at)
    assert [UsageQuery((), ("g",), berlin(2026, 1, 1), berlin(2027, 1, 1))] == usage_queries(
        policy, TZ, at, event_type="birthday")
    assert [] == usage_queries(policy, TZ, at, event_type="visit")
    assert [] == usage_queries(EarningPolicy(rules=(RateRule(id="b"),)), TZ, at)
    assert frozenset({"order_cap_only", "bday", "card"}) == policy.tracked_rule_ids


# -- conditions ---------------------------------------------------------------------------


VIP = MemberContext("ann", utc(2025, 1, 1), attributes={
    "segment": "vip", "age": 30, "spent": "120.50", "since": "2024-02-01", "flag": True})


@pytest.mark.parametrize(("condition", "holds"), [
    (Attribute("member", "segment", "eq", "vip"), True),
    (Attribute("member", "segment", "ne", "vip"), False),
    (Attribute("member", "segment", "in", ("gold", "vip")), True),
    (Attribute("member", "segment", "not_in", ("gold", "vip")), False),
    (Attribute("member", "age", "gt", 29), True),
    (Attribute("member", "age", "gte", Decimal("30.0")), True),
    (Attribute("member", "age", "lt", 30), False),
    (Attribute("member", "age", "lte", 30), True),
    (Attribute("member", "spent", "gt", Decimal("100")), True),
    (Attribute("member", "since", "lt", "2025-01-01"), True),
    (Attribute("member", "age", "gt", "20"), False),  # a number is not a str
    (Attribute("member", "flag", "eq", 1), False),  # True is not 1
    (Attribute("member", "flag", "eq", True), True),
    (Attribute("member", "missing", "ne", "x"), False),
    (Attribute("member", "missing", "exists"), False),
    (Attribute("member", "age", "exists"), True),
    (Attribute("order", "source", "eq", "newsletter"), True),
    (Attribute("event", "source", "eq", "newsletter"), False),  # an order has no event
    (AllOf((FirstOrder(), MinNet(Decimal(5)))), False),
    (AnyOf((FirstOrder(), MinNet(Decimal(5)))), True),
    (Not(StoreIn(("berlin",))), True),
    (MinNet(Decimal("10.00")), True),
    (MinNet(Decimal("10.01")), False),
    (MinTenure(1), True),
    (MinTenure(2), False),
])
def test_conditions(condition: Any, holds: bool) -> None:
    policy = EarningPolicy(rules=(FixedRule(id="f", points=1, condition=condition),))
    order = simple_order("10.00", utc(2026, 5, 4), attributes={"source": "newsletter"})
    evaluation = evaluate_order(policy, TZ, order, VIP)
    assert holds == evaluation.outcomes[0].applied
    assert (1 if holds else 0) == evaluation.points


def test_first_order_is_known_to_the_policy() -> None:
    policy = EarningPolicy(rules=(FixedRule(id="first", points=100, condition=AllOf(
        (Not(ChannelIn(("shop",))), FirstOrder()))),))
    assert policy.needs_first_order
    assert not Q.needs_first_order
    first = MemberContext("ann", utc(2025, 1, 1), first_order=True)
    assert 100 == evaluate_order(policy, TZ, simple_order("1"), first).points
    assert 0 == evaluate_order(policy, TZ, simple_order("1"), ANN).points


# -- definitions as data ------------------------------------------------------------------


@pytest.mark.slow
@given(earning_policies(max_rules=8))
def test_policy_round_trips_through_json(policy: EarningPolicy) -> None:
    data = json.loads(json.dumps(policy.to_dict()))
    assert policy == EarningPolicy.from_dict(data)
    assert data == EarningPolicy.from_dict(data).to_dict()


def test_policy_dict_shape() -> None:
    assert {
        "rules": [
            {"type": "rate", "id": "base", "description": "1 point per 1.00 EUR of net goods",
             "priority": 0, "exclusive": False, "group": None, "window": None,
             "condition": None, "caps": [], "points": "1", "per": "1", "base": "net_goods",
             "match": None},
            {"type": "multiplier", "id": "beans", "description": "", "priority": 0,
             "exclusive": False, "group": None, "window": None, "condition": None, "caps": [],
             "factor": "2", "match": {"categories": ["beans"], "skus": []}},
            {"type": "multiplier", "id": "gold", "description": "", "priority": 0,
             "exclusive": False, "group": None, "window": None,
             "condition": {"type": "tier_in", "tiers": ["gold"]}, "caps": [],
             "factor": "1.25", "match": None},
            {"type": "fixed", "id": "weekend", "description": "", "priority": 0,
             "exclusive": False, "group": None,
             "window": {"start": None, "end": None, "weekdays": [6, 7], "hours": []},
             "condition": {"type": "min_net", "amount": "30.00"},
             "caps": [{"points": 500, "period": "month", "days": None}],
             "points": 50, "per_item": False, "match": None},
        ],
        "groups": [], "rounding": "floor", "stacking": "multiply",
        "max_points_per_order": None,
    } == Q.to_dict()


def test_from_dict_accepts_day_names_native_times_and_defaults() -> None:
    policy = EarningPolicy.from_dict({"rules": [
        {"type": "fixed", "id": "w", "points": 5,
         "window": {"weekdays": ["Sat", "sunday"], "hours": [[dt.time(8), "12:30"]],
                    "start": dt.date(2026, 1, 1)},
         "condition": {"type": "attribute", "scope": "member", "name": "spent", "op": "gte",
                       "value": {"decimal": "99.5"}}},
        {"type": "rate", "id": "base"},
    ]})
    assert Window(start=dt.date(2026, 1, 1), weekdays=(6, 7),
                  hours=((dt.time(8), dt.time(12, 30)),)) == policy.rules[0].window
    assert Attribute("member", "spent", "gte", Decimal("99.5")) == policy.rules[0].condition
    assert RateRule(id="base") == policy.rules[1]
    assert EarningPolicy() == EarningPolicy.from_dict({})


def _rule(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": "fixed", "id": "f", "points": 5}
    data.update(changes)
    return data


@pytest.mark.parametrize(("data", "field"), [
    ([], "earning"),
    ({"rulez": []}, "earning.rulez"),
    ({"rules": {"id": "x"}}, "earning.rules"),
    ({"rules": ["rate"]}, "earning.rules[0]"),
    ({"rules": [{"id": "x"}]}, "earning.rules[0].type"),
    ({"rules": [{"type": "bonus", "id": "x"}]}, "earning.rules[0].type"),
    ({"rules": [{"type": "rate"}]}, "earning.rules[0].id"),
    ({"rules": [{"type": "multiplier", "id": "m"}]}, "earning.rules[0].factor"),
    ({"rules": [_rule(), {"type": "multiplier", "id": "m", "factor": "-1"}]},
     "earning.rules[1].factor"),
    ({"rules": [{"type": "multiplier", "id": "m", "factor": 1.5}]}, "earning.rules[0].factor"),
    ({"rules": [{"type": "multiplier", "id": "m", "factor": "NaN"}]},
     "earning.rules[0].factor"),
    ({"rules": [{"type": "rate", "id": "r", "per": "0"}]}, "earning.rules[0].per"),
    ({"rules": [{"type": "rate", "id": "r", "base": "gross"}]}, "earning.rules[0].base"),
    ({"rules": [{"type": "rate", "id": "r", "factor": "2"}]}, "earning.rules[0].factor"),
    ({"rules": [_rule(points=-5)]}, "earning.rules[0].points"),
    ({"rules": [_rule(points=True)]}, "earning.rules[0].points"),
    ({"rules": [_rule(id="1st")]}, "earning.rules[0].id"),
    ({"rules": [_rule(), _rule()]}, "earning.rules[1].id"),
    ({"rules": [_rule(group="vip")]}, "earning.rules[0].group"),
    ({"rules": [_rule(priority="high")]}, "earning.rules[0].priority"),
    ({"rules": [_rule(exclusive="yes")]}, "earning.rules[0].exclusive"),
    ({"rules": [_rule(caps=[{"points": 5, "period": "rolling"}])]},
     "earning.rules[0].caps[0].days"),
    ({"rules": [_rule(caps=[{"points": 5, "period": "month", "days": 3}])]},
     "earning.rules[0].caps[0].days"),
    ({"rules": [_rule(), _rule(id="g", caps=[{"points": 5, "period": "fortnight"}])]},
     "earning.rules[1].caps[0].period"),
    ({"rules": [_rule(caps=[{"period": "month"}])]}, "earning.rules[0].caps[0].points"),
    ({"rules": [_rule(caps="500")]}, "earning.rules[0].caps"),
    ({"rules": [_rule(window={"weekdays": [8]})]}, "earning.rules[0].window.weekdays[0]"),
    ({"rules": [_rule(window={"weekdays": ["caturday"]})]},
     "earning.rules[0].window.weekdays[0]"),
    ({"rules": [_rule(window={"start": "2026-05-02", "end": "2026-05-01"})]},
     "earning.rules[0].window.end"),
    ({"rules": [_rule(window={"hours": [["10:00", "09:00"]]})]},
     "earning.rules[0].window.hours[0]"),
    ({"rules": [_rule(window={"hours": [["10:00"]]})]}, "earning.rules[0].window.hours[0]"),
    ({"rules": [_rule(window={"hours": [["10:00", "25:00"]]})]},
     "earning.rules[0].window.hours[0][1]"),
    ({"rules": [_rule(window={"days": [1]})]}, "earning.rules[0].window.days"),
    ({"rules": [_rule(condition={"type": "min_net"})]}, "earning.rules[0].condition.amount"),
    ({"rules": [_rule(condition={"type": "all_of", "conditions": [
        {"type": "first_order"}, {"type": "tier_in", "tiers": []}]})]},
     "earning.rules[0].condition.conditions[1].tiers"),
    ({"rules": [_rule(condition={"type": "not", "condition": {"type": "maybe"}})]},
     "earning.rules[0].condition.condition.type"),
    ({"rules": [_rule(condition={"type": "attribute", "scope": "member", "name": "x",
                                 "op": "like", "value": "a"})]},
     "earning.rules[0].condition.op"),
    ({"rules": [_rule(condition={"type": "attribute", "scope": "member", "name": "x",
                                 "op": "eq", "value": 1.5})]},
     "earning.rules[0].condition.value"),
    ({"rules": [_rule(condition="vip")]}, "earning.rules[0].condition"),
    ({"rules": [_rule(match={"categories": "beans"})]}, "earning.rules[0].match.categories"),
    ({"rules": [{"type": "stamp_card", "id": "s", "every": 0, "points": 1}]},
     "earning.rules[0].every"),
    ({"rules": [{"type": "stamp_card", "id": "s", "every": 3}]}, "earning.rules[0].points"),
    ({"rules": [{"type": "stamp_card", "id": "s", "every": 3, "points": 1,
                 "counts": "events"}]}, "earning.rules[0].event"),
    ({"rules": [{"type": "stamp_card", "id": "s", "every": 3, "points": 1,
                 "event": "visit"}]}, "earning.rules[0].event"),
    ({"rules": [{"type": "event_bonus", "id": "e", "event": "Birthday", "points": 1}]},
     "earning.rules[0].event"),
    ({"rules": [{"type": "event_bonus", "id": "e", "points": 1}]}, "earning.rules[0].event"),
    ({"groups": [{"name": "g"}, {"name": "g"}]}, "earning.groups[1].name"),
    ({"groups": [{"caps": []}]}, "earning.groups[0].name"),
    ({"rounding": "up"}, "earning.rounding"),
    ({"stacking": None}, "earning.stacking"),
    ({"max_points_per_order": -1}, "earning.max_points_per_order"),
])
def test_bad_definitions_name_the_field(data: Any, field: str) -> None:
    with pytest.raises(InvalidProgram) as info:
        EarningPolicy.from_dict(data)
    assert field == info.value.details["field"]
    assert str(info.value).startswith(f"invalid_program: {field}: ")


def test_deep_nesting_is_refused() -> None:
    condition: dict[str, Any] = {"type": "first_order"}
    for _ in range(40):
        condition = {"type": "not", "condition": condition}
    with pytest.raises(InvalidProgram):
        EarningPolicy.from_dict({"rules": [_rule(condition=condition)]})


@pytest.mark.parametrize(("build", "field"), [
    (lambda: RateRule(id="r", points=Decimal(-1)), "points"),
    (lambda: RateRule(id="r", points=1.5), "points"),
    (lambda: MultiplierRule(id="m", factor=Decimal("Infinity")), "factor"),
    (lambda: FixedRule(id="f", points=1, window="weekends"), "window"),
    (lambda: FixedRule(id="f", points=1, caps=(500,)), "caps[0]"),
    (lambda: Cap(-1, CapPeriod.DAY), "points"),
    (lambda: Cap(5, CapPeriod.ROLLING), "days"),
    (lambda: Window(weekdays=(0,)), "weekdays[0]"),
    (lambda: Window(weekdays=(1, 1)), "weekdays"),
    (lambda: Window(hours=((dt.time(3, tzinfo=UTC), dt.time(4)),)), "hours[0][0]"),
    (lambda: Window(start=dt.datetime(2026, 1, 1, tzinfo=UTC)), "start"),
    (lambda: TierIn(()), "tiers"),
    (lambda: AllOf(()), "conditions"),
    (lambda: Not("x"), "condition"),
    (lambda: Attribute("shop", "x", "eq", 1), "scope"),
    (lambda: Attribute("member", "x", "exists", 1), "value"),
    (lambda: Attribute("member", "x", "gt", None), "value"),
    (lambda: MinTenure(-1), "years"),
    (lambda: LineMatch(categories=("",)), "categories[0]"),
    (lambda: StampCardRule(id="s", every=2, points=1, counts="visits"), "counts"),
    (lambda: StampCardRule(id="s", every=2, points=1, counts="events", event="visit",
                           match=LineMatch(skus=("a",))), "match"),
    (lambda: EarningPolicy(rules=(RateRule(id="a"), RateRule(id="a"))), "earning.rules[1].id"),
    (lambda: EarningPolicy(rules=("a",)), "earning.rules[0]"),
    (lambda: EarningPolicy(rounding="up"), "earning.rounding"),
    (lambda: Rule(id="r"), "type"),
])
def test_bad_constructor_arguments_name_the_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidProgram) as info:
        build()
    assert field == info.value.details["field"]


def test_from_dict_on_a_subclass_checks_the_type() -> None:
    assert RateRule(id="b") == RateRule.from_dict({"type": "rate", "id": "b"})
    assert MinNet(Decimal(5)) == MinNet.from_dict({"type": "min_net", "amount": "5"})
    with pytest.raises(InvalidProgram) as info:
        RateRule.from_dict({"type": "fixed", "id": "f", "points": 1})
    assert "type" == info.value.details["field"]
    with pytest.raises(InvalidProgram):
        MinNet.from_dict({"type": "first_order"})


def test_windows_take_iso_dates_and_lists() -> None:
    window = Window(start="2026-05-01", weekdays=[6, 7],  # type: ignore[arg-type]
                    hours=[("08:00", "09:30")])  # type: ignore[list-item]
    assert Window(start=dt.date(2026, 5, 1), weekdays=(6, 7),
                  hours=((dt.time(8), dt.time(9, 30)),)) == window


@pytest.mark.parametrize("zone", ["Europe", "Mars/Olympus", "", "A" * 300, 5])
def test_an_unknown_time_zone_is_a_program_error(zone: Any) -> None:
    with pytest.raises(InvalidProgram) as info:
        evaluate_order(Q, zone, e1_order(), ANN)
    assert "time_zone" == info.value.details["field"]


def test_evaluate_wants_the_right_types() -> None:
    with pytest.raises(InvalidInput):
        evaluate_order(Q, TZ, e1_order().to_dict(), ANN)  # type: ignore[arg-type]
    with pytest.raises(InvalidProgram):
        evaluate_order(Q.to_dict(), TZ, e1_order(), ANN)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        evaluate_event(Q, TZ, e1_order(), ANN)  # type: ignore[arg-type]
    broken = attrs.evolve(evaluate_order(Q, TZ, e1_order(), ANN), context={"member": 1})
    with pytest.raises(InvalidInput):
        evaluate_order(Q, TZ, e1_order(), ANN, previous=broken)


def test_describe() -> None:
    assert "1 point per 1.00 of net goods" == RateRule(id="b").describe()
    assert "x2 on lines in category beans" == Q.rules[1].describe()
    assert "50 points per order" == Q.rules[3].describe()
    assert "(tier is gold or not net goods >= 30.00)" == AnyOf(
        (TierIn(("gold",)), Not(MinNet(Decimal(30))))).describe()
    assert "Sat, Sun 18:00-24:00 (local time)" == Window(
        weekdays=(6, 7), hours=((dt.time(18), dt.time(0)),)).describe()
    assert "500 per calendar month" == Cap(500, CapPeriod.MONTH).describe()
    assert "9 per 30 rolling days" == Cap(9, CapPeriod.ROLLING, 30).describe()


# -- evaluations as data ------------------------------------------------------------------


@pytest.mark.slow
@given(earning_policies(), orders(placed_at=instants(dt.datetime(2026, 1, 1),
                                                     dt.datetime(2026, 12, 31))))
def test_evaluation_round_trips_through_json(policy: EarningPolicy, order: Order) -> None:
    evaluation = evaluate_order(policy, TZ, order, VIP)
    data = json.loads(json.dumps(evaluation.to_dict()))
    assert evaluation == Evaluation.from_dict(data)


@pytest.mark.parametrize("data", [
    [], {}, {"points": 1}, {"points": "1", "unrounded": "1", "net": "1", "currency": "EUR",
                           "outcomes": [], "version": 1},
    {"points": 1, "unrounded": "x", "net": "1", "currency": "EUR", "outcomes": [],
     "version": 1},
    {"points": 1, "unrounded": "1", "net": "1", "currency": "EUR", "outcomes": [{}],
     "version": 1},
    {"points": 1, "unrounded": "1", "net": "1", "currency": "EUR", "outcomes": [7],
     "version": 1},
])
def test_malformed_evaluations_raise_invalid_input(data: Any) -> None:
    with pytest.raises(InvalidInput):
        Evaluation.from_dict(data)


# -- properties ---------------------------------------------------------------------------


@pytest.mark.slow
@given(earning_policies(max_rules=6), orders(), st.data())
def test_returning_everything_leaves_nothing(policy: EarningPolicy, order: Order,
                                            data: st.DataObject) -> None:
    member = MemberContext("m", utc(2019, 1, 1), attributes={"segment": "vip"},
                           tier=data.draw(st.sampled_from((None, "gold"))),
                           first_order=data.draw(st.booleans()))
    placed = evaluate_order(policy, TZ, order, member)
    partial = {line.id: data.draw(st.integers(0, line.quantity)) for line in order.lines}
    partial = {k: v for k, v in partial.items() if v}
    middle = evaluate_order(policy, TZ, order.after_returns(partial), member, previous=placed)
    assert middle.points <= placed.points
    for before, after in zip(placed.outcomes, middle.outcomes, strict=True):
        assert after.points <= before.points or after.points <= 0
    everything = {line.id: line.quantity for line in order.lines}
    for previous in (placed, middle):
        nothing = evaluate_order(policy, TZ, order.after_returns(everything), member,
                                 previous=previous)
        assert 0 == nothing.points
        assert Decimal(0) == nothing.unrounded
        assert () == nothing.rewards


@given(orders(placed_at=instants(dt.datetime(2026, 3, 1), dt.datetime(2026, 4, 30))),
       st.data())
def test_returns_in_steps_end_where_one_return_ends(order: Order, data: st.DataObject) -> None:
    """With a policy whose rules only shrink as an order shrinks (program Q), returning in
    steps is worth what returning the totals at once is worth."""
    placed = evaluate_order(Q, TZ, order, GUS)
    totals = {line.id: data.draw(st.integers(0, line.quantity)) for line in order.lines}
    so_far: dict[str, int] = {}
    step = placed
    for line_id, total in totals.items():
        while so_far.get(line_id, 0) < total:
            done = so_far.get(line_id, 0)
            so_far[line_id] = done + data.draw(st.integers(1, total - done))
            step = evaluate_order(Q, TZ, order.after_returns(so_far), GUS, previous=step)
    once = evaluate_order(Q, TZ, order.after_returns({k: v for k, v in totals.items() if v}),
                          GUS, previous=placed)
    assert once.points == step.points
    assert once.unrounded == step.unrounded


def _period_key(cap: Cap, at: dt.datetime) -> object:
    local = at.astimezone(BERLIN)
    period = cap.period
    if period is CapPeriod.DAY:
        return local.date()
    if period is CapPeriod.WEEK:
        return local.isocalendar()[:2]
    if period is CapPeriod.MONTH:
        return local.year, local.month
    if period is CapPeriod.QUARTER:
        return local.year, (local.month - 1) // 3
    if period is CapPeriod.YEAR:
        return local.year
    return None


def check_caps(policy: EarningPolicy, rows: Sequence[RuleUsage]) -> None:
    """Every cap of every rule and group holds in every period (rolling: in every
    window ending at a row's instant, which is where a window's sum peaks)."""
    def holds(cap: Cap, mine: list[RuleUsage]) -> None:
        mine = [r for r in mine if r.points > 0]
        if cap.period is CapPeriod.ORDER:
            per_source: dict[str, Decimal] = defaultdict(Decimal)
            for r in mine:
                per_source[r.source] += r.points
            assert all(v <= cap.points for v in per_source.values())
        elif cap.period is CapPeriod.ROLLING:
            span = dt.timedelta(days=cap.days or 0)
            for end in mine:
                total = sum((r.points for r in mine
                             if end.occurred_at - span < r.occurred_at <= end.occurred_at),
                            Decimal(0))
                assert total <= cap.points, (cap, end.occurred_at, total)
        else:
            sums: dict[object, Decimal] = defaultdict(Decimal)
            for r in mine:
                sums[_period_key(cap, r.occurred_at)] += r.points
            assert all(v <= cap.points for v in sums.values()), (cap, dict(sums))

    for rule in policy.rules:
        for cap in rule.caps:
            holds(cap, [r for r in rows if r.rule_id == rule.id])
    for group in policy.groups:
        for cap in group.caps:
            holds(cap, [r for r in rows if r.group == group.name])


_CAPPED = st.sampled_from([
    (Cap(100, CapPeriod.ROLLING, days=3),), (Cap(120, CapPeriod.WEEK),),
    (Cap(150, CapPeriod.MONTH), Cap(60, CapPeriod.DAY)), (Cap(200, CapPeriod.LIFETIME),),
    (Cap(40, CapPeriod.ORDER), Cap(90, CapPeriod.ROLLING, days=10)),
])


@st.composite
def capped_policies(draw: st.DrawFn) -> EarningPolicy:
    group_caps = draw(_CAPPED)
    rules: list[Rule] = [
        RateRule(id="base", caps=draw(_CAPPED), group=draw(st.none() | st.just("g"))),
        MultiplierRule(id="double", factor=Decimal(2), caps=draw(_CAPPED),
                       group=draw(st.none() | st.just("g"))),
        FixedRule(id="bonus", points=draw(st.integers(1, 80)), caps=draw(_CAPPED),
                  group=draw(st.none() | st.just("g"))),
        EventBonusRule(id="visit", event="visit", points=draw(st.integers(1, 80)),
                       caps=draw(_CAPPED), group=draw(st.none() | st.just("g"))),
    ]
    return EarningPolicy(rules=tuple(draw(st.permutations(rules))),
                         groups=(RuleGroup("g", group_caps),),
                         stacking=draw(st.sampled_from(Stacking)))


@pytest.mark.slow
@given(capped_policies(), st.data())
def test_caps_hold_under_any_sequence_of_evaluations(policy: EarningPolicy,
                                                     data: st.DataObject) -> None:
    member = Member(policy)
    when = instants(dt.datetime(2026, 3, 1), dt.datetime(2026, 4, 15))
    for n in range(data.draw(st.integers(1, 12))):
        step = data.draw(st.sampled_from(("order", "order", "event", "return")))
        if step == "return" and member.orders:
            order_id = data.draw(st.sampled_from(sorted(member.orders)))
            order = member.orders[order_id]
            line = order.lines[0]
            member.give_back(order_id, {line.id: data.draw(st.integers(1, line.quantity))})
        elif step == "event":
            member.event(Event(id=f"e{n}", type="visit", member_id="ann",
                               occurred_at=data.draw(when)))
        else:
            order = data.draw(orders(placed_at=when, member_id="ann"))
            member.order(attrs.evolve(order, id=f"o{n}"))
    check_caps(policy, list(member.rows.values()))


@pytest.mark.slow
@given(earning_policies(max_rules=6), st.lists(
    orders(placed_at=instants(dt.datetime(2026, 3, 1), dt.datetime(2026, 6, 1))),
    min_size=1, max_size=6))
def test_rows_the_queries_ask_for_are_all_an_evaluation_needs(
        policy: EarningPolicy, placed: list[Order]) -> None:
    """Evaluating with every usage row the member has gives what evaluating with the
    rows usage_queries selects gives."""
    member = Member(policy, VIP)
    for n, order in enumerate(placed):
        order = attrs.evolve(order, id=f"o{n}")
        selected = member.order(order)
        everything = evaluate_order(policy, TZ, order, VIP, usage=list(member.rows.values()))
        assert selected == everything


@pytest.mark.slow
@given(earning_policies(max_rules=6), orders())
def test_points_are_the_rounded_sum_of_the_outcomes(policy: EarningPolicy,
                                                    order: Order) -> None:
    evaluation = evaluate_order(policy, TZ, order, VIP)
    with decimal.localcontext(prec=80):
        total = sum((o.points for o in evaluation.outcomes), Decimal(0))
    assert total == evaluation.unrounded
    assert 0 <= evaluation.points
    if policy.max_points_per_order is not None:
        assert evaluation.points <= policy.max_points_per_order
    assert all(o.points == 0 for o in evaluation.outcomes if not o.applied)
    assume(evaluation.unrounded > 0)
    assert abs(evaluation.points - evaluation.unrounded) < 1 or (
        policy.max_points_per_order is not None
        and evaluation.points == policy.max_points_per_order)


# -- garbage in: typed errors out ---------------------------------------------------------

GARBAGE = st.sampled_from([None, True, -1, 0, 7, 1.5, "x", "", "1E+999", "NaN", [], {}, [1],
                           ["x"], {"type": "x"}, {"a": 1}, "2026-13-01", "25:00", 10**30])


def mangle(data: Any, draw: st.DataObject) -> Any:
    """Replace, delete or add one value anywhere in a JSON-like structure."""
    return _fuzz.mangle(data, draw, GARBAGE)


@pytest.mark.slow
@given(earning_policies(max_rules=4), st.data())
def test_garbage_policies_raise_invalid_program_only(policy: EarningPolicy,
                                                     data: st.DataObject) -> None:
    mangled = mangle(policy.to_dict(), data)
    try:
        EarningPolicy.from_dict(mangled)
    except InvalidProgram as exc:
        assert isinstance(exc.details["field"], str)
        assert exc.details["field"].startswith("earning")


@pytest.mark.slow
@given(earning_policies(max_rules=4), orders(), st.data())
def test_garbage_evaluations_raise_invalid_input_only(policy: EarningPolicy, order: Order,
                                                      data: st.DataObject) -> None:
    evaluation = evaluate_order(policy, TZ, order, VIP)
    mangled = mangle(evaluation.to_dict(), data)
    with contextlib.suppress(InvalidInput):
        Evaluation.from_dict(mangled)
