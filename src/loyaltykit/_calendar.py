"""Calendar maths in a program's time zone: a leaf below rules, tiers, referrals and
the program.

Time zones are pendulum's (:func:`zone`; a named one is a :class:`zoneinfo.ZoneInfo`
subclass, so stdlib datetimes built on it keep the standard fold and gap rules).
Instants go in and come out aware; results are in UTC unless said otherwise.
"""

from __future__ import annotations

import datetime as dt
import functools

import pendulum

from loyaltykit._values import check_aware, to_utc

__all__ = [
    "Zone",
    "add_days",
    "add_months",
    "anniversary",
    "calendar_period",
    "in_zone",
    "local_midnight",
    "local_date",
    "round_up",
    "start_of",
    "zone",
]

#: A time zone as :func:`zone` returns it.
Zone = pendulum.Timezone | pendulum.FixedTimezone


@functools.lru_cache(maxsize=256)
def zone(name: str) -> Zone:
    """Return the pendulum time zone called ``name`` (cached: loading one is slow).
    An unknown name raises pendulum's error (a ValueError)."""
    return pendulum.timezone(name)


def in_zone(at: dt.datetime, time_zone: str) -> pendulum.DateTime:
    """``at`` on the wall clock of ``time_zone``, as a pendulum datetime."""
    return pendulum.instance(at).in_timezone(zone(time_zone))


def local_date(at: dt.datetime, time_zone: str) -> dt.date:
    """The date on the wall clock of ``time_zone`` at the instant ``at``: what
    :func:`in_zone` gives (an instant has one wall time), by the standard library's
    conversion, a twentieth of the cost."""
    return at.astimezone(zone(time_zone)).date()


#: start_of's results by (zone, unit, local year, local month or 0, fold)
_starts: dict[tuple[str, str, int, int, int], dt.datetime] = {}


def start_of(at: dt.datetime, time_zone: str, unit: str) -> dt.datetime:
    """``to_utc(in_zone(at, time_zone).start_of(unit))`` for ``unit`` ``"year"`` or
    ``"month"``, worked out once per local year or month: pendulum's start of a unit
    depends only on the wall clock's year, month and fold, which the standard library's
    conversion gives at a twentieth of :func:`in_zone`'s cost (a history import asks
    for every order)."""
    local = at.astimezone(zone(time_zone))
    key = (time_zone, unit, local.year, local.month if unit == "month" else 0, local.fold)
    found = _starts.get(key)
    if found is None:
        if len(_starts) >= 4096:  # bounded: a long-running process meets many months
            _starts.clear()
        found = _starts[key] = to_utc(in_zone(at, time_zone).start_of(unit))
    return found


def local_midnight(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    """The instant (UTC) the local date ``day`` starts in ``tz``."""
    # fold=0: a midnight lost to a DST gap maps to the first instant of the day
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(dt.UTC)


def add_months(day: dt.date, months: int) -> dt.date:
    """The first day of the month ``months`` after the month of ``day``."""
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@functools.lru_cache(maxsize=4096)
def calendar_period(unit: str, day: dt.date, tz: dt.tzinfo
                    ) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) in UTC of the calendar period containing the local date ``day``:
    ``unit`` is ``"day"``, ``"week"`` (ISO, from Monday), ``"month"``, ``"quarter"``
    or ``"year"``."""
    if unit == "day":
        start = day
        end = day + dt.timedelta(days=1)
    elif unit == "week":
        start = day - dt.timedelta(days=day.weekday())
        end = start + dt.timedelta(days=7)
    elif unit == "month":
        start = day.replace(day=1)
        end = add_months(start, 1)
    elif unit == "quarter":
        start = dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
        end = add_months(start, 3)
    else:
        start = dt.date(day.year, 1, 1)
        end = dt.date(day.year + 1, 1, 1)
    return local_midnight(start, tz), local_midnight(end, tz)


def add_days(at: dt.datetime, days: int, tz: dt.tzinfo) -> dt.datetime:
    """``at`` plus ``days`` calendar days on the program's wall clock, in UTC."""
    local = at.astimezone(tz)
    return to_utc(check_aware(local + dt.timedelta(days=days)))


def round_up(local: pendulum.DateTime, unit: str) -> pendulum.DateTime:
    """``local`` moved to the start of the next ``"day"``, ``"month"``, ``"quarter"``
    or ``"year"`` (``"none"``: unchanged)."""
    if unit == "none":
        return local
    if unit == "day":
        return local.start_of("day").add(days=1)
    if unit == "month":
        return local.start_of("month").add(months=1)
    if unit == "quarter":
        first_month = ((local.month - 1) // 3) * 3 + 1
        return local.start_of("month").set(month=first_month).add(months=3)
    return local.start_of("year").add(years=1)


def anniversary(anchor: dt.date, year: int, time_zone: str) -> dt.datetime:
    """Local midnight (UTC) of the anniversary in ``year`` of the date ``anchor`` (29
    February falls on 28 February in other years)."""
    day = pendulum.date(anchor.year, anchor.month, anchor.day).add(years=year - anchor.year)
    local = pendulum.datetime(day.year, day.month, day.day, tz=zone(time_zone))
    return to_utc(local)
