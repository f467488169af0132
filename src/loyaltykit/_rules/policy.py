"""The earning policy, and the plan compiled from it once for the evaluator."""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import attrs

from loyaltykit._errors import shown
from loyaltykit._json import JsonForm
from loyaltykit._rules.conditions import FirstOrder
from loyaltykit._rules.enums import (
    Base,
    Rounding,
    Stacking,
)
from loyaltykit._rules.fields import (
    CONTEXT,
    money_text,
    num_text,
    points_text,
    set_field,
    within,
)
from loyaltykit._rules.rules import (
    EventBonusRule,
    FixedRule,
    MultiplierRule,
    RateRule,
    Rule,
    RuleGroup,
    StampCardRule,
)
from loyaltykit._rules.scopes import LineMatch
from loyaltykit._validate import (
    check_enum,
    check_int,
    check_keys,
    check_tuple,
    invalid,
)
from loyaltykit._values import MAX_POINTS

if TYPE_CHECKING:
    from loyaltykit._rules.fastpath import OrderSteps

_MAX_RULES = 500

#: The kinds of compiled rule, as the evaluator dispatches on them.
RATE, MULTIPLIER, FIXED, STAMP, EVENT = 1, 2, 3, 4, 5
_CODES = {"rate": RATE, "multiplier": MULTIPLIER, "tier_multiplier": MULTIPLIER,
          "fixed": FIXED, "stamp_card": STAMP,
          "event_bonus": EVENT}


class Compiled:
    """What the evaluator needs of one rule, worked out once per policy: the rule's
    fields flattened, its line match as sets, its fixed explanation texts."""

    __slots__ = ("caps", "cats", "code", "cond", "excl", "group", "group_caps", "id", "kind",
                 "limited", "match_all", "phase", "prefix", "ratio", "rule", "ship", "skus",
                 "text", "tracked", "what", "window")

    def __init__(self, rule: Rule, groups: Mapping[str, RuleGroup], tracked: bool) -> None:
        self.rule = rule
        self.id = rule.id
        self.kind = rule.type
        self.code = _CODES[rule.type]
        self.phase = rule.phase
        self.text = rule.describe()
        self.excl = rule.exclusive
        self.window = rule.window
        self.cond = rule.condition
        self.caps = rule.caps
        self.group = rule.group
        self.group_caps = groups[rule.group].caps if rule.group is not None else ()
        self.limited = bool(self.caps or self.group_caps)
        self.tracked = tracked
        match: LineMatch | None = getattr(rule, "match", None)
        self.match_all = match is None or match.every_line
        self.cats: frozenset[str | None] = frozenset(match.categories if match else ())
        self.skus: frozenset[str] = frozenset(match.skus if match else ())
        self.ratio: Decimal | None = None
        self.ship = False
        self.prefix = ""
        self.what = "" if self.match_all else " of matching lines"
        if isinstance(rule, RateRule):
            self.ship = rule.base is Base.NET_GOODS_AND_SHIPPING
            with decimal.localcontext(CONTEXT):
                ratio = rule.points / rule.per
                # one multiplication when points/per is exact, else multiply then divide
                self.ratio = ratio if ratio * rule.per == rule.points else None
            self.prefix = f"{points_text(rule.points)} per {money_text(rule.per)}"
            self.what = "net goods" if self.match_all else "matching lines"
            if self.ship:
                self.what += " and shipping"
        elif isinstance(rule, MultiplierRule):
            self.prefix = f"x{num_text(rule.factor)} on "
        elif isinstance(rule, FixedRule):
            self.prefix = (f"{points_text(rule.points)} x " if rule.per_item
                           else f"{points_text(rule.points)} per order")
        elif isinstance(rule, EventBonusRule):
            self.prefix = f"{points_text(rule.points)} for a {rule.event} event"


class Plan:
    """A policy compiled for the evaluator: its order rules and its event rules by
    event type, in evaluation order, and the ids of the tracked rules."""

    __slots__ = ("event_rules", "first_order", "order_rules", "order_steps", "tracked")

    def __init__(self, policy: EarningPolicy) -> None:
        groups = {g.name: g for g in policy.groups}
        capped = {g.name for g in policy.groups if g.caps}
        tracked = frozenset(r.id for r in policy.rules
                            if r.caps or (r.group is not None and r.group in capped)
                            or isinstance(r, StampCardRule))
        self.first_order = any(isinstance(part, FirstOrder)
                               for rule in policy.rules if rule.condition is not None
                               for part in rule.condition.parts())
        compiled = [Compiled(r, groups, r.id in tracked) for r in policy.rules]
        order = sorted(range(len(compiled)),
                       key=lambda i: (compiled[i].phase, -compiled[i].rule.priority, i))
        self.order_rules = tuple(compiled[i] for i in order if compiled[i].rule.for_orders)
        events: dict[str, list[Compiled]] = {}
        for i in order:
            rule = compiled[i].rule
            if not rule.for_orders:
                name = rule.event if isinstance(rule, EventBonusRule | StampCardRule) else None
                assert name is not None
                events.setdefault(name, []).append(compiled[i])
        self.event_rules = {k: tuple(v) for k, v in events.items()}
        self.tracked = tracked
        #: the order rules compiled further for the evaluator's fast path, on first use
        #: (:class:`~loyaltykit._rules.fastpath.OrderSteps`; False: the policy has a rule
        #: the fast path does not handle)
        self.order_steps: OrderSteps | Literal[False] | None = None


