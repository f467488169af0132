"""The condition language: composable conditions as data, and their parser."""

from __future__ import annotations

import decimal
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from loyaltykit._errors import InvalidProgram, shown
from loyaltykit._json import JsonForm
from loyaltykit._orders import parse_decimal
from loyaltykit._rules.facts import Facts
from loyaltykit._rules.fields import (
    check_decimal,
    check_label,
    check_labels,
    money_text,
    num_text,
    set_field,
    within,
)
from loyaltykit._validate import (
    check_int,
    check_keys,
    check_text,
    check_tuple,
    invalid,
)

_MAX_DEPTH = 16


class Condition(JsonForm):
    """A condition a rule needs: composable data (:class:`MinNet`, :class:`FirstOrder`,
    :class:`TierIn`, :class:`ChannelIn`, :class:`StoreIn`, :class:`Attribute`,
    :class:`MinTenure`, :class:`AllOf`, :class:`AnyOf`, :class:`Not`)."""

    __slots__ = ()
    type: ClassVar[str] = ""

    def describe(self) -> str:
        """Say the condition in words."""
        raise NotImplementedError

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails for these facts, or None if it holds."""
        raise NotImplementedError

    def parts(self) -> Iterator[Condition]:
        """Yield this condition and every condition nested in it."""
        yield self

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict tagged by ``"type"``."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        """Build any condition from its :meth:`to_dict` form (dispatching on ``"type"``;
        called on a subclass, the dict must describe that subclass)."""
        condition = parse_condition(data, 0)
        if not isinstance(condition, cls):
            raise invalid("type", f"a {cls.__name__} was expected", data.get("type"))
        return condition


def parse_condition(data: object, depth: int) -> Condition:
    """Build the condition ``data`` describes (its :meth:`Condition.to_dict` form),
    nested ``depth`` levels deep in another."""
    if depth > _MAX_DEPTH:
        raise invalid("", f"conditions nest deeper than {_MAX_DEPTH} levels", None)
    if not isinstance(data, Mapping):
        raise invalid("", "must be a dict with a 'type'", shown(data))
    kind = data.get("type")
    if kind not in _CONDITIONS:
        raise invalid("type", f"must be one of {sorted(_CONDITIONS)}", shown(kind))
    condition: Condition = _CONDITIONS[kind](data, depth)
    return condition


@attrs.frozen
class MinNet(Condition):
    """The order's net goods amount, as it stands, is at least ``amount`` (in the
    program's currency). Events have no goods: their net is 0."""

    type: ClassVar[str] = "min_net"
    amount: Decimal

    def __attrs_post_init__(self) -> None:
        set_field(self, "amount", check_decimal(self.amount, "amount"))

    def describe(self) -> str:
        """Say the condition in words."""
        return f"net goods >= {money_text(self.amount)}"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails, or None."""
        if facts.net >= self.amount:
            return None
        cur = f" {facts.currency}" if facts.currency else ""
        return f"net goods {num_text(facts.net)}{cur} < {money_text(self.amount)}{cur}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, "amount": str(self.amount)}


@attrs.frozen
class FirstOrder(Condition):
    """The order is the member's first."""

    type: ClassVar[str] = "first_order"

    def describe(self) -> str:
        """Say the condition in words."""
        return "the member's first order"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails, or None."""
        return None if facts.first_order else "not the member's first order"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type}


class _OneOf(Condition):
    """The source's fact ``_noun`` (an attribute of :class:`Facts`) is one of the
    labels in field ``_field``."""

    __slots__ = ()
    _field: ClassVar[str] = ""
    _noun: ClassVar[str] = ""

    def _names(self) -> tuple[str, ...]:
        labels: tuple[str, ...] = getattr(self, self._field)
        return labels

    def __attrs_post_init__(self) -> None:
        set_field(self, self._field, check_labels(self._names(), self._field, empty=False))

    def describe(self) -> str:
        """Say the condition in words."""
        return f"{self._noun} is {' or '.join(self._names())}"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails, or None."""
        value: str | None = getattr(facts, self._noun)
        if value in self._names():
            return None
        return f"{self._noun} {value or '(none)'} is not {' or '.join(self._names())}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, self._field: list(self._names())}


