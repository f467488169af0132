"""Earning rules as data, and a pure evaluator that turns orders and events into points.

An :class:`EarningPolicy` is a tuple of rules (:class:`RateRule`,
:class:`MultiplierRule`, :class:`FixedRule`, :class:`StampCardRule`,
:class:`EventBonusRule`), optional :class:`RuleGroup` s, a rounding mode and a
stacking policy. Everything is an immutable value that validates on construction
(:class:`~loyaltykit.InvalidProgram` naming the field, e.g.
``earning.rules[2].caps[0].days``) and round-trips through a JSON-compatible dict
whose rules and conditions are tagged by a ``"type"`` key. Conditions are composable
data (:class:`AllOf`, :class:`AnyOf`, :class:`Not`...), never code: nothing here
calls ``eval``, reads a clock or does I/O.

:func:`evaluate_order` and :func:`evaluate_event` are pure functions of the policy,
the program's time zone, the source, the member's context and the usage rows of
earlier sources (:class:`~loyaltykit._model.RuleUsage`, which
:func:`usage_queries` says how to load and :func:`usage_rows` derives from an
evaluation). The documented semantics:

**Phases.** An order is evaluated in three phases: (1) rate rules build *base
amounts* per line (plus a ``shipping`` pseudo-line for rate rules whose base includes
shipping, whatever their line match); (2) multiplier rules scale base amounts;
(3) fixed, stamp-card and event-bonus rules add points of their own. An event runs
only the event-bonus and event stamp-card rules of its type. Within a phase, rules run
by ``priority`` (higher first), ties in definition order. When a rule marked
``exclusive`` applies, every later rule of the same phase is skipped. A rule
*applies* when its window and condition hold and it has something to apply to (a
matching line for line rules).

**Stacking.** With ``MULTIPLY`` multipliers compound in evaluation order and each
multiplier's contribution is the increase it adds (``base·f1·(f2−1)`` for the
second); with ``ADD`` each adds ``base·(f−1)``. Multipliers never touch fixed,
stamp-card or event-bonus points, and scale what rate rules gave after their caps (a
capped rate's room is shared over its lines in proportion). A factor below 1 gives a
negative contribution, which caps do not limit.

**Windows** (dates, weekdays, hours) and tenure are read on the local wall-clock
time of the order's or event's instant in the program's time zone; an hour range
that falls into a daylight-saving gap never matches that day, one in the repeated
hour matches twice. An hour range ending at 00:00 runs to the end of the day.

**Caps** (per member): a rule's contribution is ``min(uncapped, remaining)`` where
``remaining`` is the least, over the rule's own caps and its group's caps, of the cap
minus what the usage rows show for the period containing the source's instant:
calendar periods (day, ISO week from Monday, month, quarter, year) in the program's
time zone; ``ORDER`` per source; ``LIFETIME`` all time; ``ROLLING`` N days must hold
in *every* N-day window containing the instant, so the usage is the largest sum over
windows ``(e − N days, e]`` with ``e`` the instant or a later usage instant less
than N days after it (caps stay true when orders arrive out of order; rolling days
are 24-hour spans of time, not calendar days). Rules of one group consume the group's
room in evaluation order. Usage rows of the source being evaluated are ignored,
duplicated rows are counted once, and negative rows count as 0.

**Stamp cards.** Stamps are 1 per qualifying order (``counts="orders"``), the
quantity of matching lines (``"items"``) or 1 per event of the rule's type
(``"events"``). With ``before`` the rule's lifetime stamps from the usage rows, the
source earns ``floor((before + stamps) / every) − floor(before / every)`` rewards,
each worth ``points`` and naming ``reward``. A return settles a card over all of the
member's kept stamps (the orders' service, with :func:`reevaluate_order`): the
returned order, and other orders, keep the rewards the settlement leaves them.

**Rounding** happens once per source: points = the sum of the rules' exact
contributions, rounded with the policy's mode, never below 0, then limited by
``max_points_per_order``. An order with nothing left (fully returned) is worth 0.

**Re-evaluation** (a return: ``previous`` given) uses the member context and
stamp counts recorded in ``previous.context``, ignores usage rows, and limits each
rule to what it gave before: its points are ``min(new amount after ORDER caps, its
previous points)``, its stamps ``min(new, previous)``, its rewards at most the
previous ones; the total is at most the previous total. So a return never adds
points, and caps stay true.

Amounts are exact ``Decimal`` arithmetic with 34 significant digits (only a rate
whose ``per`` does not divide evenly, or a capped amount shared out over lines, can
ever need more), done in a private decimal context, whatever the caller's.

The package, one module per concept (each imports only those listed before it, and
the leaves :mod:`loyaltykit._validate` and :mod:`loyaltykit._calendar`):

* ``enums``: :class:`Rounding`, :class:`Stacking`, :class:`Base`, :class:`CapPeriod`;
* ``fields``: the rules' own field checks, texts and decimal contexts;
* ``scopes``: where and when a rule applies: :class:`Cap`, :class:`Window`,
  :class:`LineMatch`;
* ``facts``: :class:`MemberContext` and what conditions look at;
* ``conditions``: the condition language and its parser;
* ``rules``: the rule types and :class:`RuleGroup`;
* ``policy``: :class:`EarningPolicy` and the plan compiled from it;
* ``results``: :class:`RuleOutcome`, :class:`Evaluation`;
* ``usage``: :class:`UsageQuery`, :func:`usage_queries`, :func:`usage_rows`,
  :func:`stamp_card_ids`;
* ``limits``: one evaluation's usage rows and what its caps leave, and the texts of
  rules that did not apply;
* ``fastpath``: an order's first evaluation on the policy's rules compiled further
  (the same Evaluation as the general evaluator, with less work);
* ``evaluate``: :func:`evaluate_order`, :func:`evaluate_event` (the general evaluator,
  and the choice of the fast path).
"""

