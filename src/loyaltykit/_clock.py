"""Injectable clocks. The domain never reads the time itself; the facade asks a Clock."""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Protocol, runtime_checkable

from loyaltykit._calendar import in_zone
from loyaltykit._errors import InvalidInput, InvalidProgram, shown
from loyaltykit._validate import MAX_INSTANT, MIN_INSTANT, check_instant, check_time_zone

__all__ = ["Clock", "SystemClock", "TestClock"]


@runtime_checkable
class Clock(Protocol):
    """Tells the current instant as a timezone-aware UTC datetime."""

    def now(self) -> dt.datetime:
        """Return the current instant (timezone-aware)."""
        ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> dt.datetime:
        """Return ``datetime.now(timezone.utc)``."""
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


class TestClock:
    """A clock that moves only when told to: months of expiry run in milliseconds.

    >>> import datetime as dt
    >>> clock = TestClock(dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    >>> clock.advance(days=31).isoformat()
    '2026-02-01T00:00:00+00:00'

    :meth:`advance` also moves by calendar ``months``, on the wall clock of the clock's
    ``time_zone`` (default ``"UTC"``; give the program's, as the pytest plugin's
    ``loyalty_clock`` does): the same local time of day, the day of the month clamped
    to the target month's last day, like pendulum's ``add(months=)``:

    >>> clock = TestClock(dt.datetime(2026, 1, 31, 9, tzinfo=dt.timezone.utc),
    ...                   time_zone="Europe/Berlin")
    >>> clock.advance(months=1).isoformat()  # from 10:00 in Berlin on 31 January
    '2026-02-28T09:00:00+00:00'
    >>> clock.advance(months=1).isoformat()  # 10:00 on 28 March, still winter time
    '2026-03-28T09:00:00+00:00'
    >>> clock.advance(months=1).isoformat()  # 10:00 on 28 April, summer time
    '2026-04-28T08:00:00+00:00'

    Thread-safe. It never moves backwards unless :meth:`set` is given an earlier
    instant explicitly. It tells only supported instants (from 1900-01-01 up to
    9000-01-01 UTC): ``start``, :meth:`set` and :meth:`advance` refuse any other with
    :class:`~loyaltykit.InvalidInput`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: dt.datetime, *, time_zone: str = "UTC") -> None:
        self._now = check_instant(start, "start")
        try:
            self._time_zone = check_time_zone(time_zone)
        except InvalidProgram:
            raise InvalidInput("time_zone must be an IANA time zone name (such as "
                               "'Europe/Berlin') or 'UTC'",
                               time_zone=shown(time_zone)) from None
        self._lock = threading.Lock()

    @property
    def time_zone(self) -> str:
        """The time zone whose wall clock ``advance(months=...)`` counts in."""
        return self._time_zone

    def now(self) -> dt.datetime:
        """Return the clock's current instant."""
        with self._lock:
            return self._now

    def set(self, instant: dt.datetime) -> dt.datetime:
        """Jump to ``instant`` (timezone-aware) and return it in UTC."""
        value = check_instant(instant, "instant")
        with self._lock:
            self._now = value
        return value

    def advance(
        self, *, months: int = 0, days: float = 0, hours: float = 0, minutes: float = 0,
        seconds: float = 0
    ) -> dt.datetime:
        """Move forward by the given duration and return the new instant (in UTC).

        ``months`` (an int) are calendar months on the wall clock of :attr:`time_zone`,
        the day clamped to the month's end (31 January + 1 month = 28 February), and
        are added first; then ``days``, ``hours``, ``minutes`` and ``seconds`` as an
        exact duration. Anything else, or a result outside the supported instants,
        raises :class:`~loyaltykit.InvalidInput` and leaves the clock where it was.
        """
        if isinstance(months, bool) or not isinstance(months, int):
            raise InvalidInput("months must be an int", months=shown(months))
        parts = {"days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
        for name, value in parts.items():
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise InvalidInput(f"{name} must be a finite number", **{name: shown(value)})
        try:
            delta = dt.timedelta(**parts)
        except OverflowError:
            raise InvalidInput("the duration is too long", **{
                k: shown(v) for k, v in parts.items()}) from None
        with self._lock:
            start = self._now
            if months:
                start = self._add_months(start, months)
            if not MIN_INSTANT - start <= delta < MAX_INSTANT - start:
                raise InvalidInput("the clock would leave the supported instants (from "
                                   "1900-01-01 up to 9000-01-01 UTC)",
                                   now=self._now.isoformat(), months=months, by=str(delta))
            self._now = start + delta
            return self._now

    def _add_months(self, start: dt.datetime, months: int) -> dt.datetime:
        """``start`` moved by ``months`` calendar months in :attr:`time_zone`, in UTC."""
        moved: dt.datetime | None = None
        try:
            if abs(months) > _MAX_MONTHS:  # beyond any supported instant
                raise OverflowError
            local = in_zone(start, self._time_zone).add(months=months)
        except (OverflowError, ValueError):  # past pendulum's years 1..9999
            pass
        else:
            moved = dt.datetime(local.year, local.month, local.day, local.hour,
                                local.minute, local.second, local.microsecond,
                                tzinfo=local.tzinfo, fold=local.fold)
        if moved is None or not MIN_INSTANT <= moved < MAX_INSTANT:
            raise InvalidInput("the clock would leave the supported instants (from "
                               "1900-01-01 up to 9000-01-01 UTC)",
                               now=self._now.isoformat(), months=months)
        return moved.astimezone(dt.UTC)

    def __repr__(self) -> str:
        if self._time_zone != "UTC":
            return f"TestClock({self._now.isoformat()}, time_zone={self._time_zone!r})"
        return f"TestClock({self._now.isoformat()})"


#: More calendar months than lie between any two supported instants.
_MAX_MONTHS = 12 * (MAX_INSTANT.year - MIN_INSTANT.year + 1)
