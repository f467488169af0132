"""The first evaluation of an order on a plan compiled further: the evaluator's fast path.

:func:`~loyaltykit._rules.evaluate._evaluate` handles every case (an order or an event,
a first evaluation or a re-evaluation after a return, stamp cards settled over kept
stamps). Most calls are the simplest of them, an order priced for the first time, and
this module prices those with less work and exactly the same result (the outcomes, their
texts and the exact Decimal amounts, digit for digit):

* each rule's constant parts are worked out once per policy (:class:`Step`): its
  factor less one, its fixed points as a Decimal, its "not applied" outcomes (an
  outcome is immutable, so one instance serves every order: a window's or a tier's
  reason depends only on a small key, see :func:`~loyaltykit._rules.scopes.window_miss`);
* a line's SKU and category are looked up once per order in a per-policy table of the
  line-matching rules that select them (:class:`OrderSteps`), instead of testing every
  line against every rule;
* Decimal work that cannot change a digit is skipped (a rate of exactly 1 point per 1
  money unit on a line's net, which has at most 34 digits: ``net * 1`` is ``net``),
  and the outcomes' exact sum adds the applied ones only (a rule that does not apply
  gives ``0``, which the sum's start already is).

The compiled form lives on the policy's plan (built on first use, and only for the
policy it came from); the per-policy tables are bounded, so a catalogue of any size or
a stream of distinct reasons cannot grow them without end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from itertools import repeat
from operator import add, attrgetter, mul
from typing import Any

from loyaltykit._errors import InvalidOrder
from loyaltykit._model import RuleUsage
from loyaltykit._orders import OrderLine
from loyaltykit._rules.conditions import ChannelIn, MinNet, StoreIn, TierIn
from loyaltykit._rules.enums import DECIMAL_ROUNDING, Stacking
from loyaltykit._rules.facts import Facts
from loyaltykit._rules.fields import CONTEXT, EXACT, ONE, ZERO, num_text, points_text
from loyaltykit._rules.limits import NO_LINE, NOTHING, Run, not_applied, spread
from loyaltykit._rules.policy import FIXED, MULTIPLIER, RATE, STAMP, Compiled, EarningPolicy
from loyaltykit._rules.results import Evaluation, RuleOutcome
from loyaltykit._rules.rules import FixedRule, MultiplierRule, StampCardRule
from loyaltykit._rules.scopes import window_miss
from loyaltykit._values import MAX_POINTS

#: How many entries each per-policy table keeps at most (later keys are worked out
#: each time instead of being kept).
_TABLE_SIZE = 4096

_ONE_OF: dict[type, str] = {TierIn: "tier", ChannelIn: "channel", StoreIn: "store"}
_NO_CONDITION, _ONE_OF_TEST, _MIN_NET_TEST, _ANY_TEST = 0, 1, 2, 3


class Step:
    """One order rule compiled for the fast path (the :class:`Compiled` rule, plus what
    its evaluation would otherwise work out per order)."""

    __slots__ = ("c", "card", "code", "cond", "cond_kind", "excl", "failed", "fixed",
                 "given", "less", "limited", "match_all", "minimum", "missed", "names", "no_line",
                 "noun", "per_item", "phase", "plain", "prefix", "rate", "ratio_one", "ship",
                 "tier", "window")

    def __init__(self, c: Compiled) -> None:
        rule = c.rule
        self.c = c
        self.code = c.code
        self.phase = c.phase
        self.excl = c.excl
        self.limited = c.limited
        self.match_all = c.match_all
        self.ship = c.ship
        self.prefix = c.prefix
        self.window = c.window
        self.cond = c.cond
        self.no_line = not_applied(c, NO_LINE)
        # not-applied outcomes by what failed: window misses, one-of facts
        self.missed: dict[object, RuleOutcome] = {}
        self.failed: dict[object, RuleOutcome] = {}
        # applied outcomes of a fixed rule (per order) by its points after caps, and of a
        # stamp card by its stamps, the stamps before and its points after caps
        self.given: dict[object, RuleOutcome] = {}
        cond = c.cond
        self.noun = ""
        self.names: frozenset[str] = frozenset()
        self.minimum = ZERO
        if cond is None:
            self.cond_kind = _NO_CONDITION
        elif type(cond) in _ONE_OF:
            self.cond_kind = _ONE_OF_TEST
            self.noun = _ONE_OF[type(cond)]
            self.names = frozenset(cond.to_dict()[f"{self.noun}s"])
        elif type(cond) is MinNet:
            self.cond_kind = _MIN_NET_TEST
            self.minimum = cond.amount
        else:
            self.cond_kind = _ANY_TEST
        self.rate: Decimal | None = c.ratio
        # a rate of exactly 1 (exponent 0) leaves a net of up to 34 digits unchanged
        self.ratio_one = c.ratio is not None and c.ratio == ONE and (
            c.ratio.as_tuple().exponent == 0)
        self.tier = c.kind == "tier_multiplier"
        self.less = ZERO
        if isinstance(rule, MultiplierRule) and not self.tier:
            self.less = CONTEXT.subtract(rule.factor, ONE)
        self.fixed = ZERO
        self.per_item = False
        self.plain: RuleOutcome | None = None
        if isinstance(rule, FixedRule):
            self.fixed = Decimal(rule.points)
            self.per_item = rule.per_item
            if not rule.per_item and not c.limited:
                self.plain = RuleOutcome(c.id, c.kind, c.text, True, self.fixed, self.fixed,
                                         c.prefix, c.group, 0, (), c.tracked)
        self.card = rule if isinstance(rule, StampCardRule) else None

    def keep(self, table: dict[object, RuleOutcome], key: object,
             reason: str | None) -> RuleOutcome:
        """The not-applied outcome for ``reason``, kept in ``table`` under ``key``."""
        outcome = not_applied(self.c, f"not applied: {reason}")
        if len(table) < _TABLE_SIZE:
            table[key] = outcome
        return outcome


class OrderSteps:
    """A policy's order rules compiled for the fast path, and its line-match table."""

    __slots__ = ("matching", "multiply", "nothing", "rounding", "selects", "steps")

    def __init__(self, policy: EarningPolicy, rules: tuple[Compiled, ...]) -> None:
        self.steps = tuple(Step(c) for c in rules)
        self.nothing = tuple(not_applied(c, NOTHING) for c in rules)
        self.multiply = policy.stacking is Stacking.MULTIPLY
        self.rounding = DECIMAL_ROUNDING[policy.rounding]
        #: the positions of the steps that select lines by SKU or category
        self.matching = tuple(k for k, s in enumerate(self.steps) if not s.match_all)
        #: (sku, category) -> the positions of the matching steps that select it
        self.selects: dict[tuple[str, str | None], tuple[int, ...]] = {}

    def selected_by(self, sku: str, category: str | None) -> tuple[int, ...]:
        """The positions of the line-matching steps that select a line of ``sku`` in
        ``category`` (worked out once per key, kept while the table has room)."""
        found = tuple(k for k in self.matching
                      if sku in self.steps[k].c.skus or category in self.steps[k].c.cats)
        if len(self.selects) < _TABLE_SIZE:
            self.selects[(sku, category)] = found
        return found


