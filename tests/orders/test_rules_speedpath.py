"""The rules engine's fast path (an order's first evaluation on the policy compiled
further) gives what the general evaluator gives, digit for digit, and what the
benchmark's hand-written code computes for its program."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import pickle
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from _benchmarks import load_benchmark
from loyaltykit import (
    Evaluation,
    LoyaltyError,
    MemberContext,
    Money,
    Order,
    OrderLine,
    evaluate_order,
)
from loyaltykit._model import RuleUsage
from loyaltykit._rules.evaluate import first_evaluation
from loyaltykit._rules.policy import plan_of
from loyaltykit.testing import strategies as lks

BENCH = load_benchmark("rules")
PROGRAM = BENCH.earning()
START = dt.datetime(2026, 3, 2, 8, tzinfo=dt.UTC)


@st.composite
def _program_lines(draw: st.DrawFn) -> tuple[OrderLine, ...]:
    """Lines of the benchmark's catalogue (its SKUs and categories), any quantity, price
    and discount."""
    count = draw(st.integers(1, 6))  # (an empty order, fully returned, earns nothing)
    lines = []
    for j in range(count):
        sku, category, _price = draw(st.sampled_from(BENCH.CATALOGUE))
        quantity = draw(st.integers(1, 12))
        price = draw(st.decimals(0, 300, places=draw(st.integers(0, 3)), allow_nan=False,
                                 allow_infinity=False))
        gross = price * quantity
        discount = None
        if gross and draw(st.booleans()):
            share = Decimal(draw(st.integers(0, 100))) / 100
            discount = Money((gross * share).quantize(Decimal("0.01"),
                                                      rounding=decimal.ROUND_FLOOR), "EUR")
        lines.append(OrderLine(sku=sku, category=category, quantity=quantity,
                               unit_price=Money(price, "EUR"), discount=discount,
                               line_id=f"l{j}"))
    return tuple(lines)


@st.composite
def _program_orders(draw: st.DrawFn) -> Order:
    return Order(
        id=f"o-{draw(st.integers(0, 10**6))}", member_id="m",
        # weekends, weekdays, happy hours and not, across daylight-saving changes
        placed_at=draw(lks.instants(dt.datetime(2025, 1, 1), dt.datetime(2027, 12, 31))),
        currency="EUR", lines=draw(_program_lines()),
        shipping=draw(st.none() | st.just(Money("4.90", "EUR"))),
        channel=draw(st.sampled_from((None, "app", "web"))),
    )


@given(order=_program_orders(), tier=st.sampled_from((None, "gold", "silver")),
       stamps=st.integers(0, 25))
def test_engine_prices_the_benchmark_program_as_its_hand_written_code(
        order: Order, tier: str | None, stamps: int) -> None:
    """``evaluate_order`` (its fast path) gives the points of the benchmark's hand-written
    Decimal code for any order of its program (the benchmark checks only its own
    orders)."""
    member = MemberContext(member_id="m", enrolled_at=START, tier=tier)
    got = evaluate_order(PROGRAM, "Europe/Berlin", order, member,
                         stamps={"coffee-card": stamps})
    assert BENCH.by_hand(order, tier, stamps) == got.points


def _same(fast: Evaluation, general: Evaluation) -> None:
    """Equal, and written the same (``Decimal("1.0") == Decimal("1")``, so the texts too)."""
    assert general == fast
    assert general.to_dict() == fast.to_dict()
    assert repr(general) == repr(fast)


def _both(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """The evaluation (or the error) of the fast path and of the general evaluator."""
    results = []
    for fast in (True, False):
        try:
            results.append(first_evaluation(*args, **kwargs, fast=fast))
        except LoyaltyError as exc:
            results.append((type(exc), str(exc)))
    return results[0], results[1]


@st.composite
def _members(draw: st.DrawFn) -> MemberContext:
    return MemberContext(
        member_id="m", enrolled_at=draw(lks.instants(dt.datetime(2015, 1, 1))),
        attributes=draw(st.sampled_from(({}, {"segment": "vip", "age": 30}, {"age": 12}))),
        tier=draw(st.sampled_from((None, "silver", "gold"))),
        first_order=draw(st.booleans()),
        earn_multiplier=draw(st.none() | st.sampled_from(
            (Decimal(1), Decimal("1.5"), Decimal("2.25"), Decimal("0.5")))))


@st.composite
def _usage(draw: st.DrawFn, rule_ids: list[str], groups: list[str],
           around: dt.datetime) -> list[RuleUsage]:
    """Usage rows of earlier sources (some duplicated, some negative) near ``around``."""
    rows = []
    for n in range(draw(st.integers(0, 5))):
        rows.append(RuleUsage(
            "p", "m", f"order:u{draw(st.integers(0, 3))}",
            draw(st.sampled_from(rule_ids)) if rule_ids else "r0",
            draw(st.none() | st.sampled_from(groups)) if groups else None,
            around - dt.timedelta(hours=draw(st.integers(0, 24 * 90))),
            draw(st.decimals(-20, 400, places=2, allow_nan=False, allow_infinity=False)),
            draw(st.integers(0, 12))))
        if n == 0 and draw(st.booleans()):
            rows.append(rows[0])
    return rows


@pytest.mark.slow  # (random policies are slow to draw: about 10 s)
@given(data=st.data(), policy=lks.earning_policies(max_rules=7), member=_members(),
       orders=st.lists(lks.orders(min_lines=0), min_size=1, max_size=4))
def test_fast_path_gives_the_general_evaluators_evaluation(
        data: st.DataObject, policy: Any, member: MemberContext, orders: list[Order]) -> None:
    """On random policies (every rule kind, windows, conditions, caps, groups, stacking,
    rounding), members, usage, stamp counts and money paid, and whatever decimal context
    the caller has, the fast path's Evaluation is the general evaluator's; several orders
    per policy, as what the fast path keeps of one order must not change the next."""
    rule_ids = [r.id for r in policy.rules]
    for order in orders:
        usage = data.draw(_usage(rule_ids, [g.name for g in policy.groups], order.placed_at))
        stamps = data.draw(st.none() | st.dictionaries(st.sampled_from(rule_ids or ["r0"]),
                                                        st.integers(0, 30), max_size=2))
        paid = None
        if order.lines and data.draw(st.booleans()):
            paid = [line.net * Decimal(data.draw(st.integers(0, 100))) / 100
                    for line in order.lines]
        caller = data.draw(st.sampled_from((
            None, decimal.Context(prec=5, rounding=decimal.ROUND_UP,
                                  traps=[decimal.Inexact, decimal.Rounded]))))
        kwargs = {"usage": usage, "version": 3, "stamps": stamps, "money_paid": paid}
        if caller is None:
            fast, general = _both(policy, "Europe/Berlin", order, member, **kwargs)
        else:
            with decimal.localcontext(caller):
                fast, general = _both(policy, "Europe/Berlin", order, member, **kwargs)
        if isinstance(general, Evaluation):
            assert isinstance(fast, Evaluation)
            _same(fast, general)
        else:
            assert general == fast


def test_fast_path_runs_for_the_benchmark_program() -> None:
    """The benchmark's program is priced on the fast path (its plan is compiled for it,
    once) and gives the general evaluator's result on the benchmark's own orders."""
    member = MemberContext(member_id="m", enrolled_at=START, tier="gold")
    policy = BENCH.earning()
    assert plan_of(policy).order_steps is None
    for order in BENCH.make_orders(60, ["m"], START):
        fast, general = _both(policy, "Europe/Berlin", order, member, usage=(), version=1,
                              stamps=None, money_paid=None)
        _same(fast, general)
    steps = plan_of(policy).order_steps
    assert steps and len(steps.steps) == len(policy.rules)
    assert plan_of(BENCH.earning()).order_steps is None  # another policy: its own plan


def _zero_tea_order() -> Order:
    """An app order of free tea: the app multiplier's amounts come to 0E-7 (written with
    an exponent, whose letter the decimal context's ``capitals`` sets)."""
    lines = tuple(OrderLine(sku="green-tea", category="tea", quantity=2,
                            unit_price=Money(Decimal("0.000"), "EUR"), line_id=f"l{j}")
                  for j in range(2))
    return Order(id="o-tea", member_id="m", placed_at=START, currency="EUR", lines=lines,
                 channel="app")


