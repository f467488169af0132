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
each worth ``points`` and naming ``reward``.

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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import functools
import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from loyaltykit._errors import InvalidInput, InvalidProgram, LoyaltyError
from loyaltykit._model import RuleUsage
from loyaltykit._orders import (
    Event,
    Order,
    OrderLine,
    check_name,
    is_event_type,
    parse_decimal,
    with_prefix,
)
from loyaltykit._values import MAX_POINTS, check_aware, to_utc

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
    "stamp_card_ids",
    "usage_queries",
    "usage_rows",
]

_ZERO = Decimal(0)
_ONE = Decimal(1)
_CENT = Decimal("0.01")
_MIDNIGHT = dt.time(0, 0)
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
_MAX_RULES = 500
_MAX_DEPTH = 16
_MAX_PRIORITY = 1_000_000
_MAX_DECIMAL = Decimal(10**12)
_MAX_PLACES = 12
_CTX = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN,
                       traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                              decimal.Overflow])
# wide enough to add any number of outcomes exactly (each is below 10**13 and has at most
# 34 significant digits, so a sum spans well under 100 digits)
_EXACT = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN,
                         traps=[decimal.InvalidOperation, decimal.Inexact])
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES = {name: i + 1 for i, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
_DAY_NAMES.update({name[:3]: n for name, n in list(_DAY_NAMES.items())})


# -- enums --------------------------------------------------------------------------------


class Rounding(enum.Enum):
    """How an order's exact point total becomes whole points (once per order)."""

    FLOOR = "floor"
    HALF_UP = "half_up"
    HALF_EVEN = "half_even"
    CEILING = "ceiling"


_DECIMAL_ROUNDING = {
    Rounding.FLOOR: decimal.ROUND_FLOOR,
    Rounding.HALF_UP: decimal.ROUND_HALF_UP,
    Rounding.HALF_EVEN: decimal.ROUND_HALF_EVEN,
    Rounding.CEILING: decimal.ROUND_CEILING,
}


class Stacking(enum.Enum):
    """How several multipliers combine: compound (``MULTIPLY``) or add their increases
    to the base (``ADD``)."""

    MULTIPLY = "multiply"
    ADD = "add"


class Base(enum.Enum):
    """What a rate rule counts: net goods, or net goods plus shipping."""

    NET_GOODS = "net_goods"
    NET_GOODS_AND_SHIPPING = "net_goods_and_shipping"


class CapPeriod(enum.Enum):
    """The period a cap counts over, per member. Calendar periods are in the program's
    time zone (``WEEK`` is the ISO week, from Monday); ``ROLLING`` needs ``days``."""

    ORDER = "order"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    ROLLING = "rolling"
    LIFETIME = "lifetime"


_CALENDAR = frozenset({CapPeriod.DAY, CapPeriod.WEEK, CapPeriod.MONTH, CapPeriod.QUARTER,
                       CapPeriod.YEAR})


# -- validation helpers -------------------------------------------------------------------


def _fail(field: str, message: str, value: object) -> NoReturn:
    raise InvalidProgram(f"{field}: {message}" if field else message, field=field,
                         value=value)


@contextlib.contextmanager
def _at(prefix: str) -> Iterator[None]:
    """Prefix the field path of InvalidProgram errors raised inside, and turn stray
    lookup/type errors from malformed dicts into InvalidProgram naming ``prefix``."""
    try:
        yield
    except InvalidProgram as exc:
        raise with_prefix(exc, prefix) from None
    except LoyaltyError as exc:  # e.g. InvalidMoney from a nested value
        raise InvalidProgram(f"{prefix}: {exc.message}", field=prefix,
                             value=dict(exc.details)) from None
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise InvalidProgram(f"{prefix}: malformed ({exc!r})", field=prefix,
                             value=None) from None


def _int(value: object, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _fail(field, f"must be an int from {low} to {high}", value)
    return value


def _dec(value: object, field: str, *, positive: bool = False) -> Decimal:
    amount = parse_decimal(value, field, InvalidProgram)
    if amount < _ZERO or (positive and amount == _ZERO):
        _fail(field, "must be greater than 0" if positive else "must not be negative",
              str(amount))
    if amount > _MAX_DECIMAL or amount.as_tuple().exponent < -_MAX_PLACES:  # type: ignore[operator]
        _fail(field, f"must be at most {_MAX_DECIMAL} with at most {_MAX_PLACES} decimal "
              "places", str(amount))
    return amount


def _bool(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        _fail(field, "must be a bool", value)
    return value


def _ident(value: object, field: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        _fail(field, "must be an identifier: a letter, then up to 63 letters, digits "
              "and _.-", value)
    return value


def _label(value: object, field: str) -> str:
    return check_name(value, field, InvalidProgram)


def _labels(value: object, field: str, *, empty: bool = True) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        _fail(field, "must be a list of names", repr(value))
    if not value and not empty:
        _fail(field, "must name at least one", [])
    return tuple(_label(v, f"{field}[{i}]") for i, v in enumerate(value))


def _enum_value(cls: type[enum.Enum], value: object, field: str) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except (ValueError, TypeError):
        _fail(field, f"must be one of {[m.value for m in cls]}", repr(value))


def _tuple(value: object, field: str) -> tuple[Any, ...]:
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    _fail(field, "must be a tuple", repr(value))


def _keys(data: object, known: frozenset[str], required: tuple[str, ...] = ()
          ) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        _fail("", "must be a dict", repr(data))
    for key in data:
        if key not in known:
            _fail(str(key), f"unknown field (known: {sorted(known)})", None)
    for key in required:
        if key not in data:
            _fail(key, "is required", None)
    return data


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


def _num(value: Decimal) -> str:
    """Decimal as text for explanations (no exponent for ordinary amounts)."""
    return f"{value:f}" if -10**20 < value < 10**20 else str(value)


def _money_text(value: Decimal) -> str:
    quantized = value.quantize(_CENT, context=_CTX)
    return f"{quantized:f}" if quantized == value else _num(value)


def _points_text(value: Decimal | int) -> str:
    return f"{value} point" if value == 1 else f"{value} points"


@functools.lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        _fail("time_zone", "unknown IANA time zone", name)


def _get_zone(name: object) -> ZoneInfo:
    if not isinstance(name, str):
        _fail("time_zone", "must be an IANA time zone name", repr(name))
    return _zone(name)


# -- caps, windows, line matches ----------------------------------------------------------


@attrs.frozen
class Cap:
    """At most ``points`` per member per ``period`` (``days`` long when ROLLING)."""

    points: int
    period: CapPeriod
    days: int | None = None

    def __attrs_post_init__(self) -> None:
        _int(self.points, "points", 0, MAX_POINTS)
        _set(self, "period", _enum_value(CapPeriod, self.period, "period"))
        if self.period is CapPeriod.ROLLING:
            if self.days is None:
                _fail("days", "is required for a rolling cap", None)
            _int(self.days, "days", 1, 3660)
        elif self.days is not None:
            _fail("days", "only a rolling cap takes days", self.days)

    def describe(self) -> str:
        """Say the cap in words: ``"500 per calendar month"``."""
        if self.period is CapPeriod.ORDER:
            return f"{self.points} per order"
        if self.period is CapPeriod.LIFETIME:
            return f"{self.points} in total"
        if self.period is CapPeriod.ROLLING:
            return f"{self.points} per {self.days} rolling days"
        if self.period is CapPeriod.WEEK:
            return f"{self.points} per calendar week"
        return f"{self.points} per calendar {self.period.value}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"points": self.points, "period": self.period.value, "days": self.days}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cap:
        """Inverse of :meth:`to_dict`."""
        data = _keys(data, frozenset({"points", "period", "days"}), ("points", "period"))
        return cls(data["points"], _enum_value(CapPeriod, data["period"], "period"),
                   data.get("days"))


def _date(value: object, field: str) -> dt.date:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            _fail(field, "must be an ISO date (YYYY-MM-DD)", value)
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        _fail(field, "must be a date", repr(value))
    return value


def _time(value: object, field: str) -> dt.time:
    if isinstance(value, str):
        try:
            value = dt.time.fromisoformat(value)
        except ValueError:
            _fail(field, "must be a time of day (HH:MM)", value)
    if not isinstance(value, dt.time):
        _fail(field, "must be a time of day", repr(value))
    if value.tzinfo is not None:
        _fail(field, "must be a local time without a time zone (the program's is used)",
              value.isoformat())
    return value


def _time_text(value: dt.time) -> str:
    if value.second or value.microsecond:
        return value.isoformat()
    return value.isoformat(timespec="minutes")


@attrs.frozen
class Window:
    """When a rule applies, on local wall-clock time in the program's time zone.

    ``start``/``end`` are dates (both inclusive, either open); ``weekdays`` are ISO
    numbers (1 = Monday ... 7 = Sunday; empty: every day); ``hours`` are
    ``(start, end)`` local times, start inclusive, end exclusive, an end of 00:00
    meaning the end of the day (empty: all day).
    """

    start: dt.date | None = None
    end: dt.date | None = None
    weekdays: tuple[int, ...] = ()
    hours: tuple[tuple[dt.time, dt.time], ...] = ()

    def __attrs_post_init__(self) -> None:
        if self.start is not None:
            _set(self, "start", _date(self.start, "start"))
        if self.end is not None:
            _set(self, "end", _date(self.end, "end"))
        if self.start is not None and self.end is not None and self.start > self.end:
            _fail("end", "must not be before start", self.end.isoformat())
        days = _tuple(self.weekdays, "weekdays")
        for i, day in enumerate(days):
            _int(day, f"weekdays[{i}]", 1, 7)
        if len(set(days)) != len(days):
            _fail("weekdays", "must not repeat a day", list(days))
        _set(self, "weekdays", days)
        ranges = []
        for i, pair in enumerate(_tuple(self.hours, "hours")):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                _fail(f"hours[{i}]", "must be a (start, end) pair of times", repr(pair))
            begin = _time(pair[0], f"hours[{i}][0]")
            end = _time(pair[1], f"hours[{i}][1]")
            if not (begin < end or (end == _MIDNIGHT and begin != _MIDNIGHT)):
                _fail(f"hours[{i}]", "start must be before end (an end of 00:00 means "
                      "midnight at the end of the day)", [_time_text(begin), _time_text(end)])
            ranges.append((begin, end))
        _set(self, "hours", tuple(ranges))

    def unmet(self, local: dt.datetime) -> str | None:
        """Return why the local wall-clock time ``local`` is outside the window, or
        None when it is inside."""
        if self.start is not None or self.end is not None:
            day = local.date()
            if (self.start is not None and day < self.start) or (
                    self.end is not None and day > self.end):
                return f"{day.isoformat()} is outside {self._dates()}"
        if self.weekdays and local.isoweekday() not in self.weekdays:
            return (f"{_DAYS[local.weekday()]} is not one of "
                    f"{', '.join(_DAYS[d - 1] for d in self.weekdays)}")
        if self.hours:
            now = local.time()
            for begin, end in self.hours:
                if begin <= now and (now < end or end == _MIDNIGHT):
                    return None
            return f"{now.isoformat(timespec='minutes')} is outside {self._hours()}"
        return None

    def _dates(self) -> str:
        if self.start is not None and self.end is not None:
            return f"{self.start.isoformat()} to {self.end.isoformat()}"
        if self.start is not None:
            return f"from {self.start.isoformat()}"
        return f"until {self.end.isoformat()}" if self.end is not None else "any date"

    def _hours(self) -> str:
        return ", ".join(f"{_time_text(b)}-{_time_text(e) if e != _MIDNIGHT else '24:00'}"
                         for b, e in self.hours)

    def describe(self) -> str:
        """Say the window in words: ``"Sat, Sun 18:00-22:00 (local time)"``."""
        parts = []
        if self.start is not None or self.end is not None:
            parts.append(self._dates())
        if self.weekdays:
            parts.append(", ".join(_DAYS[d - 1] for d in self.weekdays))
        if self.hours:
            parts.append(self._hours())
        return " ".join(parts) + " (local time)" if parts else "any time"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (ISO dates, ``"HH:MM"`` times)."""
        return {
            "start": self.start.isoformat() if self.start is not None else None,
            "end": self.end.isoformat() if self.end is not None else None,
            "weekdays": list(self.weekdays),
            "hours": [[_time_text(b), _time_text(e)] for b, e in self.hours],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        """Inverse of :meth:`to_dict`; weekdays may also be names (``"sat"``,
        ``"Sunday"``) and dates/times native TOML values."""
        data = _keys(data, frozenset({"start", "end", "weekdays", "hours"}))
        days = data.get("weekdays", ())
        if not isinstance(days, list | tuple):
            _fail("weekdays", "must be a list of days", repr(days))
        numbers = []
        for i, day in enumerate(days):
            if isinstance(day, str):
                number = _DAY_NAMES.get(day.lower())
                if number is None:
                    _fail(f"weekdays[{i}]", "must be 1-7 or a day name (mon..sun)", day)
                numbers.append(number)
            else:
                numbers.append(day)
        hours = data.get("hours", ())
        if not isinstance(hours, list | tuple):
            _fail("hours", "must be a list of [start, end] pairs", repr(hours))
        pairs = []
        for i, pair in enumerate(hours):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                _fail(f"hours[{i}]", "must be a [start, end] pair", repr(pair))
            pairs.append((_time(pair[0], f"hours[{i}][0]"), _time(pair[1], f"hours[{i}][1]")))
        start, end = data.get("start"), data.get("end")
        return cls(
            start=None if start is None else _date(start, "start"),
            end=None if end is None else _date(end, "end"),
            weekdays=tuple(numbers), hours=tuple(pairs),
        )


@attrs.frozen
class LineMatch:
    """Which order lines a rule looks at: lines whose category is in ``categories`` or
    whose SKU is in ``skus``; both empty: every line."""

    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    _cats: frozenset[str] = attrs.field(init=False, repr=False, eq=False, hash=False)
    _skus: frozenset[str] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        _set(self, "categories", _labels(self.categories, "categories"))
        _set(self, "skus", _labels(self.skus, "skus"))
        _set(self, "_cats", frozenset(self.categories))
        _set(self, "_skus", frozenset(self.skus))

    @property
    def every_line(self) -> bool:
        """True if this matches every line."""
        return not self.categories and not self.skus

    def matches(self, line: OrderLine) -> bool:
        """True if ``line`` is one this match selects."""
        if not self._cats and not self._skus:
            return True
        return line.sku in self._skus or (line.category is not None
                                          and line.category in self._cats)

    def describe(self) -> str:
        """Say which lines match: ``"lines in category beans"``."""
        parts = []
        if self.categories:
            parts.append(f"categor{'y' if len(self.categories) == 1 else 'ies'} "
                         f"{', '.join(self.categories)}")
        if self.skus:
            parts.append(f"SKU{'' if len(self.skus) == 1 else 's'} {', '.join(self.skus)}")
        return "lines in " + " or ".join(parts) if parts else "every line"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"categories": list(self.categories), "skus": list(self.skus)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LineMatch:
        """Inverse of :meth:`to_dict`."""
        data = _keys(data, frozenset({"categories", "skus"}))
        return cls(categories=_labels(data.get("categories", ()), "categories"),
                   skus=_labels(data.get("skus", ()), "skus"))


# -- conditions ---------------------------------------------------------------------------


class _Facts:
    """What conditions and windows look at, for one evaluation."""

    __slots__ = ("at", "channel", "currency", "earn_multiplier", "enrolled_at", "event_attrs",
                 "first_order", "local", "member_attrs", "net", "order_attrs", "store", "tier",
                 "zone")

    def __init__(self, at: dt.datetime, zone: ZoneInfo, net: Decimal, currency: str,
                 member: MemberContext, order_attrs: Mapping[str, Any] | None,
                 event_attrs: Mapping[str, Any] | None, channel: str | None,
                 store: str | None) -> None:
        self.at = at
        self.zone = zone
        self.local = at.astimezone(zone)
        self.net = net
        self.currency = currency
        self.tier = member.tier
        self.earn_multiplier = member.earn_multiplier
        self.first_order = member.first_order
        self.member_attrs = member.attributes
        self.enrolled_at = member.enrolled_at
        self.order_attrs = order_attrs
        self.event_attrs = event_attrs
        self.channel = channel
        self.store = store


class Condition:
    """A condition a rule needs: composable data (:class:`MinNet`, :class:`FirstOrder`,
    :class:`TierIn`, :class:`ChannelIn`, :class:`StoreIn`, :class:`Attribute`,
    :class:`MinTenure`, :class:`AllOf`, :class:`AnyOf`, :class:`Not`)."""

    __slots__ = ()
    type: ClassVar[str] = ""

    def describe(self) -> str:
        """Say the condition in words."""
        raise NotImplementedError

    def unmet(self, facts: _Facts) -> str | None:
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
        condition = _condition(data, 0)
        if not isinstance(condition, cls):
            _fail("type", f"a {cls.__name__} was expected", data.get("type"))
        return condition


def _condition(data: object, depth: int) -> Condition:
    if depth > _MAX_DEPTH:
        _fail("", f"conditions nest deeper than {_MAX_DEPTH} levels", None)
    if not isinstance(data, Mapping):
        _fail("", "must be a dict with a 'type'", repr(data))
    kind = data.get("type")
    if kind not in _CONDITIONS:
        _fail("type", f"must be one of {sorted(_CONDITIONS)}", repr(kind))
    condition: Condition = _CONDITIONS[kind](data, depth)
    return condition


@attrs.frozen
class MinNet(Condition):
    """The order's net goods amount, as it stands, is at least ``amount`` (in the
    program's currency). Events have no goods: their net is 0."""

    type: ClassVar[str] = "min_net"
    amount: Decimal

    def __attrs_post_init__(self) -> None:
        _set(self, "amount", _dec(self.amount, "amount"))

    def describe(self) -> str:
        """Say the condition in words."""
        return f"net goods >= {_money_text(self.amount)}"

    def unmet(self, facts: _Facts) -> str | None:
        """Return why the condition fails, or None."""
        if facts.net >= self.amount:
            return None
        cur = f" {facts.currency}" if facts.currency else ""
        return f"net goods {_num(facts.net)}{cur} < {_money_text(self.amount)}{cur}"

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

    def unmet(self, facts: _Facts) -> str | None:
        """Return why the condition fails, or None."""
        return None if facts.first_order else "not the member's first order"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type}


class _OneOf(Condition):
    """The source's fact ``_noun`` (an attribute of :class:`_Facts`) is one of the
    labels in field ``_field``."""

    __slots__ = ()
    _field: ClassVar[str] = ""
    _noun: ClassVar[str] = ""

    def _labels(self) -> tuple[str, ...]:
        labels: tuple[str, ...] = getattr(self, self._field)
        return labels

    def __attrs_post_init__(self) -> None:
        _set(self, self._field, _labels(self._labels(), self._field, empty=False))

    def describe(self) -> str:
        """Say the condition in words."""
        return f"{self._noun} is {' or '.join(self._labels())}"

    def unmet(self, facts: _Facts) -> str | None:
        """Return why the condition fails, or None."""
        value: str | None = getattr(facts, self._noun)
        if value in self._labels():
            return None
        return f"{self._noun} {value or '(none)'} is not {' or '.join(self._labels())}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"type": self.type, self._field: list(self._labels())}


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
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            _fail(field, "must be finite", str(value))
        return value
    _fail(field, "must be None, a bool, an int, a Decimal or a str (never a float)",
          repr(value))


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
    if isinstance(actual, float | Decimal) and actual != actual:  # NaN
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
            _fail(field, "a dict value must be {'decimal': '1.5'}", repr(value))
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
        if self.scope not in _SCOPES:
            _fail("scope", f"must be one of {list(_SCOPES)}", self.scope)
        _label(self.name, "name")
        if self.op not in _OPS:
            _fail("op", f"must be one of {list(_OPS)}", self.op)
        if self.op == "exists":
            if self.value is not None:
                _fail("value", "exists takes no value", repr(self.value))
        elif self.op in ("in", "not_in"):
            values = _tuple(self.value, "value")
            _set(self, "value", tuple(_scalar(v, f"value[{i}]") for i, v in enumerate(values)))
        else:
            _scalar(self.value, "value")
            if self.op in ("gt", "gte", "lt", "lte") and (
                    self.value is None or isinstance(self.value, bool)):
                _fail("value", "an ordering test needs a number or a str", self.value)

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

    def unmet(self, facts: _Facts) -> str | None:
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
        _int(self.years, "years", 0, 200)

    def describe(self) -> str:
        """Say the condition in words."""
        return f"member for at least {self.years} year{'s' if self.years != 1 else ''}"

    def unmet(self, facts: _Facts) -> str | None:
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
    items = _tuple(value, field)
    if not items:
        _fail(field, "must hold at least one condition", [])
    for i, item in enumerate(items):
        if not isinstance(item, Condition):
            _fail(f"{field}[{i}]", "must be a Condition", repr(item))
    return items


@attrs.frozen
class AllOf(Condition):
    """Every one of ``conditions`` holds."""

    type: ClassVar[str] = "all_of"
    conditions: tuple[Condition, ...]

    def __attrs_post_init__(self) -> None:
        _set(self, "conditions", _conditions(self.conditions, "conditions"))

    def describe(self) -> str:
        """Say the condition in words."""
        return "(" + " and ".join(c.describe() for c in self.conditions) + ")"

    def unmet(self, facts: _Facts) -> str | None:
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
        _set(self, "conditions", _conditions(self.conditions, "conditions"))

    def describe(self) -> str:
        """Say the condition in words."""
        return "(" + " or ".join(c.describe() for c in self.conditions) + ")"

    def unmet(self, facts: _Facts) -> str | None:
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
            _fail("condition", "must be a Condition", repr(self.condition))

    def describe(self) -> str:
        """Say the condition in words."""
        return f"not {self.condition.describe()}"

    def unmet(self, facts: _Facts) -> str | None:
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
        _fail("conditions", "must be a list of conditions", repr(raw))
    out = []
    for i, item in enumerate(raw):
        with _at(f"conditions[{i}]"):
            out.append(_condition(item, depth + 1))
    return tuple(out)


def _not(data: Mapping[str, Any], depth: int) -> Not:
    with _at("condition"):
        inner = _condition(data["condition"], depth + 1)
    return Not(inner)


def _attribute(data: Mapping[str, Any]) -> Attribute:
    return Attribute(data["scope"], data["name"], data["op"],
                     _value_from_json(data.get("value"), "value"))


_CONDITIONS: dict[str, Any] = {
    "min_net": lambda d, _: MinNet(parse_decimal(
        _keys(d, frozenset({"type", "amount"}), ("amount",))["amount"], "amount",
        InvalidProgram)),
    "first_order": lambda d, _: (_keys(d, frozenset({"type"})), FirstOrder())[1],
    "tier_in": lambda d, _: TierIn(_labels(
        _keys(d, frozenset({"type", "tiers"}), ("tiers",))["tiers"], "tiers")),
    "channel_in": lambda d, _: ChannelIn(_labels(
        _keys(d, frozenset({"type", "channels"}), ("channels",))["channels"], "channels")),
    "store_in": lambda d, _: StoreIn(_labels(
        _keys(d, frozenset({"type", "stores"}), ("stores",))["stores"], "stores")),
    "attribute": lambda d, _: _attribute(
        _keys(d, frozenset({"type", "scope", "name", "op", "value"}), ("scope", "name", "op"))),
    "min_tenure": lambda d, _: MinTenure(
        _keys(d, frozenset({"type", "years"}), ("years",))["years"]),
    "all_of": lambda d, depth: AllOf(_nested(
        _keys(d, frozenset({"type", "conditions"}), ("conditions",)), depth)),
    "any_of": lambda d, depth: AnyOf(_nested(
        _keys(d, frozenset({"type", "conditions"}), ("conditions",)), depth)),
    "not": lambda d, depth: _not(_keys(d, frozenset({"type", "condition"}), ("condition",)),
                                 depth),
}


# -- rules --------------------------------------------------------------------------------


_COUNTS = ("orders", "items", "events")


@attrs.frozen(kw_only=True)
class Rule:
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
            _fail("type", "use a concrete rule class (RateRule, MultiplierRule...)",
                  type(self).__name__)
        _ident(self.id, "id")
        if not isinstance(self.description, str) or len(self.description) > 1000:
            _fail("description", "must be a str of at most 1000 characters",
                  repr(self.description))
        _int(self.priority, "priority", -_MAX_PRIORITY, _MAX_PRIORITY)
        _bool(self.exclusive, "exclusive")
        if self.group is not None:
            _ident(self.group, "group")
        if self.window is not None and not isinstance(self.window, Window):
            _fail("window", "must be a Window", repr(self.window))
        if self.condition is not None and not isinstance(self.condition, Condition):
            _fail("condition", "must be a Condition", repr(self.condition))
        caps = _tuple(self.caps, "caps")
        for i, cap in enumerate(caps):
            if not isinstance(cap, Cap):
                _fail(f"caps[{i}]", "must be a Cap", repr(cap))
        _set(self, "caps", caps)
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
            _fail("", "must be a dict with a 'type'", repr(data))
        kind = data.get("type")
        sub = _RULES.get(kind) if isinstance(kind, str) else None
        if sub is None:
            _fail("type", f"must be one of {sorted(_RULES)}", repr(kind))
        _keys(data, _COMMON_KEYS | sub._fields, ("id",))
        window = data.get("window")
        if window is not None:
            with _at("window"):
                window = Window.from_dict(window)
        condition = data.get("condition")
        if condition is not None:
            with _at("condition"):
                condition = _condition(condition, 0)
        raw_caps = data.get("caps", ())
        if not isinstance(raw_caps, list | tuple):
            _fail("caps", "must be a list of caps", repr(raw_caps))
        caps = []
        for i, raw in enumerate(raw_caps):
            with _at(f"caps[{i}]"):
                caps.append(Cap.from_dict(raw))
        common: dict[str, Any] = {
            "id": data["id"], "description": data.get("description", ""),
            "priority": data.get("priority", 0), "exclusive": data.get("exclusive", False),
            "group": data.get("group"), "window": window, "condition": condition,
            "caps": tuple(caps),
        }
        rule: Rule = sub(**common, **sub._parse(data))
        if not isinstance(rule, cls):
            _fail("type", f"a {cls.__name__} was expected", kind)
        return rule

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _match(value: object) -> LineMatch | None:
    if value is None:
        return None
    if not isinstance(value, LineMatch):
        _fail("match", "must be a LineMatch", repr(value))
    return value


def _parse_match(data: Mapping[str, Any]) -> LineMatch | None:
    raw = data.get("match")
    if raw is None:
        return None
    with _at("match"):
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

    points: Decimal = _ONE
    per: Decimal = _ONE
    base: Base = Base.NET_GOODS
    match: LineMatch | None = None

    def _check(self) -> None:
        _set(self, "points", _dec(self.points, "points"))
        _set(self, "per", _dec(self.per, "per", positive=True))
        _set(self, "base", _enum_value(Base, self.base, "base"))
        _match(self.match)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "net goods" if self.match is None else self.match.describe()
        if self.base is Base.NET_GOODS_AND_SHIPPING:
            what += " and shipping"
        return f"{_points_text(self.points)} per {_money_text(self.per)} of {what}"

    def _specific(self) -> dict[str, Any]:
        return {"points": str(self.points), "per": str(self.per), "base": self.base.value,
                "match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "points": parse_decimal(data.get("points", 1), "points", InvalidProgram),
            "per": parse_decimal(data.get("per", 1), "per", InvalidProgram),
            "base": _enum_value(Base, data.get("base", "net_goods"), "base"),
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
        _set(self, "factor", _dec(self.factor, "factor"))
        _match(self.match)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "every base amount" if self.match is None else self.match.describe()
        return f"x{_num(self.factor)} on {what}"

    def _specific(self) -> dict[str, Any]:
        return {"factor": str(self.factor), "match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "factor" not in data:
            _fail("factor", "is required", None)
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
        _int(self.points, "points", 0, MAX_POINTS)
        _bool(self.per_item, "per_item")
        _match(self.match)

    def summary(self) -> str:
        """What the rule does, in words."""
        what = "" if self.match is None else f" ({self.match.describe()})"
        unit = "item" if self.per_item else "order"
        return f"{_points_text(self.points)} per {unit}{what}"

    def _specific(self) -> dict[str, Any]:
        return {"points": self.points, "per_item": self.per_item,
                "match": _match_dict(self.match)}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "points" not in data:
            _fail("points", "is required", None)
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
        _int(self.every, "every", 1, 1_000_000)
        _int(self.points, "points", 0, MAX_POINTS)
        if self.reward is not None:
            _label(self.reward, "reward")
        if self.points == 0 and self.reward is None:
            _fail("points", "a stamp card needs points, a reward or both", 0)
        if self.counts not in _COUNTS:
            _fail("counts", f"must be one of {list(_COUNTS)}", self.counts)
        _match(self.match)
        if self.counts == "events":
            if self.event is None:
                _fail("event", "counts='events' needs the event type to count", None)
            if not is_event_type(self.event):
                _fail("event", "must be an event type", self.event)
            if self.match is not None:
                _fail("match", "events have no lines to match", self.match.to_dict())
        elif self.event is not None:
            _fail("event", "only counts='events' takes an event type", self.event)

    @property
    def for_orders(self) -> bool:
        """True unless the card counts events."""
        return self.counts != "events"

    def summary(self) -> str:
        """What the rule does, in words."""
        what = {"orders": "order", "items": "item", "events": f"{self.event} event"}
        gives = " and ".join(
            ([_points_text(self.points)] if self.points else [])
            + ([self.reward] if self.reward else []))
        scope = "" if self.match is None else f" ({self.match.describe()})"
        return f"one stamp per {what[self.counts]}{scope}; every {self.every}: {gives}"

    def _specific(self) -> dict[str, Any]:
        return {"every": self.every, "points": self.points, "reward": self.reward,
                "counts": self.counts, "match": _match_dict(self.match), "event": self.event}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        if "every" not in data:
            _fail("every", "is required", None)
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
            _fail("event", "must be an event type (sign_up, birthday, anniversary, review, "
                  "visit or a lower-case custom identifier)", self.event)
        _int(self.points, "points", 0, MAX_POINTS)

    @property
    def for_orders(self) -> bool:
        """Always False: event bonuses apply to events."""
        return False

    def summary(self) -> str:
        """What the rule does, in words."""
        return f"{_points_text(self.points)} per {self.event} event"

    def _specific(self) -> dict[str, Any]:
        return {"event": self.event, "points": self.points}

    @classmethod
    def _parse(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("event", "points"):
            if key not in data:
                _fail(key, "is required", None)
        return {"event": data["event"], "points": data["points"]}


_RULES: dict[str, type[Rule]] = {
    cls.type: cls for cls in (RateRule, MultiplierRule, TierMultiplierRule, FixedRule,
                              StampCardRule, EventBonusRule)
}
_COMMON_KEYS = frozenset({"type", "id", "description", "priority", "exclusive", "group",
                          "window", "condition", "caps"})


@attrs.frozen
class RuleGroup:
    """Rules that share caps: each rule naming the group (``Rule.group``) consumes the
    group's caps as well as its own."""

    name: str
    caps: tuple[Cap, ...] = ()

    def __attrs_post_init__(self) -> None:
        _ident(self.name, "name")
        caps = _tuple(self.caps, "caps")
        for i, cap in enumerate(caps):
            if not isinstance(cap, Cap):
                _fail(f"caps[{i}]", "must be a Cap", repr(cap))
        _set(self, "caps", caps)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict."""
        return {"name": self.name, "caps": [c.to_dict() for c in self.caps]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleGroup:
        """Inverse of :meth:`to_dict`."""
        data = _keys(data, frozenset({"name", "caps"}), ("name",))
        raw = data.get("caps", ())
        if not isinstance(raw, list | tuple):
            _fail("caps", "must be a list of caps", repr(raw))
        caps = []
        for i, item in enumerate(raw):
            with _at(f"caps[{i}]"):
                caps.append(Cap.from_dict(item))
        return cls(data["name"], tuple(caps))


# -- the compiled policy ------------------------------------------------------------------


_RATE, _MULTIPLIER, _FIXED, _STAMP, _EVENT = 1, 2, 3, 4, 5
_CODES = {"rate": _RATE, "multiplier": _MULTIPLIER, "tier_multiplier": _MULTIPLIER,
          "fixed": _FIXED, "stamp_card": _STAMP,
          "event_bonus": _EVENT}


class _Compiled:
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
            with decimal.localcontext(_CTX):
                ratio = rule.points / rule.per
                # one multiplication when points/per is exact, else multiply then divide
                self.ratio = ratio if ratio * rule.per == rule.points else None
            self.prefix = f"{_points_text(rule.points)} per {_money_text(rule.per)}"
            self.what = "net goods" if self.match_all else "matching lines"
            if self.ship:
                self.what += " and shipping"
        elif isinstance(rule, MultiplierRule):
            self.prefix = f"x{_num(rule.factor)} on "
        elif isinstance(rule, FixedRule):
            self.prefix = (f"{_points_text(rule.points)} x " if rule.per_item
                           else f"{_points_text(rule.points)} per order")
        elif isinstance(rule, EventBonusRule):
            self.prefix = f"{_points_text(rule.points)} for a {rule.event} event"


class _Plan:
    __slots__ = ("event_rules", "first_order", "order_rules", "tracked")

    def __init__(self, policy: EarningPolicy) -> None:
        groups = {g.name: g for g in policy.groups}
        capped = {g.name for g in policy.groups if g.caps}
        tracked = frozenset(r.id for r in policy.rules
                            if r.caps or (r.group is not None and r.group in capped)
                            or isinstance(r, StampCardRule))
        self.first_order = any(isinstance(part, FirstOrder)
                               for rule in policy.rules if rule.condition is not None
                               for part in rule.condition.parts())
        compiled = [_Compiled(r, groups, r.id in tracked) for r in policy.rules]
        order = sorted(range(len(compiled)),
                       key=lambda i: (compiled[i].phase, -compiled[i].rule.priority, i))
        self.order_rules = tuple(compiled[i] for i in order if compiled[i].rule.for_orders)
        events: dict[str, list[_Compiled]] = {}
        for i in order:
            rule = compiled[i].rule
            if not rule.for_orders:
                name = rule.event if isinstance(rule, EventBonusRule | StampCardRule) else None
                assert name is not None
                events.setdefault(name, []).append(compiled[i])
        self.event_rules = {k: tuple(v) for k, v in events.items()}
        self.tracked = tracked


@attrs.frozen
class EarningPolicy:
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
    _plan: _Plan = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        rules = _tuple(self.rules, "earning.rules")
        if len(rules) > _MAX_RULES:
            _fail("earning.rules", f"at most {_MAX_RULES} rules", len(rules))
        groups = _tuple(self.groups, "earning.groups")
        names: set[str] = set()
        for i, group in enumerate(groups):
            if not isinstance(group, RuleGroup):
                _fail(f"earning.groups[{i}]", "must be a RuleGroup", repr(group))
            if group.name in names:
                _fail(f"earning.groups[{i}].name", "group names must be unique", group.name)
            names.add(group.name)
        ids: set[str] = set()
        for i, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                _fail(f"earning.rules[{i}]", "must be a rule (RateRule, MultiplierRule...)",
                      repr(rule))
            if rule.id in ids:
                _fail(f"earning.rules[{i}].id", "rule ids must be unique", rule.id)
            ids.add(rule.id)
            if rule.group is not None and rule.group not in names:
                _fail(f"earning.rules[{i}].group", f"no such group (groups: {sorted(names)})",
                      rule.group)
        _set(self, "rules", rules)
        _set(self, "groups", groups)
        _set(self, "rounding", _enum_value(Rounding, self.rounding, "earning.rounding"))
        _set(self, "stacking", _enum_value(Stacking, self.stacking, "earning.stacking"))
        if self.max_points_per_order is not None:
            _int(self.max_points_per_order, "earning.max_points_per_order", 0, MAX_POINTS)
        _set(self, "_plan", _Plan(self))

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
        _fail("earning.rules", "no such rule", rule_id)

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
        with _at("earning"):
            data = _keys(data, frozenset({"rules", "groups", "rounding", "stacking",
                                          "max_points_per_order"}))
            raw_rules = data.get("rules", ())
            if not isinstance(raw_rules, list | tuple):
                _fail("rules", "must be a list of rules", repr(raw_rules))
            if len(raw_rules) > _MAX_RULES:
                _fail("rules", f"at most {_MAX_RULES} rules", len(raw_rules))
            rules = []
            for i, raw in enumerate(raw_rules):
                with _at(f"rules[{i}]"):
                    rules.append(Rule.from_dict(raw))
            raw_groups = data.get("groups", ())
            if not isinstance(raw_groups, list | tuple):
                _fail("groups", "must be a list of groups", repr(raw_groups))
            groups = []
            for i, raw in enumerate(raw_groups):
                with _at(f"groups[{i}]"):
                    groups.append(RuleGroup.from_dict(raw))
            rounding = _enum_value(Rounding, data.get("rounding", "floor"), "rounding")
            stacking = _enum_value(Stacking, data.get("stacking", "multiply"), "stacking")
        return cls(rules=tuple(rules), groups=tuple(groups), rounding=rounding,
                   stacking=stacking, max_points_per_order=data.get("max_points_per_order"))


# -- evaluation results -------------------------------------------------------------------


@attrs.frozen
class MemberContext:
    """What the rules may know about the member: enrolment instant (for tenure),
    attributes (for :class:`Attribute` conditions), tier, whether the order being
    evaluated is the member's first, and the tier's earn multiplier (read by
    :class:`TierMultiplierRule`; None: no tier ladder, which counts as 1)."""

    member_id: str
    enrolled_at: dt.datetime
    attributes: Mapping[str, Any] = attrs.field(factory=dict, hash=False)
    tier: str | None = None
    first_order: bool = False
    earn_multiplier: Decimal | None = None

    def __attrs_post_init__(self) -> None:
        check_aware(self.enrolled_at, name="enrolled_at")
        if self.earn_multiplier is not None:
            _set(self, "earn_multiplier", _dec(self.earn_multiplier, "earn_multiplier"))

    def snapshot(self) -> dict[str, Any]:
        """Return a JSON-compatible copy (kept in :attr:`Evaluation.context`)."""
        data = {"member_id": self.member_id, "enrolled_at": self.enrolled_at.isoformat(),
                "tier": self.tier, "first_order": self.first_order,
                "attributes": dict(self.attributes)}
        if self.earn_multiplier is not None:
            data["earn_multiplier"] = str(self.earn_multiplier)
        return data


@attrs.frozen(slots=False)  # a dict instance is quicker to build: hot path
class RuleOutcome:
    """What one rule did for one order or event.

    ``points`` is the exact contribution after caps (0 if not applied), ``uncapped``
    before caps; ``explanation`` says why, in words. ``stamps`` and ``rewards`` are
    for stamp cards; ``tracked`` says whether the contribution is kept as a usage row
    (caps and stamp cards count those).
    """

    rule_id: str
    kind: str
    description: str
    applied: bool
    points: Decimal
    uncapped: Decimal
    explanation: str
    group: str | None = None
    stamps: int = 0
    rewards: tuple[str, ...] = ()
    tracked: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (amounts as decimal strings). Fields at their
        default (``uncapped`` equal to ``points``, no group, stamps, rewards, not
        tracked) are left out: every order stores its breakdown, so it is kept small."""
        data: dict[str, Any] = {
            "rule_id": self.rule_id, "kind": self.kind, "description": self.description,
            "applied": self.applied, "points": str(self.points),
            "explanation": self.explanation,
        }
        if self.uncapped != self.points:
            data["uncapped"] = str(self.uncapped)
        if self.group is not None:
            data["group"] = self.group
        if self.stamps:
            data["stamps"] = self.stamps
        if self.rewards:
            data["rewards"] = list(self.rewards)
        if self.tracked:
            data["tracked"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuleOutcome:
        """Inverse of :meth:`to_dict`; a malformed dict raises InvalidInput."""
        outcome: RuleOutcome = _load(_outcome_from_dict, data, "outcome")
        return outcome


def _outcome_from_dict(data: Mapping[str, Any]) -> RuleOutcome:
    stamps = data.get("stamps", 0)
    rewards = data.get("rewards", ())
    tracked = data.get("tracked", False)
    if (isinstance(stamps, bool) or not isinstance(stamps, int)
            or not isinstance(rewards, list | tuple) or not isinstance(tracked, bool)):
        raise TypeError("stamps, rewards or tracked")
    fields = (data["rule_id"], data["kind"], data["description"], data["explanation"])
    if not all(isinstance(f, str) for f in fields) or not isinstance(data["applied"], bool):
        raise TypeError("rule_id, kind, description, explanation or applied")
    group = data.get("group")
    if group is not None and not isinstance(group, str):
        raise TypeError("group")
    return RuleOutcome(
        rule_id=data["rule_id"], kind=data["kind"], description=data["description"],
        applied=data["applied"], points=(points := parse_decimal(data["points"], "points")),
        uncapped=parse_decimal(data["uncapped"], "uncapped") if "uncapped" in data else points,
        explanation=data["explanation"], group=group, stamps=stamps,
        rewards=tuple(str(r) for r in rewards), tracked=tracked,
    )


def _load(build: Any, data: object, what: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what} must be a dict", field=what, value=repr(data))
    try:
        return build(data)
    except KeyError as exc:
        raise InvalidInput(f"malformed {what}: {exc.args[0]} is required",
                           field=f"{what}.{exc.args[0]}", value=None) from None
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, LoyaltyError):
            details = dict(exc.details)
            field = details.pop("field", what)
            raise InvalidInput(f"malformed {what}: {exc.message}", field=field,
                               value=details.get("value")) from None
        raise InvalidInput(f"malformed {what}: {exc}", field=what, value=None) from None


@attrs.frozen(slots=False)
class Evaluation:
    """What an order or event is worth, rule by rule.

    ``points`` is the rounded total (limited by ``max_points_per_order``);
    ``unrounded`` the exact sum of the outcomes; ``net`` the net goods as they stand
    (0 for events); ``currency`` the order's ("" for events); ``outcomes`` every rule
    relevant to the source in evaluation order, applied or not, with the reason;
    ``rewards`` the stamp-card rewards earned; ``version`` the program version;
    ``context`` a JSON snapshot (member context, stamp counts before) that a later
    re-evaluation (a return) reuses.
    """

    points: int
    unrounded: Decimal
    net: Decimal
    currency: str
    outcomes: tuple[RuleOutcome, ...]
    rewards: tuple[str, ...]
    version: int
    context: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    def outcome(self, rule_id: str) -> RuleOutcome | None:
        """Return the outcome of the rule ``rule_id`` (None if it was not relevant)."""
        for outcome in self.outcomes:
            if outcome.rule_id == rule_id:
                return outcome
        return None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-compatible dict (amounts as decimal strings)."""
        return {
            "points": self.points, "unrounded": str(self.unrounded), "net": str(self.net),
            "currency": self.currency, "outcomes": [o.to_dict() for o in self.outcomes],
            "rewards": list(self.rewards), "version": self.version,
            "context": dict(self.context),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`; a malformed dict raises InvalidInput."""
        evaluation: Evaluation = _load(_evaluation_from_dict, data, "evaluation")
        return evaluation


def _evaluation_from_dict(data: Mapping[str, Any]) -> Evaluation:
    points, version = data["points"], data["version"]
    outcomes, rewards = data["outcomes"], data.get("rewards", ())
    context = data.get("context", {})
    if (isinstance(points, bool) or not isinstance(points, int)
            or isinstance(version, bool) or not isinstance(version, int)
            or not isinstance(outcomes, list | tuple) or not isinstance(rewards, list | tuple)
            or not isinstance(context, Mapping) or not isinstance(data["currency"], str)):
        raise TypeError("points, version, outcomes, rewards, currency or context")
    return Evaluation(
        points=points, unrounded=parse_decimal(data["unrounded"], "unrounded"),
        net=parse_decimal(data["net"], "net"), currency=data["currency"],
        outcomes=tuple(_load(_outcome_from_dict, o, "outcome") for o in outcomes),
        rewards=tuple(str(r) for r in rewards), version=version, context=dict(context),
    )


# -- usage --------------------------------------------------------------------------------


@attrs.frozen
class UsageQuery:
    """Usage rows an evaluation needs: rows of ``rule_ids`` or of ``groups`` with
    ``since <= occurred_at < until`` (None: open)."""

    rule_ids: tuple[str, ...]
    groups: tuple[str, ...]
    since: dt.datetime | None
    until: dt.datetime | None


_UTC = dt.UTC


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    # fold=0: a midnight lost to a DST gap maps to the first instant of the day
    return dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(_UTC)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@functools.lru_cache(maxsize=4096)
def _period(period: CapPeriod, day: dt.date, zone: ZoneInfo
            ) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the calendar ``period`` containing the local date ``day``."""
    if period is CapPeriod.DAY:
        start = day
        end = day + dt.timedelta(days=1)
    elif period is CapPeriod.WEEK:
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif period is CapPeriod.MONTH:
        start = day.replace(day=1)
        end = _add_months(start, 1)
    elif period is CapPeriod.QUARTER:
        start = dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
        end = _add_months(start, 3)
    else:
        start = dt.date(day.year, 1, 1)
        end = dt.date(day.year + 1, 1, 1)
    return _midnight(start, zone), _midnight(end, zone)


def _range(cap: Cap, at: dt.datetime, local: dt.datetime, zone: ZoneInfo
           ) -> tuple[dt.datetime | None, dt.datetime | None]:
    if cap.period is CapPeriod.LIFETIME:
        return None, None
    if cap.period is CapPeriod.ROLLING:
        span = dt.timedelta(days=cap.days or 0)
        return at - span, at + span
    return _period(cap.period, local.date(), zone)


def stamp_card_ids(policy: EarningPolicy, *, event_type: str | None = None
                   ) -> tuple[str, ...]:
    """Ids of the stamp cards an order (or, with ``event_type``, such an event) can
    stamp: pass their lifetime stamp counts as ``stamps`` to the evaluators instead of
    loading every usage row of theirs."""
    plan = policy._plan
    rules = plan.order_rules if event_type is None else plan.event_rules.get(event_type, ())
    return tuple(c.id for c in rules if c.kind == StampCardRule.type)


def usage_queries(policy: EarningPolicy, time_zone: str, at: dt.datetime, *,
                  event_type: str | None = None, stamp_counts: bool = False
                  ) -> list[UsageQuery]:
    """Say which usage rows :func:`evaluate_order` (or, with ``event_type``,
    :func:`evaluate_event`) needs for a source at ``at``: rows of capped rules and
    groups in the periods containing ``at`` (rolling caps: ``[at − N days, at + N
    days)``), lifetime caps and stamp cards over all time. Empty when nothing the
    source can touch is tracked. Several queries may return the same row; the
    evaluator counts it once. With ``stamp_counts`` the caller passes stamp cards'
    lifetime counts to the evaluator (``stamps=``), so their rows are not asked for."""
    plan = policy._plan
    rules = plan.order_rules if event_type is None else plan.event_rules.get(event_type, ())
    if not rules or not plan.tracked:
        return []
    at = to_utc(check_aware(at, name="at"))
    zone = _get_zone(time_zone)
    local = at.astimezone(zone)
    wanted: dict[tuple[dt.datetime | None, dt.datetime | None],
                 tuple[dict[str, None], dict[str, None]]] = {}
    for c in rules:
        if not c.tracked:
            continue
        if c.kind == StampCardRule.type and not stamp_counts:
            wanted.setdefault((None, None), ({}, {}))[0][c.id] = None
        for cap in c.caps:
            if cap.period is not CapPeriod.ORDER:
                wanted.setdefault(_range(cap, at, local, zone), ({}, {}))[0][c.id] = None
        if c.group is not None:
            for cap in c.group_caps:
                if cap.period is not CapPeriod.ORDER:
                    wanted.setdefault(_range(cap, at, local, zone), ({}, {}))[1][c.group] = None
    return [UsageQuery(tuple(ids), tuple(groups), since, until)
            for (since, until), (ids, groups) in wanted.items()]


def usage_rows(evaluation: Evaluation, *, program_id: str, member_id: str, source: str,
               occurred_at: dt.datetime, previous: Evaluation | None = None
               ) -> list[RuleUsage]:
    """Return the usage rows to upsert for ``evaluation`` of ``source``
    (``"order:<id>"`` / ``"event:<id>"``): one per tracked rule that gave points or
    stamps, plus, for a re-evaluation, one per tracked rule that had a row from
    ``previous`` (so its row is overwritten, possibly with 0)."""
    occurred_at = to_utc(check_aware(occurred_at, name="occurred_at"))
    before = set()
    if previous is not None:
        before = {o.rule_id for o in previous.outcomes
                  if o.tracked and (o.points != _ZERO or o.stamps)}
    return [
        RuleUsage(program_id, member_id, source, o.rule_id, o.group, occurred_at,
                  o.points, o.stamps)
        for o in evaluation.outcomes
        if o.tracked and (o.points != _ZERO or o.stamps or o.rule_id in before)
    ]


# -- evaluation ---------------------------------------------------------------------------


class _Run:
    """The state of one evaluation: usage, caps' remaining room, previous outcomes."""

    __slots__ = ("at", "by_group", "by_rule", "group_left", "local", "previous", "source",
                 "usage", "zone")

    def __init__(self, at: dt.datetime, zone: ZoneInfo, local: dt.datetime,
                 usage: Sequence[RuleUsage], source: str,
                 previous: Mapping[str, RuleOutcome] | None) -> None:
        self.at = at
        self.zone = zone
        self.local = local
        self.previous = previous
        self.group_left: dict[tuple[str, int], Decimal] = {}
        self.usage = usage if previous is None else ()
        self.source = source
        self.by_rule: dict[str, list[RuleUsage]] | None = None
        self.by_group: dict[str, list[RuleUsage]] = {}

    def rows(self, rule_id: str | None = None, group: str | None = None
             ) -> list[RuleUsage] | None:
        """The usage rows of a rule or of a group (indexed on first use)."""
        if self.by_rule is None:
            self.by_rule = {}
            unique: dict[tuple[str, str], RuleUsage] = {}
            for row in self.usage:
                if row.source != self.source:
                    unique[(row.source, row.rule_id)] = row
            for row in unique.values():
                self.by_rule.setdefault(row.rule_id, []).append(row)
                if row.group is not None:
                    self.by_group.setdefault(row.group, []).append(row)
        if rule_id is not None:
            return self.by_rule.get(rule_id)
        return self.by_group.get(group) if group is not None else None

    def used(self, rows: list[RuleUsage] | None, cap: Cap) -> Decimal:
        """What ``rows`` used of ``cap`` in the period(s) containing the instant."""
        if not rows:
            return _ZERO
        period = cap.period
        if period is CapPeriod.LIFETIME:
            return sum((r.points for r in rows if r.points > _ZERO), _ZERO)
        at = self.at
        if period is CapPeriod.ROLLING:
            span = dt.timedelta(days=cap.days or 0)
            near = [(r.occurred_at, r.points) for r in rows
                    if r.points > _ZERO and at - span < r.occurred_at < at + span]
            worst = _ZERO
            for end in [at, *(u for u, _ in near if u > at)]:
                start = end - span
                total = sum((p for u, p in near if start < u <= end), _ZERO)
                worst = max(worst, total)
            return worst
        start, stop = _period(period, self.local.date(), self.zone)
        return sum((r.points for r in rows
                    if r.points > _ZERO and start <= r.occurred_at < stop), _ZERO)

    def limit(self, c: _Compiled, uncapped: Decimal) -> tuple[Decimal, str]:
        """Apply the rule's caps (and, re-evaluating, its previous points)."""
        if uncapped <= _ZERO:
            return uncapped, ""
        points = uncapped
        note = ""
        previous = self.previous
        if previous is not None:
            before = previous.get(c.id)
            given = before.points if before is not None else _ZERO
            if given < points:
                points = max(given, _ZERO)
                note = f"; limited to the {_num(points)} it gave before the return"
        for cap in c.caps:
            if cap.period is CapPeriod.ORDER:
                left = Decimal(cap.points)
            elif previous is not None:
                continue
            else:
                left = cap.points - self.used(self.rows(c.id), cap)
            if left < points:
                points = max(left, _ZERO)
                note = f"; capped at {cap.describe()}: {_num(points)} of {_num(uncapped)}"
        if c.group_caps:
            group = c.group
            assert group is not None
            keys = []
            for j, cap in enumerate(c.group_caps):
                key = (group, j)
                left_ = self.group_left.get(key)
                if left_ is None:
                    if cap.period is CapPeriod.ORDER:
                        left_ = Decimal(cap.points)
                    elif previous is not None:
                        continue
                    else:
                        left_ = cap.points - self.used(self.rows(group=group), cap)
                keys.append((key, left_))
                if left_ < points:
                    points = max(left_, _ZERO)
                    note = (f"; group {group} capped at {cap.describe()}: {_num(points)} "
                            f"of {_num(uncapped)}")
            for key, left_ in keys:
                self.group_left[key] = left_ - points
        return points, note


_NOTHING = "nothing left of the order"
_NO_LINE = "not applied: no matching line"


def _outcome(c: _Compiled, explanation: str) -> RuleOutcome:
    return RuleOutcome(c.id, c.kind, c.text, False, _ZERO, _ZERO, explanation, c.group, 0,
                       (), c.tracked)


def _stamp_rewards(rule: StampCardRule, before: int, stamps: int) -> int:
    return (before + stamps) // rule.every - before // rule.every


def _signed(value: Decimal) -> str:
    return f"+{value!s}" if value >= _ZERO else str(value)


def _evaluate(
    policy: EarningPolicy,
    rules: tuple[_Compiled, ...],
    facts: _Facts,
    run: _Run,
    *,
    lines: tuple[OrderLine, ...] | None,
    shipping: Decimal,
    stamps_before: dict[str, int],
    previous: Evaluation | None,
    version: int,
    context: Mapping[str, Any],
) -> Evaluation:
    outcomes: list[RuleOutcome] = []
    append = outcomes.append
    rewards: list[str] = []
    total = _ZERO
    is_order = lines is not None
    lines = lines or ()
    n = len(lines)
    empty = is_order and n == 0
    every = list(range(n))
    nets = [line.net for line in lines]
    keys = [(line.sku, line.category) for line in lines]
    base: list[Decimal] = [_ZERO] * (n + 1)  # index n: the shipping pseudo-line
    current = base
    multiply = policy.stacking is Stacking.MULTIPLY
    old = {o.rule_id: o for o in previous.outcomes} if previous is not None else None
    capped = run.previous is not None
    phase = 0
    exclusive: str | None = None
    local = facts.local
    currency = facts.currency
    for c in rules:
        if c.phase != phase:
            if c.phase == 2:
                current = list(base)
            phase = c.phase
            exclusive = None
        if empty:
            append(_outcome(c, _NOTHING))
            continue
        if exclusive is not None:
            append(_outcome(c, f"skipped: exclusive rule {exclusive} applied"))
            continue
        if c.window is not None:
            reason = c.window.unmet(local)
            if reason is not None:
                append(_outcome(c, f"not applied: {reason}"))
                continue
        if c.cond is not None:
            reason = c.cond.unmet(facts)
            if reason is not None:
                append(_outcome(c, f"not applied: {reason}"))
                continue
        code = c.code
        if code == _EVENT:
            uncapped = Decimal(c.rule.points)  # type: ignore[attr-defined]
            points, note = (run.limit(c, uncapped) if c.limited or capped
                            else (uncapped, ""))
            total += points
            append(RuleOutcome(c.id, c.kind, c.text, True, points, uncapped, c.prefix + note,
                               c.group, 0, (), c.tracked))
            if c.excl:
                exclusive = c.id
            continue
        if c.match_all:
            picked = every
        else:
            skus, cats = c.skus, c.cats
            picked = [i for i in every if keys[i][0] in skus or keys[i][1] in cats]
        stamps = 0
        won: tuple[str, ...] = ()
        if code == _RATE:
            if not picked and not c.ship:
                append(_outcome(c, _NO_LINE))
                continue
            rule = c.rule
            assert isinstance(rule, RateRule)
            ratio = c.ratio
            counted = uncapped = _ZERO
            amounts = []
            for i in picked:
                a = nets[i]
                counted += a
                a = a * ratio if ratio is not None else a * rule.points / rule.per
                amounts.append(a)
                uncapped += a
            if c.ship:
                picked = [*picked, n]
                counted += shipping
                a = (shipping * ratio if ratio is not None
                     else shipping * rule.points / rule.per)
                amounts.append(a)
                uncapped += a
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            if points == uncapped:
                for i, a in zip(picked, amounts, strict=True):
                    base[i] += a
            elif uncapped:
                for i, a in zip(picked, amounts, strict=True):
                    base[i] += a * points / uncapped
            explanation = (f"{c.prefix} {currency} on {counted!s} {currency} {c.what} = "
                           f"{uncapped!s}{note}")
        elif code == _MULTIPLIER:
            if c.match_all:
                picked = [*every, n]
            elif not picked:
                append(_outcome(c, _NO_LINE))
                continue
            source = current if multiply else base
            if c.kind == "tier_multiplier":
                factor = facts.earn_multiplier if facts.earn_multiplier is not None else _ONE
                prefix = f"x{_num(factor)} (tier {facts.tier}) on "
            else:
                factor = c.rule.factor  # type: ignore[attr-defined]
                prefix = c.prefix
            less = factor - _ONE
            counted = uncapped = _ZERO
            amounts = []
            for i in picked:
                a = source[i]
                counted += a
                a = a * less
                amounts.append(a)
                uncapped += a
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            if multiply:
                if points == uncapped:
                    for i, a in zip(picked, amounts, strict=True):
                        current[i] += a
                elif uncapped:
                    for i, a in zip(picked, amounts, strict=True):
                        current[i] += a * points / uncapped
            explanation = f"{prefix}{counted!s} points{c.what} = {_signed(uncapped)}{note}"
        elif code == _FIXED:
            if not picked:
                append(_outcome(c, _NO_LINE))
                continue
            rule_ = c.rule
            assert isinstance(rule_, FixedRule)
            if rule_.per_item:
                items = sum(lines[i].quantity for i in picked)
                uncapped = Decimal(rule_.points * items)
                explanation = f"{c.prefix}{items} items = {uncapped!s}"
            else:
                uncapped = Decimal(rule_.points)
                explanation = c.prefix
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            explanation += note
        else:
            card = c.rule
            assert isinstance(card, StampCardRule)
            if is_order:
                if not picked:
                    append(_outcome(c, _NO_LINE))
                    continue
                stamps = (sum(lines[i].quantity for i in picked) if card.counts == "items"
                          else 1)
            else:
                stamps = 1
            before = stamps_before.get(c.id)
            if before is None:
                before = stamps_before[c.id] = (
                    0 if capped else sum(r.stamps for r in run.rows(c.id) or ()))
            count = _stamp_rewards(card, before, stamps)
            if old is not None:
                was = old.get(c.id)
                stamps = min(stamps, was.stamps if was is not None else 0)
                count = _stamp_rewards(card, before, stamps)
                if was is not None and card.reward is not None:
                    count = min(count, len(was.rewards))
            uncapped = Decimal(count * card.points)
            points, note = run.limit(c, uncapped) if c.limited or capped else (uncapped, "")
            won = (card.reward,) * count if card.reward is not None else ()
            rewards.extend(won)
            explanation = (f"{stamps} stamp{'s' if stamps != 1 else ''} "
                           f"({before} -> {before + stamps}, a card of {card.every}): "
                           f"{count} reward{'s' if count != 1 else ''}"
                           + (f" = {_points_text(uncapped)}" if card.points else "") + note)
        total += points
        append(RuleOutcome(c.id, c.kind, c.text, True, points, uncapped, explanation, c.group,
                           stamps, won, c.tracked))
        if c.excl:
            exclusive = c.id
    # the exact sum: outcomes carry up to 34 digits each, and their running sum in the
    # 34-digit context could round (a sum just below a whole point must not floor up)
    with decimal.localcontext(_EXACT):
        total = sum((o.points for o in outcomes), _ZERO)
    result = int(total.to_integral_value(rounding=_DECIMAL_ROUNDING[policy.rounding]))
    if result < 0:
        result = 0
    limit = policy.max_points_per_order
    if limit is not None and result > limit:
        result = limit
    if previous is not None and result > previous.points:
        result = previous.points
    return Evaluation(result, total, facts.net if is_order else _ZERO, currency,
                      tuple(outcomes), tuple(rewards), version, context)


def _check_policy(policy: object) -> EarningPolicy:
    if not isinstance(policy, EarningPolicy):
        raise InvalidProgram("policy must be an EarningPolicy", field="earning",
                             value=repr(policy))
    return policy


def _member_from(context: Mapping[str, Any]) -> tuple[MemberContext, dict[str, int]]:
    try:
        raw = context["member"]
        member = MemberContext(
            member_id=raw["member_id"],
            enrolled_at=dt.datetime.fromisoformat(raw["enrolled_at"]),
            attributes=dict(raw.get("attributes") or {}), tier=raw.get("tier"),
            first_order=bool(raw.get("first_order", False)),
            earn_multiplier=(Decimal(raw["earn_multiplier"])
                             if raw.get("earn_multiplier") is not None else None),
        )
        stamps = {str(k): int(v) for k, v in dict(context.get("stamps_before", {})).items()}
    except (KeyError, TypeError, ValueError, AttributeError, LoyaltyError) as exc:
        raise InvalidInput(f"previous evaluation has no usable context: {exc!r}",
                           field="previous.context", value=None) from None
    return member, stamps


def _stamp_counts(stamps: Mapping[str, int] | None) -> dict[str, int]:
    if stamps is None:
        return {}
    counts = {}
    for rule_id, count in stamps.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InvalidInput("stamp counts are non-negative ints", field="stamps",
                               value={rule_id: repr(count)})
        counts[rule_id] = count
    return counts


def evaluate_order(
    policy: EarningPolicy,
    time_zone: str,
    order: Order,
    member: MemberContext,
    *,
    usage: Sequence[RuleUsage] = (),
    version: int = 1,
    previous: Evaluation | None = None,
    stamps: Mapping[str, int] | None = None,
) -> Evaluation:
    """Price ``order`` for ``member`` under ``policy`` in the program's ``time_zone``.

    ``usage`` holds the member's usage rows that :func:`usage_queries` asked for;
    ``version`` is recorded in the result. With ``previous`` (the evaluation of the
    order as placed) this is a re-evaluation after a return: ``order`` is the order
    as it stands, ``previous.context`` replaces ``member`` and ``usage``, and no rule
    gives more than it gave before. ``stamps`` may give stamp cards' lifetime stamp
    counts (see :func:`stamp_card_ids`) instead of their usage rows. Pure: no clock,
    no I/O.
    """
    plan = _check_policy(policy)._plan
    if not isinstance(order, Order):
        raise InvalidInput("order must be an Order", field="order", value=repr(order))
    zone = _get_zone(time_zone)
    with decimal.localcontext(_CTX):
        if previous is not None:
            member, before = _member_from(previous.context)
            context: Mapping[str, Any] = previous.context
            old: dict[str, RuleOutcome] | None = {o.rule_id: o for o in previous.outcomes}
        else:
            before = _stamp_counts(stamps)
            context = {"member": member.snapshot(), "stamps_before": before}
            old = None
        facts = _Facts(order.placed_at, zone, order.net_goods, order.currency, member,
                       order.attributes, None, order.channel, order.store)
        run = _Run(order.placed_at, zone, facts.local, usage, f"order:{order.id}", old)
        shipping = order.shipping.amount if order.shipping is not None else _ZERO
        return _evaluate(policy, plan.order_rules, facts, run, lines=order.lines,
                         shipping=shipping, stamps_before=before, previous=previous,
                         version=version, context=context)


def evaluate_event(
    policy: EarningPolicy,
    time_zone: str,
    event: Event,
    member: MemberContext,
    *,
    usage: Sequence[RuleUsage] = (),
    version: int = 1,
    stamps: Mapping[str, int] | None = None,
) -> Evaluation:
    """Price ``event`` for ``member``: the event-bonus and event stamp-card rules of the
    event's type, with caps counted from ``usage`` (and stamp cards from ``stamps``
    when given, as for :func:`evaluate_order`). Pure: no clock, no I/O."""
    plan = _check_policy(policy)._plan
    if not isinstance(event, Event):
        raise InvalidInput("event must be an Event", field="event", value=repr(event))
    zone = _get_zone(time_zone)
    with decimal.localcontext(_CTX):
        before = _stamp_counts(stamps)
        context = {"member": member.snapshot(), "stamps_before": before}
        facts = _Facts(event.occurred_at, zone, _ZERO, "", member, None, event.attributes,
                       None, None)
        run = _Run(event.occurred_at, zone, facts.local, usage, f"event:{event.id}", None)
        return _evaluate(policy, plan.event_rules.get(event.type, ()), facts, run, lines=None,
                         shipping=_ZERO, stamps_before=before, previous=None,
                         version=version, context=context)