def supports(rules: tuple[Compiled, ...]) -> bool:
    """True if the fast path handles every one of ``rules`` (order rules: rate,
    multiplier, fixed and stamp card)."""
    return all(c.code in (RATE, MULTIPLIER, FIXED, STAMP) for c in rules)


_net = attrgetter("net")
_exact_sum: Callable[[Sequence[Decimal]], Decimal] = functools.partial(
    functools.reduce, EXACT.add)


def evaluate_first(
    plan: OrderSteps,
    policy: EarningPolicy,
    facts: Facts,
    make_run: Callable[[], Run],
    lines: tuple[OrderLine, ...],
    shipping: Decimal,
    stamps_before: dict[str, int],
    version: int,
    context: Mapping[str, Any],
    money_paid: list[Decimal] | None,
) -> Evaluation:
    """The first evaluation of an order (no ``previous``), as the general evaluator
    gives it; runs in the evaluator's decimal context. ``make_run`` builds the usage
    state when a cap or a stamp card first needs it."""
    n = len(lines)
    currency = facts.currency
    if not n:
        return Evaluation(0, ZERO, facts.net, currency, plan.nothing, (), version, context)
    outcomes: list[RuleOutcome] = []
    append = outcomes.append
    applied: list[Decimal] = [ZERO]
    total = applied.append
    rewards: list[str] = []
    run: Run | None = None
    nets = list(map(_net, lines)) if money_paid is None else money_paid
    one_ok = money_paid is None
    base: list[Decimal] = [ZERO] * (n + 1)  # index n: the shipping pseudo-line
    current = base
    multiply = plan.multiply
    every = range(n)
    picks: dict[int, list[int]] = {}
    if plan.matching:
        selects = plan.selects
        for i, line in enumerate(lines):
            found = selects.get((line.sku, line.category))
            if found is None:
                found = plan.selected_by(line.sku, line.category)
            for k in found:
                got = picks.get(k)
                if got is None:
                    picks[k] = [i]
                else:
                    got.append(i)
    local = facts.local
    phase = 0
    exclusive: str | None = None
    picked: Sequence[int]
    # a multiplier's increase of the compounded amounts, added only when a later
    # multiplier reads them (the last one's never is)
    pending: tuple[bool, Sequence[int], list[Decimal], Decimal, Decimal] | None = None
    for k, s in enumerate(plan.steps):
        c = s.c
        if s.phase != phase:
            if s.phase == 2:
                current = list(base)
            phase = s.phase
            exclusive = None
        if exclusive is not None:
            append(not_applied(c, f"skipped: exclusive rule {exclusive} applied"))
            continue
        if s.window is not None:
            miss = window_miss(s.window, local)
            if miss is not None:
                outcome = s.missed.get(miss)
                append(outcome if outcome is not None
                       else s.keep(s.missed, miss, s.window.unmet(local)))
                continue
        kind = s.cond_kind
        if kind:
            if kind == _ONE_OF_TEST:
                value = getattr(facts, s.noun)
                if value not in s.names:
                    outcome = s.failed.get(value)
                    append(outcome if outcome is not None
                           else s.keep(s.failed, value, s.cond.unmet(facts)))  # type: ignore[union-attr]
                    continue
            elif kind == _MIN_NET_TEST:
                if not facts.net >= s.minimum:  # (the reason shows the net as written)
                    net_key = (str(facts.net), facts.currency)
                    outcome = s.failed.get(net_key)
                    append(outcome if outcome is not None
                           else s.keep(s.failed, net_key, s.cond.unmet(facts)))  # type: ignore[union-attr]
                    continue
            else:
                reason = s.cond.unmet(facts)  # type: ignore[union-attr]
                if reason is not None:
                    append(not_applied(c, f"not applied: {reason}"))
                    continue
        code = s.code
        picked = every if s.match_all else picks.get(k, ())
        stamps = 0
        won: tuple[str, ...] = ()
        if code == RATE:
            if not picked and not s.ship:
                append(s.no_line)
                continue
            ratio = s.rate
            if s.ratio_one and one_ok:
                amounts = [nets[i] for i in picked] if not s.match_all else nets
                counted = uncapped = sum(amounts, ZERO)
                picked = list(picked)
            else:
                taken = [nets[i] for i in picked]
                counted = sum(taken, ZERO)
                if ratio is not None:
                    amounts = list(map(mul, taken, repeat(ratio)))
                else:
                    rule = c.rule
                    amounts = [a * rule.points / rule.per  # type: ignore[attr-defined]
                               for a in taken]
                uncapped = sum(amounts, ZERO)
                picked = list(picked)
            if s.ship:
                picked.append(n)
                counted += shipping
                rule = c.rule
                a = (shipping * ratio if ratio is not None
                     else shipping * rule.points / rule.per)  # type: ignore[attr-defined]
                amounts = [*amounts, a]
                uncapped += a
            if s.limited:
                if run is None:
                    run = make_run()
                points, note = run.limit(c, uncapped)
            else:
                points, note = uncapped, ""
            if points == uncapped and s.match_all and not s.ship:  # every line: in C
                base[:n] = map(add, base, amounts)
            else:
                spread(base, picked, amounts, points, uncapped)
            explanation = (f"{s.prefix} {currency} on {counted!s} {currency} {c.what} = "
                           f"{uncapped!s}{note}")
        elif code == MULTIPLIER:
            if s.match_all:
                picked = range(n + 1)
            elif not picked:
                append(s.no_line)
                continue
            if multiply:
                if pending is not None:  # the previous multiplier's increase, now needed
                    if pending[3] == pending[4] and pending[0]:  # every line, uncapped
                        current = list(map(add, current, pending[2]))
                    else:
                        spread(current, *pending[1:])
                    pending = None
                source = current
            else:
                source = base
            if s.tier:
                factor = facts.earn_multiplier if facts.earn_multiplier is not None else ONE
                prefix = f"x{num_text(factor)} (tier {facts.tier}) on "
                less = factor - ONE
            else:
                prefix = s.prefix
                less = s.less
            taken = source if s.match_all else [source[i] for i in picked]
            counted = sum(taken, ZERO)
            amounts = list(map(mul, taken, repeat(less)))
            uncapped = sum(amounts, ZERO)
            if s.limited:
                if run is None:
                    run = make_run()
                points, note = run.limit(c, uncapped)
            else:
                points, note = uncapped, ""
            if multiply:  # added when a later multiplier reads it (if one does)
                pending = (s.match_all, picked, amounts, points, uncapped)
            explanation = (f"{prefix}{counted!s} points{c.what} = "
                           f"{'+' if uncapped >= ZERO else ''}{uncapped!s}{note}")
        elif code == FIXED:
            if not picked:
                append(s.no_line)
                continue
            if s.plain is not None:  # not limited: one outcome for every order
                total(s.fixed)
                append(s.plain)
                if s.excl:
                    exclusive = c.id
                continue
            if s.per_item:
                items = sum(lines[i].quantity for i in picked)
                uncapped = Decimal(c.rule.points * items)  # type: ignore[attr-defined]
                explanation = f"{s.prefix}{items} items = {uncapped!s}"
            else:
                uncapped = s.fixed
                explanation = s.prefix
            if s.limited:
                if run is None:
                    run = make_run()
                points, note = run.limit(c, uncapped)
                explanation += note
            else:
                points, note = uncapped, ""
            if not s.per_item:  # the same points give the same outcome: keep it
                key = (str(points), note)  # (the text: 20 and 20.0 are equal Decimals)
                outcome = s.given.get(key)
                if outcome is None:
                    outcome = RuleOutcome(c.id, c.kind, c.text, True, points, uncapped,
                                          explanation, c.group, 0, (), c.tracked)
                    if len(s.given) < _TABLE_SIZE:
                        s.given[key] = outcome
                total(points)
                append(outcome)
                if s.excl:
                    exclusive = c.id
                continue
        else:
            card = s.card
            assert card is not None
            if not picked:
                append(s.no_line)
                continue
            stamps = (sum(lines[i].quantity for i in picked) if card.counts == "items"
                      else 1)
            before = stamps_before.get(c.id)
            if before is None:
                if run is None:
                    run = make_run()
                rows: Sequence[RuleUsage] = run.rows(c.id) or ()
                before = stamps_before[c.id] = sum(r.stamps for r in rows)
            count = (before + stamps) // card.every - before // card.every
            if s.limited:
                uncapped = Decimal(count * card.points)
                if run is None:
                    run = make_run()
                points, note = run.limit(c, uncapped)
                held: tuple[object, ...] = (stamps, before, str(points), note)
            else:
                held = (stamps, before)
            outcome = s.given.get(held)
            if outcome is None:  # the same stamps on the same count give the same outcome
                uncapped = Decimal(count * card.points)
                if not s.limited:
                    points, note = uncapped, ""
                if card.reward is not None and count:
                    won = (card.reward,) * count
                explanation = (f"{stamps} stamp{'s' if stamps != 1 else ''} "
                               f"({before} -> {before + stamps}, a card of {card.every}): "
                               f"{count} reward{'s' if count != 1 else ''}"
                               + (f" = {points_text(uncapped)}" if card.points else "") + note)
                outcome = RuleOutcome(c.id, c.kind, c.text, True, points, uncapped,
                                      explanation, c.group, stamps, won, c.tracked)
                if len(s.given) < _TABLE_SIZE:
                    s.given[held] = outcome
            if outcome.rewards:
                rewards.extend(outcome.rewards)
            total(outcome.points)
            append(outcome)
            if s.excl:
                exclusive = c.id
            continue
        total(points)
        append(RuleOutcome(c.id, c.kind, c.text, True, points, uncapped, explanation, c.group,
                           stamps, won, c.tracked))
        if s.excl:
            exclusive = c.id
    # the exact sum (see the general evaluator): the rules that did not apply add 0
    unrounded = _exact_sum(applied)
    result = int(unrounded.to_integral_value(rounding=plan.rounding))
    if result < 0:
        result = 0
    limit = policy.max_points_per_order
    if limit is not None and result > limit:
        result = limit
    elif result > MAX_POINTS:
        raise InvalidOrder(
            f"points: the order is worth {result} points, more than one request may "
            f"carry ({MAX_POINTS})", field="points", value=result, max_points=MAX_POINTS)
    return Evaluation(result, unrounded, facts.net, currency, tuple(outcomes),
                      tuple(rewards), version, context)
