"""Injectable clocks. The domain never reads the time itself; the facade asks a Clock."""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Protocol, runtime_checkable

from loyaltykit._errors import InvalidInput, shown
from loyaltykit._values import check_aware, to_utc

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
    instant explicitly.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, start: dt.datetime) -> None:
        self._now = to_utc(check_aware(start, name="start"))
        self._lock = threading.Lock()

    def now(self) -> dt.datetime:
        """Return the clock's current instant."""
        with self._lock:
            return self._now

    def set(self, instant: dt.datetime) -> dt.datetime:
        """Jump to ``instant`` (timezone-aware) and return it in UTC."""
        value = to_utc(check_aware(instant, name="instant"))
        with self._lock:
            self._now = value
        return value

    def advance(
        self, *, days: float = 0, hours: float = 0, minutes: float = 0, seconds: float = 0
    ) -> dt.datetime:
        """Move forward by the given duration and return the new instant.

        Each amount is an int or a finite float; the clock must stay within the
        datetimes Python can hold (else :class:`~loyaltykit.InvalidInput`)."""
        amounts = {"days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
        for name, value in amounts.items():
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value):
                raise InvalidInput(f"{name} must be an int or a finite float",
                                   **{name: shown(value)})
        with self._lock:
            try:
                self._now = self._now + dt.timedelta(**amounts)
            except OverflowError:
                raise InvalidInput("the clock cannot move that far", **amounts) from None
            return self._now

    def __repr__(self) -> str:
        return f"TestClock({self._now.isoformat()})"