@attrs.frozen
class EarningPolicy(JsonForm):
    """A program's earning rules, groups, rounding mode and stacking policy.

    >>> policy = EarningPolicy(rules=(RateRule(id="base"),))
    >>> EarningPolicy.from_dict(policy.to_dict()) == policy
    True

    ``max_points_per_order`` limits what one order or event can earn after rounding.
    See the module documentation for the evaluation semantics.
    """

    rules: tuple[Rule, ...] = ()
    groups: tuple[RuleGroup, ...] = ()
    rounding: Rounding = Rounding.FLOOR
    stacking: Stacking = Stacking.MULTIPLY
    max_points_per_order: int | None = None
    _plan: Plan = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        rules = check_tuple(self.rules, "earning.rules")
        if len(rules) > _MAX_RULES:
            raise invalid("earning.rules", f"at most {_MAX_RULES} rules", len(rules))
        groups = check_tuple(self.groups, "earning.groups")
        names: set[str] = set()
        for i, group in enumerate(groups):
            if not isinstance(group, RuleGroup):
                raise invalid(f"earning.groups[{i}]", "must be a RuleGroup", shown(group))
            if group.name in names:
                raise invalid(f"earning.groups[{i}].name", "group names must be unique", group.name)
            names.add(group.name)
        ids: set[str] = set()
        for i, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                raise invalid(f"earning.rules[{i}]", "must be a rule (RateRule, MultiplierRule...)",
                              shown(rule))
            if rule.id in ids:
                raise invalid(f"earning.rules[{i}].id", "rule ids must be unique", rule.id)
            ids.add(rule.id)
            if rule.group is not None and rule.group not in names:
                raise invalid(f"earning.rules[{i}].group",
                              f"no such group (groups: {sorted(names)})", rule.group)
        set_field(self, "rules", rules)
        set_field(self, "groups", groups)
        set_field(self, "rounding", check_enum(Rounding, self.rounding, "earning.rounding"))
        set_field(self, "stacking", check_enum(Stacking, self.stacking, "earning.stacking"))
        if self.max_points_per_order is not None:
            check_int(self.max_points_per_order, "earning.max_points_per_order", 0, MAX_POINTS)
        set_field(self, "_plan", Plan(self))

    @property
    def needs_first_order(self) -> bool:
        """True if a rule's condition asks whether an order is the member's first."""
        return self._plan.first_order

    @property
    def tracked_rule_ids(self) -> frozenset[str]:
        """Ids of the rules whose contributions are kept as usage rows: rules with caps,
        rules of a group with caps, and stamp cards."""
        return self._plan.tracked

    def rule(self, rule_id: str) -> Rule:
        """Return the rule called ``rule_id`` (KeyError-free: InvalidProgram if none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise invalid("earning.rules", "no such rule", rule_id)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict that :meth:`from_dict` turns back into ``self``."""
        return {
            "rules": [r.to_dict() for r in self.rules],
            "groups": [g.to_dict() for g in self.groups],
            "rounding": self.rounding.value,
            "stacking": self.stacking.value,
            "max_points_per_order": self.max_points_per_order,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EarningPolicy:
        """Build a policy from :meth:`to_dict` output; a bad field raises InvalidProgram
        naming it (``earning.rules[2].factor``)."""
        with within("earning"):
            data = check_keys(data, frozenset({"rules", "groups", "rounding", "stacking",
                                          "max_points_per_order"}))
            raw_rules = data.get("rules", ())
            if not isinstance(raw_rules, list | tuple):
                raise invalid("rules", "must be a list of rules", shown(raw_rules))
            if len(raw_rules) > _MAX_RULES:
                raise invalid("rules", f"at most {_MAX_RULES} rules", len(raw_rules))
            rules = []
            for i, raw in enumerate(raw_rules):
                with within(f"rules[{i}]"):
                    rules.append(Rule.from_dict(raw))
            raw_groups = data.get("groups", ())
            if not isinstance(raw_groups, list | tuple):
                raise invalid("groups", "must be a list of groups", shown(raw_groups))
            groups = []
            for i, raw in enumerate(raw_groups):
                with within(f"groups[{i}]"):
                    groups.append(RuleGroup.from_dict(raw))
            rounding = check_enum(Rounding, data.get("rounding", "floor"), "rounding")
            stacking = check_enum(Stacking, data.get("stacking", "multiply"), "stacking")
        return cls(rules=tuple(rules), groups=tuple(groups), rounding=rounding,
                   stacking=stacking, max_points_per_order=data.get("max_points_per_order"))


def plan_of(policy: EarningPolicy) -> Plan:
    """The plan compiled for ``policy`` (what the evaluator and usage queries read)."""
    return policy._plan