def test_outcomes_read_later_are_written_as_the_evaluator_writes_them() -> None:
    """The fast path builds its outcomes when they are first read: read in a caller's
    decimal context of its own, their texts are still the evaluator's."""
    member = MemberContext(member_id="m", enrolled_at=START, tier="gold")
    order = _zero_tea_order()
    fast, general = _both(PROGRAM, "Europe/Berlin", order, member, usage=(), version=1,
                          stamps=None, money_paid=None)
    assert general.outcome("app").explanation.endswith("= +0E-7")
    with decimal.localcontext(decimal.Context(capitals=0, prec=3)):
        assert fast.outcomes == general.outcomes
        assert [o.explanation for o in fast.outcomes] == [
            o.explanation for o in general.outcomes]


def test_an_evaluation_is_copied_and_pickled_with_its_outcomes() -> None:
    """An evaluation whose outcomes were not read yet copies and pickles as one that was
    (its outcomes built, nothing pending kept)."""
    member = MemberContext(member_id="m", enrolled_at=START, tier="gold")
    for order in BENCH.make_orders(6, ["m"], START):
        for copied in (lambda e: pickle.loads(pickle.dumps(e)), copy.copy, copy.deepcopy):
            fast, general = _both(PROGRAM, "Europe/Berlin", order, member, usage=(),
                                  version=1, stamps=None, money_paid=None)
            again = copied(fast)
            assert "_pending" not in vars(again)
            _same(again, general)
            _same(fast, general)