@attrs.frozen
class TierIn(_OneOf):
    """The member's tier is one of ``tiers``."""

    type: ClassVar[str] = "tier_in"
    _field: ClassVar[str] = "tiers"
    _noun: ClassVar[str] = "tier"
    tiers: tuple[str, ...]


@attrs.frozen
class ChannelIn(_OneOf):
    """The order came through one of ``channels`` (events have no channel)."""

    type: ClassVar[str] = "channel_in"
    _field: ClassVar[str] = "channels"
    _noun: ClassVar[str] = "channel"
    channels: tuple[str, ...]


@attrs.frozen
class StoreIn(_OneOf):
    """The order was placed in one of ``stores`` (events have no store)."""

    type: ClassVar[str] = "store_in"
    _field: ClassVar[str] = "stores"
    _noun: ClassVar[str] = "store"
    stores: tuple[str, ...]


_SCOPES = ("member", "order", "event")
_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists")
_OP_TEXT = {"eq": "=", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _scalar(value: object, field: str) -> object:
    if isinstance(value, str):
        return check_text(value, field, error=InvalidProgram)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise invalid(field, "must be finite", str(value))
        return value
    raise invalid(field, "must be None, a bool, an int, a Decimal or a str (never a float)",
                  shown(value))


def _same(actual: object, expected: object) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return type(actual) is type(expected) and actual == expected
    if isinstance(expected, Decimal) and isinstance(actual, str):
        try:
            return Decimal(actual) == expected
        except decimal.InvalidOperation:
            return False
    return actual == expected


def _compare(actual: object, expected: object) -> int | None:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return None
    if isinstance(expected, str):
        if not isinstance(actual, str):
            return None
        return (actual > expected) - (actual < expected)
    if isinstance(actual, str):
        try:
            actual = Decimal(actual)
        except decimal.InvalidOperation:
            return None
    if not isinstance(actual, int | float | Decimal) or not isinstance(expected,
                                                                       int | Decimal):
        return None
    if (isinstance(actual, float) and actual != actual) or (
            isinstance(actual, Decimal) and actual.is_nan()):  # (sNaN cannot even be compared)
        return None
    return (actual > expected) - (actual < expected)


def _value_to_json(value: object) -> Any:
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, tuple):
        return [_value_to_json(v) for v in value]
    return value


def _value_from_json(value: object, field: str) -> Any:
    if isinstance(value, Mapping):
        if set(value) != {"decimal"}:
            raise invalid(field, "a dict value must be {'decimal': '1.5'}", shown(value))
        return parse_decimal(value["decimal"], field, InvalidProgram)
    if isinstance(value, list):
        return tuple(_value_from_json(v, f"{field}[{i}]") for i, v in enumerate(value))
    return value


