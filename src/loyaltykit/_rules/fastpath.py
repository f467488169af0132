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
* a line-matching rule selects its lines by testing the order's SKUs and categories
  (read once per order) against its own sets, in C (:mod:`~loyaltykit._rules.specialise`),
  instead of testing every line against every rule in Python;
* Decimal work that cannot change a digit is skipped (a rate of exactly 1 point per 1
  money unit on a line's net, which has at most 34 digits: ``net * 1`` is ``net``),
  and the outcomes' exact sum adds the applied ones only (a rule that does not apply
  gives ``0``, which the sum's start already is).

The compiled form lives on the policy's plan (built on first use, and only for the
policy it came from); the per-policy tables of outcomes are bounded, so a stream of
distinct reasons cannot grow them without end.
"""

from __future__ import annotations

from decimal import Decimal

from loyaltykit._rules.conditions import ChannelIn, MinNet, StoreIn, TierIn
from loyaltykit._rules.enums import DECIMAL_ROUNDING, CapPeriod, Stacking
from loyaltykit._rules.fields import CONTEXT, ONE, ZERO
from loyaltykit._rules.limits import NO_LINE, NOTHING, not_applied, within_rooms
from loyaltykit._rules.policy import FIXED, MULTIPLIER, RATE, STAMP, Compiled, EarningPolicy
from loyaltykit._rules.results import RuleOutcome
from loyaltykit._rules.rules import FixedRule, MultiplierRule, StampCardRule
from loyaltykit._rules.specialise import specialise

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
                 "noun", "per_item", "phase", "plain", "prefix", "rate", "ratio_one", "rooms",
                 "ship", "tier", "window")

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
        # each cap's whole room, as Run.limit works it out when no usage row counts
        # against it (an order cap: its points; another: its points less nothing used)
        self.rooms = tuple(
            (cap, Decimal(cap.points) if cap.period is CapPeriod.ORDER
             else CONTEXT.subtract(cap.points, ZERO)) for cap in c.caps)

    def whole_limit(self, uncapped: Decimal) -> tuple[Decimal, str]:
        """What :meth:`Run.limit <loyaltykit._rules.limits.Run.limit>` gives for this
        rule on a first evaluation with no usage rows, the rule in no capped group: its
        points after each cap's whole room, and the note saying so."""
        if uncapped <= ZERO:
            return uncapped, ""
        return within_rooms(self.rooms, uncapped, uncapped, "")

    def keep(self, table: dict[object, RuleOutcome], key: object,
             reason: str | None) -> RuleOutcome:
        """The not-applied outcome for ``reason``, kept in ``table`` under ``key``."""
        outcome = not_applied(self.c, f"not applied: {reason}")
        if len(table) < _TABLE_SIZE:
            table[key] = outcome
        return outcome


class OrderSteps:
    """A policy's order rules compiled for the fast path."""

    __slots__ = ("multiply", "nothing", "price", "rounder", "source", "steps")

    def __init__(self, policy: EarningPolicy, rules: tuple[Compiled, ...]) -> None:
        self.steps = tuple(Step(c) for c in rules)
        self.nothing = tuple(not_applied(c, NOTHING) for c in rules)
        self.multiply = policy.stacking is Stacking.MULTIPLY
        #: the evaluator's context rounding to the policy's rounding (to a whole point:
        #: the context's rounding is what to_integral_value rounds by)
        self.rounder = CONTEXT.copy()
        self.rounder.rounding = DECIMAL_ROUNDING[policy.rounding]
        #: the rule loop written out for these steps (:mod:`loyaltykit._rules.specialise`)
        self.price, self.source = specialise(self.steps, self.multiply, _TABLE_SIZE)


def supports(rules: tuple[Compiled, ...]) -> bool:
    """True if the fast path handles every one of ``rules`` (order rules: rate,
    multiplier, fixed and stamp card)."""
    return all(c.code in (RATE, MULTIPLIER, FIXED, STAMP) for c in rules)