def test_fast_path_selects_lines_by_sku_or_category() -> None:
    """A rule matching SKUs and categories selects a line that has either, one matching
    one SKU or one category selects every line that has it (and the fast path keeps
    nothing per SKU: a catalogue of any size), as the general evaluator does."""
    from loyaltykit import EarningPolicy, LineMatch, MultiplierRule, RateRule, StampCardRule
    policy = EarningPolicy(rules=(
        RateRule(id="base"),
        MultiplierRule(id="both", factor=Decimal(3),
                       match=LineMatch(skus=("sku-7", "mug"), categories=("tea",))),
        MultiplierRule(id="skus", factor=Decimal(2), match=LineMatch(skus=("sku-3",))),
        MultiplierRule(id="tea", factor=Decimal("1.5"), match=LineMatch(categories=("tea",))),
        StampCardRule(id="card", every=4, points=5, counts="items",
                      match=LineMatch(categories=("tea", "beans"))),
    ))
    member = MemberContext(member_id="m", enrolled_at=START)
    for n in range(60):
        lines = tuple(OrderLine(sku=f"sku-{(n + j) % 9}" if j % 3 else "mug",
                                category=("tea", "beans", None, "mugs")[(n + j) % 4],
                                quantity=1 + j, unit_price=Money("2.50", "EUR"),
                                line_id=f"l{j}") for j in range(1 + n % 5))
        order = Order(id=f"o-{n}", member_id="m", placed_at=START, currency="EUR",
                      lines=lines)
        fast, general = _both(policy, "UTC", order, member, usage=(), version=1,
                              stamps=None, money_paid=None)
        _same(fast, general)
    assert plan_of(policy).order_steps


@pytest.mark.parametrize("program", ["ten_rules", "one_rate"])
def test_benchmark_programs_agree_with_the_general_evaluator(program: str) -> None:
    """Both benchmark programs, for members with and without a tier."""
    policy = BENCH.PROGRAMS[program]()
    for tier in (None, "gold"):
        member = MemberContext(member_id="m", enrolled_at=START, tier=tier)
        for order in BENCH.make_orders(40, ["m"], START + dt.timedelta(days=3)):
            fast, general = _both(policy, "Europe/Berlin", order, member, usage=(),
                                  version=1, stamps={"coffee-card": 7}, money_paid=None)
            _same(fast, general)


def _tricky_policies() -> list[Any]:
    from loyaltykit import (
        Base,
        Cap,
        CapPeriod,
        EarningPolicy,
        FixedRule,
        LineMatch,
        MultiplierRule,
        RateRule,
        RuleGroup,
        StampCardRule,
        Window,
    )
    weekend = Window(weekdays=(6, 7))
    return [
        # a rate of 1 written with places keeps them (12.50 * 1.00 = 12.5000)
        EarningPolicy(rules=(RateRule(id="r", points=Decimal("1.00")),)),
        EarningPolicy(rules=(RateRule(id="r", points=Decimal("2"), per=Decimal("2")),
                             RateRule(id="s", points=Decimal(1), per=Decimal(3),
                                      base=Base.NET_GOODS_AND_SHIPPING))),
        # capped rates and multipliers share their room out over the lines
        EarningPolicy(rules=(
            RateRule(id="r", caps=(Cap(7, CapPeriod.ORDER),)),
            MultiplierRule(id="m", factor=Decimal("1.5"), caps=(Cap(3, CapPeriod.ORDER),)),
            MultiplierRule(id="n", factor=Decimal("3"), match=LineMatch(categories=("tea",))),
            FixedRule(id="f", points=5, window=weekend, caps=(Cap(5, CapPeriod.ORDER),)),
            FixedRule(id="g", points=5, group="g"),
        ), groups=(RuleGroup("g", (Cap(4, CapPeriod.ORDER),)),)),
        EarningPolicy(rules=(
            RateRule(id="r"), StampCardRule(id="c", every=3, points=7, reward="mug",
                                            counts="items"),
            FixedRule(id="e", points=1, exclusive=True, window=weekend),
            FixedRule(id="f", points=2, per_item=True),
        )),
        # multipliers on one matching line, on several, capped, on every line (each
        # reading what the ones before added); windows by dates, weekdays and hours (one
        # ending at midnight)
        EarningPolicy(rules=(
            RateRule(id="r", points=Decimal("1.5")),
            MultiplierRule(id="mug", factor=Decimal("3"), match=LineMatch(skus=("mug",))),
            MultiplierRule(id="drinks", factor=Decimal("1.5"),
                           match=LineMatch(categories=("beans", "tea", "coffee"))),
            MultiplierRule(id="capped", factor=Decimal("2"), caps=(Cap(9, CapPeriod.ORDER),),
                           match=LineMatch(categories=("beans", "mugs"))),
            MultiplierRule(id="all", factor=Decimal("0.75"),
                           window=Window(start=dt.date(2026, 3, 6), end=dt.date(2026, 3, 6))),
            MultiplierRule(id="late", factor=Decimal("1.1"), window=Window(
                weekdays=(5, 6), hours=((dt.time(9), dt.time(11)), (dt.time(20), dt.time(0))))),
            FixedRule(id="f", points=3, window=Window(hours=((dt.time(10), dt.time(16)),))),
        )),
    ]