@attrs.frozen
class Attribute(Condition):
    """Test an attribute of the member, the order or the event: ``op`` is one of
    ``eq ne in not_in gt gte lt lte exists``.

    A missing attribute fails every test (use ``Not`` for "missing or different").
    ``gt``/``gte``/``lt``/``lte`` compare numbers with numbers (a numeric string
    attribute counts as a number when ``value`` is one) and strings with strings (ISO
    dates compare correctly); anything else fails. ``value`` is None, a bool, an int,
    a Decimal or a str, a tuple of those for ``in``/``not_in``, and None for
    ``exists``. Decimals are written ``{"decimal": "1.5"}`` in dicts.
    """

    type: ClassVar[str] = "attribute"
    scope: str
    name: str
    op: str
    value: Any = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.scope, str) or self.scope not in _SCOPES:
            raise invalid("scope", f"must be one of {list(_SCOPES)}", self.scope)
        check_label(self.name, "name")
        if not isinstance(self.op, str) or self.op not in _OPS:
            raise invalid("op", f"must be one of {list(_OPS)}", self.op)
        if self.op == "exists":
            if self.value is not None:
                raise invalid("value", "exists takes no value", shown(self.value))
        elif self.op in ("in", "not_in"):
            values = check_tuple(self.value, "value")
            set_field(self, "value", tuple(_scalar(v, f"value[{i}]") for i, v in enumerate(values)))
        else:
            _scalar(self.value, "value")
            if self.op in ("gt", "gte", "lt", "lte") and (
                    self.value is None or isinstance(self.value, bool)):
                raise invalid("value", "an ordering test needs a number or a str", self.value)

    def _wanted(self) -> str:
        if self.op == "exists":
            return "set"
        if self.op in ("in", "not_in"):
            words = "one of" if self.op == "in" else "none of"
            return f"{words} {', '.join(map(str, self.value))}"
        return f"{_OP_TEXT[self.op]} {self.value}"

    def describe(self) -> str:
        """Say the condition in words."""
        verb = "is " if self.op in ("exists", "in", "not_in") else ""
        return f"{self.scope} attribute {self.name} {verb}{self._wanted()}"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails, or None."""
        source = (facts.member_attrs if self.scope == "member"
                  else facts.order_attrs if self.scope == "order" else facts.event_attrs)
        if source is None or self.name not in source:
            return f"{self.scope} attribute {self.name} is missing"
        if self.op == "exists":
            return None
        actual = source[self.name]
        op = self.op
        if op == "eq":
            ok = _same(actual, self.value)
        elif op == "ne":
            ok = not _same(actual, self.value)
        elif op == "in":
            ok = any(_same(actual, v) for v in self.value)
        elif op == "not_in":
            ok = not any(_same(actual, v) for v in self.value)
        else:
            order = _compare(actual, self.value)
            ok = order is not None and (
                (op == "gt" and order > 0) or (op == "gte" and order >= 0)
                or (op == "lt" and order < 0) or (op == "lte" and order <= 0))
        if ok:
            return None
        return f"{self.scope} attribute {self.name} is {actual!r}, wanted {self._wanted()}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, "scope": self.scope, "name": self.name, "op": self.op,
                "value": _value_to_json(self.value)}


@attrs.frozen
class MinTenure(Condition):
    """The member has been enrolled for at least ``years`` full calendar years at the
    source's instant (anniversaries on local dates in the program's time zone)."""

    type: ClassVar[str] = "min_tenure"
    years: int

    def __attrs_post_init__(self) -> None:
        check_int(self.years, "years", 0, 200)

    def describe(self) -> str:
        """Say the condition in words."""
        return f"member for at least {self.years} year{'s' if self.years != 1 else ''}"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails, or None."""
        now = facts.local
        since = facts.enrolled_at.astimezone(facts.zone)
        years = now.year - since.year - (
            (now.month, now.day, now.time()) < (since.month, since.day, since.time()))
        if years >= self.years:
            return None
        return f"member for {max(years, 0)} full years < {self.years}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, "years": self.years}


def _conditions(value: object, field: str) -> tuple[Condition, ...]:
    items = check_tuple(value, field)
    if not items:
        raise invalid(field, "must hold at least one condition", [])
    for i, item in enumerate(items):
        if not isinstance(item, Condition):
            raise invalid(f"{field}[{i}]", "must be a Condition", shown(item))
    return items


