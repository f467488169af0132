"""The qualification window of a tier policy: its kinds and the periods it counts over.

A window splits time into periods in the program's time zone (calendar years, months
of a rolling window, membership years from the enrolment date, or one lifetime
period); :mod:`loyaltykit._tiers` counts a tier's metric over them and evaluates at
their ends. Nothing here reads a clock or storage.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Mapping
from typing import Any

import attrs

from loyaltykit._calendar import anniversary, in_zone, start_of
from loyaltykit._errors import shown
from loyaltykit._json import JsonForm
from loyaltykit._validate import field_name, invalid
from loyaltykit._values import to_utc

__all__ = ["EPOCH", "QualificationWindow", "WindowKind"]

#: Where a lifetime window (and the metric's single bucket) starts.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class WindowKind(enum.Enum):
    """The span the metric is counted over."""

    #: 1 January to 1 January in the program's time zone.
    CALENDAR_YEAR = "calendar_year"
    #: The last ``months`` whole months (in the program's time zone), evaluated at
    #: every month start.
    ROLLING_MONTHS = "rolling_months"
    #: From one anniversary of the member's enrolment (local date, 00:00) to the next;
    #: a member enrolled on 29 February has anniversaries on 28 February.
    ANNIVERSARY_YEAR = "anniversary_year"
    #: Everything ever; no evaluation dates, so no downgrades.
    LIFETIME = "lifetime"

#: The last period :meth:`QualificationWindow.period_start` found, (window kind,
#: start, end), by time zone, for the windows whose periods depend on nothing else
#: (keyed by the zone's name alone: an enum member hashes in Python)
_last_period: dict[str, tuple[WindowKind, dt.datetime, dt.datetime]] = {}


# (its hash kept: the calendar caches below are keyed by the window, asked per order)
@attrs.frozen(cache_hash=True)
class QualificationWindow(JsonForm):
    """The window the metric counts over: ``kind`` and, for rolling windows, ``months``.

    >>> QualificationWindow(WindowKind.ROLLING_MONTHS, months=12).describe()
    'the last 12 months'
    """

    kind: WindowKind = WindowKind.CALENDAR_YEAR
    months: int | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.kind, WindowKind):
            raise invalid("tiers.window.kind", "must be a WindowKind", self.kind)
        if self.kind is WindowKind.ROLLING_MONTHS:
            if (isinstance(self.months, bool) or not isinstance(self.months, int)
                    or not 1 <= self.months <= 120):
                raise invalid("tiers.window.months", "must be an int between 1 and 120 for a "
                              "rolling window", self.months)
        elif self.months is not None:
            raise invalid("tiers.window.months", "only a rolling window takes months",
                          self.months)

    def describe(self) -> str:
        """The window in words."""
        return {
            WindowKind.CALENDAR_YEAR: "the calendar year",
            WindowKind.ROLLING_MONTHS: f"the last {self.months} months",
            WindowKind.ANNIVERSARY_YEAR: "the membership year",
            WindowKind.LIFETIME: "all time",
        }[self.kind]

    # -- calendar maths (in the program's time zone) --------------------------------------

    def period_start(self, at: dt.datetime, time_zone: str, anchor: dt.date | None
                     ) -> dt.datetime:
        """The start of the period (the unit of evaluation) holding ``at``: a year, a
        membership year, a month, or :data:`EPOCH` for a lifetime window."""
        kind = self.kind
        if kind is WindowKind.LIFETIME:
            return EPOCH
        if kind is WindowKind.CALENDAR_YEAR or kind is WindowKind.ROLLING_MONTHS:
            # periods tile time: an instant within the last period found has its start
            # (a history import asks for every order, most in the period of the last)
            last = _last_period.get(time_zone)
            if last is not None and last[0] is kind and last[1] <= at < last[2]:
                return last[1]
            start = start_of(at, time_zone,
                             "year" if kind is WindowKind.CALENDAR_YEAR else "month")
            end = self.next_period(start, time_zone, None)  # (no anchor: one cache entry)
            assert end is not None
            _last_period[time_zone] = (kind, start, end)
            return start
        assert anchor is not None, "an anniversary window needs the enrolment date"
        local = in_zone(at, time_zone)
        start = anniversary(anchor, local.year, time_zone)
        if start > at:
            start = anniversary(anchor, local.year - 1, time_zone)
        return start

    # the same few instants for every member of a due batch: worked out once each
    @functools.lru_cache(maxsize=4096)  # noqa: B019 (bounded; windows are tiny values)
    def next_period(self, start: dt.datetime, time_zone: str, anchor: dt.date | None
                    ) -> dt.datetime | None:
        """The start of the period after the one starting at ``start`` (None: lifetime)."""
        kind = self.kind
        if kind is WindowKind.LIFETIME:
            return None
        local = in_zone(start, time_zone)
        if kind is WindowKind.CALENDAR_YEAR:
            return to_utc(local.add(years=1).start_of("year"))
        if kind is WindowKind.ROLLING_MONTHS:
            return to_utc(local.add(months=1).start_of("month"))
        assert anchor is not None
        # counted from the enrolment date, so 29 February comes back in leap years
        year = local.year + (1 if local.month >= anchor.month else 0)
        nxt = anniversary(anchor, year, time_zone)
        if nxt <= start:
            nxt = anniversary(anchor, year + 1, time_zone)
        return nxt

    def after_periods(self, start: dt.datetime, count: int, time_zone: str,
                      anchor: dt.date | None) -> dt.datetime | None:
        """``count`` periods after ``start`` (a period start)."""
        at: dt.datetime | None = start
        for _ in range(count):
            assert at is not None
            at = self.next_period(at, time_zone, anchor)
            if at is None:
                return None
        return at

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (bounded; windows are tiny values)
    def window_start(self, period: dt.datetime, time_zone: str) -> dt.datetime:
        """The start of the window whose last period starts at ``period``: the period
        itself, or ``months - 1`` months earlier for a rolling window."""
        if self.kind is not WindowKind.ROLLING_MONTHS:
            return period
        assert self.months is not None
        local = in_zone(period, time_zone)
        return to_utc(local.subtract(months=self.months - 1).start_of("month"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict."""
        data: dict[str, Any] = {"kind": self.kind.value}
        if self.months is not None:
            data["months"] = self.months
        return data

    @classmethod
    def from_dict(cls, data: Any) -> QualificationWindow:
        """Parse :meth:`to_dict` output (or a TOML table)."""
        if not isinstance(data, Mapping):
            raise invalid("tiers.window", "must be a table with kind (and months)", shown(data))
        unknown = sorted(set(data) - {"kind", "months"}, key=field_name)
        if unknown:
            raise invalid(f"tiers.window.{field_name(unknown[0])}", "unknown field", None)
        return cls(kind=_enum(WindowKind, data.get("kind", "calendar_year"),
                              "tiers.window.kind"),
                   months=data.get("months"))

def _enum(cls: type[enum.Enum], value: Any, field: str) -> Any:
    try:
        return cls(value)
    except Exception:  # ValueError, TypeError; a hostile value's own error too
        raise invalid(field, f"must be one of {[m.value for m in cls]}", value) from None
