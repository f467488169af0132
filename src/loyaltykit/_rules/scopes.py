"""Where and when a rule applies: caps, time windows and line matches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import attrs

from loyaltykit._errors import shown
from loyaltykit._json import JsonForm
from loyaltykit._orders import OrderLine
from loyaltykit._rules.enums import CapPeriod
from loyaltykit._rules.fields import (
    MIDNIGHT,
    check_labels,
    parse_date,
    parse_time,
    set_field,
    time_text,
)
from loyaltykit._validate import (
    check_enum,
    check_int,
    check_keys,
    check_tuple,
    invalid,
)
from loyaltykit._values import MAX_POINTS

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES = {name: i + 1 for i, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
_DAY_NAMES.update({name[:3]: n for name, n in list(_DAY_NAMES.items())})


@attrs.frozen
class Cap(JsonForm):
    """At most ``points`` per member per ``period`` (``days`` long when ROLLING)."""

    points: int
    period: CapPeriod
    days: int | None = None

    def __attrs_post_init__(self) -> None:
        check_int(self.points, "points", 0, MAX_POINTS)
        set_field(self, "period", check_enum(CapPeriod, self.period, "period"))
        if self.period is CapPeriod.ROLLING:
            if self.days is None:
                raise invalid("days", "is required for a rolling cap", None)
            check_int(self.days, "days", 1, 3660)
        elif self.days is not None:
            raise invalid("days", "only a rolling cap takes days", self.days)

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
        data = check_keys(data, frozenset({"points", "period", "days"}), ("points", "period"))
        return cls(data["points"], check_enum(CapPeriod, data["period"], "period"),
                   data.get("days"))


@attrs.frozen
class Window(JsonForm):
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
            set_field(self, "start", parse_date(self.start, "start"))
        if self.end is not None:
            set_field(self, "end", parse_date(self.end, "end"))
        if self.start is not None and self.end is not None and self.start > self.end:
            raise invalid("end", "must not be before start", self.end.isoformat())
        days = check_tuple(self.weekdays, "weekdays")
        for i, day in enumerate(days):
            check_int(day, f"weekdays[{i}]", 1, 7)
        if len(set(days)) != len(days):
            raise invalid("weekdays", "must not repeat a day", list(days))
        set_field(self, "weekdays", days)
        ranges = []
        for i, pair in enumerate(check_tuple(self.hours, "hours")):
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise invalid(f"hours[{i}]", "must be a (start, end) pair of times", shown(pair))
            begin = parse_time(pair[0], f"hours[{i}][0]")
            end = parse_time(pair[1], f"hours[{i}][1]")
            if not (begin < end or (end == MIDNIGHT and begin != MIDNIGHT)):
                raise invalid(f"hours[{i}]", "start must be before end (an end of 00:00 means "
                              "midnight at the end of the day)", [time_text(begin), time_text(end)])
            ranges.append((begin, end))
        set_field(self, "hours", tuple(ranges))

    def unmet(self, local: dt.datetime) -> str | None:
        """Return why the local wall-clock time ``local`` is outside the window, or
        None when it is inside."""
        miss = window_miss(self, local)
        if miss is None:
            return None
        if isinstance(miss, dt.date):
            return f"{miss.isoformat()} is outside {self._dates()}"
        if isinstance(miss, int):
            return (f"{_DAYS[miss - 1]} is not one of "
                    f"{', '.join(_DAYS[d - 1] for d in self.weekdays)}")
        return f"{dt.time(*miss).isoformat(timespec='minutes')} is outside {self._hours()}"

    def _dates(self) -> str:
        if self.start is not None and self.end is not None:
            return f"{self.start.isoformat()} to {self.end.isoformat()}"
        if self.start is not None:
            return f"from {self.start.isoformat()}"
        return f"until {self.end.isoformat()}" if self.end is not None else "any date"

    def _hours(self) -> str:
        return ", ".join(f"{time_text(b)}-{time_text(e) if e != MIDNIGHT else '24:00'}"
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
            "hours": [[time_text(b), time_text(e)] for b, e in self.hours],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        """Inverse of :meth:`to_dict`; weekdays may also be names (``"sat"``,
        ``"Sunday"``) and dates/times native TOML values."""
        data = check_keys(data, frozenset({"start", "end", "weekdays", "hours"}))
        days = data.get("weekdays", ())
        if not isinstance(days, list | tuple):
            raise invalid("weekdays", "must be a list of days", shown(days))
        numbers = []
        for i, day in enumerate(days):
            if isinstance(day, str):
                number = _DAY_NAMES.get(day.lower())
                if number is None:
                    raise invalid(f"weekdays[{i}]", "must be 1-7 or a day name (mon..sun)", day)
                numbers.append(number)
            else:
                numbers.append(day)
        hours = data.get("hours", ())
        if not isinstance(hours, list | tuple):
            raise invalid("hours", "must be a list of [start, end] pairs", shown(hours))
        pairs = []
        for i, pair in enumerate(hours):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise invalid(f"hours[{i}]", "must be a [start, end] pair", shown(pair))
            pairs.append((parse_time(pair[0], f"hours[{i}][0]"),
                          parse_time(pair[1], f"hours[{i}][1]")))
        start, end = data.get("start"), data.get("end")
        return cls(
            start=None if start is None else parse_date(start, "start"),
            end=None if end is None else parse_date(end, "end"),
            weekdays=tuple(numbers), hours=tuple(pairs),
        )


def window_miss(window: Window, local: dt.datetime) -> dt.date | int | tuple[int, int] | None:
    """What puts the local wall-clock time ``local`` outside ``window``: the local date
    (outside its dates), the ISO weekday (not one of its days) or the ``(hour,
    minute)`` (outside its hours); None when it is inside. The reason in words
    (:meth:`Window.unmet`) depends on nothing else, so the evaluator may keep it."""
    if window.start is not None or window.end is not None:
        day = local.date()
        if (window.start is not None and day < window.start) or (
                window.end is not None and day > window.end):
            return day
    if window.weekdays:
        weekday = local.isoweekday()
        if weekday not in window.weekdays:
            return weekday
    if window.hours:
        now = local.time()
        for begin, end in window.hours:
            if begin <= now and (now < end or end == MIDNIGHT):
                return None
        return (now.hour, now.minute)
    return None


@attrs.frozen
class LineMatch(JsonForm):
    """Which order lines a rule looks at: lines whose category is in ``categories`` or
    whose SKU is in ``skus``; both empty: every line."""

    categories: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    _cats: frozenset[str] = attrs.field(init=False, repr=False, eq=False, hash=False)
    _skus: frozenset[str] = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        set_field(self, "categories", check_labels(self.categories, "categories"))
        set_field(self, "skus", check_labels(self.skus, "skus"))
        set_field(self, "_cats", frozenset(self.categories))
        set_field(self, "_skus", frozenset(self.skus))

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
        data = check_keys(data, frozenset({"categories", "skus"}))
        return cls(categories=check_labels(data.get("categories", ()), "categories"),
                   skus=check_labels(data.get("skus", ()), "skus"))