@attrs.frozen
class AllOf(Condition):
    """Every one of ``conditions`` holds."""

    type: ClassVar[str] = "all_of"
    conditions: tuple[Condition, ...]

    def __attrs_post_init__(self) -> None:
        set_field(self, "conditions", _conditions(self.conditions, "conditions"))

    def describe(self) -> str:
        """Say the condition in words."""
        return "(" + " and ".join(c.describe() for c in self.conditions) + ")"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails (the first failing part), or None."""
        for condition in self.conditions:
            reason = condition.unmet(facts)
            if reason is not None:
                return reason
        return None

    def parts(self) -> Iterator[Condition]:
        """Yield this condition and every condition nested in it."""
        yield self
        for condition in self.conditions:
            yield from condition.parts()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, "conditions": [c.to_dict() for c in self.conditions]}


@attrs.frozen
class AnyOf(Condition):
    """At least one of ``conditions`` holds."""

    type: ClassVar[str] = "any_of"
    conditions: tuple[Condition, ...]

    def __attrs_post_init__(self) -> None:
        set_field(self, "conditions", _conditions(self.conditions, "conditions"))

    def describe(self) -> str:
        """Say the condition in words."""
        return "(" + " or ".join(c.describe() for c in self.conditions) + ")"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails (every part's reason), or None."""
        reasons = []
        for condition in self.conditions:
            reason = condition.unmet(facts)
            if reason is None:
                return None
            reasons.append(reason)
        return "none of: " + "; ".join(reasons)

    def parts(self) -> Iterator[Condition]:
        """Yield this condition and every condition nested in it."""
        yield self
        for condition in self.conditions:
            yield from condition.parts()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, "conditions": [c.to_dict() for c in self.conditions]}


@attrs.frozen
class Not(Condition):
    """``condition`` does not hold."""

    type: ClassVar[str] = "not"
    condition: Condition

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.condition, Condition):
            raise invalid("condition", "must be a Condition", shown(self.condition))

    def describe(self) -> str:
        """Say the condition in words."""
        return f"not {self.condition.describe()}"

    def unmet(self, facts: Facts) -> str | None:
        """Return why the condition fails, or None."""
        if self.condition.unmet(facts) is None:
            return f"{self.condition.describe()} holds"
        return None

    def parts(self) -> Iterator[Condition]:
        """Yield this condition and every condition nested in it."""
        yield self
        yield from self.condition.parts()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, "condition": self.condition.to_dict()}


def _nested(data: Mapping[str, Any], depth: int) -> tuple[Condition, ...]:
    raw = data["conditions"]
    if not isinstance(raw, list | tuple):
        raise invalid("conditions", "must be a list of conditions", shown(raw))
    out = []
    for i, item in enumerate(raw):
        with within(f"conditions[{i}]"):
            out.append(parse_condition(item, depth + 1))
    return tuple(out)


def _not(data: Mapping[str, Any], depth: int) -> Not:
    with within("condition"):
        inner = parse_condition(data["condition"], depth + 1)
    return Not(inner)


def _attribute(data: Mapping[str, Any]) -> Attribute:
    return Attribute(data["scope"], data["name"], data["op"],
                     _value_from_json(data.get("value"), "value"))


_CONDITIONS: dict[str, Any] = {
    "min_net": lambda d, _: MinNet(parse_decimal(
        check_keys(d, frozenset({"type", "amount"}), ("amount",))["amount"], "amount",
        InvalidProgram)),
    "first_order": lambda d, _: (check_keys(d, frozenset({"type"})), FirstOrder())[1],
    "tier_in": lambda d, _: TierIn(check_labels(
        check_keys(d, frozenset({"type", "tiers"}), ("tiers",))["tiers"], "tiers")),
    "channel_in": lambda d, _: ChannelIn(check_labels(
        check_keys(d, frozenset({"type", "channels"}), ("channels",))["channels"],
        "channels")),
    "store_in": lambda d, _: StoreIn(check_labels(
        check_keys(d, frozenset({"type", "stores"}), ("stores",))["stores"], "stores")),
    "attribute": lambda d, _: _attribute(check_keys(
        d, frozenset({"type", "scope", "name", "op", "value"}), ("scope", "name", "op"))),
    "min_tenure": lambda d, _: MinTenure(
        check_keys(d, frozenset({"type", "years"}), ("years",))["years"]),
    "all_of": lambda d, depth: AllOf(_nested(
        check_keys(d, frozenset({"type", "conditions"}), ("conditions",)), depth)),
    "any_of": lambda d, depth: AnyOf(_nested(
        check_keys(d, frozenset({"type", "conditions"}), ("conditions",)), depth)),
    "not": lambda d, depth: _not(check_keys(d, frozenset({"type", "condition"}), ("condition",)),
                                 depth),
}
