"""Injectable clocks. The domain never reads the time itself; the facade asks a Clock."""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Protocol, runtime_checkable

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._validate import MAX_INSTANT, MIN_INSTANT, check_instant

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

    Thread-safe. It never moves backwards unless :meth:`set` is given an earlier
    instant explicitly. It tells only supported instants (from 1900-01-01 up to
    9000-01-01 UTC): ``start``, :meth:`set` and :meth:`advance` refuse any other with
    :class:`~loyaltykit.InvalidInput`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: dt.datetime) -> None:
        self._now = check_instant(start, "start")
        self._lock = threading.Lock()

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
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> dt.datetime:
        """Move forward by the given duration and return the new instant."""
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
            if not MIN_INSTANT - self._now <= delta < MAX_INSTANT - self._now:
                raise InvalidInput("the clock would leave the supported instants (from "
                                   "1900-01-01 up to 9000-01-01 UTC)",
                                   now=self._now.isoformat(), by=str(delta))
            self._now = self._now + delta
            return self._now

    def __repr__(self) -> str:
        return f"TestClock({self._now.isoformat()})"