@pytest.mark.parametrize("index", range(5))
def test_fast_path_on_edge_cases(index: int) -> None:
    """Policies whose amounts keep their places, shipping, caps shared over lines,
    groups, exclusive rules, stamp cards, stacked multipliers and windows: the same
    Evaluation on both paths, order after order."""
    policy = _tricky_policies()[index]
    member = MemberContext(member_id="m", enrolled_at=START)
    for order in BENCH.make_orders(30, ["m"], START + dt.timedelta(days=4)):
        fast, general = _both(policy, "Europe/Berlin", order, member, usage=(), version=1,
                              stamps={"c": 2}, money_paid=None)
        _same(fast, general)


def test_fast_path_sums_the_outcomes_exactly() -> None:
    """Outcomes of 34 digits each whose sum in 34 digits would round (a third of a point
    per euro, and fixed points): the fast path's sum is the exact one, as the general
    evaluator's is."""
    from loyaltykit import EarningPolicy, FixedRule, RateRule
    policy = EarningPolicy(rules=(RateRule(id="r", points=Decimal(1), per=Decimal(3)),
                                  FixedRule(id="f", points=1000)))
    member = MemberContext(member_id="m", enrolled_at=START)
    widths = []
    for order in BENCH.make_orders(10, ["m"], START):
        fast, general = _both(policy, "Europe/Berlin", order, member, usage=(), version=1,
                              stamps=None, money_paid=None)
        _same(fast, general)
        with decimal.localcontext(decimal.Context(prec=200)):
            exact = sum((o.points for o in general.outcomes), Decimal(0))
        assert fast.unrounded == exact
        widths.append(len(exact.as_tuple().digits))
    assert max(widths) > 34  # (some sums do not fit in 34 digits)


def test_caps_with_no_usage_rows_need_no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no usage rows, a capped rule outside capped groups gets every cap's whole room
    without a Run (its rows and source text per order), and gives the general evaluator's
    result, capped or not; with usage rows, the Run counts them as before."""
    from loyaltykit import Cap, CapPeriod, FixedRule, RateRule, StampCardRule
    from loyaltykit._rules.limits import Run

    policy = type(PROGRAM)(rules=(
        RateRule(id="r", caps=(Cap(40, CapPeriod.MONTH), Cap(30, CapPeriod.ORDER))),
        FixedRule(id="f", points=50, caps=(Cap(500, CapPeriod.MONTH),)),
        FixedRule(id="low", points=50, caps=(Cap(12, CapPeriod.LIFETIME),)),
        StampCardRule(id="card", every=2, points=30, counts="items",
                      caps=(Cap(45, CapPeriod.ROLLING, days=7),)),
    ))
    member = MemberContext(member_id="m", enrolled_at=START, tier="gold")
    orders = BENCH.make_orders(14, ["m"], START)
    built = []
    init = Run.__init__

    def counting(self: Run, *args: Any) -> None:
        built.append(args)
        init(self, *args)

    for order in orders:  # (the general evaluator builds its Run: compared first)
        fast, general = _both(policy, "Europe/Berlin", order, member, usage=(), version=1,
                              stamps=None, money_paid=None)
        _same(fast, general)
    assert any("capped at" in o.explanation for o in fast.outcomes)
    monkeypatch.setattr(Run, "__init__", counting)
    for order in orders:
        evaluate_order(policy, "Europe/Berlin", order, member).outcomes  # noqa: B018
    assert built == []
    row = RuleUsage(program_id="p", member_id="m", source="order:old", rule_id="f",
                    group=None, occurred_at=START, points=Decimal(5))
    evaluate_order(policy, "Europe/Berlin", orders[0], member, usage=(row,))
    assert len(built) == 1