from __future__ import annotations

from loyaltykit._rules.conditions import (
    AllOf,
    AnyOf,
    Attribute,
    ChannelIn,
    Condition,
    FirstOrder,
    MinNet,
    MinTenure,
    Not,
    StoreIn,
    TierIn,
)
from loyaltykit._rules.enums import (
    Base,
    CapPeriod,
    Rounding,
    Stacking,
)
from loyaltykit._rules.evaluate import (
    evaluate_event,
    evaluate_order,
    reevaluate_order,
    rewards_of,
)
from loyaltykit._rules.facts import (
    MemberContext,
)
from loyaltykit._rules.policy import (
    EarningPolicy,
)
from loyaltykit._rules.results import (
    Evaluation,
    RuleOutcome,
)
from loyaltykit._rules.rules import (
    EventBonusRule,
    FixedRule,
    MultiplierRule,
    RateRule,
    Rule,
    RuleGroup,
    StampCardRule,
    TierMultiplierRule,
)
from loyaltykit._rules.scopes import (
    Cap,
    LineMatch,
    Window,
)
from loyaltykit._rules.usage import (
    UsageQuery,
    stamp_card_ids,
    usage_queries,
    usage_rows,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "Attribute",
    "Base",
    "Cap",
    "CapPeriod",
    "ChannelIn",
    "Condition",
    "EarningPolicy",
    "Evaluation",
    "EventBonusRule",
    "FirstOrder",
    "FixedRule",
    "LineMatch",
    "MemberContext",
    "MinNet",
    "MinTenure",
    "MultiplierRule",
    "Not",
    "RateRule",
    "Rounding",
    "Rule",
    "RuleGroup",
    "RuleOutcome",
    "Stacking",
    "StampCardRule",
    "StoreIn",
    "TierIn",
    "TierMultiplierRule",
    "UsageQuery",
    "Window",
    "evaluate_event",
    "evaluate_order",
    "reevaluate_order",
    "rewards_of",
    "stamp_card_ids",
    "usage_queries",
    "usage_rows",
]
