"""The rule types: rate, multiplier, tier multiplier, fixed, stamp card, event bonus,
and the groups whose caps rules share.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from loyaltykit._errors import InvalidProgram, shown
from loyaltykit._json import JsonForm
from loyaltykit._orders import (
    is_event_type,
    parse_decimal,
)
from loyaltykit._rules.conditions import (
    Condition,
    parse_condition,
)
from loyaltykit._rules.enums import Base
from loyaltykit._rules.fields import (
    ONE,
    check_decimal,
    check_label,
    money_text,
    num_text,
    points_text,
    set_field,
    within,
)
from loyaltykit._rules.scopes import (
    Cap,
    LineMatch,
    Window,
)
from loyaltykit._validate import (
    check_bool,
    check_enum,
    check_ident,
    check_int,
    check_keys,
    check_text,
    check_tuple,
    invalid,
)
from loyaltykit._values import MAX_POINTS

_MAX_RULES = 500
_MAX_PRIORITY = 1_000_000

_COUNTS = ("orders", "items", "events")


@attrs.frozen(kw_only=True)
class Rule(JsonForm):
    """What every earning rule has: an ``id`` unique in its policy, a human
    ``description``, a ``priority`` (higher runs first within its phase), whether it
    is ``exclusive`` (skips the later rules of its phase when it applies), a ``group``
    (a :class:`RuleGroup` of the policy whose caps it shares), a time ``window``, a
    ``condition`` and its own ``caps``.

    Use the concrete rules: :class:`RateRule`, :class:`MultiplierRule`,
    :class:`FixedRule`, :class:`StampCardRule`, :class:`EventBonusRule`.
    """

    type: ClassVar[str] = ""
    phase: ClassVar[int] = 3
    _fields: ClassVar[frozenset[str]] = frozenset()

    id: str
    description: str = ""
    priority: int = 0
    exclusive: bool = False
    group: str | None = None
    window: Window | None = None
    condition: Condition | None = None
    caps: tuple[Cap, ...] = ()

    def __attrs_post_init__(self) -> None:
        if not self.type:
            raise invalid("type", "use a concrete rule class (RateRule, MultiplierRule...)",
                          type(self).__name__)
        check_ident(self.id, "id")
        if not isinstance(self.description, str) or len(self.description) > 1000:
            raise invalid("description", "must be a str of at most 1000 characters",
                          shown(self.description))
        check_text(self.description, "description", error=InvalidProgram)
        check_int(self.priority, "priority", -_MAX_PRIORITY, _MAX_PRIORITY)
        check_bool(self.exclusive, "exclusive")
        if self.group is not None:
            check_ident(self.group, "group")
        if self.window is not None and not isinstance(self.window, Window):
            raise invalid("window", "must be a Window", shown(self.window))
        if self.condition is not None and not isinstance(self.condition, Condition):
            raise invalid("condition", "must be a Condition", shown(self.condition))
        caps = check_tuple(self.caps, "caps")
        for i, cap in enumerate(caps):
            if not isinstance(cap, Cap):
                raise invalid(f"caps[{i}]", "must be a Cap", shown(cap))
        set_field(self, "caps", caps)
        self._check()

    def _check(self) -> None:
        raise NotImplementedError

    def summary(self) -> str:
        """What the rule does, in words (generated from its fields)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The rule's description, or its generated :meth:`summary` when it has none."""
        return self.description or self.summary()

    @property
    def for_orders(self) -> bool:
        """True if the rule applies to orders (False: to events of one type)."""
        return True

    def _specific(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict tagged by ``"type"``."""
        data: dict[str, Any] = {
            "type": self.type, "id": self.id, "description": self.description,
            "priority": self.priority, "exclusive": self.exclusive, "group": self.group,
            "window": self.window.to_dict() if self.window is not None else None,
            "condition": self.condition.to_dict() if self.condition is not None else None,
            "caps": [c.to_dict() for c in self.caps],
        }
        data.update(self._specific())
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Build any rule from its :meth:`to_dict` form (dispatching on ``"type"``)."""
        if not isinstance(data, Mapping):
            raise invalid("", "must be a dict with a 'type'", shown(data))
        kind = data.get("type")
        sub = _RULES.get(kind) if isinstance(kind, str) else None
        if sub is None:
            raise invalid("type", f"must be one of {sorted(_RULES)}", shown(kind))
        check_keys(data, _COMMON_KEYS | sub._fields, ("id",))
        window = data.get("window")
        if window is not None:
            with within("window"):
                window = Window.from_dict(window)
        condition = data.get("condition")
        if condition is not None:
            with within("condition"):
                condition = parse_condition(condition, 0)
        raw_caps = data.get("caps", ())
        if not isinstance(raw_caps, list | tuple):
            raise invalid("caps", "must be a list of caps", shown(raw_caps))
        caps = []
        for i, raw in enumerate(raw_caps):
            with within(f"caps[{i}]"):
                caps.append(Cap.from_dict(raw))
        common: dict[str, Any] = {
            "id": data["id"], "description": data.get("description", ""),
            "priority": data.get("priority", 0), "exclusive": data.get("exclusive", False),
            "group": data.get("group"), "window": window, "condition": condition,
            "caps": tuple(caps),
        }
        rule: Rule = sub(**common, **sub._parse(data))
        if not isinstance(rule, cls):
            raise invalid("type", f"a {cls.__name__} was expected", kind)
        return rule

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _match(value: object) -> LineMatch | None:
    if value is None:
        return None
    if not isinstance(value, LineMatch):
        raise invalid("match", "must be a LineMatch", shown(value))
    return value


def _parse_match(data: Mapping[str, Any]) -> LineMatch | None:
    raw = data.get("match")
    if raw is None:
        return None
    with within("match"):
        return LineMatch.from_dict(raw)


def _match_dict(match: LineMatch | None) -> dict[str, Any] | None:
    return match.to_dict() if match is not None else None


@attrs.frozen(kw_only=True)
class RateRule(Rule):
    """``points`` per ``per`` money units of each matching line's net amount (with
    ``NET_GOODS_AND_SHIPPING`` the shipping counts too, whatever ``match`` says)."""

    type: ClassVar[str] = "rate"
    phase: ClassVar[int] = 1
    _fields: ClassVar[frozenset[str]] = frozenset({"points", "per", "base", "match"})

    points: Decimal = ONE
    per: Decimal = ONE
    base: Base = Base.NET_GOODS
    match: LineMatch | None = None

    def _check(self) -> None:
        set_field(self, "points", check_decimal(self.points, "points"))
        set_field(self, "per", check_decimal(self.per, "per", positive=True))
        set_field(self, "base", check_enum(Base, self.base, "base"))
        _match(self.match)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "net goods" if self.match is None else self.match.describe()
        if self.base is Base.NET_GOODS_AND_SHIPPING:
            what += " and shipping"
        return f"{points_text(self.points)} per {money_text(self.per)} of {what}"

    def _specific(self) -> dict[str, Any]:
        return {"points": str(self.points), "per": str(self.per), "base": self.base.value,
                "match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "points": parse_decimal(data.get("points", 1), "points", InvalidProgram),
            "per": parse_decimal(data.get("per", 1), "per", InvalidProgram),
            "base": check_enum(Base, data.get("base", "net_goods"), "base"),
            "match": _parse_match(data),
        }


@attrs.frozen(kw_only=True)
class MultiplierRule(Rule):
    """Multiply the base (rate) amounts of matching lines by ``factor`` (no match: every
    base amount, shipping included). See the module's stacking semantics."""

    type: ClassVar[str] = "multiplier"
    phase: ClassVar[int] = 2
    _fields: ClassVar[frozenset[str]] = frozenset({"factor", "match"})

    factor: Decimal
    match: LineMatch | None = None

    def _check(self) -> None:
        set_field(self, "factor", check_decimal(self.factor, "factor"))
        _match(self.match)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "every base amount" if self.match is None else self.match.describe()
        return f"x{num_text(self.factor)} on {what}"

    def _specific(self) -> dict[str, Any]:
        return {"factor": str(self.factor), "match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "factor" not in data:
            raise invalid("factor", "is required", None)
        return {"factor": parse_decimal(data["factor"], "factor", InvalidProgram),
                "match": _parse_match(data)}


@attrs.frozen(kw_only=True)
class TierMultiplierRule(MultiplierRule):
    """Multiply base amounts by the earn multiplier of the member's tier (its
    :class:`~loyaltykit.Benefits`), like a :class:`MultiplierRule` whose ``factor``
    comes from the tier ladder; ``factor`` is not given. Without a tier ladder the
    multiplier is 1 (the rule gives nothing)."""

    type: ClassVar[str] = "tier_multiplier"
    _fields: ClassVar[frozenset[str]] = frozenset({"match"})

    factor: Decimal = attrs.field(default=Decimal(1), init=False)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "every base amount" if self.match is None else self.match.describe()
        return f"x the tier's earn multiplier on {what}"

    def _specific(self) -> dict[str, Any]:
        return {"match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"match": _parse_match(data)}


@attrs.frozen(kw_only=True)
class FixedRule(Rule):
    """``points`` per order (or per unit of the matching lines with ``per_item``);
    orders only, and only when at least one line matches."""

    type: ClassVar[str] = "fixed"
    _fields: ClassVar[frozenset[str]] = frozenset({"points", "per_item", "match"})

    points: int
    per_item: bool = False
    match: LineMatch | None = None

    def _check(self) -> None:
        check_int(self.points, "points", 0, MAX_POINTS)
        check_bool(self.per_item, "per_item")
        _match(self.match)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "" if self.match is None else f" ({self.match.describe()})"
        unit = "item" if self.per_item else "order"
        return f"{points_text(self.points)} per {unit}{what}"

    def _specific(self) -> dict[str, Any]:
        return {"points": self.points, "per_item": self.per_item,
                "match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "points" not in data:
            raise invalid("points", "is required", None)
        return {"points": data["points"], "per_item": data.get("per_item", False),
                "match": _parse_match(data)}


@attrs.frozen(kw_only=True)
class StampCardRule(Rule):
    """A stamp card: every ``every`` stamps earn ``points`` and/or the ``reward``.

    ``counts`` says what a stamp is: one per qualifying order (``"orders"``: an order
    with a matching line), the quantity of matching lines (``"items"``), or one per
    event of type ``event`` (``"events"``, e.g. ``"visit"``).
    """

    type: ClassVar[str] = "stamp_card"
    _fields: ClassVar[frozenset[str]] = frozenset(
        {"every", "points", "reward", "counts", "match", "event"})

    every: int
    points: int = 0
    reward: str | None = None
    counts: str = "orders"
    match: LineMatch | None = None
    event: str | None = None

    def _check(self) -> None:
        check_int(self.every, "every", 1, 1_000_000)
        check_int(self.points, "points", 0, MAX_POINTS)
        if self.reward is not None:
            check_label(self.reward, "reward")
        if self.points == 0 and self.reward is None:
            raise invalid("points", "a stamp card needs points, a reward or both", 0)
        if not isinstance(self.counts, str) or self.counts not in _COUNTS:
            raise invalid("counts", f"must be one of {list(_COUNTS)}", self.counts)
        _match(self.match)
        if self.counts == "events":
            if self.event is None:
                raise invalid("event", "counts='events' needs the event type to count", None)
            if not is_event_type(self.event):
                raise invalid("event", "must be an event type", self.event)
            if self.match is not None:
                raise invalid("match", "events have no lines to match", self.match.to_dict())
        elif self.event is not None:
            raise invalid("event", "only counts='events' takes an event type", self.event)

    @property
    def for_orders(self) -> bool:
        """True unless the card counts events."""
        return self.counts != "events"

    def summary(self) -> str:
        """What the rule does, in words."""
        what = {"orders": "order", "items": "item", "events": f"{self.event} event"}
        gives = " and ".join(
            ([points_text(self.points)] if self.points else [])
            + ([self.reward] if self.reward else []))
        scope = "" if self.match is None else f" ({self.match.describe()})"
        return f"one stamp per {what[self.counts]}{scope}; every {self.every}: {gives}"

    def _specific(self) -> dict[str, Any]:
        return {"every": self.every, "points": self.points, "reward": self.reward,
                "counts": self.counts, "match": _match_dict(self.match), "event": self.event}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "every" not in data:
            raise invalid("every", "is required", None)
        return {"every": data["every"], "points": data.get("points", 0),
                "reward": data.get("reward"), "counts": data.get("counts", "orders"),
                "match": _parse_match(data), "event": data.get("event")}


@attrs.frozen(kw_only=True)
class EventBonusRule(Rule):
    """``points`` for each event of type ``event`` (sign-up, birthday, review...)."""

    type: ClassVar[str] = "event_bonus"
    _fields: ClassVar[frozenset[str]] = frozenset({"event", "points"})

    event: str
    points: int

    def _check(self) -> None:
        if not is_event_type(self.event):
            raise invalid("event", "must be an event type (sign_up, birthday, anniversary, review, "
                          "visit or a lower-case custom identifier)", self.event)
        check_int(self.points, "points", 0, MAX_POINTS)

    @property
    def for_orders(self) -> bool:
        """Always False: event bonuses apply to events."""
        return False

    def summary(self) -> str:
        """What the rule does, in words."""
        return f"{points_text(self.points)} per {self.event} event"

    def _specific(self) -> dict[str, Any]:
        return {"event": self.event, "points": self.points}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("event", "points"):
            if key not in data:
                raise invalid(key, "is required", None)
        return {"event": data["event"], "points": data["points"]}


_RULES: dict[str, type[Rule]] = {
    cls.type: cls for cls in (RateRule, MultiplierRule, TierMultiplierRule, FixedRule,
                              StampCardRule, EventBonusRule)
}
_COMMON_KEYS = frozenset({"type", "id", "description", "priority", "exclusive", "group",
                          "window", "condition", "caps"})


@attrs.frozen
class RuleGroup(JsonForm):
    """Rules that share caps: each rule naming the group (``Rule.group``) consumes the
    group's caps as well as its own."""

    name: str
    caps: tuple[Cap, ...] = ()

    def __attrs_post_init__(self) -> None:
        check_ident(self.name, "name")
        caps = check_tuple(self.caps, "caps")
        for i, cap in enumerate(caps):
            if not isinstance(cap, Cap):
                raise invalid(f"caps[{i}]", "must be a Cap", shown(cap))
        set_field(self, "caps", caps)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"name": self.name, "caps": [c.to_dict() for c in self.caps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleGroup:
        """Inverse of :meth:`to_dict`."""
        data = check_keys(data, frozenset({"name", "caps"}), ("name",))
        raw = data.get("caps", ())
        if not isinstance(raw, list | tuple):
            raise invalid("caps", "must be a list of caps", shown(raw))
        caps = []
        for i, item in enumerate(raw):
            with within(f"caps[{i}]"):
                caps.append(Cap.from_dict(item))
        return cls(data["name"], tuple(caps))
